//! cgroup filesystem access (the IO shell for pod cgroups), rooted at an injectable path.

pub mod beneath;
pub mod detect;
pub mod fs;
#[cfg(any(test, feature = "testing"))]
pub mod memory;
pub mod naming;
pub mod systemd;

use std::path::PathBuf;

use crate::core::node::{CgroupDriver, CgroupVersion};
use crate::core::plan::{PodCgroupValues, PodCgroupWrite};
use crate::core::resources::QosClass;

/// Identifies a pod cgroup (spec §11.4); the path comes from the driver's naming.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PodCgroupId {
    pub uid: String,
    pub qos: QosClass,
}

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cgroup file {path} does not exist")]
    Missing { path: PathBuf },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {value:?} to {path}: {source}")]
    Write {
        path: PathBuf,
        value: String,
        #[source]
        source: std::io::Error,
    },
    #[error("unexpected content {value:?} in {path}")]
    Parse { path: PathBuf, value: String },
    #[error("wrote {written:?} to {path} but read back {read:?}")]
    Verify {
        path: PathBuf,
        written: String,
        read: String,
    },
    #[error("cannot detect cgroup layout from {path}: {reason}")]
    Detect { path: PathBuf, reason: String },
    #[error("refusing {path}: a symlink below the cgroup mount (pod and container cgroups are never reached through one)")]
    Symlink { path: PathBuf },
    #[error("container {id} has no cgroup under {path}")]
    NoContainerCgroup { id: String, path: PathBuf },
    #[error("systemd unit {unit}: {source}")]
    Systemd {
        unit: String,
        #[source]
        source: Box<systemd::SystemdError>,
    },
}

/// The host's pod cgroups for the driver of `files`: the files themselves (cgroupfs), or on a
/// systemd-driver node the pod slices' unit properties over D-Bus, then the files (spec §11.3).
/// `cgroup_root` are the kubelet's `cgroupRoot` parts (they name the pod slice).
pub fn open_host(
    files: fs::RealCgroupFs,
    cgroup_root: Vec<String>,
    dbus_timeout: std::time::Duration,
) -> Result<Box<dyn CgroupFs>, CgroupError> {
    Ok(match files.driver() {
        CgroupDriver::Cgroupfs => Box::new(files),
        CgroupDriver::Systemd => {
            let bus = systemd::DbusSystemd::connect_system(dbus_timeout).map_err(|source| {
                CgroupError::Systemd {
                    unit: "-".to_string(),
                    source: Box::new(source),
                }
            })?;
            Box::new(systemd::SystemdCgroupFs::new(files, bus, cgroup_root))
        }
    })
}

/// Pod and container cgroup access. Never creates a file that should exist; never touches hugetlb.
pub trait CgroupFs: Send + Sync {
    fn version(&self) -> CgroupVersion;
    fn driver(&self) -> CgroupDriver;
    /// Current pod cgroup values (quota/limit −1 = max; v2 weight converted back to shares, lossy).
    fn read_pod(&self, pod: &PodCgroupId) -> Result<PodCgroupValues, CgroupError>;
    fn write_pod(&self, pod: &PodCgroupId, write: &PodCgroupWrite) -> Result<(), CgroupError>;
    /// v1 `memory.usage_in_bytes`, v2 `memory.current` of the pod cgroup.
    fn pod_memory_usage(&self, pod: &PodCgroupId) -> Result<u64, CgroupError>;
    /// Memory usage of a container's cgroup (named by the runtime) below the pod cgroup.
    fn container_memory_usage(
        &self,
        pod: &PodCgroupId,
        container_id: &str,
    ) -> Result<u64, CgroupError>;
    /// Container cgroup values (for tests, `check` and the status fallback).
    fn read_container(
        &self,
        pod: &PodCgroupId,
        container_id: &str,
    ) -> Result<PodCgroupValues, CgroupError>;
}
