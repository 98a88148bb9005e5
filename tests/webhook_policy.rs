//! The shipped `MutatingAdmissionPolicy` (deploy/webhook/mutating-admission-policy/), evaluated
//! with the `cel` crate as the API server would: match conditions, then the variables, then
//! each `JSONPatch` mutation, the patches applied to the object (RFC 6902, `json-patch`). The
//! webhook's own rule (`webhook::decide`) is the reference: the same writes, the same outcome.
//!
//! What the crate cannot check as the API server does: the policy's static type checking
//! against the Pod schema (cel-go checks `object.status.containerStatuses` against OpenAPI; here
//! objects are dynamic JSON), and Kubernetes' CEL libraries: `indexOf` on lists (the
//! Kubernetes lists library) is provided below with its documented meaning (index of the
//! first equal element, -1 if none), and `JSONPatch` is declared as a struct of `op`, `path`
//! and a map `value` (the API server's `JSONPatch` type takes any value; every mutation here
//! adds a map). Cost limits and the `from` field are not modelled.

use std::path::Path;
use std::sync::Arc;

use cel::common::types::{CelInt, MAP_TYPE, STRING_TYPE};
use cel::common::value::CowVal;
use cel::{Context, Env, ExecutionError, Program, StructDef};
use serde_json::{json, Value};

fn yaml(path: &Path) -> Value {
    serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn policy() -> Value {
    yaml(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("deploy/webhook/mutating-admission-policy/mutatingadmissionpolicy.yaml"),
    )
}

/// `list.indexOf(x)` of the Kubernetes CEL lists library.
fn index_of<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [list, x]: [CowVal<'b, 'v>; 2] = args
        .try_into()
        .map_err(|a: Vec<_>| ExecutionError::invalid_argument_count(2, a.len()))?;
    let (list, x) = (
        cel::Value::try_from(list.as_ref())?,
        cel::Value::try_from(x.as_ref())?,
    );
    let cel::Value::List(items) = list else {
        return Err(ExecutionError::function_error("indexOf", "not a list"));
    };
    let i = items.iter().position(|v| *v == x).map_or(-1, |i| i as i64);
    Ok(CowVal::owned(CelInt::from(i)))
}

/// A CEL value as JSON (the crate's `json` feature is off).
fn to_json(v: &cel::Value) -> Value {
    match v {
        cel::Value::List(l) => Value::Array(l.iter().map(to_json).collect()),
        cel::Value::Map(m) => Value::Object(
            m.map
                .iter()
                .map(|(k, v)| (k.to_string(), to_json(v)))
                .collect(),
        ),
        cel::Value::Int(i) => json!(i),
        cel::Value::UInt(u) => json!(u),
        cel::Value::Float(f) => json!(f),
        cel::Value::String(s) => json!(s.as_str()),
        cel::Value::Bool(b) => json!(b),
        cel::Value::Null => Value::Null,
        other => panic!("not JSON: {other:?}"),
    }
}

fn env() -> Arc<Env> {
    let mut env = Env::stdlib();
    env.add_member_overload(
        "indexOf",
        "list.indexOf(dyn)",
        cel::common::types::LIST_TYPE,
        vec![cel::common::types::DYN_TYPE],
        index_of,
    )
    .unwrap();
    env.add_type(
        StructDef::new("JSONPatch".to_owned())
            .add_field("op".to_owned(), STRING_TYPE)
            .add_field("path".to_owned(), STRING_TYPE)
            .add_field("value".to_owned(), MAP_TYPE),
    )
    .unwrap();
    Arc::new(env)
}

struct Compiled {
    conditions: Vec<(String, Program)>,
    variables: Vec<(String, Program)>,
    mutations: Vec<Program>,
}

fn compile(env: &Env, p: &Value) -> Compiled {
    let each = |list: &Value, field: &str| -> Vec<(String, Program)> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|c| {
                let e = c.pointer(field).and_then(Value::as_str).unwrap();
                let name = c["name"].as_str().unwrap_or("").to_string();
                let prog = env.compile(e).unwrap_or_else(|err| panic!("{e}: {err}"));
                (name, prog)
            })
            .collect()
    };
    let spec = &p["spec"];
    Compiled {
        conditions: each(&spec["matchConditions"], "/expression"),
        variables: each(&spec["variables"], "/expression"),
        mutations: each(&spec["mutations"], "/jsonPatch/expression")
            .into_iter()
            .map(|(_, p)| p)
            .collect(),
    }
}

/// What the policy does to the write of `new` over `old` by `user`: `None` when a match
/// condition is false (not called), else the object after every mutation.
fn admit(user: &str, old: &Value, new: &Value) -> Option<Value> {
    let env = env();
    let c = compile(&env, &policy());
    let mut ctx = Context::with_env(env.clone());
    ctx.add_variable(
        "request",
        json!({"userInfo": {"username": user}, "operation": "UPDATE", "subResource": "status"}),
    )
    .unwrap();
    ctx.add_variable("object", new.clone()).unwrap();
    ctx.add_variable("oldObject", old.clone()).unwrap();
    for (name, p) in &c.conditions {
        match p.execute(&ctx) {
            Ok(cel::Value::Bool(true)) => {}
            Ok(cel::Value::Bool(false)) => return None,
            other => panic!("matchConditions[{name}]: {other:?}"),
        }
    }
    let mut vars = serde_json::Map::new();
    for (name, p) in &c.variables {
        let v = p
            .execute(&ctx)
            .unwrap_or_else(|e| panic!("variables[{name}]: {e}"));
        vars.insert(name.clone(), to_json(&v));
        ctx.add_variable("variables", Value::Object(vars.clone()))
            .unwrap();
    }
    let mut obj = new.clone();
    for (i, p) in c.mutations.iter().enumerate() {
        let ops = match p.execute(&ctx) {
            Ok(cel::Value::List(ops)) => ops,
            other => panic!("mutations[{i}]: {other:?}"),
        };
        let ops: Vec<Value> = ops
            .iter()
            .map(|op| match op {
                cel::Value::Struct(s) => {
                    assert_eq!(s.name(), "JSONPatch");
                    let fields: serde_json::Map<String, Value> = s
                        .field_values()
                        .into_iter()
                        .map(|(k, v)| {
                            let v = cel::Value::try_from(v.as_ref()).unwrap();
                            (k, to_json(&v))
                        })
                        .collect();
                    Value::Object(fields)
                }
                other => panic!("mutations[{i}]: not a JSONPatch: {other:?}"),
            })
            .collect();
        let patch: json_patch::Patch = serde_json::from_value(Value::Array(ops.clone()))
            .unwrap_or_else(|e| panic!("mutations[{i}]: {ops:?}: {e}"));
        json_patch::patch(&mut obj, &patch).unwrap_or_else(|e| panic!("mutations[{i}]: {e}"));
    }
    Some(obj)
}

/// What `resizelet webhook`'s rule (`webhook::decide`) does to the same write: `None` when it
/// changes nothing.
fn webhook(user: &str, old: &Value, new: &Value) -> Option<Value> {
    use resizelet::webhook::{convert, decide, Decision};
    let review = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "u", "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"}, "subResource": "status",
            "name": "web", "namespace": "ns", "operation": "UPDATE",
            "userInfo": {"username": user}, "object": new, "oldObject": old}});
    let r = convert::parse_review(review.to_string().as_bytes()).expect("a valid review");
    match decide(&convert::request(&r)) {
        Decision::Carry(c) => {
            let mut obj = new.clone();
            json_patch::patch(&mut obj, &convert::patch(&c)).unwrap();
            Some(obj)
        }
        _ => None,
    }
}

/// A running pod `ns/web` on n1 with these container and init container statuses.
fn pod(statuses: &[Value], init: &[Value]) -> Value {
    json!({"metadata": {"name": "web", "namespace": "ns"}, "spec": {"nodeName": "n1"},
           "status": {"phase": "Running", "containerStatuses": statuses, "initContainerStatuses": init}})
}

fn with(name: &str, id: &str, cpu: &str) -> Value {
    json!({"name": name, "containerID": id, "ready": true,
           "resources": {"requests": {"cpu": cpu}, "limits": {"cpu": cpu}},
           "allocatedResources": {"cpu": cpu}})
}

fn without(name: &str, id: &str) -> Value {
    json!({"name": name, "containerID": id, "ready": true})
}

const NODE: &str = "system:node:n1";

#[test]
fn every_expression_of_the_policy_compiles() {
    let c = compile(&env(), &policy());
    assert_eq!(c.conditions.len(), 2);
    assert_eq!(c.variables.len(), 4);
    assert_eq!(c.mutations.len(), 4);
}

#[test]
fn the_gate_off_kubelets_write_changes_nothing() {
    // two containers (the second erased one sits at index 1, so indexOf matters) and a sidecar
    let old = pod(
        &[
            with("a", "containerd://1", "1"),
            with("b", "containerd://2", "500m"),
        ],
        &[with("s", "containerd://3", "100m")],
    );
    let new = pod(
        &[
            without("a", "containerd://1"),
            without("b", "containerd://2"),
        ],
        &[without("s", "containerd://3")],
    );
    let out = admit(NODE, &old, &new).expect("called");
    assert_eq!(out, old, "every field carried over, nothing else changed");
    assert_eq!(Some(out), webhook(NODE, &old, &new));
}

#[test]
fn only_the_missing_field_of_an_unchanged_container_is_carried() {
    let old = pod(
        &[
            with("a", "containerd://1", "1"),
            with("b", "containerd://2", "2"),
        ],
        &[],
    );
    // a: only allocatedResources dropped; b: restarted (new containerID), left to the agent
    let mut a = with("a", "containerd://1", "1");
    a.as_object_mut().unwrap().remove("allocatedResources");
    let new = pod(&[a, without("b", "containerd://9")], &[]);
    let out = admit(NODE, &old, &new).expect("called");
    assert_eq!(
        out["status"]["containerStatuses"][0],
        old["status"]["containerStatuses"][0]
    );
    assert_eq!(
        out["status"]["containerStatuses"][1],
        without("b", "containerd://9"),
        "a restarted container is untouched"
    );
    assert_eq!(out["status"]["phase"], "Running");
    assert_eq!(Some(out), webhook(NODE, &old, &new));
}

#[test]
fn not_called_for_other_users_or_when_nothing_is_dropped() {
    let old = pod(&[with("a", "containerd://1", "1")], &[]);
    let new = pod(&[without("a", "containerd://1")], &[]);
    for user in [
        "system:serviceaccount:resizelet:resizelet",
        "kubernetes-admin",
    ] {
        assert_eq!(admit(user, &old, &new), None, "{user}");
        assert_eq!(webhook(user, &old, &new), None, "{user}");
    }
    assert_eq!(admit(NODE, &old, &old), None, "nothing dropped");
    let restarted = pod(&[without("a", "containerd://2")], &[]);
    assert_eq!(admit(NODE, &old, &restarted), None, "restarted");
    assert_eq!(webhook(NODE, &old, &restarted), None, "restarted");
}
