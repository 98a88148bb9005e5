//! Integration tests against a real containerd (1.6.x, runc, cgroup v1, cgroupfs driver).
//! Run with `scripts/test.sh`, which starts a private containerd and exports
//! `RESIZELET_TEST_CRI_ENDPOINT` / `RESIZELET_TEST_IMAGE`; without them every test here panics
//! (they never skip silently).

mod support;

use std::time::Duration;

use resizelet::core::plan::{Limit, PodCgroupValues};
use resizelet::core::runtime::{ContainerState, LinuxResources};
use resizelet::cri::client::CriClient;
use resizelet::cri::{proto, CriError, Runtime};
use support::eventually;
use support::kubelet::{
    cgroup_values, container_resources, guaranteed, pod_cgroup_values, sized, start_pod, Kubelet,
    RunningPod, TestContainer, TestPod,
};

const MIB: i64 = 1 << 20;

/// The fields the resize path sets and containerd reports back.
fn cpu_memory(r: &LinuxResources) -> (i64, i64, i64, i64) {
    (
        r.cpu_period,
        r.cpu_quota,
        r.cpu_shares,
        r.memory_limit_in_bytes,
    )
}

/// Expected container cgroup values for CRI resources (v1 files; quota 0 = unlimited = −1).
/// What containerd reports as the container's resources (`ContainerStatus`).
async fn reported_resources(kubelet: &Kubelet, id: &str) -> LinuxResources {
    kubelet
        .client
        .container_status(id)
        .await
        .expect("status")
        .resources
        .expect("resources")
}

fn cgroup_values_of(r: &LinuxResources) -> PodCgroupValues {
    PodCgroupValues {
        cpu_shares: Some(r.cpu_shares as u64),
        cpu_quota: Some(if r.cpu_quota == 0 {
            Limit::Max
        } else {
            Limit::from_quota(r.cpu_quota)
        }),
        cpu_period: Some(r.cpu_period as u64),
        memory_limit: Some(if r.memory_limit_in_bytes == 0 {
            Limit::Max
        } else {
            Limit::from_memory(r.memory_limit_in_bytes)
        }),
    }
}

#[tokio::test]
async fn version_reports_containerd_1_6_and_cri_v1() {
    let kubelet = Kubelet::from_env().await;
    let v = kubelet.client.version().await.expect("Version");
    assert_eq!(v.runtime_name, "containerd");
    assert!(
        v.runtime_version
            .trim_start_matches('v')
            .starts_with("1.6."),
        "expected containerd 1.6.x, got {v:?}"
    );
    assert_eq!(v.runtime_api_version, "v1");
}

#[tokio::test]
async fn burstable_pod_resize_reaches_container_cgroup_and_status() {
    let kubelet = Kubelet::from_env().await;
    let pod = TestPod::burstable("burstable", [sized("app", (100, 200), (64, 128))]);
    let running = kubelet.run_pod(&pod).await;
    let id = running.container_id("app").to_string();

    // The double created the pod like the kubelet: pod cgroup per §11.2, container per §10.
    let created = container_resources(&pod, pod.container("app"), &kubelet.host);
    let expected_pod = pod_cgroup_values(&pod);
    running.assert_pod(expected_pod.into());
    assert_eq!(
        running.container_cgroup_values("app"),
        cgroup_values_of(&created)
    );
    assert_eq!(running.container_cgroup_values("app").cpu_shares, Some(102));
    assert_eq!(
        running.container_cgroup_values("app").cpu_quota,
        Some(Limit::Value(20_000))
    );

    let status = kubelet.client.container_status(&id).await.expect("status");
    assert_eq!(status.state, ContainerState::Running);
    assert_eq!(status.name, "app");
    let reported = status
        .resources
        .expect("containerd 1.6.9+ reports resources");
    assert_eq!(cpu_memory(&reported), cpu_memory(&created));

    // Resize: cpu 100m/200m → 300m/400m, memory limit 128Mi → 256Mi. Increases grow the pod
    // cgroup first (spec §7.2), then update the container.
    let mut resized_pod = pod.clone();
    resized_pod.containers[0] = sized("app", (300, 400), (64, 256));
    let resized = container_resources(&resized_pod, &resized_pod.containers[0], &kubelet.host);
    let resized_pod_values = pod_cgroup_values(&resized_pod);
    running.write_pod_cgroup(&resized_pod_values);
    let started = std::time::Instant::now();
    kubelet
        .client
        .update_container_resources(&id, &resized)
        .await
        .expect("UpdateContainerResources");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "update took {took:?}");

    // UpdateContainerResources is synchronous: the files are updated when it returns.
    running.assert_v1_files("app", 307, 40_000, 256 * MIB);
    assert_eq!(
        running.container_cgroup_values("app"),
        cgroup_values_of(&resized)
    );
    let reported = reported_resources(&kubelet, &id).await;
    assert_eq!(cpu_memory(&reported), cpu_memory(&resized));
    // The container update did not touch the pod cgroup.
    running.assert_pod(resized_pod_values.into());

    // Decrease back: container first, then shrink the pod cgroup (spec §7.2).
    kubelet
        .client
        .update_container_resources(&id, &created)
        .await
        .expect("UpdateContainerResources (decrease)");
    running.write_pod_cgroup(&expected_pod);
    assert_eq!(
        running.container_cgroup_values("app"),
        cgroup_values_of(&created)
    );
    let reported = reported_resources(&kubelet, &id).await;
    assert_eq!(cpu_memory(&reported), cpu_memory(&created));

    running.teardown().await.expect("teardown");
}

/// Why §7.2 grows the pod cgroup before the container: on cgroup v1 the kernel refuses a child
/// quota above the parent's, so the runtime's update fails and nothing changes.
#[tokio::test]
async fn container_quota_above_pod_quota_is_refused() {
    let kubelet = Kubelet::from_env().await;
    let app = TestContainer::new("app").cpu(Some(100), Some(200));
    let pod = TestPod::burstable("order", [app]);
    let running = kubelet.run_pod(&pod).await;
    let id = running.container_id("app").to_string();
    let grown = TestContainer::new("app").cpu(Some(100), Some(400));
    let resources = container_resources(&pod, &grown, &kubelet.host);
    let err = kubelet
        .client
        .update_container_resources(&id, &resources)
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            CriError::Call {
                call: "UpdateContainerResources",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("cpu.cfs_quota_us"), "{err}");
    assert_eq!(
        running.read_container_file("app", "cpu", "cpu.cfs_quota_us"),
        "20000"
    );
    running.teardown().await.expect("teardown");
}

#[tokio::test]
async fn guaranteed_pod_cgroup_gets_kubelet_values() {
    let (a, b) = (guaranteed("a", 250, 32), guaranteed("b", 250, 64));
    let running = start_pod(&TestPod::guaranteed("guaranteed", [a, b])).await;
    assert!(running.pod.cgroup_parent().starts_with("/kubepods/pod"));
    running.assert_pod_values(cgroup_values(512, 50_000, 96 * MIB));
    for name in ["a", "b"] {
        let dir = running.container_cgroup_dir(name, "cpu");
        assert!(
            dir.starts_with(running.pod_cgroup_dir("cpu")),
            "{}",
            dir.display()
        );
        assert_eq!(
            running.read_container_file(name, "cpu", "cpu.cfs_quota_us"),
            "25000"
        );
    }
    let dirs = running.pod_cgroup_dirs();
    assert!(dirs.contains(&running.pod_cgroup_dir("memory")));
    assert!(dirs.iter().filter(|d| d.exists()).count() >= 2);
    running.teardown().await.expect("teardown");
    for d in dirs {
        assert!(!d.exists(), "{} left behind", d.display());
    }
}

#[tokio::test]
async fn list_containers_filters_by_pod_uid() {
    let kubelet = Kubelet::from_env().await;
    let make = |name| TestPod::best_effort(name, ["one", "two"].map(TestContainer::new));
    let (p1, p2) = (make("list-a"), make("list-b"));
    let (r1, r2) = tokio::join!(kubelet.run_pod(&p1), kubelet.run_pod(&p2));

    let mut listed = kubelet
        .client
        .list_containers(Some(&p1.uid))
        .await
        .expect("list");
    listed.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(listed.len(), 2, "{listed:?}");
    for (c, name) in listed.iter().zip(["one", "two"]) {
        assert_eq!(c.name, name);
        assert_eq!(c.pod_uid, p1.uid);
        assert_eq!(c.id, r1.container_id(name));
        assert_eq!(Some(&c.pod_sandbox_id), r1.sandbox_id.as_ref());
        assert_eq!(c.state, ContainerState::Running);
        assert_eq!(c.attempt, 0);
        assert_eq!(
            c.labels.get("io.kubernetes.pod.name").map(String::as_str),
            Some("list-a")
        );
    }
    let all = kubelet
        .client
        .list_containers(None)
        .await
        .expect("list all");
    for id in [r1.container_id("one"), r2.container_id("two")] {
        assert!(
            all.iter().any(|c| c.id == id),
            "{id} missing from unfiltered list"
        );
    }
    assert!(kubelet
        .client
        .list_containers(Some("no-such-pod-uid"))
        .await
        .expect("list")
        .is_empty());

    r1.teardown().await.expect("teardown");
    r2.teardown().await.expect("teardown");
}

/// Whether the init process (PID 1 of its PID namespace) of container `name` has a SIGTERM
/// handler (bit 15 of `SigCgt` in `/proc/<pid>/status`); `None` while it has none.
fn init_catches_sigterm(running: &RunningPod, name: &str) -> Option<()> {
    let procs = running
        .container_cgroup_dir(name, "cpu")
        .join("cgroup.procs");
    let procs = std::fs::read_to_string(procs).ok()?;
    let status = procs
        .lines()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
        .find(|s| field(s, "NSpid:").and_then(|f| f.split_whitespace().last()) == Some("1"))?;
    let caught = u64::from_str_radix(field(&status, "SigCgt:")?.trim(), 16).ok()?;
    (caught & 1 << (15 - 1) != 0).then_some(())
}

fn field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status.lines().find_map(|l| l.strip_prefix(key))
}

/// `StopContainer` with a grace period sends SIGTERM, waits up to the grace period for the exit
/// and only then sends SIGKILL (containerd pkg/cri/server/container_stop.go). The workload traps
/// TERM and exits 0; killed, it would exit 137. The exit code, not the time the call took, tells
/// which signal ended it (the time depends on the host's load: the exit is observed by
/// containerd's exit monitor after the shim's task delete).
#[tokio::test]
async fn stop_container_exits_it() {
    let kubelet = Kubelet::from_env().await;
    let pod = TestPod::burstable("stop", [TestContainer::new("app").cpu(Some(50), None)]);
    let running = kubelet.run_pod(&pod).await;
    let id = running.container_id("app").to_string();
    // StartContainer returns once runc has exec'd `sh`, not once `sh` has run its `trap`. `sh`
    // is PID 1 of the container's PID namespace, and the kernel drops every signal PID 1 has no
    // handler for (pid_namespaces(7)): a SIGTERM sent before the trap is lost and only the
    // SIGKILL at the end of the grace period stops the container. Wait for the handler.
    eventually(
        "the workload's TERM trap",
        Duration::from_secs(30),
        || async { init_catches_sigterm(&running, "app") },
    )
    .await;
    // The grace period is a safety net: if SIGTERM were not honoured the call would return after
    // it, with exit code 137.
    kubelet
        .client
        .stop_container(&id, 30)
        .await
        .expect("StopContainer");
    let status = kubelet
        .client
        .runtime_service()
        .container_status(proto::ContainerStatusRequest {
            container_id: id.clone(),
            verbose: false,
        })
        .await
        .expect("ContainerStatus")
        .into_inner()
        .status
        .expect("status");
    assert_eq!(
        (status.exit_code, status.reason.as_str()),
        (0, "Completed"),
        "SIGTERM not honoured (137 = killed at the end of the grace period)"
    );
    let status = kubelet.client.container_status(&id).await.expect("status");
    assert_eq!(status.state, ContainerState::Exited);
    let listed = kubelet
        .client
        .list_containers(Some(&pod.uid))
        .await
        .expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].state, ContainerState::Exited);
    running.teardown().await.expect("teardown");
}

#[tokio::test]
async fn unknown_container_is_not_found() {
    let kubelet = Kubelet::from_env().await;
    let err = kubelet
        .client
        .container_status("0123456789abcdef-no-such-container")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, CriError::NotFound { id } if id == "0123456789abcdef-no-such-container"),
        "{err}"
    );
    let err = kubelet
        .client
        .update_container_resources(
            "0123456789abcdef-no-such-container",
            &LinuxResources::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, CriError::NotFound { .. }), "{err}");
}

#[tokio::test]
async fn missing_socket_gives_clear_error() {
    // Needs no containerd, but lives here so the message is checked with the real client setup.
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("containerd.sock");
    let err = CriClient::connect(&format!("unix://{}", sock.display()))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, CriError::Endpoint { .. }), "{msg}");
    assert!(msg.contains(&sock.display().to_string()), "{msg}");
    assert!(msg.contains("does not exist"), "{msg}");
    assert!(msg.contains("--container-runtime-endpoint"), "{msg}");
}
