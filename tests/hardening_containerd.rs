//! Issue 14 through the real binary on the real containerd (`scripts/test.sh --test
//! hardening_containerd`): `resizelet resize` with hostile state directories and wrong
//! containers, and `resizelet run` against the API-server double with a missing cgroup root
//! and a pod spec it cannot use.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use support::cluster::{condition, Agent, Cluster, DEADLINE};
use support::engine::{pod_spec, resized, start_with_resize, ResizeInputs};
use support::eventually;
use support::kubelet::{app, sized, start_pod, TestPod};

const MIB: i64 = 1 << 20;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Row 8: a resize naming a container the pod does not have (or leaving one out) is refused:
/// nothing checkpointed for the pod, its cgroup untouched.
#[tokio::test]
async fn resize_refuses_unknown_and_missing_containers() {
    let side = sized("side", (100, 200), (32, 64));
    let pod = TestPod::burstable("wrong-containers", [app((100, 200), (32, 64)), side]);
    let running = start_pod(&pod).await;
    let before = running.pod_cgroup_values();
    let inputs = ResizeInputs::default();
    let spec = pod_spec(&pod);

    let mut unknown = spec.clone();
    unknown.containers[1].name = "ghost".into();
    unknown.containers[1].resources = resized(&spec, &[app((900, 900), (64, 128))]).containers[0]
        .resources
        .clone();
    let mut missing = resized(&spec, &[app((300, 400), (32, 128))]);
    missing.containers.truncate(1);
    for (desired, want) in [
        (
            &unknown,
            "container \"ghost\" is not running in the pod (running: app, side)".to_string(),
        ),
        (
            &missing,
            "container \"side\" runs in the pod but the pod file does not have it".to_string(),
        ),
    ] {
        inputs.write_pod(desired);
        let out = inputs.cmd().output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
        assert!(text(&out.stderr).contains(&want), "{}", text(&out.stderr));
        assert_eq!(running.pod_cgroup_values(), before, "pod cgroup rewritten");
        let allocated = inputs.state.join("allocated_pods_state.d").join(&pod.uid);
        assert!(!allocated.exists(), "a refused resize was checkpointed");
    }
    running.teardown().await.expect("teardown");
}

/// Rows 1, 2 and 9: state directories left group/world-writable, a symlink planted at the
/// temp path, and an oversized file — through `resizelet resize`, under a 400 MB address-space
/// limit (the memory-limited DaemonSet the issue crash-looped).
#[tokio::test]
async fn resize_with_hostile_state_files_never_writes_through_a_link_nor_reads_a_huge_file() {
    let (running, inputs) = start_with_resize("hostile-state").await;
    let pod = &running.pod;
    let (dir, state) = (inputs.dir.path(), &inputs.state);
    let allocated_dir = state.join("allocated_pods_state.d");
    std::fs::create_dir_all(&allocated_dir).unwrap();
    std::fs::create_dir_all(state.join("actuated_pods_state.d")).unwrap();
    for d in [state, &allocated_dir] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let victim = dir.join("victim");
    std::fs::write(&victim, b"precious").unwrap();
    std::os::unix::fs::symlink(&victim, allocated_dir.join(format!(".{}.tmp", pod.uid))).unwrap();
    // 600 MiB (sparse): more than the whole address space allowed below
    let big = allocated_dir.join("00000000-0000-4000-8000-00000000b16f");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(600 * MIB as u64)
        .unwrap();

    let limited = |cmd: Command| {
        let mut p = Command::new("prlimit");
        p.arg("--as=400000000")
            .arg(cmd.get_program())
            .args(cmd.get_args())
            .env_remove("RESIZELET_ALLOCATABLE");
        p
    };
    let out = limited(inputs.cmd()).output().unwrap();
    let e = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{e}");
    assert!(
        e.contains("bytes, above the limit of 4194304 bytes; not read); moved to"),
        "{e}"
    );
    assert!(
        !e.contains("out of memory") && !e.contains("delete it"),
        "{e}"
    );
    assert!(!big.exists(), "the oversized file was left in place");
    for d in [state, &allocated_dir] {
        let mode = std::fs::metadata(d).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o755, "{} left writable", d.display());
    }
    assert!(
        e.contains("group/world-writable (mode 0777); set to 0755"),
        "{e}"
    );

    // the restart after the quarantine: warned about, then the resize goes through
    let out = limited(inputs.cmd()).output().unwrap();
    let e = text(&out.stderr);
    assert!(out.status.success(), "{}\n{e}", text(&out.stdout));
    assert!(
        e.contains("a quarantined checkpoint of this pod is kept aside"),
        "{e}"
    );
    assert_eq!(
        std::fs::read(&victim).unwrap(),
        b"precious",
        "written through the link"
    );
    let pod_checkpoint = allocated_dir.join(&pod.uid);
    let meta = std::fs::symlink_metadata(&pod_checkpoint).unwrap();
    assert!(
        meta.file_type().is_file(),
        "the pod's checkpoint is not a regular file"
    );
    assert_eq!(
        running.pod_cgroup_values().memory_limit,
        Some(resizelet::core::plan::Limit::Value(128 * MIB))
    );
    running.teardown().await.expect("teardown");
}

fn start_agent(cluster: &Cluster, state: &Path, cgroup_root: &str) -> Agent {
    Agent::start_on(cluster, state, cgroup_root, &[])
}

async fn readyz(agent: &Agent) -> Option<(u16, String)> {
    resizelet::admin::get(&agent.admin, "/readyz").await.ok()
}

/// Row 7: a `--cgroup-root` that does not exist keeps `/readyz` failing, naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_names_a_missing_cgroup_root() {
    let cluster = Cluster::start("2", "4Gi").await;
    let state = cluster.dir.path().join("state");
    let agent = start_agent(&cluster, &state, "/nonexistent/cg");
    let (code, body) = eventually("the watches synced", DEADLINE, || async {
        readyz(&agent)
            .await
            .filter(|(_, b)| !b.contains("not synced"))
    })
    .await;
    assert_eq!(code, 503, "{body}");
    assert!(
        body.contains("cgroup hierarchy /nonexistent/cg/") && body.contains("is missing"),
        "{body}"
    );
    let good = start_agent(
        &cluster,
        &cluster.dir.path().join("state2"),
        "/sys/fs/cgroup",
    );
    eventually(
        "the agent with the real cgroup root ready",
        DEADLINE,
        || async { readyz(&good).await.filter(|(c, _)| *c == 200) },
    )
    .await;
}

/// Rows 5 and 10: a spec quantity resizelet cannot parse gets `PodResizePending{Infeasible}`
/// naming the field and a `ResizeInfeasible` event, and across an agent restart the pod's
/// checkpoints are kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unusable_spec_is_reported_and_its_checkpoints_survive_a_restart() {
    let cluster = Cluster::start("2", "4Gi").await;
    let state = cluster.dir.path().join("state");
    let mut agent = start_agent(&cluster, &state, "/sys/fs/cgroup");
    let pod = TestPod::burstable("unusable", [app((100, 200), (32, 64))]);
    let running = cluster.run_pod(pod).await;
    let pod = running.pod.clone();
    cluster.wait_resize_fields(&pod).await;
    let files = [
        state.join("allocated_pods_state.d").join(&pod.uid),
        state.join("actuated_pods_state.d").join(&pod.uid),
    ];
    for f in &files {
        assert!(f.exists(), "{} not checkpointed", f.display());
    }
    // the API server accepts it (apimachinery saturates; the request is not above its limit,
    // which `validateResourceRequirements` would refuse); resizelet cannot represent it
    let patch = serde_json::json!({"spec": {"containers": [{"name": "app",
        "resources": {"requests": {"cpu": "99999999999999Ei", "memory": "32Mi"},
                      "limits": {"cpu": "99999999999999Ei", "memory": "64Mi"}}}]}});
    cluster.resize_raw(&pod, &patch, "resize accepted by the API");
    let reported = eventually("PodResizePending naming the field", DEADLINE, || async {
        let p = cluster.pod(&pod);
        condition(&p, "PodResizePending")
            .filter(|c| c["reason"] == "Infeasible")
            .cloned()
            .map(|c| (c, p))
    })
    .await;
    let (cond, p) = reported;
    let msg = cond["message"].as_str().unwrap();
    assert!(
        msg.contains("container app: requests cpu=\"99999999999999Ei\""),
        "{msg}"
    );
    assert_eq!(cond["observedGeneration"], p["metadata"]["generation"]);
    assert_eq!(
        p["status"]["observedGeneration"],
        p["metadata"]["generation"]
    );
    eventually("a ResizeInfeasible event", DEADLINE, || async {
        cluster
            .event_reasons(&pod)
            .iter()
            .any(|r| r == "ResizeInfeasible")
            .then_some(())
    })
    .await;

    agent.kill();
    let agent = start_agent(&cluster, &state, "/sys/fs/cgroup");
    eventually("the restarted agent ready", DEADLINE, || async {
        readyz(&agent).await.filter(|(c, _)| *c == 200)
    })
    .await;
    // ready = the relist was handled (a pod it took for gone is forgotten before readiness)
    for f in &files {
        assert!(f.exists(), "{} deleted after the restart", f.display());
    }
    drop(agent);
    running.teardown().await.expect("teardown");
}

/// Row 3: a pod cgroup directory under `--cgroup-root` that is a symlink is never written
/// through, via `resizelet resize` (the pod runs on the real containerd; its cgroups are
/// mirrored under a private `--cgroup-root` whose pod directories are links elsewhere).
#[tokio::test]
async fn resize_never_writes_through_a_symlinked_pod_cgroup() {
    use resizelet::core::node::CgroupVersion;
    let (running, inputs) = start_with_resize("symlinked-cgroup").await;
    let pod = &running.pod;
    let root = inputs.dir.path().join("cgroup");
    let layout = resizelet::cgroup::detect::detect_host().unwrap();
    let files: &[(&str, &str)] = match layout.version {
        CgroupVersion::V1 => &[
            ("cpu.shares", "102"),
            ("cpu.cfs_quota_us", "20000"),
            ("cpu.cfs_period_us", "100000"),
            ("memory.limit_in_bytes", "67108864"),
            ("memory.usage_in_bytes", "4096"),
        ],
        CgroupVersion::V2 => &[
            ("cpu.weight", "4"),
            ("cpu.max", "20000 100000"),
            ("memory.max", "67108864"),
            ("memory.current", "4096"),
        ],
    };
    let mounts = [
        &layout.cpu_mount,
        &layout.memory_mount,
        &layout.unified_mount,
    ];
    let mut targets = Vec::new();
    for mount in mounts.into_iter().flatten() {
        let rel = mount.strip_prefix("/sys/fs/cgroup").unwrap();
        let target = inputs.dir.path().join("elsewhere").join(rel);
        std::fs::create_dir_all(&target).unwrap();
        for (f, v) in files {
            std::fs::write(target.join(f), v).unwrap();
        }
        let parent = root.join(rel).join("kubepods/burstable");
        std::fs::create_dir_all(&parent).unwrap();
        std::os::unix::fs::symlink(&target, parent.join(format!("pod{}", pod.uid))).unwrap();
        targets.push(target);
    }
    let out = inputs
        .cmd()
        .arg("--cgroup-root")
        .arg(&root)
        .output()
        .unwrap();
    let said = format!("{}\n{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{said}");
    let want = format!("refusing {}/", root.display());
    assert!(
        said.contains(&want) && said.contains("a symlink below the cgroup mount"),
        "{said}"
    );
    for target in &targets {
        for (f, v) in files {
            assert_eq!(
                std::fs::read_to_string(target.join(f)).unwrap(),
                *v,
                "{} written through the link",
                target.join(f).display()
            );
        }
    }
    running.teardown().await.expect("teardown");
}
