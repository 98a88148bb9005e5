//! Node inputs (spec §1): what the kubelet's configuration says, or resizelet's own in standalone mode.

use serde::{Deserialize, Serialize};

use super::resources::ResourceList;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CgroupVersion {
    V1,
    V2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CgroupDriver {
    Cgroupfs,
    Systemd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CpuManagerPolicy {
    None,
    Static,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemoryManagerPolicy {
    None,
    Static,
}

/// `memorySwap.swapBehavior` of the node (`""` = `NoSwap`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeSwapBehavior {
    NoSwap,
    LimitedSwap,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeConfig {
    /// Version of the hierarchy that holds the cpu and memory controllers.
    pub cgroup_version: CgroupVersion,
    pub cgroup_driver: CgroupDriver,
    /// `cgroupsPerQOS`: false means there are no pod cgroups.
    pub cgroups_per_qos: bool,
    /// `cpuCFSQuota` (default true).
    pub cpu_cfs_quota: bool,
    /// CFS period in µs (100000 unless `CustomCPUCFSQuotaPeriod`).
    pub cpu_cfs_period_us: u64,
    pub cpu_manager_policy: CpuManagerPolicy,
    pub memory_manager_policy: MemoryManagerPolicy,
    pub swap_behavior: NodeSwapBehavior,
    /// A swap controller is available (`swapControllerAvailable`: v2 `memory.swap.max` in the
    /// agent's own cgroup, v1 `memory.memsw.limit_in_bytes`); without one no swap value is sent.
    pub swap_available: bool,
    /// Swap capacity in bytes (`SwapTotal` of `/proc/meminfo`), shared by LimitedSwap containers.
    #[serde(default)]
    pub swap_capacity_bytes: i64,
    pub single_process_oom_kill: bool,
    /// Machine memory capacity in bytes (oom_score_adj of Burstable containers).
    pub machine_memory_bytes: i64,
    /// `node.status.allocatable`.
    pub allocatable: ResourceList,
    /// Host huge page sizes in bytes, for the `hugepage_limits` sent with CRI updates.
    pub hugepage_sizes: Vec<u64>,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            cgroup_version: CgroupVersion::V1,
            cgroup_driver: CgroupDriver::Cgroupfs,
            cgroups_per_qos: true,
            cpu_cfs_quota: true,
            cpu_cfs_period_us: 100_000,
            cpu_manager_policy: CpuManagerPolicy::None,
            memory_manager_policy: MemoryManagerPolicy::None,
            swap_behavior: NodeSwapBehavior::NoSwap,
            swap_available: false,
            swap_capacity_bytes: 0,
            single_process_oom_kill: false,
            machine_memory_bytes: 0,
            allocatable: ResourceList::new(),
            hugepage_sizes: Vec::new(),
        }
    }
}

/// `cgroupRoot` as the kubelet's `ParseCgroupfsToCgroupName` splits it: `/` → no parts,
/// `/custom/pods` → `["custom", "pods"]`. `.` and `..` parts are refused.
pub fn cgroup_root_parts(root: &str) -> Result<Vec<String>, &'static str> {
    let parts: Vec<String> = root
        .split('/')
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect();
    if parts.iter().any(|p| p == "." || p == "..") {
        return Err("must not contain \".\" or \"..\" components");
    }
    Ok(parts)
}
