//! The Kubernetes edge, spoken in resizelet's own types: reads are a `Stream` of [`Input`]s (the
//! watcher's events, converted where the stream is made: `convert::pod_input` /
//! `convert::node_input`); writes go through the small [`KubeWriter`] trait (real:
//! [`client::ApiWriter`] over kube-rs; in-memory for unit tests: `memory::MemoryWriter`).
//! `convert.rs` is the only place API types are mapped.

pub mod client;
pub mod convert;
pub mod events;
#[cfg(test)]
pub mod memory;
pub mod unusable;

use std::time::SystemTime;

use async_trait::async_trait;
use serde_json::Value;

use convert::{ConvertError, NodeView, PodView, UnusablePod};

/// One thing the controller reacts to: a pod watch event, or the node as listed or changed.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // moved once per watch event; boxing buys nothing
pub enum Input {
    Pod(PodEvent),
    Node(NodeView),
}

/// The pod watch (kube-runtime's watcher events): `RelistStarted`, `Listed` …, `RelistDone` is a
/// full relist.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)]
pub enum PodEvent {
    /// A relist starts (`Init`).
    RelistStarted,
    /// A pod of the relist under way (`InitApply`).
    Listed(WatchedPod),
    /// The relist is complete (`InitDone`).
    RelistDone,
    /// A pod was added or changed (`Apply`).
    Applied(WatchedPod),
    /// A pod was deleted (`Delete`).
    Deleted { uid: String },
}

/// A pod from the watch: its view, or why its spec cannot be used.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)]
pub enum WatchedPod {
    Usable(PodView),
    /// `convert::pod_view` refused it; `unusable` is what can be reported about it (`None`
    /// when it cannot be addressed, or is terminal or being deleted).
    Refused {
        error: ConvertError,
        unusable: Option<UnusablePod>,
    },
}

/// A strategic-merge patch of one pod's `pods/status`.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusPatch {
    pub namespace: String,
    pub name: String,
    /// The patch (with its `resourceVersion` precondition, when it has one).
    pub body: Value,
}

/// An `events.k8s.io/v1` Event as resizelet writes it (`convert::event_object` maps it).
#[derive(Debug, Clone, PartialEq)]
pub struct EventRecord {
    /// `<regarding name>.<unix nanos in hex>` of `time`, as client-go names it.
    pub name: String,
    pub namespace: String,
    /// `eventTime`.
    pub time: SystemTime,
    pub action: &'static str,
    pub reason: String,
    /// At most 1 kB (the API server's limit).
    pub note: String,
    /// `type: Warning`, else `Normal`.
    pub warning: bool,
    pub reporting_controller: &'static str,
    pub reporting_instance: String,
    pub regarding: Regarding,
}

/// What an Event is about (a core/v1 object).
#[derive(Debug, Clone, PartialEq)]
pub enum Regarding {
    Pod {
        namespace: String,
        name: String,
        uid: String,
        resource_version: String,
    },
    Node {
        name: String,
    },
}

impl Regarding {
    pub fn name(&self) -> &str {
        match self {
            Regarding::Pod { name, .. } | Regarding::Node { name } => name,
        }
    }
}

/// A repeat of an Event: its series count and when it was last seen.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesUpdate {
    pub namespace: String,
    /// The Event's name.
    pub name: String,
    pub count: i32,
    pub last_observed: SystemTime,
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

/// Everything resizelet writes to (or re-reads from) the API server. A pod comes back as the
/// controller's view of it: `None` when its spec is no longer one resizelet can use
/// (`convert::pod_view` refused it).
#[async_trait]
pub trait KubeWriter: Send + Sync {
    /// Patches `pods/status` (the patch carries its `resourceVersion` precondition); returns the
    /// pod as written.
    async fn patch_pod_status(&self, patch: &StatusPatch) -> Result<Option<PodView>, WriteError>;
    /// Re-read after a conflict.
    async fn get_pod(&self, namespace: &str, name: &str) -> Result<Option<PodView>, WriteError>;
    /// Creates the Event; returns its name.
    async fn create_event(&self, event: &EventRecord) -> Result<String, WriteError>;
    /// Updates an Event's series (merge patch).
    async fn update_series(&self, series: &SeriesUpdate) -> Result<(), WriteError>;
}
