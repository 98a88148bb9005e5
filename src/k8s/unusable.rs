//! Pods whose spec resizelet cannot use (`convert::pod_view` refused it: a quantity it cannot
//! parse, a negative one). Such a pod is still on the node and running: it must not look
//! deleted (a restart's relist would otherwise forget it and delete its checkpoints), and the
//! user must see which field is wrong, as the kubelet surfaces a resize it cannot do:
//! `PodResizePending{Infeasible}` and a `Warning ResizeInfeasible` event (spec §4.4, §13).
//! Each pod is reported once per (generation, reason); a failed write is reported again on the
//! pod's next watch event. A pod outside `--pod-selector` is never written (issue 12 item 3),
//! exactly as `controller::status_write` never writes one: no condition, no event.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use tracing::{info, warn};

use super::convert::{now_rfc3339, unusable_status_patch, UnusablePod};
use super::events::EventRecorder;
use super::{KubeWriter, StatusPatch};
use crate::core::pod_status::ResizeEvent;
use crate::core::selector::LabelSelector;

#[derive(Default)]
struct State {
    /// uid → (generation, reason) last reported (or being reported).
    reported: BTreeMap<String, (i64, String)>,
    /// Unusable pods seen in the relist under way.
    relisted: BTreeSet<String>,
}

/// The controller's record of unusable pods (shared with the report tasks).
#[derive(Default)]
pub struct UnusablePods {
    state: Mutex<State>,
    /// `--pod-selector`: only pods it selects are reported (the default selects every pod).
    selector: LabelSelector,
}

impl UnusablePods {
    /// Reports only pods `selector` selects.
    pub fn new(selector: LabelSelector) -> UnusablePods {
        UnusablePods {
            state: Mutex::default(),
            selector,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A relist starts.
    pub fn relist_started(&self) {
        self.lock().relisted.clear();
    }

    /// `u` was seen (in a relist when `relisting`); returns it when it needs reporting (never
    /// for a pod outside the selector: it is still kept through the relist, so not gone).
    pub fn seen(&self, u: UnusablePod, relisting: bool) -> Option<UnusablePod> {
        let mut st = self.lock();
        let uid = u.view.spec.uid.clone();
        if relisting {
            st.relisted.insert(uid.clone());
        }
        if !self.selector.matches(&u.view.labels) {
            return None;
        }
        let key = (u.view.spec.generation, u.reason.clone());
        if st.reported.get(&uid) == Some(&key) {
            return None;
        }
        st.reported.insert(uid, key);
        Some(u)
    }

    /// Whether `uid` is an unusable pod of the relist under way (so: not gone).
    pub fn relisted(&self, uid: &str) -> bool {
        self.lock().relisted.contains(uid)
    }

    /// The relist ended: unusable pods it did not list are gone.
    pub fn relist_done(&self) {
        let mut st = self.lock();
        let listed = std::mem::take(&mut st.relisted);
        st.reported.retain(|uid, _| listed.contains(uid));
    }

    /// The pod's spec is usable again, or the pod is gone.
    pub fn forget(&self, uid: &str) {
        self.lock().reported.remove(uid);
    }

    /// Writes the condition and the event for `u`; on failure the pod is reported again when
    /// it is next seen.
    pub async fn report(&self, writer: &dyn KubeWriter, events: &EventRecorder, u: UnusablePod) {
        warn!(pod = %u.view.key(), reason = %u.reason, "pod spec unusable: resizes of this pod are refused until it is fixed; its checkpoints are kept");
        let patch = StatusPatch {
            namespace: u.view.spec.namespace.clone(),
            name: u.view.spec.name.clone(),
            body: unusable_status_patch(&u, &now_rfc3339()),
        };
        if let Err(e) = writer.patch_pod_status(&patch).await {
            warn!(pod = %u.view.key(), error = %e, "writing the unusable-spec condition");
            self.forget(&u.view.spec.uid);
            return;
        }
        let event = ResizeEvent {
            reason: "ResizeInfeasible",
            warning: true,
            message: format!("Pod resize Infeasible: {}", u.reason),
        };
        events.emit(writer, &u.view, &event).await;
        info!(pod = %u.view.key(), "reported the unusable spec");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k8s::convert::{pod_view, unusable_pod};
    use crate::k8s::memory::MemoryWriter;
    use k8s_openapi::api::core::v1::Pod;
    use serde_json::json;

    fn api_pod(cpu: &str, generation: i64) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "u-1", "generation": generation,
                         "resourceVersion": "7"},
            "spec": {"nodeName": "n1", "containers": [{"name": "app", "image": "x",
                     "resources": {"requests": {"cpu": cpu}}}]},
            "status": {"phase": "Running", "observedGeneration": 1}
        }))
        .unwrap()
    }

    fn unusable(cpu: &str, generation: i64) -> UnusablePod {
        let pod = api_pod(cpu, generation);
        let err = pod_view(&pod).unwrap_err();
        unusable_pod(&pod, &err).unwrap()
    }

    #[test]
    fn reported_once_per_generation_and_reason_and_kept_through_a_relist() {
        let pods = UnusablePods::default();
        assert!(pods.seen(unusable("99999999999999Ei", 2), false).is_some());
        assert!(pods.seen(unusable("99999999999999Ei", 2), false).is_none());
        assert!(pods.seen(unusable("-1", 2), false).is_some(), "new reason");
        assert!(
            pods.seen(unusable("-1", 3), false).is_some(),
            "new generation"
        );
        pods.relist_started();
        assert!(!pods.relisted("u-1"));
        assert!(pods.seen(unusable("-1", 3), true).is_none());
        assert!(
            pods.relisted("u-1"),
            "an unusable pod in the relist is not gone"
        );
        pods.relist_done();
        assert!(pods.seen(unusable("-1", 3), false).is_none());
        pods.relist_started();
        pods.relist_done();
        assert!(
            pods.seen(unusable("-1", 3), false).is_some(),
            "gone from a relist: forgotten"
        );
    }

    #[test]
    fn pods_outside_the_selector_are_not_reported_but_kept_through_a_relist() {
        let pods = UnusablePods::new(LabelSelector::parse("resize=on").unwrap());
        pods.relist_started();
        assert!(pods.seen(unusable("-1", 2), true).is_none(), "not selected");
        assert!(pods.relisted("u-1"), "still on the node: not gone");
        let mut labelled = unusable("-1", 2);
        labelled.view.labels = [("resize".to_string(), "on".to_string())].into();
        assert!(pods.seen(labelled, false).is_some());
    }

    #[tokio::test]
    async fn the_report_names_the_field_and_touches_nothing_else() {
        let writer = MemoryWriter::default();
        writer.put_pod(&api_pod("99999999999999Ei", 2));
        let events = EventRecorder::new("n1");
        let pods = UnusablePods::default();
        let u = pods.seen(unusable("99999999999999Ei", 2), false).unwrap();
        pods.report(&writer, &events, u).await;
        let patches = writer.status_patches();
        assert_eq!(patches.len(), 1);
        let status = &patches[0].1["status"];
        assert_eq!(status["observedGeneration"], 2);
        let c = &status["conditions"][0];
        assert_eq!(c["type"], "PodResizePending");
        assert_eq!(c["reason"], "Infeasible");
        assert_eq!(c["observedGeneration"], 2);
        let msg = c["message"].as_str().unwrap();
        assert!(
            msg.starts_with("pod ns/web: container app: requests cpu=\"99999999999999Ei\""),
            "{msg}"
        );
        assert_eq!(
            status.as_object().unwrap().len(),
            2,
            "only the condition and observedGeneration: {status}"
        );
        let ev = writer.events();
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].reason, "ResizeInfeasible");
        assert!(ev[0].warning, "a Warning event");
    }
}
