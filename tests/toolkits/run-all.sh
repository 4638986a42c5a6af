#!/usr/bin/env bash
# Run every SOAP toolkit check on every published WSDL and print a result table.
#
# Usage: tests/toolkits/run-all.sh [WSDL...]
#   default WSDLs: wsdl/partner-api.wsdl, generated/partner-api-soap11.wsdl (if it
#   exists), wsdl/partner-callback.wsdl, generated/partner-callback-soap11.wsdl,
#   wsdl/partner-enrollment.wsdl, generated/partner-enrollment-soap11.wsdl
#   PG_TOOLKITS="zeep wsimport" limits the toolkits; full logs go to $PG_LOG_DIR
#   (default: a temp dir, printed at the end). Exits 1 if any check failed.
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
VENV="${PARTNERGATE_VENV:-/opt/partnergate/venv}"
cd "$ROOT"

if (( $# )); then
    wsdls=("$@")
else
    wsdls=(wsdl/partner-api.wsdl)
    [[ -f generated/partner-api-soap11.wsdl ]] && wsdls+=(generated/partner-api-soap11.wsdl)
    wsdls+=(wsdl/partner-callback.wsdl)
    [[ -f generated/partner-callback-soap11.wsdl ]] && wsdls+=(generated/partner-callback-soap11.wsdl)
    wsdls+=(wsdl/partner-enrollment.wsdl)
    [[ -f generated/partner-enrollment-soap11.wsdl ]] && wsdls+=(generated/partner-enrollment-soap11.wsdl)
fi
read -r -a toolkits <<<"${PG_TOOLKITS:-zeep wsimport gsoap node-soap}"
LOG_DIR="${PG_LOG_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/pg-toolkits-logs.XXXXXX")}"
mkdir -p "$LOG_DIR"

run_one() {  # toolkit wsdl
    case "$1" in
        zeep)      "$VENV/bin/python" "$HERE/zeep.py" "$2" ;;
        wsimport)  "$HERE/wsimport.sh" "$2" ;;
        gsoap)     "$HERE/gsoap.sh" "$2" ;;
        node-soap) node "$HERE/node-soap.js" "$2" ;;
        *) echo "unknown toolkit $1" >&2; return 2 ;;
    esac
}

start=$SECONDS
rows=()
failed=0
for t in "${toolkits[@]}"; do
    for w in "${wsdls[@]}"; do
        log="$LOG_DIR/$t--$(basename "$w" .wsdl).log"
        t0=$SECONDS
        if [[ "$t" == zeep && ! -x "$VENV/bin/python" ]]; then
            echo "TOOLKIT-ERROR [zeep]: zeep not installed ($VENV missing): run \`sudo .ci/setup\`" >"$log"
            rc=1
        else
            run_one "$t" "$w" >"$log" 2>&1
            rc=$?
        fi
        nwarn=$(grep -c '^TOOLKIT-WARNING' "$log")
        if (( rc == 0 )); then res=ok; else res=FAIL; failed=1; fi
        rows+=("$(printf '%-10s %-38s %-5s %8s %5ss' "$t" "$w" "$res" "$nwarn" "$((SECONDS - t0))")")
        printf '=== %s %s: %s (exit %d, %d warning(s)) ===\n' "$t" "$w" "$res" "$rc" "$nwarn"
        if (( rc != 0 )); then
            cat "$log"
        else
            grep -E '^TOOLKIT-WARNING|^\[[a-z-]+\] (OK|note)' "$log"
        fi
    done
done

echo
printf '%-10s %-38s %-5s %8s %6s\n' TOOLKIT WSDL RESULT WARNINGS TIME
printf '%s\n' "${rows[@]}"
echo "total: $((SECONDS - start))s; logs: $LOG_DIR"
exit "$failed"
