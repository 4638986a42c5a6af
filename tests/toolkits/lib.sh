# shellcheck shell=bash
# Shared helpers for the toolkit conformance scripts (sourced, not executed).
#
#   pg_stage WSDL   copy WSDL + every schema it may import into a fresh temp dir
#                   (sets PG_STAGE, PG_WSDL; removed on exit)
#   pg_warn MSG     print a toolkit warning in the format run-all.sh counts
#   pg_fail MSG     print an error and exit 1
#
# Schemas are copied from ${PARTNERGATE_XSD_DIR:-<repo>/wsdl} and then from the
# WSDL's own directory, so generated/partner-api-soap11.wsdl (which expects to sit
# next to the XSDs) resolves its relative schemaLocations.

PG_TOOLKITS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PG_ROOT="$(cd "$PG_TOOLKITS_DIR/../.." && pwd)"
PG_XSD_DIR="${PARTNERGATE_XSD_DIR:-$PG_ROOT/wsdl}"
PG_TOOL="${PG_TOOL:-$(basename "$0")}"

pg_warn() { printf 'TOOLKIT-WARNING [%s]: %s\n' "$PG_TOOL" "$*"; }
pg_info() { printf '[%s] %s\n' "$PG_TOOL" "$*"; }
pg_fail() { printf 'TOOLKIT-ERROR [%s]: %s\n' "$PG_TOOL" "$*" >&2; exit 1; }

# under `set -e`, never exit silently: name the command that failed
set -o errtrace
trap 'rc=$?; printf "TOOLKIT-ERROR [%s]: unexpected failure (exit %d) at %s:%d: %s\n" "$PG_TOOL" "$rc" "${BASH_SOURCE[0]##*/}" "$LINENO" "$BASH_COMMAND" >&2' ERR

pg_need() {
    local cmd
    for cmd in "$@"; do
        command -v "$cmd" >/dev/null 2>&1 \
            || pg_fail "$cmd not installed: run \`sudo .ci/setup\`"
    done
}

pg_stage() {
    local src="$1" f
    [[ -f "$src" ]] || pg_fail "no such WSDL: $src"
    pg_need xmllint
    xmllint --noout "$src" || pg_fail "WSDL is not well-formed: $src"
    PG_STAGE="$(mktemp -d "${TMPDIR:-/tmp}/pg-toolkit.XXXXXX")"
    # shellcheck disable=SC2064
    trap "rm -rf '$PG_STAGE'" EXIT
    shopt -s nullglob
    for f in "$PG_XSD_DIR"/*.xsd "$(dirname "$src")"/*.xsd; do
        cp -f "$f" "$PG_STAGE/"
    done
    shopt -u nullglob
    cp -f "$src" "$PG_STAGE/"
    PG_WSDL="$PG_STAGE/$(basename "$src")"
    export PG_STAGE PG_WSDL
}

# Contract facts read straight from the WSDL (independent of any toolkit):
# pg_operations: portType operation names, one per line (sorted, unique)
# pg_headers:    element local names of every soap:header/soap12:header used by
#                a binding input, one per line (sorted, unique)
pg_operations() { "$PG_TOOLKITS_DIR/contract-facts.sh" "$1" | sed -n 's/^operation //p'; }
pg_headers()    { "$PG_TOOLKITS_DIR/contract-facts.sh" "$1" | sed -n 's/^header //p'; }
