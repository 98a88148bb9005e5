//! CRI runtime access (the IO shell for containerd).

/// Generated CRI v1 types and client (`proto/cri-api/v1/api.proto`). Only `cri::convert` and the
/// client use them; the core sees `crate::core::runtime` types.
#[allow(clippy::all, missing_docs)]
pub mod proto {
    tonic::include_proto!("runtime.v1");
}

pub mod client;
pub mod convert;
#[cfg(any(test, feature = "testing"))]
pub mod fake;

use async_trait::async_trait;

use crate::core::runtime::{LinuxResources, RuntimeContainer, RuntimeContainerStatus};

/// Runtime identity from CRI `Version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeVersion {
    pub runtime_name: String,
    pub runtime_version: String,
    pub runtime_api_version: String,
}

#[derive(Debug, thiserror::Error)]
pub enum CriError {
    #[error("container runtime endpoint {endpoint}: {reason}")]
    Endpoint { endpoint: String, reason: String },
    #[error("cannot connect to container runtime at {endpoint}: {source}")]
    Connect {
        endpoint: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cri {call} failed: {status}")]
    Call {
        call: &'static str,
        #[source]
        status: tonic::Status,
    },
    #[error("container {id} not found")]
    NotFound { id: String },
    #[error("cri {call} timed out after {timeout_ms} ms")]
    Timeout { call: &'static str, timeout_ms: u64 },
    #[error("malformed cri response to {call}: {reason}")]
    Malformed { call: &'static str, reason: String },
}

/// The CRI calls resizelet makes. Real: `client::CriClient`; in memory: `fake::FakeRuntime`.
#[async_trait]
pub trait Runtime: Send + Sync {
    async fn version(&self) -> Result<RuntimeVersion, CriError>;
    /// Containers of one pod (label filter `io.kubernetes.pod.uid`), or all when `pod_uid` is `None`.
    async fn list_containers(
        &self,
        pod_uid: Option<&str>,
    ) -> Result<Vec<RuntimeContainer>, CriError>;
    async fn container_status(&self, id: &str) -> Result<RuntimeContainerStatus, CriError>;
    async fn update_container_resources(
        &self,
        id: &str,
        resources: &LinuxResources,
    ) -> Result<(), CriError>;
    async fn stop_container(&self, id: &str, timeout_seconds: i64) -> Result<(), CriError>;
}
