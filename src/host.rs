//! Node inputs read from this host (spec §1) for standalone use: machine memory, swap capacity
//! and swap controller, cpu count, the cgroup layout; `node.status.allocatable` comes from configuration (default: the capacity).

use crate::core::node::{CgroupDriver, NodeConfig};
use crate::core::quantity::Quantity;
use crate::core::resources::{ResourceList, CPU, MEMORY};

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("no MemTotal line in /proc/meminfo")]
    MemTotal,
    #[error("invalid --allocatable entry {entry:?}: expected name=quantity, e.g. cpu=4,memory=8Gi ({reason})")]
    Allocatable { entry: String, reason: String },
}

/// `MemTotal` of `/proc/meminfo` in bytes.
pub fn machine_memory_bytes() -> Result<i64, HostError> {
    let text = std::fs::read_to_string("/proc/meminfo").map_err(|source| HostError::Read {
        path: "/proc/meminfo".into(),
        source,
    })?;
    parse_mem_total(&text).ok_or(HostError::MemTotal)
}

fn parse_mem_total(meminfo: &str) -> Option<i64> {
    meminfo_bytes(meminfo, "MemTotal:")
}

/// A `<key> <n> kB` line of `/proc/meminfo`, in bytes.
fn meminfo_bytes(meminfo: &str, key: &str) -> Option<i64> {
    let line = meminfo.lines().find(|l| l.starts_with(key))?;
    let kib: i64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Swap capacity (cadvisor's `SwapCapacity`: `SwapTotal` of `/proc/meminfo`), 0 when unknown.
pub fn swap_capacity_bytes() -> i64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| meminfo_bytes(&t, "SwapTotal:"))
        .unwrap_or(0)
}

/// The kubelet's `swapControllerAvailable`: v2 `memory.swap.max` in this process's own cgroup
/// (the root cgroup has none), v1 `memory/memory.memsw.limit_in_bytes`.
pub fn swap_controller_available(version: crate::core::node::CgroupVersion) -> bool {
    let path = match version {
        crate::core::node::CgroupVersion::V1 => {
            std::path::PathBuf::from("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")
        }
        crate::core::node::CgroupVersion::V2 => {
            let Ok(own) = std::fs::read_to_string("/proc/self/cgroup") else {
                return false;
            };
            let Some(path) = own.lines().find_map(|l| l.strip_prefix("0::")) else {
                return false;
            };
            std::path::Path::new("/sys/fs/cgroup")
                .join(path.trim_start_matches('/'))
                .join("memory.swap.max")
        }
    };
    path.exists()
}

/// `cpu=4,memory=8Gi` → ResourceList, with clear errors.
pub fn parse_resource_list(s: &str) -> Result<ResourceList, HostError> {
    s.split(',')
        .filter(|e| !e.trim().is_empty())
        .map(|entry| {
            let (name, value) = entry
                .split_once('=')
                .ok_or_else(|| HostError::Allocatable {
                    entry: entry.into(),
                    reason: "missing '='".into(),
                })?;
            let q = Quantity::parse(value.trim()).map_err(|e| HostError::Allocatable {
                entry: entry.into(),
                reason: e.to_string(),
            })?;
            Ok((name.trim().to_string(), q))
        })
        .collect()
}

/// Node configuration for this host: cgroup version from `layout_version`, machine memory,
/// allocatable from `allocatable` or else the machine's capacity.
pub fn node_config(
    version: crate::core::node::CgroupVersion,
    driver: CgroupDriver,
    allocatable: Option<ResourceList>,
) -> Result<NodeConfig, HostError> {
    let memory = machine_memory_bytes()?;
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as i64;
    let allocatable = allocatable.unwrap_or_else(|| {
        [
            (CPU.to_string(), Quantity::from_int(cpus)),
            (MEMORY.to_string(), Quantity::from_bytes(memory)),
        ]
        .into_iter()
        .collect()
    });
    Ok(NodeConfig {
        cgroup_version: version,
        cgroup_driver: driver,
        machine_memory_bytes: memory,
        swap_available: swap_controller_available(version),
        swap_capacity_bytes: swap_capacity_bytes(),
        allocatable,
        ..NodeConfig::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_total_and_resource_lists() {
        assert_eq!(
            parse_mem_total("MemTotal:       24576000 kB\nMemFree: 1 kB\n"),
            Some(24_576_000 * 1024)
        );
        assert_eq!(parse_mem_total("nothing"), None);
        assert_eq!(
            meminfo_bytes("MemTotal: 1 kB\nSwapTotal:  5242876 kB\n", "SwapTotal:"),
            Some(5_242_876 * 1024)
        );
        let l = parse_resource_list("cpu=4, memory=8Gi").unwrap();
        assert_eq!(l["memory"], Quantity::parse("8Gi").unwrap());
        let err = parse_resource_list("cpu=4,memory=8GB").unwrap_err();
        assert!(err.to_string().contains("memory=8GB"), "{err}");
        assert!(parse_resource_list("cpu").is_err());
        assert!(machine_memory_bytes().unwrap() > 0);
    }
}
