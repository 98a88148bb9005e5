//! `resizelet check`: can in-place resize work on this host? Gathering the facts is IO (see
//! `main.rs`); judging them is the pure [`assess`].

use std::fmt;
use std::path::PathBuf;

use crate::config::LegacyDecision;
use crate::core::node::{CgroupDriver, CgroupVersion};
use crate::kubelet_config::NodeFacts;

/// What `check` found out about the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFacts {
    /// Hierarchy holding cpu and memory, or why it could not be detected.
    pub cgroup: Result<CgroupFacts, String>,
    /// The node facts (kubelet config under resizelet's settings), or why the kubelet's
    /// configuration file could not be used.
    pub node: Result<NodeFacts, String>,
    /// The `kubepods` cgroup where the node facts put it, and whether it exists.
    pub kubepods: Option<(PathBuf, bool)>,
    /// Runtime identity, or why the runtime could not be reached.
    pub runtime: Result<RuntimeFacts, String>,
    /// Whether `run` writes the legacy `status.resize` and why; `None`: `auto`, and no API server
    /// to ask.
    pub legacy: Option<LegacyDecision>,
    /// Deprecated flags used.
    pub deprecations: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupFacts {
    pub version: CgroupVersion,
    /// e.g. "hybrid (cgroup v1 cpu/memory, cgroup2 at /sys/fs/cgroup/unified)"
    pub description: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeFacts {
    pub endpoint: String,
    pub name: String,
    pub version: String,
    pub cri_version: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub lines: Vec<String>,
    /// Reasons why resize will not work; empty means supported.
    pub problems: Vec<String>,
    pub warnings: Vec<String>,
}

impl Report {
    pub fn supported(&self) -> bool {
        self.problems.is_empty()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for line in &self.lines {
            writeln!(f, "{line}")?;
        }
        for w in &self.warnings {
            writeln!(f, "warning: {w}")?;
        }
        if self.supported() {
            writeln!(f, "in-place resize: supported")
        } else {
            writeln!(f, "in-place resize: NOT supported")?;
            for p in &self.problems {
                writeln!(f, "  - {p}")?;
            }
            Ok(())
        }
    }
}

/// The first containerd release whose CRI reports `ContainerStatus.resources` and applies
/// `UpdateContainerResources` correctly (pitfall 5).
pub const MIN_CONTAINERD: (u64, u64, u64) = (1, 6, 9);

/// `"1.6.20~ds1"`, `"v1.7.0-rc.1"` → `(1, 6, 20)`, `(1, 7, 0)`.
pub fn parse_version(v: &str) -> Option<(u64, u64, u64)> {
    let v = v.trim().trim_start_matches('v');
    let mut parts = v.splitn(3, '.');
    let num = |s: Option<&str>| -> Option<u64> {
        let s = s?;
        let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    };
    let major = num(parts.next())?;
    let minor = num(parts.next())?;
    let patch = num(parts.next()).unwrap_or(0);
    Some((major, minor, patch))
}

pub fn assess(facts: &HostFacts) -> Report {
    let mut lines = Vec::new();
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    match &facts.cgroup {
        Ok(c) => lines.push(format!(
            "cgroups: {} (cpu/memory on cgroup {})",
            c.description,
            match c.version {
                CgroupVersion::V1 => "v1",
                CgroupVersion::V2 => "v2",
            }
        )),
        Err(e) => {
            lines.push("cgroups: unknown".to_string());
            problems.push(format!("cannot detect the cgroup layout: {e}"));
        }
    }
    let driver = facts.node.as_ref().ok().map(|n| n.cgroup_driver.value);
    match &facts.node {
        Ok(node) => {
            lines.push("node facts (value, and where it came from):".to_string());
            for l in crate::kubelet_config::describe(node) {
                lines.push(format!("  {l}"));
            }
            warnings.extend(node.warnings.iter().cloned());
        }
        Err(e) => {
            lines.push("node facts: unknown".to_string());
            problems.push(format!("cannot use the kubelet's configuration: {e}"));
        }
    }
    match &facts.kubepods {
        Some((path, true)) => lines.push(format!("kubepods cgroup: {}", path.display())),
        Some((path, false)) => {
            lines.push(format!("kubepods cgroup: {} (absent)", path.display()));
            warnings.push(format!(
                "no kubepods cgroup at {}: check cgroupDriver and cgroupRoot against the kubelet's (or the kubelet has not started)",
                path.display()
            ));
        }
        None => {}
    }
    match &facts.legacy {
        Some(d) => lines.push(format!(
            "legacy status.resize: {} ({})",
            if d.on { "written" } else { "not written" },
            d.reason
        )),
        None => lines.push(
            "legacy status.resize: auto, decided by `run` from the API server's version (give --kubeconfig to ask it now)"
                .to_string(),
        ),
    }
    warnings.extend(facts.deprecations.iter().cloned());
    if driver == Some(CgroupDriver::Systemd) {
        warnings.push(
            "systemd driver: pod cgroup values are written to the cgroup files only; systemd may restore the \
             unit's properties on daemon-reload (spec §11.3)"
                .to_string(),
        );
    }
    match &facts.runtime {
        Ok(r) => {
            lines.push(format!(
                "runtime: {} {} (CRI {}) at {}",
                r.name, r.version, r.cri_version, r.endpoint
            ));
            if r.cri_version != "v1" {
                problems.push(format!(
                    "runtime speaks CRI {}, resizelet needs CRI v1",
                    r.cri_version
                ));
            }
            if r.name == "containerd" {
                match parse_version(&r.version) {
                    Some(v) if v >= MIN_CONTAINERD => {}
                    Some(_) => problems.push(format!(
                        "containerd {} is older than 1.6.9: it neither reports ContainerStatus.resources nor \
                         applies UpdateContainerResources reliably; upgrade containerd",
                        r.version
                    )),
                    None => warnings.push(format!("cannot parse containerd version {:?}", r.version)),
                }
            } else {
                warnings.push(format!(
                    "runtime {} is not tested with resizelet (tested: containerd >= 1.6.9)",
                    r.name
                ));
            }
        }
        Err(e) => {
            lines.push("runtime: unreachable".to_string());
            problems.push(format!("cannot reach the container runtime: {e}"));
        }
    }
    Report {
        lines,
        problems,
        warnings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(version: &str) -> HostFacts {
        HostFacts {
            cgroup: Ok(CgroupFacts {
                version: CgroupVersion::V1,
                description: "hybrid".into(),
            }),
            node: Ok(crate::kubelet_config::resolve(
                None,
                &Default::default(),
                None,
            )),
            kubepods: None,
            legacy: None,
            deprecations: Vec::new(),
            runtime: Ok(RuntimeFacts {
                endpoint: "unix:///run/containerd/containerd.sock".into(),
                name: "containerd".into(),
                version: version.into(),
                cri_version: "v1".into(),
            }),
        }
    }

    #[test]
    fn versions_parse() {
        assert_eq!(parse_version("1.6.20~ds1"), Some((1, 6, 20)));
        assert_eq!(parse_version("v1.7.0-rc.1"), Some((1, 7, 0)));
        assert_eq!(parse_version("2.0"), Some((2, 0, 0)));
        assert_eq!(parse_version("garbage"), None);
    }

    #[test]
    fn supported_containerd() {
        let r = assess(&facts("1.6.20~ds1"));
        assert!(r.supported(), "{r}");
        assert!(r.to_string().contains("in-place resize: supported"));
    }

    #[test]
    fn old_containerd_is_refused_with_reason() {
        let r = assess(&facts("1.6.8"));
        assert!(!r.supported());
        assert!(r.problems[0].contains("older than 1.6.9"), "{r}");
    }

    #[test]
    fn unreachable_runtime_and_cgroups_are_problems() {
        let mut f = facts("1.7.0");
        f.runtime = Err("no socket at /nope".into());
        f.cgroup = Err("no cpu controller".into());
        let r = assess(&f);
        assert_eq!(r.problems.len(), 2, "{r}");
    }
}
