//! Pod cgroup values (spec §11.2): what the allocated pod's cgroup should hold, pure.

use serde::{Deserialize, Serialize};

use super::conversions::{milli_cpu_to_quota, milli_cpu_to_shares, systemd_round_quota};
use super::node::{CgroupDriver, NodeConfig};
use super::quantity::Quantity;
use super::resources::{limits_declared, pod_limits, pod_requests, PodSpec, QosClass, CPU, MEMORY};

/// Pod cgroup values (also the current readback). `None` = not set / not read.
/// `cpu_quota` and `memory_limit` use −1 for "max" (unlimited), like the kubelet's readback.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodCgroupValues {
    pub cpu_shares: Option<u64>,
    pub cpu_quota: Option<i64>,
    pub cpu_period: Option<u64>,
    pub memory_limit: Option<i64>,
}

/// Pod cgroup values of the allocated pod (spec §11.2). `None` fields are left as they are.
pub fn pod_cgroup_values(pod: &PodSpec, node: &NodeConfig) -> PodCgroupValues {
    let requests = pod_requests(pod);
    let limits = pod_limits(pod);
    let declared = limits_declared(pod);
    let shares = milli_cpu_to_shares(requests.get(CPU).map_or(0, Quantity::milli_value));
    let period = node.cpu_cfs_period_us;
    let mut quota = milli_cpu_to_quota(limits.get(CPU).map_or(0, Quantity::milli_value), period);
    if !node.cpu_cfs_quota {
        quota = -1;
    } else if node.cgroup_driver == CgroupDriver::Systemd {
        quota = systemd_round_quota(quota, period);
    }
    let memory = limits.get(MEMORY).map_or(0, Quantity::value);
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
    use crate::core::resources::testing::*;

    fn node() -> NodeConfig {
        NodeConfig {
            machine_memory_bytes: 8 << 30,
            ..NodeConfig::default()
        }
    }

    #[test]
    fn guaranteed_pod_values() {
        let p = pod(
            "g",
            vec![
                container("a", "cpu=250m,memory=32Mi", "cpu=250m,memory=32Mi"),
                container("b", "cpu=250m,memory=64Mi", "cpu=250m,memory=64Mi"),
            ],
        );
        assert_eq!(
            pod_cgroup_values(&p, &node()),
            PodCgroupValues {
                cpu_shares: Some(512),
                cpu_quota: Some(50_000),
                cpu_period: Some(100_000),
                memory_limit: Some(96 << 20),
            }
        );
    }

    #[test]
    fn burstable_pod_values_follow_declared_limits() {
        let p = pod(
            "b",
            vec![
                container("a", "cpu=100m,memory=64Mi", "cpu=200m"),
                container("b", "cpu=25m", "cpu=25m,memory=1Gi"),
            ],
        );
        let v = pod_cgroup_values(&p, &node());
        assert_eq!(v.cpu_shares, Some(128)); // 125m
        assert_eq!(v.cpu_quota, Some(22_500));
        assert_eq!(v.memory_limit, None); // a has no memory limit
        let systemd = NodeConfig {
            cgroup_driver: CgroupDriver::Systemd,
            ..node()
        };
        assert_eq!(pod_cgroup_values(&p, &systemd).cpu_quota, Some(23_000));
        let no_cfs = NodeConfig {
            cpu_cfs_quota: false,
            ..node()
        };
        assert_eq!(pod_cgroup_values(&p, &no_cfs).cpu_quota, Some(-1));
        let be = pod("e", vec![container("a", "", "")]);
        assert_eq!(
            pod_cgroup_values(&be, &node()),
            PodCgroupValues {
                cpu_shares: Some(2),
                ..Default::default()
            }
        );
    }
}
