//! Mutating admission for `pods/status` writes, as the API server's mutating webhook plugin
//! does it (`staging/src/k8s.io/apiserver/pkg/admission/plugin/webhook/mutating/dispatcher.go`):
//! the patched object and the stored one go to the webhook as an AdmissionReview v1 over HTTPS
//! (the configured CA bundle is the only trust), when every `matchConditions` CEL expression is
//! true; the returned JSONPatch is applied; a call that fails, times out or answers garbage, and
//! a match condition that errors, are ignored or refuse the write by `failurePolicy`. The write
//! itself is then stored against the resourceVersion admission saw; if the pod moved on
//! meanwhile, admission runs again on the new state (the registry's `GuaranteedUpdate` retry).
//!
//! Simplified: one webhook; pods/status PATCH and PUT only; no `namespaceSelector`/
//! `objectSelector`, no `authorizer` in CEL, no reinvocation; the requesting user is the bearer
//! token of the HTTP request (the double authenticates nobody), in-process writes name theirs.

use crate::store::{apply_patch, status_written, Kind, StatusWriter};
use crate::{util, ApiError, Inner, PatchKind};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// What the API server does when a call fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailurePolicy {
    Ignore,
    Fail,
}

/// A mutating webhook for `pods/status` (the fields of a `MutatingWebhookConfiguration` entry the
/// double honours).
#[derive(Debug, Clone)]
pub struct MutatingWebhook {
    pub name: String,
    /// `https://host:port/path`
    pub url: String,
    /// PEM CA certificates that sign the webhook's serving certificate (`caBundle`).
    pub ca_bundle: Vec<u8>,
    /// `(name, CEL expression)`; variables `object`, `oldObject`, `request`.
    pub match_conditions: Vec<(String, String)>,
    pub failure_policy: FailurePolicy,
    pub timeout: Duration,
}

/// Counters of the webhook's use.
#[derive(Debug, Clone, Default)]
pub struct AdmissionStats {
    /// pods/status writes that went through admission.
    pub writes: u64,
    /// Of those, skipped because a match condition was false.
    pub not_matched: u64,
    /// Webhook calls made.
    pub calls: u64,
    /// Calls whose answer carried a non-empty patch.
    pub patched: u64,
    /// Calls (or condition evaluations) that failed; `failure_policy` decided.
    pub failures: u64,
    /// Writes refused by the webhook (`allowed: false`) or by `failurePolicy: Fail`.
    pub refused: u64,
    /// Writes re-admitted because the pod changed between admission and storage.
    pub retries: u64,
    /// Latency of every call (success or not).
    pub latencies: Vec<Duration>,
}

/// Who makes a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    pub username: String,
    pub groups: Vec<String>,
}

impl UserInfo {
    /// A user named `name`; `system:node:*` users are in `system:nodes` like node credentials.
    pub fn named(name: &str) -> UserInfo {
        let mut groups = Vec::new();
        if name.starts_with("system:node:") {
            groups.push("system:nodes".to_string());
        }
        if name != "system:anonymous" {
            groups.push("system:authenticated".to_string());
        } else {
            groups.push("system:unauthenticated".to_string());
        }
        UserInfo {
            username: name.to_string(),
            groups,
        }
    }

    /// The user of an HTTP request: its bearer token taken as the user name.
    pub fn from_authorization(header: Option<&str>) -> UserInfo {
        match header.and_then(|h| h.strip_prefix("Bearer ")) {
            Some(t) if !t.trim().is_empty() => UserInfo::named(t.trim()),
            _ => UserInfo::named("system:anonymous"),
        }
    }
}

struct Configured {
    hook: MutatingWebhook,
    conditions: Vec<(String, cel::Program)>,
    client: hyper_util::client::legacy::Client<
        hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
        Full<Bytes>,
    >,
}

/// The admission chain of a double: empty or one mutating webhook.
#[derive(Default)]
pub struct Admission {
    hook: RwLock<Option<Arc<Configured>>>,
    stats: Mutex<AdmissionStats>,
}

impl Admission {
    pub fn configure(&self, hook: Option<MutatingWebhook>) -> Result<(), String> {
        let configured = match hook {
            None => None,
            Some(hook) => {
                let mut conditions = Vec::new();
                for (name, e) in &hook.match_conditions {
                    let p = cel::Program::compile(e)
                        .map_err(|err| format!("matchConditions[{name}]: {e}: {err}"))?;
                    conditions.push((name.clone(), p));
                }
                let mut roots = rustls::RootCertStore::empty();
                use rustls_pki_types::pem::PemObject;
                for c in rustls_pki_types::CertificateDer::pem_slice_iter(&hook.ca_bundle) {
                    let c = c.map_err(|e| format!("caBundle: {e}"))?;
                    roots.add(c).map_err(|e| format!("caBundle: {e}"))?;
                }
                if roots.is_empty() {
                    return Err("caBundle: no PEM certificate".into());
                }
                let provider = Arc::new(rustls::crypto::ring::default_provider());
                let tls = rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .map_err(|e| e.to_string())?
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                let https = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config(tls)
                    .https_only()
                    .enable_http1()
                    .build();
                let client = hyper_util::client::legacy::Client::builder(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .build(https);
                Some(Arc::new(Configured {
                    hook,
                    conditions,
                    client,
                }))
            }
        };
        *self.hook.write().unwrap_or_else(|e| e.into_inner()) = configured;
        Ok(())
    }

    fn current(&self) -> Option<Arc<Configured>> {
        self.hook.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn configured(&self) -> bool {
        self.current().is_some()
    }

    pub fn stats(&self) -> AdmissionStats {
        self.stats.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn count(&self, f: impl FnOnce(&mut AdmissionStats)) {
        f(&mut self.stats.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// A pods/status write to admit: a patch or a replacement object.
pub enum StatusWrite<'a> {
    Patch(PatchKind, &'a Value),
    Put(&'a Value),
}

/// The AdmissionReview request for a pods/status UPDATE.
fn review(uid: &str, user: &UserInfo, put: bool, old: &Value, new: &Value) -> Value {
    let gvk = json!({"group": "", "version": "v1", "kind": "Pod"});
    let gvr = json!({"group": "", "version": "v1", "resource": "pods"});
    let options = if put { "UpdateOptions" } else { "PatchOptions" };
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": gvk, "resource": gvr, "subResource": "status",
            "requestKind": gvk, "requestResource": gvr, "requestSubResource": "status",
            "name": old.pointer("/metadata/name").cloned().unwrap_or(Value::Null),
            "namespace": old.pointer("/metadata/namespace").cloned().unwrap_or(Value::Null),
            "operation": "UPDATE",
            "userInfo": {"username": user.username, "groups": user.groups},
            "object": new,
            "oldObject": old,
            "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": options},
        }
    })
}

enum Call {
    /// The object to store (mutated or not).
    Admitted(Value),
    Refused(ApiError),
}

fn call_failed(c: &Configured, admission: &Admission, new: &Value, detail: String) -> Call {
    admission.count(|s| s.failures += 1);
    match c.hook.failure_policy {
        FailurePolicy::Ignore => {
            tracing::debug!(webhook = %c.hook.name, %detail, "webhook call failed; ignored");
            Call::Admitted(new.clone())
        }
        FailurePolicy::Fail => {
            admission.count(|s| s.refused += 1);
            Call::Refused(ApiError::new(
                500,
                "InternalError",
                format!(
                    "Internal error occurred: failed calling webhook \"{}\": {detail}",
                    c.hook.name
                ),
            ))
        }
    }
}

/// Runs the match conditions and, when they hold, the webhook.
async fn mutate(
    c: &Configured,
    admission: &Admission,
    user: &UserInfo,
    put: bool,
    old: &Value,
    new: &Value,
) -> Call {
    let uid = util::uuid();
    let body = review(&uid, user, put, old, new);
    {
        let mut ctx = cel::Context::default();
        let vars = [
            ("object", new.clone()),
            ("oldObject", old.clone()),
            ("request", body["request"].clone()),
        ];
        for (k, v) in vars {
            if let Err(e) = ctx.add_variable(k, v) {
                return call_failed(c, admission, new, format!("CEL variable {k}: {e}"));
            }
        }
        for (name, p) in &c.conditions {
            match p.execute(&ctx) {
                Ok(cel::Value::Bool(true)) => {}
                Ok(cel::Value::Bool(false)) => {
                    admission.count(|s| s.not_matched += 1);
                    return Call::Admitted(new.clone());
                }
                Ok(other) => {
                    return call_failed(
                        c,
                        admission,
                        new,
                        format!("matchConditions[{name}] is not a bool: {other:?}"),
                    )
                }
                Err(e) => {
                    return call_failed(c, admission, new, format!("matchConditions[{name}]: {e}"))
                }
            }
        }
    }
    admission.count(|s| s.calls += 1);
    let started = Instant::now();
    let answer = call(c, &body).await;
    admission.count(|s| s.latencies.push(started.elapsed()));
    let resp = match answer {
        Ok(v) => v,
        Err(detail) => return call_failed(c, admission, new, detail),
    };
    let r = &resp["response"];
    if resp["apiVersion"] != "admission.k8s.io/v1" || resp["kind"] != "AdmissionReview" {
        return call_failed(
            c,
            admission,
            new,
            "expected response.apiVersion admission.k8s.io/v1 and kind AdmissionReview".into(),
        );
    }
    if r["uid"] != uid.as_str() {
        return call_failed(
            c,
            admission,
            new,
            format!("expected response.uid={uid:?}, got {}", r["uid"]),
        );
    }
    if r["allowed"] != true {
        admission.count(|s| s.refused += 1);
        let msg = r["status"]["message"].as_str().unwrap_or("");
        let code = r["status"]["code"].as_u64().unwrap_or(400) as u16;
        return Call::Refused(ApiError::new(
            code,
            "Forbidden",
            format!(
                "admission webhook \"{}\" denied the request: {msg}",
                c.hook.name
            ),
        ));
    }
    let ops = match r.get("patch") {
        None | Some(Value::Null) => return Call::Admitted(new.clone()),
        Some(p) => match decode_patch(p) {
            Ok(ops) => ops,
            Err(e) => return call_failed(c, admission, new, e),
        },
    };
    if r["patchType"] != "JSONPatch" {
        return call_failed(
            c,
            admission,
            new,
            format!("unsupported patch type {}", r["patchType"]),
        );
    }
    if ops.as_array().is_some_and(|a| !a.is_empty()) {
        admission.count(|s| s.patched += 1);
    }
    match crate::patch::json_patch(new, &ops) {
        Ok(v) => Call::Admitted(v),
        Err(e) => call_failed(
            c,
            admission,
            new,
            format!("applying the webhook's patch: {}", e.0),
        ),
    }
}

/// `response.patch`: base64 (Go's `[]byte`) or, as Go's decoder also accepts, an array of bytes.
fn decode_patch(p: &Value) -> Result<Value, String> {
    let bytes: Vec<u8> = match p {
        Value::String(s) => {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|e| format!("response.patch is not base64: {e}"))?
        }
        other => {
            serde_json::from_value(other.clone()).map_err(|e| format!("response.patch: {e}"))?
        }
    };
    serde_json::from_slice(&bytes).map_err(|e| format!("response.patch is not a JSON patch: {e}"))
}

async fn call(c: &Configured, body: &Value) -> Result<Value, String> {
    let req = hyper::Request::post(c.hook.url.as_str())
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .body(Full::new(Bytes::from(
            serde_json::to_vec(body).map_err(|e| e.to_string())?,
        )))
        .map_err(|e| format!("bad webhook URL {}: {e}", c.hook.url))?;
    let exchange = async {
        let resp = c
            .client
            .request(req)
            .await
            .map_err(|e| format!("Post \"{}\": {e:?}", c.hook.url))?;
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        if !status.is_success() {
            return Err(format!(
                "the server responded with {status}: {}",
                String::from_utf8_lossy(&bytes).trim()
            ));
        }
        serde_json::from_slice::<Value>(&bytes).map_err(|e| format!("decoding the response: {e}"))
    };
    match tokio::time::timeout(c.hook.timeout, exchange).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "Post \"{}\": context deadline exceeded ({:?})",
            c.hook.url, c.hook.timeout
        )),
    }
}

/// A pods/status write through admission: patch (or replace) the current object, admit it, store
/// it if the pod has not moved on since, else again.
pub async fn write_pod_status(
    inner: &Inner,
    user: &UserInfo,
    ns: &str,
    name: &str,
    write: StatusWrite<'_>,
    writer: StatusWriter,
) -> Result<Value, ApiError> {
    let Some(c) = inner.admission.current() else {
        return match write {
            StatusWrite::Patch(pk, p) => {
                inner
                    .store
                    .patch_status_as(Kind::Pod, ns, name, pk, p, writer)
            }
            StatusWrite::Put(body) => inner.store.replace_status(Kind::Pod, ns, name, body),
        };
    };
    inner.admission.count(|s| s.writes += 1);
    loop {
        let cur = inner.store.get_or_404(Kind::Pod, ns, name)?;
        let (update, put) = match write {
            StatusWrite::Patch(pk, p) => (apply_patch(pk, &cur, p)?, false),
            StatusWrite::Put(body) => {
                if !body.is_object() {
                    return Err(ApiError::bad_request("object is not a JSON object"));
                }
                (body.clone(), true)
            }
        };
        // the object admission sees: the stored pod with the written status (the status
        // strategy keeps everything else)
        let mut new = status_written(&cur, &update);
        if let Some(rv) = update.pointer("/metadata/resourceVersion") {
            new["metadata"]["resourceVersion"] = rv.clone();
        }
        let admitted = match mutate(&c, &inner.admission, user, put, &cur, &new).await {
            Call::Admitted(v) => v,
            Call::Refused(e) => return Err(e),
        };
        let expected = cur
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .unwrap_or("");
        let writer = if put { StatusWriter::Put } else { writer };
        match inner.store.write_status_if_current(
            Kind::Pod,
            ns,
            name,
            expected,
            &admitted,
            writer,
        )? {
            Some(v) => return Ok(v),
            None => inner.admission.count(|s| s.retries += 1),
        }
    }
}

/// The HTTP hook: a `pods/{name}/status` PATCH or PUT when a webhook is
/// configured (`None`: route as usual).
pub async fn http_status_write(
    inner: &Inner,
    method: &hyper::Method,
    segs: &[&str],
    ctype: &str,
    body: &Bytes,
    authorization: Option<&str>,
) -> Option<Result<Value, ApiError>> {
    let ["api", "v1", "namespaces", ns, "pods", name, "status"] = segs else {
        return None;
    };
    if !inner.admission.configured()
        || !(method == hyper::Method::PATCH || method == hyper::Method::PUT)
    {
        return None;
    }
    let user = UserInfo::from_authorization(authorization);
    let parsed = crate::http::parse_body(body);
    Some(match parsed {
        Err(e) => Err(e),
        Ok(v) if method == hyper::Method::PUT => {
            write_pod_status(
                inner,
                &user,
                ns,
                name,
                StatusWrite::Put(&v),
                StatusWriter::Put,
            )
            .await
        }
        Ok(v) => match crate::http::patch_kind(ctype) {
            Err(e) => Err(e),
            Ok(pk) => {
                write_pod_status(
                    inner,
                    &user,
                    ns,
                    name,
                    StatusWrite::Patch(pk, &v),
                    StatusWriter::Patch,
                )
                .await
            }
        },
    })
}
