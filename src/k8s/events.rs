//! Resize events (`events.k8s.io/v1`, spec §13), aggregated: the same reason and message for the
//! same pod within [`SERIES_WINDOW`] becomes a series whose count is patched at most once per
//! [`SERIES_PATCH_INTERVAL`], so a retry loop cannot flood the API server.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use tracing::warn;

use super::convert::PodView;
use super::{EventRecord, KubeWriter, Regarding, SeriesUpdate};
use crate::core::pod_status::ResizeEvent;

pub const REPORTING_CONTROLLER: &str = "resizelet.dev/resizelet";
pub const SERIES_WINDOW: Duration = Duration::from_secs(600);
pub const SERIES_PATCH_INTERVAL: Duration = Duration::from_secs(10);

struct Series {
    name: String,
    count: i32,
    first: Instant,
    last_patch: Instant,
}

/// Writes Events, aggregating repeats.
pub struct EventRecorder {
    reporting_instance: String,
    series: Mutex<HashMap<SeriesKey, Series>>,
}

type SeriesKey = (String, &'static str, String);

impl EventRecorder {
    pub fn new(node_name: &str) -> Self {
        EventRecorder {
            reporting_instance: truncate(&format!("resizelet-{node_name}"), MAX_REPORTING_INSTANCE),
            series: Mutex::new(HashMap::new()),
        }
    }

    /// Emits `event` about `pod`; failures are logged, never fatal. Returns whether it wrote to
    /// the API (a create or a series patch) rather than only counting a repeat. Safe to call
    /// for different pods concurrently (the series lock is never held across a write).
    pub async fn emit(&self, writer: &dyn KubeWriter, pod: &PodView, event: &ResizeEvent) -> bool {
        let ns = pod.spec.namespace.clone();
        let key = (pod.spec.uid.clone(), event.reason, event.message.clone());
        let now = Instant::now();
        let series_patch = {
            let mut series = self.series.lock().unwrap_or_else(|e| e.into_inner());
            series.retain(|_, s| now.duration_since(s.first) < SERIES_WINDOW);
            match series.get_mut(&key) {
                Some(s) => {
                    s.count += 1;
                    if now.duration_since(s.last_patch) < SERIES_PATCH_INTERVAL {
                        return false;
                    }
                    s.last_patch = now;
                    Some((s.name.clone(), s.count))
                }
                None => None,
            }
        };
        if let Some((name, count)) = series_patch {
            let update = SeriesUpdate {
                namespace: ns,
                name,
                count,
                last_observed: SystemTime::now(),
            };
            if let Err(e) = writer.update_series(&update).await {
                warn!(error = %e, "updating event series");
            }
            return true;
        }
        let ev = self.event(
            &ns,
            event.reason,
            &event.message,
            event.warning,
            Regarding::Pod {
                namespace: ns.clone(),
                name: pod.spec.name.clone(),
                uid: pod.spec.uid.clone(),
                resource_version: pod.resource_version.clone(),
            },
        );
        match writer.create_event(&ev).await {
            Ok(name) => {
                self.series
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(
                        key,
                        Series {
                            name,
                            count: 1,
                            first: now,
                            last_patch: now,
                        },
                    );
            }
            Err(e) => warn!(error = %e, reason = event.reason, "creating event"),
        }
        true
    }
}

impl EventRecorder {
    /// A Warning about the Node itself (e.g. why resizelet stands down), in the `default`
    /// namespace as the kubelet's node events are. Failures are logged.
    pub async fn emit_node(&self, writer: &dyn KubeWriter, node: &str, reason: &str, note: &str) {
        let regarding = Regarding::Node { name: node.into() };
        let ev = self.event("default", reason, note, true, regarding);
        if let Err(e) = writer.create_event(&ev).await {
            warn!(error = %e, reason, "creating node event");
        }
    }
}

impl EventRecorder {
    /// An `events.k8s.io/v1` Event about `regarding`, named as client-go's recorder names it
    /// (`tools/events/event_recorder.go` `makeEvent`: `<regarding name>.<unix nanos in hex>`; it
    /// reads its clock again for the name, here the name is of the event's own time). No
    /// `generateName`: the API server validates it as a name prefix where only a trailing `-` is
    /// masked, so `<name>.` is refused.
    fn event(
        &self,
        namespace: &str,
        reason: &str,
        note: &str,
        warning: bool,
        regarding: Regarding,
    ) -> EventRecord {
        let time = SystemTime::now();
        EventRecord {
            name: event_name(regarding.name(), time),
            namespace: namespace.into(),
            time,
            action: "Resize",
            reason: reason.into(),
            note: truncate(note, 1024),
            warning,
            reporting_controller: REPORTING_CONTROLLER,
            reporting_instance: self.reporting_instance.clone(),
            regarding,
        }
    }
}

/// `<regarding name>.<unix nanos in hex>`, as client-go names events; a regarding name too long
/// for the 253-character limit is cut (and cut back to an alphanumeric end).
fn event_name(regarding: &str, now: std::time::SystemTime) -> String {
    let nanos = now
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let suffix = format!(".{nanos:x}");
    let mut prefix = &regarding[..regarding.len().min(MAX_NAME - suffix.len())];
    while prefix.ends_with(['-', '.']) {
        prefix = &prefix[..prefix.len() - 1];
    }
    format!("{prefix}{suffix}")
}

/// A DNS subdomain name's limit (`metadata.name`).
const MAX_NAME: usize = 253;
/// `reportingInstance`'s limit (`pkg/apis/core/validation/events.go`).
const MAX_REPORTING_INSTANCE: usize = 128;

/// `note` is limited to 1 kB by the API server.
fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_named_like_client_go() {
        let t = std::time::UNIX_EPOCH + Duration::from_nanos(1_764_580_000_123_456_789);
        assert_eq!(event_name("web", t), "web.187d0c29351e0d15");
        let ev = EventRecorder::new("n1").event(
            "ns",
            "ResizeStarted",
            "n",
            false,
            Regarding::Node { name: "web".into() },
        );
        assert_eq!(
            ev.name,
            event_name("web", ev.time),
            "named after its own time"
        );
        let long = format!("{}-xyz", "a".repeat(235));
        let name = event_name(&long, t);
        assert_eq!(
            name.len(),
            253 - 1,
            "cut, then the trailing '-' dropped: {name}"
        );
        assert!(name.ends_with("a.187d0c29351e0d15"), "{name}");
        let r = EventRecorder::new(&"n".repeat(253));
        assert_eq!(r.reporting_instance.len(), 128);
        assert!(ev.name.starts_with("web."));
    }
}
