//! Discovery, as `kubectl` reads it: the legacy documents (`/api`, `/api/v1`, `/apis`,
//! `/apis/events.k8s.io/v1`). A client asking for aggregated discovery
//! (`as=APIGroupDiscoveryList`) gets the legacy JSON and falls back to it, as client-go does
//! with a server that does not serve the aggregated form
//! (`staging/src/k8s.io/client-go/discovery/discovery_client.go`).

use crate::ApiError;
use serde_json::{json, Value};

fn resource(name: &str, kind: &str, namespaced: bool, verbs: &[&str], short: &[&str]) -> Value {
    let mut r = json!({
        "name": name, "singularName": if name.contains('/') { "" } else { kind_singular(kind) },
        "namespaced": namespaced, "kind": kind, "verbs": verbs,
    });
    if !short.is_empty() {
        r["shortNames"] = json!(short);
    }
    if !name.contains('/') && kind != "Event" {
        r["categories"] = json!(["all"]);
    }
    r
}

fn kind_singular(kind: &str) -> &'static str {
    match kind {
        "Pod" => "pod",
        "Node" => "node",
        _ => "event",
    }
}

const ALL: &[&str] = &[
    "create", "delete", "get", "list", "patch", "update", "watch",
];
const SUB: &[&str] = &["get", "patch", "update"];

fn core_v1() -> Value {
    let mut resources = vec![
        resource("events", "Event", true, ALL, &["ev"]),
        resource("nodes", "Node", false, ALL, &["no"]),
        resource("nodes/status", "Node", false, SUB, &[]),
        resource("pods", "Pod", true, ALL, &["po"]),
    ];
    // `/resize` exists from 1.32 on (kubernetes/kubernetes#128266)
    resources.push(resource("pods/resize", "Pod", true, SUB, &[]));
    resources.push(resource("pods/status", "Pod", true, SUB, &[]));
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "v1", "resources": resources})
}

fn events_v1() -> Value {
    json!({
        "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "events.k8s.io/v1",
        "resources": [resource("events", "Event", true, ALL, &["ev"])],
    })
}

fn events_group() -> Value {
    json!({
        "name": "events.k8s.io",
        "versions": [{"groupVersion": "events.k8s.io/v1", "version": "v1"}],
        "preferredVersion": {"groupVersion": "events.k8s.io/v1", "version": "v1"},
    })
}

/// The discovery document at `segs`, if it is one: (content type, body).
pub fn route(segs: &[&str], _accept: &str) -> Option<Result<(&'static str, Vec<u8>), ApiError>> {
    let doc = match segs {
        ["api"] => json!({
            "kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}],
        }),
        ["api", "v1"] => core_v1(),
        ["apis"] => json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": [events_group()]}),
        ["apis", "events.k8s.io"] => {
            let mut g = events_group();
            g["kind"] = "APIGroup".into();
            g["apiVersion"] = "v1".into();
            g
        }
        ["apis", "events.k8s.io", "v1"] => events_v1(),
        _ => return None,
    };
    Some(Ok((
        "application/json",
        serde_json::to_vec(&doc).unwrap_or_default(),
    )))
}
