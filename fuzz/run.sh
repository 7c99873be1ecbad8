#!/usr/bin/env bash
# Runs every cargo-fuzz target for N seconds each (default 30), after
# replaying the saved crash inputs under fuzz/regressions/<target>/.
# Exits non-zero when any target crashes (panics, times out, runs out of memory).
#   bash fuzz/run.sh [seconds]          # e.g. 20 in CI, 600 or more for a long run
#   FUZZ_TARGETS="classifier" bash fuzz/run.sh 3600
#
# Works on the stable toolchain: it builds with `--sanitizer none`, and the
# rest of what cargo-fuzz passes to rustc (sancov passes, LLVM args, --cfg
# fuzzing) needs no nightly. The build goes to its own target directory
# (AIRLOCK_FUZZ_TARGET_DIR), never the main one: it uses other RUSTFLAGS.
# What the fuzzer adds to the corpus goes there too; fuzz/corpus/<target>/
# holds the checked-in seeds only (regenerate them with fuzz/make_seeds.py).
set -euo pipefail
cd "$(dirname "$0")"

secs="${1:-30}"
case "$secs" in
    '' | *[!0-9]*) echo "usage: bash fuzz/run.sh [seconds]" >&2; exit 2 ;;
esac
targets="${FUZZ_TARGETS:-frame_decoder startup_auth classifier split_differential}"
export CARGO_TARGET_DIR="${AIRLOCK_FUZZ_TARGET_DIR:-/root/.cache/airlock-fuzz-target}"
work="$CARGO_TARGET_DIR/airlock-fuzz"
mkdir -p "$work"

step() { printf '\n==> %s\n' "$*"; }

# pg_query (Postgres's own parser) is built with bindgen, which needs libclang.
if command -v dpkg >/dev/null 2>&1 && ! dpkg -s libclang-dev >/dev/null 2>&1; then
    step "apt-get install libclang-dev"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libclang-dev
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    step "cargo install cargo-fuzz"
    cargo install cargo-fuzz --locked --version 0.13.2
fi
cargo fuzz --version

fuzz=(cargo fuzz)
opts=(--sanitizer none)

step "cargo fuzz build"
"${fuzz[@]}" build "${opts[@]}"

failed=()
for t in $targets; do
    log="$work/$t.log"
    mkdir -p "artifacts/$t"

    # Saved crash inputs first: each must now run clean.
    shopt -s nullglob
    regressions=("regressions/$t"/*)
    shopt -u nullglob
    if [ "${#regressions[@]}" -gt 0 ]; then
        step "$t: ${#regressions[@]} regression input(s)"
        if ! "${fuzz[@]}" run "${opts[@]}" "$t" "${regressions[@]}" >"$log.regressions" 2>&1; then
            tail -n 40 "$log.regressions"
            echo "FAILED: $t crashes on a regression input (full log: $log.regressions)"
            failed+=("$t (regression)")
            continue
        fi
        echo "ok: every regression input runs clean"
    fi

    step "$t: fuzzing for ${secs}s"
    mkdir -p "$work/corpus/$t"
    start=$(date +%s)
    set +e
    "${fuzz[@]}" run "${opts[@]}" "$t" "$work/corpus/$t" "corpus/$t" -- \
        -max_total_time="$secs" -timeout=30 -max_len=4096 -print_final_stats=1 >"$log" 2>&1
    rc=$?
    set -e
    elapsed=$(($(date +%s) - start))
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    cov=$(grep -Eo 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+/[0-9]+[a-zA-Z]*' "$log" | tail -n 1 || true)
    echo "$t: ${runs:-?} runs in ${elapsed}s (${speed:-?} exec/s), ${cov:-no coverage line}, corpus in $work/corpus/$t"
    if [ "$rc" -ne 0 ]; then
        tail -n 60 "$log"
        echo "FAILED: $t exited $rc (full log: $log)"
        echo "Keep the input as a regression: cp fuzz/artifacts/$t/<crash-file> fuzz/regressions/$t/"
        failed+=("$t")
    fi
done

total=$(wc -w <<<"$targets")
echo
if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz: crashed: ${failed[*]}"
    echo "fuzz: $((total - ${#failed[@]})) passed, ${#failed[@]} failed"
    exit 1
fi
echo "fuzz: every target ran ${secs}s without a crash"
echo "fuzz: $total passed, 0 failed"
