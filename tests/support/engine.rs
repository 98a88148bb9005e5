//! Wiring the real engine (real CRI client, real cgroup files, file checkpoints) for integration
//! tests, plus recording decorators that log the order of pod-cgroup writes and CRI updates.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use resizelet::cgroup::fs::RealCgroupFs;
use resizelet::cgroup::{CgroupError, CgroupFs, PodCgroupId};
use resizelet::checkpoint::FileCheckpointStore;
use resizelet::core::node::{CgroupDriver, CgroupVersion, NodeConfig};
use resizelet::core::plan::{PodCgroupValues, PodCgroupWrite};
use resizelet::core::quantity::Quantity;
use resizelet::core::resources::{
    Container, PodSpec, ResizePolicy, ResourceList, ResourceRequirements, CPU, MEMORY,
};
use resizelet::core::runtime::{LinuxResources, RuntimeContainer, RuntimeContainerStatus};
use resizelet::cri::client::CriClient;
use resizelet::cri::{CriError, Runtime, RuntimeVersion};
use resizelet::engine::Engine;

use super::kubelet::{app, start_pod, RunningPod, TestContainer, TestPod};

fn list(cpu: Option<i64>, memory: Option<i64>) -> ResourceList {
    let mut l = ResourceList::new();
    if let Some(m) = cpu {
        l.insert(CPU.into(), Quantity::from_milli(m));
    }
    if let Some(b) = memory {
        l.insert(MEMORY.into(), Quantity::from_bytes(b));
    }
    l
}

pub fn container_spec(c: &TestContainer) -> Container {
    Container {
        name: c.name.clone(),
        resources: ResourceRequirements {
            requests: list(c.cpu_request, c.memory_request),
            limits: list(c.cpu_limit, c.memory_limit),
        },
        resize_policy: ResizePolicy::default(),
        sidecar: false,
    }
}

/// The core's view of a test pod (what the API would carry).
pub fn pod_spec(t: &TestPod) -> PodSpec {
    PodSpec {
        uid: t.uid.clone(),
        namespace: t.namespace.clone(),
        name: t.name.clone(),
        generation: 1,
        priority: 0,
        containers: t.containers.iter().map(container_spec).collect(),
        init_containers: Vec::new(),
        overhead: ResourceList::new(),
        pod_resources: None,
        qos_class: Some(t.qos),
        termination_grace_period_seconds: Some(2),
        deletion_grace_period_seconds: None,
        critical: false,
        node_critical: false,
    }
}

/// A desired spec: `pod` with its containers replaced (a `/resize`).
pub fn resized(pod: &PodSpec, containers: &[TestContainer]) -> PodSpec {
    let mut d = pod.clone();
    d.containers = containers.iter().map(container_spec).collect();
    d.generation += 1;
    d
}

/// Shared, ordered log of effects: `pod <write>` and `update <container id>`.
#[derive(Clone, Default)]
pub struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    pub fn push(&self, s: String) {
        self.0.lock().unwrap().push(s);
    }
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

pub fn describe_write(w: &PodCgroupWrite) -> String {
    match w {
        PodCgroupWrite::CpuLimit { quota, .. } => format!("pod quota {quota}"),
        PodCgroupWrite::CpuRequest { shares } => format!("pod shares {shares}"),
        PodCgroupWrite::MemoryLimit { bytes } => format!("pod memory {bytes}"),
    }
}

/// Logs every pod cgroup write, then writes the real files.
pub struct RecordingCgroups {
    pub inner: RealCgroupFs,
    pub log: Log,
}

impl CgroupFs for RecordingCgroups {
    fn version(&self) -> CgroupVersion {
        self.inner.version()
    }
    fn driver(&self) -> CgroupDriver {
        self.inner.driver()
    }
    fn read_pod(&self, pod: &PodCgroupId) -> Result<PodCgroupValues, CgroupError> {
        self.inner.read_pod(pod)
    }
    fn write_pod(&self, pod: &PodCgroupId, write: &PodCgroupWrite) -> Result<(), CgroupError> {
        self.log.push(describe_write(write));
        self.inner.write_pod(pod, write)
    }
    fn pod_memory_usage(&self, pod: &PodCgroupId) -> Result<u64, CgroupError> {
        self.inner.pod_memory_usage(pod)
    }
    fn container_memory_usage(&self, pod: &PodCgroupId, id: &str) -> Result<u64, CgroupError> {
        self.inner.container_memory_usage(pod, id)
    }
    fn read_container(&self, pod: &PodCgroupId, id: &str) -> Result<PodCgroupValues, CgroupError> {
        self.inner.read_container(pod, id)
    }
}

/// Logs every `UpdateContainerResources` (by container name), then calls the real runtime.
/// `vanish` names a container that is stopped and removed (really, through CRI) right before
/// its update — a container disappearing mid-plan.
pub struct RecordingRuntime {
    pub inner: CriClient,
    pub log: Log,
    pub names: Mutex<BTreeMap<String, String>>,
    pub vanish: Mutex<Option<String>>,
}

#[async_trait]
impl Runtime for RecordingRuntime {
    async fn version(&self) -> Result<RuntimeVersion, CriError> {
        self.inner.version().await
    }
    async fn list_containers(
        &self,
        pod_uid: Option<&str>,
    ) -> Result<Vec<RuntimeContainer>, CriError> {
        let list = self.inner.list_containers(pod_uid).await?;
        let mut names = self.names.lock().unwrap();
        for c in &list {
            names.insert(c.id.clone(), c.name.clone());
        }
        Ok(list)
    }
    async fn container_status(&self, id: &str) -> Result<RuntimeContainerStatus, CriError> {
        self.inner.container_status(id).await
    }
    async fn update_container_resources(
        &self,
        id: &str,
        r: &LinuxResources,
    ) -> Result<(), CriError> {
        let name = self
            .names
            .lock()
            .unwrap()
            .get(id)
            .cloned()
            .unwrap_or_else(|| id.to_string());
        let vanish = self.vanish.lock().unwrap().clone();
        if vanish.as_deref() == Some(name.as_str()) {
            self.inner.stop_container(id, 0).await?;
            let mut svc = self.inner.runtime_service();
            svc.remove_container(resizelet::cri::proto::RemoveContainerRequest {
                container_id: id.to_string(),
            })
            .await
            .expect("RemoveContainer");
        }
        self.log.push(format!("update {name}"));
        self.inner.update_container_resources(id, r).await
    }
    async fn stop_container(&self, id: &str, timeout: i64) -> Result<(), CriError> {
        self.inner.stop_container(id, timeout).await
    }
}

pub struct TestEngine {
    pub engine: Engine,
    pub log: Log,
    pub runtime: Arc<RecordingRuntime>,
    pub state_dir: tempfile::TempDir,
}

pub fn host_cgroups() -> RealCgroupFs {
    let layout = resizelet::cgroup::detect::detect_host().expect("detect cgroups");
    RealCgroupFs::from_layout(&layout, Path::new("/sys/fs/cgroup"), CgroupDriver::Cgroupfs)
}

pub fn node_config() -> NodeConfig {
    let layout = resizelet::cgroup::detect::detect_host().expect("detect cgroups");
    resizelet::host::node_config(layout.version, CgroupDriver::Cgroupfs, None).expect("node config")
}

pub async fn engine() -> TestEngine {
    let log = Log::default();
    let client = CriClient::connect(&super::cri_endpoint())
        .await
        .expect("connect to containerd");
    let runtime = Arc::new(RecordingRuntime {
        inner: client,
        log: log.clone(),
        names: Mutex::new(BTreeMap::new()),
        vanish: Mutex::new(None),
    });
    let cgroups = Arc::new(RecordingCgroups {
        inner: host_cgroups(),
        log: log.clone(),
    });
    let state_dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(FileCheckpointStore::new(state_dir.path()).expect("checkpoint store"));
    let engine = Engine::open(runtime.clone(), cgroups, store, node_config()).expect("engine");
    TestEngine {
        engine,
        log,
        runtime,
        state_dir,
    }
}

/// An engine and the directory of its file checkpoints (removed when dropped).
pub struct GuestEngine {
    pub engine: Engine,
    pub state_dir: tempfile::TempDir,
}

impl std::ops::Deref for GuestEngine {
    type Target = Engine;
    fn deref(&self) -> &Engine {
        &self.engine
    }
}

/// The real engine without recording, for the VM guests: containerd with a `cri_timeout`
/// deadline (TCG on a shared host: a CRI call can take seconds), these cgroups, file checkpoints
/// in a fresh directory.
pub async fn guest_engine(
    cgroups: Arc<dyn CgroupFs>,
    node: NodeConfig,
    cri_timeout: std::time::Duration,
) -> GuestEngine {
    let runtime = CriClient::connect_with_timeout(&super::cri_endpoint(), cri_timeout)
        .await
        .expect("connect to containerd");
    let state_dir = tempfile::tempdir().expect("tempdir");
    let store = FileCheckpointStore::new(state_dir.path()).expect("checkpoint store");
    let engine = Engine::open(Arc::new(runtime), cgroups, Arc::new(store), node).expect("engine");
    GuestEngine { engine, state_dir }
}

/// The core's view of `pod` and `engine`'s first pass over it (which seeds it from the runtime).
pub async fn seed(engine: &Engine, pod: &TestPod) -> (PodSpec, resizelet::engine::SyncOutcome) {
    let spec = pod_spec(pod);
    let first = resizelet::testing::sync(engine, &spec).await;
    (spec, first)
}

/// The inputs of `resizelet resize` runs ([`super::resize_cmd`]): a fresh directory holding the
/// state directory (`state`, created by the binary unless a test plants one) and the pod file.
pub struct ResizeInputs {
    pub dir: tempfile::TempDir,
    pub state: PathBuf,
    pub pod_file: PathBuf,
}

impl Default for ResizeInputs {
    fn default() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("state");
        let pod_file = dir.path().join("pod.json");
        ResizeInputs {
            dir,
            state,
            pod_file,
        }
    }
}

impl ResizeInputs {
    /// [`ResizeInputs::default`] with the pod file asking to resize `pod` to `containers`.
    pub fn resizing(pod: &TestPod, containers: &[TestContainer]) -> Self {
        let inputs = Self::default();
        inputs.write_pod(&resized(&pod_spec(pod), containers));
        inputs
    }

    /// Writes `spec` as the pod file.
    pub fn write_pod(&self, spec: &PodSpec) {
        let json = serde_json::to_vec(spec).expect("pod spec as JSON");
        std::fs::write(&self.pod_file, json).expect("write the pod file");
    }

    /// `resizelet resize` with these inputs.
    pub fn cmd(&self) -> std::process::Command {
        super::resize_cmd(&self.pod_file, &self.state)
    }
}

/// A Burstable pod `name` running on the test containerd with the one container "app" at
/// 100m/200m cpu and 32/64 MiB, and the inputs that resize it to 300m/400m and 32/128 MiB.
pub async fn start_with_resize(name: &str) -> (RunningPod, ResizeInputs) {
    let pod = TestPod::burstable(name, [app((100, 200), (32, 64))]);
    let running = start_pod(&pod).await;
    (
        running,
        ResizeInputs::resizing(&pod, &[app((300, 400), (32, 128))]),
    )
}
