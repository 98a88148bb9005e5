//! A container's resources: the reduced values a resize compares (spec §7.1) and the
//! `LinuxResources` sent with `UpdateContainerResources` (spec §10), pure.

use super::conversions::{milli_cpu_to_quota, milli_cpu_to_shares};
use super::node::{CgroupVersion, NodeConfig, NodeSwapBehavior};
use super::quantity::Quantity;
use super::resources::{
    aggregate_container_requests, pod_level_requests_set, Container, PodSpec, QosClass,
    ResourceRequirements, CPU, MEMORY,
};
use super::runtime::LinuxResources;

/// A container's resources reduced to the four values a resize compares (spec §7.1).
/// 0 = not set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reduced {
    pub memory_limit: i64,
    pub memory_request: i64,
    pub cpu_limit: i64,
    pub cpu_request: i64,
}

impl Reduced {
    pub fn of(r: &ResourceRequirements) -> Self {
        let value =
            |l: &super::resources::ResourceList, n: &str| l.get(n).map_or(0, Quantity::value);
        let milli =
            |l: &super::resources::ResourceList, n: &str| l.get(n).map_or(0, Quantity::milli_value);
        Reduced {
            memory_limit: value(&r.limits, MEMORY),
            memory_request: value(&r.requests, MEMORY),
            cpu_limit: milli(&r.limits, CPU),
            cpu_request: milli(&r.requests, CPU),
        }
    }

    /// The actuated record of these values: cpu and memory only, explicit zeros kept (spec §6.1).
    pub fn to_requirements(self) -> ResourceRequirements {
        let mut r = ResourceRequirements::default();
        r.requests
            .insert(CPU.into(), Quantity::from_milli(self.cpu_request));
        r.requests
            .insert(MEMORY.into(), Quantity::from_bytes(self.memory_request));
        r.limits
            .insert(CPU.into(), Quantity::from_milli(self.cpu_limit));
        r.limits
            .insert(MEMORY.into(), Quantity::from_bytes(self.memory_limit));
        r
    }
}

/// `GetContainerOOMScoreAdjust` (spec §10, `kubernetes/kubernetes v1.36 pkg/kubelet/qos/policy.go`):
/// node-critical or Guaranteed −997, BestEffort 1000, Burstable `1000 − 1000·memRequest/capacity`
/// with the unrequested share of a pod-level memory request added to the request, a sidecar capped
/// at the score of the regular container with the smallest memory request, then clamped to
/// [3, 999].
pub fn oom_score_adj(pod: &PodSpec, container: &Container, machine_memory: i64) -> i64 {
    if pod.node_critical {
        return -997;
    }
    match pod.effective_qos() {
        QosClass::Guaranteed => return -997,
        QosClass::BestEffort => return 1000,
        QosClass::Burstable => {}
    }
    if machine_memory <= 0 {
        return 999;
    }
    let request = |c: &Container| c.resources.requests.get(MEMORY).map_or(0, Quantity::value);
    let score = |req: i64| 1000 - (1000 * i128::from(req) / i128::from(machine_memory)) as i64;
    let share = if pod_level_requests_set(pod) {
        remaining_pod_memory_request_per_container(pod)
    } else {
        0
    };
    let mut adj = score(request(container) + share);
    if container.sidecar && pod.init_containers.iter().any(|c| c.name == container.name) {
        if let Some(min_request) = pod.containers.iter().map(request).min() {
            adj = adj.min(score(min_request + share));
        }
    }
    if adj < 3 {
        3
    } else if adj == 1000 {
        999
    } else {
        adj
    }
}

/// `remainingPodMemReqPerContainer`: the pod-level memory request not requested by the containers,
/// divided among all regular and init containers.
fn remaining_pod_memory_request_per_container(pod: &PodSpec) -> i64 {
    let pod_request = pod
        .pod_resources
        .as_ref()
        .and_then(|r| r.requests.get(MEMORY))
        .map_or(0, Quantity::value);
    if pod_request == 0 {
        return 0;
    }
    let containers = (pod.containers.len() + pod.init_containers.len()) as i64;
    let aggregated = aggregate_container_requests(pod)
        .get(MEMORY)
        .map_or(0, Quantity::value);
    (pod_request - aggregated) / containers.max(1)
}

/// The container's swap behaviour (`GetContainerSwapBehavior`, spec §4.2): `LimitedSwap` only
/// with node `LimitedSwap`, a swap controller, cgroup v2, a non-critical Burstable pod and a
/// container that requests or limits memory with request ≠ limit.
pub fn container_swap_behavior(
    pod: &PodSpec,
    values: Reduced,
    node: &NodeConfig,
) -> NodeSwapBehavior {
    let limited = node.swap_behavior == NodeSwapBehavior::LimitedSwap
        && node.swap_available
        && node.cgroup_version == CgroupVersion::V2
        && !pod.critical
        && pod.effective_qos() == QosClass::Burstable
        && !(values.memory_request == 0 && values.memory_limit == 0)
        && values.memory_request != values.memory_limit;
    if limited {
        NodeSwapBehavior::LimitedSwap
    } else {
        NodeSwapBehavior::NoSwap
    }
}

/// `calcSwapForBurstablePods`: `request / capacity × swap` (float, truncated); `None` when the
/// capacity is unknown or the request exceeds it (the kubelet then configures no swap).
pub fn swap_for_burstable(memory_request: i64, machine_memory: i64, swap: i64) -> Option<i64> {
    if machine_memory <= 0 || memory_request > machine_memory {
        return None;
    }
    Some((memory_request as f64 / machine_memory as f64 * swap as f64) as i64)
}

/// Page size in bytes → CRI page size name (`2MB`, `1GB`, `64KB`).
fn page_size_name(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KB", "MB", "GB"];
    let mut v = bytes;
    let mut i = 0;
    while v >= 1024 && v.is_multiple_of(1024) && i < UNITS.len() - 1 {
        v /= 1024;
        i += 1;
    }
    format!("{v}{}", UNITS[i])
}

/// `hugepages-<size>` resource name for a page size in bytes (`hugepages-2Mi`).
fn hugepage_resource(bytes: u64) -> String {
    format!("hugepages-{}", Quantity::from_bytes(bytes as i64))
}

/// `LinuxContainerResources` for `UpdateContainerResources` (spec §10), from the container's
/// reduced values. `container` is the allocated container (for QoS, hugepages and sidecar rules).
pub fn container_linux_resources(
    pod: &PodSpec,
    container: &Container,
    values: Reduced,
    node: &NodeConfig,
) -> LinuxResources {
    let pod_limit = |name: &str| {
        pod.pod_resources
            .as_ref()
            .and_then(|r| r.limits.get(name))
            .map(|q| {
                if name == CPU {
                    q.milli_value()
                } else {
                    q.value()
                }
            })
            .unwrap_or(0)
    };
    let cpu_limit = if values.cpu_limit == 0 {
        pod_limit(CPU)
    } else {
        values.cpu_limit
    };
    let memory_limit = if values.memory_limit == 0 {
        pod_limit(MEMORY)
    } else {
        values.memory_limit
    };
    let mut r = LinuxResources {
        cpu_shares: milli_cpu_to_shares(values.cpu_request) as i64,
        memory_limit_in_bytes: memory_limit.max(0),
        oom_score_adj: oom_score_adj(pod, container, node.machine_memory_bytes),
        ..LinuxResources::default()
    };
    if node.cpu_cfs_quota {
        r.cpu_period = node.cpu_cfs_period_us as i64;
        r.cpu_quota = milli_cpu_to_quota(cpu_limit, node.cpu_cfs_period_us);
    }
    // Decision 3: send the container's own hugepage limits (0 where it has none), never zero them
    // behind its back.
    r.hugepage_limits = node
        .hugepage_sizes
        .iter()
        .map(|&size| {
            let limit = container
                .resources
                .limits
                .get(&hugepage_resource(size))
                .map_or(0, |q| q.value().max(0) as u64);
            (page_size_name(size), limit)
        })
        .collect();
    if node.cgroup_version == CgroupVersion::V2 && !node.single_process_oom_kill {
        r.unified.insert("memory.oom.group".into(), "1".into());
    }
    // `configureContainerSwapResources`: nothing without a swap controller; v1 can only say
    // "no swap" (memory+swap limit = memory limit); v2 writes the container's share of swap.
    if node.swap_available {
        let swap = match container_swap_behavior(pod, values, node) {
            NodeSwapBehavior::LimitedSwap => swap_for_burstable(
                values.memory_request,
                node.machine_memory_bytes,
                node.swap_capacity_bytes,
            ),
            NodeSwapBehavior::NoSwap => None,
        };
        match node.cgroup_version {
            CgroupVersion::V2 => {
                let max = swap.unwrap_or(0).to_string();
                r.unified.insert("memory.swap.max".into(), max);
            }
            CgroupVersion::V1 => r.memory_swap_limit_in_bytes = r.memory_limit_in_bytes,
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;

    fn node() -> NodeConfig {
        NodeConfig {
            machine_memory_bytes: 8 << 30,
            ..NodeConfig::default()
        }
    }

    #[test]
    fn container_values() {
        let p = pod(
            "b",
            vec![container("a", "cpu=100m,memory=1Gi", "cpu=200m,memory=2Gi")],
        );
        let c = &p.containers[0];
        let r = container_linux_resources(&p, c, Reduced::of(&c.resources), &node());
        assert_eq!(r.cpu_shares, 102);
        assert_eq!(r.cpu_quota, 20_000);
        assert_eq!(r.cpu_period, 100_000);
        assert_eq!(r.memory_limit_in_bytes, 2 << 30);
        assert_eq!(r.oom_score_adj, 1000 - 1000 / 8);
        assert!(r.unified.is_empty());
        // 0 request → 2 shares; tiny limit → 1 ms quota
        let tiny = Reduced {
            cpu_limit: 5,
            ..Reduced::default()
        };
        let r = container_linux_resources(&p, c, tiny, &node());
        assert_eq!(
            (r.cpu_shares, r.cpu_quota, r.memory_limit_in_bytes),
            (2, 1000, 0)
        );
        // v2: oom group
        let v2 = NodeConfig {
            cgroup_version: CgroupVersion::V2,
            ..node()
        };
        let r = container_linux_resources(&p, c, Reduced::of(&c.resources), &v2);
        assert_eq!(
            r.unified.get("memory.oom.group").map(String::as_str),
            Some("1")
        );
    }

    #[test]
    fn oom_score_adj_rules() {
        let g = pod(
            "g",
            vec![container("a", "cpu=1,memory=1Gi", "cpu=1,memory=1Gi")],
        );
        assert_eq!(oom_score_adj(&g, &g.containers[0], 8 << 30), -997);
        let be = pod("e", vec![container("a", "", "")]);
        assert_eq!(oom_score_adj(&be, &be.containers[0], 8 << 30), 1000);
        let big = pod("b", vec![container("a", "memory=8Gi", "")]);
        assert_eq!(oom_score_adj(&big, &big.containers[0], 8 << 30), 3);
        let small = pod("s", vec![container("a", "cpu=1", "")]);
        assert_eq!(oom_score_adj(&small, &small.containers[0], 8 << 30), 999);
        // Only system-node-critical pods get −997; system-cluster-critical is scored as its QoS.
        let mut crit = small.clone();
        crit.critical = true;
        assert_eq!(oom_score_adj(&crit, &crit.containers[0], 8 << 30), 999);
        crit.node_critical = true;
        assert_eq!(oom_score_adj(&crit, &crit.containers[0], 8 << 30), -997);
        // A sidecar is capped at the score of the regular container with the smallest request.
        let mut sc = pod(
            "sc",
            vec![
                container("big", "memory=4Gi", ""),
                container("small", "memory=1Gi", ""),
            ],
        );
        sc.init_containers = vec![sidecar("s", "memory=512Mi", "")];
        assert_eq!(oom_score_adj(&sc, &sc.init_containers[0], 8 << 30), 875);
        // Pod-level requests: the unrequested 4Gi is shared by the two containers.
        let mut pl = pod(
            "pl",
            vec![container("a", "memory=1Gi", ""), container("b", "", "")],
        );
        pl.pod_resources = Some(reqs("memory=5Gi", ""));
        assert_eq!(
            oom_score_adj(&pl, &pl.containers[0], 8 << 30),
            1000 - 1000 * 3 / 8
        );
        assert_eq!(oom_score_adj(&pl, &pl.containers[1], 8 << 30), 750);
    }

    #[test]
    fn hugepages_are_sent_as_the_container_has_them() {
        let p = pod(
            "h",
            vec![container("a", "cpu=1", "cpu=2,hugepages-2Mi=4Mi")],
        );
        let n = NodeConfig {
            hugepage_sizes: vec![2 << 20, 1 << 30],
            ..node()
        };
        let c = &p.containers[0];
        let r = container_linux_resources(&p, c, Reduced::of(&c.resources), &n);
        assert_eq!(
            r.hugepage_limits,
            vec![("2MB".to_string(), 4 << 20), ("1GB".to_string(), 0)]
        );
    }
}
