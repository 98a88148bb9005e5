//! AdmissionReview v1 JSON ↔ the webhook's decision types (the only place kube's admission types
//! are used).

use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview};
use kube::core::DynamicObject;
use serde_json::Value;

use super::{Carry, Decision, PodStatuses, Request, StatusEntry, StatusList};

#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("invalid AdmissionReview: {0}")]
    Malformed(String),
    #[error("cannot serialize the AdmissionReview response: {0}")]
    Serialize(String),
}

/// Parses an AdmissionReview v1 request body.
pub fn parse_review(body: &[u8]) -> Result<AdmissionRequest<DynamicObject>, ConvertError> {
    let review: AdmissionReview<DynamicObject> =
        serde_json::from_slice(body).map_err(|e| ConvertError::Malformed(e.to_string()))?;
    if review.types.api_version != "admission.k8s.io/v1" || review.types.kind != "AdmissionReview" {
        return Err(ConvertError::Malformed(format!(
            "apiVersion {:?} kind {:?}, want admission.k8s.io/v1 AdmissionReview",
            review.types.api_version, review.types.kind
        )));
    }
    review
        .try_into()
        .map_err(|_| ConvertError::Malformed("no request in the AdmissionReview".into()))
}

fn entries(status: &Value, list: StatusList) -> Vec<StatusEntry> {
    let present = |v: Option<&Value>| v.filter(|v| !v.is_null()).cloned();
    status
        .get(list.field())
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|s| StatusEntry {
                    name: s
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    container_id: s
                        .get("containerID")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    resources: present(s.get("resources")),
                    allocated_resources: present(s.get("allocatedResources")),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn statuses(o: &DynamicObject) -> PodStatuses {
    let status = o.data.get("status").cloned().unwrap_or(Value::Null);
    PodStatuses {
        containers: entries(&status, StatusList::Containers),
        init_containers: entries(&status, StatusList::InitContainers),
    }
}

/// The decision's view of a request.
pub fn request(r: &AdmissionRequest<DynamicObject>) -> Request {
    Request {
        username: r.user_info.username.clone().unwrap_or_default(),
        operation: serde_json::to_value(&r.operation)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        resource: r.resource.resource.clone(),
        sub_resource: r.sub_resource.clone().unwrap_or_default(),
        old: r.old_object.as_ref().map(statuses),
        new: r.object.as_ref().map(statuses),
    }
}

/// The JSON patch operations for a set of carried fields.
pub fn patch(carry: &[Carry]) -> json_patch::Patch {
    json_patch::Patch(
        carry
            .iter()
            .map(|c| {
                let path = format!("/status/{}/{}/{}", c.list.field(), c.index, c.field.name());
                json_patch::PatchOperation::Add(json_patch::AddOperation {
                    path: path.parse().expect("the pointer is built from fixed names"),
                    value: c.value.clone(),
                })
            })
            .collect(),
    )
}

/// The AdmissionReview response body: always allowed; a patch for [`Decision::Carry`].
pub fn response(
    r: &AdmissionRequest<DynamicObject>,
    d: &Decision,
) -> Result<Vec<u8>, ConvertError> {
    let mut resp = AdmissionResponse::from(r);
    if let Decision::Carry(c) = d {
        resp = resp
            .with_patch(patch(c))
            .map_err(|e| ConvertError::Serialize(e.to_string()))?;
    }
    let mut review = serde_json::to_value(resp.into_review())
        .map_err(|e| ConvertError::Serialize(e.to_string()))?;
    // kube serializes the patch bytes as a JSON array of numbers (which Go's decoder happens to
    // accept); the API's wire form of `[]byte` is base64, as the Kubernetes docs show
    if let Some(p) = review.pointer_mut("/response/patch") {
        let bytes: Vec<u8> =
            serde_json::from_value(p.take()).map_err(|e| ConvertError::Serialize(e.to_string()))?;
        use base64::Engine as _;
        *p = Value::String(base64::engine::general_purpose::STANDARD.encode(bytes));
    }
    serde_json::to_vec(&review).map_err(|e| ConvertError::Serialize(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::decide;
    use serde_json::json;

    fn review(user: &str, old_cs: Value, new_cs: Value) -> Vec<u8> {
        let pod = |cs: Value| {
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "default"},
                   "spec": {"containers": [{"name": "app", "image": "x"}]},
                   "status": {"phase": "Running", "containerStatuses": cs}})
        };
        serde_json::to_vec(&json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {
                "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "subResource": "status",
                "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
                "requestResource": {"group": "", "version": "v1", "resource": "pods"},
                "requestSubResource": "status",
                "name": "web", "namespace": "default", "operation": "UPDATE",
                "userInfo": {"username": user, "groups": ["system:nodes", "system:authenticated"]},
                "object": pod(new_cs), "oldObject": pod(old_cs), "dryRun": false,
                "options": {"apiVersion": "meta.k8s.io/v1", "kind": "PatchOptions"}
            }
        }))
        .unwrap()
    }

    fn answer(body: &[u8]) -> Value {
        let r = parse_review(body).unwrap();
        let d = decide(&request(&r));
        serde_json::from_slice(&response(&r, &d).unwrap()).unwrap()
    }

    #[test]
    fn a_node_dropping_the_fields_gets_them_back_as_a_json_patch() {
        let old = json!([{"name": "app", "containerID": "containerd://a", "ready": true,
                          "resources": {"requests": {"cpu": "100m"}}, "allocatedResources": {"cpu": "100m"}}]);
        let new = json!([{"name": "app", "containerID": "containerd://a", "ready": true}]);
        let a = answer(&review("system:node:n1", old.clone(), new.clone()));
        assert_eq!(a["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(a["kind"], "AdmissionReview");
        let resp = &a["response"];
        assert_eq!(resp["uid"], "705ab4f5-6393-11e8-b7cc-42010a800002");
        assert_eq!(resp["allowed"], true);
        assert_eq!(resp["patchType"], "JSONPatch");
        use base64::Engine as _;
        let patch = base64::engine::general_purpose::STANDARD
            .decode(resp["patch"].as_str().unwrap())
            .unwrap();
        let ops: Value = serde_json::from_slice(&patch).unwrap();
        assert_eq!(
            ops,
            json!([
                {"op": "add", "path": "/status/containerStatuses/0/resources", "value": {"requests": {"cpu": "100m"}}},
                {"op": "add", "path": "/status/containerStatuses/0/allocatedResources", "value": {"cpu": "100m"}}
            ])
        );
        // the patched new object equals the old one: nothing else changes
        let mut patched = json!({"status": {"containerStatuses": new}});
        let ops: json_patch::Patch = serde_json::from_value(ops).unwrap();
        json_patch::patch(&mut patched, &ops).unwrap();
        assert_eq!(patched["status"]["containerStatuses"], old);
    }

    #[test]
    fn other_users_get_an_allowed_response_without_a_patch() {
        let old = json!([{"name": "app", "containerID": "containerd://a", "resources": {}}]);
        let new = json!([{"name": "app", "containerID": "containerd://a"}]);
        let a = answer(&review(
            "system:serviceaccount:resizelet:resizelet",
            old,
            new,
        ));
        assert_eq!(a["response"]["allowed"], true);
        assert!(a["response"].get("patch").is_none(), "{a}");
    }

    #[test]
    fn malformed_reviews_are_clear_errors() {
        for (body, want) in [
            (&b"not json"[..], "invalid AdmissionReview: expected ident"),
            (b"{}", "invalid AdmissionReview: missing field `apiVersion`"),
            (
                br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview"}"#,
                "invalid AdmissionReview: apiVersion \"admission.k8s.io/v1beta1\"",
            ),
            (
                br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#,
                "invalid AdmissionReview: no request in the AdmissionReview",
            ),
            (
                br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":1}}"#,
                "invalid AdmissionReview: invalid type",
            ),
        ] {
            let e = parse_review(body).unwrap_err().to_string();
            assert!(e.starts_with(want), "{e}");
        }
    }

    #[test]
    fn odd_statuses_never_panic() {
        for cs in [
            json!("nope"),
            json!([1, null, {"name": 3}, {"containerID": 4, "resources": null}]),
            Value::Null,
        ] {
            let a = answer(&review("system:node:n1", cs.clone(), cs));
            assert_eq!(a["response"]["allowed"], true);
            assert!(a["response"].get("patch").is_none(), "{a}");
        }
    }
}
