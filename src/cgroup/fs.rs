//! `RealCgroupFs`: pod cgroup files under an injectable root, cgroup v1 or v2, cgroupfs or
//! systemd naming (spec §11.3, §11.4). Opens files without `O_CREAT`: a missing pod cgroup or file
//! is an error naming the path, never created. Never touches `hugetlb.*`.

use std::fs::OpenOptions;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use crate::core::conversions::{shares_to_weight_linear, weight_to_shares};
use crate::core::node::{CgroupDriver, CgroupVersion};
use crate::core::plan::{Limit, PodCgroupValues, PodCgroupWrite};

use super::detect::CgroupLayout;
use super::naming::{container_cgroup_name, pod_cgroup_path};
use super::{CgroupError, CgroupFs, PodCgroupId};

pub const DEFAULT_MOUNT: &str = "/sys/fs/cgroup";

#[derive(Debug, Clone)]
enum Dirs {
    V1 { cpu: PathBuf, memory: PathBuf },
    V2 { unified: PathBuf },
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

    /// Pod cgroup directory holding the cpu (or, on v2, all) files.
    pub fn pod_cpu_dir(&self, pod: &PodCgroupId) -> PathBuf {
        match &self.dirs {
            Dirs::V1 { cpu, .. } => cpu.join(self.rel(pod)),
            Dirs::V2 { unified } => unified.join(self.rel(pod)),
        }
    }

    pub fn pod_memory_dir(&self, pod: &PodCgroupId) -> PathBuf {
        match &self.dirs {
            Dirs::V1 { memory, .. } => memory.join(self.rel(pod)),
            Dirs::V2 { unified } => unified.join(self.rel(pod)),
        }
    }

    fn existing_dir(dir: PathBuf) -> Result<PathBuf, CgroupError> {
        if dir.is_dir() {
            Ok(dir)
        } else {
            Err(CgroupError::Missing { path: dir })
        }
    }

    fn container_dirs(
        &self,
        pod: &PodCgroupId,
        id: &str,
    ) -> Result<(PathBuf, PathBuf), CgroupError> {
        let name = container_cgroup_name(self.driver, id);
        let cpu = self.pod_cpu_dir(pod).join(&name);
        let mem = self.pod_memory_dir(pod).join(&name);
        if !cpu.is_dir() {
            return Err(CgroupError::NoContainerCgroup {
                id: id.to_string(),
                path: self.pod_cpu_dir(pod),
            });
        }
        Ok((cpu, mem))
    }

    fn version_of(&self) -> CgroupVersion {
        match self.dirs {
            Dirs::V1 { .. } => CgroupVersion::V1,
            Dirs::V2 { .. } => CgroupVersion::V2,
        }
    }

    fn read_values(&self, cpu_dir: &Path, mem_dir: &Path) -> Result<PodCgroupValues, CgroupError> {
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
                    path: max_path,
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

fn read_string(path: &Path) -> Result<String, CgroupError> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(s.trim().to_string()),
        Err(e) if e.kind() == ErrorKind::NotFound => Err(CgroupError::Missing {
            path: path.to_path_buf(),
        }),
        Err(source) => Err(CgroupError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Reads an integer file; `max` reads as −1 (v2), like the kubelet's readback.
fn read_i64(path: &Path) -> Result<i64, CgroupError> {
    let s = read_string(path)?;
    if s == "max" {
        return Ok(-1);
    }
    s.parse().map_err(|_| CgroupError::Parse {
        path: path.to_path_buf(),
        value: s,
    })
}

fn read_u64(path: &Path) -> Result<u64, CgroupError> {
    let s = read_string(path)?;
    s.parse().map_err(|_| CgroupError::Parse {
        path: path.to_path_buf(),
        value: s,
    })
}

/// Writes an existing file (no `O_CREAT`).
fn write_file(path: &Path, value: &str) -> Result<(), CgroupError> {
    let mut f = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .map_err(|e| match e.kind() {
            ErrorKind::NotFound => CgroupError::Missing {
                path: path.to_path_buf(),
            },
            _ => CgroupError::Write {
                path: path.to_path_buf(),
                value: value.to_string(),
                source: e,
            },
        })?;
    f.write_all(value.as_bytes())
        .map_err(|source| CgroupError::Write {
            path: path.to_path_buf(),
            value: value.to_string(),
            source,
        })
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
        let cpu = Self::existing_dir(self.pod_cpu_dir(pod))?;
        let mem = Self::existing_dir(self.pod_memory_dir(pod))?;
        self.read_values(&cpu, &mem)
    }

    fn write_pod(&self, pod: &PodCgroupId, write: &PodCgroupWrite) -> Result<(), CgroupError> {
        match (self.version_of(), *write) {
            (CgroupVersion::V1, PodCgroupWrite::CpuLimit { quota, period }) => {
                let dir = Self::existing_dir(self.pod_cpu_dir(pod))?;
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
                let path = Self::existing_dir(self.pod_cpu_dir(pod))?.join("cpu.shares");
                write_file(&path, &shares.to_string())?;
                let read = read_string(&path)?;
                if read != shares.to_string() {
                    return Err(CgroupError::Verify {
                        path,
                        written: shares.to_string(),
                        read,
                    });
                }
                Ok(())
            }
            (CgroupVersion::V1, PodCgroupWrite::MemoryLimit { bytes }) => {
                let path =
                    Self::existing_dir(self.pod_memory_dir(pod))?.join("memory.limit_in_bytes");
                write_file(&path, &bytes.v1_text())
            }
            (CgroupVersion::V2, PodCgroupWrite::CpuLimit { quota, period }) => {
                let path = Self::existing_dir(self.pod_cpu_dir(pod))?.join("cpu.max");
                write_file(&path, &format!("{quota} {period}"))
            }
            (CgroupVersion::V2, PodCgroupWrite::CpuRequest { shares }) => {
                let path = Self::existing_dir(self.pod_cpu_dir(pod))?.join("cpu.weight");
                write_file(&path, &shares_to_weight_linear(shares).to_string())
            }
            (CgroupVersion::V2, PodCgroupWrite::MemoryLimit { bytes }) => {
                let path = Self::existing_dir(self.pod_memory_dir(pod))?.join("memory.max");
                write_file(&path, &bytes.to_string())
            }
        }
    }

    fn pod_memory_usage(&self, pod: &PodCgroupId) -> Result<u64, CgroupError> {
        let dir = Self::existing_dir(self.pod_memory_dir(pod))?;
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
mod tests {
    use super::*;
    use crate::core::resources::QosClass;
    use std::fs;

    fn pod() -> PodCgroupId {
        PodCgroupId {
            uid: "1234-5678".into(),
            qos: QosClass::Burstable,
        }
    }

    fn touch(dir: &Path, files: &[(&str, &str)]) {
        fs::create_dir_all(dir).unwrap();
        for (f, v) in files {
            fs::write(dir.join(f), v).unwrap();
        }
    }

    #[test]
    fn v2_systemd_files_exact_contents() {
        let root = tempfile::tempdir().unwrap();
        let cg = RealCgroupFs::v2(root.path(), CgroupDriver::Systemd);
        let dir = root
            .path()
            .join("kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1234_5678.slice");
        touch(
            &dir,
            &[
                ("cpu.weight", "39\n"),
                ("cpu.max", "max 100000\n"),
                ("memory.max", "max\n"),
                ("memory.current", "4096\n"),
            ],
        );
        assert_eq!(cg.pod_cpu_dir(&pod()), dir);
        let before = cg.read_pod(&pod()).unwrap();
        assert_eq!(before.cpu_quota, Some(Limit::Max));
        assert_eq!(before.memory_limit, Some(Limit::Max));
        assert_eq!(before.cpu_shares, Some(weight_to_shares(39)));

        cg.write_pod(
            &pod(),
            &PodCgroupWrite::CpuLimit {
                quota: Limit::Value(2500),
                period: 100_000,
            },
        )
        .unwrap();
        cg.write_pod(&pod(), &PodCgroupWrite::CpuRequest { shares: 1024 })
            .unwrap();
        cg.write_pod(
            &pod(),
            &PodCgroupWrite::MemoryLimit {
                bytes: Limit::Value(256 << 20),
            },
        )
        .unwrap();
        assert_eq!(
            fs::read_to_string(dir.join("cpu.max")).unwrap(),
            "2500 100000"
        );
        assert_eq!(fs::read_to_string(dir.join("cpu.weight")).unwrap(), "39");
        assert_eq!(
            fs::read_to_string(dir.join("memory.max")).unwrap(),
            "268435456"
        );
        cg.write_pod(
            &pod(),
            &PodCgroupWrite::CpuLimit {
                quota: Limit::Max,
                period: 100_000,
            },
        )
        .unwrap();
        cg.write_pod(&pod(), &PodCgroupWrite::MemoryLimit { bytes: Limit::Max })
            .unwrap();
        assert_eq!(
            fs::read_to_string(dir.join("cpu.max")).unwrap(),
            "max 100000"
        );
        assert_eq!(fs::read_to_string(dir.join("memory.max")).unwrap(), "max");
        assert_eq!(cg.pod_memory_usage(&pod()).unwrap(), 4096);
        // no file was created besides the ones that existed
        let mut names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["cpu.max", "cpu.weight", "memory.current", "memory.max"]
        );
    }

    #[test]
    fn v1_cgroupfs_files_and_container_usage() {
        let root = tempfile::tempdir().unwrap();
        let cpu = root.path().join("cpu,cpuacct");
        let memory = root.path().join("memory");
        let cg = RealCgroupFs::v1(&cpu, &memory, CgroupDriver::Cgroupfs);
        let pod_cpu = cpu.join("kubepods/burstable/pod1234-5678");
        let pod_mem = memory.join("kubepods/burstable/pod1234-5678");
        touch(
            &pod_cpu,
            &[
                ("cpu.shares", "2"),
                ("cpu.cfs_quota_us", "-1"),
                ("cpu.cfs_period_us", "100000"),
            ],
        );
        touch(
            &pod_mem,
            &[
                ("memory.limit_in_bytes", "9223372036854771712"),
                ("memory.usage_in_bytes", "100"),
            ],
        );
        touch(
            &pod_cpu.join("abc"),
            &[
                ("cpu.shares", "102"),
                ("cpu.cfs_quota_us", "20000"),
                ("cpu.cfs_period_us", "100000"),
            ],
        );
        touch(
            &pod_mem.join("abc"),
            &[
                ("memory.limit_in_bytes", "1000"),
                ("memory.usage_in_bytes", "77"),
            ],
        );

        // v1 reads unlimited (−1 quota, the page-counter maximum) as max, and writes max as −1.
        let before = cg.read_pod(&pod()).unwrap();
        assert_eq!(
            (before.cpu_quota, before.memory_limit),
            (Some(Limit::Max), Some(Limit::Max))
        );
        cg.write_pod(&pod(), &PodCgroupWrite::MemoryLimit { bytes: Limit::Max })
            .unwrap();
        assert_eq!(
            fs::read_to_string(pod_mem.join("memory.limit_in_bytes")).unwrap(),
            "-1"
        );
        cg.write_pod(&pod(), &PodCgroupWrite::CpuRequest { shares: 307 })
            .unwrap();
        cg.write_pod(
            &pod(),
            &PodCgroupWrite::CpuLimit {
                quota: Limit::Value(40_000),
                period: 100_000,
            },
        )
        .unwrap();
        cg.write_pod(
            &pod(),
            &PodCgroupWrite::MemoryLimit {
                bytes: Limit::Value(1 << 30),
            },
        )
        .unwrap();
        let v = cg.read_pod(&pod()).unwrap();
        assert_eq!(
            v,
            PodCgroupValues {
                cpu_shares: Some(307),
                cpu_quota: Some(Limit::Value(40_000)),
                cpu_period: Some(100_000),
                memory_limit: Some(Limit::Value(1 << 30)),
            }
        );
        assert_eq!(cg.container_memory_usage(&pod(), "abc").unwrap(), 77);
        assert_eq!(
            cg.read_container(&pod(), "abc").unwrap().cpu_quota,
            Some(Limit::Value(20_000))
        );
        assert!(matches!(
            cg.container_memory_usage(&pod(), "gone"),
            Err(CgroupError::NoContainerCgroup { .. })
        ));
    }

    #[test]
    fn missing_pod_cgroup_is_an_error_and_nothing_is_created() {
        let root = tempfile::tempdir().unwrap();
        let cg = RealCgroupFs::v2(root.path(), CgroupDriver::Cgroupfs);
        let err = cg
            .write_pod(
                &pod(),
                &PodCgroupWrite::MemoryLimit {
                    bytes: Limit::Value(1),
                },
            )
            .unwrap_err();
        assert!(matches!(err, CgroupError::Missing { .. }), "{err}");
        assert!(
            err.to_string().contains("kubepods/burstable/pod1234-5678"),
            "{err}"
        );
        assert!(!root.path().join("kubepods").exists());
        // a pod dir without the file: still not created
        let dir = root.path().join("kubepods/burstable/pod1234-5678");
        fs::create_dir_all(&dir).unwrap();
        let err = cg
            .write_pod(
                &pod(),
                &PodCgroupWrite::MemoryLimit {
                    bytes: Limit::Value(1),
                },
            )
            .unwrap_err();
        assert!(err.to_string().contains("memory.max"), "{err}");
        assert!(!dir.join("memory.max").exists());
    }

    #[test]
    fn rebases_detected_mounts_onto_the_root_flag() {
        let layout = CgroupLayout {
            version: CgroupVersion::V1,
            cpu_mount: Some(PathBuf::from("/sys/fs/cgroup/cpu,cpuacct")),
            memory_mount: Some(PathBuf::from("/sys/fs/cgroup/memory")),
            unified_mount: None,
        };
        let cg =
            RealCgroupFs::from_layout(&layout, Path::new("/host/cgroup"), CgroupDriver::Cgroupfs);
        assert_eq!(
            cg.pod_cpu_dir(&pod()),
            PathBuf::from("/host/cgroup/cpu,cpuacct/kubepods/burstable/pod1234-5678")
        );
    }
}
