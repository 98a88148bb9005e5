//! One Event storage behind both APIs, as on the real server: an Event written through
//! `events.k8s.io/v1` is served by core `v1` and the other way round, converted field by field
//! as `pkg/apis/events/v1/conversion.go` (kubernetes/kubernetes) does.

use serde_json::{Map, Value};

/// (core v1 field, events.k8s.io/v1 field); the others have the same name in both.
const RENAMED: [(&str, &str); 7] = [
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("reportingComponent", "reportingController"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
];

/// `ev` as the API group `api_version` ("v1" or "events.k8s.io/v1") serves it.
pub fn as_version(ev: &Value, api_version: &str) -> Value {
    let have = ev.get("apiVersion").and_then(Value::as_str).unwrap_or("v1");
    if have == api_version {
        return ev.clone();
    }
    let Some(m) = ev.as_object() else {
        return ev.clone();
    };
    let to_v1 = api_version == "events.k8s.io/v1";
    let mut out = Map::new();
    for (k, v) in m {
        let renamed = RENAMED.iter().find_map(|(core, new)| {
            if to_v1 && k == core {
                Some(*new)
            } else if !to_v1 && k == new {
                Some(*core)
            } else {
                None
            }
        });
        out.insert(renamed.unwrap_or(k).to_string(), v.clone());
    }
    out.insert("apiVersion".into(), api_version.into());
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trip() {
        let v1 = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "a"},
            "regarding": {"name": "web"}, "note": "n", "reportingController": "c", "reason": "R"});
        let core = as_version(&v1, "v1");
        assert_eq!(core["involvedObject"]["name"], "web");
        assert_eq!(core["message"], "n");
        assert_eq!(core["reportingComponent"], "c");
        assert_eq!(core["reason"], "R");
        assert_eq!(as_version(&core, "events.k8s.io/v1"), v1);
    }
}
