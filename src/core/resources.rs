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
    /// Critical pods (`system-node-critical` / `system-cluster-critical` priority class or static pods).
    #[serde(default)]
    pub critical: bool,
}

/// Aggregation flags of §11.1 (`cpuLimitsDeclared` / `memoryLimitsDeclared`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitsDeclared {
    pub cpu: bool,
    pub memory: bool,
}

use super::state::PodResourceState;

/// Resources that take part in QoS classification and in pod-level resources.
fn is_qos_resource(name: &str) -> bool {
    name == CPU || name == MEMORY
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

fn pod_level(pod: &PodSpec, pick: Pick) -> impl Iterator<Item = (&String, &Quantity)> {
    pod.pod_resources
        .iter()
        .flat_map(move |r| pick(r).iter())
        .filter(|(name, _)| is_qos_resource(name))
}

/// `PodRequests` with overhead (spec §11.1): container aggregation, replaced per resource by
/// pod-level requests when set, plus `spec.overhead`.
pub fn pod_requests(pod: &PodSpec) -> ResourceList {
    let mut reqs = aggregate_containers(pod, |r| &r.requests, |_| {});
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
        if let Some(cur) = limits.get_mut(name) {
            *cur = cur.add(q);
        }
    }
    (limits, declared)
}

/// QoS class computed from the spec (`ComputePodQOS`): pod-level resources decide when set;
/// otherwise every regular and init container. Only cpu and memory count.
pub fn qos_class(pod: &PodSpec) -> QosClass {
    let positive = |l: &ResourceList| -> ResourceList {
        l.iter()
            .filter(|(n, q)| is_qos_resource(n) && **q > Quantity::zero())
            .map(|(n, q)| (n.clone(), *q))
            .collect()
    };
    let mut requests = ResourceList::new();
    let mut limits = ResourceList::new();
    let mut guaranteed = true;
    // Pod-level resources decide when set; their limits are only checked when some are given.
    let sources: Vec<(&ResourceRequirements, bool)> = match &pod.pod_resources {
        Some(r) => vec![(r, !r.limits.is_empty())],
        None => pod
            .containers
            .iter()
            .chain(&pod.init_containers)
            .map(|c| (&c.resources, true))
            .collect(),
    };
    for (r, check_limits) in sources {
        add_into(&mut requests, &positive(&r.requests));
        let lim = positive(&r.limits);
        if check_limits && !(lim.contains_key(CPU) && lim.contains_key(MEMORY)) {
            guaranteed = false;
        }
        add_into(&mut limits, &lim);
    }
    if requests.is_empty() && limits.is_empty() {
        return QosClass::BestEffort;
    }
    guaranteed = guaranteed
        && requests
            .iter()
            .all(|(name, req)| limits.get(name) == Some(req));
    if guaranteed && requests.len() == limits.len() {
        QosClass::Guaranteed
    } else {
        QosClass::Burstable
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

    /// This pod with its resizable containers' resources (and pod-level resources) replaced by
    /// an allocation. Containers the allocation does not name keep their spec resources.
    pub fn with_allocated(&self, allocated: &PodResourceState) -> PodSpec {
        let mut pod = self.clone();
        let overlay = |c: &mut Container| {
            if let Some(r) = allocated.container_resources.get(&c.name) {
                c.resources = r.clone();
            }
        };
        pod.containers.iter_mut().for_each(overlay);
        pod.init_containers
            .iter_mut()
            .filter(|c| c.sidecar)
            .for_each(overlay);
        if let Some(r) = &allocated.pod_level_resources {
            pod.pod_resources = Some(r.clone());
        }
        pod
    }

    /// The allocation this spec asks for: every resizable container's full resources plus
    /// pod-level resources (spec §4.1).
    pub fn resource_state(&self) -> PodResourceState {
        PodResourceState {
            container_resources: self
                .resizable_containers()
                .map(|c| (c.name.clone(), c.resources.clone()))
                .collect(),
            pod_level_resources: self.pod_resources.clone(),
        }
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

/// Builders shared by the core's unit tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// `"cpu=100m,memory=1Gi"` → ResourceList.
    pub fn list(s: &str) -> ResourceList {
        s.split(',')
            .filter(|kv| !kv.is_empty())
            .map(|kv| {
                let (k, v) = kv.split_once('=').expect("name=quantity");
                (k.to_string(), Quantity::parse(v).expect("quantity"))
            })
            .collect()
    }

    pub fn reqs(requests: &str, limits: &str) -> ResourceRequirements {
        ResourceRequirements {
            requests: list(requests),
            limits: list(limits),
        }
    }

    pub fn container(name: &str, requests: &str, limits: &str) -> Container {
        Container {
            name: name.to_string(),
            resources: reqs(requests, limits),
            resize_policy: ResizePolicy::default(),
            sidecar: false,
        }
    }

    pub fn sidecar(name: &str, requests: &str, limits: &str) -> Container {
        Container {
            sidecar: true,
            ..container(name, requests, limits)
        }
    }

    pub fn pod(uid: &str, containers: Vec<Container>) -> PodSpec {
        PodSpec {
            uid: uid.to_string(),
            namespace: "default".to_string(),
            name: format!("pod-{uid}"),
            generation: 1,
            priority: 0,
            containers,
            init_containers: Vec::new(),
            overhead: ResourceList::new(),
            pod_resources: None,
            qos_class: None,
            termination_grace_period_seconds: None,
            deletion_grace_period_seconds: None,
            critical: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

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

    #[test]
    fn allocation_overlay_round_trips() {
        let mut p = pod("u", vec![container("a", "cpu=100m", "cpu=200m")]);
        p.init_containers = vec![sidecar("s", "cpu=10m", ""), container("init", "cpu=1", "")];
        let state = p.resource_state();
        assert_eq!(
            state.container_resources.keys().collect::<Vec<_>>(),
            ["a", "s"]
        );
        let mut allocated = state.clone();
        allocated
            .container_resources
            .insert("a".into(), reqs("cpu=500m", "cpu=1"));
        let overlaid = p.with_allocated(&allocated);
        assert_eq!(overlaid.containers[0].resources, reqs("cpu=500m", "cpu=1"));
        assert_eq!(overlaid.resource_state(), allocated);
        // Non-sidecar init containers are never resized.
        assert_eq!(overlaid.init_containers[1], p.init_containers[1]);
    }
}
