#!/usr/bin/env bash
# Builds the gateway and dev key service images with podman (no Docker daemon, no
# registry here) and checks them: the gateway answers /health, the key service its
# public key, `podman stop` exits 0 within the grace period, and the sizes are
# reported. Run by hand, and by the test command when the Dockerfile or the
# dependencies changed since the last passing run:
#   scripts/container-check.sh
# The base images the Dockerfile names are made locally and tagged with those names
# (../shared/CONTAINERS.md): debian:bookworm by debootstrap, rust:1.95-bookworm from it
# plus this machine's Rust toolchain, and a distroless/cc stand-in (glibc, libgcc,
# libstdc++, libssl, CA bundle, tzdata, a nonroot user).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
RUN_OPTS=(--runtime runc --cgroup-manager=cgroupfs)
PORT=${CL_CONTAINER_PORT:-4200}
KEYS_PORT=${CL_CONTAINER_KEYS_PORT:-4201}
log() { printf '[container] %s\n' "$*" >&2; }

for tool in podman debootstrap runc; do
  command -v "$tool" >/dev/null || {
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends podman debootstrap runc >/dev/null
    break
  }
done

# The Debian mirror this machine's apt already uses (enabled source files only).
mirror() {
  cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
    | grep -oE '^(deb|URIs:)\s*\S+' | awk '{print $2}' \
    | grep -E '^https?://.*/debian/?$' | head -n1
}

if ! podman image exists docker.io/library/debian:bookworm; then
  log "making debian:bookworm (debootstrap)"
  debootstrap --variant=minbase bookworm "$WORK/rootfs" "$(mirror)" >/dev/null
  chroot "$WORK/rootfs" apt-get clean
  rm -rf "$WORK/rootfs/var/lib/apt/lists/"*
  tar -C "$WORK/rootfs" -c . | podman import - docker.io/library/debian:bookworm >/dev/null
fi

if ! podman image exists docker.io/library/rust:1.95-bookworm; then
  log "making rust:1.95-bookworm (this machine's toolchain)"
  toolchain=$(rustup show active-toolchain | awk '{print $1}')
  mkdir -p "$WORK/rust/rustup/toolchains" "$WORK/rust/cargo/bin" "$WORK/rust/certs"
  cp -a "$HOME/.rustup/toolchains/$toolchain" "$WORK/rust/rustup/toolchains/"
  rm -rf "$WORK/rust/rustup/toolchains/$toolchain/share/doc"
  cp -a "$HOME/.rustup/settings.toml" "$WORK/rust/rustup/" 2>/dev/null || true
  for bin in cargo rustc rustup; do cp -a "$HOME/.cargo/bin/$bin" "$WORK/rust/cargo/bin/"; done
  cp -a /usr/local/share/ca-certificates/. "$WORK/rust/certs/" 2>/dev/null || true
  chmod -R a+rX "$WORK/rust"
  cat >"$WORK/rust/Containerfile" <<EOF
FROM docker.io/library/debian:bookworm
RUN apt-get update && apt-get install -y --no-install-recommends build-essential pkg-config libssl-dev cmake ca-certificates && rm -rf /var/lib/apt/lists/*
COPY certs/ /usr/local/share/ca-certificates/
RUN update-ca-certificates
COPY rustup /usr/local/rustup
COPY cargo /usr/local/cargo
ENV RUSTUP_HOME=/usr/local/rustup CARGO_HOME=/usr/local/cargo PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
RUN rustup default $toolchain && cargo --version
EOF
  podman build --isolation chroot --pull=never -t docker.io/library/rust:1.95-bookworm "$WORK/rust" >/dev/null
fi

if ! podman image exists gcr.io/distroless/cc-debian12:nonroot; then
  log "making the distroless/cc stand-in"
  d="$WORK/distroless"
  mkdir -p "$d/root"
  cid=$(podman create docker.io/library/rust:1.95-bookworm true)
  podman cp "$cid:/" "$d/full" >/dev/null 2>&1 || { mkdir -p "$d/full"; podman export "$cid" | tar -C "$d/full" -x; }
  podman rm "$cid" >/dev/null
  (cd "$d/full" && tar -c \
    usr/lib64 \
    usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 \
    usr/lib/x86_64-linux-gnu/libc.so.6 usr/lib/x86_64-linux-gnu/libm.so.6 \
    usr/lib/x86_64-linux-gnu/libgcc_s.so.1 usr/lib/x86_64-linux-gnu/libstdc++.so.6* \
    usr/lib/x86_64-linux-gnu/libssl.so.3 usr/lib/x86_64-linux-gnu/libcrypto.so.3 \
    usr/lib/x86_64-linux-gnu/libpthread.so.0 usr/lib/x86_64-linux-gnu/libdl.so.2 \
    usr/lib/x86_64-linux-gnu/librt.so.1 \
    etc/ssl/certs/ca-certificates.crt usr/share/zoneinfo etc/nsswitch.conf 2>/dev/null) \
    | tar -C "$d/root" -x
  # Merged /usr, as in Debian 12: /lib and /lib64 point into /usr.
  ln -sf usr/lib "$d/root/lib"
  ln -sf usr/lib64 "$d/root/lib64"
  mkdir -p "$d/root/etc" "$d/root/tmp" "$d/root/home/nonroot"
  chmod 1777 "$d/root/tmp"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$d/root/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' >"$d/root/etc/group"
  tar -C "$d/root" -c . | podman import --change 'USER 65532:65532' - gcr.io/distroless/cc-debian12:nonroot >/dev/null
fi

log "building the gateway image"
podman build --isolation chroot --pull=never -t central-library/gateway:latest "$ROOT"
size=$(podman image inspect --format '{{.Size}}' central-library/gateway:latest)
log "image size: $((size / 1024 / 1024)) MB"

# The production image has no embedded stores: it runs in production mode on the
# harness's real services (scripts/services.sh up wrote their settings), loopback only.
env_file="${CL_STATE_DIR:-$ROOT/.services}/env"
[[ -f $env_file ]] || { log "no $env_file: run scripts/services.sh up first"; exit 1; }
log "running it (production, on the harness's services, loopback only)"
cid=$(podman run -d "${RUN_OPTS[@]}" --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 \
  --network host --env-file "$env_file" -e APP_ENV=production -e SHUTDOWN_DELAY=0 \
  -e GRAPHQL_SERVER_HOST=127.0.0.1 -e GRAPHQL_SERVER_PORT="$PORT" central-library/gateway:latest)
for _ in $(seq 1 300); do
  curl -fs "http://127.0.0.1:$PORT/health/ready" >/dev/null && break
  sleep 0.1
done
body=$(curl -fsS "http://127.0.0.1:$PORT/health") || { podman logs "$cid"; exit 1; }
[[ $body == OK ]] || { podman logs "$cid"; log "health answered '$body'"; exit 1; }
curl -fsS "http://127.0.0.1:$PORT/health/ready" >/dev/null || { podman logs "$cid"; log "not ready"; exit 1; }
log "/health: OK, /health/ready: 200"
started=$(date +%s%N)
podman "${RUN_OPTS[@]}" stop -t 75 "$cid" >/dev/null
elapsed=$(( ($(date +%s%N) - started) / 1000000 ))
code=$(podman inspect --format '{{.State.ExitCode}}' "$cid")
podman rm "$cid" >/dev/null
log "podman stop: exit $code after ${elapsed} ms"
[[ $code == 0 ]] || exit 1

log "building the dev key service image"
podman build --isolation chroot --pull=never --target dev-key-service \
  -t central-library/dev-key-service:latest "$ROOT"
size=$(podman image inspect --format '{{.Size}}' central-library/dev-key-service:latest)
log "dev key service image size: $((size / 1024 / 1024)) MB"
cid=$(podman run -d "${RUN_OPTS[@]}" --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 \
  --network host -e DEV_KEY_SERVICE_LISTEN="127.0.0.1:$KEYS_PORT" \
  central-library/dev-key-service:latest)
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$KEYS_PORT/publickey" >/dev/null && break
  sleep 0.1
done
key=$(curl -fsS "http://127.0.0.1:$KEYS_PORT/publickey") || { podman logs "$cid"; exit 1; }
[[ $key == *"BEGIN PUBLIC KEY"* ]] || { podman logs "$cid"; log "publickey answered '$key'"; exit 1; }
log "/publickey: a PEM public key"
podman "${RUN_OPTS[@]}" stop -t 10 "$cid" >/dev/null
code=$(podman inspect --format '{{.State.ExitCode}}' "$cid")
podman rm "$cid" >/dev/null
log "dev key service: exit $code on podman stop"
[[ $code == 0 ]] || exit 1
