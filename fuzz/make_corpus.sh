#!/usr/bin/env bash
# Fills fuzz/corpus/<target>/ with seed inputs: files made by the real
# encoders (the make_corpus binary, built with the targets by
# `cargo fuzz build`) plus the small hand-made seeds committed under
# fuzz/seeds/<target>/. The corpus directories are git-ignored, so this
# runs before fuzzing (fuzz/run.sh calls it). Existing corpus files stay.
#
# Usage: fuzz/make_corpus.sh [BIN_DIR]
set -euo pipefail
shopt -s nullglob
here="$(cd "$(dirname "$0")" && pwd)"
bin="${1:-$here/target/x86_64-unknown-linux-gnu/release}"
if [ ! -x "$bin/make_corpus" ]; then
  echo "make_corpus.sh: $bin/make_corpus is missing; run 'RUSTC_BOOTSTRAP=1 cargo fuzz build' in fuzz/ first" >&2
  exit 1
fi
# SQLite (linked through the engine) trips a false ODR report under ASan;
# cargo fuzz sets the same option.
export ASAN_OPTIONS="detect_odr_violation=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
mkdir -p "$here/corpus"
CAIRN_FUZZ_CORPUS="$here/corpus" "$bin/make_corpus" >/dev/null 2>&1 || {
  echo "make_corpus.sh: generating seeds failed:" >&2
  CAIRN_FUZZ_CORPUS="$here/corpus" "$bin/make_corpus" >&2 || true
  exit 1
}
for d in "$here"/seeds/*/; do
  t="$(basename "$d")"
  mkdir -p "$here/corpus/$t"
  cp -n "$d"* "$here/corpus/$t/" 2>/dev/null || true
done
for d in "$here"/corpus/*/; do
  printf '%-20s %s files\n' "$(basename "$d")" "$(find "$d" -type f | wc -l)"
done
