#!/bin/bash
# The systemd guest's job (vm/units/resizelet-vm.service, systemd as PID 1): /tmp on tmpfs, then
# /vmjob/job.sh with its output in /vmjob/output.log (and on the console), its exit status in
# /vmjob/rc, then an immediate power-off.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mountpoint -q /tmp || mount -t tmpfs tmpfs /tmp
# The checkout, bound aside by the initramfs (a tmpfs on /tmp would hide one under /tmp).
repo="$(cat /vmjob/repo 2>/dev/null)"
if [[ -n $repo ]] && mountpoint -q /vmrepo && [[ ! -e $repo/Cargo.toml ]]; then
  mkdir -p "$repo" && mount --bind /vmrepo "$repo"
fi
ip link set lo up 2>/dev/null || true
(echo "guest-systemd: $(uname -r), $(nproc) cpus, systemd $(systemctl --version | awk 'NR==1 {print $2}'), $(stat -fc %T /sys/fs/cgroup), up $(cut -d' ' -f1 /proc/uptime)s"; bash /vmjob/job.sh; echo $? >/vmjob/rc) </dev/null 2>&1 | tee /vmjob/output.log >/dev/ttyS0
echo "guest-systemd: job exit status $(cat /vmjob/rc 2>/dev/null)" >/dev/ttyS0
sync
systemctl poweroff --force --force
