//! The gate-off kubelet actor: a v1.32 kubelet with InPlacePodVerticalScaling
//! off does not know `containerStatuses[*].resources`,
//! `containerStatuses[*].allocatedResources`, `status.resize` or the
//! `PodResizePending`/`PodResizeInProgress` conditions, so every status it
//! writes lacks them. This actor erases them from the pods bound to its node
//! every period, writing only when something changes.

use crate::Inner;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// Stops the actor when stopped or dropped.
pub struct KubeletActorHandle {
    task: Option<JoinHandle<()>>,
}

impl KubeletActorHandle {
    pub fn stop(mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

impl Drop for KubeletActorHandle {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// What a gate-off kubelet's status write does to a pod.
pub fn gate_off_status(pod: &mut Value) {
    let Some(status) = pod.get_mut("status").and_then(Value::as_object_mut) else {
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
    if let Some(Value::Array(conds)) = status.get_mut("conditions") {
        conds.retain(|c| {
            !matches!(
                c.get("type").and_then(Value::as_str),
                Some("PodResizePending" | "PodResizeInProgress")
            )
        });
    }
}

pub fn start(inner: Arc<Inner>, node: String, period: Duration) -> KubeletActorHandle {
    let task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            inner.store.kubelet_rewrite(&node, gate_off_status);
        }
    });
    KubeletActorHandle { task: Some(task) }
}
