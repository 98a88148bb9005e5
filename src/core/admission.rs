//! Admission of a resize (spec §4 and decision 1): one atomic decision per pod, pure.

use super::allocation::PodResourceState;
use super::container_resources::{container_swap_behavior, Reduced};
use super::node::{CpuManagerPolicy, MemoryManagerPolicy, NodeConfig, NodeSwapBehavior};
use super::quantity::Quantity;
use super::resources::{
    pod_requests, PodSpec, QosClass, ResizeRestartPolicy, ResourceList, ResourceRequirements, CPU,
    MEMORY,
};

pub const REASON_INFEASIBLE: &str = "Infeasible";
pub const REASON_EVICTED: &str = "Evicted";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// desired == allocated: nothing to admit (clears `PodResizePending`).
    Unchanged,
    Accepted,
    /// May fit later (`PodResizePending{Deferred}`); `reason` is the raw reason (`OutOfcpu`, ...).
    Deferred {
        reason: String,
        message: String,
    },
    /// Not re-evaluated until the spec changes (`PodResizePending{Infeasible}`); `reason_detail`
    /// is the `kubelet_pod_infeasible_resizes_total` label.
    Infeasible {
        message: String,
        reason_detail: &'static str,
    },
}

/// Node conditions the eviction handler looks at.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodePressure {
    pub memory: bool,
    pub disk: bool,
    pub pid: bool,
}

/// Spec §4.1: does the desired spec ask for anything other than the allocation?
pub fn is_unchanged(desired: &PodSpec, allocated: &PodResourceState) -> bool {
    desired.resource_state() == *allocated
}

/// Spec §4.2 swap rule: the container's swap behaviour, old or new, is `LimitedSwap`.
fn limited_swap(pod: &PodSpec, r: &ResourceRequirements, node: &NodeConfig) -> bool {
    container_swap_behavior(pod, Reduced::of(r), node) == NodeSwapBehavior::LimitedSwap
}

/// The resize handler (spec §4.2) plus decision 1: the only sources of `Infeasible`.
fn resize_handler(
    desired: &PodSpec,
    allocated: &PodResourceState,
    node: &NodeConfig,
) -> Option<Decision> {
    let infeasible = |message: &str, reason_detail| {
        Some(Decision::Infeasible {
            message: message.to_string(),
            reason_detail,
        })
    };
    for c in desired.resizable_containers() {
        let Some(old) = allocated.container_resources.get(&c.name) else {
            continue;
        };
        let memory_request_changed = old.requests.get(MEMORY) != c.resources.requests.get(MEMORY);
        if memory_request_changed
            && c.resize_policy.memory != ResizeRestartPolicy::RestartContainer
            && (limited_swap(desired, old, node) || limited_swap(desired, &c.resources, node))
        {
            return infeasible(
                "In-place resize of containers with swap is not supported.",
                "swap_limitation",
            );
        }
    }
    // An allocation without pod-level resources was checkpointed before they were read from the
    // API (the API server does not let a running pod gain them): adopt the pod's.
    if allocated.pod_level_resources.is_some()
        && desired.pod_resources != allocated.pod_level_resources
    {
        return infeasible(
            "InPlacePodLevelResourcesVerticalScaling is disabled",
            "pod_level_resources_disabled",
        );
    }
    let guaranteed = desired.effective_qos() == QosClass::Guaranteed;
    let changed = |name: &str| {
        desired.resizable_containers().any(|c| {
            allocated
                .container_resources
                .get(&c.name)
                .is_some_and(|old| old.requests.get(name) != c.resources.requests.get(name))
        })
    };
    if guaranteed && node.cpu_manager_policy == CpuManagerPolicy::Static && changed(CPU) {
        return infeasible(
            "Resize is infeasible for Guaranteed Pods alongside CPU Manager policy \"static\"",
            "guaranteed_pod_cpu_manager_static_policy",
        );
    }
    if guaranteed && node.memory_manager_policy == MemoryManagerPolicy::Static && changed(MEMORY) {
        return infeasible(
            "Resize is infeasible for Guaranteed Pods alongside Memory Manager policy \"Static\"",
            "guaranteed_pod_memory_manager_static_policy",
        );
    }
    // Decision 1: more than the node's allocatable can never fit.
    let requested = pod_requests(desired);
    let amount = |l: &ResourceList, name: &str| -> Option<i64> {
        l.get(name).map(|q| {
            if name == CPU {
                q.milli_value()
            } else {
                q.value()
            }
        })
    };
    let over = |name: &str| match (amount(&requested, name), amount(&node.allocatable, name)) {
        (Some(r), Some(a)) if r > a => Some((r, a)),
        _ => None,
    };
    if let Some((r, a)) = over(MEMORY) {
        return infeasible(
            &format!("Node didn't have enough capacity: memory, requested: {r}, capacity: {a}"),
            "insufficient_node_allocatable",
        );
    }
    if let Some((r, a)) = over(CPU) {
        return infeasible(
            &format!("Node didn't have enough capacity: cpu, requested: {r}, capacity: {a}"),
            "insufficient_node_allocatable",
        );
    }
    None
}

/// Resource fit (spec §4.3): `others` are the other active pods on the node, each already
/// overlaid with `max(allocated, actual)` per container (see [`max_overlay`]).
/// What `others` request together (their `pod_requests` summed).
pub fn used_by(others: &[PodSpec]) -> ResourceList {
    let mut used = ResourceList::new();
    for p in others {
        add_requests(&mut used, &pod_requests(p));
    }
    used
}

/// `used += requests`, per resource.
pub fn add_requests(used: &mut ResourceList, requests: &ResourceList) {
    for (name, q) in requests {
        used.entry(name.clone())
            .and_modify(|u| *u = u.add(q))
            .or_insert(*q);
    }
}

fn resource_fit(desired: &PodSpec, used: &ResourceList, node: &NodeConfig) -> Option<Decision> {
    let requested = pod_requests(desired);
    // the kubelet's order: cpu, memory, ephemeral-storage, then the rest by name
    let mut names: Vec<&String> = requested.keys().collect();
    let rank = |n: &str| match n {
        CPU => 0,
        MEMORY => 1,
        "ephemeral-storage" => 2,
        _ => 3,
    };
    names.sort_by_key(|n| (rank(n), n.to_string()));
    for name in names {
        let req = requested[name];
        if req <= Quantity::zero() {
            continue;
        }
        // resources unknown to the node are dropped
        let Some(capacity) = node.allocatable.get(name) else {
            continue;
        };
        let zero = Quantity::zero();
        let used_q = used.get(name).unwrap_or(&zero);
        if req > capacity.sub(used_q) {
            let n = |q: &Quantity| {
                if name == CPU {
                    q.milli_value()
                } else {
                    q.value()
                }
            };
            return Some(Decision::Deferred {
                reason: format!("OutOf{name}"),
                message: format!(
                    "Node didn't have enough resource: {name}, requested: {}, used: {}, capacity: {}",
                    n(&req),
                    n(used_q),
                    n(capacity)
                ),
            });
        }
    }
    None
}

/// `others` entry for [`admit`]: the pod with each container's requests raised to what the
/// runtime actually has (`actual`: container name → requests), spec §4.3
/// `max(allocated, actual)`.
pub fn max_overlay(
    allocated_pod: &PodSpec,
    actual: &std::collections::BTreeMap<String, ResourceList>,
) -> PodSpec {
    let mut pod = allocated_pod.clone();
    let raise = |c: &mut super::resources::Container| {
        if let Some(a) = actual.get(&c.name) {
            for (name, q) in a {
                let e = c.resources.requests.entry(name.clone()).or_insert(*q);
                if *q > *e {
                    *e = *q;
                }
            }
        }
    };
    pod.containers.iter_mut().for_each(raise);
    pod.init_containers
        .iter_mut()
        .filter(|c| c.sidecar)
        .for_each(raise);
    pod
}

/// Spec §4.1: one decision for the whole desired spec. First rejection wins: resize handler
/// (Infeasible), eviction, resource fit (Deferred).
pub fn admit(
    desired: &PodSpec,
    allocated: &PodResourceState,
    others: &[PodSpec],
    node: &NodeConfig,
    pressure: NodePressure,
) -> Decision {
    admit_with_used(desired, allocated, &used_by(others), node, pressure)
}

/// [`admit`] with the other pods' summed requests ([`used_by`]) already computed (the engine
/// keeps each pod's requests, so a decision does not re-aggregate every pod of the node).
pub fn admit_with_used(
    desired: &PodSpec,
    allocated: &PodResourceState,
    used: &ResourceList,
    node: &NodeConfig,
    pressure: NodePressure,
) -> Decision {
    if is_unchanged(desired, allocated) {
        return Decision::Unchanged;
    }
    if let Some(d) = resize_handler(desired, allocated, node) {
        return d;
    }
    if !desired.critical && (pressure.disk || pressure.pid) {
        let mut conditions = Vec::new();
        if pressure.memory {
            conditions.push("MemoryPressure");
        }
        if pressure.disk {
            conditions.push("DiskPressure");
        }
        if pressure.pid {
            conditions.push("PIDPressure");
        }
        return Decision::Deferred {
            reason: REASON_EVICTED.to_string(),
            message: format!("The node had condition: [{}]. ", conditions.join(", ")),
        };
    }
    if let Some(d) = resource_fit(desired, used, node) {
        return d;
    }
    Decision::Accepted
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::resources::ResizePolicy;
    use crate::testing::*;

    fn node(cpu: &str, memory: &str) -> NodeConfig {
        NodeConfig {
            allocatable: list(&format!("cpu={cpu},memory={memory},pods=110")),
            ..NodeConfig::default()
        }
    }

    fn resized(p: &PodSpec, requests: &str, limits: &str) -> PodSpec {
        let mut d = p.clone();
        d.containers[0].resources = reqs(requests, limits);
        d.generation += 1;
        d
    }

    #[test]
    fn unchanged_is_semantic() {
        let p = pod("u", vec![container("c", "cpu=1,memory=1Gi", "")]);
        let same = resized(&p, "cpu=1000m,memory=1024Mi", "");
        assert_eq!(
            admit(
                &same,
                &p.resource_state(),
                &[],
                &node("4", "8Gi"),
                NodePressure::default()
            ),
            Decision::Unchanged
        );
    }

    #[test]
    fn fits_then_deferred_with_first_failure_only() {
        let p = pod("u", vec![container("c", "cpu=500m,memory=1Gi", "")]);
        let other = pod("o", vec![container("c", "cpu=3,memory=6Gi", "")]);
        let n = node("4", "8Gi");
        let ok = resized(&p, "cpu=1,memory=2Gi", "");
        assert_eq!(
            admit(
                &ok,
                &p.resource_state(),
                std::slice::from_ref(&other),
                &n,
                NodePressure::default()
            ),
            Decision::Accepted
        );
        let too_much = resized(&p, "cpu=1500m,memory=3Gi", "");
        assert_eq!(
            admit(&too_much, &p.resource_state(), &[other], &n, NodePressure::default()),
            Decision::Deferred {
                reason: "OutOfcpu".into(),
                message: "Node didn't have enough resource: cpu, requested: 1500, used: 3000, capacity: 4000"
                    .into()
            }
        );
    }

    #[test]
    fn used_counts_max_of_allocated_and_actual() {
        let p = pod("u", vec![container("c", "cpu=500m", "")]);
        let other = pod("o", vec![container("c", "cpu=1", "")]);
        let actual = [("c".to_string(), list("cpu=3"))].into_iter().collect();
        let other = max_overlay(&other, &actual);
        let d = admit(
            &resized(&p, "cpu=1500m", ""),
            &p.resource_state(),
            &[other],
            &node("4", "8Gi"),
            NodePressure::default(),
        );
        assert!(
            matches!(d, Decision::Deferred { ref reason, .. } if reason == "OutOfcpu"),
            "{d:?}"
        );
    }

    #[test]
    fn over_allocatable_is_infeasible_memory_reported_first() {
        let p = pod("u", vec![container("c", "cpu=1,memory=1Gi", "")]);
        let n = node("4", "8Gi");
        let d = admit(
            &resized(&p, "cpu=5,memory=9Gi", ""),
            &p.resource_state(),
            &[],
            &n,
            NodePressure::default(),
        );
        assert_eq!(
            d,
            Decision::Infeasible {
                message: format!(
                    "Node didn't have enough capacity: memory, requested: {}, capacity: {}",
                    9u64 << 30,
                    8u64 << 30
                ),
                reason_detail: "insufficient_node_allocatable"
            }
        );
        let d = admit(
            &resized(&p, "cpu=5,memory=1Gi", ""),
            &p.resource_state(),
            &[],
            &n,
            NodePressure::default(),
        );
        assert_eq!(
            d,
            Decision::Infeasible {
                message: "Node didn't have enough capacity: cpu, requested: 5000, capacity: 4000"
                    .into(),
                reason_detail: "insufficient_node_allocatable"
            }
        );
    }

    #[test]
    fn static_cpu_manager_makes_guaranteed_cpu_resizes_infeasible() {
        let p = pod(
            "u",
            vec![container("c", "cpu=1,memory=1Gi", "cpu=1,memory=1Gi")],
        );
        let mut n = node("4", "8Gi");
        n.cpu_manager_policy = CpuManagerPolicy::Static;
        let d = admit(
            &resized(&p, "cpu=2,memory=1Gi", "cpu=2,memory=1Gi"),
            &p.resource_state(),
            &[],
            &n,
            NodePressure::default(),
        );
        assert_eq!(
            d,
            Decision::Infeasible {
                message: "Resize is infeasible for Guaranteed Pods alongside CPU Manager policy \"static\"".into(),
                reason_detail: "guaranteed_pod_cpu_manager_static_policy"
            }
        );
        // memory-only resize is fine under the CPU manager
        let d = admit(
            &resized(&p, "cpu=1,memory=2Gi", "cpu=1,memory=2Gi"),
            &p.resource_state(),
            &[],
            &n,
            NodePressure::default(),
        );
        assert_eq!(d, Decision::Accepted);
        n.memory_manager_policy = MemoryManagerPolicy::Static;
        let d = admit(
            &resized(&p, "cpu=1,memory=2Gi", "cpu=1,memory=2Gi"),
            &p.resource_state(),
            &[],
            &n,
            NodePressure::default(),
        );
        assert!(matches!(
            d,
            Decision::Infeasible {
                reason_detail: "guaranteed_pod_memory_manager_static_policy",
                ..
            }
        ));
    }

    #[test]
    fn swap_and_pod_level_changes_are_infeasible() {
        let p = pod("u", vec![container("c", "memory=1Gi", "memory=2Gi")]);
        let mut n = node("4", "8Gi");
        n.swap_behavior = NodeSwapBehavior::LimitedSwap;
        n.swap_available = true;
        n.cgroup_version = crate::core::node::CgroupVersion::V2;
        let d = admit(
            &resized(&p, "memory=1500Mi", "memory=2Gi"),
            &p.resource_state(),
            &[],
            &n,
            NodePressure::default(),
        );
        assert!(
            matches!(
                d,
                Decision::Infeasible {
                    reason_detail: "swap_limitation",
                    ..
                }
            ),
            "{d:?}"
        );
        // RestartContainer for memory avoids the swap limitation
        let mut p2 = p.clone();
        p2.containers[0].resize_policy = ResizePolicy {
            memory: ResizeRestartPolicy::RestartContainer,
            ..ResizePolicy::default()
        };
        let d = admit(
            &resized(&p2, "memory=1500Mi", "memory=2Gi"),
            &p2.resource_state(),
            &[],
            &n,
            NodePressure::default(),
        );
        assert_eq!(d, Decision::Accepted);

        let mut pl = resized(&p, "memory=1Gi", "memory=2Gi");
        pl.pod_resources = Some(reqs("cpu=1", ""));
        // An allocation checkpointed before pod-level resources were read adopts them.
        let d = admit(
            &pl,
            &p.resource_state(),
            &[],
            &node("4", "8Gi"),
            NodePressure::default(),
        );
        assert_eq!(d, Decision::Accepted);
        let mut allocated = p.resource_state();
        allocated.pod_level_resources = Some(reqs("cpu=500m", ""));
        let d = admit(
            &pl,
            &allocated,
            &[],
            &node("4", "8Gi"),
            NodePressure::default(),
        );
        assert!(
            matches!(d, Decision::Infeasible { ref message, .. } if message == "InPlacePodLevelResourcesVerticalScaling is disabled")
        );
    }

    #[test]
    fn disk_pressure_defers_even_decreases_but_not_for_critical_pods() {
        let p = pod("u", vec![container("c", "cpu=1", "")]);
        let pressure = NodePressure {
            disk: true,
            ..NodePressure::default()
        };
        let d = admit(
            &resized(&p, "cpu=500m", ""),
            &p.resource_state(),
            &[],
            &node("4", "8Gi"),
            pressure,
        );
        assert_eq!(
            d,
            Decision::Deferred {
                reason: "Evicted".into(),
                message: "The node had condition: [DiskPressure]. ".into()
            }
        );
        let mut critical = p.clone();
        critical.critical = true;
        let d = admit(
            &resized(&critical, "cpu=500m", ""),
            &critical.resource_state(),
            &[],
            &node("4", "8Gi"),
            pressure,
        );
        assert_eq!(d, Decision::Accepted);
        let memory_only = NodePressure {
            memory: true,
            ..NodePressure::default()
        };
        let d = admit(
            &resized(&p, "cpu=500m", ""),
            &p.resource_state(),
            &[],
            &node("4", "8Gi"),
            memory_only,
        );
        assert_eq!(d, Decision::Accepted);
    }
}
