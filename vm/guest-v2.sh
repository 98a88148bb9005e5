#!/bin/bash
# PID 1 of the cgroup v2 guest (scripts/vm-test.sh --mode v2): a plain node without systemd.
# Mounts the API filesystems and cgroup2 (nsdelegate, as systemd mounts it on a v2 node), enables
# the controllers the kubelet needs in the root's subtree_control, runs /vmjob/job.sh and leaves its
# exit status in /vmjob/rc. The host reads rc and output.log from the share after power-off.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
# The checkout, bound aside by the initramfs (a tmpfs on /tmp would hide one under /tmp).
repo="$(cat /vmjob/repo 2>/dev/null)"
if [[ -n $repo ]] && mountpoint -q /vmrepo && [[ ! -e $repo/Cargo.toml ]]; then
  mkdir -p "$repo" && mount --bind /vmrepo "$repo"
fi
ip link set lo up 2>/dev/null || busybox ip link set lo up
hostname resizelet-vm
controllers="$(cat /sys/fs/cgroup/cgroup.controllers)"
for c in cpu cpuset memory pids io; do
  [[ " $controllers " == *" $c "* ]] && echo "+$c" >/sys/fs/cgroup/cgroup.subtree_control
done
# The job's own cgroup (a leaf; the root keeps only this init): containerd and the tests live there.
mkdir /sys/fs/cgroup/vmjob
rc=0
(echo $BASHPID >/sys/fs/cgroup/vmjob/cgroup.procs; echo "guest-v2: $(uname -r), $(nproc) cpus, cgroup2 controllers: $(cat /sys/fs/cgroup/cgroup.subtree_control), up $(cut -d' ' -f1 /proc/uptime)s"; bash /vmjob/job.sh; echo $? >/vmjob/rc) </dev/null 2>&1 |
  tee /vmjob/output.log >/dev/console
rc="$(cat /vmjob/rc 2>/dev/null || echo 255)"
echo "guest-v2: job exit status $rc" >/dev/console
sync
busybox poweroff -f
