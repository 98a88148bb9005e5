//! `legacy-resize-status = auto` end to end: the `resizelet run` binary (no legacy flag) against
//! the API-server double serving as kube-apiserver 1.32, which sets `status.resize: Proposed` on
//! every resize, with the real containerd and cgroups (`scripts/test.sh --test kubelet_config_e2e`).

mod support;

use std::process::{Command, Stdio};
use std::time::Instant;

use resizelet::core::pod_cgroup::Limit;
use serde_json::json;
use support::cluster::{resize_done, Cluster, DEADLINE, NODE};
use support::kubelet::{app, TestPod};

const MIB: i64 = 1 << 20;

/// `resizelet run` with only what a node install needs, its log in `log`; `extra` flags appended.
fn agent(cluster: &Cluster, log: &std::path::Path, extra: &[&str]) -> std::process::Child {
    let admin = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap();
    Command::new(env!("CARGO_BIN_EXE_resizelet"))
        .args(["run", "--node-name", NODE, "--kubeconfig"])
        .arg(&cluster.kubeconfig)
        .arg("--container-runtime-endpoint")
        .arg(support::cri_endpoint())
        .arg("--root-dir")
        .arg(cluster.dir.path().join("state"))
        .args(["--admin-address", &admin.to_string()])
        // no kubelet config unless the test gives one (never the host's)
        .args(if extra.contains(&"--kubelet-config") {
            &[][..]
        } else {
            &["--kubelet-config", ""][..]
        })
        .args(extra)
        .env_remove("RESIZELET_LEGACY_RESIZE_STATUS")
        .env("RESIZELET_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("spawn resizelet run")
}

/// Prints the agent's log when the test fails.
struct ShowLogOnPanic(std::path::PathBuf);

impl Drop for ShowLogOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "agent log:\n{}",
                std::fs::read_to_string(&self.0).unwrap_or_default()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_1_32_api_server_status_resize_is_cleared_in_the_write_that_reports_done() {
    let cluster = Cluster::start("2", "4Gi").await;
    cluster.api.set_minor_version(32);
    let log = cluster.dir.path().join("agent.log");
    let extra: Vec<String> = std::env::var("RESIZELET_TEST_EXTRA_RUN_FLAGS")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let mut child = agent(&cluster, &log, &extra);
    let _show = ShowLogOnPanic(log.clone());

    let pod = TestPod::burstable("legacy", [app((100, 200), (64, 128))]);
    let running = cluster.run_pod(pod).await;
    let pod = running.pod.clone();
    cluster.wait_resize_fields(&pod).await;

    let mut feed = cluster.api.watch_changes();
    // the user's quantities, as `kubectl patch --subresource resize` sends them
    let patch = json!({"spec": {"containers": [{"name": "app", "resources": {
        "requests": {"cpu": "300m", "memory": "96Mi"},
        "limits": {"cpu": "0.5", "memory": "192Mi"}}}]}});
    cluster.resize_raw(&pod, &patch, "resize accepted");
    let proposed = cluster.pod(&pod);
    assert_eq!(
        proposed["status"]["resize"], "Proposed",
        "the 1.32 double sets Proposed on /resize"
    );

    // the first stored version of the pod that a client calls done
    let deadline = Instant::now() + DEADLINE;
    let done = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ev = tokio::time::timeout(left, feed.recv())
            .await
            .expect("resize done within the deadline")
            .expect("watch feed");
        if ev.kind == "Pod"
            && ev.object["metadata"]["name"] == pod.name.as_str()
            && resize_done(&ev.object)
        {
            break ev.object;
        }
    };
    assert!(
        done["status"]["resize"].is_null(),
        "status.resize must be cleared in the same write that reports the resize done, got {}",
        done["status"]["resize"]
    );
    // quantities written in the form the spec has them (as the kubelet copies the spec)
    let st = &done["status"]["containerStatuses"][0];
    assert_eq!(st["allocatedResources"]["memory"], "96Mi");
    assert_eq!(st["allocatedResources"]["cpu"], "300m");
    assert_eq!(st["resources"]["limits"]["memory"], "192Mi");
    assert_eq!(st["resources"]["limits"]["cpu"], "500m");
    let app = running.container_cgroup_values("app");
    assert_eq!(app.memory_limit, Some(Limit::Value(192 * MIB)));

    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("legacy status.resize: written (auto: API server v1.32.0-double (<= 1.32)"),
        "the start-up log says which and why:\n{text}"
    );
    assert!(
        !text.contains('\x1b'),
        "no colour codes in a redirected log"
    );
    assert!(
        text.contains("resize accepted") && text.contains("resize completed"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kubelet_config_with_the_gate_on_makes_resizelet_stand_down() {
    let cluster = Cluster::start("2", "4Gi").await;
    let log = cluster.dir.path().join("agent.log");
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/kubelet/gate-on.yaml");
    let mut child = agent(
        &cluster,
        &log,
        &["--kubelet-config", fixture.to_str().unwrap()],
    );
    let _show = ShowLogOnPanic(log.clone());
    // the Node says kubelet v1.32.3 (gate alpha, off by default): only the file tells
    let event = support::eventually("a ResizeletStandingDown event", DEADLINE, || async {
        cluster
            .api
            .events()
            .into_iter()
            .find(|e| e["reason"] == "ResizeletStandingDown")
    })
    .await;
    let note = event["note"].as_str().unwrap_or_default();
    assert!(
        note.contains("v1.32.3 has InPlacePodVerticalScaling: true in its configuration file"),
        "{event}"
    );
    let _ = child.kill();
    let _ = child.wait();
}
