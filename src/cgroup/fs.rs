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
    fn a_symlinked_pod_or_container_cgroup_is_refused_and_its_target_untouched() {
        let root = tempfile::tempdir().unwrap();
        let mount = root.path().join("cg");
        let target = root.path().join("elsewhere");
        let files = [
            ("cpu.weight", "39"),
            ("cpu.max", "max 100000"),
            ("memory.max", "max"),
            ("memory.current", "1"),
        ];
        touch(&target, &files);
        touch(&target.join("abc"), &files);
        fs::create_dir_all(mount.join("kubepods/burstable")).unwrap();
        let pod_dir = mount.join("kubepods/burstable/pod1234-5678");
        std::os::unix::fs::symlink(&target, &pod_dir).unwrap();
        let cg = RealCgroupFs::v2(&mount, CgroupDriver::Cgroupfs);
        for write in [
            PodCgroupWrite::CpuLimit {
                quota: Limit::Value(2500),
                period: 100_000,
            },
            PodCgroupWrite::CpuRequest { shares: 1024 },
            PodCgroupWrite::MemoryLimit {
                bytes: Limit::Value(1 << 20),
            },
        ] {
            let err = cg.write_pod(&pod(), &write).unwrap_err();
            assert!(matches!(err, CgroupError::Symlink { .. }), "{err}");
            assert!(
                err.to_string().contains(&pod_dir.display().to_string()),
                "{err}"
            );
        }
        assert!(matches!(
            cg.read_pod(&pod()),
            Err(CgroupError::Symlink { .. })
        ));
        // a symlinked container cgroup under a real pod cgroup, and a symlinked file
        fs::remove_file(&pod_dir).unwrap();
        touch(&pod_dir, &files[..3]);
        std::os::unix::fs::symlink(target.join("abc"), pod_dir.join("abc")).unwrap();
        std::os::unix::fs::symlink(
            target.join("memory.current"),
            pod_dir.join("memory.current"),
        )
        .unwrap();
        assert!(matches!(
            cg.container_memory_usage(&pod(), "abc"),
            Err(CgroupError::Symlink { .. })
        ));
        assert!(matches!(
            cg.pod_memory_usage(&pod()),
            Err(CgroupError::Symlink { .. })
        ));
        for (f, v) in files {
            assert_eq!(
                fs::read_to_string(target.join(f)).unwrap(),
                v,
                "{f} written"
            );
        }
        // the mount point itself may be a link (the operator's --cgroup-root)
        let link = root.path().join("mount-link");
        std::os::unix::fs::symlink(&mount, &link).unwrap();
        let cg = RealCgroupFs::v2(&link, CgroupDriver::Cgroupfs);
        cg.write_pod(
            &pod(),
            &PodCgroupWrite::MemoryLimit {
                bytes: Limit::Value(1 << 20),
            },
        )
        .unwrap();
        assert_eq!(
            fs::read_to_string(pod_dir.join("memory.max")).unwrap(),
            "1048576"
        );
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
