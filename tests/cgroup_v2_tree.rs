//! cgroup v2 with the systemd driver, through the same engine → executor → `RealCgroupFs` path as
//! on a real node, against a temporary directory laid out like a v2 hierarchy (this VM has no v2
//! cpu/memory controllers). The runtime is the in-memory fake: what is under test here is the
//! v2 file layout, the exact file contents and the order of writes.

mod support;

use std::fs;
use std::path::{Path, PathBuf};

use std::sync::Arc;

use resizelet::cgroup::fs::RealCgroupFs;
use resizelet::checkpoint::MemoryCheckpointStore;
use resizelet::core::container_resources::{container_linux_resources, Reduced};
use resizelet::core::node::{CgroupDriver, CgroupVersion, NodeConfig, NodeSwapBehavior};

use resizelet::cri::fake::{Call, CallKind, FakeRuntime};
use resizelet::engine::Engine;
use resizelet::testing::{self, enact, sync};
use support::engine::{pod_spec, resized, Log, RecordingCgroups};
use support::kubelet::{app, sized, TestPod};

const MIB: i64 = 1 << 20;

fn write(dir: &Path, files: &[(&str, String)]) {
    fs::create_dir_all(dir).unwrap();
    for (f, v) in files {
        fs::write(dir.join(f), format!("{v}\n")).unwrap();
    }
}

fn read(dir: &Path, f: &str) -> String {
    fs::read_to_string(dir.join(f)).unwrap().trim().to_string()
}

/// Files the kernel would show for a cgroup with these values.
fn v2_files(weight: u64, max: &str, memory_max: &str, usage: i64) -> Vec<(&'static str, String)> {
    vec![
        ("cpu.weight", weight.to_string()),
        ("cpu.max", max.to_string()),
        ("memory.max", memory_max.to_string()),
        ("memory.current", usage.to_string()),
    ]
}

#[tokio::test]
async fn v2_systemd_burstable_pod_mixed_resize_exact_files_and_order() {
    let root = tempfile::tempdir().unwrap();
    let a = sized("a", (200, 400), (64, 256));
    let b = sized("b", (300, 600), (128, 256));
    let pod = TestPod::burstable("v2", [a, b]);
    let spec = pod_spec(&pod);
    let slice = root.path().join(format!(
        "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice",
        pod.uid.replace('-', "_")
    ));
    // pod cgroup per §11.2 for the initial spec: shares 512 → weight 20, quota 100000, 512Mi
    write(
        &slice,
        &v2_files(20, "100000 100000", "536870912", 40 * MIB),
    );
    let node = NodeConfig {
        cgroup_version: CgroupVersion::V2,
        cgroup_driver: CgroupDriver::Systemd,
        ..testing::node("cpu=4,memory=8Gi")
    };
    let runtime = Arc::new(FakeRuntime::new());
    let mut container_dirs: Vec<PathBuf> = Vec::new();
    for (i, container) in spec.containers.iter().enumerate() {
        let id = format!("{}{i}", "c0ffee");
        let linux =
            container_linux_resources(&spec, container, Reduced::of(&container.resources), &node);
        runtime.add_running(&pod.uid, &container.name, &id, linux);
        let dir = slice.join(format!("cri-containerd-{id}.scope"));
        write(&dir, &v2_files(1, "max 100000", "max", 20 * MIB));
        container_dirs.push(dir);
    }
    let log = Log::default();
    let cgroups = RecordingCgroups {
        inner: RealCgroupFs::v2(root.path(), CgroupDriver::Systemd),
        log: log.clone(),
    };
    let engine = Engine::open(
        runtime.clone(),
        Arc::new(cgroups),
        Arc::new(MemoryCheckpointStore::new()),
        node,
    )
    .unwrap();
    let first = sync(&engine, &spec).await;
    assert!(first.seeded);
    assert!(first.plan.is_empty(), "{:?}", first.plan);

    // a: cpu up, memory limit down to 128Mi; b: cpu down, memory limit up to 512Mi
    let a = sized("a", (500, 800), (64, 128));
    let b = sized("b", (100, 200), (128, 512));
    enact(&engine, &resized(&spec, &[a, b])).await;

    // memory: pod grow (512Mi → 640Mi) first, then containers, a's decrease before b's
    // increase; cpu: the pod limit stays 1 cpu (quota unchanged, not written), pod shares grow
    // 512 → 614 before the containers, b's decrease before a's increase
    assert_eq!(
        log.take(),
        [
            format!("pod memory {}", 640 * MIB),
            "pod shares 614".to_string()
        ]
    );
    let updates: Vec<(String, i64, i64, i64)> = runtime
        .calls_of(CallKind::UpdateContainerResources)
        .into_iter()
        .map(|call| match call {
            Call::UpdateContainerResources { id, resources } => (
                id,
                resources.cpu_shares,
                resources.cpu_quota,
                resources.memory_limit_in_bytes,
            ),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        updates,
        [
            ("c0ffee0".into(), 204, 40_000, 128 * MIB),
            ("c0ffee1".into(), 307, 60_000, 512 * MIB),
            ("c0ffee1".into(), 102, 20_000, 512 * MIB),
            ("c0ffee0".into(), 512, 80_000, 128 * MIB),
        ]
    );

    // exact v2 pod files: weight from 614 shares, cpu.max with the period, memory.max in bytes
    assert_eq!(read(&slice, "cpu.weight"), "24");
    assert_eq!(read(&slice, "cpu.max"), "100000 100000");
    assert_eq!(read(&slice, "memory.max"), (640 * MIB).to_string());
    // no file was created in the pod cgroup
    let mut names: Vec<_> = fs::read_dir(&slice)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.starts_with("cri-containerd-"))
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["cpu.max", "cpu.weight", "memory.current", "memory.max"]
    );
    drop(container_dirs);
}

/// LimitedSwap (cgroup v2): a Burstable container's `memory.swap.max` is its memory request's
/// share of the node's swap (`kubernetes/kubernetes v1.36 pkg/kubelet/kuberuntime/
/// kuberuntime_container_linux.go` `calcSwapForBurstablePods`), and every CRI update repeats it:
/// a cpu-only resize must not take the swap away (it used to send "0").
#[tokio::test]
async fn limited_swap_burstable_container_keeps_its_swap_on_a_cpu_only_resize() {
    let root = tempfile::tempdir().unwrap();
    let pod = TestPod::burstable("swap", [app((100, 200), (1024, 2048))]);
    let spec = pod_spec(&pod);
    let pod_dir = root
        .path()
        .join(format!("kubepods/burstable/pod{}", pod.uid));
    // pod cgroup per §11.2: 100m → 102 shares → weight 4, 200m → quota 20000, 2Gi
    write(
        &pod_dir,
        &v2_files(4, "20000 100000", &(2048 * MIB).to_string(), 40 * MIB),
    );
    let node = NodeConfig {
        cgroup_version: CgroupVersion::V2,
        cgroup_driver: CgroupDriver::Cgroupfs,
        machine_memory_bytes: 40 << 30,
        swap_behavior: NodeSwapBehavior::LimitedSwap,
        swap_available: true,
        swap_capacity_bytes: 5 << 30,
        ..testing::node("cpu=4,memory=40Gi")
    };
    // 1Gi of 40Gi memory with 5Gi of swap
    const SHARE: &str = "134217728";
    let container = &spec.containers[0];
    let created =
        container_linux_resources(&spec, container, Reduced::of(&container.resources), &node);
    assert_eq!(
        created.unified.get("memory.swap.max").map(String::as_str),
        Some(SHARE)
    );
    let runtime = Arc::new(FakeRuntime::new());
    runtime.add_running(&pod.uid, "app", "c0ffee0", created.clone());
    // the container cgroup as runc leaves it after creation
    let container_dir = pod_dir.join("cri-containerd-c0ffee0.scope");
    let mut files = v2_files(4, "20000 100000", &(2048 * MIB).to_string(), 20 * MIB);
    files.push(("memory.swap.max", SHARE.to_string()));
    write(&container_dir, &files);
    let engine = Engine::open(
        runtime.clone(),
        Arc::new(RealCgroupFs::v2(root.path(), CgroupDriver::Cgroupfs)),
        Arc::new(MemoryCheckpointStore::new()),
        node,
    )
    .unwrap();
    let first = sync(&engine, &spec).await;
    assert!(first.plan.is_empty(), "{:?}", first.plan);

    // cpu only: 100m/200m → 300m/500m; memory untouched
    let desired = resized(&spec, &[app((300, 500), (1024, 2048))]);
    enact(&engine, &desired).await;
    let updates: Vec<_> = runtime
        .calls_of(CallKind::UpdateContainerResources)
        .into_iter()
        .map(|call| match call {
            Call::UpdateContainerResources { resources, .. } => resources,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(updates.len(), 1, "{updates:?}");
    assert_eq!((updates[0].cpu_shares, updates[0].cpu_quota), (307, 50_000));
    assert_eq!(
        updates[0]
            .unified
            .get("memory.swap.max")
            .map(String::as_str),
        Some(SHARE),
        "the update must repeat the container's swap share"
    );
    // What runc writes from the update's unified map lands on the container cgroup: the swap
    // share stays.
    for (file, value) in &updates[0].unified {
        if container_dir.join(file).exists() {
            fs::write(container_dir.join(file), value).unwrap();
        }
    }
    assert_eq!(read(&container_dir, "memory.swap.max"), SHARE);
    // the pod cgroup got the cpu values, memory and swap left alone
    assert_eq!(read(&pod_dir, "cpu.max"), "50000 100000");
    assert_eq!(read(&pod_dir, "memory.max"), (2048 * MIB).to_string());
    assert!(!pod_dir.join("memory.swap.max").exists());
}
