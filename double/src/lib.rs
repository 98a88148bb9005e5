//! An in-process Kubernetes API-server double for resizelet's tests and
//! benchmarks.
//!
//! [`ApiServer::start`] binds a plain-HTTP server on 127.0.0.1 that speaks
//! the part of the Kubernetes REST API a node agent uses: pods (list, watch,
//! get, create, delete, `status` and `resize` subresources), nodes (list,
//! watch, get, create, `status`) and events (core v1 and events.k8s.io/v1).
//! Objects are kept as `serde_json::Value`s under one global
//! resourceVersion, with a bounded watch history so that clients can resume,
//! and `410 Gone` when they resume from before it. The same operations are
//! available in-process for test drivers, with the same semantics.
//!
//! See the crate README for what is faithful and what is simplified.

mod admission;
mod http;
mod kubelet;
pub mod patch;
mod pod;
mod store;
mod util;

pub use admission::{AdmissionStats, FailurePolicy, MutatingWebhook, UserInfo};
pub use kubelet::{KubeletActorHandle, KubeletStats};

use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use store::{Kind, Store};

/// The content type of a patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    /// `application/strategic-merge-patch+json`
    Strategic,
    /// `application/merge-patch+json` (RFC 7386)
    Merge,
    /// `application/json-patch+json` (RFC 6902)
    Json,
}

/// A fault injected into the next matching HTTP request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The next PATCH of `pods/{name}/status` answers 409 Conflict.
    Conflict,
    /// The next request of any kind answers with this status code.
    Status(u16),
}

/// Counters of what clients did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Accepted PATCHes of `pods/status` (no-op ones included).
    pub pod_status_patches: u64,
    /// PATCH/PUT of `pods/status` refused with 409 (injected faults included).
    pub pod_status_conflicts: u64,
    /// Accepted PUTs of `pods/status`.
    pub pod_status_updates: u64,
    /// Accepted `pods/resize` patches (no-op ones included).
    pub resize_patches: u64,
    /// `pods/resize` patches refused with 422.
    pub resize_rejections: u64,
    /// Writes of `nodes/status`.
    pub node_status_writes: u64,
    /// Event creates and patches.
    pub event_writes: u64,
    /// Watch streams opened over HTTP.
    pub watch_streams_opened: u64,
    /// List requests over HTTP.
    pub lists: u64,
    /// HTTP requests of any kind.
    pub requests: u64,
    /// Faults injected with [`ApiServer::fail_next`] that fired.
    pub faults_fired: u64,
    /// Status writes done by the gate-off kubelet actor.
    pub kubelet_actor_writes: u64,
}

/// An API error, rendered over HTTP as a metav1 `Status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: u16,
    pub reason: String,
    pub message: String,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.reason, self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

impl ApiError {
    pub fn new(code: u16, reason: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            reason: reason.to_string(),
            message: message.into(),
        }
    }

    pub fn not_found(plural: &str, name: &str) -> ApiError {
        ApiError::new(404, "NotFound", format!("{plural} \"{name}\" not found"))
    }

    pub fn conflict(plural: &str, name: &str) -> ApiError {
        ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {plural} \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
            ),
        )
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "BadRequest", message)
    }

    /// An error for a bare status code, with the reason the real server uses.
    pub fn from_code(code: u16) -> ApiError {
        let reason = match code {
            400 => "BadRequest",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "NotFound",
            405 => "MethodNotAllowed",
            409 => "Conflict",
            410 => "Expired",
            422 => "Invalid",
            429 => "TooManyRequests",
            500 => "InternalError",
            503 => "ServiceUnavailable",
            504 => "Timeout",
            _ => "Unknown",
        };
        ApiError::new(code, reason, format!("injected fault: {code}"))
    }

    /// The metav1 `Status` object.
    pub fn to_status(&self) -> Value {
        json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        })
    }
}

/// The type of a watch event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change of the store, as broadcast by [`ApiServer::watch_changes`].
#[derive(Debug, Clone)]
pub struct WatchEvent {
    pub event_type: EventType,
    /// "Pod", "Node" or "Event".
    pub kind: String,
    /// The object after the change (for `Deleted`: the last state, with the
    /// deletion's resourceVersion).
    pub object: Value,
    /// The object before the change (`None` for `Added`).
    pub old_object: Option<Value>,
    pub resource_version: u64,
}

pub(crate) struct Inner {
    pub store: Store,
    pub admission: admission::Admission,
    pub addr: SocketAddr,
}

/// A running API-server double; cheap to clone.
#[derive(Clone)]
pub struct ApiServer {
    inner: Arc<Inner>,
}

impl ApiServer {
    /// Binds 127.0.0.1 on a free port and serves on the current tokio runtime.
    pub async fn start() -> ApiServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let inner = Arc::new(Inner {
            store: Store::new(),
            admission: Default::default(),
            addr,
        });
        tokio::spawn(http::serve(listener, inner.clone()));
        ApiServer { inner }
    }

    /// Serves as kube-apiserver 1.`minor` (default 33): `/version`, and from 32 down
    /// `status.resize = Proposed` on every resize that changes resources.
    pub fn set_minor_version(&self, minor: u32) {
        self.store().lock().minor_version = minor;
    }

    /// The base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.inner.addr)
    }

    /// A kubeconfig pointing at this server, with a dummy token.
    pub fn kubeconfig_yaml(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: double\n  cluster:\n    server: {}\nusers:\n- name: double\n  user:\n    token: double-token\ncontexts:\n- name: double\n  context:\n    cluster: double\n    user: double\n    namespace: default\ncurrent-context: double\npreferences: {{}}\n",
            self.url()
        )
    }

    pub fn write_kubeconfig(&self, path: &std::path::Path) -> std::io::Result<()> {
        std::fs::write(path, self.kubeconfig_yaml())
    }

    fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Creates a pod: fills uid, resourceVersion, generation 1,
    /// creationTimestamp, namespace ("default"), requests defaulted from
    /// limits, `status.phase` (Pending) and `status.qosClass` when absent.
    pub fn create_pod(&self, pod: Value) -> Result<Value, ApiError> {
        self.store().create(Kind::Pod, "", pod, "v1")
    }

    pub fn get_pod(&self, ns: &str, name: &str) -> Option<Value> {
        self.store().get(Kind::Pod, ns, name)
    }

    /// Removes a pod at once (no graceful deletion), emitting DELETED.
    pub fn delete_pod(&self, ns: &str, name: &str) -> Result<Value, ApiError> {
        self.store().delete(Kind::Pod, ns, name)
    }

    /// As `PATCH pods/{name}/status`: only `status` is taken from the
    /// patched object, `metadata.resourceVersion` is a precondition.
    pub fn patch_pod_status(
        &self,
        ns: &str,
        name: &str,
        kind: PatchKind,
        patch: &Value,
    ) -> Result<Value, ApiError> {
        self.store().patch_status(Kind::Pod, ns, name, kind, patch)
    }

    /// As `PATCH pods/{name}/resize`.
    pub fn resize_pod(
        &self,
        ns: &str,
        name: &str,
        kind: PatchKind,
        patch: &Value,
    ) -> Result<Value, ApiError> {
        self.store().resize(ns, name, kind, patch)
    }

    pub fn create_node(&self, node: Value) -> Result<Value, ApiError> {
        self.store().create(Kind::Node, "", node, "v1")
    }

    pub fn get_node(&self, name: &str) -> Option<Value> {
        self.store().get(Kind::Node, "", name)
    }

    pub fn patch_node_status(
        &self,
        name: &str,
        kind: PatchKind,
        patch: &Value,
    ) -> Result<Value, ApiError> {
        self.store().patch_status(Kind::Node, "", name, kind, patch)
    }

    /// All events (both API groups) in their current state.
    pub fn events(&self) -> Vec<Value> {
        self.store().lock().events.values().cloned().collect()
    }

    pub fn stats(&self) -> Stats {
        self.store().lock().stats.clone()
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.store().lock().rv
    }

    /// A feed of every change from now on.
    pub fn watch_changes(&self) -> tokio::sync::broadcast::Receiver<WatchEvent> {
        self.store().tx.subscribe()
    }

    /// Compacts history so that every resume from an older resourceVersion
    /// gets 410 Gone, and ends every open watch stream now.
    pub fn force_gone(&self) {
        self.store().force_gone()
    }

    /// Queues a fault for the next matching HTTP request.
    pub fn fail_next(&self, fault: Fault) {
        self.store().lock().faults.push_back(fault)
    }

    /// The period of BOOKMARK events on watches that allow them (default 1 s);
    /// applies to watches opened afterwards.
    pub fn set_bookmark_interval(&self, d: std::time::Duration) {
        self.store().lock().bookmark_interval = d;
    }

    /// Registers (or with `None` removes) the mutating webhook called for
    /// `pods/status` writes; errors name a bad CEL expression or CA bundle.
    pub fn set_mutating_webhook(&self, hook: Option<MutatingWebhook>) -> Result<(), String> {
        self.inner.admission.configure(hook)
    }

    /// What admission did so far.
    pub fn admission_stats(&self) -> AdmissionStats {
        self.inner.admission.stats()
    }

    /// A `pods/status` patch by `user`, through admission like an HTTP one.
    pub async fn patch_pod_status_as(
        &self,
        user: &UserInfo,
        ns: &str,
        name: &str,
        kind: PatchKind,
        patch: &Value,
    ) -> Result<Value, ApiError> {
        admission::write_pod_status(
            &self.inner,
            user,
            ns,
            name,
            admission::StatusWrite::Patch(kind, patch),
            store::StatusWriter::Patch,
        )
        .await
    }

    /// Starts an actor that behaves like a v1.32 kubelet with the
    /// InPlacePodVerticalScaling gate off re-syncing status every `period`.
    pub fn start_gate_off_kubelet(&self, node: &str, period: Duration) -> KubeletActorHandle {
        kubelet::start(self.inner.clone(), node.to_string(), period)
    }
}
