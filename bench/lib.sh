# Shared by bench/load.sh and bench/memory.sh (sourced, not run). Sets up a run directory with
# the upstream's canned answers, an onboarded partner and its personalized requests, and starts
# and stops the servers (pinned with taskset, stopped by pid on exit).
#
# Environment: SERVER_CPUS (default 0) and LOADGEN_CPUS (default 1) for pinning, PIN=0 for none;
# UPSTREAM_PORT PROXY_PORT GATEWAY_PORT QUIET_GATEWAY_PORT (18180-18183); PARTNERGATE_BIN
# (default target/release/partnergate, built with `cargo build --release --locked` if missing
# or older than the sources); BENCH_RUN_DIR (default a fresh /tmp/partnergate-bench.XXXXXX);
# BENCH_DATABASE_URL (default a SQLite file in the run directory; a postgres:// URL measures
# the nodes' PostgreSQL shape: snapshot push, heartbeat and the cluster throttle exchange).

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH="$ROOT/bench"
SERVER_CPUS=${SERVER_CPUS:-0}
LOADGEN_CPUS=${LOADGEN_CPUS:-1}
PIN=${PIN:-1}
UPSTREAM_PORT=${UPSTREAM_PORT:-18180}
PROXY_PORT=${PROXY_PORT:-18181}
GATEWAY_PORT=${GATEWAY_PORT:-18182}
QUIET_GATEWAY_PORT=${QUIET_GATEWAY_PORT:-18183}
SOAP_PATH=/soap/partner/v1
CLK_TCK=$(getconf CLK_TCK)

die() { echo "${0##*/}: $*" >&2; exit 1; }
note() { echo "[${0##*/}] $*" >&2; }

need_tools() {
    local t
    for t in "$@"; do
        command -v "$t" >/dev/null || die "$t not found (install: sudo PARTNERGATE_BENCH=1 .ci/setup)"
    done
}

# The release binary: PARTNERGATE_BIN as given, else target/$BUILD_PROFILE/partnergate (the
# profile `release` unless the script sets BUILD_PROFILE, e.g. profile.sh: `profiling`, the
# release build with line tables for callgrind), built if it is missing or older than the sources.
build_partnergate() {
    if [[ -n ${PARTNERGATE_BIN:-} ]]; then
        [[ -x $PARTNERGATE_BIN ]] || die "PARTNERGATE_BIN=$PARTNERGATE_BIN is not executable"
        return 0
    fi
    local profile=${BUILD_PROFILE:-release}
    PARTNERGATE_BIN=$ROOT/target/$profile/partnergate
    if [[ ! -x $PARTNERGATE_BIN ]] || [[ -n $(find "$ROOT/src" "$ROOT/build.rs" "$ROOT/wsdl" "$ROOT/Cargo.toml" \
            -newer "$PARTNERGATE_BIN" -print -quit) ]]; then
        note "building the $profile binary"
        (cd "$ROOT" && cargo build --profile "$profile" --locked --quiet) || die "$profile build failed"
    fi
}
RUN=${BENCH_RUN_DIR:-$(mktemp -d /tmp/partnergate-bench.XXXXXX)}
mkdir -p "$RUN/www"
# nginx started as root serves files as its unprivileged worker user
chmod a+rx "$RUN" "$RUN/www"
SERVER_PIDS=()

stop_servers() {
    local pid
    for pid in "${SERVER_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${SERVER_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    SERVER_PIDS=()
}
trap stop_servers EXIT
trap 'exit 130' INT TERM

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

render() { # template output
    local t
    t=$(<"$1")
    t=${t//@DATABASE_URL@/${BENCH_DATABASE_URL:-$RUN/partnergate.db}}
    t=${t//@RUN@/$RUN}
    t=${t//@UPSTREAM_PORT@/$UPSTREAM_PORT}
    t=${t//@PROXY_PORT@/$PROXY_PORT}
    t=${t//@GATEWAY_PORT@/${2##*:}}
    printf '%s\n' "$t" >"${2%:*}"
}

# start_server NAME PORT CMD... : starts CMD pinned to SERVER_CPUS, waits for PORT; the pid
# (taskset execs, so it is the server's own) is in PID_OF[NAME].
declare -A PID_OF=()
start_server() {
    local name=$1 port=$2 i
    shift 2
    port_open "$port" && die "port $port is in use (set the *_PORT variables)"
    if [[ $PIN == 1 ]]; then set -- taskset -c "$SERVER_CPUS" "$@"; fi
    "$@" >"$RUN/$name.out" 2>&1 &
    SERVER_PIDS+=($!)
    PID_OF[$name]=$!
    for i in $(seq 600); do # 30 s (a server under valgrind starts slowly)
        port_open "$port" && { note "$name: pid $! on 127.0.0.1:$port"; return 0; }
        kill -0 $! 2>/dev/null || { cat "$RUN/$name.out" >&2; die "$name exited at start"; }
        sleep 0.05
    done
    die "$name did not open port $port"
}

# "USER SYSTEM" CPU ticks of PIDs and their children (nginx: master + worker); threads included.
cpu_ticks() {
    local user=0 sys=0 p c s f
    for p in "$@"; do
        for c in $p $(pgrep -P "$p" || true); do
            s=$(<"/proc/$c/stat") || continue
            read -ra f <<<"${s##*) }" # f[0] = field 3 (state): utime = f[11], stime = f[12]
            user=$((user + f[11]))
            sys=$((sys + f[12]))
        done
    done
    echo "$user $sys"
}

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

# The upstream's answers (CreateAccount: the golden canonical response; FindAccounts: the ~240 KB
# canonical bulk response), the onboarded partner, and its requests with its key.
prepare() {
    cp "$ROOT/tests/data/CreateAccount/response.canonical.xml" "$RUN/www/create-account-response.xml"
    python3 "$BENCH/gen_bulk_response.py" "$ROOT" >"$RUN/bulk-response.raw.xml"
    "$PARTNERGATE_BIN" check --response FindAccounts "$RUN/bulk-response.raw.xml" \
        >"$RUN/www/find-accounts-response.xml" 2>"$RUN/check.out" || die "bulk response: $(<"$RUN/check.out")"
    render "$BENCH/conf/upstream-nginx.conf.tmpl" "$RUN/upstream-nginx.conf"
    render "$BENCH/conf/proxy-nginx.conf.tmpl" "$RUN/proxy-nginx.conf"
    render "$BENCH/conf/partnergate.toml.tmpl" "$RUN/partnergate.toml:$GATEWAY_PORT"
    render "$BENCH/conf/partnergate.toml.tmpl" "$RUN/partnergate-quiet.toml:$QUIET_GATEWAY_PORT"
    local created
    created=$("$PARTNERGATE_BIN" partner create --config "$RUN/partnergate.toml" --name "Bench Partner" \
        --country DE --allow 127.0.0.1/32 --grant '*' --json) || die "partner create failed"
    PARTNER_ID=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["partner_id"])' <<<"$created")
    API_KEY=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["api_key"])' <<<"$created")
    local op
    for op in CreateAccount FindAccounts; do
        sed -e "s/pgk_test_0123456789abcdef0123456789abcdef/$API_KEY/" -e "s/PARTNER-0042/$PARTNER_ID/" \
            "$ROOT/tests/data/$op/request.xml" >"$RUN/$op.request.xml"
    done
    note "partner $PARTNER_ID onboarded; run directory $RUN"
}

start_upstream() {
    start_server upstream "$UPSTREAM_PORT" nginx -p "$RUN/" -e "$RUN/upstream-nginx.error.log" -c "$RUN/upstream-nginx.conf"
}

start_proxy() {
    start_server nginx "$PROXY_PORT" nginx -p "$RUN/" -e "$RUN/proxy-nginx.error.log" -c "$RUN/proxy-nginx.conf"
}

# partnergate with its default logging (one access line per request, to a file); with the
# argument "quiet", a second instance logging warnings only (RUST_LOG=partnergate=warn).
start_partnergate() {
    if [[ ${1:-} == quiet ]]; then
        RUST_LOG=partnergate=warn start_server partnergate-quiet "$QUIET_GATEWAY_PORT" \
            "$PARTNERGATE_BIN" serve --config "$RUN/partnergate-quiet.toml"
    else
        start_server partnergate "$GATEWAY_PORT" "$PARTNERGATE_BIN" serve --config "$RUN/partnergate.toml"
    fi
}

# One request through curl, to fail early and clearly: NAME PORT OP
smoke() {
    local status
    status=$(curl -s -o "$RUN/smoke.$1.xml" -w '%{http_code}' -H 'Content-Type: text/xml; charset=utf-8' \
        -H "SOAPAction: \"urn:partnergate:partner:v1/$3\"" --data-binary "@$RUN/$3.request.xml" \
        "http://127.0.0.1:$2$SOAP_PATH") || true
    [[ $status == 200 ]] || die "$1 answered $3 with HTTP $status: $(head -c 600 "$RUN/smoke.$1.xml")"
}
