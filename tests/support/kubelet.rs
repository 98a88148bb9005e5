//! A "kubelet double": creates pods on a real containerd the way the kubelet does (pod cgroups
//! with the §11.2 values, `RunPodSandbox` with the kubelet's labels and cgroup parent,
//! `CreateContainer` with the §10 resources, `StartContainer`) and tears them down again, also when
//! a test fails (Drop guard). cgroupfs driver, on cgroup v1 (hybrid, the CI host) or pure cgroup v2
//! (the `scripts/vm-test.sh` guest).
//!
//! The §9–§11 formulas are re-implemented here on purpose, independently of `resizelet::core`, so
//! the integration tests check the core against a second reading of the spec.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use resizelet::core::plan::{Limit, PodCgroupValues};
use resizelet::core::resources::QosClass;
use resizelet::core::runtime::LinuxResources;
use resizelet::cri::client::CriClient;
use resizelet::cri::convert::{
    linux_resources_to_proto, LABEL_CONTAINER_NAME, LABEL_POD_NAME, LABEL_POD_NAMESPACE,
    LABEL_POD_UID,
};
use resizelet::cri::proto;

/// CFS period the kubelet uses unless `CustomCPUCFSQuotaPeriod` is on (spec §9).
pub const CFS_PERIOD_US: i64 = 100_000;
/// Sleep "forever", exit 0 on SIGTERM (sh as pid 1 only reacts to trapped signals).
pub const SLEEP_COMMAND: [&str; 3] = [
    "/bin/sh",
    "-c",
    "trap 'exit 0' TERM; sleep 2147483647 & wait",
];
const CGROUP_MOUNT_ROOT: &str = "/sys/fs/cgroup";

/// A container of a test pod: cpu in millicores, memory in bytes; `None` = key absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TestContainer {
    pub name: String,
    pub cpu_request: Option<i64>,
    pub cpu_limit: Option<i64>,
    pub memory_request: Option<i64>,
    pub memory_limit: Option<i64>,
    /// Command to run instead of [`SLEEP_COMMAND`].
    pub command: Option<Vec<String>>,
}

impl TestContainer {
    pub fn new(name: &str) -> Self {
        TestContainer {
            name: name.to_string(),
            ..Default::default()
        }
    }
    pub fn cpu(mut self, request: Option<i64>, limit: Option<i64>) -> Self {
        self.cpu_request = request;
        self.cpu_limit = limit;
        self
    }
    pub fn memory(mut self, request: Option<i64>, limit: Option<i64>) -> Self {
        self.memory_request = request;
        self.memory_limit = limit;
        self
    }
    /// Runs `sh -c script` (the script should end by sleeping, and exit on SIGTERM).
    pub fn shell(mut self, script: &str) -> Self {
        self.command = Some(vec!["/bin/sh".into(), "-c".into(), script.into()]);
        self
    }
}

/// A container `name` asking for (request, limit) millicores and (request, limit) MiB.
pub fn sized(name: &str, cpu: (i64, i64), memory_mib: (i64, i64)) -> TestContainer {
    TestContainer::new(name)
        .cpu(Some(cpu.0), Some(cpu.1))
        .memory(Some(memory_mib.0 << 20), Some(memory_mib.1 << 20))
}

/// The container "app" of most tests: [`sized`].
pub fn app(cpu: (i64, i64), memory_mib: (i64, i64)) -> TestContainer {
    sized("app", cpu, memory_mib)
}

/// The end-to-end tests' Burstable pair, (before, after) a resize: c1 at 100m/300m cpu and
/// 32/128 MiB grows to 300m/500m and 32/192 MiB while c2 at 300m/600m and 64/256 MiB shrinks to
/// 100m/200m and 64/128 MiB.
pub fn grow_and_shrink() -> ([TestContainer; 2], [TestContainer; 2]) {
    let c1 = sized("c1", (100, 300), (32, 128));
    let c2 = sized("c2", (300, 600), (64, 256));
    let grown = sized("c1", (300, 500), (32, 192));
    let shrunk = sized("c2", (100, 200), (64, 128));
    ([c1, c2], [grown, shrunk])
}

/// A container `name` with request = limit: `cpu` millicores and `memory_mib` MiB.
pub fn guaranteed(name: &str, cpu: i64, memory_mib: i64) -> TestContainer {
    sized(name, (cpu, cpu), (memory_mib, memory_mib))
}

/// A container `name` with requests only (no limits): `cpu` millicores and `memory_mib` MiB.
pub fn requests(name: &str, cpu: i64, memory_mib: i64) -> TestContainer {
    TestContainer::new(name)
        .cpu(Some(cpu), None)
        .memory(Some(memory_mib << 20), None)
}

/// The pod the double creates (regular containers only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestPod {
    pub uid: String,
    pub name: String,
    pub namespace: String,
    pub qos: QosClass,
    pub containers: Vec<TestContainer>,
    /// `spec.priority` of the API pod.
    pub priority: Option<i32>,
}

impl TestPod {
    /// A pod with a fresh UID in namespace `resizelet-test`.
    pub fn new(name: &str, qos: QosClass, containers: Vec<TestContainer>) -> Self {
        TestPod {
            uid: super::unique_uid(),
            name: name.to_string(),
            namespace: "resizelet-test".to_string(),
            qos,
            containers,
            priority: None,
        }
    }

    /// [`TestPod::new`] for a Guaranteed pod.
    pub fn guaranteed(name: &str, containers: impl IntoIterator<Item = TestContainer>) -> Self {
        Self::new(name, QosClass::Guaranteed, containers.into_iter().collect())
    }

    /// [`TestPod::new`] for a Burstable pod.
    pub fn burstable(name: &str, containers: impl IntoIterator<Item = TestContainer>) -> Self {
        Self::new(name, QosClass::Burstable, containers.into_iter().collect())
    }

    /// [`TestPod::new`] for a BestEffort pod.
    pub fn best_effort(name: &str, containers: impl IntoIterator<Item = TestContainer>) -> Self {
        Self::new(name, QosClass::BestEffort, containers.into_iter().collect())
    }

    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = Some(priority);
        self
    }

    /// Pod cgroup name (spec §11.4, cgroupfs): `/kubepods[/burstable|/besteffort]/pod<uid>`.
    pub fn cgroup_parent(&self) -> String {
        match self.qos {
            QosClass::Guaranteed => format!("/kubepods/pod{}", self.uid),
            QosClass::Burstable => format!("/kubepods/burstable/pod{}", self.uid),
            QosClass::BestEffort => format!("/kubepods/besteffort/pod{}", self.uid),
        }
    }

    pub fn container(&self, name: &str) -> &TestContainer {
        self.containers
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("pod {} has no container {name}", self.name))
    }
}

/// spec §9: cpu request m → shares.
pub fn milli_cpu_to_shares(m: i64) -> i64 {
    if m == 0 {
        return 2;
    }
    (m * 1024 / 1000).clamp(2, 262_144)
}

/// spec §9: cpu limit m → quota (µs) for period `period`.
pub fn milli_cpu_to_quota(m: i64, period: i64) -> i64 {
    if m == 0 {
        return 0;
    }
    (m * period / 1000).max(1000)
}

/// spec §10 `oom_score_adj` (no sidecars, not node-critical).
pub fn oom_score_adj(qos: QosClass, memory_request: i64, machine_memory: i64) -> i64 {
    match qos {
        QosClass::Guaranteed => -997,
        QosClass::BestEffort => 1000,
        QosClass::Burstable => {
            let adj = 1000 - 1000 * memory_request / machine_memory;
            if adj < 3 {
                3
            } else if adj >= 1000 {
                999
            } else {
                adj
            }
        }
    }
}

/// Host facts the §10 values depend on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFacts {
    pub machine_memory: i64,
    /// v1 swap controller present (`memory.memsw.limit_in_bytes`): swap limit = memory limit.
    pub swap_controller: bool,
    /// Host huge page sizes ("2MB", "1GB") — sent with 0 limits only if hugetlb is mounted.
    pub hugepage_sizes: Vec<String>,
}

impl HostFacts {
    pub fn detect(mounts: &CgroupMounts) -> Self {
        let meminfo = std::fs::read_to_string("/proc/meminfo").expect("read /proc/meminfo");
        let kib: i64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("MemTotal in /proc/meminfo");
        let swap_controller = mounts
            .dir("memory")
            .map(|d| d.join("memory.memsw.limit_in_bytes").exists())
            .unwrap_or(false);
        let mut hugepage_sizes = Vec::new();
        if mounts.dir("hugetlb").is_some() {
            if let Ok(rd) = std::fs::read_dir("/sys/kernel/mm/hugepages") {
                for e in rd.flatten() {
                    let n = e.file_name().to_string_lossy().into_owned();
                    if let Some(k) = n
                        .strip_prefix("hugepages-")
                        .and_then(|s| s.strip_suffix("kB"))
                        .and_then(|s| s.parse::<u64>().ok())
                    {
                        hugepage_sizes.push(if k >= 1 << 20 {
                            format!("{}GB", k >> 20)
                        } else if k >= 1 << 10 {
                            format!("{}MB", k >> 10)
                        } else {
                            format!("{k}KB")
                        });
                    }
                }
            }
            hugepage_sizes.sort();
        }
        HostFacts {
            machine_memory: kib * 1024,
            swap_controller,
            hugepage_sizes,
        }
    }
}

/// spec §10: the `LinuxContainerResources` the kubelet sends at creation (cgroup v1, cpuCFSQuota on,
/// swap behaviour NoSwap).
pub fn container_resources(pod: &TestPod, c: &TestContainer, host: &HostFacts) -> LinuxResources {
    let cpu_shares = match (c.cpu_request, c.cpu_limit) {
        (None, Some(limit)) => milli_cpu_to_shares(limit),
        (request, _) => milli_cpu_to_shares(request.unwrap_or(0)),
    };
    let memory_limit = c.memory_limit.unwrap_or(0);
    LinuxResources {
        cpu_period: CFS_PERIOD_US,
        cpu_quota: milli_cpu_to_quota(c.cpu_limit.unwrap_or(0), CFS_PERIOD_US),
        cpu_shares,
        memory_limit_in_bytes: memory_limit,
        oom_score_adj: oom_score_adj(pod.qos, c.memory_request.unwrap_or(0), host.machine_memory),
        hugepage_limits: host.hugepage_sizes.iter().map(|s| (s.clone(), 0)).collect(),
        unified: Default::default(),
        memory_swap_limit_in_bytes: if host.swap_controller {
            memory_limit
        } else {
            0
        },
    }
}

/// spec §11.1–§11.2: pod cgroup values (regular containers only, no overhead).
/// `None` = the kubelet does not set it (the cgroup keeps its default).
pub fn pod_cgroup_values(pod: &TestPod) -> PodCgroupValues {
    let sum =
        |f: fn(&TestContainer) -> Option<i64>| pod.containers.iter().filter_map(f).sum::<i64>();
    let cpu_declared = pod.containers.iter().all(|c| c.cpu_limit.is_some());
    let mem_declared = pod.containers.iter().all(|c| c.memory_limit.is_some());
    let shares = milli_cpu_to_shares(sum(|c| c.cpu_request)) as u64;
    let cpu_limit = Some(Limit::Value(milli_cpu_to_quota(
        sum(|c| c.cpu_limit),
        CFS_PERIOD_US,
    )));
    let memory_limit = Some(Limit::Value(sum(|c| c.memory_limit)));
    match pod.qos {
        QosClass::BestEffort => PodCgroupValues {
            cpu_shares: Some(2),
            ..Default::default()
        },
        QosClass::Guaranteed => PodCgroupValues {
            cpu_shares: Some(shares),
            cpu_quota: cpu_limit,
            cpu_period: Some(CFS_PERIOD_US as u64),
            memory_limit,
        },
        QosClass::Burstable => PodCgroupValues {
            cpu_shares: Some(shares),
            cpu_quota: cpu_limit.filter(|_| cpu_declared),
            cpu_period: cpu_declared.then_some(CFS_PERIOD_US as u64),
            memory_limit: memory_limit.filter(|_| mem_declared),
        },
    }
}

/// The mounted cgroup v1 hierarchies (from `/proc/self/mountinfo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupMounts {
    /// (mount point, controllers incl. `name=…`)
    pub hierarchies: Vec<(PathBuf, Vec<String>)>,
    /// The cgroup2 mount of a hybrid host (`/sys/fs/cgroup/unified`): runc also places containers
    /// there, below the same parent path, and leaves the pod directory behind.
    pub unified: Option<PathBuf>,
    /// Pure cgroup v2: `hierarchies` is the one unified mount with its `cgroup.controllers`.
    pub v2: bool,
    /// systemd driver (`RESIZELET_TEST_CGROUP_DRIVER=systemd`, the systemd guest): pod slices are
    /// transient units ([`super::systemd`]), container cgroups `cri-containerd-<id>.scope`.
    pub systemd: bool,
}

impl CgroupMounts {
    pub fn detect() -> Self {
        let info = std::fs::read_to_string("/proc/self/mountinfo").expect("read mountinfo");
        let mut hierarchies = Vec::new();
        let mut unified = None;
        for line in info.lines() {
            let Some((pre, post)) = line.split_once(" - ") else {
                continue;
            };
            let pre: Vec<&str> = pre.split(' ').collect();
            let post: Vec<&str> = post.split(' ').collect();
            if pre.len() < 5 || !Path::new(pre[4]).starts_with(CGROUP_MOUNT_ROOT) {
                continue;
            }
            let mount_point = PathBuf::from(pre[4]);
            if post.first() == Some(&"cgroup2") {
                unified = Some(mount_point);
                continue;
            }
            if post.first() != Some(&"cgroup") {
                continue;
            }
            let controllers = post
                .get(2)
                .map(|o| {
                    o.split(',')
                        .filter(|opt| {
                            !matches!(*opt, "rw" | "ro") && !opt.contains("release_agent")
                        })
                        .filter(|opt| !opt.starts_with("xattr") && *opt != "noprefix")
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            hierarchies.push((mount_point, controllers));
        }
        if hierarchies.is_empty() {
            let root = unified
                .filter(|u| u == Path::new(CGROUP_MOUNT_ROOT))
                .unwrap_or_else(|| {
                    panic!(
                        "neither cgroup v1 hierarchies nor cgroup2 mounted at {CGROUP_MOUNT_ROOT}"
                    )
                });
            let controllers = std::fs::read_to_string(root.join("cgroup.controllers"))
                .expect("read cgroup.controllers");
            let controllers = controllers.split_whitespace().map(str::to_string).collect();
            return CgroupMounts {
                hierarchies: vec![(root, controllers)],
                unified: None,
                v2: true,
                systemd: std::env::var("RESIZELET_TEST_CGROUP_DRIVER").as_deref() == Ok("systemd"),
            };
        }
        CgroupMounts {
            hierarchies,
            unified,
            v2: false,
            systemd: false,
        }
    }

    /// The pod cgroup below a hierarchy root (cgroupfs name, or the systemd slice chain).
    pub fn pod_rel(&self, pod: &TestPod) -> String {
        if self.systemd {
            super::systemd::pod_slice_path(pod)
        } else {
            pod.cgroup_parent()
        }
    }

    /// The `cgroup_parent` the kubelet sends to the runtime: the cgroupfs path, or the pod's slice
    /// name for the systemd driver.
    pub fn cgroup_parent(&self, pod: &TestPod) -> String {
        if self.systemd {
            super::systemd::pod_slices(pod).pop().expect("pod slice")
        } else {
            pod.cgroup_parent()
        }
    }

    /// `rel` (a pod cgroup, see [`CgroupMounts::pod_rel`]) in the hierarchy of `controller`.
    pub fn pod_dir(&self, controller: &str, rel: &str) -> PathBuf {
        self.dir(controller)
            .unwrap_or_else(|| panic!("controller {controller} not mounted"))
            .join(rel.trim_start_matches('/'))
    }

    /// Mount point of the hierarchy holding `controller` (e.g. "cpu", "memory").
    pub fn dir(&self, controller: &str) -> Option<&Path> {
        self.hierarchies
            .iter()
            .find(|(_, cs)| cs.iter().any(|c| c == controller))
            .map(|(p, _)| p.as_path())
    }
}

/// Creates pods like the kubelet does. One per test is fine (cheap).
pub struct Kubelet {
    pub client: CriClient,
    pub endpoint: String,
    pub image: String,
    pub mounts: CgroupMounts,
    pub host: HostFacts,
}

impl Kubelet {
    /// Connects to the test containerd named by the environment (see `scripts/test.sh`).
    pub async fn from_env() -> Self {
        let endpoint = super::cri_endpoint();
        let image = super::test_image();
        let client = CriClient::connect_with_timeout(&endpoint, Duration::from_secs(10))
            .await
            .unwrap_or_else(|e| panic!("connect to test containerd: {e}"));
        let mounts = CgroupMounts::detect();
        let host = HostFacts::detect(&mounts);
        Kubelet {
            client,
            endpoint,
            image,
            mounts,
            host,
        }
    }

    /// The sandbox config the kubelet would send (host network; pid per container).
    pub fn sandbox_config(&self, pod: &TestPod) -> proto::PodSandboxConfig {
        proto::PodSandboxConfig {
            metadata: Some(proto::PodSandboxMetadata {
                name: pod.name.clone(),
                uid: pod.uid.clone(),
                namespace: pod.namespace.clone(),
                attempt: 0,
            }),
            labels: pod_labels(pod),
            linux: Some(proto::LinuxPodSandboxConfig {
                cgroup_parent: self.mounts.cgroup_parent(pod),
                security_context: Some(proto::LinuxSandboxSecurityContext {
                    namespace_options: Some(namespaces()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// Creates the pod cgroups, the sandbox and every container, and starts them. Panics on
    /// failure, after tearing down whatever was created (the partially built pod's Drop guard).
    pub async fn run_pod(&self, pod: &TestPod) -> RunningPod {
        let mut running = RunningPod {
            pod: pod.clone(),
            endpoint: self.endpoint.clone(),
            mounts: self.mounts.clone(),
            sandbox_id: None,
            containers: Vec::new(),
            created_dirs: Vec::new(),
            torn_down: false,
        };
        // From here on, a panic drops `running`, whose Drop removes what exists so far.
        if self.mounts.systemd {
            super::systemd::Systemd::connect().create_pod_slice(pod, &pod_cgroup_values(pod));
        } else {
            running.created_dirs = create_pod_cgroups(&self.mounts, pod);
        }
        let rt = self.client.runtime_service();
        let sandbox_config = self.sandbox_config(pod);
        let request = proto::RunPodSandboxRequest {
            config: Some(sandbox_config.clone()),
            runtime_handler: String::new(),
        };
        let what = format!("run pod sandbox for {}", pod.name);
        let resp = self
            .cri("RunPodSandbox", &what, rt.clone().run_pod_sandbox(request))
            .await;
        running.sandbox_id = Some(resp.pod_sandbox_id.clone());
        for c in &pod.containers {
            let resources = container_resources(pod, c, &self.host);
            let mut labels = pod_labels(pod);
            labels.insert(LABEL_CONTAINER_NAME.to_string(), c.name.clone());
            let config = proto::ContainerConfig {
                metadata: Some(proto::ContainerMetadata {
                    name: c.name.clone(),
                    attempt: 0,
                }),
                image: Some(proto::ImageSpec {
                    image: self.image.clone(),
                    ..Default::default()
                }),
                command: c
                    .command
                    .clone()
                    .unwrap_or_else(|| SLEEP_COMMAND.iter().map(|s| s.to_string()).collect()),
                labels,
                linux: Some(proto::LinuxContainerConfig {
                    resources: Some(linux_resources_to_proto(&resources)),
                    security_context: Some(proto::LinuxContainerSecurityContext {
                        namespace_options: Some(namespaces()),
                        ..Default::default()
                    }),
                }),
                ..Default::default()
            };
            let request = proto::CreateContainerRequest {
                pod_sandbox_id: resp.pod_sandbox_id.clone(),
                config: Some(config),
                sandbox_config: Some(sandbox_config.clone()),
            };
            let what = format!("create container {}", c.name);
            let created = self
                .cri(
                    "CreateContainer",
                    &what,
                    rt.clone().create_container(request),
                )
                .await;
            running
                .containers
                .push((c.name.clone(), created.container_id.clone()));
            let request = proto::StartContainerRequest {
                container_id: created.container_id.clone(),
            };
            let what = format!("start container {}", c.name);
            self.cri("StartContainer", &what, rt.clone().start_container(request))
                .await;
        }
        running
    }

    /// One CRI call of [`Kubelet::run_pod`] under a 30 s deadline; panics with `what` on failure.
    async fn cri<T, F>(&self, call: &'static str, what: &str, request: F) -> T
    where
        F: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.client
            .call_within(call, Duration::from_secs(30), request)
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"))
    }
}

fn namespaces() -> proto::NamespaceOption {
    proto::NamespaceOption {
        network: proto::NamespaceMode::Node as i32,
        pid: proto::NamespaceMode::Container as i32,
        ipc: proto::NamespaceMode::Pod as i32,
        ..Default::default()
    }
}

fn pod_labels(pod: &TestPod) -> HashMap<String, String> {
    HashMap::from([
        (LABEL_POD_UID.to_string(), pod.uid.clone()),
        (LABEL_POD_NAME.to_string(), pod.name.clone()),
        (LABEL_POD_NAMESPACE.to_string(), pod.namespace.clone()),
    ])
}

fn write(path: &Path, value: &str) {
    std::fs::write(path, value)
        .unwrap_or_else(|e| panic!("write {value:?} to {}: {e}", path.display()));
}

/// Creates `dir` and missing parents under one hierarchy; cpuset dirs inherit the parent's cpus and
/// mems (an empty cpuset cannot hold tasks). Returns the directories created, outermost first.
fn mkdir_cgroup(mount: &Path, rel: &str, is_cpuset: bool, v2: bool) -> Vec<PathBuf> {
    let mut created = Vec::new();
    let mut dir = mount.to_path_buf();
    for part in rel.trim_start_matches('/').split('/') {
        let parent = dir.clone();
        dir.push(part);
        if v2 {
            // v2: a child gets the cpu/memory files only once its parent delegates them (the
            // kubelet enables every controller it uses in each level's subtree_control).
            write(&parent.join("cgroup.subtree_control"), "+cpu +memory +pids");
        }
        match std::fs::create_dir(&dir) {
            Ok(()) => {
                created.push(dir.clone());
                if is_cpuset {
                    for f in ["cpuset.cpus", "cpuset.mems"] {
                        let v = std::fs::read_to_string(parent.join(f)).unwrap_or_default();
                        write(&dir.join(f), v.trim());
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => panic!("create cgroup {}: {e}", dir.display()),
        }
    }
    created
}

/// The kubelet's pod cgroup: the directory in every mounted v1 hierarchy, then the §11.2 values.
/// Returns only the pod directories (QoS parents are shared between tests and left in place;
/// `scripts/test.sh` removes them at the end).
fn create_pod_cgroups(mounts: &CgroupMounts, pod: &TestPod) -> Vec<PathBuf> {
    let rel = pod.cgroup_parent();
    let mut pod_dirs = Vec::new();
    for (mount, controllers) in &mounts.hierarchies {
        let is_cpuset = !mounts.v2 && controllers.iter().any(|c| c == "cpuset");
        mkdir_cgroup(mount, &rel, is_cpuset, mounts.v2);
        pod_dirs.push(mount.join(rel.trim_start_matches('/')));
    }
    if let Some(unified) = &mounts.unified {
        // Not created by us (runc creates it), but ours to remove.
        pod_dirs.push(unified.join(rel.trim_start_matches('/')));
    }
    write_pod_values(mounts, &rel, &pod_cgroup_values(pod));
    pod_dirs
}

/// Writes pod cgroup values the way the kubelet does (`None` = leave as is): the v2 files, or on
/// v1 limit before request and period before quota (spec §7.2, §11.3). Independent of
/// `resizelet::cgroup`.
fn write_pod_values(mounts: &CgroupMounts, rel: &str, v: &PodCgroupValues) {
    let cpu = mounts.pod_dir("cpu", rel);
    if mounts.v2 {
        write_v2(&cpu, v);
        return;
    }
    if let Some(period) = v.cpu_period {
        write(&cpu.join("cpu.cfs_period_us"), &period.to_string());
    }
    if let Some(quota) = v.cpu_quota {
        write(&cpu.join("cpu.cfs_quota_us"), &quota.to_string());
    }
    if let Some(shares) = v.cpu_shares {
        write(&cpu.join("cpu.shares"), &shares.to_string());
    }
    if let Some(limit) = v.memory_limit {
        let memory = mounts.pod_dir("memory", rel);
        write(&memory.join("memory.limit_in_bytes"), &limit.to_string());
    }
}

/// spec §9: shares → v2 `cpu.weight`, the kubelet's linear formula.
pub fn shares_to_weight(shares: i64) -> i64 {
    1 + ((shares - 2) * 9999) / 262_142
}

/// v2 pod cgroup files, as the kubelet writes them (§11.3): `cpu.weight`, `cpu.max` (period with
/// the quota, or alone), `memory.max`.
fn write_v2(dir: &Path, v: &PodCgroupValues) {
    if let Some(shares) = v.cpu_shares {
        write(
            &dir.join("cpu.weight"),
            &shares_to_weight(shares as i64).to_string(),
        );
    }
    if v.cpu_quota.is_some() || v.cpu_period.is_some() {
        let quota = match v.cpu_quota {
            Some(Limit::Value(q)) if q > 0 => q.to_string(),
            _ => "max".to_string(),
        };
        let period = v.cpu_period.unwrap_or(CFS_PERIOD_US as u64);
        write(&dir.join("cpu.max"), &format!("{quota} {period}"));
    }
    if let Some(limit) = v.memory_limit {
        // Limit's Display is the v2 text: the number or "max"
        write(&dir.join("memory.max"), &limit.to_string());
    }
}

/// Reads a v1 cgroup values file set from `dir` of the cpu and memory hierarchies.
fn read_values(cpu_dir: &Path, memory_dir: &Path) -> PodCgroupValues {
    if cpu_dir.join("cpu.weight").exists() {
        return read_values_v2(cpu_dir);
    }
    let read = |p: PathBuf| -> i64 {
        let s = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
        s.trim()
            .parse()
            .unwrap_or_else(|e| panic!("parse {:?} from {}: {e}", s, p.display()))
    };
    // v1 reports "unlimited" memory as a page-aligned huge number and quota −1: both are max.
    let memory = read(memory_dir.join("memory.limit_in_bytes"));
    PodCgroupValues {
        cpu_shares: Some(read(cpu_dir.join("cpu.shares")) as u64),
        cpu_quota: Some(Limit::from_quota(read(cpu_dir.join("cpu.cfs_quota_us")))),
        cpu_period: Some(read(cpu_dir.join("cpu.cfs_period_us")) as u64),
        memory_limit: Some(Limit::from_memory(memory)),
    }
}

/// v2 files in the v1 shape: weight → shares (the linear formula's inverse, lossy), `cpu.max`,
/// `memory.max` ("max" = `Limit::Max`).
fn read_values_v2(dir: &Path) -> PodCgroupValues {
    let read = |f: &str| super::read_trimmed(dir, f);
    let weight: i64 = read("cpu.weight").parse().expect("cpu.weight");
    let max = read("cpu.max");
    let (quota, period) = max.split_once(' ').expect("cpu.max has two fields");
    let memory = read("memory.max");
    PodCgroupValues {
        cpu_shares: Some((2 + (weight - 1) * 262_142 / 9999) as u64),
        cpu_quota: Some(if quota == "max" {
            Limit::Max
        } else {
            Limit::Value(quota.parse().expect("quota"))
        }),
        cpu_period: Some(period.parse().expect("period")),
        memory_limit: Some(if memory == "max" {
            Limit::Max
        } else {
            Limit::Value(memory.parse().expect("memory.max"))
        }),
    }
}

/// What a resize changes in a cgroup: cpu shares, cfs quota and memory limit (the period stays).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuMemory {
    pub shares: Option<u64>,
    pub quota: Option<Limit>,
    pub memory: Option<Limit>,
}

impl From<PodCgroupValues> for CpuMemory {
    fn from(v: PodCgroupValues) -> Self {
        CpuMemory {
            shares: v.cpu_shares,
            quota: v.cpu_quota,
            memory: v.memory_limit,
        }
    }
}

/// Cgroup values with every field set: `shares`, `quota` µs per the kubelet's period
/// ([`CFS_PERIOD_US`]), `memory` bytes.
pub fn cgroup_values(shares: u64, quota: i64, memory: i64) -> PodCgroupValues {
    PodCgroupValues {
        cpu_shares: Some(shares),
        cpu_quota: Some(Limit::Value(quota)),
        cpu_period: Some(CFS_PERIOD_US as u64),
        memory_limit: Some(Limit::Value(memory)),
    }
}

/// [`cgroup_values`] without the period: what a resize changes.
pub fn cpu_memory(shares: u64, quota: i64, memory: i64) -> CpuMemory {
    cgroup_values(shares, quota, memory).into()
}

/// Connects to the test containerd (see [`Kubelet::from_env`]) and runs `pod` there.
pub async fn start_pod(pod: &TestPod) -> RunningPod {
    Kubelet::from_env().await.run_pod(pod).await
}

/// A pod created by [`Kubelet::run_pod`]. Dropping it stops and removes the sandbox (and with it
/// the containers) and removes the pod cgroups; [`RunningPod::teardown`] does the same and reports
/// failures.
pub struct RunningPod {
    pub pod: TestPod,
    endpoint: String,
    mounts: CgroupMounts,
    pub sandbox_id: Option<String>,
    /// (container name, container id) in creation order.
    pub containers: Vec<(String, String)>,
    created_dirs: Vec<PathBuf>,
    torn_down: bool,
}

impl RunningPod {
    pub fn container_id(&self, name: &str) -> &str {
        self.containers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, id)| id.as_str())
            .unwrap_or_else(|| panic!("no container {name} in pod {}", self.pod.name))
    }

    /// The pod cgroup directory in the hierarchy of `controller`.
    pub fn pod_cgroup_dir(&self, controller: &str) -> PathBuf {
        self.mounts
            .pod_dir(controller, &self.mounts.pod_rel(&self.pod))
    }

    /// The pod directory in every hierarchy (v1 and, on hybrid hosts, the unified one); teardown
    /// removes all of them.
    pub fn pod_cgroup_dirs(&self) -> Vec<PathBuf> {
        self.created_dirs.clone()
    }

    /// A container's cgroup (cgroupfs driver: `<pod cgroup>/<container id>`).
    pub fn container_cgroup_dir(&self, name: &str, controller: &str) -> PathBuf {
        let id = self.container_id(name);
        let leaf = if self.mounts.systemd {
            format!("cri-containerd-{id}.scope")
        } else {
            id.to_string()
        };
        self.pod_cgroup_dir(controller).join(leaf)
    }

    pub fn read_pod_file(&self, controller: &str, file: &str) -> String {
        super::read_trimmed(&self.pod_cgroup_dir(controller), file)
    }

    /// Waits until `container`'s memory cgroup charges at least `bytes` (e.g. a hog has filled
    /// its /dev/shm).
    pub async fn wait_memory_usage(&self, container: &str, bytes: i64) {
        super::eventually(
            &format!("container {container} uses {bytes} bytes"),
            std::time::Duration::from_secs(60), // generous: a TCG guest fills /dev/shm slowly
            || async {
                let file = if self.mounts.v2 {
                    "memory.current"
                } else {
                    "memory.usage_in_bytes"
                };
                let usage: i64 = self
                    .read_container_file(container, "memory", file)
                    .parse()
                    .ok()?;
                (usage >= bytes).then_some(())
            },
        )
        .await
    }

    pub fn read_container_file(&self, name: &str, controller: &str, file: &str) -> String {
        super::read_trimmed(&self.container_cgroup_dir(name, controller), file)
    }

    /// Pod cgroup cpu.shares / cfs quota / period / memory limit (−1 = unlimited).
    pub fn pod_cgroup_values(&self) -> PodCgroupValues {
        read_values(&self.pod_cgroup_dir("cpu"), &self.pod_cgroup_dir("memory"))
    }

    /// Container cgroup values, same shape.
    pub fn container_cgroup_values(&self, name: &str) -> PodCgroupValues {
        read_values(
            &self.container_cgroup_dir(name, "cpu"),
            &self.container_cgroup_dir(name, "memory"),
        )
    }

    /// What a resize changes in the pod cgroup (see [`CpuMemory`]).
    pub fn pod_cpu_memory(&self) -> CpuMemory {
        self.pod_cgroup_values().into()
    }

    /// What a resize changes in container `name`'s cgroup (see [`CpuMemory`]).
    pub fn container_cpu_memory(&self, name: &str) -> CpuMemory {
        self.container_cgroup_values(name).into()
    }

    /// Asserts every pod cgroup value (the period too).
    #[track_caller]
    pub fn assert_pod_values(&self, want: PodCgroupValues) {
        let pod = &self.pod.name;
        assert_eq!(self.pod_cgroup_values(), want, "pod cgroup of {pod}");
    }

    /// Asserts what a resize changes in the pod cgroup.
    #[track_caller]
    pub fn assert_pod(&self, want: CpuMemory) {
        let pod = &self.pod.name;
        assert_eq!(self.pod_cpu_memory(), want, "pod cgroup of {pod}");
    }

    /// Asserts the v1 files of container `name` that a resize writes, as the kernel shows them:
    /// `cpu.shares`, `cpu.cfs_quota_us`, `memory.limit_in_bytes` (bytes).
    #[track_caller]
    pub fn assert_v1_files(&self, name: &str, shares: i64, quota: i64, memory: i64) {
        let files = [
            ("cpu", "cpu.shares", shares),
            ("cpu", "cpu.cfs_quota_us", quota),
            ("memory", "memory.limit_in_bytes", memory),
        ];
        for (controller, file, want) in files {
            let got = self.read_container_file(name, controller, file);
            assert_eq!(got, want.to_string(), "{file} of container {name}");
        }
    }

    /// Asserts what a resize changes in container `name`'s cgroup.
    #[track_caller]
    pub fn assert_container(&self, name: &str, want: CpuMemory) {
        let pod = &self.pod.name;
        assert_eq!(
            self.container_cpu_memory(name),
            want,
            "container {name} of {pod}"
        );
    }

    /// Writes pod cgroup values the way a resize does (`None` = leave as is; see
    /// [`write_pod_values`]).
    pub fn write_pod_cgroup(&self, v: &PodCgroupValues) {
        write_pod_values(&self.mounts, &self.mounts.pod_rel(&self.pod), v);
    }

    /// Stops and removes the sandbox (containers included) and removes the pod cgroups.
    pub async fn teardown(mut self) -> Result<(), String> {
        self.torn_down = true;
        let client = CriClient::connect_with_timeout(&self.endpoint, Duration::from_secs(30))
            .await
            .map_err(|e| e.to_string())?;
        let slice = self.mounts.systemd.then_some(&self.pod);
        remove_pod(
            &client,
            self.sandbox_id.as_deref(),
            &self.created_dirs,
            slice,
        )
        .await
    }
}

async fn remove_pod(
    client: &CriClient,
    sandbox_id: Option<&str>,
    pod_dirs: &[PathBuf],
    systemd_pod: Option<&TestPod>,
) -> Result<(), String> {
    let mut errors = Vec::new();
    if let Some(id) = sandbox_id {
        let rt = client.runtime_service();
        if let Err(e) = client
            .call(
                "StopPodSandbox",
                rt.clone().stop_pod_sandbox(proto::StopPodSandboxRequest {
                    pod_sandbox_id: id.to_string(),
                }),
            )
            .await
        {
            errors.push(format!("stop sandbox {id}: {e}"));
        }
        if let Err(e) = client
            .call(
                "RemovePodSandbox",
                rt.clone()
                    .remove_pod_sandbox(proto::RemovePodSandboxRequest {
                        pod_sandbox_id: id.to_string(),
                    }),
            )
            .await
        {
            errors.push(format!("remove sandbox {id}: {e}"));
        }
    }
    // runc removes the container cgroups on delete; the pod directories are ours. A dying task can
    // keep a cgroup busy for a moment: retry until a deadline.
    for dir in pod_dirs {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match rmdir_tree(dir) {
                Ok(()) => break,
                Err(e) if Instant::now() >= deadline => {
                    errors.push(format!("remove cgroup {}: {e}", dir.display()));
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }
    if let Some(pod) = systemd_pod {
        if let Err(e) = super::systemd::Systemd::connect().stop_pod_slice(pod) {
            errors.push(e);
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

/// rmdir depth-first (cgroup directories cannot be removed recursively; their files are virtual).
pub fn rmdir_tree(dir: &Path) -> std::io::Result<()> {
    match std::fs::read_dir(dir) {
        Ok(rd) => {
            for e in rd.flatten() {
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    rmdir_tree(&e.path())?;
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    }
    match std::fs::remove_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

impl Drop for RunningPod {
    fn drop(&mut self) {
        if self.torn_down {
            return;
        }
        // Drop may run inside the test's tokio runtime (or while it unwinds): do the async cleanup
        // on a separate thread with its own runtime and connection.
        let endpoint = self.endpoint.clone();
        let sandbox_id = self.sandbox_id.clone();
        let dirs = self.created_dirs.clone();
        let slice = self.mounts.systemd.then(|| self.pod.clone());
        let result = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async {
                let client = CriClient::connect_with_timeout(&endpoint, Duration::from_secs(30))
                    .await
                    .map_err(|e| e.to_string())?;
                remove_pod(&client, sandbox_id.as_deref(), &dirs, slice.as_ref()).await
            })
        })
        .join();
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!(
                "kubelet double: teardown of pod {} failed: {e}",
                self.pod.name
            ),
            Err(_) => eprintln!("kubelet double: teardown of pod {} panicked", self.pod.name),
        }
    }
}

#[test]
fn conversions_follow_spec_section_9_examples() {
    // spec §9 examples: 20m → 20 shares, 100m → 102, 1000m → 1024; 0 → 2; 1m → 2.
    for (m, shares) in [
        (0, 2),
        (1, 2),
        (20, 20),
        (100, 102),
        (1000, 1024),
        (1_000_000, 262_144),
    ] {
        assert_eq!(milli_cpu_to_shares(m), shares, "{m}m");
    }
    // 25m → 2500, 15m → 1500, 5m → 1000 (1 ms minimum), 0 → no limit.
    for (m, quota) in [(0, 0), (5, 1000), (15, 1500), (25, 2500), (500, 50_000)] {
        assert_eq!(milli_cpu_to_quota(m, CFS_PERIOD_US), quota, "{m}m");
    }
}

#[test]
fn burstable_pod_values_only_set_declared_limits() {
    let mut a = TestContainer::new("a").cpu(Some(100), Some(200));
    a.memory_request = Some(1 << 20);
    let mut b = TestContainer::new("b").cpu(Some(150), Some(300));
    b.memory_limit = Some(64 << 20);
    let pod = TestPod::burstable("p", [a, b]);
    let v = pod_cgroup_values(&pod);
    assert_eq!(v.cpu_shares, Some(256)); // 250m
    assert_eq!(v.cpu_quota, Some(Limit::Value(50_000))); // 500m, both declared
    assert_eq!(v.cpu_period, Some(100_000));
    assert_eq!(v.memory_limit, None); // "a" has no memory limit
    assert!(pod.cgroup_parent().starts_with("/kubepods/burstable/pod"));
}

#[test]
fn burstable_oom_score_adj_is_clamped() {
    let gib = 1i64 << 30;
    assert_eq!(oom_score_adj(QosClass::Burstable, 0, 8 * gib), 999);
    assert_eq!(oom_score_adj(QosClass::Burstable, 4 * gib, 8 * gib), 500);
    assert_eq!(oom_score_adj(QosClass::Burstable, 8 * gib, 8 * gib), 3);
    assert_eq!(oom_score_adj(QosClass::Guaranteed, gib, 8 * gib), -997);
    assert_eq!(oom_score_adj(QosClass::BestEffort, 0, 8 * gib), 1000);
}
