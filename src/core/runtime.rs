//! The runtime's view of containers, as the core sees it (CRI types never leak past `cri::convert`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContainerState {
    Created,
    Running,
    Exited,
    Unknown,
}

/// A container as listed by the runtime (kubelet labels decoded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeContainer {
    pub id: String,
    pub pod_sandbox_id: String,
    /// `io.kubernetes.pod.uid`
    pub pod_uid: String,
    /// `io.kubernetes.container.name` (falls back to the CRI metadata name)
    pub name: String,
    /// CRI metadata attempt (restart count)
    pub attempt: u32,
    pub state: ContainerState,
    pub created_at_nanos: i64,
    pub labels: BTreeMap<String, String>,
}

/// `LinuxContainerResources` as sent to / reported by the runtime (spec §10). Zero means "unset"
/// for every field, as in CRI.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinuxResources {
    pub cpu_period: i64,
    pub cpu_quota: i64,
    pub cpu_shares: i64,
    pub memory_limit_in_bytes: i64,
    pub oom_score_adj: i64,
    /// (page size like "2MB", limit bytes)
    pub hugepage_limits: Vec<(String, u64)>,
    pub unified: BTreeMap<String, String>,
    pub memory_swap_limit_in_bytes: i64,
}

/// `ContainerStatus` reduced to what resizing needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeContainerStatus {
    pub id: String,
    pub name: String,
    pub state: ContainerState,
    /// `ContainerStatus.resources.linux`; `None` when the runtime does not report resources
    /// (containerd < 1.6.9).
    pub resources: Option<LinuxResources>,
}
