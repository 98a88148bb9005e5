//! The pod model the core works on (a projection of the Kubernetes pod, free of k8s-openapi types),
//! QoS classification and pod-level aggregation (spec §11.1).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::quantity::Quantity;

pub const CPU: &str = "cpu";
pub const MEMORY: &str = "memory";

/// `ResourceList`: resource name → quantity. An absent key means "not set".
pub type ResourceList = BTreeMap<String, Quantity>;

/// `ResourceRequirements` (requests and limits). An empty map is the same as an absent one
/// (the kubelet's JSON checkpoints drop empty maps, so "the map exists" means "non-empty").
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceRequirements {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub requests: ResourceList,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub limits: ResourceList,
}

/// Which resource a resize policy / plan step is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Resource {
    Cpu,
    Memory,
}

/// `resizePolicy[].restartPolicy`; a missing entry means `NotRequired`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ResizeRestartPolicy {
    #[default]
    NotRequired,
    RestartContainer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ResizePolicy {
    pub cpu: ResizeRestartPolicy,
    pub memory: ResizeRestartPolicy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum QosClass {
    Guaranteed,
    Burstable,
    BestEffort,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Container {
    pub name: String,
    pub resources: ResourceRequirements,
    #[serde(default)]
    pub resize_policy: ResizePolicy,
    /// Only for init containers: `restartPolicy: Always` makes it a sidecar.
    #[serde(default)]
    pub sidecar: bool,
}

/// The parts of a pod spec (plus identity) that resizing depends on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodSpec {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    /// `metadata.generation`
    #[serde(default)]
    pub generation: i64,
    /// `spec.priority`, nil = 0
    #[serde(default)]
    pub priority: i32,
    pub containers: Vec<Container>,
    #[serde(default)]
    pub init_containers: Vec<Container>,
    /// `spec.overhead`
    #[serde(default)]
    pub overhead: ResourceList,
    /// Pod-level `spec.resources` (PodLevelResources).
    #[serde(default)]
    pub pod_resources: Option<ResourceRequirements>,
    /// `status.qosClass` when known; otherwise computed from the spec.
    #[serde(default)]
    pub qos_class: Option<QosClass>,
    /// `terminationGracePeriodSeconds` (default 30).
    #[serde(default)]
    pub termination_grace_period_seconds: Option<i64>,
    /// `deletionGracePeriodSeconds`, set while the pod is being deleted.
    #[serde(default)]
    pub deletion_grace_period_seconds: Option<i64>,
    /// `IsCriticalPod`: a static or mirror pod, or priority ≥ 2000000000 (`system-cluster-critical`
    /// and `system-node-critical`).
    #[serde(default)]
    pub critical: bool,
    /// `IsNodeCriticalPod`: critical and `priorityClassName: system-node-critical` (oom_score_adj −997).
    #[serde(default)]
    pub node_critical: bool,
}

/// Aggregation flags of §11.1 (`cpuLimitsDeclared` / `memoryLimitsDeclared`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitsDeclared {
    pub cpu: bool,
    pub memory: bool,
}

/// Resources that take part in QoS classification (`isSupportedQoSComputeResource`).
fn is_qos_resource(name: &str) -> bool {
    name == CPU || name == MEMORY
}

/// `IsSupportedPodLevelResource`: cpu, memory and `hugepages-<size>`.
pub fn is_pod_level_resource(name: &str) -> bool {
    is_qos_resource(name) || name.starts_with(HUGEPAGES_PREFIX)
}

/// `v1.ResourceHugePagesPrefix`.
pub const HUGEPAGES_PREFIX: &str = "hugepages-";

/// `IsPodLevelRequestsSet`: pod-level requests name a supported resource.
pub fn pod_level_requests_set(pod: &PodSpec) -> bool {
    pod.pod_resources
        .as_ref()
        .is_some_and(|r| r.requests.keys().any(|n| is_pod_level_resource(n)))
}

/// `IsPodLevelResourcesSet`: pod-level requests or limits name a supported resource.
pub fn pod_level_resources_set(pod: &PodSpec) -> bool {
    pod.pod_resources.as_ref().is_some_and(|r| {
        r.requests
            .keys()
            .chain(r.limits.keys())
            .any(|n| is_pod_level_resource(n))
    })
}

/// `addResourceList`: `acc[k] += v` for every key.
fn add_into(acc: &mut ResourceList, add: &ResourceList) {
    for (name, q) in add {
        acc.entry(name.clone())
            .and_modify(|cur| *cur = cur.add(q))
            .or_insert(*q);
    }
}

/// `maxResourceList`: `acc[k] = max(acc[k], v)` for every key.
fn max_into(acc: &mut ResourceList, other: &ResourceList) {
    for (name, q) in other {
        match acc.get_mut(name) {
            Some(cur) if *cur >= *q => {}
            Some(cur) => *cur = *q,
            None => {
                acc.insert(name.clone(), *q);
            }
        }
    }
}

/// Requests or limits of one container, by selector.
type Pick = fn(&ResourceRequirements) -> &ResourceList;

/// The container-aggregation shape shared by `PodRequests` and `PodLimits` (spec §11.1,
/// `AggregateContainerRequests` / `AggregateContainerLimits`): Σ regular + Σ sidecars, then per
/// resource the max of that and, for each non-sidecar init container, its own value plus the
/// sidecars declared before it. `visit` sees each regular container's value and each init
/// container's aggregated value (the kubelet's `ContainerFn`).
fn aggregate_containers(
    pod: &PodSpec,
    pick: Pick,
    mut visit: impl FnMut(&ResourceList),
) -> ResourceList {
    let mut total = ResourceList::new();
    for c in &pod.containers {
        let v = pick(&c.resources);
        visit(v);
        add_into(&mut total, v);
    }
    let mut sidecars = ResourceList::new();
    let mut init_max = ResourceList::new();
    for c in &pod.init_containers {
        let own = pick(&c.resources);
        let effective = if c.sidecar {
            add_into(&mut total, own);
            add_into(&mut sidecars, own);
            sidecars.clone()
        } else {
            let mut tmp = own.clone();
            add_into(&mut tmp, &sidecars);
            tmp
        };
        visit(&effective);
        max_into(&mut init_max, &effective);
    }
    max_into(&mut total, &init_max);
    total
}

/// `applyPodLevelResources`: the supported pod-level entries (cpu, memory, hugepages).
fn pod_level(pod: &PodSpec, pick: Pick) -> impl Iterator<Item = (&String, &Quantity)> {
    pod.pod_resources
        .iter()
        .flat_map(move |r| pick(r).iter())
        .filter(|(name, _)| is_pod_level_resource(name))
}

/// `AggregateContainerRequests` (no pod-level resources, no overhead).
pub fn aggregate_container_requests(pod: &PodSpec) -> ResourceList {
    aggregate_containers(pod, |r| &r.requests, |_| {})
}

/// `PodRequests` with overhead (spec §11.1): container aggregation, replaced per resource by
/// pod-level requests (cpu, memory, hugepages) when set, plus `spec.overhead`.
pub fn pod_requests(pod: &PodSpec) -> ResourceList {
    let mut reqs = aggregate_container_requests(pod);
    for (name, q) in pod_level(pod, |r| &r.requests) {
        reqs.insert(name.clone(), *q);
    }
    add_into(&mut reqs, &pod.overhead);
    reqs
}

/// `PodLimits` with overhead (spec §11.1): like [`pod_requests`] on limits; overhead is added
/// only to limits that are present.
pub fn pod_limits(pod: &PodSpec) -> ResourceList {
    pod_limits_and_declared(pod).0
}

/// `cpuLimitsDeclared` / `memoryLimitsDeclared` (spec §11.1): false when a regular container
/// lacks the limit or an init container's aggregated limit is zero; a pod-level limit makes it
/// true again.
pub fn limits_declared(pod: &PodSpec) -> LimitsDeclared {
    pod_limits_and_declared(pod).1
}

fn pod_limits_and_declared(pod: &PodSpec) -> (ResourceList, LimitsDeclared) {
    let mut declared = LimitsDeclared {
        cpu: true,
        memory: true,
    };
    let is_zero = |l: &ResourceList, name: &str| l.get(name).is_none_or(|q| q.is_zero());
    let mut limits = aggregate_containers(
        pod,
        |r| &r.limits,
        |l| {
            if is_zero(l, CPU) {
                declared.cpu = false;
            }
            if is_zero(l, MEMORY) {
                declared.memory = false;
            }
        },
    );
    for (name, q) in pod_level(pod, |r| &r.limits) {
        limits.insert(name.clone(), *q);
    }
    if let Some(pod_limits) = pod.pod_resources.as_ref().map(|r| &r.limits) {
        if !is_zero(pod_limits, CPU) {
            declared.cpu = true;
        }
        if !is_zero(pod_limits, MEMORY) {
            declared.memory = true;
        }
    }
    for (name, q) in &pod.overhead {
        if let Some(cur) = limits.get_mut(name).filter(|cur| !cur.is_zero()) {
            *cur = cur.add(q);
        }
    }
    (limits, declared)
}

/// QoS class computed from the spec (`ComputePodQOS`): pod-level resources decide when set;
/// otherwise each init and regular container's class, any mismatch making the pod Burstable.
pub fn qos_class(pod: &PodSpec) -> QosClass {
    if let Some(r) = &pod.pod_resources {
        return requirements_qos(r);
    }
    let mut pod_qos = None;
    for c in pod.init_containers.iter().chain(&pod.containers) {
        match (requirements_qos(&c.resources), pod_qos) {
            (QosClass::Burstable, _) => return QosClass::Burstable,
            (q, None) => pod_qos = Some(q),
            (q, Some(p)) if q != p => return QosClass::Burstable,
            _ => {}
        }
    }
    pod_qos.unwrap_or(QosClass::BestEffort)
}

/// `requirementsQOS`: the class of one set of requirements, from its cpu and memory.
fn requirements_qos(r: &ResourceRequirements) -> QosClass {
    if r.requests.is_empty() && r.limits.is_empty() {
        return QosClass::BestEffort;
    }
    let resource_qos = |name: &str| {
        let zero = Quantity::zero();
        let req = r.requests.get(name).unwrap_or(&zero);
        let lim = r.limits.get(name).unwrap_or(&zero);
        if req != lim {
            QosClass::Burstable
        } else if req.is_zero() {
            QosClass::BestEffort
        } else {
            QosClass::Guaranteed
        }
    };
    match (resource_qos(CPU), resource_qos(MEMORY)) {
        (a, b) if a == b => a,
        _ => QosClass::Burstable,
    }
}

impl PodSpec {
    /// `status.qosClass` when known, else computed from the spec (spec §11.4).
    pub fn effective_qos(&self) -> QosClass {
        self.qos_class.unwrap_or_else(|| qos_class(self))
    }

    /// Containers whose resources can be resized: regular containers and sidecars, sidecars
    /// first in spec order (spec §2). Ephemeral containers are never part of the model.
    pub fn resizable_containers(&self) -> impl Iterator<Item = &Container> {
        self.init_containers
            .iter()
            .filter(|c| c.sidecar)
            .chain(self.containers.iter())
    }

    pub fn container(&self, name: &str) -> Option<&Container> {
        self.resizable_containers().find(|c| c.name == name)
    }
}

/// A resource list in Kubernetes notation for logs: `cpu=1900m,memory=128Mi` (`none` if empty).
pub struct ListDisplay<'a>(pub &'a ResourceList);

impl std::fmt::Display for ListDisplay<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        for (i, (name, q)) in self.0.iter().enumerate() {
            write!(f, "{}{name}={q}", if i == 0 { "" } else { "," })?;
        }
        Ok(())
    }
}

/// A pod's container resources for logs: `app requests cpu=300m,memory=96Mi limits cpu=500m`,
/// containers separated by `; `.
pub struct PodResourcesDisplay<'a>(pub &'a PodSpec);

impl std::fmt::Display for PodResourcesDisplay<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let all = self.0.init_containers.iter().chain(&self.0.containers);
        for (i, c) in all.enumerate() {
            write!(
                f,
                "{}{} requests {} limits {}",
                if i == 0 { "" } else { "; " },
                c.name,
                ListDisplay(&c.resources.requests),
                ListDisplay(&c.resources.limits)
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;

    #[test]
    fn qos_classes() {
        let g = pod(
            "g",
            vec![container(
                "c",
                "cpu=1,memory=1Gi",
                "cpu=1000m,memory=1024Mi",
            )],
        );
        assert_eq!(qos_class(&g), QosClass::Guaranteed);
        let b = pod("b", vec![container("c", "cpu=100m", "cpu=200m")]);
        assert_eq!(qos_class(&b), QosClass::Burstable);
        let only_limits_cpu = pod("b2", vec![container("c", "cpu=1", "cpu=1")]);
        assert_eq!(qos_class(&only_limits_cpu), QosClass::Burstable);
        let be = pod(
            "e",
            vec![container("c", "", ""), container("d", "cpu=0", "")],
        );
        assert_eq!(qos_class(&be), QosClass::BestEffort);
        // An init container without limits makes the pod Burstable.
        let mut gi = g.clone();
        gi.init_containers.push(container("init", "cpu=10m", ""));
        assert_eq!(qos_class(&gi), QosClass::Burstable);
        // Pod-level resources decide when set.
        let mut pl = pod("p", vec![container("c", "", "")]);
        pl.pod_resources = Some(reqs("cpu=1,memory=1Gi", "cpu=1,memory=1Gi"));
        assert_eq!(qos_class(&pl), QosClass::Guaranteed);
        // status.qosClass wins over the computed class.
        let mut pinned = b.clone();
        pinned.qos_class = Some(QosClass::Guaranteed);
        assert_eq!(pinned.effective_qos(), QosClass::Guaranteed);
    }

    #[test]
    fn pod_requests_sum_regular_and_sidecars_max_init() {
        let mut p = pod(
            "u",
            vec![
                container("a", "cpu=100m,memory=100Mi", ""),
                container("b", "cpu=200m,memory=50Mi", ""),
            ],
        );
        p.init_containers = vec![
            sidecar("s1", "cpu=50m,memory=10Mi", ""),
            // non-sidecar init: own + preceding sidecars = 1050m; exceeds 350m
            container("init", "cpu=1,memory=1Mi", ""),
            sidecar("s2", "cpu=25m", ""),
        ];
        let r = pod_requests(&p);
        assert_eq!(r[CPU], Quantity::parse("1050m").unwrap());
        assert_eq!(r[MEMORY], Quantity::parse("160Mi").unwrap());
        p.overhead = list("cpu=10m,memory=1Mi");
        let r = pod_requests(&p);
        assert_eq!(r[CPU], Quantity::parse("1060m").unwrap());
        assert_eq!(r[MEMORY], Quantity::parse("161Mi").unwrap());
    }

    #[test]
    fn pod_limits_overhead_only_on_present_limits_and_declared_flags() {
        let mut p = pod(
            "u",
            vec![
                container("a", "cpu=100m", "cpu=200m,memory=100Mi"),
                container("b", "cpu=100m", "cpu=300m"),
            ],
        );
        p.overhead = list("cpu=10m,memory=5Mi");
        let l = pod_limits(&p);
        assert_eq!(l[CPU], Quantity::parse("510m").unwrap());
        assert_eq!(l[MEMORY], Quantity::parse("105Mi").unwrap());
        // b has no memory limit: memory limits are not declared, cpu limits are.
        assert_eq!(
            limits_declared(&p),
            LimitsDeclared {
                cpu: true,
                memory: false
            }
        );
        // A pod-level memory limit declares it again and replaces the sum.
        p.pod_resources = Some(reqs("", "memory=1Gi"));
        assert!(limits_declared(&p).memory);
        assert_eq!(pod_limits(&p)[MEMORY], Quantity::parse("1029Mi").unwrap());
        // An init container whose aggregated limit is zero clears the flag.
        let mut q = pod("v", vec![container("a", "", "cpu=1,memory=1Gi")]);
        q.init_containers = vec![container("init", "", "memory=1Gi")];
        assert_eq!(
            limits_declared(&q),
            LimitsDeclared {
                cpu: false,
                memory: true
            }
        );
    }
}
