#!/usr/bin/env bash
# Builds every fuzz target and runs each for SECONDS_PER_TARGET seconds
# (default 10), one after another; with FUZZ_RUNS=N set, for N executions
# each instead. Exits non-zero if any target crashed,
# leaked, timed out or ran out of memory (after running the rest).
#
# Usage: fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]
#
# Needs cargo-fuzz (installed here if missing) and only the stable
# toolchain: RUSTC_BOOTSTRAP=1 lets stable rustc take the nightly flags
# cargo-fuzz passes. FUZZ_SANITIZER=none builds without AddressSanitizer
# (faster, for long runs); the default is address.
# Each target's libFuzzer log goes to fuzz/logs/<target>.log; crashing
# inputs to fuzz/artifacts/<target>/. Ends with one line per target with
# its execution count.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"

secs="${1:-10}"
if [ $# -gt 0 ]; then shift; fi
all=(envelope_open envelope_random_key pack_parse pack_structured keyfile config index snapshot tree zstd_bounded chunker)
if [ $# -gt 0 ]; then targets=("$@"); else targets=("${all[@]}"); fi
sanitizer="${FUZZ_SANITIZER:-address}"

export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
cargo fuzz build -s "$sanitizer"
bin="$here/target/x86_64-unknown-linux-gnu/release"
# SQLite (linked through the engine) trips a false ODR report under ASan.
export ASAN_OPTIONS="detect_odr_violation=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
bash "$here/make_corpus.sh" "$bin" >/dev/null

# Per-target options: the chunker needs inputs longer than its chunks; the
# key file target runs Argon2 (8 MiB) on seeds, so its timeout is the one
# that matters: a KDF cost validated too late would hang past it.
opts() {
  case "$1" in
    chunker) echo "-max_len=200000 -timeout=10" ;;
    keyfile) echo "-max_len=4096 -timeout=5" ;;
    pack_structured) echo "-max_len=16384 -timeout=10" ;;
    *) echo "-max_len=8192 -timeout=10" ;;
  esac
}

# FUZZ_RUNS=N runs each target for N executions instead of a time.
budget() {
  if [ -n "${FUZZ_RUNS:-}" ]; then echo "-runs=$FUZZ_RUNS"; else echo "-max_total_time=$secs"; fi
}

mkdir -p logs
status=0
summary=()
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  rc=0
  t0=$SECONDS
  # shellcheck disable=SC2046
  "$bin/$t" $(opts "$t") -rss_limit_mb=2048 $(budget) \
    -print_final_stats=1 -artifact_prefix="artifacts/$t/" "corpus/$t" \
    >"logs/$t.log" 2>&1 || rc=$?
  execs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "logs/$t.log" | grep -o '[0-9]*$' || echo '?')"
  if [ "$rc" -ne 0 ]; then
    status=1
    summary+=("$(printf '%-20s FAILED (exit %s) after %s execs; see fuzz/logs/%s.log' "$t" "$rc" "$execs" "$t")")
    grep -E 'panicked at|ERROR: |SUMMARY:|Test unit written' "logs/$t.log" | head -5 >&2 || true
  else
    summary+=("$(printf '%-20s ok  %12s execs in %ss' "$t" "$execs" "$((SECONDS - t0))")")
  fi
done
printf '%s\n' "${summary[@]}"
exit "$status"
