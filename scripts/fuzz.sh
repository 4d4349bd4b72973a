#!/usr/bin/env bash
# Runs the fuzz targets in fuzz/ (cargo fuzz, libFuzzer) for SECONDS each:
#   scripts/fuzz.sh [SECONDS=60] [TARGET...]
# Targets: http_body (a POST body through the whole pipeline, embedded stores),
# date_format, authorization (header, connection_init, token verification),
# kafka_event (the broker message decoder). Each starts from the committed seeds in
# fuzz/seeds/<target> and a scratch corpus (nothing in the tree changes); a crash
# leaves its input in fuzz/artifacts/<target>/ and fails the run: make it a
# regression test, then fix. `.ci/run` (scripts/test.sh) runs each target briefly.
# cargo fuzz needs nightly-only compiler flags: RUSTC_BOOTSTRAP lets this machine's
# one stable toolchain accept them, for this build only.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SECONDS_EACH=${1:-60}
shift || true
TARGETS=("$@")
((${#TARGETS[@]})) || TARGETS=(http_body date_format authorization kafka_event)
CACHE=${CL_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/central-library}
CARGO_FUZZ_VERSION=0.13.2
export RUSTC_BOOTSTRAP=1
# Built into the tool cache: a clean clone does not rebuild everything.
export CARGO_TARGET_DIR="$CACHE/fuzz-target"

if [[ "$(cargo fuzz --version 2>/dev/null)" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]]; then
  echo "installing cargo-fuzz $CARGO_FUZZ_VERSION"
  CARGO_TARGET_DIR="$CACHE/build/cargo-fuzz" cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi

cd "$ROOT/fuzz"
cargo fuzz build -O
for target in "${TARGETS[@]}"; do
  scratch=$(mktemp -d)
  mkdir -p "artifacts/$target"
  echo "==> $target: ${SECONDS_EACH}s"
  # rss_limit: a target whose memory grows past 1 GiB fails (the gateway's is 256 MiB).
  cargo fuzz run -O "$target" "$scratch" "seeds/$target" -- \
    -max_total_time="$SECONDS_EACH" -rss_limit_mb=1024 -max_len=65536 \
    -artifact_prefix="artifacts/$target/" -print_final_stats=1 2>"$scratch.log" \
    || { tail -40 "$scratch.log"; rm -rf "$scratch" "$scratch.log"; exit 1; }
  grep -E '^stat::(number_of_executed_units|peak_rss_mb|new_units_added)|^Done' "$scratch.log" || tail -3 "$scratch.log"
  rm -rf "$scratch" "$scratch.log"
done
