//! A crash (the process aborted) between two plan steps, followed by a re-run, converges to the
//! same end state — on a real containerd and real cgroups, through the `resizelet resize` binary.

mod support;

use resizelet::checkpoint::FileCheckpointStore;
use resizelet::core::plan::Limit;
use resizelet::core::resources::QosClass;
use resizelet::core::state::{decode, CheckpointKind};
use support::engine::{pod_spec, resized};
use support::kubelet::{Kubelet, TestContainer, TestPod};
use support::resize_cmd;

const MIB: i64 = 1 << 20;

#[tokio::test]
async fn crash_between_steps_then_rerun_converges() {
    let kubelet = Kubelet::from_env().await;
    let start = |cpu: (i64, i64), mem: (i64, i64)| {
        TestContainer::new("app")
            .cpu(Some(cpu.0), Some(cpu.1))
            .memory(Some(mem.0 * MIB), Some(mem.1 * MIB))
    };
    let pod = TestPod::new(
        "crash",
        QosClass::Burstable,
        vec![start((100, 200), (32, 64))],
    );
    let running = kubelet.run_pod(&pod).await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let pod_file = dir.path().join("pod.json");

    let desired = resized(&pod_spec(&pod), &[start((300, 400), (32, 128))]);
    std::fs::write(&pod_file, serde_json::to_vec(&desired).unwrap()).unwrap();

    // Plan: pod memory grow (step 0), container memory (1), pod quota (2), pod shares (3),
    // container cpu (4). Abort right after step 1.
    let crashed = resize_cmd(&pod_file, &state)
        .args(["--crash-after-step", "1"])
        .output()
        .unwrap();
    assert!(!crashed.status.success(), "the process must have aborted");
    assert!(
        String::from_utf8_lossy(&crashed.stderr).contains("crash requested after step 1"),
        "{}",
        String::from_utf8_lossy(&crashed.stderr)
    );
    // half done: memory enacted and recorded, cpu untouched
    assert_eq!(
        running.pod_cgroup_values().memory_limit,
        Some(Limit::Value(128 * MIB))
    );
    assert_eq!(
        running.container_cgroup_values("app").memory_limit,
        Some(Limit::Value(128 * MIB))
    );
    assert_eq!(
        running.container_cgroup_values("app").cpu_quota,
        Some(Limit::Value(20_000))
    );
    assert_eq!(
        running.pod_cgroup_values().cpu_quota,
        Some(Limit::Value(20_000))
    );
    let pod_file_path = FileCheckpointStore::new(&state)
        .unwrap()
        .pod_path(CheckpointKind::Actuated, &pod.uid);
    let actuated = decode(&std::fs::read(pod_file_path).unwrap()).unwrap();
    let app = &actuated.entries[&pod.uid].container_resources["app"];
    assert_eq!(app.limits["memory"].value(), 128 * MIB);
    assert_eq!(app.limits["cpu"].milli_value(), 200);

    // re-run: the allocation is already checkpointed, only the rest is applied
    let rerun = resize_cmd(&pod_file, &state).output().unwrap();
    let stdout = String::from_utf8_lossy(&rerun.stdout);
    assert!(
        rerun.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&rerun.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["decision"], "Unchanged", "{report}");
    assert_eq!(report["applied"], 3, "{report}");
    assert_eq!(report["inProgress"], false, "{report}");
    let app = running.container_cgroup_values("app");
    assert_eq!(
        (app.cpu_shares, app.cpu_quota, app.memory_limit),
        (
            Some(307),
            Some(Limit::Value(40_000)),
            Some(Limit::Value(128 * MIB))
        )
    );
    let p = running.pod_cgroup_values();
    assert_eq!(
        (p.cpu_shares, p.cpu_quota, p.memory_limit),
        (
            Some(307),
            Some(Limit::Value(40_000)),
            Some(Limit::Value(128 * MIB))
        )
    );

    // a third run finds nothing to do
    let third = resize_cmd(&pod_file, &state).output().unwrap();
    let report: serde_json::Value = serde_json::from_slice(&third.stdout).unwrap();
    assert_eq!(report["applied"], 0, "{report}");
    assert_eq!(report["steps"], serde_json::json!([]), "{report}");
    running.teardown().await.expect("teardown");
}

#[test]
fn corrupt_checkpoint_is_refused_and_quarantined_by_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(
        state.join("allocated_pods_state"),
        b"{\"version\":1,\"data\":\"{}\",\"checksum\":1}",
    )
    .unwrap();
    let pod_file = dir.path().join("pod.json");
    let pod = TestPod::new(
        "corrupt",
        QosClass::Burstable,
        vec![TestContainer::new("app").cpu(Some(100), None)],
    );
    std::fs::write(&pod_file, serde_json::to_vec(&pod_spec(&pod)).unwrap()).unwrap();
    let out = resize_cmd(&pod_file, &state).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is corrupt (checksum mismatch"), "{stderr}");
    assert!(!state.join("allocated_pods_state").exists());
    let quarantined: Vec<_> = std::fs::read_dir(&state)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("allocated_pods_state.corrupt-"))
        .collect();
    assert_eq!(quarantined.len(), 1, "{quarantined:?}");
}
