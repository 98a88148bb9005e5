//! `MemoryCgroupFs`: in-memory pod cgroups for unit tests; records every write in order and can
//! fail the next write.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use crate::core::node::{CgroupDriver, CgroupVersion};
use crate::core::plan::{PodCgroupValues, PodCgroupWrite};

use super::{CgroupError, CgroupFs, PodCgroupId};

#[derive(Default)]
struct Inner {
    pods: HashMap<String, PodCgroupValues>,
    pod_usage: HashMap<String, u64>,
    container_usage: HashMap<String, u64>,
    writes: Vec<(String, PodCgroupWrite)>,
    fail_next_write: Option<String>,
}

pub struct MemoryCgroupFs {
    version: CgroupVersion,
    inner: Mutex<Inner>,
}

impl MemoryCgroupFs {
    pub fn new(version: CgroupVersion) -> Self {
        MemoryCgroupFs {
            version,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("cgroup fake lock")
    }

    pub fn add_pod(&self, uid: &str, values: PodCgroupValues) {
        self.lock().pods.insert(uid.to_string(), values);
    }

    pub fn pod(&self, uid: &str) -> Option<PodCgroupValues> {
        self.lock().pods.get(uid).copied()
    }

    pub fn set_pod_usage(&self, uid: &str, bytes: u64) {
        self.lock().pod_usage.insert(uid.to_string(), bytes);
    }

    pub fn set_container_usage(&self, id: &str, bytes: u64) {
        self.lock().container_usage.insert(id.to_string(), bytes);
    }

    /// Every write so far, in order, as (pod uid, write).
    pub fn writes(&self) -> Vec<(String, PodCgroupWrite)> {
        self.lock().writes.clone()
    }

    pub fn fail_next_write(&self, message: &str) {
        self.lock().fail_next_write = Some(message.to_string());
    }

    fn missing(uid: &str) -> CgroupError {
        CgroupError::Missing {
            path: PathBuf::from(format!("memory://pod{uid}")),
        }
    }
}

impl CgroupFs for MemoryCgroupFs {
    fn version(&self) -> CgroupVersion {
        self.version
    }

    fn driver(&self) -> CgroupDriver {
        CgroupDriver::Cgroupfs
    }

    fn read_pod(&self, pod: &PodCgroupId) -> Result<PodCgroupValues, CgroupError> {
        self.pod(&pod.uid).ok_or_else(|| Self::missing(&pod.uid))
    }

    fn write_pod(&self, pod: &PodCgroupId, write: &PodCgroupWrite) -> Result<(), CgroupError> {
        let mut inner = self.lock();
        if let Some(message) = inner.fail_next_write.take() {
            return Err(CgroupError::Write {
                path: PathBuf::from(format!("memory://pod{}", pod.uid)),
                value: format!("{write:?}"),
                source: std::io::Error::other(message),
            });
        }
        let values = inner
            .pods
            .get_mut(&pod.uid)
            .ok_or_else(|| Self::missing(&pod.uid))?;
        match *write {
            PodCgroupWrite::CpuLimit { quota, period } => {
                values.cpu_quota = Some(quota);
                values.cpu_period = Some(period);
            }
            PodCgroupWrite::CpuRequest { shares } => values.cpu_shares = Some(shares),
            PodCgroupWrite::MemoryLimit { bytes } => values.memory_limit = Some(bytes),
        }
        inner.writes.push((pod.uid.clone(), *write));
        Ok(())
    }

    fn pod_memory_usage(&self, pod: &PodCgroupId) -> Result<u64, CgroupError> {
        self.lock()
            .pod_usage
            .get(&pod.uid)
            .copied()
            .ok_or_else(|| Self::missing(&pod.uid))
    }

    fn container_memory_usage(&self, pod: &PodCgroupId, id: &str) -> Result<u64, CgroupError> {
        self.lock()
            .container_usage
            .get(id)
            .copied()
            .ok_or_else(|| CgroupError::NoContainerCgroup {
                id: id.to_string(),
                path: PathBuf::from(format!("memory://pod{}", pod.uid)),
            })
    }

    fn read_container(&self, pod: &PodCgroupId, id: &str) -> Result<PodCgroupValues, CgroupError> {
        Err(CgroupError::NoContainerCgroup {
            id: id.to_string(),
            path: PathBuf::from(format!("memory://pod{}", pod.uid)),
        })
    }
}
