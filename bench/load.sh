#!/usr/bin/env bash
# bench/load.sh - the same keep-alive SOAP load (wrk), interleaved in one run, against
#   direct       the fixed-response upstream itself (nginx, bench/conf/upstream-nginx.conf.tmpl)
#   nginx        nginx as a plain pass-through reverse proxy to it
#   partnergate  the release build, every check on, forwarding to the same upstream
#   [partnergate-quiet  the same with RUST_LOG=partnergate=warn: no access line; --quiet-too]
#   [partnergate-before another build of partnergate (--before BIN), e.g. before an optimization]
#   [partnergate-rest   the same partnergate process through its REST/JSON face (--rest, or the
#                       payloads rest-small / rest-large / rest): the same operation as JSON,
#                       credentials in headers, the same canonical SOAP call upstream]
# for a small case (CreateAccount: 1.6 KB request, 1.3 KB response) and a large one
# (FindAccounts: 0.6 KB request answered with a ~240 KB response that partnergate strictly
# decodes and re-encodes), and prints per target the median over rounds of req/s, p50, p99 and
# the target's own CPU time per request, with the ratios partnergate/nginx.
#
# Usage: bench/load.sh [options]
#   -p, --payload small|large|both|rest-small|rest-large|rest   (default both; rest-*: with --rest)
#   -c, --conns N        wrk connections (default 32)
#   -t, --threads N      wrk threads (default 1)
#   -d, --duration D     per measured run (default 10s)
#   -w, --warmup D       per target before the rounds, discarded (default 2s)
#   -r, --rounds N       interleaved rounds (default 3)
#       --quiet-too      also measure partnergate without its access log
#       --rest           also measure the REST face: small = POST /rest/partner/v1/accounts with
#                        tests/data/CreateAccount/request.json, large = GET
#                        /rest/partner/v1/accounts?CustomerReference=… (FindAccounts)
#       --before BIN     also measure this partnergate binary, same configuration (BEFORE_PORT,
#                        default 18184), and print partnergate/partnergate-before
#       --out FILE       also write the tables to FILE
# Servers (upstream, proxy, partnergate: one nginx worker each; partnergate's tokio runtime sees
# one CPU) run on SERVER_CPUS (0), wrk on LOADGEN_CPUS (1); see bench/lib.sh for ports and
# binaries. Requires nginx, wrk, curl, python3, taskset (sudo PARTNERGATE_BENCH=1 .ci/setup).
#
# "cpu us/req" = utime+stime of the target's own process(es) from /proc/PID/stat, divided by
# the requests wrk completed: direct = the upstream nginx; nginx and partnergate = the proxy
# only (the upstream's share is the direct row); "sys%" = the kernel-mode share of it. It excludes the kernel's loopback work done in
# softirq context and time the hypervisor took away, so it is the stable figure on a shared VM.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PAYLOADS=both CONNS=32 THREADS=1 DURATION=10s WARMUP=2s ROUNDS=3 QUIET_TOO=0 OUT="" BEFORE_BIN="" REST=0
BEFORE_PORT=${BEFORE_PORT:-18184}
while [[ $# -gt 0 ]]; do
    case "$1" in
        -p | --payload) PAYLOADS=$2; shift 2 ;;
        -c | --conns) CONNS=$2; shift 2 ;;
        -t | --threads) THREADS=$2; shift 2 ;;
        -d | --duration) DURATION=$2; shift 2 ;;
        -w | --warmup) WARMUP=$2; shift 2 ;;
        -r | --rounds) ROUNDS=$2; shift 2 ;;
        --quiet-too) QUIET_TOO=1; shift ;;
        --rest) REST=1; shift ;;
        --before) BEFORE_BIN=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
done
case "$PAYLOADS" in
    small) CASES=(small) ;; large) CASES=(large) ;; both) CASES=(small large) ;;
    rest-small) CASES=(small) REST=1 ;; rest-large) CASES=(large) REST=1 ;; rest) CASES=(small large) REST=1 ;;
    *) die "--payload small|large|both|rest-small|rest-large|rest" ;;
esac

need_tools nginx wrk curl python3 taskset pgrep getconf
build_partnergate
prepare
start_upstream
start_proxy
start_partnergate
TARGETS=(direct nginx partnergate)
declare -A PORT_OF=([direct]=$UPSTREAM_PORT [nginx]=$PROXY_PORT [partnergate]=$GATEWAY_PORT)
PID_OF[direct]=${PID_OF[upstream]}
if [[ $QUIET_TOO == 1 ]]; then
    start_partnergate quiet
    TARGETS+=(partnergate-quiet)
    PORT_OF[partnergate-quiet]=$QUIET_GATEWAY_PORT
fi
if [[ $REST == 1 ]]; then
    # The same process as the partnergate row, reached through its other face.
    TARGETS+=(partnergate-rest)
    PORT_OF[partnergate-rest]=$GATEWAY_PORT
    PID_OF[partnergate-rest]=${PID_OF[partnergate]}
    cp "$ROOT/tests/data/CreateAccount/request.json" "$RUN/CreateAccount.request.json"
    REST_QUERY_FindAccounts="?CustomerReference=$(python3 -c 'import json,sys,urllib.parse; print(urllib.parse.quote(json.load(open(sys.argv[1]))["CustomerReference"], safe=""))' "$ROOT/tests/data/FindAccounts/request.json")"
fi
if [[ -n $BEFORE_BIN ]]; then
    [[ -x $BEFORE_BIN ]] || die "--before $BEFORE_BIN: not executable"
    render "$BENCH/conf/partnergate.toml.tmpl" "$RUN/partnergate-before.toml:$BEFORE_PORT"
    start_server partnergate-before "$BEFORE_PORT" "$BEFORE_BIN" serve --config "$RUN/partnergate-before.toml"
    TARGETS+=(partnergate-before)
    PORT_OF[partnergate-before]=$BEFORE_PORT
fi
# All threads of every server (partnergate's runtime, blocking pool and refresher included) on
# the server CPUs, also those started later.
if [[ $PIN == 1 ]]; then
    for name in "${!PID_OF[@]}"; do
        for pid in ${PID_OF[$name]} $(pgrep -P "${PID_OF[$name]}" || true); do
            taskset -a -p -c "$SERVER_CPUS" "$pid" >/dev/null || die "cannot pin pid $pid"
        done
    done
fi

# The REST face's URL and body file of an operation (a GET has none).
rest_url() { [[ $1 == FindAccounts ]] && echo "/rest/partner/v1/accounts$REST_QUERY_FindAccounts" || echo /rest/partner/v1/accounts; }
rest_body() { [[ $1 == FindAccounts ]] && echo "" || echo "$RUN/$1.request.json"; }

wrk_run() { # target op duration -> RESULT line with user_ticks and sys_ticks
    local target=$1 op=$2 t0 t1 r
    read -ra t0 <<<"$(cpu_ticks "${PID_OF[$target]}")"
    local cmd=(wrk -t"$THREADS" -c"$CONNS" -d"$3" --timeout 5s -s "$BENCH/lua/soap.lua"
        "http://127.0.0.1:${PORT_OF[$target]}$SOAP_PATH")
    if [[ $target == partnergate-rest ]]; then
        cmd=(env REST_BODY="$(rest_body "$op")" REST_PARTNER="$PARTNER_ID" REST_KEY="$API_KEY"
            wrk -t"$THREADS" -c"$CONNS" -d"$3" --timeout 5s -s "$BENCH/lua/json.lua"
            "http://127.0.0.1:${PORT_OF[$target]}$(rest_url "$op")")
    fi
    [[ $PIN == 1 ]] && cmd=(taskset -c "$LOADGEN_CPUS" "${cmd[@]}")
    SOAP_BODY="$RUN/$op.request.xml" SOAP_ACTION="urn:partnergate:partner:v1/$op" "${cmd[@]}" >"$RUN/wrk.last" 2>&1 || true
    read -ra t1 <<<"$(cpu_ticks "${PID_OF[$target]}")"
    r=$(grep '^RESULT ' "$RUN/wrk.last") || { cat "$RUN/wrk.last" >&2; r="RESULT requests=0 errors=1"; }
    echo "$r user_ticks=$((t1[0] - t0[0])) sys_ticks=$((t1[1] - t0[1]))"
}
field() { sed -n "s/.* $2=\([0-9.]*\).*/\1/p" <<<"$1"; }

{
    echo "# bench/load.sh $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -sr), $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
    echo "# $(nginx -v 2>&1 | cut -d' ' -f3) | $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2) | $("$PARTNERGATE_BIN" --version) ($(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD -- src 2>/dev/null || echo '+changes'))"
    echo "# partnergate: $PARTNERGATE_BIN$([[ -n $BEFORE_BIN ]] && echo "; partnergate-before: $BEFORE_BIN")"
    echo "# wrk -t$THREADS -c$CONNS -d$DURATION --timeout 5s (warm-up $WARMUP per target), $ROUNDS interleaved rounds; pinning: $([[ $PIN == 1 ]] && echo "servers CPU $SERVER_CPUS, wrk CPU $LOADGEN_CPUS" || echo none)"
    echo "# load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$RUN/header.txt"

RES="$RUN/results.tsv"
printf 'case\tround\ttarget\trps\tp50_us\tp99_us\terrors\tcpu_us_per_req\tsys_share\n' >"$RES"
for case in "${CASES[@]}"; do
    op=CreateAccount
    [[ $case == large ]] && op=FindAccounts
    for target in "${TARGETS[@]}"; do
        if [[ $target == partnergate-rest ]]; then
            body=$(rest_body "$op")
            status=$(curl -s -o "$RUN/smoke.rest.json" -w '%{http_code}' -H "X-Partner-Id: $PARTNER_ID" \
                -H "Authorization: Bearer $API_KEY" ${body:+-H 'Content-Type: application/json' --data-binary "@$body"} \
                "http://127.0.0.1:${PORT_OF[$target]}$(rest_url "$op")") || true
            [[ $status == 200 ]] || die "partnergate-rest answered $op with HTTP $status: $(head -c 600 "$RUN/smoke.rest.json")"
        else
            smoke "$target" "${PORT_OF[$target]}" "$op"
        fi
    done
    for target in "${TARGETS[@]}"; do
        r=$(wrk_run "$target" "$op" "$WARMUP")
        [[ $(field "$r" requests) -gt 0 && $(field "$r" errors) -eq 0 ]] ||
            die "warm-up of $target ($case) failed: $(cat "$RUN/wrk.last")"
    done
    for round in $(seq "$ROUNDS"); do
        for target in "${TARGETS[@]}"; do
            r=$(wrk_run "$target" "$op" "$DURATION")
            n=$(field "$r" requests)
            u=$(field "$r" user_ticks) s=$(field "$r" sys_ticks)
            cpu=$(awk -v t="$((u + s))" -v n="$n" -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", n ? t * 1e6 / hz / n : 0 }')
            sys=$(awk -v u="$u" -v s="$s" 'BEGIN { printf "%.2f", u + s ? s / (u + s) : 0 }')
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$case" "$round" "$target" "$(field "$r" rps)" \
                "$(field "$r" p50_us)" "$(field "$r" p99_us)" "$(field "$r" errors)" "$cpu" "$sys" | tee -a "$RES" >&2
        done
    done
done

summary() {
    awk -F'\t' -v order="${TARGETS[*]}" -v cases="${CASES[*]}" '
        function isort(a, n,   i, j, t) { for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j+1] = a[j]; a[j+1] = t } }
        function stat(c, k, m,   i, n, A) { n = cnt[c, k]; for (i = 1; i <= n; i++) A[i] = v[c, k, m, i] + 0
            isort(A, n); MED[c, k, m] = (n % 2) ? A[(n+1)/2] : (A[n/2] + A[n/2+1]) / 2; LO[c, k, m] = A[1]; HI[c, k, m] = A[n] }
        NR > 1 { c = $1; k = $3; i = ++cnt[c, k]; v[c, k, "rps", i] = $4; v[c, k, "p50", i] = $5 / 1000
                 v[c, k, "p99", i] = $6 / 1000; v[c, k, "cpu", i] = $8; v[c, k, "sys", i] = $9 * 100; err[c, k] += $7 }
        END {
            nt = split(order, T, " "); nc = split(cases, C, " ")
            for (ci = 1; ci <= nc; ci++) { c = C[ci]
                printf "\n%s case (%s)\n", c, c == "small" ? "CreateAccount: 1641 B request, 1342 B response" : "FindAccounts: 624 B request, ~240 KB response"
                printf "%-18s %8s %15s %7s %13s %7s %15s %8s %13s %5s %6s\n", "target", "req/s", "(min-max)", "p50 ms", "(min-max)", "p99 ms", "(min-max)", "cpu us/r", "(min-max)", "sys%", "errors"
                for (t = 1; t <= nt; t++) { k = T[t]; stat(c, k, "rps"); stat(c, k, "p50"); stat(c, k, "p99"); stat(c, k, "cpu"); stat(c, k, "sys")
                    printf "%-18s %8.0f %7.0f-%-7.0f %7.3f %6.3f-%-6.3f %7.2f %7.2f-%-7.2f %8.1f %6.1f-%-6.1f %5.0f %6d\n", k,
                        MED[c, k, "rps"], LO[c, k, "rps"], HI[c, k, "rps"], MED[c, k, "p50"], LO[c, k, "p50"], HI[c, k, "p50"],
                        MED[c, k, "p99"], LO[c, k, "p99"], HI[c, k, "p99"], MED[c, k, "cpu"], LO[c, k, "cpu"], HI[c, k, "cpu"], MED[c, k, "sys"], err[c, k] }
                for (t = 3; t <= nt; t++) { k = T[t]
                    printf "%s/nginx: req/s x%.2f   p50 x%.2f   p99 x%.2f   cpu/req x%.2f\n", k, MED[c, k, "rps"] / MED[c, "nginx", "rps"],
                        MED[c, k, "p50"] / MED[c, "nginx", "p50"], MED[c, k, "p99"] / MED[c, "nginx", "p99"], MED[c, k, "cpu"] / MED[c, "nginx", "cpu"] }
                if ((c, "partnergate-before") in cnt) { k = "partnergate"; b = "partnergate-before"
                    printf "partnergate/partnergate-before: req/s x%.2f   p50 x%.2f   p99 x%.2f   cpu/req x%.2f\n", MED[c, k, "rps"] / MED[c, b, "rps"],
                        MED[c, k, "p50"] / MED[c, b, "p50"], MED[c, k, "p99"] / MED[c, b, "p99"], MED[c, k, "cpu"] / MED[c, b, "cpu"] }
            }
            printf "\n(cpu us/r: the target process only; direct = the upstream nginx, proxy rows exclude the upstream;\n sys%%: the kernel-mode share of it)\n"
        }' "$RES"
}
summary | tee "$RUN/table.txt"
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$RUN/table.txt"
if [[ -n $OUT ]]; then cat "$RUN/header.txt" "$RUN/table.txt" >"$OUT"; fi
note "raw results, rendered configs and server logs: $RUN"
