//! The test kit: one set of builders and one in-memory node (`World`) for the lib's unit tests,
//! `tests/` and `benches/`. Compiled for `cfg(test)` and with the `testing` feature (the self
//! dev-dependency in Cargo.toml turns it on for tests and benches); never in the release build.
//!
//! Naming scheme: a builder is named after what it returns — [`list`] (a `ResourceList`),
//! [`reqs`] (`ResourceRequirements`), [`container`] / [`sidecar`] (`Container`), [`pod`]
//! (`PodSpec`), [`node`] (`NodeConfig`), [`resized`] (a desired `PodSpec`: a `/resize`). Resources
//! are written as `"cpu=100m,memory=1Gi"` (an empty string is an empty list), as upstream's
//! `getResourceList(cpu, memory)`.

use std::sync::Arc;

use crate::cgroup::memory::MemoryCgroupFs;
use crate::checkpoint::MemoryCheckpointStore;
use crate::core::admission::{Decision, NodePressure};
use crate::core::container_resources::{container_linux_resources, Reduced};
use crate::core::node::{CgroupVersion, NodeConfig};
use crate::core::pod_cgroup::pod_cgroup_values;
use crate::core::quantity::Quantity;
use crate::core::resources::{
    Container, PodSpec, ResizePolicy, ResourceList, ResourceRequirements,
};
use crate::cri::fake::FakeRuntime;
use crate::engine::{Engine, SyncOutcome};

/// `"cpu=100m,memory=1Gi"` → ResourceList; panics (naming it) on a malformed pair or quantity.
pub fn list(s: &str) -> ResourceList {
    s.split(',')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv
                .split_once('=')
                .unwrap_or_else(|| panic!("{kv:?}: want name=quantity"));
            let q = Quantity::parse(v).unwrap_or_else(|e| panic!("{kv:?}: {e}"));
            (k.to_string(), q)
        })
        .collect()
}

pub fn reqs(requests: &str, limits: &str) -> ResourceRequirements {
    ResourceRequirements {
        requests: list(requests),
        limits: list(limits),
    }
}

pub fn container(name: &str, requests: &str, limits: &str) -> Container {
    Container {
        name: name.to_string(),
        resources: reqs(requests, limits),
        resize_policy: ResizePolicy::default(),
        sidecar: false,
    }
}

/// A restartable init container (`restartPolicy: Always`).
pub fn sidecar(name: &str, requests: &str, limits: &str) -> Container {
    Container {
        sidecar: true,
        ..container(name, requests, limits)
    }
}

/// A pod `default/pod-<uid>` at generation 1 with these containers and nothing else set.
pub fn pod(uid: &str, containers: Vec<Container>) -> PodSpec {
    PodSpec {
        uid: uid.to_string(),
        namespace: "default".to_string(),
        name: format!("pod-{uid}"),
        generation: 1,
        priority: 0,
        containers,
        init_containers: Vec::new(),
        overhead: ResourceList::new(),
        pod_resources: None,
        qos_class: None,
        termination_grace_period_seconds: None,
        deletion_grace_period_seconds: None,
        critical: false,
        node_critical: false,
    }
}

/// The desired spec after a `/resize` of the first container: new resources, generation + 1.
pub fn resized(p: &PodSpec, requests: &str, limits: &str) -> PodSpec {
    let mut d = p.clone();
    d.containers[0].resources = reqs(requests, limits);
    d.generation += 1;
    d
}

/// A node with 8 GiB of machine memory and this allocatable (`"cpu=4,memory=8Gi"`).
pub fn node(allocatable: &str) -> NodeConfig {
    NodeConfig {
        machine_memory_bytes: 8 << 30,
        allocatable: list(allocatable),
        ..NodeConfig::default()
    }
}

/// Starts a pod the way the kubelet would: pod cgroup + running containers (ids
/// `<uid>-<name>`) with the spec's resources.
pub fn start_pod(
    runtime: &FakeRuntime,
    cgroups: &MemoryCgroupFs,
    pod: &PodSpec,
    config: &NodeConfig,
) {
    cgroups.add_pod(&pod.uid, pod_cgroup_values(pod, config));
    for c in &pod.containers {
        let linux = container_linux_resources(pod, c, Reduced::of(&c.resources), config);
        runtime.add_running(&pod.uid, &c.name, &format!("{}-{}", pod.uid, c.name), linux);
    }
}

/// One pass of `engine` over `desired` alone, without pressure or step hook (what most tests
/// do); panics if the pass itself fails.
pub async fn sync(engine: &Engine, desired: &PodSpec) -> SyncOutcome {
    engine
        .sync_pod(desired, &[], NodePressure::default(), None)
        .await
        .unwrap_or_else(|e| panic!("sync {}/{}: {e}", desired.namespace, desired.name))
}

/// A pass that must admit and enact `desired`; returns its outcome.
pub async fn enact(engine: &Engine, desired: &PodSpec) -> SyncOutcome {
    let out = sync(engine, desired).await;
    assert_eq!(out.decision, Decision::Accepted, "{}", desired.name);
    if let Err(e) = &out.enactment {
        panic!("enact {}/{}: {e}", desired.namespace, desired.name);
    }
    out
}

/// One node in memory: the fake CRI runtime, cgroup v1 pod cgroups in memory, an in-memory
/// checkpoint store, and the node's configuration. Engines opened from one `World` share its
/// runtime, cgroups and checkpoints (a restart is `world.engine()` again).
#[derive(Clone)]
pub struct World {
    pub runtime: Arc<FakeRuntime>,
    pub cgroups: Arc<MemoryCgroupFs>,
    pub store: Arc<MemoryCheckpointStore>,
    pub config: NodeConfig,
}

impl World {
    /// A cgroup v1 node with this config.
    pub fn with_config(config: NodeConfig) -> Self {
        World {
            runtime: Arc::new(FakeRuntime::new()),
            cgroups: Arc::new(MemoryCgroupFs::new(CgroupVersion::V1)),
            store: Arc::new(MemoryCheckpointStore::new()),
            config,
        }
    }

    /// The kubelet started `pod` on this node (see [`start_pod`]).
    pub fn start(&self, pod: &PodSpec) {
        start_pod(&self.runtime, &self.cgroups, pod, &self.config);
    }

    /// An engine over this node's runtime, cgroups and checkpoints.
    pub fn engine(&self) -> Engine {
        Engine::open(
            self.runtime.clone(),
            self.cgroups.clone(),
            self.store.clone(),
            self.config.clone(),
        )
        .expect("open the engine over the in-memory node")
    }
}
