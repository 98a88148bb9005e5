//! The object store: pods, nodes and events as JSON values, one global
//! resourceVersion, a bounded history of watch events for resumption and a
//! broadcast feed of live changes. Every write goes through [`State::commit`].

use crate::patch;
use crate::pod;
use crate::util;
use crate::validation::{self, FieldError, MetaRules};
use crate::{ApiError, EventType, Fault, PatchKind, ServerVersion, Stats, WatchEvent};
use serde_json::{json, Value};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::broadcast;

/// How many watch events are kept for resumption.
pub const HISTORY: usize = 10_000;

/// The kinds of object the double stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Pod,
    Node,
    Event,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Pod => "Pod",
            Kind::Node => "Node",
            Kind::Event => "Event",
        }
    }

    /// `(group, kind)` as `NewInvalid` names it for this API version.
    fn group_kind(self, api_version: &str) -> (&'static str, &'static str) {
        match (self, api_version) {
            (Kind::Event, "events.k8s.io/v1") => ("events.k8s.io", "Event"),
            _ => ("", self.name()),
        }
    }

    fn meta_rules(self) -> MetaRules {
        MetaRules {
            namespaced: self != Kind::Node,
        }
    }

    pub fn plural(self) -> &'static str {
        match self {
            Kind::Pod => "pods",
            Kind::Node => "nodes",
            Kind::Event => "events",
        }
    }
}

type Key = (String, String);

pub struct State {
    pub rv: u64,
    /// A watch from resourceVersion `r` can resume iff `r >= floor`.
    pub floor: u64,
    pub pods: BTreeMap<Key, Value>,
    pub nodes: BTreeMap<Key, Value>,
    pub events: BTreeMap<Key, Value>,
    pub history: VecDeque<WatchEvent>,
    pub stats: Stats,
    pub faults: VecDeque<Fault>,
    pub bookmark_interval: Duration,
    pub epoch: u64,
    pub version: ServerVersion,
    /// What one stored write costs (paid by HTTP write requests before they are applied).
    pub write_latency: Duration,
    /// HTTP writes refused as invalid (4xx other than 404/409), oldest first (bounded).
    pub refusals: VecDeque<crate::Refusal>,
    /// The minor version `/version` reports (follows `version`; `set_minor_version` may
    /// name another one of the same mode).
    pub minor_version: u32,
}

pub struct Store {
    pub state: Mutex<State>,
    pub tx: broadcast::Sender<WatchEvent>,
    pub epoch_tx: tokio::sync::watch::Sender<u64>,
}

fn key(ns: &str, name: &str) -> Key {
    (ns.to_string(), name.to_string())
}

fn rv_of(v: &Value) -> Option<&str> {
    v.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn name_of(v: &Value) -> &str {
    v.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// Which counter a status write feeds.
#[derive(Clone, Copy)]
pub enum StatusWriter {
    Patch,
    Put,
    Kubelet,
}

impl State {
    pub fn map(&mut self, kind: Kind) -> &mut BTreeMap<Key, Value> {
        match kind {
            Kind::Pod => &mut self.pods,
            Kind::Node => &mut self.nodes,
            Kind::Event => &mut self.events,
        }
    }

    /// The stored object under `k`, or the API server's 404 for it.
    pub fn get_or_404(&mut self, kind: Kind, k: &Key) -> Result<Value, ApiError> {
        self.map(kind)
            .get(k)
            .cloned()
            .ok_or_else(|| ApiError::not_found(kind.plural(), &k.1))
    }

    /// Stores (or removes, for `Deleted`) an object under a new
    /// resourceVersion, records the watch event and broadcasts it.
    pub fn commit(
        &mut self,
        tx: &broadcast::Sender<WatchEvent>,
        kind: Kind,
        event_type: EventType,
        k: Key,
        mut obj: Value,
        old: Option<Value>,
    ) -> Value {
        self.rv += 1;
        if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            m.insert("resourceVersion".into(), Value::String(self.rv.to_string()));
        }
        match event_type {
            EventType::Deleted => {
                self.map(kind).remove(&k);
            }
            _ => {
                self.map(kind).insert(k, obj.clone());
            }
        }
        let ev = WatchEvent {
            event_type,
            kind: kind.name().to_string(),
            object: obj.clone(),
            old_object: old,
            resource_version: self.rv,
        };
        self.history.push_back(ev.clone());
        while self.history.len() > HISTORY {
            if let Some(e) = self.history.pop_front() {
                self.floor = e.resource_version;
            }
        }
        let _ = tx.send(ev);
        obj
    }
}

pub fn apply_patch(kind: PatchKind, cur: &Value, p: &Value) -> Result<Value, ApiError> {
    let out = match kind {
        PatchKind::Strategic => patch::strategic_merge_patch(cur, p),
        PatchKind::Merge => Ok(patch::merge_patch(cur, p)),
        PatchKind::Json => patch::json_patch(cur, p),
    };
    let out = out.map_err(|e| ApiError::new(422, "Invalid", e.0))?;
    if !out.is_object() {
        return Err(ApiError::bad_request("patched object is not a JSON object"));
    }
    Ok(out)
}

fn check_precondition(kind: Kind, updated: &Value, cur: &Value) -> Result<(), ApiError> {
    match rv_of(updated) {
        Some(want) if Some(want) != rv_of(cur) => {
            Err(ApiError::conflict(kind.plural(), name_of(cur)))
        }
        _ => Ok(()),
    }
}

fn refuse(kind: Kind, api_version: &str, name: &str, errs: &[FieldError]) -> Result<(), ApiError> {
    if errs.is_empty() {
        return Ok(());
    }
    let (group, k) = kind.group_kind(api_version);
    Err(validation::invalid(group, k, name, errs))
}

fn api_version_of(v: &Value) -> &str {
    v.get("apiVersion").and_then(Value::as_str).unwrap_or("v1")
}

/// What a server of `version` keeps of a pod status: 1.32's `PodStatus` and `PodCondition`
/// have no `observedGeneration`, so the decoder drops it (`pkg/apis/core/types.go` v1.32).
fn drop_unknown_status_fields(version: ServerVersion, pod: &mut Value) {
    if version != ServerVersion::V1_32 {
        return;
    }
    let Some(status) = pod.get_mut("status").and_then(Value::as_object_mut) else {
        return;
    };
    status.remove("observedGeneration");
    if let Some(Value::Array(conds)) = status.get_mut("conditions") {
        for c in conds.iter_mut().filter_map(Value::as_object_mut) {
            c.remove("observedGeneration");
        }
    }
}

/// 1.32's `MarkPodProposedForResize` (`pkg/api/pod/util.go`): a resize that changes a
/// container whose requests differ from its `allocatedResources` sets `status.resize` to
/// `Proposed`.
fn mark_proposed_for_resize(old: &Value, new: &mut Value) {
    let same = |a: Option<&Value>, b: Option<&Value>| {
        let parse = |v: Option<&Value>| -> BTreeMap<String, Option<f64>> {
            v.and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .map(|(k, q)| (k.clone(), q.as_str().and_then(util::parse_quantity)))
                        .collect()
                })
                .unwrap_or_default()
        };
        parse(a) == parse(b)
    };
    let mut proposed = false;
    for (i, c) in new
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let Some(req) = c.pointer("/resources/requests") else {
            continue;
        };
        if old.pointer(&format!("/spec/containers/{i}/resources")) == c.get("resources") {
            continue;
        }
        let status = new
            .pointer("/status/containerStatuses")
            .and_then(Value::as_array)
            .and_then(|l| l.iter().find(|s| s.get("name") == c.get("name")));
        if let Some(cs) = status {
            if !same(Some(req), cs.get("allocatedResources")) {
                proposed = true;
                break;
            }
        }
    }
    if proposed {
        new["status"]["resize"] = "Proposed".into();
    }
}

impl Store {
    pub fn new() -> Store {
        let (tx, _) = broadcast::channel(16_384);
        let (epoch_tx, _) = tokio::sync::watch::channel(0);
        Store {
            state: Mutex::new(State {
                rv: 1000,
                floor: 1000,
                pods: BTreeMap::new(),
                nodes: BTreeMap::new(),
                events: BTreeMap::new(),
                history: VecDeque::new(),
                stats: Stats::default(),
                faults: VecDeque::new(),
                bookmark_interval: Duration::from_secs(1),
                epoch: 0,
                version: ServerVersion::default(),
                write_latency: crate::DEFAULT_WRITE_LATENCY,
                refusals: VecDeque::new(),
                minor_version: ServerVersion::default().minor(),
            }),
            tx,
            epoch_tx,
        }
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(&self, kind: Kind, ns: &str, name: &str) -> Option<Value> {
        self.lock().map(kind).get(&key(ns, name)).cloned()
    }

    pub fn get_or_404(&self, kind: Kind, ns: &str, name: &str) -> Result<Value, ApiError> {
        self.lock().get_or_404(kind, &key(ns, name))
    }

    /// Creates an object; `ns` is ignored for nodes.
    pub fn create(
        &self,
        kind: Kind,
        ns: &str,
        mut obj: Value,
        api_version: &str,
    ) -> Result<Value, ApiError> {
        let Some(o) = obj.as_object_mut() else {
            return Err(ApiError::bad_request("object is not a JSON object"));
        };
        o.entry("kind").or_insert_with(|| kind.name().into());
        o.entry("apiVersion").or_insert_with(|| api_version.into());
        let meta = o.entry("metadata").or_insert_with(|| json!({}));
        let Some(meta) = meta.as_object_mut() else {
            return Err(ApiError::bad_request("metadata is not a JSON object"));
        };
        let mut name = meta
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if name.is_empty() {
            // the name is generated before validation (BeforeCreate), so a refused
            // generateName is reported with the generated name
            if let Some(g) = meta.get("generateName").and_then(Value::as_str) {
                if !g.is_empty() {
                    name = format!("{g}{}", util::name_suffix());
                }
            }
        }
        let ns = match kind {
            Kind::Node => String::new(),
            _ => {
                let body_ns = meta
                    .get("namespace")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                if !body_ns.is_empty() && !ns.is_empty() && body_ns != ns {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                let ns = if !ns.is_empty() {
                    ns.to_string()
                } else if !body_ns.is_empty() {
                    body_ns
                } else {
                    "default".to_string()
                };
                meta.insert("namespace".into(), ns.clone().into());
                ns
            }
        };
        if !name.is_empty() {
            meta.insert("name".into(), name.clone().into());
        }
        let meta_errs = match kind {
            // core v1 events are validated by the legacy rules only (`ValidateEventCreate`)
            Kind::Event => Vec::new(),
            _ => validation::validate_object_meta(&Value::Object(meta.clone()), kind.meta_rules()),
        };
        meta.insert("uid".into(), util::uuid().into());
        meta.insert("creationTimestamp".into(), util::now_rfc3339().into());
        meta.remove("resourceVersion");
        let version = self.lock().version;
        if kind == Kind::Pod && version != ServerVersion::V1_32 {
            meta.insert("generation".into(), 1.into());
        }
        if kind == Kind::Pod {
            let spec = o.entry("spec").or_insert_with(|| json!({}));
            pod::default_requests(spec);
            let qos = pod::qos_class(spec);
            let status = o.entry("status").or_insert_with(|| json!({}));
            if let Some(st) = status.as_object_mut() {
                st.entry("phase").or_insert_with(|| "Pending".into());
                st.entry("qosClass").or_insert_with(|| qos.into());
            }
        }
        let errs = match kind {
            Kind::Event => {
                validation::validate_event_create(&obj, api_version == "events.k8s.io/v1")
            }
            Kind::Pod => {
                let mut e = meta_errs;
                if let Some(spec) = obj.get("spec") {
                    e.extend(validation::validate_pod_spec_resources(spec));
                }
                e.extend(validation::validate_pod_status(&obj));
                e
            }
            Kind::Node => {
                let mut e = meta_errs;
                e.extend(validation::validate_node_status(&obj));
                e
            }
        };
        refuse(kind, api_version, &name, &errs)?;
        if kind == Kind::Pod {
            drop_unknown_status_fields(version, &mut obj);
        }
        let mut st = self.lock();
        let k = key(&ns, &name);
        if st.map(kind).contains_key(&k) {
            return Err(ApiError::new(
                409,
                "AlreadyExists",
                format!("{} \"{name}\" already exists", kind.plural()),
            ));
        }
        if kind == Kind::Event {
            st.stats.event_writes += 1;
        }
        Ok(st.commit(&self.tx, kind, EventType::Added, k, obj, None))
    }

    pub fn delete(&self, kind: Kind, ns: &str, name: &str) -> Result<Value, ApiError> {
        let mut st = self.lock();
        let k = key(ns, name);
        let cur = st.get_or_404(kind, &k)?;
        Ok(st.commit(
            &self.tx,
            kind,
            EventType::Deleted,
            k,
            cur.clone(),
            Some(cur),
        ))
    }

    /// A list object of `kind` (`ns` `None` = all namespaces).
    pub fn list(
        &self,
        kind: Kind,
        ns: Option<&str>,
        fs: &util::FieldSelector,
        ls: &util::LabelSelector,
    ) -> Value {
        let mut st = self.lock();
        st.stats.lists += 1;
        let rv = st.rv;
        let items: Vec<Value> = st
            .map(kind)
            .iter()
            .filter(|((n, _), v)| ns.is_none_or(|ns| ns == n) && fs.matches(v) && ls.matches(v))
            .map(|(_, v)| v.clone())
            .collect();
        json!({
            "kind": format!("{}List", kind.name()),
            "apiVersion": if kind == Kind::Event { "events.k8s.io/v1" } else { "v1" },
            "metadata": {"resourceVersion": rv.to_string()},
            "items": items,
        })
    }

    /// Writes `status` from `update` (a patched or replacement object) into
    /// the stored object; other fields of `update` are ignored. No-op writes
    /// are skipped.
    fn write_status(
        &self,
        st: &mut State,
        kind: Kind,
        k: Key,
        cur: Value,
        update: &Value,
        writer: StatusWriter,
    ) -> Result<Value, ApiError> {
        if let Err(e) = check_precondition(kind, update, &cur) {
            if kind == Kind::Pod {
                st.stats.pod_status_conflicts += 1;
            }
            return Err(e);
        }
        match (writer, kind) {
            (StatusWriter::Patch, Kind::Pod) => st.stats.pod_status_patches += 1,
            (StatusWriter::Put, Kind::Pod) => st.stats.pod_status_updates += 1,
            (StatusWriter::Patch | StatusWriter::Put, _) => st.stats.node_status_writes += 1,
            (StatusWriter::Kubelet, _) => {}
        }
        let mut new = status_written(&cur, update);
        let errs = match kind {
            Kind::Pod => validation::validate_pod_status(&new),
            Kind::Node => validation::validate_node_status(&new),
            Kind::Event => Vec::new(),
        };
        refuse(kind, "v1", name_of(&cur), &errs)?;
        if kind == Kind::Pod {
            drop_unknown_status_fields(st.version, &mut new);
        }
        if new == cur {
            return Ok(cur);
        }
        if let StatusWriter::Kubelet = writer {
            st.stats.kubelet_actor_writes += 1;
        }
        Ok(st.commit(&self.tx, kind, EventType::Modified, k, new, Some(cur)))
    }

    pub fn patch_status(
        &self,
        kind: Kind,
        ns: &str,
        name: &str,
        pk: PatchKind,
        p: &Value,
    ) -> Result<Value, ApiError> {
        self.patch_status_as(kind, ns, name, pk, p, StatusWriter::Patch)
    }

    /// [`Store::patch_status`] counted as `writer`'s.
    pub fn patch_status_as(
        &self,
        kind: Kind,
        ns: &str,
        name: &str,
        pk: PatchKind,
        p: &Value,
        writer: StatusWriter,
    ) -> Result<Value, ApiError> {
        let mut st = self.lock();
        let k = key(ns, name);
        let cur = st.get_or_404(kind, &k)?;
        let patched = apply_patch(pk, &cur, p)?;
        self.write_status(&mut st, kind, k, cur, &patched, writer)
    }

    /// Stores an admitted status write (`update`, see [`Store::write_status`])
    /// if the object is still at `expected_rv`, the version admission saw;
    /// `None` when it has moved on (the caller admits again).
    pub fn write_status_if_current(
        &self,
        kind: Kind,
        ns: &str,
        name: &str,
        expected_rv: &str,
        update: &Value,
        writer: StatusWriter,
    ) -> Result<Option<Value>, ApiError> {
        let mut st = self.lock();
        let k = key(ns, name);
        let cur = st.get_or_404(kind, &k)?;
        if rv_of(&cur) != Some(expected_rv) {
            return Ok(None);
        }
        self.write_status(&mut st, kind, k, cur, update, writer)
            .map(Some)
    }

    pub fn replace_status(
        &self,
        kind: Kind,
        ns: &str,
        name: &str,
        body: &Value,
    ) -> Result<Value, ApiError> {
        let mut st = self.lock();
        let k = key(ns, name);
        let cur = st.get_or_404(kind, &k)?;
        if !body.is_object() {
            return Err(ApiError::bad_request("object is not a JSON object"));
        }
        self.write_status(&mut st, kind, k, cur, body, StatusWriter::Put)
    }

    /// The `resize` subresource: only container resources may change.
    pub fn resize(
        &self,
        ns: &str,
        name: &str,
        pk: PatchKind,
        p: &Value,
    ) -> Result<Value, ApiError> {
        let mut st = self.lock();
        let k = key(ns, name);
        let cur = st.get_or_404(Kind::Pod, &k)?;
        let patched = apply_patch(pk, &cur, p)?;
        check_precondition(Kind::Pod, &patched, &cur)?;
        let mut new = cur.clone();
        new["spec"] = patched.get("spec").cloned().unwrap_or_else(|| json!({}));
        pod::default_requests(&mut new["spec"]);
        // `ValidatePodResize`: the new spec's own validation first, then the resize rules,
        // all in one list
        let spec_errs = validation::validate_pod_spec_resources(&new["spec"]);
        let resize_errs = pod::validate_resize(&cur, &new).err().unwrap_or_default();
        if !spec_errs.is_empty() || !resize_errs.is_empty() {
            st.stats.resize_rejections += 1;
            let errs: Vec<String> = spec_errs
                .iter()
                .map(ToString::to_string)
                .chain(resize_errs)
                .collect();
            let detail = if errs.len() == 1 {
                errs[0].clone()
            } else {
                format!("[{}]", errs.join(", "))
            };
            let mut e = ApiError::new(
                422,
                "Invalid",
                format!("Pod \"{name}\" is invalid: {detail}"),
            );
            if !spec_errs.is_empty() {
                // the causes of the field errors (the resize rules' strings carry no field)
                e.details = validation::invalid("", "Pod", name, &spec_errs).details;
            }
            return Err(e);
        }
        st.stats.resize_patches += 1;
        if new == cur {
            return Ok(cur);
        }
        if st.version == ServerVersion::V1_32 {
            mark_proposed_for_resize(&cur, &mut new);
        } else {
            let generation = cur
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            new["metadata"]["generation"] = (generation + 1).into();
        }
        Ok(st.commit(&self.tx, Kind::Pod, EventType::Modified, k, new, Some(cur)))
    }

    /// A patch of the main resource. Pods: only `metadata.labels`,
    /// `metadata.annotations` and `metadata.finalizers` may change; events:
    /// anything but identity.
    pub fn patch_object(
        &self,
        kind: Kind,
        ns: &str,
        name: &str,
        pk: PatchKind,
        p: &Value,
    ) -> Result<Value, ApiError> {
        let mut st = self.lock();
        let k = key(ns, name);
        let cur = st.get_or_404(kind, &k)?;
        let patched = apply_patch(pk, &cur, p)?;
        check_precondition(kind, &patched, &cur)?;
        let mut new = cur.clone();
        match kind {
            Kind::Event => {
                new = patched.clone();
                let v1 = api_version_of(&cur) == "events.k8s.io/v1";
                let errs = validation::validate_event_update(&new, &cur, v1);
                refuse(kind, api_version_of(&cur), name, &errs)?;
                st.stats.event_writes += 1;
            }
            _ => {
                if patched.get("spec") != cur.get("spec") {
                    return Err(ApiError::new(
                        422,
                        "Invalid",
                        format!(
                            "{} \"{name}\" is invalid: spec: Forbidden: the double only allows metadata changes through this patch",
                            kind.name()
                        ),
                    ));
                }
                for f in ["labels", "annotations", "finalizers"] {
                    match patched.pointer(&format!("/metadata/{f}")) {
                        Some(v) => new["metadata"][f] = v.clone(),
                        None => {
                            if let Some(m) = new["metadata"].as_object_mut() {
                                m.remove(f);
                            }
                        }
                    }
                }
                let errs = validation::validate_object_meta_update(
                    &new["metadata"],
                    &cur["metadata"],
                    kind.meta_rules(),
                );
                refuse(kind, "v1", name, &errs)?;
            }
        }
        new["metadata"]["resourceVersion"] = cur["metadata"]["resourceVersion"].clone();
        if new == cur {
            return Ok(cur);
        }
        Ok(st.commit(&self.tx, kind, EventType::Modified, k, new, Some(cur)))
    }

    /// Compacts all history and ends every open watch stream.
    pub fn force_gone(&self) {
        let mut st = self.lock();
        st.rv += 1;
        st.floor = st.rv;
        st.history.clear();
        st.epoch += 1;
        let epoch = st.epoch;
        drop(st);
        self.epoch_tx.send_replace(epoch);
    }
}

/// The object a status write leaves: the stored one with the written `status` (an absent or null
/// one clears it); the status strategy keeps everything else (kubernetes
/// pkg/registry/core/pod/strategy.go `podStatusStrategy.PrepareForUpdate`).
pub(crate) fn status_written(cur: &Value, update: &Value) -> Value {
    let mut new = cur.clone();
    match update.get("status") {
        Some(s) if !s.is_null() => new["status"] = s.clone(),
        _ => {
            if let Some(m) = new.as_object_mut() {
                m.remove("status");
            }
        }
    }
    new
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, requests: Value, limits: Value) -> Value {
        json!({"metadata": {"name": name, "namespace": "ns"},
            "spec": {"nodeName": "n1", "containers": [{"name": "app", "image": "i",
                "resources": {"requests": requests, "limits": limits}}]},
            "status": {"phase": "Running", "containerStatuses": [{"name": "app", "image": "i",
                "imageID": "", "ready": true, "restartCount": 0, "containerID": "containerd://a",
                "state": {"running": {}}, "resources": {"requests": {"cpu": "1"}}}]}})
    }

    /// `validateResourceRequirements` (kubernetes pkg/apis/core/validation/validation.go) on
    /// create: each negative quantity is one `FieldValueInvalid` cause, limits before
    /// requests, and a request above its limit is refused on the `requests` path.
    #[test]
    fn negative_quantities_are_refused_on_create_like_the_api_server() {
        let store = Store::new();
        let e = store
            .create(
                Kind::Pod,
                "",
                pod("neg", json!({"cpu": "-1"}), json!({})),
                "v1",
            )
            .unwrap_err();
        assert_eq!((e.code, e.reason.as_str()), (422, "Invalid"));
        assert_eq!(
            e.message,
            "Pod \"neg\" is invalid: spec.containers[0].resources.requests[cpu]: Invalid value: \"-1\": must be greater than or equal to 0"
        );
        let causes = &e.details.as_ref().unwrap()["causes"];
        assert_eq!(
            causes,
            &json!([{"reason": "FieldValueInvalid",
                "message": "Invalid value: \"-1\": must be greater than or equal to 0",
                "field": "spec.containers[0].resources.requests[cpu]"}])
        );
        let e = store
            .create(
                Kind::Pod,
                "",
                pod(
                    "both",
                    json!({"cpu": "2", "memory": "-64Mi"}),
                    json!({"cpu": "1", "memory": "-1Gi"}),
                ),
                "v1",
            )
            .unwrap_err();
        let fields: Vec<&str> = e.details.as_ref().unwrap()["causes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["field"].as_str().unwrap())
            .collect();
        assert_eq!(
            fields,
            [
                "spec.containers[0].resources.limits[memory]",
                "spec.containers[0].resources.requests",
                "spec.containers[0].resources.requests[memory]",
                // -64Mi is above -1Gi
                "spec.containers[0].resources.requests",
            ],
            "{}",
            e.message
        );
        assert!(
            e.message.contains(
                "requests: Invalid value: \"2\": must be less than or equal to cpu limit of 1"
            ),
            "{}",
            e.message
        );
        assert!(store.get(Kind::Pod, "ns", "neg").is_none());
        assert!(store.get(Kind::Pod, "ns", "both").is_none());
    }

    /// `ValidatePodResize` validates the new spec first: a negative quantity in a `/resize` is
    /// a 422 naming the field, and nothing is stored.
    #[test]
    fn negative_quantities_are_refused_on_resize() {
        let store = Store::new();
        let created = store
            .create(
                Kind::Pod,
                "",
                pod("web", json!({"cpu": "1"}), json!({"cpu": "1"})),
                "v1",
            )
            .unwrap();
        let patch = json!({"spec": {"containers": [{"name": "app",
            "resources": {"requests": {"cpu": "-500m"}, "limits": {"cpu": "1"}}}]}});
        let e = store
            .resize("ns", "web", PatchKind::Strategic, &patch)
            .unwrap_err();
        assert_eq!(e.code, 422);
        assert_eq!(
            e.message,
            "Pod \"web\" is invalid: spec.containers[0].resources.requests[cpu]: Invalid value: \"-500m\": must be greater than or equal to 0"
        );
        assert_eq!(
            e.details.as_ref().unwrap()["causes"][0]["field"],
            "spec.containers[0].resources.requests[cpu]"
        );
        assert_eq!(store.get(Kind::Pod, "ns", "web").unwrap(), created);
        // a valid resize still goes through
        let ok = json!({"spec": {"containers": [{"name": "app",
            "resources": {"requests": {"cpu": "500m"}, "limits": {"cpu": "1"}}}]}});
        store
            .resize("ns", "web", PatchKind::Strategic, &ok)
            .expect("a valid resize");
    }

    #[test]
    fn missing_objects_are_the_api_servers_404() {
        let store = Store::new();
        for e in [
            store.get_or_404(Kind::Pod, "ns", "gone").unwrap_err(),
            store.delete(Kind::Pod, "ns", "gone").unwrap_err(),
            store
                .resize("ns", "gone", PatchKind::Merge, &json!({}))
                .unwrap_err(),
        ] {
            assert_eq!(
                (e.code, e.message.as_str()),
                (404, "pods \"gone\" not found")
            );
        }
    }
}
