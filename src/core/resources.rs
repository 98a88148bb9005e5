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
    pub generation: i64,
    /// `spec.priority`, nil = 0
    pub priority: i32,
    pub containers: Vec<Container>,
    pub init_containers: Vec<Container>,
    /// `spec.overhead`
    pub overhead: ResourceList,
    /// Pod-level `spec.resources` (PodLevelResources).
    pub pod_resources: Option<ResourceRequirements>,
    /// `status.qosClass` when known; otherwise computed from the spec.
    pub qos_class: Option<QosClass>,
    /// `terminationGracePeriodSeconds` (default 30).
    pub termination_grace_period_seconds: Option<i64>,
    /// `deletionGracePeriodSeconds`, set while the pod is being deleted.
    pub deletion_grace_period_seconds: Option<i64>,
    /// Critical pods (`system-node-critical` / `system-cluster-critical` priority class or static pods).
    pub critical: bool,
}

/// Aggregation flags of §11.1 (`cpuLimitsDeclared` / `memoryLimitsDeclared`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitsDeclared {
    pub cpu: bool,
    pub memory: bool,
}
