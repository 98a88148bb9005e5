//! The node facts: resizelet's explicit settings layered over the kubelet's file (or the
//! kubelet's defaults), each with where it came from; the node allocatable they leave.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::{
    cgroup_root_parts, format_go_duration, FromFile, KubeletConfig, ResizeGate, Threshold,
    DEFAULT_CFS_PERIOD,
};
use crate::config::{DriverName, SwapBehaviorName};
use crate::core::node::{CgroupDriver, CgroupVersion, NodeSwapBehavior};
use crate::core::quantity::Quantity;
use crate::core::resources::ResourceList;

/// Where a node fact came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// resizelet's own setting (flag, environment or config file).
    Setting(&'static str),
    /// The kubelet's configuration file sets it.
    KubeletFile(PathBuf),
    /// Absent from the kubelet's file: the kubelet's default.
    KubeletDefault(PathBuf),
    /// No kubelet configuration: resizelet's default (the kubelet's default too).
    Default,
    /// Detected on this host.
    Detected,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Setting(key) => write!(f, "resizelet setting {key}"),
            Source::KubeletFile(p) => write!(f, "kubelet config {}", p.display()),
            Source::KubeletDefault(p) => {
                write!(f, "kubelet default, absent from {}", p.display())
            }
            Source::Default => write!(f, "default, no kubelet config"),
            Source::Detected => write!(f, "detected on this host"),
        }
    }
}

/// A node fact and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fact<T> {
    pub value: T,
    pub source: Source,
}

pub use crate::config::Explicit;

/// Every node fact resizelet uses, with its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeFacts {
    pub cgroup_driver: Fact<CgroupDriver>,
    /// The kubelet's `cgroupRoot` (parent of `kubepods`).
    pub cgroup_root: Fact<String>,
    pub cgroups_per_qos: Fact<bool>,
    pub cpu_cfs_quota: Fact<bool>,
    pub cpu_cfs_quota_period: Fact<Duration>,
    pub swap_behavior: Fact<NodeSwapBehavior>,
    pub fail_swap_on: Fact<bool>,
    pub system_reserved: Fact<ResourceList>,
    pub kube_reserved: Fact<ResourceList>,
    /// `evictionHard` memory.available (`None`: no threshold, or no kubelet config).
    pub eviction_hard_memory: Fact<Option<Threshold>>,
    pub single_process_oom_kill: Fact<bool>,
    /// The kubelet's explicit `InPlacePodVerticalScaling` gate (`None`: its version's default).
    pub in_place_resize_gate: Fact<Option<bool>>,
    /// The same for the stand-down decision.
    pub resize_gate: ResizeGate,
    /// A setting that contradicts the kubelet's file (the setting wins).
    pub warnings: Vec<String>,
}

impl NodeFacts {
    /// `cgroupRoot`'s parts for pod cgroup names.
    pub fn cgroup_root_parts(&self) -> Vec<String> {
        cgroup_root_parts(&self.cgroup_root.value).unwrap_or_default()
    }
}

impl<T> Fact<T> {
    fn map<U>(self, f: impl FnOnce(T) -> U) -> Fact<U> {
        Fact {
            value: f(self.value),
            source: self.source,
        }
    }
}

/// resizelet's setting `key` (if set) over the kubelet's `kubelet_field`: a value that differs
/// from the kubelet's file is a warning.
fn overlay<T: PartialEq + fmt::Display>(
    warnings: &mut Vec<String>,
    (key, kubelet_field): (&'static str, &'static str),
    from: Fact<T>,
    mine: Option<T>,
) -> Fact<T> {
    let Some(v) = mine else { return from };
    if matches!(
        from.source,
        Source::KubeletFile(_) | Source::KubeletDefault(_)
    ) && v != from.value
    {
        let v = v.to_string();
        warnings.push(format!(
            "{key} = {v:?} contradicts the kubelet's {kubelet_field} {:?} ({}); using {v:?}",
            from.value.to_string(),
            from.source
        ));
    }
    Fact {
        value: v,
        source: Source::Setting(key),
    }
}

/// Layers resizelet's explicit settings over the kubelet's file (or the defaults when there is
/// none). A setting that differs from what the file sets is a warning; the setting wins.
/// `cgroup_version` decides the `singleProcessOOMKill` default as the kubelet does.
pub fn resolve(
    kubelet: Option<&KubeletConfig>,
    explicit: &Explicit,
    cgroup_version: Option<CgroupVersion>,
) -> NodeFacts {
    let mut warnings = Vec::new();
    fn from_kubelet<T: Clone>(
        k: Option<&KubeletConfig>,
        f: impl Fn(&KubeletConfig) -> &FromFile<T>,
        default: T,
    ) -> Fact<T> {
        match k {
            Some(k) => {
                let v = f(k);
                Fact {
                    value: v.value.clone(),
                    source: k.source(v.set),
                }
            }
            None => Fact {
                value: default,
                source: Source::Default,
            },
        }
    }
    let driver = overlay(
        &mut warnings,
        ("cgroup-driver", "cgroupDriver"),
        from_kubelet(kubelet, |k| &k.cgroup_driver, CgroupDriver::Cgroupfs).map(DriverName::from),
        explicit.cgroup_driver.map(DriverName::from),
    );
    let cgroup_root = overlay(
        &mut warnings,
        ("kubelet-cgroup-root", "cgroupRoot"),
        from_kubelet(kubelet, |k| &k.cgroup_root, "/".to_string()),
        explicit.kubelet_cgroup_root.clone(),
    );
    let swap = overlay(
        &mut warnings,
        ("swap-behavior", "memorySwap.swapBehavior"),
        from_kubelet(kubelet, |k| &k.swap_behavior, NodeSwapBehavior::NoSwap)
            .map(SwapBehaviorName::from),
        explicit.swap_behavior.map(SwapBehaviorName::from),
    );
    let single_process_oom_kill = match (cgroup_version, kubelet) {
        (Some(CgroupVersion::V1), _) => Fact {
            value: true,
            source: Source::Detected,
        },
        (_, Some(k)) => match k.single_process_oom_kill {
            Some(v) => Fact {
                value: v,
                source: Source::KubeletFile(k.path.clone()),
            },
            None => Fact {
                value: false,
                source: Source::KubeletDefault(k.path.clone()),
            },
        },
        (_, None) => Fact {
            value: false,
            source: Source::Default,
        },
    };
    let gate = match kubelet {
        Some(k) => Fact {
            value: k.in_place_resize_gate(),
            source: k.source(k.in_place_resize_gate().is_some()),
        },
        None => Fact {
            value: None,
            source: Source::Default,
        },
    };
    NodeFacts {
        cgroup_driver: driver.map(CgroupDriver::from),
        cgroup_root,
        cgroups_per_qos: from_kubelet(kubelet, |k| &k.cgroups_per_qos, true),
        cpu_cfs_quota: from_kubelet(kubelet, |k| &k.cpu_cfs_quota, true),
        cpu_cfs_quota_period: from_kubelet(
            kubelet,
            |k| &k.cpu_cfs_quota_period,
            DEFAULT_CFS_PERIOD,
        ),
        swap_behavior: swap.map(NodeSwapBehavior::from),
        fail_swap_on: from_kubelet(kubelet, |k| &k.fail_swap_on, true),
        system_reserved: from_kubelet(kubelet, |k| &k.system_reserved, ResourceList::new()),
        kube_reserved: from_kubelet(kubelet, |k| &k.kube_reserved, ResourceList::new()),
        eviction_hard_memory: from_kubelet(kubelet, |k| &k.eviction_hard_memory, None),
        single_process_oom_kill,
        in_place_resize_gate: gate,
        resize_gate: ResizeGate::of(kubelet),
        warnings,
    }
}

/// `cpu=500m,memory=1Gi`, or `none`.
pub fn format_list(l: &ResourceList) -> String {
    if l.is_empty() {
        return "none".into();
    }
    l.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The kubelet's node allocatable from `capacity`: capacity − systemReserved − kubeReserved −
/// the hard eviction threshold (memory), at least zero (`GetNodeAllocatableReservation` in
/// kubernetes/kubernetes `pkg/kubelet/cm/node_container_manager_linux.go`).
pub fn allocatable(capacity: &ResourceList, facts: &NodeFacts) -> ResourceList {
    let milli = |l: &ResourceList, k: &str| l.get(k).map_or(0, Quantity::milli_value);
    capacity
        .iter()
        .map(|(k, cap)| {
            let mut reserved =
                milli(&facts.system_reserved.value, k) + milli(&facts.kube_reserved.value, k);
            if k == crate::core::resources::MEMORY {
                if let Some(t) = facts.eviction_hard_memory.value {
                    reserved += t.bytes_of(cap.value()).saturating_mul(1000);
                }
            }
            let left = (cap.milli_value() - reserved).max(0);
            let q = if k == crate::core::resources::CPU {
                Quantity::from_milli(left)
            } else if k == crate::core::resources::MEMORY {
                Quantity::from_bytes(left / 1000)
            } else {
                Quantity::from_milli(left)
            };
            (k.clone(), q)
        })
        .collect()
}

/// One `name: value (source)` line per fact (`resizelet check`, the start-up log).
pub fn describe(f: &NodeFacts) -> Vec<String> {
    fn line<T>(name: &str, fact: &Fact<T>, show: impl FnOnce(&T) -> String) -> String {
        format!("{name}: {} ({})", show(&fact.value), fact.source)
    }
    let gate = |g: &Option<bool>| match g {
        Some(v) => v.to_string(),
        None => "unset (the kubelet version's default: off before 1.33, on from 1.33)".into(),
    };
    vec![
        line("cgroupDriver", &f.cgroup_driver, |d| {
            DriverName::from(*d).to_string()
        }),
        line("cgroupRoot", &f.cgroup_root, String::clone),
        line("cgroupsPerQOS", &f.cgroups_per_qos, bool::to_string),
        line("cpuCFSQuota", &f.cpu_cfs_quota, bool::to_string),
        line("cpuCFSQuotaPeriod", &f.cpu_cfs_quota_period, |d| {
            format_go_duration(*d)
        }),
        line("memorySwap.swapBehavior", &f.swap_behavior, |b| {
            SwapBehaviorName::from(*b).to_string()
        }),
        line("failSwapOn", &f.fail_swap_on, bool::to_string),
        line("systemReserved", &f.system_reserved, format_list),
        line("kubeReserved", &f.kube_reserved, format_list),
        line(
            "evictionHard memory.available",
            &f.eviction_hard_memory,
            |t| t.map_or("none".into(), |t| t.to_string()),
        ),
        line(
            "singleProcessOOMKill",
            &f.single_process_oom_kill,
            bool::to_string,
        ),
        line(
            "featureGates.InPlacePodVerticalScaling",
            &f.in_place_resize_gate,
            gate,
        ),
    ]
}
