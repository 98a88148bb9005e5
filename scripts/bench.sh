#!/usr/bin/env bash
# resizelet-bench against a private containerd (as root): every performance target of issue 4
# with its measured value.
#
#   scripts/bench.sh            full mode, release build (several minutes)
#   scripts/bench.sh --short    short mode (about a minute after the build)
#   BENCH_PROFILE=debug scripts/bench.sh --short   reuse the debug build (what CI prints)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$HOME/.cargo/bin:$PATH"
export RESIZELET_TEST_IMAGE="${RESIZELET_TEST_IMAGE:-resizelet.test/busybox:1}"

if [[ "${BENCH_PROFILE:-release}" == debug ]]; then
  RESIZELET_BENCH=1 exec scripts/containerd.sh with resizelet-bench \
    cargo test -q --bench resizelet-bench -- "$@"
fi
exec scripts/containerd.sh with resizelet-bench cargo bench -q --bench resizelet-bench -- "$@"
