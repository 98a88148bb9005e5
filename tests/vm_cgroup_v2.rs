//! Resizes on a real kernel's pure cgroup v2 (cgroupfs driver): the engine → executor →
//! `RealCgroupFs` path against real containerd and the kernel's own `cpu.weight`, `cpu.max` and
//! `memory.max` files. Runs only inside the `scripts/vm-test.sh --mode v2` guest
//! (`RESIZELET_VM_GUEST=v2`); elsewhere every test says so and passes.
//!
//! Container weights are runc 1.1's linear conversion of the shares containerd sends (the same
//! formula the kubelet uses for pod cgroups; runc ≥ 1.3 may use the quadratic one, pitfall 3).

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use resizelet::core::admission::Decision;
use resizelet::executor::ExecError;
use resizelet::testing::{enact, sync};
use support::cluster::{resize_done, Agent, Cluster, DEADLINE};
use support::engine::{guest_engine, host_cgroups, node_config, resized, seed, GuestEngine};
use support::eventually;
use support::kubelet::{
    grow_and_shrink, guaranteed, requests, sized, Kubelet, RunningPod, TestPod,
};
use support::read_trimmed;

const MIB: i64 = 1 << 20;

fn in_guest() -> bool {
    support::vm_guest("v2", "pure cgroup v2")
}

/// The kubelet double on the guest's containerd; `None` outside the guest.
async fn guest_kubelet() -> Option<Kubelet> {
    if !in_guest() {
        return None;
    }
    let kubelet = Kubelet::from_env().await;
    assert!(kubelet.mounts.v2, "the guest has pure cgroup v2");
    Some(kubelet)
}

/// Two vCPUs under TCG on a shared host: a CRI call can take seconds, so a 30 s deadline instead of
/// the agent's default.
const GUEST_CRI_TIMEOUT: Duration = Duration::from_secs(30);

/// The real engine on the guest's cgroups (cgroupfs driver) and containerd.
async fn engine() -> GuestEngine {
    guest_engine(Arc::new(host_cgroups()), node_config(), GUEST_CRI_TIMEOUT).await
}

/// (cpu.weight, cpu.max, memory.max) of a cgroup directory, as the kernel shows them.
fn files(dir: &Path) -> (String, String, String) {
    let read = |f: &str| read_trimmed(dir, f);
    (read("cpu.weight"), read("cpu.max"), read("memory.max"))
}

fn pod_files(r: &RunningPod) -> (String, String, String) {
    files(&r.pod_cgroup_dir("cpu"))
}

fn container_files(r: &RunningPod, name: &str) -> (String, String, String) {
    files(&r.container_cgroup_dir(name, "cpu"))
}

/// The files of a cgroup with `cpu.weight` `weight`, `quota` µs per 100 ms and `memory` bytes.
fn f(weight: u64, quota: i64, memory: i64) -> (String, String, String) {
    (
        weight.to_string(),
        format!("{quota} 100000"),
        memory.to_string(),
    )
}

/// The files of a cgroup with `cpu.weight` `weight` and neither a cpu nor a memory limit.
fn unlimited(weight: u64) -> (String, String, String) {
    (
        weight.to_string(),
        "max 100000".to_string(),
        "max".to_string(),
    )
}

#[tokio::test]
async fn guaranteed_pod_increase_then_decrease_exact_v2_files() {
    let Some(kubelet) = guest_kubelet().await else {
        return;
    };
    let b = guaranteed("b", 250, 64);
    let pod = TestPod::guaranteed("v2-guaranteed", [guaranteed("a", 250, 32), b.clone()]);
    let running = kubelet.run_pod(&pod).await;
    // the kubelet's pod cgroup: weight(shares(500m) = 512) = 20, 50 ms per 100 ms, 96 MiB
    assert_eq!(pod_files(&running), f(20, 50_000, 96 * MIB));
    // runc: weight(256) = 10
    let b_files = f(10, 25_000, 64 * MIB);
    assert_eq!(container_files(&running, "a"), f(10, 25_000, 32 * MIB));

    let t = engine().await;
    let (mut spec, _) = seed(&t, &pod).await;
    // a's new size, then the pod's files and a's; b stays as it is
    let steps = [
        // pod: shares(750m) = 768 → weight 30; 75 ms; 128 MiB. Container a: weight(512) = 20.
        (
            guaranteed("a", 500, 64),
            f(30, 75_000, 128 * MIB),
            f(20, 50_000, 64 * MIB),
        ),
        // pod: shares(350m) = 358 → weight 14; 35 ms; 80 MiB. Container a: weight(102) = 4.
        (
            guaranteed("a", 100, 16),
            f(14, 35_000, 80 * MIB),
            f(4, 10_000, 16 * MIB),
        ),
    ];
    for (a, pod_want, a_want) in steps {
        let step = format!("the resize of a to {}m", a.cpu_limit.unwrap());
        spec = resized(&spec, &[a, b.clone()]);
        enact(&t, &spec).await;
        assert_eq!(pod_files(&running), pod_want, "pod after {step}");
        assert_eq!(container_files(&running, "a"), a_want, "a after {step}");
        assert_eq!(container_files(&running, "b"), b_files, "b after {step}");
    }
    running.teardown().await.expect("teardown");
}

#[tokio::test]
async fn burstable_pod_mixed_changes_exact_v2_files() {
    let Some(kubelet) = guest_kubelet().await else {
        return;
    };
    let c1 = sized("c1", (200, 400), (64, 128));
    let pod = TestPod::burstable("v2-burstable", [c1, requests("c2", 300, 128)]);
    let running = kubelet.run_pod(&pod).await;
    // Burstable without every limit declared: the pod cgroup keeps "max" for cpu and memory.
    // shares(500m) = 512 → weight 20.
    assert_eq!(pod_files(&running), unlimited(20));
    assert_eq!(container_files(&running, "c2"), unlimited(12));

    let t = engine().await;
    let (spec, _) = seed(&t, &pod).await;
    // c1: cpu down, memory limit up; c2: cpu request up.
    let c1 = sized("c1", (100, 300), (64, 192));
    enact(&t, &resized(&spec, &[c1, requests("c2", 600, 128)])).await;
    // pod: shares(700m) = 716 → weight 28; limits still not all declared → "max" stays
    assert_eq!(pod_files(&running), unlimited(28));
    // c1: weight(102) = 4, 30 ms, 192 MiB; c2: weight(614) = 24
    assert_eq!(container_files(&running, "c1"), f(4, 30_000, 192 * MIB));
    assert_eq!(container_files(&running, "c2"), unlimited(24));
    running.teardown().await.expect("teardown");
}

#[tokio::test]
async fn memory_decrease_below_usage_is_refused_on_v2() {
    let Some(kubelet) = guest_kubelet().await else {
        return;
    };
    // 24 MiB in the container's /dev/shm (tmpfs, charged to its memory cgroup: memory.current;
    // TCG fills it at a few MiB/s on a loaded host).
    let hog = sized("hog", (100, 200), (64, 128)).shell(
        "head -c 25165824 /dev/zero > /dev/shm/fill; trap 'exit 0' TERM; sleep 2147483647 & wait",
    );
    let pod = TestPod::burstable("v2-hog", [hog]);
    let running = kubelet.run_pod(&pod).await;
    running.wait_memory_usage("hog", 24 * MIB).await;
    let before = (pod_files(&running), container_files(&running, "hog"));

    let t = engine().await;
    let (spec, _) = seed(&t, &pod).await;
    let desired = resized(&spec, &[sized("hog", (100, 200), (8, 16))]);
    let out = sync(&t, &desired).await;
    assert_eq!(out.decision, Decision::Accepted);
    let err = out.enactment.expect_err("the decrease must be refused");
    assert!(matches!(err, ExecError::MemoryDecrease(_)), "{err}");
    assert!(err.to_string().contains("below current usage"), "{err}");
    // nothing written: the kernel would have reclaimed or OOM-killed to meet memory.max
    assert_eq!(
        (pod_files(&running), container_files(&running, "hog")),
        before
    );
    running.teardown().await.expect("teardown");
}

/// End to end on v2: the API-server double, `resizelet run` and the real containerd; a Burstable
/// pod's containers grow and shrink through `/resize`, and the kernel's files follow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_resize_through_the_api_exact_v2_files() {
    if !in_guest() {
        return;
    }
    let cluster = Cluster::start("2", "4Gi").await;
    let state = cluster.dir.path().join("state");
    let timeout = GUEST_CRI_TIMEOUT.as_millis().to_string();
    let _agent = Agent::start_with(&cluster, &state, &["--cri-timeout-ms", &timeout]);
    let (before, after) = grow_and_shrink();
    let run = cluster.run_pod(TestPod::burstable("v2-e2e", before)).await;
    let b = run.pod.clone();
    cluster.wait_resize_fields(&b).await;
    // the pod cgroup before: shares(400m) = 409 → weight 16, 90 ms, 384 MiB
    assert_eq!(pod_files(&run), f(16, 90_000, 384 * MIB));
    cluster
        .resize(&b, &after)
        .await
        .expect("resize accepted by the API server");
    eventually(
        "resize completed in the API status",
        DEADLINE * 6,
        || async { resize_done(&cluster.pod(&b)).then_some(()) },
    )
    .await;
    // c1 grows: weight(307) = 12, 50 ms, 192 MiB; c2 shrinks: weight(102) = 4, 20 ms, 128 MiB;
    // the pod: shares(400m) unchanged → 16, 70 ms, 320 MiB
    assert_eq!(container_files(&run, "c1"), f(12, 50_000, 192 * MIB));
    assert_eq!(container_files(&run, "c2"), f(4, 20_000, 128 * MIB));
    assert_eq!(pod_files(&run), f(16, 70_000, 320 * MIB));
    run.teardown().await.expect("teardown");
}

#[test]
fn resizelet_check_reports_cgroup_v2_and_cgroupfs() {
    if !in_guest() {
        return;
    }
    support::check_v2("cgroupfs");
}
