//! Pod rules the real API server applies: request defaulting, QoS class, and
//! the validation of a `resize` subresource update (KEP-1287, v1.33).

use crate::util::parse_quantity;
use serde_json::{Map, Value};

const CONTAINER_LISTS: [&str; 2] = ["initContainers", "containers"];
const QOS_RESOURCES: [&str; 2] = ["cpu", "memory"];

/// Defaulting of `resources.requests` from `resources.limits` for keys that
/// have a limit but no request (as the real server's defaulting does).
pub fn default_requests(spec: &mut Value) {
    for list in CONTAINER_LISTS {
        let Some(Value::Array(cs)) = spec.get_mut(list) else {
            continue;
        };
        for c in cs {
            let Some(res) = c.get_mut("resources").and_then(Value::as_object_mut) else {
                continue;
            };
            let Some(Value::Object(limits)) = res.get("limits").cloned() else {
                continue;
            };
            let requests = res
                .entry("requests")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(req) = requests {
                for (k, v) in limits {
                    req.entry(k).or_insert(v);
                }
            }
        }
    }
}

/// The QoS class of a pod spec (requests already defaulted from limits). Pod-level
/// `spec.resources`, when set, decide alone (`ComputePodQOS` with `PodLevelResources`).
pub fn qos_class(spec: &Value) -> &'static str {
    if let Some(r) = spec.get("resources").filter(|r| r.is_object()) {
        return qos_class(&serde_json::json!({"containers": [{"resources": r}]}));
    }
    let mut requests = [0.0f64; 2];
    let mut limits = [0.0f64; 2];
    let mut req_found = [false; 2];
    let mut lim_found = [false; 2];
    let mut guaranteed = true;
    for list in CONTAINER_LISTS {
        for c in spec
            .get(list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let mut has_limits = [false; 2];
            for (i, r) in QOS_RESOURCES.iter().enumerate() {
                let q = |section: &str| {
                    c.pointer(&format!("/resources/{section}/{r}"))
                        .and_then(|v| match v {
                            Value::String(s) => parse_quantity(s),
                            Value::Number(n) => n.as_f64(),
                            _ => None,
                        })
                        .filter(|q| *q != 0.0)
                };
                if let Some(v) = q("requests") {
                    requests[i] += v;
                    req_found[i] = true;
                }
                if let Some(v) = q("limits") {
                    limits[i] += v;
                    lim_found[i] = true;
                    has_limits[i] = true;
                }
            }
            if !has_limits.iter().all(|h| *h) {
                guaranteed = false;
            }
        }
    }
    if !req_found.iter().any(|f| *f) && !lim_found.iter().any(|f| *f) {
        return "BestEffort";
    }
    if guaranteed {
        for i in 0..2 {
            if req_found[i] && (requests[i] - limits[i]).abs() > 1e-9 * limits[i].abs().max(1.0) {
                guaranteed = false;
            }
            if req_found[i] != lim_found[i] {
                guaranteed = false;
            }
        }
    }
    if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

fn strip_resources(spec: &Value) -> Value {
    let mut s = spec.clone();
    for list in CONTAINER_LISTS {
        if let Some(Value::Array(cs)) = s.get_mut(list) {
            for c in cs {
                if let Some(m) = c.as_object_mut() {
                    m.remove("resources");
                }
            }
        }
    }
    s
}

/// Validates a resize: `old` and `new` are whole pods, `new.spec` already
/// defaulted. Returns the field errors, rendered as the real server does.
pub fn validate_resize(old: &Value, new: &Value) -> Result<(), Vec<String>> {
    let mut errs = Vec::new();
    for cs in old
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let running = cs.pointer("/state/running").is_some_and(|r| !r.is_null());
        let has_resources = cs.get("resources").is_some_and(|r| !r.is_null());
        if running && !has_resources {
            errs.push("Forbidden: Pod running on node without support for resize".to_string());
            return Err(errs);
        }
    }
    let old_spec = old.get("spec").cloned().unwrap_or(Value::Null);
    let new_spec = new.get("spec").cloned().unwrap_or(Value::Null);
    if strip_resources(&old_spec) != strip_resources(&new_spec) {
        errs.push(
            "spec: Forbidden: only cpu and memory resources for containers may be changed by a resize"
                .to_string(),
        );
        return Err(errs);
    }
    for list in CONTAINER_LISTS {
        let empty = Vec::new();
        let olds = old_spec
            .get(list)
            .and_then(Value::as_array)
            .unwrap_or(&empty);
        let news = new_spec
            .get(list)
            .and_then(Value::as_array)
            .unwrap_or(&empty);
        for (i, (oc, nc)) in olds.iter().zip(news).enumerate() {
            let sidecar = nc.get("restartPolicy").and_then(Value::as_str) == Some("Always");
            if list == "initContainers" && !sidecar && oc.get("resources") != nc.get("resources") {
                errs.push(format!(
                    "spec.initContainers[{i}].resources: Forbidden: resources for non-sidecar init containers are immutable"
                ));
                continue;
            }
            for section in ["requests", "limits"] {
                let get = |c: &Value| {
                    c.pointer(&format!("/resources/{section}"))
                        .and_then(Value::as_object)
                        .cloned()
                        .unwrap_or_default()
                };
                let (o, n) = (get(oc), get(nc));
                let field = |k: &str| format!("spec.{list}[{i}].resources.{section}[{k}]");
                for (k, ov) in &o {
                    match n.get(k) {
                        None => errs.push(format!(
                            "{}: Forbidden: resource {section} may not be removed",
                            field(k)
                        )),
                        Some(nv) if !QOS_RESOURCES.contains(&k.as_str()) && nv != ov => {
                            errs.push(format!(
                                "{}: Forbidden: only cpu and memory resources are mutable",
                                field(k)
                            ))
                        }
                        _ => {}
                    }
                }
                for k in n.keys() {
                    if !o.contains_key(k) && !QOS_RESOURCES.contains(&k.as_str()) {
                        errs.push(format!(
                            "{}: Forbidden: only cpu and memory resources are mutable",
                            field(k)
                        ));
                    }
                }
            }
        }
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    let old_qos = old
        .pointer("/status/qosClass")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| qos_class(&old_spec));
    let new_qos = qos_class(&new_spec);
    if old_qos != new_qos {
        errs.push(format!(
            "spec: Invalid value: \"{new_qos}\": Pod QOS Class may not change as a result of resizing"
        ));
        return Err(errs);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(res: Value) -> Value {
        json!({"containers": [{"name": "c", "image": "i", "resources": res}]})
    }

    #[test]
    fn pod_level_resources_decide_the_qos_class() {
        let both = json!({"cpu": "1", "memory": "1Gi"});
        let mut s = spec(json!({}));
        s["resources"] = json!({"requests": both, "limits": both});
        assert_eq!(qos_class(&s), "Guaranteed");
        s["resources"] = json!({"requests": {"cpu": "500m"}, "limits": both});
        assert_eq!(qos_class(&s), "Burstable");
    }

    #[test]
    fn qos_table() {
        let cases = [
            (json!({}), "BestEffort"),
            (
                json!({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1000m", "memory": "1024Mi"}}),
                "Guaranteed",
            ),
            (
                json!({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m", "memory": "1Gi"}}),
                "Burstable",
            ),
            (json!({"requests": {"cpu": "1"}}), "Burstable"),
            (
                json!({"limits": {"cpu": "1"}, "requests": {"cpu": "1"}}),
                "Burstable",
            ),
        ];
        for (res, want) in cases {
            assert_eq!(qos_class(&spec(res.clone())), want, "{res}");
        }
        let mut s = spec(json!({"limits": {"cpu": "1", "memory": "1Gi"}}));
        default_requests(&mut s);
        assert_eq!(s["containers"][0]["resources"]["requests"]["cpu"], "1");
        assert_eq!(qos_class(&s), "Guaranteed");
    }

    fn pod(res: Value, qos: &str, status_resources: bool) -> Value {
        let mut cs = json!({"name": "c", "state": {"running": {}}});
        if status_resources {
            cs["resources"] = res.clone();
        }
        json!({"spec": spec(res), "status": {"qosClass": qos, "containerStatuses": [cs]}})
    }

    #[test]
    fn resize_table() {
        let burst = json!({"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"memory": "2Gi"}});
        let old = pod(burst.clone(), "Burstable", true);
        let ok =
            spec(json!({"requests": {"cpu": "2", "memory": "1Gi"}, "limits": {"memory": "2Gi"}}));
        let mut cases: Vec<(&str, Value, Value, Option<&str>)> = vec![
            ("cpu change", old.clone(), ok.clone(), None),
            (
                "no node support",
                pod(burst.clone(), "Burstable", false),
                ok.clone(),
                Some("Pod running on node without support for resize"),
            ),
            (
                "image change",
                old.clone(),
                json!({"containers": [{"name": "c", "image": "j", "resources": burst.clone()}]}),
                Some("spec: Forbidden"),
            ),
            (
                "request removed",
                old.clone(),
                spec(json!({"requests": {"memory": "1Gi"}, "limits": {"memory": "2Gi"}})),
                Some("may not be removed"),
            ),
            (
                "other resource",
                old.clone(),
                spec(
                    json!({"requests": {"cpu": "1", "memory": "1Gi", "ephemeral-storage": "1Gi"}, "limits": {"memory": "2Gi"}}),
                ),
                Some("only cpu and memory resources are mutable"),
            ),
            (
                "qos change",
                old.clone(),
                spec(
                    json!({"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"cpu": "1", "memory": "2Gi"}}),
                ),
                Some("Pod QOS Class may not change as a result of resizing"),
            ),
        ];
        let init = |policy: Option<&str>, cpu: &str| {
            let mut c = json!({"name": "i", "image": "i", "resources": {"requests": {"cpu": cpu}}});
            if let Some(p) = policy {
                c["restartPolicy"] = p.into();
            }
            json!({"initContainers": [c], "containers": [{"name": "c", "image": "i", "resources": burst.clone()}]})
        };
        let with_init = |policy| {
            let mut p = old.clone();
            p["spec"] = init(policy, "1");
            p
        };
        cases.push((
            "sidecar resize",
            with_init(Some("Always")),
            init(Some("Always"), "2"),
            None,
        ));
        cases.push((
            "plain init container",
            with_init(None),
            init(None, "2"),
            Some("non-sidecar init containers are immutable"),
        ));
        for (name, old, new_spec, want) in cases {
            let mut new = old.clone();
            new["spec"] = new_spec;
            default_requests(&mut new["spec"]);
            let got = validate_resize(&old, &new);
            match want {
                None => assert!(got.is_ok(), "{name}: {got:?}"),
                Some(w) => {
                    let e = got.expect_err(name).join(", ");
                    assert!(e.contains(w), "{name}: {e}");
                }
            }
        }
    }
}
