#!/usr/bin/env bash
# bench/profile.sh - where the instructions of one request go (valgrind callgrind: it counts
# instructions, so the figures do not depend on what else the machine is running; hardware
# counters (perf) are not available in this VM).
#   pipeline  the in-memory whole request of benches/pipeline.rs (PARTNERGATE_PROFILE):
#             `pipeline::handle` + the response's encode, CreateAccount (small) and FindAccounts
#             with the ~240 KB response (large); only the measured loop is collected.
#   server    the release binary under callgrind behind the fixed-response nginx upstream,
#             N CreateAccount requests on one keep-alive connection (collection switched on
#             after a warm-up, off before shutdown; refresher and statistics flusher slowed
#             down so that time-driven work, stretched by valgrind, does not count).
# Writes callgrind.out.* and the per-request summaries into the run directory and prints the
# totals per request. Usage: bench/profile.sh [pipeline|server|both] [N (default 2000)]
# Inspect: callgrind_annotate --inclusive=yes FILE | less   (or kcachegrind FILE)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
WHAT=${1:-both}
N=${2:-2000}
need_tools valgrind callgrind_annotate callgrind_control nginx python3

per_request() { # callgrind file, requests, label
    local total
    total=$(callgrind_annotate "$1" 2>/dev/null | awk '/PROGRAM TOTALS/ && !t { gsub(",", "", $1); t = $1 } END { print t }')
    printf '%-44s %14s instructions / %d = %10.0f per request\n' "$3" "$total" "$2" "$((total / $2))"
    callgrind_annotate --inclusive=yes "$1" >"$1.inclusive.txt" 2>/dev/null
    callgrind_annotate "$1" >"$1.self.txt" 2>/dev/null
}

if [[ $WHAT == pipeline || $WHAT == both ]]; then
    (cd "$ROOT" && cargo bench --locked --bench pipeline --no-run 2>&1 | tail -1) >&2
    BIN=$(cd "$ROOT" && cargo bench --locked --bench pipeline --no-run --message-format=json 2>/dev/null |
        python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "pipeline" and m.get("executable"):
        print(m["executable"])')
    for c in small:$N large:$((N / 100 > 0 ? N / 100 : 1)); do
        PARTNERGATE_PROFILE=$c valgrind --tool=callgrind --callgrind-out-file="$RUN/callgrind.out.pipeline-${c%%:*}" \
            --toggle-collect='*profile_loop*' "$BIN" >/dev/null 2>"$RUN/valgrind-${c%%:*}.log"
        per_request "$RUN/callgrind.out.pipeline-${c%%:*}" "${c#*:}" "pipeline, ${c%%:*} (in memory)"
    done
fi

if [[ $WHAT == server || $WHAT == both ]]; then
    BUILD_PROFILE=${BUILD_PROFILE:-profiling} build_partnergate
    prepare
    start_upstream
    { echo "refresh_interval_ms = 600000"; cat "$RUN/partnergate.toml"; printf '[stats]\nflush_interval_ms = 600000\n'; } \
        >"$RUN/partnergate-profile.toml"
    start_server partnergate-callgrind "$GATEWAY_PORT" valgrind --tool=callgrind --instr-atstart=no \
        --callgrind-out-file="$RUN/callgrind.out.server" "$PARTNERGATE_BIN" serve --config "$RUN/partnergate-profile.toml"
    VG=${PID_OF[partnergate-callgrind]}
    python3 "$BENCH/conns.py" requests --port "$GATEWAY_PORT" --body "$RUN/CreateAccount.request.xml" --count 200 >/dev/null
    callgrind_control -i on "$VG" >/dev/null
    python3 "$BENCH/conns.py" requests --port "$GATEWAY_PORT" --body "$RUN/CreateAccount.request.xml" --count "$N" >/dev/null
    callgrind_control -i off "$VG" >/dev/null
    kill -TERM "$VG"
    wait "$VG" 2>/dev/null || true
    per_request "$RUN/callgrind.out.server" "$N" "server, CreateAccount (HTTP, end to end)"
fi
note "callgrind files and annotated summaries: $RUN"
