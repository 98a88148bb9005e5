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
mod discovery;
mod events;
mod http;
mod kubelet;
pub mod patch;
mod pod;
mod store;
mod util;
pub mod validation;

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

/// The kube-apiserver version the double serves as.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum ServerVersion {
    /// v1.32: pods have no `metadata.generation`; `status.observedGeneration` and
    /// `conditions[].observedGeneration` are unknown fields (dropped); `/resize` sets
    /// `status.resize: Proposed`.
    V1_32,
    /// v1.33 and later: `metadata.generation` (bumped by a changing resize) and both
    /// `observedGeneration` fields.
    #[default]
    V1_33,
}

impl ServerVersion {
    /// The minor version `/version` reports.
    pub fn minor(self) -> u32 {
        match self {
            ServerVersion::V1_32 => 32,
            ServerVersion::V1_33 => 33,
        }
    }
}

/// A plain pod PATCH on a real control plane costs about this much (one etcd write, p50 on
/// the VM of issue 11).
pub const DEFAULT_WRITE_LATENCY: Duration = Duration::from_millis(9);

/// How the double is started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    pub version: ServerVersion,
    /// The cost of one write request over HTTP (create, update, patch, delete), paid before
    /// the write is applied, so its watch event and its response come after it. In-process
    /// driver calls are free.
    pub write_latency: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            version: ServerVersion::default(),
            write_latency: DEFAULT_WRITE_LATENCY,
        }
    }
}

/// An HTTP write the double refused as a client error (any 4xx but 404 and 409, which are
/// races a correct client meets, not mistakes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Who sent it: `token:<bearer token>`, else `agent:<User-Agent>`, else `anonymous`.
    pub client: String,
    pub method: String,
    pub path: String,
    pub code: u16,
    pub message: String,
}

/// Counters of what clients did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// HTTP writes refused as client errors, per client (see [`Refusal`]).
    pub refused_writes: std::collections::BTreeMap<String, u64>,
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
    /// metav1 `StatusDetails` (`name`, `group`, `kind`, `causes`), when the server sends them.
    pub details: Option<Value>,
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
            details: None,
        }
    }

    pub fn with_details(mut self, details: Value) -> ApiError {
        self.details = Some(details);
        self
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
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        s
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
    /// Binds 127.0.0.1 on a free port and serves on the current tokio runtime, as a 1.33+
    /// server with the default write latency.
    pub async fn start() -> ApiServer {
        Self::start_with(Options::default()).await
    }

    /// [`ApiServer::start`] with the given version and write latency.
    pub async fn start_with(options: Options) -> ApiServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let store = Store::new();
        {
            let mut st = store.lock();
            st.version = options.version;
            st.minor_version = options.version.minor();
            st.write_latency = options.write_latency;
        }
        let inner = Arc::new(Inner {
            store,
            admission: Default::default(),
            addr,
        });
        tokio::spawn(http::serve(listener, inner.clone()));
        ApiServer { inner }
    }

    /// Serves as kube-apiserver 1.`minor` from now on: `/version` reports it, and 32 or lower
    /// switches to the [`ServerVersion::V1_32`] mode (pods created afterwards get no
    /// `generation`, `observedGeneration` is dropped, `/resize` sets `Proposed`), 33 or higher
    /// to [`ServerVersion::V1_33`].
    pub fn set_minor_version(&self, minor: u32) {
        let mut st = self.store().lock();
        st.minor_version = minor;
        st.version = if minor <= 32 {
            ServerVersion::V1_32
        } else {
            ServerVersion::V1_33
        };
    }

    /// The base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.inner.addr)
    }

    /// A kubeconfig pointing at this server, with a dummy token.
    pub fn kubeconfig_yaml(&self) -> String {
        self.kubeconfig_yaml_for("double-token")
    }

    /// A kubeconfig whose bearer token names the client in [`Stats::refused_writes`]
    /// (`token:<token>`); any token is accepted.
    pub fn kubeconfig_yaml_for(&self, token: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: double\n  cluster:\n    server: {}\nusers:\n- name: double\n  user:\n    token: {token}\ncontexts:\n- name: double\n  context:\n    cluster: double\n    user: double\n    namespace: default\ncurrent-context: double\npreferences: {{}}\n",
            self.url()
        )
    }

    pub fn write_kubeconfig(&self, path: &std::path::Path) -> std::io::Result<()> {
        std::fs::write(path, self.kubeconfig_yaml())
    }

    /// [`ApiServer::write_kubeconfig`] with a client-naming token.
    pub fn write_kubeconfig_for(&self, path: &std::path::Path, token: &str) -> std::io::Result<()> {
        std::fs::write(path, self.kubeconfig_yaml_for(token))
    }

    pub fn version(&self) -> ServerVersion {
        self.store().lock().version
    }

    /// Sets the cost of each HTTP write from now on.
    pub fn set_write_latency(&self, d: Duration) {
        self.store().lock().write_latency = d;
    }

    /// The HTTP writes refused so far (the last 1,000), oldest first.
    pub fn refusals(&self) -> Vec<Refusal> {
        self.store().lock().refusals.iter().cloned().collect()
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
