//! The only place k8s-openapi / kube-runtime types and API JSON are mapped to and from
//! resizelet's types: a `Pod` becomes a [`PodView`] (desired spec plus the status facts the
//! controller needs), a `Node` its allocatable list, the watchers' events the controller's
//! [`Input`]s, the controller's intent a strategic-merge status patch, an [`EventRecord`] an
//! `events.k8s.io/v1` Event.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::runtime::watcher;
use serde_json::{json, Map, Value};

use super::{Input, PodEvent, StatusPatch, WatchedPod};

use crate::core::pod_status::{
    ResizeCondition, ResizeConditions, POD_RESIZE_IN_PROGRESS, POD_RESIZE_PENDING,
};
use crate::core::quantity::Quantity;
use crate::core::resources::{
    Container, PodSpec, QosClass, ResizePolicy, ResizeRestartPolicy, ResourceList,
    ResourceRequirements,
};

#[derive(Debug, Clone, thiserror::Error)]
pub enum ConvertError {
    #[error("pod has no {0}")]
    Missing(&'static str),
    #[error("pod {pod}: container {container}: {field} {name}={value:?}: {source}")]
    Quantity {
        pod: String,
        container: String,
        field: &'static str,
        name: String,
        value: String,
        #[source]
        source: Box<crate::core::quantity::QuantityError>,
    },
    #[error("pod {pod}: {source}")]
    Invalid {
        pod: String,
        #[source]
        source: crate::core::validate::SpecError,
    },
}

/// One entry of `status.containerStatuses` (or `initContainerStatuses`): the raw object (the
/// list is atomic, so it is written back whole) and what the controller reads from it.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiContainerStatus {
    pub name: String,
    pub container_id: Option<String>,
    pub running: bool,
    pub raw: Value,
}

/// A pod as the controller sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct PodView {
    /// Desired resources and identity.
    pub spec: Arc<PodSpec>,
    pub node_name: Option<String>,
    pub resource_version: String,
    /// `status.phase` is `Succeeded` or `Failed`.
    pub terminal: bool,
    pub deleting: bool,
    pub conditions: ResizeConditions,
    /// `lastTransitionTime` of the resize conditions, by type.
    pub condition_transition_times: BTreeMap<String, String>,
    pub observed_generation: Option<i64>,
    /// Legacy `status.resize`.
    pub legacy_resize: Option<String>,
    /// Resize conditions the kubelet itself wrote (decision 6 evidence), from `managedFields`.
    pub kubelet_resize_conditions: Vec<String>,
    pub container_statuses: Vec<ApiContainerStatus>,
    pub init_container_statuses: Vec<ApiContainerStatus>,
    /// `metadata.labels` (for `--pod-selector`).
    pub labels: BTreeMap<String, String>,
}

impl PodView {
    pub fn key(&self) -> String {
        format!("{}/{}", self.spec.namespace, self.spec.name)
    }

    /// Names of the containers the API reports as running.
    pub fn running_in_api(&self) -> impl Iterator<Item = &ApiContainerStatus> {
        self.container_statuses
            .iter()
            .chain(&self.init_container_statuses)
            .filter(|c| c.running)
    }
}

fn resource_list(
    pod: &str,
    container: &str,
    field: &'static str,
    list: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
) -> Result<ResourceList, ConvertError> {
    let mut out = ResourceList::new();
    for (name, q) in list.into_iter().flatten() {
        let v = Quantity::parse_json_text(&q.0).map_err(|source| ConvertError::Quantity {
            pod: pod.to_string(),
            container: container.to_string(),
            field,
            name: name.clone(),
            value: q.0.clone(),
            source: Box::new(source),
        })?;
        out.insert(name.clone(), v);
    }
    Ok(out)
}

fn requirements(
    pod: &str,
    container: &str,
    r: Option<&k8s_openapi::api::core::v1::ResourceRequirements>,
) -> Result<ResourceRequirements, ConvertError> {
    Ok(ResourceRequirements {
        requests: resource_list(
            pod,
            container,
            "requests",
            r.and_then(|r| r.requests.as_ref()),
        )?,
        limits: resource_list(pod, container, "limits", r.and_then(|r| r.limits.as_ref()))?,
    })
}

fn container(
    pod: &str,
    c: &k8s_openapi::api::core::v1::Container,
) -> Result<Container, ConvertError> {
    let mut policy = ResizePolicy::default();
    for p in c.resize_policy.iter().flatten() {
        let restart = if p.restart_policy == "RestartContainer" {
            ResizeRestartPolicy::RestartContainer
        } else {
            ResizeRestartPolicy::NotRequired
        };
        match p.resource_name.as_str() {
            "cpu" => policy.cpu = restart,
            "memory" => policy.memory = restart,
            _ => {}
        }
    }
    Ok(Container {
        name: c.name.clone(),
        resources: requirements(pod, &c.name, c.resources.as_ref())?,
        resize_policy: policy,
        sidecar: c.restart_policy.as_deref() == Some("Always"),
    })
}

fn statuses(
    list: Option<&Vec<k8s_openapi::api::core::v1::ContainerStatus>>,
) -> Vec<ApiContainerStatus> {
    list.into_iter()
        .flatten()
        .map(|s| ApiContainerStatus {
            name: s.name.clone(),
            container_id: s.container_id.clone().filter(|id| !id.is_empty()),
            running: s
                .state
                .as_ref()
                .and_then(|st| st.running.as_ref())
                .is_some(),
            raw: serde_json::to_value(s).unwrap_or(Value::Null),
        })
        .collect()
}

/// `scheduling.SystemCriticalPriority`.
const SYSTEM_CRITICAL_PRIORITY: i32 = 2_000_000_000;

/// `IsCriticalPod`: a static pod (`kubernetes.io/config.source` other than `api`), a mirror pod, or
/// priority ≥ `SystemCriticalPriority` (`kubernetes/kubernetes pkg/kubelet/types/pod_update.go`).
fn is_critical_pod(meta: &ObjectMeta, priority: i32) -> bool {
    let annotations = meta.annotations.as_ref();
    let annotation = |k: &str| annotations.and_then(|a| a.get(k)).map(String::as_str);
    let static_pod = annotation("kubernetes.io/config.source").is_some_and(|s| s != "api");
    let mirror = annotation("kubernetes.io/config.mirror").is_some();
    static_pod || mirror || priority >= SYSTEM_CRITICAL_PRIORITY
}

/// Maps an API pod to the controller's view.
pub fn pod_view(pod: &Pod) -> Result<PodView, ConvertError> {
    let meta = &pod.metadata;
    let uid = meta
        .uid
        .clone()
        .ok_or(ConvertError::Missing("metadata.uid"))?;
    let name = meta
        .name
        .clone()
        .ok_or(ConvertError::Missing("metadata.name"))?;
    let namespace = meta.namespace.clone().unwrap_or_else(|| "default".into());
    let key = format!("{namespace}/{name}");
    let spec = pod.spec.as_ref().ok_or(ConvertError::Missing("spec"))?;
    let status = pod.status.clone().unwrap_or_default();
    let containers = spec
        .containers
        .iter()
        .map(|c| container(&key, c))
        .collect::<Result<Vec<_>, _>>()?;
    let init_containers = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| container(&key, c))
        .collect::<Result<Vec<_>, _>>()?;
    let overhead = resource_list(&key, "", "overhead", spec.overhead.as_ref())?;
    let qos_class = match status.qos_class.as_deref() {
        Some("Guaranteed") => Some(QosClass::Guaranteed),
        Some("Burstable") => Some(QosClass::Burstable),
        Some("BestEffort") => Some(QosClass::BestEffort),
        _ => None,
    };
    let priority = spec.priority.unwrap_or(0);
    let critical = is_critical_pod(meta, priority);
    let node_critical =
        critical && spec.priority_class_name.as_deref() == Some("system-node-critical");
    let pod_resources = spec
        .resources
        .as_ref()
        .map(|r| requirements(&key, "(pod-level spec.resources)", Some(r)))
        .transpose()?;
    let desired = PodSpec {
        uid,
        namespace,
        name,
        generation: meta.generation.unwrap_or(0),
        priority,
        containers,
        init_containers,
        overhead,
        pod_resources,
        qos_class,
        termination_grace_period_seconds: spec.termination_grace_period_seconds,
        deletion_grace_period_seconds: meta.deletion_grace_period_seconds,
        critical,
        node_critical,
    };
    crate::core::validate::validate_pod(&desired)
        .map_err(|source| ConvertError::Invalid { pod: key, source })?;
    let mut conditions = ResizeConditions::default();
    let mut times = BTreeMap::new();
    for c in status.conditions.iter().flatten() {
        if c.status != "True" {
            continue;
        }
        let cond = ResizeCondition {
            reason: c.reason.clone().unwrap_or_default(),
            message: c.message.clone().unwrap_or_default(),
            observed_generation: c.observed_generation.unwrap_or(0),
        };
        match c.type_.as_str() {
            POD_RESIZE_PENDING => conditions.pending = Some(cond),
            POD_RESIZE_IN_PROGRESS => conditions.in_progress = Some(cond),
            _ => continue,
        }
        if let Some(t) = &c.last_transition_time {
            times.insert(c.type_.clone(), t.0.to_string());
        }
    }
    Ok(PodView {
        spec: Arc::new(desired),
        node_name: spec.node_name.clone(),
        resource_version: meta.resource_version.clone().unwrap_or_default(),
        terminal: matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")),
        deleting: meta.deletion_timestamp.is_some(),
        conditions,
        condition_transition_times: times,
        observed_generation: status.observed_generation,
        legacy_resize: status.resize.clone(),
        kubelet_resize_conditions: kubelet_resize_conditions(meta),
        container_statuses: statuses(status.container_statuses.as_ref()),
        init_container_statuses: statuses(status.init_container_statuses.as_ref()),
        labels: meta.labels.clone().unwrap_or_default(),
    })
}

/// The field manager the kubelet writes pod status as.
pub const KUBELET_FIELD_MANAGER: &str = "kubelet";

/// `PodResize*` condition types whose ownership `managedFields` gives to the kubelet: a kubelet
/// that enacts resizes itself (decision 6). A gate-off kubelet never writes these conditions
/// (`containerStatuses` is an atomic list, so its ownership says nothing).
pub fn kubelet_resize_conditions(meta: &ObjectMeta) -> Vec<String> {
    let mut found = Vec::new();
    for entry in meta.managed_fields.iter().flatten() {
        if entry.manager.as_deref() != Some(KUBELET_FIELD_MANAGER) {
            continue;
        }
        let Some(fields) = &entry.fields_v1 else {
            continue;
        };
        let Some(conditions) = fields
            .0
            .pointer("/f:status/f:conditions")
            .and_then(|c| c.as_object())
        else {
            continue;
        };
        for t in [POD_RESIZE_PENDING, POD_RESIZE_IN_PROGRESS] {
            if conditions.contains_key(&format!("k:{{\"type\":\"{t}\"}}"))
                && !found.iter().any(|f| f == t)
            {
                found.push(t.to_string());
            }
        }
    }
    found
}

/// What a node contributes: `status.allocatable` and the kubelet version.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeView {
    pub allocatable: ResourceList,
    pub kubelet_version: Option<String>,
    /// Allocatable entries that could not be parsed (ignored, logged by the caller).
    pub unparsable: Vec<String>,
}

/// The API server's `/version` answer.
pub fn server_version(
    info: &k8s_openapi::apimachinery::pkg::version::Info,
) -> crate::config::ServerVersion {
    crate::config::ServerVersion {
        major: info.major.clone(),
        minor: info.minor.clone(),
        git_version: info.git_version.clone(),
    }
}

pub fn node_view(node: &Node) -> NodeView {
    let status = node.status.clone().unwrap_or_default();
    let mut view = NodeView {
        kubelet_version: status.node_info.map(|i| i.kubelet_version),
        ..NodeView::default()
    };
    for (name, q) in status.allocatable.iter().flatten() {
        match Quantity::parse_json_text(&q.0) {
            Ok(v) => {
                view.allocatable.insert(name.clone(), v);
            }
            Err(e) => view.unparsable.push(format!("{name}={:?}: {e}", q.0)),
        }
    }
    view
}

/// The status a container should show: `allocatedResources` and `resources` (spec §12).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerStatusResources {
    pub allocated: ResourceList,
    pub resources: ResourceRequirements,
}

/// What the controller wants the pod's status to say.
#[derive(Debug, Clone)]
pub struct StatusIntent<'a> {
    /// By container name, for containers with a runtime status.
    pub containers: &'a BTreeMap<String, ContainerStatusResources>,
    pub conditions: &'a ResizeConditions,
    /// `status.observedGeneration` to report (never decreased by the caller).
    pub observed_generation: Option<i64>,
    /// Write legacy `status.resize` (decision 2).
    pub legacy_resize: bool,
    /// RFC 3339 time for `lastProbeTime` / a changed `lastTransitionTime`.
    pub now: &'a str,
}

fn parse_requirements(v: Option<&Value>) -> Option<ResourceRequirements> {
    v.and_then(|v| serde_json::from_value(v.clone()).ok())
}

fn parse_list(v: Option<&Value>) -> Option<ResourceList> {
    v.and_then(|v| serde_json::from_value(v.clone()).ok())
}

/// Rewrites an atomic status list with the intended resources; `None` when nothing changes.
fn patched_statuses(
    list: &[ApiContainerStatus],
    intent: &BTreeMap<String, ContainerStatusResources>,
) -> Option<Vec<Value>> {
    let mut changed = false;
    let out = list
        .iter()
        .map(|s| {
            let mut raw = s.raw.clone();
            let Some(want) = intent.get(&s.name) else {
                return raw;
            };
            if s.container_id.is_none() {
                return raw;
            }
            let obj = raw.as_object_mut().expect("container status is an object");
            if parse_list(obj.get("allocatedResources")).as_ref() != Some(&want.allocated) {
                obj.insert(
                    "allocatedResources".into(),
                    serde_json::to_value(&want.allocated).unwrap_or(Value::Null),
                );
                changed = true;
            }
            if parse_requirements(obj.get("resources")).as_ref() != Some(&want.resources) {
                obj.insert(
                    "resources".into(),
                    serde_json::to_value(&want.resources).unwrap_or(Value::Null),
                );
                changed = true;
            }
            raw
        })
        .collect();
    changed.then_some(out)
}

fn condition_value(
    type_: &str,
    want: &ResizeCondition,
    previous: Option<&ResizeCondition>,
    previous_transition: Option<&String>,
    now: &str,
) -> Value {
    let transition = match (previous, previous_transition) {
        (Some(p), Some(t)) if p.reason == want.reason => t.clone(),
        _ => now.to_string(),
    };
    let mut c = json!({
        "type": type_,
        "status": "True",
        "observedGeneration": want.observed_generation,
        "lastProbeTime": now,
        "lastTransitionTime": transition,
    });
    if !want.reason.is_empty() {
        c["reason"] = json!(want.reason);
    }
    if !want.message.is_empty() {
        c["message"] = json!(want.message);
    }
    c
}

/// The strategic-merge patch for `pods/status` that makes the API status say `intent`, with a
/// `resourceVersion` precondition; `None` when the status already says it.
pub fn status_patch(view: &PodView, intent: &StatusIntent<'_>) -> Option<StatusPatch> {
    let mut status = Map::new();
    if let Some(list) = patched_statuses(&view.container_statuses, intent.containers) {
        status.insert("containerStatuses".into(), Value::Array(list));
    }
    if let Some(list) = patched_statuses(&view.init_container_statuses, intent.containers) {
        status.insert("initContainerStatuses".into(), Value::Array(list));
    }
    let mut conditions = Vec::new();
    for (type_, want, have) in [
        (
            POD_RESIZE_PENDING,
            &intent.conditions.pending,
            &view.conditions.pending,
        ),
        (
            POD_RESIZE_IN_PROGRESS,
            &intent.conditions.in_progress,
            &view.conditions.in_progress,
        ),
    ] {
        match (want, have) {
            (Some(w), h) if Some(w) != h.as_ref() => conditions.push(condition_value(
                type_,
                w,
                h.as_ref(),
                view.condition_transition_times.get(type_),
                intent.now,
            )),
            (None, Some(_)) => conditions.push(json!({"type": type_, "$patch": "delete"})),
            _ => {}
        }
    }
    if !conditions.is_empty() {
        status.insert("conditions".into(), Value::Array(conditions));
    }
    // a pod without `metadata.generation` (API server 1.32) has no `observedGeneration` either:
    // the server would drop it, and the patch would be resent on every pass
    if let Some(g) = intent.observed_generation.filter(|g| *g > 0) {
        if view.observed_generation.is_none_or(|have| have < g) {
            status.insert("observedGeneration".into(), json!(g));
        }
    }
    if intent.legacy_resize {
        let want = intent.conditions.legacy_resize();
        if want != view.legacy_resize.as_deref() {
            status.insert("resize".into(), want.map_or(Value::Null, |s| json!(s)));
        }
    }
    if status.is_empty() {
        return None;
    }
    Some(StatusPatch {
        namespace: view.spec.namespace.clone(),
        name: view.spec.name.clone(),
        body: json!({
            "metadata": {"resourceVersion": view.resource_version},
            "status": Value::Object(status),
        }),
    })
}

/// A pod whose spec resizelet cannot use (a quantity it cannot parse, or refuses): enough to
/// address it and say why. Its checkpoints are kept and its status is not otherwise touched.
#[derive(Debug, Clone, PartialEq)]
pub struct UnusablePod {
    /// Identity only (`spec` has no containers): for the event and the status patch, never for
    /// a pass.
    pub view: PodView,
    /// Which field is wrong, and why (the conversion error).
    pub reason: String,
    /// `lastTransitionTime` of a `PodResizePending{Infeasible}` the pod already has.
    pub infeasible_since: Option<String>,
}

/// `None` when the pod cannot even be addressed (no uid or name) or is not meant for resizing
/// any more (terminal or being deleted).
pub fn unusable_pod(pod: &Pod, error: &ConvertError) -> Option<UnusablePod> {
    let meta = &pod.metadata;
    let status = pod.status.as_ref();
    if meta.deletion_timestamp.is_some()
        || matches!(
            status.and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        )
    {
        return None;
    }
    let spec = PodSpec {
        uid: meta.uid.clone()?,
        namespace: meta.namespace.clone().unwrap_or_else(|| "default".into()),
        name: meta.name.clone()?,
        generation: meta.generation.unwrap_or(0),
        ..PodSpec::default()
    };
    let infeasible_since = status
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .find(|c| {
            c.type_ == POD_RESIZE_PENDING
                && c.status == "True"
                && c.reason.as_deref() == Some("Infeasible")
        })
        .and_then(|c| c.last_transition_time.as_ref())
        .map(|t| t.0.to_string());
    Some(UnusablePod {
        view: PodView {
            spec: Arc::new(spec),
            node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
            resource_version: meta.resource_version.clone().unwrap_or_default(),
            terminal: false,
            deleting: false,
            conditions: ResizeConditions::default(),
            condition_transition_times: BTreeMap::new(),
            observed_generation: status.and_then(|s| s.observed_generation),
            legacy_resize: None,
            kubelet_resize_conditions: Vec::new(),
            container_statuses: Vec::new(),
            init_container_statuses: Vec::new(),
            labels: meta.labels.clone().unwrap_or_default(),
        },
        reason: error.to_string(),
        infeasible_since,
    })
}

/// The status patch for an unusable pod: `PodResizePending{Infeasible}` naming the field, at the
/// pod's generation, and `observedGeneration` advanced (the kubelet has seen this spec and
/// cannot act on it). Nothing else of the status is touched (no precondition needed: the
/// condition is merged by its `type` key).
pub fn unusable_status_patch(u: &UnusablePod, now: &str) -> Value {
    let generation = u.view.spec.generation;
    let observed = u.view.observed_generation.unwrap_or(0).max(generation);
    json!({"status": {
        "observedGeneration": observed,
        "conditions": [{
            "type": POD_RESIZE_PENDING,
            "status": "True",
            "reason": "Infeasible",
            "message": u.reason,
            "observedGeneration": generation,
            "lastProbeTime": now,
            "lastTransitionTime": u.infeasible_since.as_deref().unwrap_or(now),
        }],
    }})
}

/// A watched pod as the controller takes it: its view, or why its spec is refused (with what
/// can be reported about it).
pub fn watched_pod(pod: &Pod) -> WatchedPod {
    match pod_view(pod) {
        Ok(view) => WatchedPod::Usable(view),
        Err(error) => WatchedPod::Refused {
            unusable: unusable_pod(pod, &error),
            error,
        },
    }
}

/// The pod watcher's event as the controller's [`Input`]; `None` for the delete of a pod
/// without a uid (nothing of it can be known).
pub fn pod_input(event: watcher::Event<Pod>) -> Option<Input> {
    let event = match event {
        watcher::Event::Init => PodEvent::RelistStarted,
        watcher::Event::InitApply(pod) => PodEvent::Listed(watched_pod(&pod)),
        watcher::Event::InitDone => PodEvent::RelistDone,
        watcher::Event::Apply(pod) => PodEvent::Applied(watched_pod(&pod)),
        watcher::Event::Delete(pod) => PodEvent::Deleted {
            uid: pod.metadata.uid?,
        },
    };
    Some(Input::Pod(event))
}

/// The node watcher's event as the controller's [`Input`]: the node as listed or changed; the
/// rest (a relist's start and end, a delete) says nothing the controller uses.
pub fn node_input(event: watcher::Event<Node>) -> Option<Input> {
    match event {
        watcher::Event::Apply(node) | watcher::Event::InitApply(node) => {
            Some(Input::Node(node_view(&node)))
        }
        watcher::Event::Init | watcher::Event::InitDone | watcher::Event::Delete(_) => None,
    }
}

/// Now as the API's RFC 3339 time of a condition (`lastProbeTime`, `lastTransitionTime`: whole
/// seconds).
pub fn now_rfc3339() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .round(k8s_openapi::jiff::Unit::Second)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// An API time (RFC 3339) in milliseconds since the Unix epoch; `None` when it does not parse.
pub fn unix_millis(rfc3339: &str) -> Option<i64> {
    rfc3339
        .parse::<k8s_openapi::jiff::Timestamp>()
        .ok()
        .map(|t| t.as_millisecond())
}

mod events;
pub use events::{event_object, series_patch};

#[cfg(test)]
mod tests;
