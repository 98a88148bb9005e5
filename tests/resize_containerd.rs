//! The real path end to end: resizelet's engine resizing pods on a real containerd (started by
//! `scripts/test.sh`), asserting the real cgroup files (container and pod), CRI
//! `ContainerStatus.resources`, and the order of writes.

mod support;

use resizelet::core::admission::Decision;
use resizelet::core::plan::Limit;
use resizelet::core::resources::PodSpec;
use resizelet::cri::Runtime;
use resizelet::executor::ExecError;
use resizelet::testing::{enact, sync};
use support::engine::{engine, resized, seed, TestEngine};
use support::kubelet::{
    cpu_memory, guaranteed, sized, start_pod, RunningPod, TestContainer, TestPod,
};

const MIB: i64 = 1 << 20;

/// `pod` running on the test containerd, the recording engine, and the spec of the engine's
/// first pass over the pod, which seeds it from the runtime and has nothing to do.
async fn start(pod: TestPod) -> (RunningPod, TestEngine, PodSpec) {
    let running = start_pod(&pod).await;
    let t = engine().await;
    let (spec, first) = seed(&t.engine, &running.pod).await;
    assert!(first.seeded);
    assert_eq!(first.decision, Decision::Unchanged);
    assert!(first.plan.is_empty(), "{:?}", first.plan);
    (running, t, spec)
}

/// Containers at 100m/200m cpu, 32/64 MiB.
fn small(names: &[&str]) -> Vec<TestContainer> {
    names
        .iter()
        .map(|name| sized(name, (100, 200), (32, 64)))
        .collect()
}

/// [`small`] with the cpu grown to 300m/400m.
fn grown(names: &[&str]) -> Vec<TestContainer> {
    names
        .iter()
        .map(|name| sized(name, (300, 400), (32, 64)))
        .collect()
}

#[tokio::test]
async fn guaranteed_pod_grows_pod_cgroup_first_then_container() {
    let b = guaranteed("b", 250, 64);
    let pod = TestPod::guaranteed("guaranteed", [guaranteed("a", 250, 32), b.clone()]);
    let (running, t, spec) = start(pod).await;

    let desired = resized(&spec, &[guaranteed("a", 500, 64), b]);
    let out = enact(&t.engine, &desired).await;
    assert!(!out.in_progress);
    assert_eq!(
        t.log.take(),
        [
            format!("pod memory {}", 128 * MIB),
            "update a".to_string(),
            "pod quota 75000".to_string(),
            "pod shares 768".to_string(),
            "update a".to_string(),
        ]
    );
    // container a: real files and what containerd reports
    assert_eq!(running.read_container_file("a", "cpu", "cpu.shares"), "512");
    assert_eq!(
        running.read_container_file("a", "cpu", "cpu.cfs_quota_us"),
        "50000"
    );
    assert_eq!(
        running.read_container_file("a", "memory", "memory.limit_in_bytes"),
        (64 * MIB).to_string()
    );
    let status = t
        .runtime
        .inner
        .container_status(running.container_id("a"))
        .await
        .unwrap();
    let r = status.resources.expect("containerd reports resources");
    assert_eq!(
        (r.cpu_shares, r.cpu_quota, r.memory_limit_in_bytes),
        (512, 50_000, 64 * MIB)
    );
    // b untouched; pod cgroup per §11.2
    assert_eq!(
        running.read_container_file("b", "cpu", "cpu.cfs_quota_us"),
        "25000"
    );
    assert_eq!(running.read_pod_file("cpu", "cpu.shares"), "768");
    assert_eq!(running.read_pod_file("cpu", "cpu.cfs_quota_us"), "75000");
    assert_eq!(
        running.read_pod_file("memory", "memory.limit_in_bytes"),
        (128 * MIB).to_string()
    );
    running.teardown().await.expect("teardown");
}

#[tokio::test]
async fn burstable_multi_container_mixed_increases_and_decreases() {
    let c1 = sized("c1", (200, 400), (64, 128));
    let c2 = sized("c2", (300, 600), (128, 256));
    let (running, t, spec) = start(TestPod::burstable("mixed", [c1, c2])).await;

    // c1: memory limit up, cpu down; c2: memory limit down, cpu up.
    let c1 = sized("c1", (100, 200), (64, 256));
    let c2 = sized("c2", (500, 900), (64, 96));
    enact(&t.engine, &resized(&spec, &[c1, c2])).await;
    assert_eq!(
        t.log.take(),
        [
            // memory: decreases first, then increases, then the pod shrinks (384Mi → 352Mi)
            "update c2".to_string(),
            "update c1".to_string(),
            format!("pod memory {}", 352 * MIB),
            // cpu: the pod grows (quota 1000m → 1100m, shares 500m → 600m), then c1 ↓, c2 ↑
            "pod quota 110000".to_string(),
            "pod shares 614".to_string(),
            "update c1".to_string(),
            "update c2".to_string(),
        ]
    );
    running.assert_container("c1", cpu_memory(102, 20_000, 256 * MIB));
    running.assert_container("c2", cpu_memory(512, 90_000, 96 * MIB));
    running.assert_pod(cpu_memory(614, 110_000, 352 * MIB));
    running.teardown().await.expect("teardown");
}

#[tokio::test]
async fn memory_decrease_below_usage_is_refused_and_changes_nothing() {
    // 48 MiB in the container's /dev/shm (tmpfs, charged to its memory cgroup).
    let hog = sized("hog", (100, 200), (64, 128)).shell(
        "head -c 50331648 /dev/zero > /dev/shm/fill; trap 'exit 0' TERM; sleep 2147483647 & wait",
    );
    let (running, t, spec) = start(TestPod::burstable("hog", [hog])).await;
    running.wait_memory_usage("hog", 48 * MIB).await;
    let desired = resized(&spec, &[sized("hog", (100, 200), (16, 32))]);
    let out = sync(&t.engine, &desired).await;
    assert_eq!(out.decision, Decision::Accepted);
    let err = out.enactment.expect_err("the decrease must be refused");
    assert!(matches!(err, ExecError::MemoryDecrease(_)), "{err}");
    let msg = err.to_string();
    assert!(msg.starts_with("cannot decrease memory limits: "), "{msg}");
    assert!(
        msg.contains(&format!(
            "memory limit ({}) below current usage (",
            32 * MIB
        )),
        "{msg}"
    );
    assert!(
        out.in_progress,
        "allocated ≠ actuated while the decrease is refused"
    );
    assert!(t.log.take().is_empty(), "nothing may be written");
    assert_eq!(
        running.read_container_file("hog", "memory", "memory.limit_in_bytes"),
        (128 * MIB).to_string()
    );
    assert_eq!(
        running.pod_cgroup_values().memory_limit,
        Some(Limit::Value(128 * MIB))
    );

    // reverting the request brings it back to normal without touching anything
    let reverted = resized(&desired, &[sized("hog", (100, 200), (64, 128))]);
    let out = sync(&t.engine, &reverted).await;
    assert_eq!(out.decision, Decision::Accepted);
    out.enactment.expect("nothing to do");
    assert!(out.plan.is_empty(), "{:?}", out.plan);
    assert!(!out.in_progress);
    running.teardown().await.expect("teardown");
}

#[tokio::test]
async fn container_that_is_not_running_is_left_to_its_restart() {
    let (running, t, spec) = start(TestPod::burstable("stopped", small(&["up", "down"]))).await;
    t.runtime
        .inner
        .stop_container(running.container_id("down"), 0)
        .await
        .unwrap();

    let out = sync(&t.engine, &resized(&spec, &grown(&["up", "down"]))).await;
    out.enactment.expect("enactment");
    assert!(
        !out.in_progress,
        "non-running containers never hold a resize in progress"
    );
    let updates: Vec<String> = t
        .log
        .take()
        .into_iter()
        .filter(|l| l.starts_with("update"))
        .collect();
    assert_eq!(updates, ["update up"]);
    assert_eq!(
        running.read_container_file("up", "cpu", "cpu.cfs_quota_us"),
        "40000"
    );
    // the allocation covers both: a restarted "down" gets 300m/400m from its spec
    let allocated = t.engine.allocated(&spec.uid).unwrap();
    assert_eq!(
        allocated.container_resources["down"].limits["cpu"].milli_value(),
        400
    );
    running.teardown().await.expect("teardown");
}

#[tokio::test]
async fn container_vanishing_mid_plan_stops_the_plan_with_a_clear_error() {
    let pod = TestPod::burstable("vanish", small(&["first", "second"]));
    let (running, t, spec) = start(pod).await;
    *t.runtime.vanish.lock().unwrap() = Some("first".to_string());

    let out = sync(&t.engine, &resized(&spec, &grown(&["first", "second"]))).await;
    let err = out.enactment.expect_err("first is gone");
    assert!(
        matches!(err, ExecError::ContainerGone { ref container, .. } if container == "first"),
        "{err}"
    );
    assert!(err.to_string().contains("is gone"), "{err}");
    // nothing after the failing step ran: second keeps its values
    assert_eq!(
        running.read_container_file("second", "cpu", "cpu.cfs_quota_us"),
        "20000"
    );
    assert!(out.in_progress);
    running.teardown().await.expect("teardown");
}
