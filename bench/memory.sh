#!/usr/bin/env bash
# bench/memory.sh - partnergate's resident memory (VmRSS of its process) under connections:
#   1. after start, and after 2,000 CreateAccount requests on one keep-alive connection;
#   2. with IDLE (default 1000) idle keep-alive connections open, each having completed one
#      CreateAccount request (the target: <= 50 MB);
#   3. in a fresh process, with N concurrent slow uploads (N = SLOW, default "50 100 200"), each
#      having sent all but 100 bytes of a body of limits.body_max_bytes (256 KiB): memory per
#      in-flight request, which the body limit must bound.
# The same idle-connection measurement is taken of the nginx pass-through proxy for comparison
# (its master + worker). Servers pinned as in bench/load.sh (bench/lib.sh).
#
# Usage: bench/memory.sh [--out FILE]     Environment: IDLE, SLOW, and those of bench/lib.sh.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

OUT=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --out) OUT=$2; shift 2 ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
done
IDLE=${IDLE:-1000}
SLOW=${SLOW:-50 100 200}
BODY_MAX=262144  # limits.body_max_bytes (default)

need_tools nginx python3 taskset curl
# Every connection is a descriptor in the client and in the server.
ulimit -n $((IDLE * 2 + 4096)) 2>/dev/null || ulimit -n "$(ulimit -Hn)"
# The idle connections come from one address as fast as the script opens them, and the slow
# uploads stall on purpose: above the per-address defaults a partner's pool never reaches (512
# connections, 200 new a second) and below the receive-rate floor, which would cut them after
# 5 s. Raised and turned off here (environment: an older binary ignores unknown variables).
export PARTNERGATE_LIMITS_MAX_CONNECTIONS_PER_ADDRESS=$((IDLE + 4096))
export PARTNERGATE_LIMITS_NEW_CONNECTIONS_PER_SECOND_PER_ADDRESS=1000000
export PARTNERGATE_LIMITS_NEW_CONNECTIONS_BURST_PER_ADDRESS=1000000
export PARTNERGATE_LIMITS_MIN_RECEIVE_BYTES_PER_SECOND=0
build_partnergate
prepare
start_upstream
start_proxy
start_partnergate
GW=${PID_OF[partnergate]}
CONNS=(python3 "$BENCH/conns.py")
[[ $PIN == 1 ]] && CONNS=(taskset -c "$LOADGEN_CPUS" "${CONNS[@]}")
smoke partnergate "$GATEWAY_PORT" CreateAccount

rss_mb() { awk -v k="$(rss_kib "$1")" 'BEGIN { printf "%.1f", k / 1024 }'; }
nginx_rss_mb() { # master + workers
    local total=0 p
    for p in $1 $(pgrep -P "$1"); do total=$((total + $(rss_kib "$p"))); done
    awk -v k="$total" 'BEGIN { printf "%.1f", k / 1024 }'
}

# with_clients ARGS... : runs conns.py ARGS in the background until it prints "ready", then
# leaves it holding its connections; `release` closes them.
with_clients() {
    coproc CLIENT { "${CONNS[@]}" "$@" --hold 120; }
    local line
    read -r line <&"${CLIENT[0]}" || die "client failed: $*"
    [[ $line == ready* ]] || die "client said: $line"
}
release() {
    local pid=$CLIENT_PID
    eval "exec ${CLIENT[1]}>&-"
    wait "$pid" 2>/dev/null || true
    sleep 1
}

{
    echo "# bench/memory.sh $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -sr), $(nproc) CPUs; $("$PARTNERGATE_BIN" --version); VmRSS of the process"
    printf '%-62s %10s\n' "state" "RSS MB"
    printf '%-62s %10s\n' "partnergate after start" "$(rss_mb "$GW")"
    "${CONNS[@]}" requests --port "$GATEWAY_PORT" --body "$RUN/CreateAccount.request.xml" --count 2000 >/dev/null
    sleep 1
    base=$(rss_kib "$GW")
    printf '%-62s %10s\n' "partnergate after 2,000 requests (1 connection)" "$(rss_mb "$GW")"

    with_clients idle --port "$GATEWAY_PORT" --body "$RUN/CreateAccount.request.xml" --count "$IDLE"
    idle=$(rss_kib "$GW")
    printf '%-62s %10s\n' "partnergate with $IDLE idle keep-alive connections" "$(rss_mb "$GW")"
    printf '%-62s %10.1f\n' "  per idle connection (KiB)" "$(awk -v a="$idle" -v b="$base" -v n="$IDLE" 'BEGIN { print (a - b) / n }')"
    release
    printf '%-62s %10s\n' "partnergate after they closed" "$(rss_mb "$GW")"

    ng=${PID_OF[nginx]}
    "${CONNS[@]}" requests --port "$PROXY_PORT" --body "$RUN/CreateAccount.request.xml" --count 2000 >/dev/null
    nbase=$(nginx_rss_mb "$ng")
    with_clients idle --port "$PROXY_PORT" --body "$RUN/CreateAccount.request.xml" --count "$IDLE"
    printf '%-62s %10s\n' "nginx proxy (master+worker) without / with $IDLE idle" "$nbase / $(nginx_rss_mb "$ng")"
    release

    # A fresh process for the uploads, so that memory freed by the idle connections (kept by the
    # allocator) does not hide what the uploads take.
    kill -TERM "$GW"
    wait "$GW" 2>/dev/null || true
    # Graceful shutdown may still be closing the listener when `wait` returns (seen once).
    for _ in $(seq 200); do port_open "$GATEWAY_PORT" || break; sleep 0.05; done
    start_partnergate >&2
    GW=${PID_OF[partnergate]}
    "${CONNS[@]}" requests --port "$GATEWAY_PORT" --body "$RUN/CreateAccount.request.xml" --count 2000 >/dev/null
    sleep 1
    before=$(rss_kib "$GW")
    printf '%-62s %10s\n' "partnergate restarted, after 2,000 requests" "$(rss_mb "$GW")"
    for n in $SLOW; do
        with_clients slow --port "$GATEWAY_PORT" --count "$n" --length "$BODY_MAX" --send $((BODY_MAX - 100))
        now=$(rss_kib "$GW")
        printf '%-62s %10s\n' "partnergate with $n uploads of $((BODY_MAX - 100)) of $BODY_MAX B in flight" "$(rss_mb "$GW")"
        printf '%-62s %10.1f\n' "  per in-flight upload (KiB; body limit $((BODY_MAX / 1024)) KiB)" "$(awk -v a="$now" -v b="$before" -v n="$n" 'BEGIN { print (a - b) / n }')"
        release
    done
    printf '%-62s %10s\n' "partnergate at the end" "$(rss_mb "$GW")"
    # Started in this subshell: the EXIT trap of the script does not know it.
    kill -TERM "$GW"
    wait "$GW" 2>/dev/null || true
} | tee "$RUN/memory.txt"
if [[ -n $OUT ]]; then cp "$RUN/memory.txt" "$OUT"; fi
note "run directory: $RUN"
