//! What the controller reports: counters and metrics, and per pod what its last pass saw and
//! did (served by the admin endpoint for `resizelet status` / `explain`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Mutex;

use serde::Serialize;

use crate::core::resources::ResourceRequirements;
use crate::metrics::Metrics;

/// Counters, metrics and the per-pod reports, shared with the admin endpoint and benchmarks.
#[derive(Default)]
pub struct ControllerStats {
    pub syncs: AtomicU64,
    pub status_writes: AtomicU64,
    pub status_conflicts: AtomicU64,
    pub events_written: AtomicU64,
    pub resizes_completed: AtomicU64,
    /// Watch synced (first `InitDone` of the pod watch and the node seen).
    pub ready: AtomicBool,
    /// Why the controller stands down (decision 6), if it does.
    pub stand_down: Mutex<Option<String>>,
    /// What the last pass of each pod saw and did, by UID (for `resizelet status`/`explain`).
    pub pods: Mutex<BTreeMap<String, PodReport>>,
    pub metrics: Metrics,
}

/// One pod as its last pass saw it: the kubelet's four views of its resources, the resize
/// conditions, and — when a resize waits or failed — why.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PodReport {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub generation: i64,
    /// Per container: desired (spec), allocated, actuated (what resizelet last applied) and
    /// actual (what the runtime reports, as written to `status.resources`).
    pub containers: Vec<ContainerReport>,
    /// `Unchanged`, `Accepted`, `Deferred`, `Infeasible`.
    pub decision: String,
    pub decision_message: String,
    pub pending: Option<ConditionReport>,
    pub in_progress: Option<ConditionReport>,
    pub last_error: Option<String>,
    /// The steps of the last non-empty plan (debug form), in order.
    pub last_plan: Vec<String>,
    /// Admission arithmetic when the resize does not fit: per resource, allocatable, the
    /// other pods' allocated requests and this pod's desired requests.
    pub admission: Vec<AdmissionLine>,
    /// RFC 3339 time of the pass.
    pub at: String,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ContainerReport {
    pub name: String,
    pub desired: ResourceRequirements,
    pub allocated: ResourceRequirements,
    pub actuated: Option<ResourceRequirements>,
    pub actual: Option<ResourceRequirements>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ConditionReport {
    pub reason: String,
    pub message: String,
    pub observed_generation: i64,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionLine {
    pub resource: String,
    pub allocatable: Option<String>,
    pub other_pods: String,
    pub this_pod: String,
}
