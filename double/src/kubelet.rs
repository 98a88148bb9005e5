//! The gate-off kubelet actor: the status manager of a v1.32 kubelet with
//! `InPlacePodVerticalScaling` off (`pkg/kubelet/status/status_manager.go`).
//!
//! The kubelet keeps its own status per pod; such a kubelet never fills
//! `containerStatuses[*].resources`/`allocatedResources` or `status.resize`.
//! - A status change of its own (a container starts, becomes ready,
//!   restarts: [`KubeletActorHandle::set_status`]) is synced at once
//!   (`podStatusChannel` → `syncBatch(false)`), so a starting pod makes a
//!   burst of writes.
//! - Every `period` (the kubelet's 10 s `syncBatch(true)`), every pod whose API
//!   status differs from its own (`needsReconcile` → `isPodStatusByKubeletEqual`:
//!   a deep equal of everything except conditions the kubelet does not own,
//!   container statuses sorted by name) is synced.
//! - A sync (`syncPod`) reads the pod, merges (`mergePodStatus`: conditions the
//!   kubelet does not own — in v1.32 that includes `PodResizePending`/
//!   `PodResizeInProgress` — are kept from the API) and sends a strategic
//!   merge patch of the difference (`PatchPodStatus`): changed top-level
//!   fields, `null` for removed ones, the whole atomic `containerStatuses`
//!   list; nothing is sent when nothing differs. The patch goes through
//!   admission as user `system:node:<node>`.
//!
//! A pod never given a status with `set_status` is learnt from the API at every
//! reconcile: its own status is the API status (what test drivers write stands
//! for the kubelet's runtime view) without the fields it does not know.

use crate::admission::{self, StatusWrite, UserInfo};
use crate::store::{Kind, StatusWriter};
use crate::{Inner, PatchKind};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Conditions a v1.32 kubelet owns (`PodConditionsByKubelet`) or shares
/// (`PodConditionSharedByKubelet`).
const KUBELET_CONDITIONS: [&str; 4] = [
    "PodReadyToStartContainers",
    "Initialized",
    "Ready",
    "ContainersReady",
];
const SHARED_CONDITIONS: [&str; 1] = ["DisruptionTarget"];

fn owned(c: &Value) -> bool {
    c.get("type")
        .and_then(Value::as_str)
        .is_some_and(|t| KUBELET_CONDITIONS.contains(&t))
}

fn owned_or_shared(c: &Value) -> bool {
    owned(c)
        || c.get("type")
            .and_then(Value::as_str)
            .is_some_and(|t| SHARED_CONDITIONS.contains(&t))
}

/// Counters of the actor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KubeletStats {
    /// Periodic reconciles (`syncBatch(true)`) run.
    pub reconciles: u64,
    /// Status patches sent (stored or not: a patch a webhook turns into a
    /// no-op is still a request).
    pub patches_sent: u64,
    /// Syncs that found nothing to send.
    pub unchanged: u64,
    /// Patches the API refused.
    pub errors: u64,
}

struct Cached {
    status: Value,
    version: u64,
    synced: u64,
    /// Never given by [`KubeletActorHandle::set_status`]: the API status (as
    /// the driver wrote it, standing in for the kubelet's runtime view) minus
    /// what the kubelet does not know, re-learnt at every reconcile.
    learnt: bool,
}

struct Shared {
    pods: Mutex<BTreeMap<(String, String), Cached>>,
    stats: Mutex<KubeletStats>,
}

/// Stops the actor when stopped or dropped.
pub struct KubeletActorHandle {
    task: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
    tx: mpsc::UnboundedSender<(String, String)>,
}

impl KubeletActorHandle {
    pub fn stop(mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }

    pub fn stats(&self) -> KubeletStats {
        self.shared
            .stats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The kubelet's own status of a pod changes (JSON merge patch onto its
    /// status, e.g. a container started or became ready); synced at once.
    pub fn set_status(&self, ns: &str, name: &str, merge: &Value) {
        {
            let mut pods = self.shared.pods.lock().unwrap_or_else(|e| e.into_inner());
            let c = pods
                .entry((ns.to_string(), name.to_string()))
                .or_insert_with(|| Cached {
                    status: json!({}),
                    version: 0,
                    synced: 0,
                    learnt: false,
                });
            c.learnt = false;
            let mut s = crate::patch::merge_patch(&c.status, merge);
            gate_off_status(&mut s);
            c.status = s;
            c.version += 1;
        }
        let _ = self.tx.send((ns.to_string(), name.to_string()));
    }
}

impl Drop for KubeletActorHandle {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// What a gate-off kubelet does not know of a pod status.
pub fn gate_off_status(status: &mut Value) {
    let Some(status) = status.as_object_mut() else {
        return;
    };
    status.remove("resize");
    for list in ["containerStatuses", "initContainerStatuses"] {
        if let Some(Value::Array(cs)) = status.get_mut(list) {
            for c in cs.iter_mut().filter_map(Value::as_object_mut) {
                c.remove("resources");
                c.remove("allocatedResources");
            }
        }
    }
}

/// The API status as a v1.32 kubelet decodes it: fields its types lack
/// (added in v1.33: `observedGeneration` of the status and its conditions,
/// `stopSignal` of container statuses) are dropped on decode, so the kubelet
/// neither compares nor patches them.
pub fn as_decoded_by_v1_32(status: &Value) -> Value {
    let mut s = status.clone();
    if let Some(m) = s.as_object_mut() {
        m.remove("observedGeneration");
        if let Some(Value::Array(conds)) = m.get_mut("conditions") {
            for c in conds.iter_mut().filter_map(Value::as_object_mut) {
                c.remove("observedGeneration");
            }
        }
        for list in ["containerStatuses", "initContainerStatuses"] {
            if let Some(Value::Array(cs)) = m.get_mut(list) {
                for c in cs.iter_mut().filter_map(Value::as_object_mut) {
                    c.remove("stopSignal");
                }
            }
        }
    }
    s
}

fn sorted_by_name(v: Option<&Value>) -> Vec<Value> {
    let mut l = v.and_then(Value::as_array).cloned().unwrap_or_default();
    l.sort_by(|a, b| {
        a["name"]
            .as_str()
            .unwrap_or("")
            .cmp(b["name"].as_str().unwrap_or(""))
    });
    l
}

/// `isPodStatusByKubeletEqual(api, own)` after `normalizeStatus`.
pub fn status_equal_by_kubelet(api: &Value, own: &Value) -> bool {
    let empty = Vec::new();
    let api_conds = api["conditions"].as_array().unwrap_or(&empty);
    for c in own["conditions"].as_array().unwrap_or(&empty) {
        if owned_or_shared(c) {
            let same = api_conds.iter().any(|o| {
                o["type"] == c["type"]
                    && o["status"] == c["status"]
                    && o["message"] == c["message"]
                    && o["reason"] == c["reason"]
            });
            if !same {
                return false;
            }
        }
    }
    let strip = |s: &Value| -> Map<String, Value> {
        let mut m = s.as_object().cloned().unwrap_or_default();
        m.remove("conditions");
        for l in ["containerStatuses", "initContainerStatuses"] {
            if m.contains_key(l) {
                let sorted = sorted_by_name(m.get(l));
                m.insert(l.into(), Value::Array(sorted));
            }
        }
        m.retain(|_, v| !v.is_null());
        m
    };
    strip(api) == strip(own)
}

/// `mergePodStatus(api, own)`: the kubelet's status, with the API's
/// conditions the kubelet does not own kept (first, as the kubelet orders them).
pub fn merge_status(api: &Value, own: &Value) -> Value {
    let mut merged = own.as_object().cloned().unwrap_or_default();
    let empty = Vec::new();
    let mut conds: Vec<Value> = api["conditions"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .filter(|c| !owned(c))
        .cloned()
        .collect();
    conds.extend(
        own["conditions"]
            .as_array()
            .unwrap_or(&empty)
            .iter()
            .filter(|c| owned(c))
            .cloned(),
    );
    if conds.is_empty() {
        merged.remove("conditions");
    } else {
        merged.insert("conditions".into(), Value::Array(conds));
    }
    Value::Object(merged)
}

fn conditions_by_type(v: &Value) -> BTreeMap<String, Value> {
    v["conditions"]
        .as_array()
        .map(|l| {
            l.iter()
                .map(|c| (c["type"].as_str().unwrap_or("").to_string(), c.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// The status part of the kubelet's strategic merge patch from `api` to
/// `merged` (`None`: unchanged, nothing is sent).
pub fn status_patch(api: &Value, merged: &Value) -> Option<Value> {
    let empty = Map::new();
    let a = api.as_object().unwrap_or(&empty);
    let m = merged.as_object().unwrap_or(&empty);
    let mut patch = Map::new();
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(m.keys()).collect();
    for k in keys {
        if k == "conditions" {
            // merged by type: changed or new conditions only
            let (ac, mc) = (conditions_by_type(api), conditions_by_type(merged));
            let changed: Vec<Value> = mc
                .iter()
                .filter(|(t, c)| ac.get(*t) != Some(*c))
                .map(|(_, c)| c.clone())
                .collect();
            if !changed.is_empty() {
                patch.insert(k.clone(), Value::Array(changed));
            }
            continue;
        }
        match (a.get(k), m.get(k)) {
            (x, y) if x == y => {}
            (_, Some(v)) => {
                patch.insert(k.clone(), v.clone());
            }
            (Some(_), None) => {
                patch.insert(k.clone(), Value::Null);
            }
            (None, None) => {}
        }
    }
    (!patch.is_empty()).then_some(Value::Object(patch))
}

/// Learns pods newly bound to the node, forgets deleted ones; returns the
/// API objects of the node's pods.
fn refresh(inner: &Inner, node: &str, shared: &Shared) -> BTreeMap<(String, String), Value> {
    let on_node: BTreeMap<(String, String), Value> = inner
        .store
        .lock()
        .pods
        .iter()
        .filter(|(_, p)| p.pointer("/spec/nodeName").and_then(Value::as_str) == Some(node))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut pods = shared.pods.lock().unwrap_or_else(|e| e.into_inner());
    pods.retain(|k, _| on_node.contains_key(k));
    for (k, p) in &on_node {
        let mut learnt = as_decoded_by_v1_32(p.get("status").unwrap_or(&json!({})));
        gate_off_status(&mut learnt);
        match pods.get_mut(k) {
            Some(c) if c.learnt => c.status = learnt,
            Some(_) => {}
            None => {
                pods.insert(
                    k.clone(),
                    Cached {
                        status: learnt,
                        version: 1,
                        synced: 0,
                        learnt: true,
                    },
                );
            }
        }
    }
    on_node
}

/// `syncPod`: patch the API status towards the kubelet's own.
async fn sync_pod(inner: &Inner, node: &str, shared: &Shared, key: &(String, String)) {
    let Some((own, version)) = shared
        .pods
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(key)
        .map(|c| (c.status.clone(), c.version))
    else {
        return;
    };
    let Some(pod) = inner.store.get(Kind::Pod, &key.0, &key.1) else {
        return;
    };
    let api = as_decoded_by_v1_32(pod.get("status").unwrap_or(&json!({})));
    let merged = merge_status(&api, &own);
    let count = |f: &dyn Fn(&mut KubeletStats)| {
        f(&mut shared.stats.lock().unwrap_or_else(|e| e.into_inner()))
    };
    let Some(status) = status_patch(&api, &merged) else {
        count(&|s| s.unchanged += 1);
        mark_synced(shared, key, version);
        return;
    };
    count(&|s| s.patches_sent += 1);
    let patch = json!({"metadata": {"uid": pod["metadata"]["uid"]}, "status": status});
    let user = UserInfo::named(&format!("system:node:{node}"));
    match admission::write_pod_status(
        inner,
        &user,
        &key.0,
        &key.1,
        StatusWrite::Patch(PatchKind::Strategic, &patch),
        StatusWriter::Kubelet,
    )
    .await
    {
        Ok(_) => mark_synced(shared, key, version),
        Err(e) => {
            count(&|s| s.errors += 1);
            tracing::debug!(pod = %format!("{}/{}", key.0, key.1), error = %e, "kubelet actor: status patch failed");
        }
    }
}

fn mark_synced(shared: &Shared, key: &(String, String), version: u64) {
    if let Some(c) = shared
        .pods
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_mut(key)
    {
        c.synced = c.synced.max(version);
    }
}

/// `syncBatch(true)`: every pod with an unsynced own status, or whose API
/// status differs from its own.
async fn reconcile(inner: &Inner, node: &str, shared: &Shared) {
    let on_node = refresh(inner, node, shared);
    shared
        .stats
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .reconciles += 1;
    let due: Vec<(String, String)> = {
        let pods = shared.pods.lock().unwrap_or_else(|e| e.into_inner());
        pods.iter()
            .filter(|(k, c)| {
                c.synced < c.version
                    || on_node.get(*k).is_some_and(|p| {
                        !status_equal_by_kubelet(
                            &as_decoded_by_v1_32(p.get("status").unwrap_or(&Value::Null)),
                            &c.status,
                        )
                    })
            })
            .map(|(k, _)| k.clone())
            .collect()
    };
    for k in due {
        sync_pod(inner, node, shared, &k).await;
    }
}

pub fn start(inner: Arc<Inner>, node: String, period: Duration) -> KubeletActorHandle {
    let shared = Arc::new(Shared {
        pods: Mutex::new(BTreeMap::new()),
        stats: Mutex::new(KubeletStats::default()),
    });
    let (tx, mut rx) = mpsc::unbounded_channel::<(String, String)>();
    let s = shared.clone();
    let task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => reconcile(&inner, &node, &s).await,
                Some(k) = rx.recv() => {
                    // syncBatch(false): only statuses newer than what was sent
                    let due = s
                        .pods
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .get(&k)
                        .is_some_and(|c| c.synced < c.version);
                    if due {
                        sync_pod(&inner, &node, &s, &k).await;
                    }
                }
            }
        }
    });
    KubeletActorHandle {
        task: Some(task),
        shared,
        tx,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equality_ignores_foreign_conditions_and_order() {
        let own = json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [{"name": "b"}, {"name": "a"}]});
        let api = json!({"phase": "Running", "conditions": [
                {"type": "PodResizePending", "status": "True"},
                {"type": "Ready", "status": "True", "lastTransitionTime": "x"}],
            "containerStatuses": [{"name": "a"}, {"name": "b"}]});
        assert!(status_equal_by_kubelet(&api, &own));
        let mut with_fields = api.clone();
        with_fields["containerStatuses"][0]["resources"] = json!({});
        assert!(!status_equal_by_kubelet(&with_fields, &own));
        let mut not_ready = api.clone();
        not_ready["conditions"][1]["status"] = json!("False");
        assert!(!status_equal_by_kubelet(&not_ready, &own));
    }

    #[test]
    fn the_patch_carries_the_whole_list_without_the_resize_fields() {
        let api = json!({"phase": "Running", "resize": "InProgress",
            "conditions": [{"type": "PodResizeInProgress", "status": "True"}, {"type": "Ready", "status": "True"}],
            "containerStatuses": [{"name": "a", "containerID": "x", "resources": {}, "allocatedResources": {}},
                                  {"name": "b", "containerID": "y"}]});
        let mut own = api.clone();
        gate_off_status(&mut own);
        let merged = merge_status(&api, &own);
        let p = status_patch(&api, &merged).unwrap();
        assert_eq!(
            p,
            json!({"resize": null, "containerStatuses": [{"name": "a", "containerID": "x"}, {"name": "b", "containerID": "y"}]})
        );
        assert_eq!(status_patch(&merged, &merged), None);
    }
}
