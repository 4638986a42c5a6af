#!/usr/bin/env bash
# The project's test command:
#   1. checks that the toolchain and the test tools are there (xmllint, wsimport, wsdl2h, the
#      Python venv (zeep, openapi-spec-validator, openapi-python-client), node-soap, libpq,
#      PostgreSQL server binaries, Chromium and chromedriver for the dashboard's browser test,
#      systemd-analyze, man, groff, zsh and fish for tests/packaging.rs); when something is
#      missing it
#      runs .ci/setup as root, or asks for `sudo .ci/setup`;
#   2. unless PARTNERGATE_TEST_POSTGRES_URL is set, starts a throwaway PostgreSQL cluster in a
#      temporary directory on a free port (as user postgres when root), exports its URL and
#      removes it on exit (also on failure or Ctrl-C);
#   3. runs `cargo test --locked "$@"` and exits with its status.
#
#   tests/run.sh                      # everything
#   tests/run.sh --test store         # one test file (any cargo test arguments)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PARTNERGATE_VENV="${PARTNERGATE_VENV:-/opt/partnergate/venv}"

log() { printf '[run] %s\n' "$*" >&2; }

# The newest PostgreSQL server installation with everything a cluster needs, else PATH's.
pg_bindir() {
    local d
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -rV) \
             "$(dirname "$(command -v pg_ctl 2>/dev/null || echo /nonexistent/pg_ctl)")"; do
        if [[ -x $d/initdb && -x $d/pg_ctl && -x $d/postgres ]]; then
            echo "$d"
            return 0
        fi
    done
    return 1
}

# Prints one line per missing tool.
missing_tools() {
    local t
    for t in xmllint wsimport wsdl2h pkg-config python3 chromium chromedriver \
             systemd-analyze man groff zsh fish; do
        command -v "$t" >/dev/null 2>&1 || echo "$t"
    done
    "$PARTNERGATE_VENV/bin/python" -c 'import zeep' >/dev/null 2>&1 \
        || echo "zeep in $PARTNERGATE_VENV"
    "$PARTNERGATE_VENV/bin/python" -c 'import openapi_spec_validator, httpx, attrs' >/dev/null 2>&1 \
        || echo "openapi-spec-validator in $PARTNERGATE_VENV"
    [[ -x "$PARTNERGATE_VENV/bin/openapi-python-client" ]] \
        || echo "openapi-python-client in $PARTNERGATE_VENV"
    [[ -f tests/toolkits/node/node_modules/soap/package.json ]] \
        || echo "node-soap in tests/toolkits/node/node_modules"
    # libpq-dev: the postgres backend links against libpq
    pkg-config --exists libpq 2>/dev/null || echo "libpq (libpq-dev)"
    if [[ -z ${PARTNERGATE_TEST_POSTGRES_URL:-} ]]; then
        pg_bindir >/dev/null || echo "PostgreSQL server (initdb, pg_ctl, postgres)"
        command -v pg_isready >/dev/null 2>&1 || [[ -x "$(pg_bindir 2>/dev/null)/pg_isready" ]] \
            || echo "pg_isready"
    fi
}

# -- 1. tools -------------------------------------------------------------------
for t in cargo rustc; do
    if ! command -v "$t" >/dev/null 2>&1; then
        log "$t not found: install the Rust toolchain (rustup; Cargo.toml names the minimum version)"
        exit 1
    fi
done
missing="$(missing_tools)"
if [[ -n $missing ]]; then
    log "missing: $(echo "$missing" | paste -sd, - | sed 's/,/, /g')"
    if [[ $(id -u) -eq 0 ]]; then
        log "running .ci/setup"
        bash "$ROOT/.ci/setup"
        missing="$(missing_tools)"
        if [[ -n $missing ]]; then
            log "still missing after .ci/setup: $(echo "$missing" | paste -sd, - | sed 's/,/, /g')"
            exit 1
        fi
    else
        echo "run: sudo .ci/setup" >&2
        exit 1
    fi
fi

# -- 2. a throwaway PostgreSQL -------------------------------------------------------
PGTMP=""
AS_PG=()
cleanup() {
    if [[ -n $PGTMP ]]; then
        "${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$PGTMP/data" -m immediate stop >/dev/null 2>&1 || true
        rm -rf "$PGTMP"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start_postgres() {
    PGBIN="$(pg_bindir)"
    local isready="$PGBIN/pg_isready"
    [[ -x $isready ]] || isready="$(command -v pg_isready)"
    PGTMP="$(mktemp -d "${TMPDIR:-/tmp}/partnergate-pg.XXXXXX")"
    if [[ $(id -u) -eq 0 ]]; then
        # initdb refuses to run as root
        chown postgres: "$PGTMP"
        AS_PG=(runuser -u postgres --)
    fi
    if ! "${AS_PG[@]}" "$PGBIN/initdb" -D "$PGTMP/data" -A trust -U postgres --no-sync \
            --no-instructions >"$PGTMP/initdb.log" 2>&1; then
        cat "$PGTMP/initdb.log" >&2
        log "initdb failed"
        return 1
    fi
    local attempt port i pglog
    for attempt in 1 2 3; do
        port="$(free_port)"
        pglog="$PGTMP/postgres-$attempt.log"
        # Durability is worthless for a throwaway cluster: skip every fsync.
        "${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$PGTMP/data" -l "$pglog" -W -o \
            "-p $port -k $PGTMP -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
            start >/dev/null
        for i in $(seq 1 600); do
            if "$isready" -q -h 127.0.0.1 -p "$port" -t 1; then
                export PARTNERGATE_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres"
                log "PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$port ($PGTMP)"
                return 0
            fi
            # the server gave up (e.g. the port was taken meanwhile): try another port
            grep -q 'FATAL\|PANIC' "$pglog" 2>/dev/null && break
            sleep 0.05
        done
        "${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$PGTMP/data" -m immediate stop >/dev/null 2>&1 || true
        log "PostgreSQL did not start on port $port (attempt $attempt):"
        tail -n 5 "$pglog" >&2 || true
    done
    return 1
}

if [[ -z ${PARTNERGATE_TEST_POSTGRES_URL:-} ]]; then
    start_postgres
fi

# -- 3. the tests ---------------------------------------------------------------
set +e
cargo test --locked "$@"
rc=$?
set -e
exit "$rc"
