#!/usr/bin/env bash
# Fuzz smoke test for CI: builds every fuzz target and runs each for a
# short, bounded time from the committed seeds (and any saved regression
# inputs). A crash, a panic, an ASan report, a timeout (an input running
# longer than 10 s) or an out-of-memory fails the script. Needs only what
# `cargo install cargo-fuzz` brings (installed here if missing).
#
#   bash fuzz/ci.sh                        # every target, 60 s each
#   FUZZ_SECONDS=10 bash fuzz/ci.sh        # shorter
#   FUZZ_TARGETS="engine" bash fuzz/ci.sh  # some targets only
#
# New inputs go to fuzz/corpus/<target> (scratch, not committed); a crash
# input to fuzz/artifacts/<target>/ (see fuzz/README.md).
set -euo pipefail
cd "$(dirname "$0")"

# cargo-fuzz needs nightly flags (-Zsanitizer): let the stable toolchain
# accept them. The bundled SQLite trips ASan's ODR check; it is harmless.
export RUSTC_BOOTSTRAP=1
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_odr_violation=0}"
seconds="${FUZZ_SECONDS:-60}"
targets="${FUZZ_TARGETS:-packet dictionary engine}"

if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install --locked cargo-fuzz
fi

# Debug assertions on: overflow checks and debug_assert! in the product
# code count as crashes too.
flags=(--debug-assertions)
cargo fuzz build "${flags[@]}"

status=0
for t in $targets; do
  corpus="corpus/$t"
  mkdir -p "$corpus"
  dirs=("$corpus" "seeds/$t")
  if [ -d "regressions/$t" ]; then dirs+=("regressions/$t"); fi
  log="$(mktemp)"
  start=$(date +%s)
  if cargo fuzz run "${flags[@]}" "$t" "${dirs[@]}" -- \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 >"$log" 2>&1; then
    result=ok
  else
    result=FAILED
    status=1
  fi
  secs=$(( $(date +%s) - start ))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$log" | tail -1 || true)
  echo "fuzz $t: $result, ${execs:-?} executions in ${secs} s (${rate:-?}/s), ${cov:-no coverage line}"
  if [ "$result" != ok ]; then
    echo "---- last lines of the $t run ----"
    tail -n 80 "$log"
    ls -l "artifacts/$t" 2>/dev/null || true
  fi
  rm -f "$log"
done
exit "$status"
