//! [`EventRecord`] → `events.k8s.io/v1` Event, and the series merge patch.

use std::time::SystemTime;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use serde_json::{json, Value};

use crate::k8s::{EventRecord, Regarding, SeriesUpdate};

fn micro_time(t: SystemTime) -> MicroTime {
    MicroTime(
        k8s_openapi::jiff::Timestamp::try_from(t)
            .unwrap_or_else(|_| k8s_openapi::jiff::Timestamp::now()),
    )
}

/// The `events.k8s.io/v1` Event for `e` (no `generateName`: see `events.rs`).
pub fn event_object(e: &EventRecord) -> Event {
    let regarding = match &e.regarding {
        Regarding::Pod {
            namespace,
            name,
            uid,
            resource_version,
        } => ObjectReference {
            kind: Some("Pod".into()),
            namespace: Some(namespace.clone()),
            name: Some(name.clone()),
            uid: Some(uid.clone()),
            resource_version: Some(resource_version.clone()),
            ..ObjectReference::default()
        },
        Regarding::Node { name } => ObjectReference {
            kind: Some("Node".into()),
            name: Some(name.clone()),
            ..ObjectReference::default()
        },
    };
    Event {
        metadata: ObjectMeta {
            name: Some(e.name.clone()),
            namespace: Some(e.namespace.clone()),
            ..ObjectMeta::default()
        },
        event_time: Some(micro_time(e.time)),
        action: Some(e.action.into()),
        reason: Some(e.reason.clone()),
        note: Some(e.note.clone()),
        type_: Some(if e.warning { "Warning" } else { "Normal" }.into()),
        reporting_controller: Some(e.reporting_controller.into()),
        reporting_instance: Some(e.reporting_instance.clone()),
        regarding: Some(ObjectReference {
            api_version: Some("v1".into()),
            ..regarding
        }),
        ..Event::default()
    }
}

/// The merge patch of an Event's series.
pub fn series_patch(s: &SeriesUpdate) -> Value {
    json!({"series": {"count": s.count, "lastObservedTime": micro_time(s.last_observed)}})
}
