#!/usr/bin/env bash
# Runs a command inside a QEMU guest (TCG) that sees this host's root read-only (virtio-9p under a
# tmpfs overlay), so it has the host's containerd, runc, systemd, dbus and the test binaries, but
# its own kernel (Debian's linux-image, unpacked) and its own cgroups:
#
#   scripts/vm-test.sh [--mode v2|systemd] [--timeout SECS] [--mem MIB] [--cpus N] -- COMMAND...
#   scripts/vm-test.sh --suite v2|systemd [--timeout SECS]
#
#   --suite         builds the suite's test binaries here (`cargo test --no-run`), then runs them in
#                   the guest of that mode against a private containerd (vm/run-tests.sh):
#                   v2: tests/vm_cgroup_v2.rs (cgroupfs driver); systemd: tests/vm_systemd.rs
#                   (containerd with SystemdCgroup = true, pod slices as transient units)
#
#   --mode v2       (default) pure cgroup v2 (nsdelegate), no systemd: vm/guest-v2.sh is PID 1
#   --mode systemd  systemd as PID 1 with D-Bus (vm/units/resizelet-vm.target runs the command)
#
# COMMAND runs in the current directory with the current environment's RESIZELET_* variables.
# Exit status = COMMAND's inside the guest; 124 if the guest did not finish within --timeout
# (default 900 s; its console log is printed), 125 for a harness failure. The kernel package is
# downloaded once (`apt-get download`) into $RESIZELET_VM_CACHE (default target/vm). Needs root
# (9p passthrough of root-owned files), qemu-system-x86 and busybox-static.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
log() { echo "vm-test.sh: $*" >&2; }
die() { log "$*"; exit 125; }

mode=v2 timeout=900 mem=3072 cpus=2 suite=""
while (($#)); do
  case "$1" in
    --suite) suite="$2"; mode="$2"; shift 2 ;;
    --mode) mode="$2"; shift 2 ;;
    --timeout) timeout="$2"; shift 2 ;;
    --mem) mem="$2"; shift 2 ;;
    --cpus) cpus="$2"; shift 2 ;;
    --) shift; break ;;
    *) die "unknown argument $1 (usage: $0 [--mode v2|systemd] [--timeout SECS] -- COMMAND...)" ;;
  esac
done
if [[ -n $suite ]]; then
  case "$suite" in
    v2) tests=(vm_cgroup_v2); export RESIZELET_VM_GUEST=v2 ;;
    systemd)
      tests=(vm_systemd)
      export RESIZELET_VM_GUEST=systemd CONTAINERD_SYSTEMD_CGROUP=true RESIZELET_TEST_CGROUP_DRIVER=systemd ;;
    *) die "--suite must be v2 or systemd, not $suite" ;;
  esac
  cargo_flags=(--no-run --message-format=json)
  [[ ${CI:-} == true ]] && cargo_flags+=(--locked)
  for t in "${tests[@]}"; do cargo_flags+=(--test "$t"); done
  log "building ${tests[*]} (cargo test ${cargo_flags[*]})"
  mapfile -t bins < <(cd "$repo" && cargo test "${cargo_flags[@]}" |
    python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["test"]:
        print(m["executable"])')
  ((${#bins[@]} == ${#tests[@]})) || die "cargo test --no-run gave ${#bins[@]} test binaries for ${#tests[@]} tests"
  cd "$repo"
  set -- vm/run-tests.sh "${bins[@]}"
fi
(($# > 0)) || die "no command given (usage: $0 [--mode v2|systemd] [--timeout SECS] -- COMMAND...)"
[[ $mode == v2 || $mode == systemd ]] || die "--mode must be v2 or systemd, not $mode"
[[ $EUID -eq 0 ]] || die "must run as root (the guest's root is the host's, shared with passthrough ownership)"
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 not found (apt-get install qemu-system-x86)"
busybox="$(command -v busybox || true)"
[[ -n $busybox ]] || die "busybox not found (apt-get install busybox-static)"

# The kernel: the image linux-image-amd64 depends on, unpacked once.
cache="${RESIZELET_VM_CACHE:-$repo/target/vm}"
mkdir -p "$cache"
kernel_pkg="$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')"
[[ -n $kernel_pkg ]] || die "cannot find the kernel package linux-image-amd64 depends on (apt-get update?)"
kroot="$cache/$kernel_pkg"
if [[ ! -d $kroot/boot ]]; then
  log "downloading $kernel_pkg"
  (cd "$cache" && rm -f "$kernel_pkg"_*.deb && apt-get download "$kernel_pkg" >&2) || die "apt-get download $kernel_pkg failed"
  rm -rf "$kroot.tmp"
  dpkg -x "$cache/$kernel_pkg"_*.deb "$kroot.tmp" || die "dpkg -x failed"
  rm -f "$cache/$kernel_pkg"_*.deb
  mv "$kroot.tmp" "$kroot"
fi
vmlinuz="$(ls "$kroot"/boot/vmlinuz-* | head -n1)"
moddir="$(ls -d "$kroot"/lib/modules/*/kernel | head -n1)"

job="$(mktemp -d /tmp/resizelet-vm.XXXXXX)"
qemu_pid=""
cleanup() {
  local rc=$?
  [[ -n $qemu_pid ]] && kill -KILL "$qemu_pid" 2>/dev/null
  rm -rf "$job"
  exit "$rc"
}
trap cleanup EXIT

# The initramfs: static busybox, the modules for virtio-9p and overlayfs, vm/initramfs-init.
ird="$job/initramfs"
mkdir -p "$ird/bin" "$ird/modules"
cp "$busybox" "$ird/bin/busybox"
cp "$repo/vm/initramfs-init" "$ird/init"
for m in drivers/virtio/virtio_ring drivers/virtio/virtio drivers/virtio/virtio_pci_modern_dev \
         drivers/virtio/virtio_pci_legacy_dev drivers/virtio/virtio_pci fs/netfs/netfs \
         fs/fscache/fscache net/9p/9pnet net/9p/9pnet_virtio fs/9p/9p fs/overlayfs/overlay; do
  cp "$moddir/$m.ko" "$ird/modules/"
done
(cd "$ird" && find . | "$busybox" cpio -o -H newc 2>/dev/null | gzip -1) >"$job/initramfs.gz"
rm -rf "$ird"

# The job share: the guest's PID 1 script, the units, the command and its environment.
cp "$repo/vm/guest-v2.sh" "$repo/vm/guest-systemd.sh" "$job/"
# The guests mount a tmpfs on /tmp: a checkout under /tmp (CI's clones may be) would vanish, so the
# initramfs binds the checkout aside and the guest binds it back after its own mounts.
echo "$repo" >"$job/repo"
mkdir -p "$job/units"
cp "$repo"/vm/units/* "$job/units/" 2>/dev/null || true
{
  echo "#!/bin/bash"
  export -p | grep -E '^declare -x (RESIZELET_|RUST_|CONTAINERD_)' || true
  printf 'cd %q || exit 125\n' "$PWD"
  printf '%q ' "$@"
  echo
} >"$job/job.sh"

log "booting $kernel_pkg ($mode, ${cpus} vCPUs, ${mem} MiB, TCG, timeout ${timeout}s)"
started=$SECONDS
qemu-system-x86_64 -accel tcg -machine q35 -cpu max -smp "$cpus" -m "$mem" -nodefaults -no-reboot \
  -display none -monitor none -serial "file:$job/console.log" \
  -kernel "$vmlinuz" -initrd "$job/initramfs.gz" \
  -append "console=ttyS0 panic=-1 quiet loglevel=4 resizelet.mode=$mode systemd.show_status=0 systemd.unified_cgroup_hierarchy=1 systemd.log_target=console systemd.log_level=warning" \
  -virtfs "local,path=/,mount_tag=hostroot,security_model=passthrough,readonly=on,multidevs=remap,id=hostroot" \
  -virtfs "local,path=$job,mount_tag=vmjob,security_model=passthrough,id=vmjob" &
qemu_pid=$!
# The command's output as the guest writes it (the share is the job directory).
: >"$job/output.log"
tail -n +1 -F --pid="$qemu_pid" "$job/output.log" 2>/dev/null &
deadline=$((SECONDS + timeout))
while kill -0 "$qemu_pid" 2>/dev/null; do
  if ((SECONDS >= deadline)); then
    log "the guest did not finish within ${timeout}s; killing it. Console log:"
    kill -KILL "$qemu_pid" 2>/dev/null || true
    wait "$qemu_pid" 2>/dev/null || true
    qemu_pid=""
    cat "$job/console.log" >&2 || true
    exit 124
  fi
  sleep 1 # poll interval, bounded by the deadline above
done
wait "$qemu_pid" || log "qemu exit status $?"
qemu_pid=""
wait # the output tail ends with qemu
if [[ ! -f $job/rc ]]; then
  log "the guest powered off without an exit status after $((SECONDS - started))s. Console log:"
  cat "$job/console.log" >&2 || true
  exit 125
fi
rc="$(cat "$job/rc")"
log "guest ($mode) finished in $((SECONDS - started))s with exit status $rc"
[[ $rc =~ ^[0-9]+$ ]] || die "unreadable exit status $rc"
exit "$rc"
