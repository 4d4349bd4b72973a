#!/usr/bin/env bash
# Runs every test: starts the real services (scripts/services.sh up), then format,
# lint, and the whole workspace's tests against them. The README's second command;
# CI's .ci/run calls exactly this.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

step() { printf '\n==> %s\n' "$*"; }

step "toolchain"
command -v cargo >/dev/null || { echo "cargo not found: install Rust (rustup)" >&2; exit 1; }
cargo --version
# System packages the build needs (librdkafka is built from source by rdkafka).
missing=()
for tool in cc make cmake pkg-config python3 curl; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
if ((${#missing[@]})); then
  echo "installing build tools: ${missing[*]}"
  pkgs=()
  for t in "${missing[@]}"; do
    case $t in
      cc|make) pkgs+=(build-essential) ;;
      python3) pkgs+=(python3 python3-venv) ;;
      *) pkgs+=("$t") ;;
    esac
  done
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
fi
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "installing cargo-nextest 0.9.143"
  cargo install cargo-nextest --version 0.9.143 --locked
fi

step "services"
scripts/services.sh up

# The real npm client libraries the API tests drive (versions from the lock file).
step "npm clients"
command -v node >/dev/null || { echo "node not found: install Node.js 20 or later" >&2; exit 1; }
npm ci --prefix gateway/tests/clients --no-audit --no-fund --loglevel=error

step "format"
cargo fmt --all -- --check

step "lint"
cargo clippy --workspace --all-targets --locked -- -D warnings
# The production build (the image's): no dev feature, so no embedded stores, no
# token issuing, no data-dropping calls; it must build clean on its own.
cargo clippy -p gateway --no-default-features --bin gateway --locked -- -D warnings

step "container and Kubernetes files"
scripts/deploy-checks.sh

step "tests"
cargo nextest run --workspace --locked --no-fail-fast

# Each fuzz target briefly from its committed seeds (scripts/fuzz.sh runs them longer).
step "fuzz"
scripts/fuzz.sh 20

# The image build-and-run check (scripts/container-check.sh) takes minutes, so it runs
# only when what goes into the image's dependency layer changed since it last passed
# on this machine: the Dockerfile, the manifests and lock file, the vendored crates,
# and the check itself.
step "container image"
stamp_dir="${XDG_CACHE_HOME:-$HOME/.cache}/central-library/container-check"
digest=$(git ls-files -z Dockerfile .dockerignore Cargo.lock Cargo.toml '*/Cargo.toml' vendor \
  scripts/container-check.sh | xargs -0 cat | sha256sum | cut -c1-16)
stamp="$stamp_dir/$digest"
if [[ -e $stamp ]]; then
  echo "unchanged since the last passing check ($(basename "$stamp")): skipped"
else
  scripts/container-check.sh
  mkdir -p "$stamp_dir" && touch "$stamp"
fi
