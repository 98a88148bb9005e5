//! Which cgroup hierarchy holds the cpu and memory controllers: v1, v2, or hybrid (v1 cpu/memory
//! plus an unrelated cgroup2 mount), read from the mount table.

use std::path::{Path, PathBuf};

use crate::core::node::CgroupVersion;

use super::CgroupError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupLayout {
    /// Version of the hierarchy with the cpu and memory controllers.
    pub version: CgroupVersion,
    /// Mount point of the v1 cpu controller (v1 only), e.g. `/sys/fs/cgroup/cpu,cpuacct`.
    pub cpu_mount: Option<PathBuf>,
    /// Mount point of the v1 memory controller (v1 only).
    pub memory_mount: Option<PathBuf>,
    /// Mount point of a cgroup2 hierarchy, if any.
    pub unified_mount: Option<PathBuf>,
}

impl CgroupLayout {
    pub fn describe(&self) -> String {
        match (self.version, &self.unified_mount) {
            (CgroupVersion::V2, Some(u)) => format!("cgroup v2 (unified at {})", u.display()),
            (CgroupVersion::V2, None) => "cgroup v2".to_string(),
            (CgroupVersion::V1, Some(u)) => format!(
                "hybrid: cgroup v1 cpu/memory, cgroup2 at {} without cpu/memory",
                u.display()
            ),
            (CgroupVersion::V1, None) => "cgroup v1".to_string(),
        }
    }
}

/// Parses `/proc/self/mountinfo` text. `controllers_of_v2` tells which controllers a cgroup2
/// mount offers (its `cgroup.controllers`); only a cgroup2 mount with cpu and memory counts as v2
/// when no v1 mount has them.
pub fn parse_mountinfo(
    mountinfo: &str,
    controllers_of_v2: impl Fn(&Path) -> Vec<String>,
) -> Result<CgroupLayout, String> {
    let mut cpu = None;
    let mut memory = None;
    let mut unified = None;
    for line in mountinfo.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let pre: Vec<&str> = pre.split_whitespace().collect();
        let post: Vec<&str> = post.split_whitespace().collect();
        if pre.len() < 5 || post.is_empty() {
            continue;
        }
        let mount_point = PathBuf::from(pre[4]);
        match post[0] {
            "cgroup" => {
                let opts = post.get(2).copied().unwrap_or("");
                let opts: Vec<&str> = opts.split(',').collect();
                if opts.contains(&"cpu") {
                    cpu = Some(mount_point.clone());
                }
                if opts.contains(&"memory") {
                    memory = Some(mount_point);
                }
            }
            "cgroup2" => unified = Some(mount_point),
            _ => {}
        }
    }
    match (cpu, memory, unified) {
        (Some(cpu), Some(memory), unified) => Ok(CgroupLayout {
            version: CgroupVersion::V1,
            cpu_mount: Some(cpu),
            memory_mount: Some(memory),
            unified_mount: unified,
        }),
        (None, None, Some(u)) => {
            let controllers = controllers_of_v2(&u);
            if controllers.iter().any(|c| c == "cpu") && controllers.iter().any(|c| c == "memory") {
                Ok(CgroupLayout {
                    version: CgroupVersion::V2,
                    cpu_mount: None,
                    memory_mount: None,
                    unified_mount: Some(u),
                })
            } else {
                Err(format!(
                    "the cgroup2 hierarchy at {} offers no cpu and memory controllers ({})",
                    u.display(),
                    controllers.join(" ")
                ))
            }
        }
        (cpu, memory, _) => Err(format!(
            "no hierarchy with both cpu and memory controllers (cpu: {cpu:?}, memory: {memory:?})"
        )),
    }
}

/// Detects the layout of this host from `/proc/self/mountinfo`.
pub fn detect_host() -> Result<CgroupLayout, CgroupError> {
    let path = PathBuf::from("/proc/self/mountinfo");
    let text = std::fs::read_to_string(&path).map_err(|source| CgroupError::Read {
        path: path.clone(),
        source,
    })?;
    parse_mountinfo(&text, |mount| {
        std::fs::read_to_string(mount.join("cgroup.controllers"))
            .map(|s| s.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default()
    })
    .map_err(|reason| CgroupError::Detect { path, reason })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    const V2: &str = "\
30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";
    const V1_JOINED: &str = "\
25 24 0:22 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:9 - cgroup cgroup rw,cpu,cpuacct
26 24 0:23 / /sys/fs/cgroup/memory rw,nosuid shared:10 - cgroup cgroup rw,memory
";

    fn none(_: &Path) -> Vec<String> {
        Vec::new()
    }

    #[test]
    fn hybrid_is_v1() {
        let l = parse_mountinfo(HYBRID, none).unwrap();
        assert_eq!(l.version, CgroupVersion::V1);
        assert_eq!(l.cpu_mount, Some(PathBuf::from("/sys/fs/cgroup/cpu")));
        assert_eq!(l.memory_mount, Some(PathBuf::from("/sys/fs/cgroup/memory")));
        assert_eq!(
            l.unified_mount,
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        assert!(l.describe().starts_with("hybrid"), "{}", l.describe());
    }

    #[test]
    fn joined_v1_controllers() {
        let l = parse_mountinfo(V1_JOINED, none).unwrap();
        assert_eq!(
            l.cpu_mount,
            Some(PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"))
        );
        assert_eq!(l.describe(), "cgroup v1");
    }

    #[test]
    fn pure_v2_needs_cpu_and_memory_controllers() {
        let l =
            parse_mountinfo(V2, |_| vec!["cpuset".into(), "cpu".into(), "memory".into()]).unwrap();
        assert_eq!(l.version, CgroupVersion::V2);
        let err = parse_mountinfo(V2, |_| vec!["pids".into()]).unwrap_err();
        assert!(err.contains("no cpu and memory"), "{err}");
        assert!(parse_mountinfo("", none).is_err());
    }

    #[test]
    fn this_host_is_detected() {
        // The CI host is hybrid (v1 cpu/memory); a v2 host passes too, the point is detection works.
        let l = detect_host().expect("detect this host's cgroups");
        assert!(l.version == CgroupVersion::V1 || l.unified_mount.is_some());
    }
}
