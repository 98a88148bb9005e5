#!/bin/bash
# Inside a guest: starts a private containerd (scripts/containerd.sh) and runs the given test
# binaries against it, each to the end; exit status 0 only if every binary passed.
#   vm/run-tests.sh BINARY [BINARY...]      (test binaries built on the host by `cargo test --no-run`)
# One test at a time by default (RESIZELET_VM_TEST_THREADS): two vCPUs under TCG are slow enough that
# parallel tests miss their deadlines.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export RESIZELET_TEST_IMAGE="${RESIZELET_TEST_IMAGE:-resizelet.test/busybox:1}"
export RESIZELET_TEST_SANDBOX_IMAGE="${RESIZELET_TEST_SANDBOX_IMAGE:-resizelet.test/pause:1}"
run_all() {
  local rc=0 bin start
  for bin in "$@"; do
    start=$SECONDS
    echo "run-tests.sh: $(basename "$bin")"
    # shellcheck disable=SC2086 # RESIZELET_VM_TEST_ARGS: extra libtest arguments (e.g. a filter)
    "$bin" --test-threads="${RESIZELET_VM_TEST_THREADS:-1}" ${RESIZELET_VM_TEST_ARGS:-} || rc=1
    echo "run-tests.sh: $(basename "$bin") took $((SECONDS - start))s"
  done
  return "$rc"
}
export -f run_all
scripts/containerd.sh with resizelet-vm-ctrd bash -c 'run_all "$@"' run-tests "$@"
