//! The status write: one strategic-merge patch with a `resourceVersion` precondition (409 →
//! re-read, recompute), and the events of a pass.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::StreamExt;
use tracing::warn;

use crate::core::pod_status::{ResizeConditions, ResizeEvent};
use crate::k8s::convert::{now_rfc3339, ContainerStatusResources, PodView, StatusIntent};
use crate::k8s::WriteError;
use crate::metrics::Phase;

use std::sync::Arc;

use super::pass::Retry;
use super::{Shared, CONFLICT_RETRIES, EVENT_WRITERS};

/// An event a pass produced, about the pod as that pass last saw it.
pub(super) struct Outgoing {
    pub(super) pod: Arc<PodView>,
    pub(super) event: ResizeEvent,
}

/// Hands a pass's events to the controller's event writer and returns at once: events are
/// written after (never before) the status write they belong to and nothing waits for them.
pub(super) fn queue_events(shared: &Shared, view: Option<&PodView>, events: &[ResizeEvent]) {
    let Some(view) = view else { return };
    if events.is_empty() {
        return;
    }
    let pod = Arc::new(view.clone());
    shared
        .outbox
        .lock()
        .unwrap()
        .extend(events.iter().map(|event| Outgoing {
            pod: pod.clone(),
            event: event.clone(),
        }));
    shared.outbox_ready.notify_one();
}

/// Writes a batch of queued events: each pod's in the order its passes produced them, pods
/// concurrently (at most [`EVENT_WRITERS`] at once).
pub(super) async fn write_events(shared: &Shared, batch: Vec<Outgoing>) {
    let mut by_pod: Vec<(String, Vec<Outgoing>)> = Vec::new();
    for out in batch {
        match by_pod.iter_mut().find(|(uid, _)| *uid == out.pod.spec.uid) {
            Some((_, list)) => list.push(out),
            None => by_pod.push((out.pod.spec.uid.clone(), vec![out])),
        }
    }
    futures::stream::iter(by_pod)
        .for_each_concurrent(EVENT_WRITERS, |(_, list)| async move {
            for out in list {
                if shared
                    .events
                    .emit(shared.writer.as_ref(), &out.pod, &out.event)
                    .await
                {
                    shared.stats.events_written.fetch_add(1, Ordering::Relaxed);
                    shared.stats.metrics.event();
                }
            }
        })
        .await;
}
pub(super) struct StatusWrite {
    pub(super) fresh: Option<PodView>,
    pub(super) ok: bool,
    pub(super) retry: Retry,
}

/// Patches the pod's status to say `containers` and `conditions` (nothing is sent when it
/// already does); on 409 re-reads the pod and recomputes the patch against it.
///
/// `view` is only the base the patch is computed against (its status and resourceVersion);
/// `generation` is the one of the spec the pass decided on, and the only one the status may
/// claim as observed. A base re-read after a 409 (or returned by an earlier write of the pass)
/// can already carry a newer spec: claiming its generation would report a resize as done that
/// no pass has admitted (issue 11, the lost resize).
pub(super) async fn write_status(
    shared: &Shared,
    view: PodView,
    generation: i64,
    containers: &BTreeMap<String, ContainerStatusResources>,
    conditions: &ResizeConditions,
) -> StatusWrite {
    let t = Instant::now();
    let uid = view.spec.uid.clone();
    let now = now_rfc3339();
    let stats = &shared.stats;
    let mut view = view;
    let mut result = StatusWrite {
        fresh: None,
        ok: false,
        retry: Retry::Keep,
    };
    if !shared.opts.pod_selector.matches(&view.labels) {
        // never written: its status keeps no resize fields, so the API server refuses resizes
        result.ok = true;
        return result;
    }
    for attempt in 0..=CONFLICT_RETRIES {
        let intent = StatusIntent {
            containers,
            conditions,
            observed_generation: Some(generation),
            legacy_resize: shared.opts.legacy_resize_status,
            now: &now,
        };
        let Some(patch) = crate::k8s::convert::status_patch(&view, &intent) else {
            result.ok = true;
            break;
        };
        stats.status_writes.fetch_add(1, Ordering::Relaxed);
        stats.metrics.status_patch();
        match shared.writer.patch_pod_status(&patch).await {
            Ok(written) => {
                result.ok = true;
                result.fresh = written;
                break;
            }
            Err(WriteError::Conflict { .. }) if attempt < CONFLICT_RETRIES => {
                stats.status_conflicts.fetch_add(1, Ordering::Relaxed);
                stats.metrics.status_conflict();
                match shared.writer.get_pod(&patch.namespace, &patch.name).await {
                    Ok(Some(fresh)) if fresh.spec.uid == uid => {
                        view = fresh.clone();
                        result.fresh = Some(fresh);
                    }
                    Ok(_) => break,
                    Err(e) => {
                        warn!(error = %e, "re-reading pod after a conflict");
                        break;
                    }
                }
            }
            Err(WriteError::NotFound { .. }) => break,
            Err(e) => {
                warn!(error = %e, "status write failed; retrying");
                result.retry = Retry::After(Duration::from_secs(1));
                break;
            }
        }
    }
    stats.metrics.observe_phase(Phase::StatusPatch, t.elapsed());
    result
}
