//! The systemd cgroup driver for real: systemd as PID 1 (`scripts/vm-test.sh --mode systemd`,
//! `RESIZELET_VM_GUEST=systemd`), containerd with `SystemdCgroup = true`, pod slices created by the
//! kubelet double as transient units over D-Bus, and resizelet's engine enacting pod-level changes
//! through `SystemdCgroupFs` (unit properties over D-Bus, then the files), and end to end
//! `resizelet run --cgroup-driver systemd` resizing through the API-server double's `/resize`. The
//! unit properties and the v2 files are read back before and after `systemctl daemon-reload`.
//! Elsewhere every test says it is skipped and passes.

mod support;

use std::sync::Arc;
use std::time::Duration;

use resizelet::cgroup::fs::RealCgroupFs;
use resizelet::cgroup::systemd::{DbusSystemd, SystemdCgroupFs};
use resizelet::core::node::{CgroupDriver, CgroupVersion};
use resizelet::core::resources::PodSpec;
use resizelet::engine::Engine;
use resizelet::testing::enact;
use support::cluster::{condition, resize_done, Agent, Cluster};
use support::engine::{guest_engine, resized, seed, GuestEngine};
use support::eventually;
use support::kubelet::{app, guaranteed, Kubelet, RunningPod, TestContainer, TestPod};
use support::read_trimmed;
use support::systemd::{daemon_reload, pod_slices, Systemd};

const MIB: i64 = 1 << 20;

fn in_guest() -> bool {
    support::vm_guest("systemd", "systemd (PID 1 on cgroup v2)")
}

async fn systemd_engine() -> GuestEngine {
    // TCG on a shared host: a CRI call can take seconds (the agent's default deadline is 2 s)
    let files = RealCgroupFs::v2("/sys/fs/cgroup", CgroupDriver::Systemd);
    let bus = DbusSystemd::connect_system(Duration::from_secs(10)).expect("system bus");
    let cgroups = SystemdCgroupFs::new(files, bus, Vec::new());
    let node = resizelet::host::node_config(CgroupVersion::V2, CgroupDriver::Systemd, None)
        .expect("node config");
    guest_engine(Arc::new(cgroups), node, Duration::from_secs(30)).await
}

/// (CPUWeight, CPUQuotaPerSecUSec, MemoryMax) of the pod slice over D-Bus and
/// (cpu.weight, cpu.max, memory.max) of its cgroup.
type State = ((u64, u64, u64), (String, String, String));

fn pod_state(sd: &Systemd, r: &RunningPod) -> State {
    let unit = pod_slices(&r.pod).pop().unwrap();
    let dir = r.pod_cgroup_dir("cpu");
    (
        (
            sd.slice_u64(&unit, "CPUWeight"),
            sd.slice_u64(&unit, "CPUQuotaPerSecUSec"),
            sd.slice_u64(&unit, "MemoryMax"),
        ),
        (
            read_trimmed(&dir, "cpu.weight"),
            read_trimmed(&dir, "cpu.max"),
            read_trimmed(&dir, "memory.max"),
        ),
    )
}

fn expect(props: (u64, u64, u64), files: (u64, &str, i64)) -> State {
    (
        props,
        (
            files.0.to_string(),
            files.1.to_string(),
            files.2.to_string(),
        ),
    )
}

/// The pod's slice with the engine that resizes it.
struct Slice<'a> {
    sd: &'a Systemd,
    engine: &'a Engine,
    running: &'a RunningPod,
}

impl Slice<'_> {
    /// Resizes the pod from `spec` to its one container `app`; asserts the slice's state
    /// ([`pod_state`]) is `want` and the container's `memory.max` is `app`'s memory limit, then
    /// that the slice's state is still `want` after `systemctl daemon-reload`. Returns the new
    /// spec.
    async fn resize_and_reload(&self, spec: &PodSpec, app: TestContainer, want: State) -> PodSpec {
        let memory = app.memory_limit.unwrap().to_string();
        let desired = resized(spec, &[app]);
        enact(self.engine, &desired).await;
        let scope = self.running.container_cgroup_dir("app", "cpu");
        assert_eq!(pod_state(self.sd, self.running), want);
        assert_eq!(read_trimmed(&scope, "memory.max"), memory);
        daemon_reload();
        assert_eq!(
            pod_state(self.sd, self.running),
            want,
            "after daemon-reload"
        );
        desired
    }
}

#[tokio::test]
async fn pod_slice_resize_survives_daemon_reload() {
    if !in_guest() {
        return;
    }
    let kubelet = Kubelet::from_env().await;
    assert!(
        kubelet.mounts.systemd && kubelet.mounts.v2,
        "systemd driver on cgroup v2"
    );
    let sd = Systemd::connect();
    let pod = TestPod::guaranteed("sd-guaranteed", [guaranteed("app", 250, 64)]);
    let running = kubelet.run_pod(&pod).await;
    // the kubelet's slice: weight(256) = 10, 250 ms per second, 64 MiB
    assert_eq!(
        pod_state(&sd, &running),
        expect((10, 250_000, 64 << 20), (10, "25000 100000", 64 * MIB))
    );
    let app = running.container_cgroup_dir("app", "cpu");
    assert!(app.ends_with(format!(
        "cri-containerd-{}.scope",
        running.container_id("app")
    )));

    let engine = systemd_engine().await;
    let (spec, _) = seed(&engine, &pod).await;
    let slice = Slice {
        sd: &sd,
        engine: &engine,
        running: &running,
    };

    // increase: 325m → shares 332 → weight 13; 32.5 ms rounds up to 33 ms (systemd keeps whole
    // 10 ms per second, and resizelet writes the rounded quota to the file too); 96 MiB
    let grown = expect((13, 330_000, 96 << 20), (13, "33000 100000", 96 * MIB));
    let spec = slice
        .resize_and_reload(&spec, guaranteed("app", 325, 96), grown)
        .await;

    // what resizelet did before: a file-only write is put back by systemd on daemon-reload
    std::fs::write(
        running.pod_cgroup_dir("memory").join("memory.max"),
        (200 * MIB).to_string(),
    )
    .unwrap();
    daemon_reload();
    assert_eq!(
        read_trimmed(&running.pod_cgroup_dir("memory"), "memory.max"),
        (96 * MIB).to_string(),
        "systemd restores the unit's MemoryMax over a file-only write"
    );

    // decrease: 200m → shares 204 → weight 8; 20 ms; 48 MiB
    let shrunk = expect((8, 200_000, 48 << 20), (8, "20000 100000", 48 * MIB));
    slice
        .resize_and_reload(&spec, guaranteed("app", 200, 48), shrunk)
        .await;
    eprintln!(
        "container scope after the decrease and daemon-reload: cpu.weight {} cpu.max {:?} memory.max {}",
        read_trimmed(&app, "cpu.weight"),
        read_trimmed(&app, "cpu.max"),
        read_trimmed(&app, "memory.max")
    );
    running.teardown().await.expect("teardown");
}

/// A deadline for the agent's work under TCG (a CRI call can take seconds).
const GUEST_DEADLINE: Duration = Duration::from_secs(180);

/// (cpu.weight, cpu.max, memory.max) of the container `app`'s scope.
fn scope_files(r: &RunningPod) -> (String, String, String) {
    let scope = r.container_cgroup_dir("app", "cpu");
    let read = |f| read_trimmed(&scope, f);
    (read("cpu.weight"), read("cpu.max"), read("memory.max"))
}

/// What a resize of the pod `p` leaves behind: the slice's [`State`], its `CPUQuotaPeriodUSec`,
/// the container scope's files, and `app`'s status in the double (limits cpu/memory, request
/// cpu) with the resize conditions present.
type Left = (State, u64, (String, String, String), [String; 3], [bool; 2]);

fn after_resize(cluster: &Cluster, sd: &Systemd, r: &RunningPod) -> Left {
    let unit = pod_slices(&r.pod).pop().unwrap();
    let api = cluster.pod(&r.pod);
    let st = &api["status"]["containerStatuses"][0]["resources"];
    let conditions =
        ["PodResizePending", "PodResizeInProgress"].map(|c| condition(&api, c).is_some());
    (
        pod_state(sd, r),
        sd.slice_u64(&unit, "CPUQuotaPeriodUSec"),
        scope_files(r),
        [
            &st["limits"]["cpu"],
            &st["limits"]["memory"],
            &st["requests"]["cpu"],
        ]
        .map(|v| v.as_str().unwrap_or("-").to_string()),
        conditions,
    )
}

/// A resize of the e2e: `app` with cpu (request, limit) millicores (limits in whole 10 ms per
/// second) and memory (request, limit) MiB, and what it leaves behind ([`after_resize`]) when
/// shares(request) is `weight`: the same weight, quota and memory in the unit, the slice's files
/// and the scope's, the kubelet's 100 ms period, the status with the new values, no conditions.
fn step(cpu: (i64, i64), memory_mib: (i64, i64), weight: u64) -> (TestContainer, Left) {
    let cpu_max = format!("{} 100000", cpu.1 * 100);
    let memory = memory_mib.1 << 20;
    let files = (weight.to_string(), cpu_max, memory.to_string());
    let props = (weight, cpu.1 as u64 * 1000, memory as u64);
    let status = [
        format!("{}m", cpu.1),
        format!("{}Mi", memory_mib.1),
        format!("{}m", cpu.0),
    ];
    let left = (
        (props, files.clone()),
        100_000,
        files,
        status,
        [false, false],
    );
    (app(cpu, memory_mib), left)
}

/// End to end on a systemd node: the API-server double, containerd with `SystemdCgroup = true`
/// and `resizelet run --cgroup-driver systemd`; a Burstable pod grows and shrinks (cpu and memory)
/// through `/resize`. After each resize the pod slice's unit properties are the kubelet's (§11.3:
/// `CPUWeight`, `CPUQuotaPerSecUSec`, `CPUQuotaPeriodUSec`, `MemoryMax`), the files agree, the
/// container's scope and the API status follow, and `systemctl daemon-reload` reverts nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_run_resizes_a_burstable_pod_slice() {
    if !in_guest() {
        return;
    }
    let cluster = Cluster::start("2", "4Gi").await;
    assert_eq!(cluster.cgroup_driver(), "systemd");
    let state = cluster.dir.path().join("state");
    let _agent = Agent::start_with(&cluster, &state, &["--cri-timeout-ms", "30000"]);
    let run = cluster
        .run_pod(TestPod::burstable("sd-e2e", [app((200, 400), (64, 128))]))
        .await;
    let pod = run.pod.clone();
    let sd = Systemd::connect();
    let unit = pod_slices(&pod).pop().unwrap();
    cluster.wait_resize_fields(&pod).await;
    // the kubelet's slice: shares(200m) = 204 → weight 8, 400 ms per second, 128 MiB
    assert_eq!(
        pod_state(&sd, &run),
        expect((8, 400_000, 128 << 20), (8, "40000 100000", 128 * MIB))
    );
    // Another period on the unit (systemd rewrites cpu.max): only resizelet's own
    // CPUQuotaPeriodUSec (sent because systemd 252 ≥ 242) puts the kubelet's 100 ms back.
    sd.set_u64(&unit, "CPUQuotaPeriodUSec", 200_000);
    let dir = run.pod_cgroup_dir("cpu");
    eventually(
        "systemd applies the 200 ms period",
        GUEST_DEADLINE,
        || async { (read_trimmed(&dir, "cpu.max") == "80000 200000").then_some(()) },
    )
    .await;

    let steps = [
        // up: shares(300m) = 307 → weight 12, 600 ms per second, 192 MiB
        step((300, 600), (96, 192), 12),
        // down: shares(100m) = 102 → weight 4, 200 ms per second, 96 MiB
        step((100, 200), (48, 96), 4),
    ];
    for (i, (app, want)) in steps.into_iter().enumerate() {
        cluster
            .resize(&pod, &[app])
            .await
            .expect("resize accepted by the API server");
        eventually(
            "resize completed in the API status",
            GUEST_DEADLINE,
            || async { resize_done(&cluster.pod(&pod)).then_some(()) },
        )
        .await;
        assert_eq!(after_resize(&cluster, &sd, &run), want, "resize {i}");
        daemon_reload();
        assert_eq!(
            after_resize(&cluster, &sd, &run),
            want,
            "resize {i}, after daemon-reload"
        );
        let done = i + 1;
        eventually(
            "a ResizeCompleted event per resize",
            GUEST_DEADLINE,
            || async {
                let reasons = cluster.event_reasons(&pod);
                (reasons.iter().filter(|r| *r == "ResizeCompleted").count() == done).then_some(())
            },
        )
        .await;
    }
    run.teardown().await.expect("teardown");
}

#[test]
fn resizelet_check_reports_cgroup_v2_and_systemd() {
    if !in_guest() {
        return;
    }
    let text = support::check_v2("systemd");
    assert!(text.contains("\nsystemd: 252"), "{text}");
}
