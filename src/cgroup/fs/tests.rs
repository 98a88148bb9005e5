use super::*;
use crate::core::resources::QosClass;
use std::fs;

fn pod() -> PodCgroupId {
    PodCgroupId {
        uid: "1234-5678".into(),
        qos: QosClass::Burstable,
    }
}

/// Writes `w` to the test pod's cgroup, which must succeed.
fn write(cg: &RealCgroupFs, w: PodCgroupWrite) {
    cg.write_pod(&pod(), &w).unwrap();
}

fn read(path: impl AsRef<Path>) -> String {
    fs::read_to_string(path).unwrap()
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

    write(
        &cg,
        PodCgroupWrite::CpuLimit {
            quota: Limit::Value(2500),
            period: 100_000,
        },
    );
    write(&cg, PodCgroupWrite::CpuRequest { shares: 1024 });
    write(
        &cg,
        PodCgroupWrite::MemoryLimit {
            bytes: Limit::Value(256 << 20),
        },
    );
    assert_eq!(read(dir.join("cpu.max")), "2500 100000");
    assert_eq!(read(dir.join("cpu.weight")), "39");
    assert_eq!(read(dir.join("memory.max")), "268435456");
    write(
        &cg,
        PodCgroupWrite::CpuLimit {
            quota: Limit::Max,
            period: 100_000,
        },
    );
    write(&cg, PodCgroupWrite::MemoryLimit { bytes: Limit::Max });
    assert_eq!(read(dir.join("cpu.max")), "max 100000");
    assert_eq!(read(dir.join("memory.max")), "max");
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
    write(&cg, PodCgroupWrite::MemoryLimit { bytes: Limit::Max });
    assert_eq!(read(pod_mem.join("memory.limit_in_bytes")), "-1");
    write(&cg, PodCgroupWrite::CpuRequest { shares: 307 });
    write(
        &cg,
        PodCgroupWrite::CpuLimit {
            quota: Limit::Value(40_000),
            period: 100_000,
        },
    );
    write(
        &cg,
        PodCgroupWrite::MemoryLimit {
            bytes: Limit::Value(1 << 30),
        },
    );
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
    let write_one_byte_limit = || {
        cg.write_pod(
            &pod(),
            &PodCgroupWrite::MemoryLimit {
                bytes: Limit::Value(1),
            },
        )
    };
    let err = write_one_byte_limit().unwrap_err();
    assert!(matches!(err, CgroupError::Missing { .. }), "{err}");
    assert!(
        err.to_string().contains("kubepods/burstable/pod1234-5678"),
        "{err}"
    );
    assert!(!root.path().join("kubepods").exists());
    // a pod dir without the file: still not created
    let dir = root.path().join("kubepods/burstable/pod1234-5678");
    fs::create_dir_all(&dir).unwrap();
    let err = write_one_byte_limit().unwrap_err();
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
        assert_eq!(read(target.join(f)), v, "{f} written");
    }
    // the mount point itself may be a link (the operator's --cgroup-root)
    let link = root.path().join("mount-link");
    std::os::unix::fs::symlink(&mount, &link).unwrap();
    let cg = RealCgroupFs::v2(&link, CgroupDriver::Cgroupfs);
    write(
        &cg,
        PodCgroupWrite::MemoryLimit {
            bytes: Limit::Value(1 << 20),
        },
    );
    assert_eq!(read(pod_dir.join("memory.max")), "1048576");
}

#[test]
fn rebases_detected_mounts_onto_the_root_flag() {
    let layout = CgroupLayout {
        version: CgroupVersion::V1,
        cpu_mount: Some(PathBuf::from("/sys/fs/cgroup/cpu,cpuacct")),
        memory_mount: Some(PathBuf::from("/sys/fs/cgroup/memory")),
        unified_mount: None,
    };
    let cg = RealCgroupFs::from_layout(&layout, Path::new("/host/cgroup"), CgroupDriver::Cgroupfs);
    assert_eq!(
        cg.pod_cpu_dir(&pod()),
        PathBuf::from("/host/cgroup/cpu,cpuacct/kubepods/burstable/pod1234-5678")
    );
}
