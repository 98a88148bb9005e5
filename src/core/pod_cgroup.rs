//! Pod cgroup values (spec §11.2): what the allocated pod's cgroup should hold, pure.

use serde::{Deserialize, Serialize};

use super::conversions::{milli_cpu_to_quota, milli_cpu_to_shares, systemd_round_quota};
use super::node::{CgroupDriver, NodeConfig};
use super::quantity::Quantity;
use super::resources::{limits_declared, pod_limits, pod_requests, PodSpec, QosClass, CPU, MEMORY};

/// A cgroup limit: a number, or `max` (unlimited). Ordered with `Max` above every value, so
/// going from unlimited to any limit is a decrease (a checked shrink, spec §7.3), on v2 as on v1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Limit {
    Value(i64),
    Max,
}

/// The largest v1 `memory.limit_in_bytes` (`PAGE_COUNTER_MAX` pages, 9223372036854771712 with
/// 4 KiB pages): what an unlimited v1 memory cgroup reads back.
const V1_MEMORY_UNLIMITED_FROM: i64 = 0x7FFF_FFFF_FFFF_0000;

impl Limit {
    /// A kernel value: negative (v1 `cfs_quota_us` −1) is `Max`.
    pub fn from_quota(v: i64) -> Limit {
        if v < 0 {
            Limit::Max
        } else {
            Limit::Value(v)
        }
    }

    /// A memory limit read back: negative, or v1's page-counter maximum, is `Max`.
    pub fn from_memory(v: i64) -> Limit {
        if !(0..V1_MEMORY_UNLIMITED_FROM).contains(&v) {
            Limit::Max
        } else {
            Limit::Value(v)
        }
    }

    /// The value, `None` for `Max`.
    pub fn value(self) -> Option<i64> {
        match self {
            Limit::Value(v) => Some(v),
            Limit::Max => None,
        }
    }

    /// The number written to a v1 file (`-1` for `Max`).
    pub fn v1_text(self) -> String {
        match self {
            Limit::Value(v) => v.to_string(),
            Limit::Max => "-1".to_string(),
        }
    }
}

/// As written to a v2 file: the number, or `max`.
impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Limit::Value(v) => write!(f, "{v}"),
            Limit::Max => f.write_str("max"),
        }
    }
}

/// Pod cgroup values (also the current readback). `None` = not set / not read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodCgroupValues {
    pub cpu_shares: Option<u64>,
    pub cpu_quota: Option<Limit>,
    pub cpu_period: Option<u64>,
    pub memory_limit: Option<Limit>,
}

/// Pod cgroup values of the allocated pod (spec §11.2). `None` fields are left as they are.
pub fn pod_cgroup_values(pod: &PodSpec, node: &NodeConfig) -> PodCgroupValues {
    let requests = pod_requests(pod);
    let limits = pod_limits(pod);
    let declared = limits_declared(pod);
    let shares = milli_cpu_to_shares(requests.get(CPU).map_or(0, Quantity::milli_value));
    let period = node.cpu_cfs_period_us;
    let mut quota = milli_cpu_to_quota(limits.get(CPU).map_or(0, Quantity::milli_value), period);
    if node.cpu_cfs_quota && node.cgroup_driver == CgroupDriver::Systemd {
        quota = systemd_round_quota(quota, period);
    }
    let quota = if node.cpu_cfs_quota {
        Limit::from_quota(quota)
    } else {
        Limit::Max
    };
    let memory = Limit::Value(limits.get(MEMORY).map_or(0, Quantity::value));
    match pod.effective_qos() {
        QosClass::Guaranteed => PodCgroupValues {
            cpu_shares: Some(shares),
            cpu_quota: Some(quota),
            cpu_period: Some(period),
            memory_limit: Some(memory),
        },
        QosClass::Burstable => PodCgroupValues {
            cpu_shares: Some(shares),
            cpu_quota: declared.cpu.then_some(quota),
            cpu_period: declared.cpu.then_some(period),
            memory_limit: declared.memory.then_some(memory),
        },
        QosClass::BestEffort => PodCgroupValues {
            cpu_shares: Some(2),
            ..PodCgroupValues::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;

    #[test]
    fn pod_values_by_qos_class_and_node() {
        // a has no memory limit, so the pod has none; cpu limit 200m + 25m, request 125m
        let burstable = pod(
            "b",
            vec![
                container("a", "cpu=100m,memory=64Mi", "cpu=200m"),
                container("b", "cpu=25m", "cpu=25m,memory=1Gi"),
            ],
        );
        let systemd = NodeConfig {
            cgroup_driver: CgroupDriver::Systemd,
            ..node("")
        };
        let no_cfs = NodeConfig {
            cpu_cfs_quota: false,
            ..node("")
        };
        let cpu = |shares, quota| PodCgroupValues {
            cpu_shares: Some(shares),
            cpu_quota: Some(quota),
            cpu_period: Some(100_000),
            memory_limit: None,
        };
        for (what, p, n, want) in [
            (
                "guaranteed",
                pod(
                    "g",
                    vec![
                        container("a", "cpu=250m,memory=32Mi", "cpu=250m,memory=32Mi"),
                        container("b", "cpu=250m,memory=64Mi", "cpu=250m,memory=64Mi"),
                    ],
                ),
                node(""),
                PodCgroupValues {
                    memory_limit: Some(Limit::Value(96 << 20)),
                    ..cpu(512, Limit::Value(50_000))
                },
            ),
            (
                "burstable",
                burstable.clone(),
                node(""),
                cpu(128, Limit::Value(22_500)),
            ),
            (
                "burstable, systemd rounds the quota",
                burstable.clone(),
                systemd,
                cpu(128, Limit::Value(23_000)),
            ),
            (
                "burstable, no CFS quota",
                burstable,
                no_cfs,
                cpu(128, Limit::Max),
            ),
            (
                "best effort",
                pod("e", vec![container("a", "", "")]),
                node(""),
                PodCgroupValues {
                    cpu_shares: Some(2),
                    ..Default::default()
                },
            ),
        ] {
            assert_eq!(pod_cgroup_values(&p, &n), want, "{what}");
        }
    }
}
