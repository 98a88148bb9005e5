//! The Kubernetes edge: reads are a `Stream` of watcher events ([`Input`]); writes go through the
//! small [`KubeWriter`] trait (real: [`client::ApiWriter`] over kube-rs; in-memory for unit
//! tests: `memory::MemoryWriter`). `convert.rs` is the only place API types are mapped.

pub mod client;
pub mod convert;
pub mod events;
#[cfg(test)]
pub mod memory;
pub mod selector;
pub mod unusable;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::events::v1::Event;
use kube::runtime::watcher;
use serde_json::Value;

/// One thing the controller reacts to. Pods and the node arrive as kube-runtime watcher events
/// (an `Init` … `InitDone` sequence is a full relist).
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // moved once per watch event; boxing buys nothing
pub enum Input {
    Pod(watcher::Event<Pod>),
    Node(watcher::Event<Node>),
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("conflict writing {what}: the object changed (resourceVersion precondition failed)")]
    Conflict { what: String },
    #[error("{what} not found")]
    NotFound { what: String },
    #[error("api error writing {what}: {code} {message}")]
    Api {
        what: String,
        code: u16,
        message: String,
    },
    #[error("cannot reach the api server writing {what}: {message}")]
    Transport { what: String, message: String },
}

/// Everything resizelet writes to (or re-reads from) the API server.
#[async_trait]
pub trait KubeWriter: Send + Sync {
    /// Strategic-merge patch of `pods/status`; the patch carries its `resourceVersion`
    /// precondition. Returns the updated pod.
    async fn patch_pod_status(
        &self,
        namespace: &str,
        name: &str,
        patch: &Value,
    ) -> Result<Pod, WriteError>;
    /// Re-read after a conflict.
    async fn get_pod(&self, namespace: &str, name: &str) -> Result<Pod, WriteError>;
    /// Creates an `events.k8s.io/v1` Event; returns its name.
    async fn create_event(&self, namespace: &str, event: &Event) -> Result<String, WriteError>;
    /// Merge-patches an Event (series updates).
    async fn patch_event(
        &self,
        namespace: &str,
        name: &str,
        patch: &Value,
    ) -> Result<(), WriteError>;
}
