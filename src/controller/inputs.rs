//! Watcher inputs: pod and node events, the relist diff, pods applied and deleted.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::time::Instant;

use futures::FutureExt;
use tracing::{debug, info, warn};

use crate::core::queue::Trigger;
use crate::k8s::convert::{ConvertError, NodeView, PodView, UnusablePod};
use crate::k8s::{Input, PodEvent, WatchedPod};

use super::standdown::kubelet_minor;
use super::{Controller, TaskDone};

impl Controller {
    pub(super) fn handle(&mut self, input: Input) {
        match input {
            Input::Pod(event) => self.pod_event(event),
            Input::Node(view) => self.node(view),
        }
    }

    fn pod_event(&mut self, event: PodEvent) {
        match event {
            PodEvent::RelistStarted => {
                self.relist = Some(BTreeMap::new());
                self.shared.unusable.relist_started();
            }
            PodEvent::Listed(WatchedPod::Usable(view)) => {
                self.check_resizing_kubelet(&view);
                self.relist
                    .get_or_insert_with(BTreeMap::new)
                    .insert(view.spec.uid.clone(), view);
            }
            PodEvent::Listed(WatchedPod::Refused { error, unusable }) => {
                self.unusable_pod(&error, unusable, true)
            }
            PodEvent::RelistDone => {
                let listed = self.relist.take().unwrap_or_default();
                // pods gone while the watch was down (or the agent was)
                let gone: Vec<String> = self
                    .pods
                    .keys()
                    .cloned()
                    .chain(self.shared.engine.known_pods())
                    // an unusable pod is still there: its checkpoints are kept
                    .filter(|u| !listed.contains_key(u) && !self.shared.unusable.relisted(u))
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect();
                self.shared.unusable.relist_done();
                for uid in gone {
                    self.deleted(&uid);
                }
                for (uid, view) in listed {
                    self.applied(view);
                    self.mark_dirty(uid);
                }
                if !self.pods_synced {
                    info!(pods = self.pods.len(), "pod watch synced");
                }
                self.pods_synced = true;
                self.update_ready();
            }
            PodEvent::Applied(WatchedPod::Usable(view)) => {
                self.check_resizing_kubelet(&view);
                let uid = view.spec.uid.clone();
                self.shared.unusable.forget(&uid);
                let became_terminal =
                    view.terminal && self.pods.get(&uid).is_some_and(|p| !p.terminal);
                self.applied(view);
                if became_terminal && !self.queue.is_empty() {
                    self.retry_pass.get_or_insert(Trigger::PodTerminated);
                }
                self.mark_dirty(uid);
            }
            PodEvent::Applied(WatchedPod::Refused { error, unusable }) => {
                self.unusable_pod(&error, unusable, false)
            }
            PodEvent::Deleted { uid } => {
                self.shared.unusable.forget(&uid);
                self.deleted(&uid);
            }
        }
    }

    /// The node as listed or changed: decision 6 by its kubelet version, its allocatable.
    fn node(&mut self, view: NodeView) {
        for bad in &view.unparsable {
            warn!(entry = %bad, "ignoring unparsable node allocatable");
        }
        if let Some(minor) = view.kubelet_version.as_deref().and_then(kubelet_minor) {
            let version = view.kubelet_version.as_deref().unwrap_or_default();
            let gate = self.shared.opts.kubelet_resize_gate;
            if let Some(reason) = gate.kubelet_resizes(minor, version) {
                if !self.shared.opts.ignore_resizing_kubelet {
                    self.stand_down(reason);
                }
            }
        }
        let changed = self.shared.engine.set_allocatable(view.allocatable.clone());
        if changed {
            info!(
                "node allocatable: {}",
                crate::core::resources::ListDisplay(&view.allocatable)
            );
        }
        if !self.node_seen {
            self.node_seen = true;
            let all: Vec<String> = self.pods.keys().cloned().collect();
            for uid in all {
                self.mark_dirty(uid);
            }
            self.update_ready();
        } else if changed {
            self.retry_pass.get_or_insert(Trigger::PodResized);
        }
    }

    pub(super) fn update_ready(&self) {
        let ready = self.pods_synced && self.node_seen;
        self.shared.stats.ready.store(ready, Ordering::Relaxed);
        self.shared.stats.metrics.set_ready(ready);
    }

    pub(super) fn applied(&mut self, view: PodView) {
        let uid = view.spec.uid.clone();
        if view.node_name.as_deref() != Some(self.shared.opts.node_name.as_str()) {
            return;
        }
        self.conditions
            .entry(uid.clone())
            .or_insert_with(|| view.conditions.clone());
        // resize fields we reported, erased by someone else (a gate-off kubelet)
        let erased = view.running_in_api().any(|c| {
            c.container_id
                .as_deref()
                .is_some_and(|id| self.reported.contains_key(strip_runtime(id)))
                && c.raw.get("resources").is_none_or(|r| r.is_null())
        });
        if erased {
            self.missing_since
                .entry(uid.clone())
                .or_insert_with(Instant::now);
        }
        self.pods.insert(uid, view);
    }

    /// A pod whose spec cannot be used: not gone (checkpoints kept), and told (`k8s::unusable`).
    fn unusable_pod(&mut self, e: &ConvertError, unusable: Option<UnusablePod>, relisting: bool) {
        warn!(error = %e, "pod spec unusable");
        let Some(u) = unusable
            .filter(|u| u.view.node_name.as_deref() == Some(self.shared.opts.node_name.as_str()))
            .and_then(|u| self.shared.unusable.seen(u, relisting))
        else {
            return;
        };
        let shared = self.shared.clone();
        self.tasks.push(
            async move {
                let standing_down = shared.stats.stand_down.lock().unwrap().is_some();
                if !standing_down {
                    let writer = shared.writer.as_ref();
                    shared.unusable.report(writer, &shared.events, u).await;
                }
                TaskDone {
                    retry_pass: false,
                    events: false,
                    outputs: Vec::new(),
                }
            }
            .boxed(),
        );
    }

    pub(super) fn deleted(&mut self, uid: &str) {
        if let Some(view) = self.pods.remove(uid) {
            for c in view
                .container_statuses
                .iter()
                .chain(&view.init_container_statuses)
            {
                if let Some(id) = &c.container_id {
                    self.reported.remove(strip_runtime(id));
                }
            }
            debug!(pod = %view.key(), "pod removed");
        }
        self.conditions.remove(uid);
        self.missing_since.remove(uid);
        self.last_pass.remove(uid);
        self.queue.remove(uid);
        self.shared.stats.pods.lock().unwrap().remove(uid);
        // a pass in flight forgets it when it ends, so a late checkpoint cannot resurrect it
        if !self.sched.remove(&uid.to_string()) {
            if let Err(e) = self.shared.engine.forget_pod(uid) {
                warn!(error = %e, uid, "forgetting a removed pod");
            }
        }
        self.retry_pass.get_or_insert(Trigger::PodsRemoved);
    }
}

/// `containerd://abc` → `abc`.
pub(super) fn strip_runtime(id: &str) -> &str {
    id.split_once("://").map_or(id, |(_, rest)| rest)
}
