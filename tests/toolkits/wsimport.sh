#!/usr/bin/env bash
# JAX-WS RI (Debian package `jaxws`, wsimport 2.3) conformance check.
#
# Usage: tests/toolkits/wsimport.sh WSDL
#
# Runs  wsimport -keep [-extension] -XadditionalHeaders -d OUT -s SRC WSDL
# (wsimport compiles the generated Java itself; a javac error fails the run).
# -extension is passed only when the WSDL has a SOAP 1.2 binding: the SOAP 1.1-only
# view must import WITHOUT it. Override with PG_WSIMPORT_EXTENSION=0|1.
# Then asserts the generated SEI has, for every portType operation, a wrapper-style
# method (@RequestWrapper) with the soap:header element (PartnerAuth / CallbackAuth)
# as a `@WebParam(name = "...", ..., header = true)` parameter.
set -euo pipefail
PG_TOOL=wsimport
# shellcheck source=tests/toolkits/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $# -eq 1 ]] || { echo "usage: $0 WSDL" >&2; exit 2; }
pg_need wsimport java javac xmllint
pg_stage "$1"

mapfile -t ops < <(pg_operations "$PG_WSDL")
mapfile -t headers < <(pg_headers "$PG_WSDL")
(( ${#ops[@]} > 0 )) || pg_fail "no portType operations found in $1"
(( ${#headers[@]} > 0 )) || pg_fail "no soap:header bound on any input in $1"

soap12_bindings=$(xmllint --xpath 'count(//*[local-name()="binding" and namespace-uri()="http://schemas.xmlsoap.org/wsdl/soap12/"])' "$PG_WSDL")
ext=()
case "${PG_WSIMPORT_EXTENSION:-auto}" in
    1) ext=(-extension) ;;
    0) ;;
    *) [[ "$soap12_bindings" != 0 ]] && ext=(-extension) ;;
esac

cd "$PG_STAGE"
mkdir -p out src
log="$PG_STAGE/wsimport.log"
cmd=(wsimport -keep "${ext[@]}" -XadditionalHeaders -d out -s src "$(basename "$PG_WSDL")")
pg_info "$(wsimport -version 2>&1 | sed -n 1p); ${cmd[*]}"
rc=0
"${cmd[@]}" >"$log" 2>&1 || rc=$?
sed -e '/^[[:space:]]*$/d' -e 's/^/    /' "$log"

# Each [WARNING]/[ERROR] block runs until the next blank line; print it on one line.
report() {
    awk -v tag="$1" -v tool="$PG_TOOL" -v kind="$2" '
        /^\[(WARNING|ERROR|INFO)\]/ { flush(); if (index($0, "[" tag "]") == 1) { msg = $0; sub(/^\[[A-Z]+\] */, "", msg) } ; next }
        /^[[:space:]]*$/ { flush(); next }
        msg != "" { line = $0; gsub(/^[[:space:]]+/, "", line); msg = msg " | " line }
        function flush() { if (msg != "") print kind " [" tool "]: " msg; msg = "" }
        END { flush() }' "$log" | sed "s|file:$PG_STAGE/|file:|g"
}
report WARNING TOOLKIT-WARNING
# javac warnings (wsimport passes them through) count as toolkit warnings too
grep -E '^(warning:|.*\.java:[0-9]+: warning:)' "$log" | sed "s/^/TOOLKIT-WARNING [$PG_TOOL]: javac: /" || true
errors=$(report ERROR TOOLKIT-ERROR)
if (( rc != 0 )) || [[ -n "$errors" ]]; then
    [[ -n "$errors" ]] && echo "$errors" >&2
    pg_fail "wsimport failed (exit $rc) on $1"
fi

# --- the generated service endpoint interface(s) -------------------------------
mapfile -t seis < <(grep -rlE '^public interface ' src --include='*.java' | xargs -r grep -l '^@WebService(' || true)
(( ${#seis[@]} > 0 )) || pg_fail "no @WebService interface generated"
pg_info "SEI: ${seis[*]#src/}"
nops=${#ops[@]}
for sei in "${seis[@]}"; do
    cls="out/${sei#src/}"; cls="${cls%.java}.class"
    [[ -f "$cls" ]] || pg_fail "SEI not compiled: $cls missing (use -keep without -Xnocompile)"
    methods=$(grep -c '@WebMethod(' "$sei" || true)
    wrappers=$(grep -c '@RequestWrapper(' "$sei" || true)
    [[ "$methods" == "$nops" ]] || pg_fail "$sei: $methods @WebMethod, expected $nops operations"
    [[ "$wrappers" == "$nops" ]] \
        || pg_fail "$sei: $wrappers of $nops methods are wrapper-style (@RequestWrapper); the rest were unwrapped to BARE style (wrapper element name must equal the operation name, have a sequence of elements, and no other body parts)"
    for op in "${ops[@]}"; do
        grep -q "@WebMethod(operationName = \"$op\"" "$sei" \
            || pg_fail "$sei: no method for operation $op"
    done
    for h in "${headers[@]}"; do
        n=$(grep -E "@WebParam\(name = \"$h\".*header = true" "$sei" | wc -l)
        [[ "$n" == "$nops" ]] \
            || pg_fail "$sei: header $h is a 'header = true' parameter in $n of $nops methods (is -XadditionalHeaders honoured?)"
    done
done
pg_info "OK $1: ${#seis[@]} SEI, $nops wrapper-style operations with header(s) ${headers[*]}; compiled $(find out -name '*.class' | wc -l) classes${ext:+ (with -extension)}"
