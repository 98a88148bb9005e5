use super::*;
use crate::core::node::CgroupVersion;

const HEAD: &str = "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n";

fn parsed(body: &str) -> Result<KubeletConfig, KubeletConfigError> {
    parse(
        Path::new("/var/lib/kubelet/config.yaml"),
        &format!("{HEAD}{body}"),
    )
}

#[test]
fn absent_fields_get_the_kubelets_defaults() {
    let k = parsed("").unwrap();
    assert_eq!(k.cgroup_driver.value, CgroupDriver::Cgroupfs);
    assert!(!k.cgroup_driver.set);
    assert_eq!(k.cgroup_root.value, "/");
    assert!(k.cpu_cfs_quota.value);
    assert_eq!(k.cpu_cfs_quota_period.value, Duration::from_millis(100));
    assert_eq!(k.swap_behavior.value, NodeSwapBehavior::NoSwap);
    assert!(k.fail_swap_on.value);
    assert_eq!(k.single_process_oom_kill, None);
    assert_eq!(k.in_place_resize_gate(), None);
}

#[test]
fn set_fields_are_read() {
    let k = parsed(
        "cgroupDriver: systemd\ncgroupRoot: /custom\ncpuCFSQuota: false\ncpuCFSQuotaPeriod: 50ms\n\
         featureGates:\n  CustomCPUCFSQuotaPeriod: true\n  InPlacePodVerticalScaling: true\n\
         memorySwap:\n  swapBehavior: LimitedSwap\nfailSwapOn: false\nsingleProcessOOMKill: true\n\
         systemReserved:\n  cpu: 500m\n  memory: 1Gi\nunknownField: 3\n",
    )
    .unwrap();
    assert_eq!(k.cgroup_driver.value, CgroupDriver::Systemd);
    assert_eq!(k.cgroup_root.value, "/custom");
    assert!(!k.cpu_cfs_quota.value);
    assert_eq!(k.cpu_cfs_quota_period.value, Duration::from_millis(50));
    assert_eq!(k.swap_behavior.value, NodeSwapBehavior::LimitedSwap);
    assert!(!k.fail_swap_on.value);
    assert_eq!(k.single_process_oom_kill, Some(true));
    assert_eq!(k.in_place_resize_gate(), Some(true));
    assert_eq!(format_list(&k.system_reserved.value), "cpu=500m,memory=1Gi");
}

#[test]
fn invalid_files_name_field_and_value() {
    for (body, want) in [
        ("cgroupDriver: Systemd\n", "cgroupDriver = \"Systemd\""),
        (
            "cpuCFSQuotaPeriod: 50ms\n",
            "requires feature gate CustomCPUCFSQuotaPeriod",
        ),
        (
            "cpuCFSQuotaPeriod: 2s\nfeatureGates:\n  CustomCPUCFSQuotaPeriod: true\n",
            "between 1us and 1s",
        ),
        ("cpuCFSQuotaPeriod: soon\n", "not a duration"),
        (
            "memorySwap:\n  swapBehavior: UnlimitedSwap\n",
            "memorySwap.swapBehavior",
        ),
        (
            "systemReserved:\n  memory: 1GB\n",
            "systemReserved = \"memory=1GB\"",
        ),
        ("cgroupRoot: /a/../b\n", "cgroupRoot"),
        (
            "cgroupDriver: [1]\n",
            "kubelet config /var/lib/kubelet/config.yaml:",
        ),
    ] {
        let e = parsed(body).unwrap_err().to_string();
        assert!(e.contains(want), "{body}: {e}");
    }
    let e = parse(Path::new("/k.yaml"), "kind: Pod\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a kubelet configuration"), "{e}");
}

#[test]
fn go_durations() {
    assert_eq!(parse_go_duration("100ms"), Some(Duration::from_millis(100)));
    assert_eq!(parse_go_duration("1m30s"), Some(Duration::from_secs(90)));
    assert_eq!(parse_go_duration("0.5s"), Some(Duration::from_millis(500)));
    assert_eq!(parse_go_duration("250us"), Some(Duration::from_micros(250)));
    assert_eq!(parse_go_duration("5"), None);
    assert_eq!(parse_go_duration("ms"), None);
    assert_eq!(format_go_duration(Duration::from_millis(100)), "100ms");
    assert_eq!(format_go_duration(Duration::from_micros(250)), "250µs");
}

#[test]
fn settings_win_and_contradictions_warn() {
    let k = parsed("cgroupDriver: systemd\nmemorySwap:\n  swapBehavior: LimitedSwap\n").unwrap();
    let f = resolve(
        Some(&k),
        &Explicit {
            cgroup_driver: Some(CgroupDriver::Cgroupfs),
            swap_behavior: Some(NodeSwapBehavior::LimitedSwap),
            ..Explicit::default()
        },
        Some(CgroupVersion::V2),
    );
    assert_eq!(f.cgroup_driver.value, CgroupDriver::Cgroupfs);
    assert_eq!(f.cgroup_driver.source, Source::Setting("cgroup-driver"));
    assert_eq!(f.warnings.len(), 1, "{:?}", f.warnings);
    assert!(
        f.warnings[0].contains(
            "cgroup-driver = \"cgroupfs\" contradicts the kubelet's cgroupDriver \"systemd\""
        ),
        "{:?}",
        f.warnings
    );
    assert_eq!(f.swap_behavior.value, NodeSwapBehavior::LimitedSwap);
    assert!(!f.single_process_oom_kill.value);
    let v1 = resolve(Some(&k), &Explicit::default(), Some(CgroupVersion::V1));
    assert!(
        v1.single_process_oom_kill.value,
        "cgroup v1 always kills single processes"
    );
    let none = resolve(None, &Explicit::default(), None);
    assert_eq!(none.cgroup_driver.source, Source::Default);
    assert!(none.warnings.is_empty());
}

#[test]
fn the_kubelets_gate_decides_the_stand_down() {
    let v = "v1.33.1";
    assert!(ResizeGate::Unknown.kubelet_resizes(33, v).is_none());
    assert!(ResizeGate::Unknown.kubelet_resizes(35, v).is_some());
    assert!(ResizeGate::VersionDefault.kubelet_resizes(32, v).is_none());
    assert!(ResizeGate::VersionDefault.kubelet_resizes(33, v).is_some());
    assert!(ResizeGate::Set(false).kubelet_resizes(34, v).is_none());
    assert!(
        ResizeGate::Set(false).kubelet_resizes(35, v).is_some(),
        "locked on"
    );
    assert!(ResizeGate::Set(true).kubelet_resizes(32, v).is_some());
    assert!(ResizeGate::Set(true).kubelet_resizes(26, v).is_none());
    let k = parsed("featureGates:\n  InPlacePodVerticalScaling: false\n").unwrap();
    assert_eq!(ResizeGate::of(Some(&k)), ResizeGate::Set(false));
    assert_eq!(
        ResizeGate::of(Some(&parsed("").unwrap())),
        ResizeGate::VersionDefault
    );
    assert_eq!(ResizeGate::of(None), ResizeGate::Unknown);
}

#[test]
fn allocatable_is_capacity_minus_reserved_and_eviction() {
    let k = parsed(
        "systemReserved:\n  cpu: 500m\n  memory: 1Gi\nkubeReserved:\n  cpu: 250m\n  memory: 512Mi\n",
    )
    .unwrap();
    let facts = resolve(Some(&k), &Explicit::default(), None);
    let capacity: ResourceList = [
        ("cpu".to_string(), Quantity::parse("4").unwrap()),
        ("memory".to_string(), Quantity::parse("8Gi").unwrap()),
    ]
    .into_iter()
    .collect();
    // 8Gi − 1Gi − 512Mi − 100Mi (the default hard eviction)
    assert_eq!(
        format_list(&allocatable(&capacity, &facts)),
        "cpu=3250m,memory=6556Mi"
    );
    let k = parsed("evictionHard:\n  memory.available: 10%\n").unwrap();
    let facts = resolve(Some(&k), &Explicit::default(), None);
    assert_eq!(
        facts.eviction_hard_memory.value,
        Some(Threshold::PerMille(100))
    );
    let got = allocatable(&capacity, &facts);
    assert_eq!(got["memory"].value(), 8 * (1 << 30) - 8 * (1 << 30) / 10);
    let k = parsed("evictionHard:\n  nodefs.available: 10%\n").unwrap();
    assert_eq!(
        k.eviction_hard_memory.value, None,
        "an evictionHard without memory.available has no memory threshold"
    );
    assert!(parsed("evictionHard:\n  memory.available: lots\n").is_err());
    let none = resolve(None, &Explicit::default(), None);
    assert_eq!(
        allocatable(&capacity, &none),
        capacity,
        "no kubelet config: capacity"
    );
}

#[test]
fn hostile_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("config.yaml");
    std::fs::write(&real, format!("{HEAD}cgroupDriver: systemd\n")).unwrap();
    assert_eq!(
        load(&real).unwrap().cgroup_driver.value,
        CgroupDriver::Systemd
    );
    let link = dir.path().join("link.yaml");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let e = load(&link).unwrap_err().to_string();
    assert!(e.contains("is a symbolic link (to "), "{e}");
    let big = dir.path().join("big.yaml");
    std::fs::write(&big, vec![b'#'; (MAX_FILE_BYTES + 1) as usize]).unwrap();
    assert!(load(&big).unwrap_err().to_string().contains("larger than"));
    let e = load(dir.path()).unwrap_err().to_string();
    assert!(e.contains("not a regular file"), "{e}");
    let e = load(&dir.path().join("absent.yaml"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("absent.yaml") && e.contains("No such file"),
        "{e}"
    );
}
