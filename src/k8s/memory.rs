//! In-memory [`KubeWriter`] for unit tests of the controller: keeps pods by `namespace/name` as
//! the API server stores them (tests put and read API `Pod`s, as they would through the API),
//! enforces the `resourceVersion` precondition (409), applies status patches with the API-server
//! double's strategic merge patch (merge keys, `$patch: delete`), answers with the pod as
//! `convert::pod_view` sees it, and records every write.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;

use super::convert::{pod_view, PodView};
use super::{EventRecord, KubeWriter, SeriesUpdate, StatusPatch, WriteError};

#[derive(Default)]
struct State {
    pods: BTreeMap<String, Value>,
    rv: u64,
    status_patches: Vec<(String, Value)>,
    events: Vec<EventRecord>,
    /// Series count by event name.
    series: BTreeMap<String, i32>,
    faults: VecDeque<WriteError>,
}

pub struct MemoryWriter {
    state: Mutex<State>,
    /// While `true`, event creates wait (tests that events stay off the status path).
    hold_events: tokio::sync::watch::Sender<bool>,
    held_events: std::sync::atomic::AtomicUsize,
}

impl Default for MemoryWriter {
    fn default() -> Self {
        MemoryWriter {
            state: Mutex::default(),
            hold_events: tokio::sync::watch::Sender::new(false),
            held_events: std::sync::atomic::AtomicUsize::new(0),
        }
    }
}

impl MemoryWriter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores (or replaces) a pod; returns it with a fresh resourceVersion.
    pub fn put_pod(&self, pod: &Pod) -> Pod {
        let mut st = self.state.lock().unwrap();
        st.rv += 1;
        let mut v = serde_json::to_value(pod).unwrap();
        v["metadata"]["resourceVersion"] = Value::String(st.rv.to_string());
        let key = key_of(&v);
        st.pods.insert(key, v.clone());
        serde_json::from_value(v).unwrap()
    }

    pub fn pod(&self, namespace: &str, name: &str) -> Option<Pod> {
        let st = self.state.lock().unwrap();
        st.pods
            .get(&format!("{namespace}/{name}"))
            .map(|v| serde_json::from_value(v.clone()).unwrap())
    }

    pub fn status_patches(&self) -> Vec<(String, Value)> {
        self.state.lock().unwrap().status_patches.clone()
    }

    pub fn events(&self) -> Vec<EventRecord> {
        self.state.lock().unwrap().events.clone()
    }

    /// The series count of the event named `name` (`None` before a repeat).
    pub fn series_count(&self, name: &str) -> Option<i32> {
        self.state.lock().unwrap().series.get(name).copied()
    }

    /// Makes every event create wait until [`MemoryWriter::release_events`].
    pub fn hold_events(&self) {
        self.hold_events.send_replace(true);
    }

    pub fn release_events(&self) {
        self.hold_events.send_replace(false);
    }

    /// How many event creates are waiting on the hold.
    pub fn held_events(&self) -> usize {
        self.held_events.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The next write fails with `error`.
    pub fn fail_next(&self, error: WriteError) {
        self.state.lock().unwrap().faults.push_back(error);
    }
}

fn key_of(v: &Value) -> String {
    let ns = v["metadata"]["namespace"].as_str().unwrap_or("default");
    let name = v["metadata"]["name"].as_str().unwrap_or("");
    format!("{ns}/{name}")
}

/// The pod `v` as the controller sees it (`None`: a spec `convert::pod_view` refuses).
fn view_of(v: &Value) -> Option<PodView> {
    pod_view(&serde_json::from_value(v.clone()).unwrap()).ok()
}

#[async_trait]
impl KubeWriter for MemoryWriter {
    async fn patch_pod_status(&self, patch: &StatusPatch) -> Result<Option<PodView>, WriteError> {
        let mut st = self.state.lock().unwrap();
        if let Some(e) = st.faults.pop_front() {
            return Err(e);
        }
        let key = format!("{}/{}", patch.namespace, patch.name);
        st.rv += 1;
        let rv = st.rv;
        let body = &patch.body;
        st.status_patches.push((key.clone(), body.clone()));
        let pod = st
            .pods
            .get_mut(&key)
            .ok_or(WriteError::NotFound { what: key.clone() })?;
        if let Some(want) = body["metadata"]["resourceVersion"].as_str() {
            if pod["metadata"]["resourceVersion"].as_str() != Some(want) {
                return Err(WriteError::Conflict { what: key });
            }
        }
        // the pods/status subresource takes only `status` from a patch
        let status_only = serde_json::json!({"status": body["status"]});
        *pod = resizelet_double::patch::strategic_merge_patch(pod, &status_only).map_err(|e| {
            WriteError::Api {
                what: key.clone(),
                code: 422,
                message: e.to_string(),
            }
        })?;
        pod["metadata"]["resourceVersion"] = Value::String(rv.to_string());
        Ok(view_of(pod))
    }

    async fn get_pod(&self, namespace: &str, name: &str) -> Result<Option<PodView>, WriteError> {
        let key = format!("{namespace}/{name}");
        let st = self.state.lock().unwrap();
        let pod = st
            .pods
            .get(&key)
            .ok_or(WriteError::NotFound { what: key })?;
        Ok(view_of(pod))
    }

    async fn create_event(&self, event: &EventRecord) -> Result<String, WriteError> {
        let mut gate = self.hold_events.subscribe();
        if *gate.borrow() {
            use std::sync::atomic::Ordering::SeqCst;
            self.held_events.fetch_add(1, SeqCst);
            let _ = gate.wait_for(|held| !held).await;
            self.held_events.fetch_sub(1, SeqCst);
        }
        let mut st = self.state.lock().unwrap();
        if let Some(e) = st.faults.pop_front() {
            return Err(e);
        }
        let name = format!("event-{}", st.events.len());
        st.events.push(EventRecord {
            name: name.clone(),
            ..event.clone()
        });
        Ok(name)
    }

    async fn update_series(&self, series: &SeriesUpdate) -> Result<(), WriteError> {
        let mut st = self.state.lock().unwrap();
        if st.events.iter().any(|e| e.name == series.name) {
            st.series.insert(series.name.clone(), series.count);
        }
        Ok(())
    }
}
