//! A crash (the process aborted) between two plan steps, followed by a re-run, converges to the
//! same end state — on a real containerd and real cgroups, through the `resizelet resize` binary.

mod support;

use resizelet::checkpoint::FileCheckpointStore;
use resizelet::core::state::{decode, CheckpointKind};
use support::engine::{pod_spec, start_with_resize, ResizeInputs};
use support::kubelet::{cpu_memory, TestContainer, TestPod};

const MIB: i64 = 1 << 20;

#[tokio::test]
async fn crash_between_steps_then_rerun_converges() {
    // 100m/200m cpu and 32/64 MiB → 300m/400m and 32/128 MiB
    let (running, inputs) = start_with_resize("crash").await;
    let pod = &running.pod;

    // Plan: pod memory grow (step 0), container memory (1), pod quota (2), pod shares (3),
    // container cpu (4). Abort right after step 1.
    let crashed = inputs
        .cmd()
        .args(["--crash-after-step", "1"])
        .output()
        .unwrap();
    assert!(!crashed.status.success(), "the process must have aborted");
    assert!(
        String::from_utf8_lossy(&crashed.stderr).contains("crash requested after step 1"),
        "{}",
        String::from_utf8_lossy(&crashed.stderr)
    );
    // half done: memory enacted and recorded, cpu untouched (100m → 102 shares, 200m → 20 ms)
    running.assert_pod(cpu_memory(102, 20_000, 128 * MIB));
    running.assert_container("app", cpu_memory(102, 20_000, 128 * MIB));
    let pod_file_path = FileCheckpointStore::new(&inputs.state)
        .unwrap()
        .pod_path(CheckpointKind::Actuated, &pod.uid);
    let actuated = decode(&std::fs::read(pod_file_path).unwrap()).unwrap();
    let app = &actuated.entries[&pod.uid].container_resources["app"];
    assert_eq!(app.limits["memory"].value(), 128 * MIB);
    assert_eq!(app.limits["cpu"].milli_value(), 200);

    // re-run: the allocation is already checkpointed, only the rest is applied
    let rerun = inputs.cmd().output().unwrap();
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
    running.assert_container("app", cpu_memory(307, 40_000, 128 * MIB));
    running.assert_pod(cpu_memory(307, 40_000, 128 * MIB));

    // a third run finds nothing to do
    let third = inputs.cmd().output().unwrap();
    let report: serde_json::Value = serde_json::from_slice(&third.stdout).unwrap();
    assert_eq!(report["applied"], 0, "{report}");
    assert_eq!(report["steps"], serde_json::json!([]), "{report}");
    running.teardown().await.expect("teardown");
}

#[test]
fn corrupt_checkpoint_is_refused_and_quarantined_by_the_binary() {
    let inputs = ResizeInputs::default();
    let state = &inputs.state;
    std::fs::create_dir_all(state).unwrap();
    std::fs::write(
        state.join("allocated_pods_state"),
        b"{\"version\":1,\"data\":\"{}\",\"checksum\":1}",
    )
    .unwrap();
    let pod = TestPod::burstable("corrupt", [TestContainer::new("app").cpu(Some(100), None)]);
    inputs.write_pod(&pod_spec(&pod));
    let out = inputs.cmd().output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is corrupt (checksum mismatch"), "{stderr}");
    assert!(!state.join("allocated_pods_state").exists());
    let quarantined: Vec<_> = std::fs::read_dir(state)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("allocated_pods_state.corrupt-"))
        .collect();
    assert_eq!(quarantined.len(), 1, "{quarantined:?}");
}
