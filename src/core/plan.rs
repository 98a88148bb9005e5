//! Enactment planning (spec §7, §8): for one pod, the ordered steps as data. Applied by
//! `crate::executor`.

use serde::{Deserialize, Serialize};

use super::resources::{Resource, ResourceRequirements};
use super::runtime::LinuxResources;

/// Pod cgroup values (also the current readback). `None` = not set / not read.
/// `cpu_quota` and `memory_limit` use −1 for "max" (unlimited), like the kubelet's readback.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodCgroupValues {
    pub cpu_shares: Option<u64>,
    pub cpu_quota: Option<i64>,
    pub cpu_period: Option<u64>,
    pub memory_limit: Option<i64>,
}

/// One write to the pod cgroup (spec §7.2 `writePod`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PodCgroupWrite {
    /// v1 `cpu.cfs_period_us` + `cpu.cfs_quota_us`; v2 `cpu.max`. quota −1 = max.
    CpuLimit { quota: i64, period: u64 },
    /// v1 `cpu.shares`; v2 `cpu.weight` (linear conversion, §9).
    CpuRequest { shares: u64 },
    /// v1 `memory.limit_in_bytes`; v2 `memory.max`. −1 = max.
    MemoryLimit { bytes: i64 },
}

/// A container memory-limit decrease to verify against usage (§7.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerLimitCheck {
    pub name: String,
    pub id: String,
    pub new_limit: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Step {
    /// Refuse if usage ≥ new limit for the pod or any listed container (§7.3).
    CheckMemoryUsage {
        pod_limit: Option<i64>,
        containers: Vec<ContainerLimitCheck>,
    },
    WritePodCgroup {
        write: PodCgroupWrite,
    },
    /// `UpdateContainerResources`; on success `actuated` becomes the container's actuated record.
    UpdateContainer {
        name: String,
        id: String,
        resource: Resource,
        resources: LinuxResources,
        actuated: ResourceRequirements,
    },
    /// RestartContainer policy (§8, decision 4).
    StopContainer {
        name: String,
        id: String,
        timeout_seconds: i64,
    },
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub pod_uid: String,
    pub steps: Vec<Step>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
}
