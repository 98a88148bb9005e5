#!/usr/bin/env bash
# Private containerd for the integration tests.
#
#   scripts/containerd.sh start DIR   write DIR/config.toml, start containerd (socket DIR/containerd.sock,
#                                     log DIR/containerd.log), wait until it answers, build and import
#                                     the workload and sandbox images
#   scripts/containerd.sh stop DIR    remove leftover tasks, stop containerd, unmount what it left under DIR
#   scripts/containerd.sh with PREFIX CMD...
#                                     start one in a new /tmp/PREFIX.XXXXXX (its start log shown only on
#                                     failure), export RESIZELET_TEST_CRI_ENDPOINT, run CMD, then stop it
#                                     and remove the directory; exits with CMD's status
#
# Environment: RESIZELET_TEST_IMAGE (default resizelet.test/busybox:1),
#              RESIZELET_TEST_SANDBOX_IMAGE (default resizelet.test/pause:1),
#              CONTAINERD_START_TIMEOUT seconds (default 60),
#              CONTAINERD_SYSTEMD_CGROUP=true for runc's systemd cgroup driver (default false).
# Needs root, containerd >= 1.6.9, runc, containernetworking-plugins (/usr/lib/cni) and busybox-static.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
image="${RESIZELET_TEST_IMAGE:-resizelet.test/busybox:1}"
sandbox_image="${RESIZELET_TEST_SANDBOX_IMAGE:-resizelet.test/pause:1}"
start_timeout="${CONTAINERD_START_TIMEOUT:-60}"
# Sleep "forever" and exit 0 on SIGTERM (sh as pid 1 only reacts to signals it traps).
sleeper='["/bin/sh","-c","trap \"exit 0\" TERM; sleep 2147483647 & wait"]'

usage() { echo "usage: $0 start|stop DIR | with PREFIX CMD..." >&2; exit 2; }
log() { echo "containerd.sh: $*" >&2; }

[[ $# -ge 2 ]] || usage
cmd="$1"
dir="$2"
[[ $cmd == with || $# -eq 2 ]] || usage

ctr_() { ctr --address "$dir/containerd.sock" "$@"; }

write_config() {
  mkdir -p "$dir/root" "$dir/state" "$dir/cni" "$dir/opt"
  cat >"$dir/cni/10-loopback.conflist" <<JSON
{"cniVersion": "0.4.0", "name": "resizelet-test-lo", "plugins": [{"type": "loopback"}]}
JSON
  cat >"$dir/config.toml" <<TOML
version = 2
root = "$dir/root"
state = "$dir/state"

[grpc]
  address = "$dir/containerd.sock"

[ttrpc]
  address = "$dir/containerd.sock.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "$dir/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$sandbox_image"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "native"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = ${CONTAINERD_SYSTEMD_CGROUP:-false}
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$dir/cni"
TOML
}

# Whether the CRI image store lists $1. The listing is captured first: with pipefail, `ctr | grep -q`
# fails at random when grep exits on the first match and ctr dies of SIGPIPE writing the next line.
has_image() {
  local listing
  listing="$(ctr_ -n k8s.io images ls -q)" || return 1
  grep -qxF "$1" <<<"$listing"
}

import_images() {
  python3 "$here/build-image.py" --name "$image" --out "$dir/busybox.tar" --entrypoint "$sleeper" >&2
  python3 "$here/build-image.py" --name "$sandbox_image" --out "$dir/pause.tar" --entrypoint "$sleeper" >&2
  for tarball in "$dir/busybox.tar" "$dir/pause.tar"; do
    ctr_ -n k8s.io images import --snapshotter native "$tarball" >&2
  done
  # The images have distinct IDs (build-image.py labels each config with its name); poll
  # (bounded) for the CRI image store to see both names, re-importing once before giving up.
  local ref attempt
  for ref in "$image" "$sandbox_image"; do
    for attempt in 1 2 3 4 5 6 7 8 9 10; do
      has_image "$ref" && break
      if [[ $attempt == 5 ]]; then
        for tarball in "$dir/busybox.tar" "$dir/pause.tar"; do
          ctr_ -n k8s.io images import --snapshotter native "$tarball" >&2
        done
      fi
      sleep 0.5
    done
    if ! has_image "$ref"; then
      log "image $ref missing after import"
      exit 1
    fi
  done
}

start() {
  for tool in containerd ctr runc python3; do
    command -v "$tool" >/dev/null || { log "$tool not found (install containerd runc python3)"; exit 1; }
  done
  [[ -x /usr/lib/cni/loopback ]] || { log "/usr/lib/cni/loopback not found (install containernetworking-plugins)"; exit 1; }
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  write_config
  containerd --config "$dir/config.toml" </dev/null >"$dir/containerd.log" 2>&1 &
  local pid=$!
  echo "$pid" >"$dir/containerd.pid"
  local deadline=$((SECONDS + start_timeout))
  until ctr_ version >/dev/null 2>&1; do
    if ! kill -0 "$pid" 2>/dev/null; then
      log "containerd exited during startup; log:"
      tail -n 50 "$dir/containerd.log" >&2
      exit 1
    fi
    if ((SECONDS >= deadline)); then
      log "containerd did not answer on $dir/containerd.sock within ${start_timeout}s; log:"
      tail -n 50 "$dir/containerd.log" >&2
      exit 1
    fi
    sleep 0.1 # poll interval, bounded by the deadline above
  done
  log "containerd $(ctr_ version 2>/dev/null | awk '/Version:/ {print $2; exit}') pid $pid on $dir/containerd.sock"
  import_images
}

# Kill and delete every task still running (pods the tests failed to remove), so no shim or
# container outlives containerd.
remove_leftover_tasks() {
  local ns task c
  for ns in $(ctr_ namespaces ls -q 2>/dev/null); do
    for task in $(ctr_ -n "$ns" tasks ls -q 2>/dev/null); do
      ctr_ -n "$ns" tasks kill -a -s SIGKILL "$task" >/dev/null 2>&1 || true
    done
    # The CRI plugin deletes exited tasks itself; delete whatever it has not, until none is left.
    local deadline=$((SECONDS + 10)) left
    while left="$(ctr_ -n "$ns" tasks ls -q 2>/dev/null)" && [[ -n "$left" ]]; do
      if ((SECONDS >= deadline)); then
        log "tasks still present in namespace $ns: $left"
        break
      fi
      for task in $left; do
        ctr_ -n "$ns" tasks rm -f "$task" >/dev/null 2>&1 || true
      done
      sleep 0.1 # poll interval, bounded by the deadline above
    done
    for c in $(ctr_ -n "$ns" containers ls -q 2>/dev/null); do
      ctr_ -n "$ns" containers rm "$c" >/dev/null 2>&1 || true
    done
  done
}

stop() {
  [[ -d "$dir" ]] || return 0
  dir="$(cd "$dir" && pwd)"
  local pid=""
  [[ -f "$dir/containerd.pid" ]] && pid="$(cat "$dir/containerd.pid")"
  if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
    remove_leftover_tasks
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 15))
    while kill -0 "$pid" 2>/dev/null; do
      if ((SECONDS >= deadline)); then
        log "containerd $pid ignored SIGTERM, killing"
        kill -KILL "$pid" 2>/dev/null || true
        break
      fi
      sleep 0.1
    done
  fi
  rm -f "$dir/containerd.pid"
  # Sandbox /dev/shm and similar mounts live under the state dir; unmount deepest first.
  local mnt
  awk -v d="$dir/" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo | sort -r | while read -r mnt; do
    umount -l "$mnt" 2>/dev/null || log "cannot unmount $mnt"
  done
}

with() {
  shift 2 # the command and PREFIX
  [[ $# -gt 0 ]] || usage
  dir="$(mktemp -d "/tmp/$dir.XXXXXX")"
  trap 'stop >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
  log "starting a private containerd in $dir"
  (start) 2>"$dir/start.log" || { cat "$dir/start.log" >&2; exit 1; }
  export RESIZELET_TEST_CRI_ENDPOINT="unix://$dir/containerd.sock"
  "$@"
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  with) with "$@" ;;
  *) usage ;;
esac
