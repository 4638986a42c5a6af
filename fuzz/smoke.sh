#!/usr/bin/env bash
# Fuzz smoke for CI (called by .ci/run after the tests): builds the cargo-fuzz targets once, then
# runs each target in turn for FUZZ_SMOKE_SECONDS (default 40) on the seed corpus, the
# regression inputs and the dictionary (fuzz/json.dict for the json target, fuzz/soap.dict for
# the others). Any crash, invariant violation, timeout (> 10 s for one
# input) or out-of-memory fails the script; the crashing input is in fuzz/artifacts/<target>/
# (see fuzz/README.md to reproduce and minimise it).
#
# One fuzzer at a time, niced: the machine is shared. Needs the nightly toolchain and cargo-fuzz
# (.ci/setup installs both).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

seconds="${FUZZ_SMOKE_SECONDS:-40}"
targets=("$@")
(( ${#targets[@]} )) || targets=(envelope decode roundtrip json pipeline)

started=$(date +%s)
echo "== fuzz smoke: build (cargo +nightly fuzz build)"
nice -n 10 cargo +nightly fuzz build

summary=()
for t in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$t" "fuzz/regressions/$t"
    log="fuzz/artifacts/$t-smoke.log"
    mkdir -p fuzz/artifacts
    dict=fuzz/soap.dict
    [[ $t == json ]] && dict=fuzz/json.dict
    echo "== fuzz smoke: $t (${seconds}s)"
    # The first directory collects new inputs; the seeds and the regression inputs are only
    # read (every regression input is run first, so a fixed bug stays fixed).
    if ! nice -n 10 cargo +nightly fuzz run "$t" \
        "fuzz/corpus/$t" "fuzz/seeds/$t" "fuzz/regressions/$t" -- \
        -dict="$dict" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
        -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1; then
        tail -n 60 "$log"
        echo "== fuzz smoke: $t FAILED (log: $log; input: fuzz/artifacts/$t/)" >&2
        exit 1
    fi
    done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1 || true)
    summary+=("$t: ${done_line:-no DONE line}")
done

echo "== fuzz smoke: all targets passed in $(( $(date +%s) - started ))s"
printf '   %s\n' "${summary[@]}"
