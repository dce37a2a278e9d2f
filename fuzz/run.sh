#!/usr/bin/env bash
# `make fuzz`: every cargo-fuzz target for FUZZ_SECONDS seconds (default 600),
# one after the other, each on a scratch copy of its seed corpus
# (target/fuzz-corpus/<target>: libFuzzer adds new inputs to the first
# corpus directory, so fuzz/corpus stays as committed). Prints one line per
# target, `FUZZ <target> runs=<n> seconds=<s> crashes=<0|1>`, and fails if
# any target crashed (the input is in fuzz/artifacts/<target>/).
#
#   FUZZ_SECONDS   seconds per target (default 600)
#   FUZZ_TARGETS   targets to run (default: all of fuzz/fuzz_targets)
#   FUZZ_SANITIZER address (default) or none; `none` is used by itself when
#                  the address sanitizer does not build
#   FUZZ_JOBS      build jobs (default: cargo's)
set -uo pipefail

cd "$(dirname "$0")/.."
root=$PWD
seconds=${FUZZ_SECONDS:-600}
targets=${FUZZ_TARGETS:-$(cd fuzz/fuzz_targets && ls -- *.rs | sed 's/\.rs$//' | tr '\n' ' ')}
sanitizer=${FUZZ_SANITIZER:-address}
logs=$root/target/fuzz-logs
mkdir -p "$logs"

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked || exit 1

# Nightly if rustup has one; else stable with the nightly flags unlocked.
toolchain=()
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  toolchain=(+nightly)
else
  export RUSTC_BOOTSTRAP=1
fi
fuzz() { cargo "${toolchain[@]}" fuzz "$@"; }

build() {
  local t
  if [ -z "${FUZZ_TARGETS:-}" ]; then
    fuzz build -s "$sanitizer" ${FUZZ_JOBS:+--jobs "$FUZZ_JOBS"} >"$logs/build.log" 2>&1
  else
    : >"$logs/build.log"
    for t in $targets; do
      fuzz build -s "$sanitizer" ${FUZZ_JOBS:+--jobs "$FUZZ_JOBS"} "$t" >>"$logs/build.log" 2>&1 || return 1
    done
  fi
}
if ! build; then
  if [ "$sanitizer" != none ]; then
    echo "fuzz: the $sanitizer sanitizer does not build (see $logs/build.log); using -s none" >&2
    sanitizer=none
    build || { cat "$logs/build.log" >&2; exit 1; }
  else
    cat "$logs/build.log" >&2
    exit 1
  fi
fi
echo "fuzz: toolchain ${toolchain[*]:-stable (RUSTC_BOOTSTRAP=1)}, sanitizer $sanitizer, ${seconds}s per target"

failed=0
for t in $targets; do
  scratch=$root/target/fuzz-corpus/$t
  mkdir -p "$scratch"
  cp -n fuzz/corpus/"$t"/* "$scratch"/ 2>/dev/null || true
  log=$logs/$t.log
  fuzz run -s "$sanitizer" "$t" "$scratch" "fuzz/corpus/$t" -- \
    -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1
  status=$?
  # libFuzzer's last stat line: "Done 123456 runs in 600 second(s)".
  done_line=$(grep -E '^Done [0-9]+ runs in [0-9]+ second' "$log" | tail -1)
  runs=$(sed -E 's/^Done ([0-9]+) runs.*/\1/' <<<"$done_line")
  secs=$(sed -E 's/.* in ([0-9]+) second.*/\1/' <<<"$done_line")
  crashes=0
  if [ "$status" -ne 0 ] || [ -z "$done_line" ]; then
    crashes=1
    failed=1
    runs=${runs:-$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#')}
    secs=${secs:-?}
  fi
  echo "FUZZ $t runs=${runs:-0} seconds=$secs crashes=$crashes"
  if [ "$crashes" -ne 0 ]; then
    echo "fuzz: $t failed (exit $status), log $log:" >&2
    grep -m1 -A3 -E "panicked at|ERROR: (AddressSanitizer|libFuzzer)" "$log" | cut -c1-300 >&2
    grep -m1 -E "Test unit written to" "$log" >&2
  fi
done
exit "$failed"
