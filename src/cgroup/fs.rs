//! `RealCgroupFs`: pod cgroup files under an injectable root, cgroup v1 or v2, cgroupfs or
//! systemd naming (spec §11.3, §11.4). Opens files without `O_CREAT`: a missing pod cgroup or file
//! is an error naming the path, never created. Never touches `hugetlb.*`. Everything below a
//! mount point is opened without following symlinks (`beneath::open_beneath`).

use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;

use crate::core::conversions::{shares_to_weight_linear, weight_to_shares};
use crate::core::node::{CgroupDriver, CgroupVersion};
use crate::core::plan::{Limit, PodCgroupValues, PodCgroupWrite};

use super::beneath::{is_symlink_error, open_beneath};
use super::detect::CgroupLayout;
use super::naming::{container_cgroup_name, pod_cgroup_path};
use super::{CgroupError, CgroupFs, PodCgroupId};

pub const DEFAULT_MOUNT: &str = "/sys/fs/cgroup";

#[derive(Debug, Clone)]
enum Dirs {
    V1 { cpu: PathBuf, memory: PathBuf },
    V2 { unified: PathBuf },
}

/// A cgroup directory or file: the mount it is under and its path below that mount.
#[derive(Debug, Clone)]
struct CgPath {
    base: PathBuf,
    rel: PathBuf,
}

impl CgPath {
    fn full(&self) -> PathBuf {
        self.base.join(&self.rel)
    }

    fn join(&self, name: impl AsRef<Path>) -> CgPath {
        CgPath {
            base: self.base.clone(),
            rel: self.rel.join(name),
        }
    }

    fn open(&self, flags: OFlag) -> std::io::Result<std::fs::File> {
        open_beneath(&self.base, &self.rel, flags)
    }
}

/// The error of opening `p`: missing, a symlink, or another read error.
fn open_error(p: &CgPath, e: std::io::Error) -> CgroupError {
    if is_symlink_error(&e) {
        CgroupError::Symlink { path: p.full() }
    } else if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) {
        CgroupError::Missing { path: p.full() }
    } else {
        CgroupError::Read {
            path: p.full(),
            source: e,
        }
    }
}

#[derive(Debug, Clone)]
pub struct RealCgroupFs {
    dirs: Dirs,
    driver: CgroupDriver,
    cgroup_root: Vec<String>,
}

impl RealCgroupFs {
    /// cgroup v1: the cpu and memory controller mount points.
    pub fn v1(cpu: impl Into<PathBuf>, memory: impl Into<PathBuf>, driver: CgroupDriver) -> Self {
        RealCgroupFs {
            dirs: Dirs::V1 {
                cpu: cpu.into(),
                memory: memory.into(),
            },
            driver,
            cgroup_root: Vec::new(),
        }
    }

    /// cgroup v2: the unified mount point.
    pub fn v2(unified: impl Into<PathBuf>, driver: CgroupDriver) -> Self {
        RealCgroupFs {
            dirs: Dirs::V2 {
                unified: unified.into(),
            },
            driver,
            cgroup_root: Vec::new(),
        }
    }

    /// From a detected layout, with its mount points (under `/sys/fs/cgroup`) rebased onto
    /// `root` (the `--cgroup-root` flag).
    pub fn from_layout(layout: &CgroupLayout, root: &Path, driver: CgroupDriver) -> Self {
        let rebase = |p: &Option<PathBuf>| -> PathBuf {
            let p = p.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_MOUNT));
            match p.strip_prefix(DEFAULT_MOUNT) {
                Ok(rel) => root.join(rel),
                Err(_) => p,
            }
        };
        match layout.version {
            CgroupVersion::V1 => Self::v1(
                rebase(&layout.cpu_mount),
                rebase(&layout.memory_mount),
                driver,
            ),
            CgroupVersion::V2 => Self::v2(rebase(&layout.unified_mount), driver),
        }
    }

    /// The kubelet's `cgroupRoot` parts (default none, i.e. `/`).
    pub fn with_cgroup_root(mut self, parts: Vec<String>) -> Self {
        self.cgroup_root = parts;
        self
    }

    fn rel(&self, pod: &PodCgroupId) -> PathBuf {
        pod_cgroup_path(self.driver, &self.cgroup_root, pod.qos, &pod.uid)
    }

    fn mounts(&self) -> (&Path, &Path) {
        match &self.dirs {
            Dirs::V1 { cpu, memory } => (cpu, memory),
            Dirs::V2 { unified } => (unified, unified),
        }
    }

    /// The hierarchies pod cgroups live in (v1: cpu and memory mounts; v2: the unified one),
    /// for readiness: they must exist and be writable.
    pub fn hierarchies(&self) -> Vec<PathBuf> {
        match &self.dirs {
            Dirs::V1 { cpu, memory } => vec![cpu.clone(), memory.clone()],
            Dirs::V2 { unified } => vec![unified.clone()],
        }
    }

    fn cpu_path(&self, pod: &PodCgroupId) -> CgPath {
        CgPath {
            base: self.mounts().0.to_path_buf(),
            rel: self.rel(pod),
        }
    }

    fn memory_path(&self, pod: &PodCgroupId) -> CgPath {
        CgPath {
            base: self.mounts().1.to_path_buf(),
            rel: self.rel(pod),
        }
    }

    /// Pod cgroup directory holding the cpu (or, on v2, all) files.
    pub fn pod_cpu_dir(&self, pod: &PodCgroupId) -> PathBuf {
        self.cpu_path(pod).full()
    }

    pub fn pod_memory_dir(&self, pod: &PodCgroupId) -> PathBuf {
        self.memory_path(pod).full()
    }

    fn existing_dir(dir: CgPath) -> Result<CgPath, CgroupError> {
        match dir.open(OFlag::O_DIRECTORY | OFlag::O_RDONLY) {
            Ok(_) => Ok(dir),
            Err(e) => Err(open_error(&dir, e)),
        }
    }

    fn container_dirs(&self, pod: &PodCgroupId, id: &str) -> Result<(CgPath, CgPath), CgroupError> {
        let name = container_cgroup_name(self.driver, id);
        let cpu = self.cpu_path(pod).join(&name);
        let mem = self.memory_path(pod).join(&name);
        match Self::existing_dir(cpu) {
            Ok(cpu) => Ok((cpu, mem)),
            Err(CgroupError::Missing { .. }) => Err(CgroupError::NoContainerCgroup {
                id: id.to_string(),
                path: self.pod_cpu_dir(pod),
            }),
            Err(e) => Err(e),
        }
    }

    fn version_of(&self) -> CgroupVersion {
        match self.dirs {
            Dirs::V1 { .. } => CgroupVersion::V1,
            Dirs::V2 { .. } => CgroupVersion::V2,
        }
    }

    fn read_values(
        &self,
        cpu_dir: &CgPath,
        mem_dir: &CgPath,
    ) -> Result<PodCgroupValues, CgroupError> {
        match self.version_of() {
            CgroupVersion::V1 => Ok(PodCgroupValues {
                cpu_shares: Some(read_u64(&cpu_dir.join("cpu.shares"))?),
                cpu_quota: Some(Limit::from_quota(read_i64(
                    &cpu_dir.join("cpu.cfs_quota_us"),
                )?)),
                cpu_period: Some(read_u64(&cpu_dir.join("cpu.cfs_period_us"))?),
                memory_limit: Some(Limit::from_memory(read_i64(
                    &mem_dir.join("memory.limit_in_bytes"),
                )?)),
            }),
            CgroupVersion::V2 => {
                let weight = read_u64(&cpu_dir.join("cpu.weight"))?;
                let max_path = cpu_dir.join("cpu.max");
                let max = read_string(&max_path)?;
                let (quota, period) = parse_cpu_max(&max).ok_or_else(|| CgroupError::Parse {
                    path: max_path.full(),
                    value: max.clone(),
                })?;
                Ok(PodCgroupValues {
                    cpu_shares: Some(weight_to_shares(weight)),
                    cpu_quota: Some(Limit::from_quota(quota)),
                    cpu_period: Some(period),
                    memory_limit: Some(Limit::from_memory(read_i64(&mem_dir.join("memory.max"))?)),
                })
            }
        }
    }
}

/// `"max 100000"` → (−1, 100000); `"2500 100000"` → (2500, 100000).
fn parse_cpu_max(s: &str) -> Option<(i64, u64)> {
    let mut it = s.split_whitespace();
    let quota = match it.next()? {
        "max" => -1,
        q => q.parse().ok()?,
    };
    let period = it.next().map_or(Some(100_000), |p| p.parse().ok())?;
    Some((quota, period))
}

/// Largest cgroup file read (the files read hold one number or two).
const MAX_CGROUP_FILE: u64 = 4096;

fn read_string(path: &CgPath) -> Result<String, CgroupError> {
    let file = path
        .open(OFlag::O_RDONLY)
        .map_err(|e| open_error(path, e))?;
    let mut s = String::new();
    file.take(MAX_CGROUP_FILE)
        .read_to_string(&mut s)
        .map_err(|source| CgroupError::Read {
            path: path.full(),
            source,
        })?;
    Ok(s.trim().to_string())
}

/// Reads an integer file; `max` reads as −1 (v2), like the kubelet's readback.
fn read_i64(path: &CgPath) -> Result<i64, CgroupError> {
    let s = read_string(path)?;
    if s == "max" {
        return Ok(-1);
    }
    s.parse().map_err(|_| CgroupError::Parse {
        path: path.full(),
        value: s,
    })
}

fn read_u64(path: &CgPath) -> Result<u64, CgroupError> {
    let s = read_string(path)?;
    s.parse().map_err(|_| CgroupError::Parse {
        path: path.full(),
        value: s,
    })
}

/// Writes an existing file (no `O_CREAT`, no symlink followed).
fn write_file(path: &CgPath, value: &str) -> Result<(), CgroupError> {
    let write_err = |source| CgroupError::Write {
        path: path.full(),
        value: value.to_string(),
        source,
    };
    let mut f =
        path.open(OFlag::O_WRONLY | OFlag::O_TRUNC)
            .map_err(|e| match open_error(path, e) {
                CgroupError::Read { source, .. } => write_err(source),
                other => other,
            })?;
    f.write_all(value.as_bytes()).map_err(write_err)
}

fn is_einval(e: &CgroupError) -> bool {
    matches!(e, CgroupError::Write { source, .. } if source.raw_os_error() == Some(libc_einval()))
}

const fn libc_einval() -> i32 {
    22
}

impl CgroupFs for RealCgroupFs {
    fn version(&self) -> CgroupVersion {
        self.version_of()
    }

    fn driver(&self) -> CgroupDriver {
        self.driver
    }

    fn read_pod(&self, pod: &PodCgroupId) -> Result<PodCgroupValues, CgroupError> {
        let cpu = Self::existing_dir(self.cpu_path(pod))?;
        let mem = Self::existing_dir(self.memory_path(pod))?;
        self.read_values(&cpu, &mem)
    }

    fn write_pod(&self, pod: &PodCgroupId, write: &PodCgroupWrite) -> Result<(), CgroupError> {
        match (self.version_of(), *write) {
            (CgroupVersion::V1, PodCgroupWrite::CpuLimit { quota, period }) => {
                let dir = Self::existing_dir(self.cpu_path(pod))?;
                let period_path = dir.join("cpu.cfs_period_us");
                // EINVAL on the period is tolerated while a quota is also set, and retried after
                // the quota write (opencontainers/cgroups fs/cpu.go).
                let period_result = write_file(&period_path, &period.to_string());
                if let Err(e) = &period_result {
                    if !is_einval(e) {
                        return period_result;
                    }
                }
                write_file(&dir.join("cpu.cfs_quota_us"), &quota.v1_text())?;
                if period_result.is_err() {
                    write_file(&period_path, &period.to_string())?;
                }
                Ok(())
            }
            (CgroupVersion::V1, PodCgroupWrite::CpuRequest { shares }) => {
                let path = Self::existing_dir(self.cpu_path(pod))?.join("cpu.shares");
                write_file(&path, &shares.to_string())?;
                let read = read_string(&path)?;
                if read != shares.to_string() {
                    return Err(CgroupError::Verify {
                        path: path.full(),
                        written: shares.to_string(),
                        read,
                    });
                }
                Ok(())
            }
            (CgroupVersion::V1, PodCgroupWrite::MemoryLimit { bytes }) => {
                let path = Self::existing_dir(self.memory_path(pod))?.join("memory.limit_in_bytes");
                write_file(&path, &bytes.v1_text())
            }
            (CgroupVersion::V2, PodCgroupWrite::CpuLimit { quota, period }) => {
                let path = Self::existing_dir(self.cpu_path(pod))?.join("cpu.max");
                write_file(&path, &format!("{quota} {period}"))
            }
            (CgroupVersion::V2, PodCgroupWrite::CpuRequest { shares }) => {
                let path = Self::existing_dir(self.cpu_path(pod))?.join("cpu.weight");
                write_file(&path, &shares_to_weight_linear(shares).to_string())
            }
            (CgroupVersion::V2, PodCgroupWrite::MemoryLimit { bytes }) => {
                let path = Self::existing_dir(self.memory_path(pod))?.join("memory.max");
                write_file(&path, &bytes.to_string())
            }
        }
    }

    fn pod_memory_usage(&self, pod: &PodCgroupId) -> Result<u64, CgroupError> {
        let dir = Self::existing_dir(self.memory_path(pod))?;
        read_u64(&dir.join(usage_file(self.version_of())))
    }

    fn container_memory_usage(&self, pod: &PodCgroupId, id: &str) -> Result<u64, CgroupError> {
        let (_, mem) = self.container_dirs(pod, id)?;
        read_u64(&mem.join(usage_file(self.version_of())))
    }

    fn read_container(&self, pod: &PodCgroupId, id: &str) -> Result<PodCgroupValues, CgroupError> {
        let (cpu, mem) = self.container_dirs(pod, id)?;
        self.read_values(&cpu, &mem)
    }
}

fn usage_file(version: CgroupVersion) -> &'static str {
    match version {
        CgroupVersion::V1 => "memory.usage_in_bytes",
        CgroupVersion::V2 => "memory.current",
    }
}

#[cfg(test)]
mod tests;
