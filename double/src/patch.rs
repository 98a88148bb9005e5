//! Pure patch functions: JSON merge patch (RFC 7386), strategic merge patch
//! (the subset of Kubernetes' semantics that matters for pods and nodes) and
//! JSON patch (RFC 6902).
//!
//! Strategic merge needs a schema to know which lists merge by key; here the
//! schema is a fixed table of dotted field paths (see [`merge_key`]). Every
//! other list is atomic (replaced whole), as are lists that the table does not
//! name.

use serde_json::{Map, Value};

/// The merge key of the list at a dotted field path (list elements do not add
/// a path segment), or `None` when the list is atomic.
pub fn merge_key(path: &str) -> Option<&'static str> {
    Some(match path {
        "spec.containers" | "spec.initContainers" | "spec.ephemeralContainers" => "name",
        "spec.volumes" | "spec.imagePullSecrets" => "name",
        "spec.containers.env" | "spec.initContainers.env" => "name",
        "spec.containers.resizePolicy" | "spec.initContainers.resizePolicy" => "resourceName",
        "spec.containers.volumeMounts" | "spec.initContainers.volumeMounts" => "mountPath",
        "spec.containers.ports" | "spec.initContainers.ports" => "containerPort",
        "status.conditions" => "type",
        "status.addresses" => "type",
        "status.podIPs" => "ip",
        "metadata.ownerReferences" => "uid",
        _ => return None,
    })
}

/// A patch that cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchError(pub String);

impl std::fmt::Display for PatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PatchError {}

fn err(msg: impl Into<String>) -> PatchError {
    PatchError(msg.into())
}

/// JSON merge patch (RFC 7386): objects merge recursively, `null` deletes a
/// key, anything else (lists included) replaces.
pub fn merge_patch(target: &Value, patch: &Value) -> Value {
    match patch {
        Value::Object(p) => {
            let mut out = match target {
                Value::Object(t) => t.clone(),
                _ => Map::new(),
            };
            for (k, v) in p {
                if v.is_null() {
                    out.remove(k);
                } else {
                    let merged = merge_patch(out.get(k).unwrap_or(&Value::Null), v);
                    out.insert(k.clone(), merged);
                }
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

/// Strategic merge patch with the merge keys of [`merge_key`]. Supports `null`
/// deleting a key, `$patch: replace|delete` on maps, `$patch: delete` and
/// `$patch: replace` elements in merge lists, `$retainKeys`,
/// `$deleteFromPrimitiveList/<field>`; `$setElementOrder/<field>` is ignored.
pub fn strategic_merge_patch(target: &Value, patch: &Value) -> Result<Value, PatchError> {
    match patch {
        Value::Object(p) => smp_map(target, p, ""),
        _ => Err(err("strategic merge patch must be a JSON object")),
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn strip_directives(p: &Map<String, Value>) -> Map<String, Value> {
    p.iter()
        .filter(|(k, _)| !k.starts_with('$'))
        .map(|(k, v)| (k.clone(), strip_all(v)))
        .collect()
}

/// Removes every directive key, recursively (used for values that replace).
fn strip_all(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(strip_directives(m)),
        Value::Array(a) => Value::Array(
            a.iter()
                .filter(|e| !is_directive_element(e))
                .map(strip_all)
                .collect(),
        ),
        other => other.clone(),
    }
}

fn is_directive_element(e: &Value) -> bool {
    e.as_object()
        .map(|m| m.contains_key("$patch"))
        .unwrap_or(false)
}

fn smp_map(target: &Value, p: &Map<String, Value>, path: &str) -> Result<Value, PatchError> {
    match p.get("$patch").and_then(Value::as_str) {
        Some("replace") => return Ok(Value::Object(strip_directives(p))),
        Some("delete") => return Ok(Value::Null),
        Some("merge") | None => {}
        Some(other) => return Err(err(format!("unknown patch type: {other}"))),
    }
    let mut out = match target {
        Value::Object(t) => t.clone(),
        _ => Map::new(),
    };
    for (k, v) in p {
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            let drop: Vec<Value> = v.as_array().cloned().unwrap_or_default();
            if let Some(Value::Array(list)) = out.get_mut(field) {
                list.retain(|e| !drop.contains(e));
            }
            continue;
        }
        if k.starts_with('$') {
            continue;
        }
        if v.is_null() {
            out.remove(k);
            continue;
        }
        let sub = join(path, k);
        let cur = out.get(k).cloned().unwrap_or(Value::Null);
        let merged = match v {
            Value::Object(pm) => smp_map(&cur, pm, &sub)?,
            Value::Array(pl) => smp_list(&cur, pl, &sub)?,
            other => other.clone(),
        };
        if merged.is_null() {
            out.remove(k);
        } else {
            out.insert(k.clone(), merged);
        }
    }
    if let Some(Value::Array(retain)) = p.get("$retainKeys") {
        let keep: Vec<&str> = retain.iter().filter_map(Value::as_str).collect();
        out.retain(|k, _| keep.contains(&k.as_str()));
    }
    Ok(Value::Object(out))
}

fn smp_list(target: &Value, pl: &[Value], path: &str) -> Result<Value, PatchError> {
    let Some(key) = merge_key(path) else {
        // atomic list: replace whole
        return Ok(strip_all(&Value::Array(pl.to_vec())));
    };
    if pl
        .iter()
        .any(|e| e.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        return Ok(strip_all(&Value::Array(pl.to_vec())));
    }
    let mut out: Vec<Value> = match target {
        Value::Array(t) => t.clone(),
        _ => Vec::new(),
    };
    for e in pl {
        let Value::Object(em) = e else {
            return Err(err(format!("{path}: list element is not an object")));
        };
        let Some(kv) = em.get(key) else {
            return Err(err(format!(
                "{path}: map does not contain declared merge key: {key}"
            )));
        };
        let pos = out.iter().position(|t| t.get(key) == Some(kv));
        if em.get("$patch").and_then(Value::as_str) == Some("delete") {
            if let Some(i) = pos {
                out.remove(i);
            }
            continue;
        }
        match pos {
            Some(i) => {
                let merged = smp_map(&out[i], em, path)?;
                out[i] = merged;
            }
            None => out.push(smp_map(&Value::Null, em, path)?),
        }
    }
    Ok(Value::Array(out))
}

/// JSON patch (RFC 6902): add, remove, replace, move, copy, test.
pub fn json_patch(target: &Value, ops: &Value) -> Result<Value, PatchError> {
    let Value::Array(ops) = ops else {
        return Err(err("json patch must be a JSON array"));
    };
    let mut doc = target.clone();
    for op in ops {
        let name = op
            .get("op")
            .and_then(Value::as_str)
            .ok_or_else(|| err("json patch operation lacks op"))?;
        let path = op
            .get("path")
            .and_then(Value::as_str)
            .ok_or_else(|| err("json patch operation lacks path"))?;
        let value = || {
            op.get("value")
                .cloned()
                .ok_or_else(|| err(format!("{name} operation lacks value")))
        };
        let from = || {
            op.get("from")
                .and_then(Value::as_str)
                .ok_or_else(|| err(format!("{name} operation lacks from")))
        };
        match name {
            "add" => ptr_add(&mut doc, path, value()?)?,
            "remove" => {
                ptr_remove(&mut doc, path)?;
            }
            "replace" => {
                let slot = doc
                    .pointer_mut(path)
                    .ok_or_else(|| err(format!("replace: path not found: {path}")))?;
                *slot = value()?;
            }
            "move" => {
                let v = ptr_remove(&mut doc, from()?)?;
                ptr_add(&mut doc, path, v)?;
            }
            "copy" => {
                let v = doc.pointer(from()?).cloned().ok_or_else(|| {
                    err(format!("copy: path not found: {}", from().unwrap_or("")))
                })?;
                ptr_add(&mut doc, path, v)?;
            }
            "test" => {
                if doc.pointer(path) != Some(&value()?) {
                    return Err(err(format!("test failed: {path}")));
                }
            }
            other => return Err(err(format!("unknown json patch operation: {other}"))),
        }
    }
    Ok(doc)
}

fn split_ptr(path: &str) -> Result<(String, String), PatchError> {
    let i = path
        .rfind('/')
        .ok_or_else(|| err(format!("invalid json pointer: {path}")))?;
    let last = path[i + 1..].replace("~1", "/").replace("~0", "~");
    Ok((path[..i].to_string(), last))
}

fn ptr_add(doc: &mut Value, path: &str, v: Value) -> Result<(), PatchError> {
    if path.is_empty() {
        *doc = v;
        return Ok(());
    }
    let (parent, last) = split_ptr(path)?;
    let p = doc
        .pointer_mut(&parent)
        .ok_or_else(|| err(format!("add: parent not found: {path}")))?;
    match p {
        Value::Object(m) => {
            m.insert(last, v);
        }
        Value::Array(a) => {
            let i = if last == "-" {
                a.len()
            } else {
                last.parse::<usize>()
                    .map_err(|_| err(format!("add: bad index: {path}")))?
            };
            if i > a.len() {
                return Err(err(format!("add: index out of range: {path}")));
            }
            a.insert(i, v);
        }
        _ => return Err(err(format!("add: parent is not a container: {path}"))),
    }
    Ok(())
}

fn ptr_remove(doc: &mut Value, path: &str) -> Result<Value, PatchError> {
    let (parent, last) = split_ptr(path)?;
    let p = doc
        .pointer_mut(&parent)
        .ok_or_else(|| err(format!("remove: path not found: {path}")))?;
    match p {
        Value::Object(m) => m
            .remove(&last)
            .ok_or_else(|| err(format!("remove: path not found: {path}"))),
        Value::Array(a) => {
            let i = last
                .parse::<usize>()
                .map_err(|_| err(format!("remove: bad index: {path}")))?;
            if i >= a.len() {
                return Err(err(format!("remove: index out of range: {path}")));
            }
            Ok(a.remove(i))
        }
        _ => Err(err(format!("remove: path not found: {path}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> Value {
        json!({
            "metadata": {"name": "p", "resourceVersion": "5", "labels": {"a": "1", "b": "2"}},
            "spec": {"containers": [
                {"name": "c1", "image": "i1", "resources": {"requests": {"cpu": "1"}}},
                {"name": "c2", "image": "i2"}
            ]},
            "status": {
                "conditions": [
                    {"type": "Ready", "status": "True"},
                    {"type": "PodResizePending", "status": "True", "reason": "Deferred"}
                ],
                "containerStatuses": [
                    {"name": "c1", "ready": true, "resources": {"requests": {"cpu": "1"}}},
                    {"name": "c2", "ready": true}
                ]
            }
        })
    }

    #[test]
    fn strategic_table() {
        let cases: Vec<(&str, Value, Value)> = vec![
            (
                "containers merge by name",
                json!({"spec": {"containers": [{"name": "c2", "resources": {"limits": {"cpu": "2"}}}]}}),
                json!({"spec": {"containers": [
                    {"name": "c1", "image": "i1", "resources": {"requests": {"cpu": "1"}}},
                    {"name": "c2", "image": "i2", "resources": {"limits": {"cpu": "2"}}}
                ]}}),
            ),
            (
                "conditions merge by type",
                json!({"status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "X", "status": "True"}]}}),
                json!({"status": {"conditions": [
                    {"type": "Ready", "status": "False"},
                    {"type": "PodResizePending", "status": "True", "reason": "Deferred"},
                    {"type": "X", "status": "True"}
                ]}}),
            ),
            (
                "$patch delete on condition",
                json!({"status": {"conditions": [{"type": "PodResizePending", "$patch": "delete"}]}}),
                json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
            ),
            (
                "containerStatuses atomic",
                json!({"status": {"containerStatuses": [{"name": "c1", "ready": false}]}}),
                json!({"status": {"containerStatuses": [{"name": "c1", "ready": false}]}}),
            ),
            (
                "null deletes key",
                json!({"metadata": {"labels": {"a": null}}}),
                json!({"metadata": {"labels": {"b": "2"}}}),
            ),
            (
                "$patch replace on map",
                json!({"metadata": {"labels": {"z": "9", "$patch": "replace"}}}),
                json!({"metadata": {"labels": {"z": "9"}}}),
            ),
            (
                "$patch replace in list",
                json!({"status": {"conditions": [{"$patch": "replace"}, {"type": "Only", "status": "True"}]}}),
                json!({"status": {"conditions": [{"type": "Only", "status": "True"}]}}),
            ),
            (
                "$setElementOrder stripped",
                json!({"status": {"$setElementOrder/conditions": [{"type": "Ready"}], "conditions": [{"type": "Ready", "status": "Unknown"}]}}),
                json!({"status": {"conditions": [
                    {"type": "Ready", "status": "Unknown"},
                    {"type": "PodResizePending", "status": "True", "reason": "Deferred"}
                ]}}),
            ),
            (
                "$retainKeys",
                json!({"metadata": {"$retainKeys": ["name", "labels"], "labels": {"c": "3"}}}),
                json!({"metadata": {"name": "p", "labels": {"a": "1", "b": "2", "c": "3"}}}),
            ),
        ];
        let base = pod();
        for (name, patch, want) in cases {
            let got = strategic_merge_patch(&base, &patch).unwrap();
            // compare only the touched top-level subtrees
            for (section, want_sub) in want.as_object().unwrap() {
                let want_sub = want_sub.as_object().unwrap();
                for (k, v) in want_sub {
                    assert_eq!(&got[section][k], v, "case {name}: {section}.{k}");
                }
                if name == "$retainKeys" {
                    assert_eq!(
                        got[section].as_object().unwrap().len(),
                        want_sub.len(),
                        "case {name}"
                    );
                }
            }
        }
    }

    #[test]
    fn strategic_missing_merge_key_is_an_error() {
        let e = strategic_merge_patch(&pod(), &json!({"spec": {"containers": [{"image": "x"}]}}));
        assert!(e.is_err());
    }

    #[test]
    fn strategic_new_element_without_directives() {
        let got = strategic_merge_patch(
            &json!({}),
            &json!({"status": {"conditions": [{"type": "A", "status": "True"}]}}),
        )
        .unwrap();
        assert_eq!(
            got,
            json!({"status": {"conditions": [{"type": "A", "status": "True"}]}})
        );
    }

    #[test]
    fn merge_patch_table() {
        let cases = vec![
            (json!({"a": 1, "b": 2}), json!({"a": null}), json!({"b": 2})),
            (json!({"a": [1, 2]}), json!({"a": [3]}), json!({"a": [3]})),
            (
                json!({"a": {"b": 1}}),
                json!({"a": {"c": 2}}),
                json!({"a": {"b": 1, "c": 2}}),
            ),
            (json!({"a": 1}), json!("x"), json!("x")),
            (
                pod(),
                json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}}),
                json!([{"type": "Ready", "status": "False"}]),
            ),
        ];
        for (i, (t, p, want)) in cases.into_iter().enumerate() {
            let got = merge_patch(&t, &p);
            if i == 4 {
                assert_eq!(got["status"]["conditions"], want);
                assert_eq!(
                    got["status"]["containerStatuses"],
                    pod()["status"]["containerStatuses"]
                );
            } else {
                assert_eq!(got, want, "case {i}");
            }
        }
    }

    #[test]
    fn json_patch_table() {
        let base = pod();
        let got = json_patch(
            &base,
            &json!([
                {"op": "test", "path": "/metadata/resourceVersion", "value": "5"},
                {"op": "remove", "path": "/status/containerStatuses/0/resources"},
                {"op": "replace", "path": "/status/conditions/0/status", "value": "False"},
                {"op": "add", "path": "/status/conditions/-", "value": {"type": "New"}},
                {"op": "add", "path": "/metadata/labels/x~1y", "value": "z"},
                {"op": "copy", "from": "/metadata/name", "path": "/metadata/annotations"},
                {"op": "move", "from": "/metadata/annotations", "path": "/metadata/other"}
            ]),
        )
        .unwrap();
        assert!(got["status"]["containerStatuses"][0]
            .get("resources")
            .is_none());
        assert_eq!(got["status"]["conditions"][0]["status"], "False");
        assert_eq!(got["status"]["conditions"][2]["type"], "New");
        assert_eq!(got["metadata"]["labels"]["x/y"], "z");
        assert_eq!(got["metadata"]["other"], "p");
        assert!(got["metadata"].get("annotations").is_none());

        let failed = json_patch(
            &base,
            &json!([{"op": "test", "path": "/metadata/name", "value": "q"}]),
        );
        assert!(failed.is_err());
        let missing = json_patch(&base, &json!([{"op": "remove", "path": "/nope/x"}]));
        assert!(missing.is_err());
        let bad = json_patch(&base, &json!([{"op": "frob", "path": "/a"}]));
        assert!(bad.is_err());
    }
}
