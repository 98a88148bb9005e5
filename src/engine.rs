//! The resize engine of one node: holds the allocated and actuated state and drives one pod at a
//! time through admission (§4), the allocated checkpoint, planning (§7) and the executor. This is
//! the imperative shell around the pure core; the Kubernetes controller and the standalone API
//! call [`Engine::sync_pod`] whenever a pod's desired spec, the node or the runtime changes.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tracing::{debug, info};

use crate::cgroup::{CgroupError, CgroupFs, PodCgroupId};
use crate::checkpoint::{CheckpointError, CheckpointStore};
use crate::core::admission::{admit_with_used, Decision, NodePressure};
use crate::core::node::NodeConfig;
use crate::core::plan::{is_in_progress, plan_pod_resize, Plan, PlanInput};
use crate::core::resources::PodSpec;
use crate::core::runtime::{ContainerState, LinuxResources, RuntimeContainer};
use crate::core::seed::seed_pod;
use crate::core::state::{CheckpointData, CheckpointKind, PodResourceState};
use crate::cri::{CriError, Runtime};
use crate::executor::{ExecError, ExecutionReport, Executor, StepHook};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("pod {pod}: {source}")]
    Runtime {
        pod: String,
        #[source]
        source: CriError,
    },
    #[error("pod {pod} ({uid}) has no containers in the runtime: is it running on this node?")]
    NoContainers { pod: String, uid: String },
    #[error("pod {pod}: {source}")]
    Cgroup {
        pod: String,
        #[source]
        source: CgroupError,
    },
}

/// The running instance of each container of a pod, by container name (the newest attempt wins).
pub fn running_containers(containers: &[RuntimeContainer]) -> BTreeMap<String, RuntimeContainer> {
    let mut running: BTreeMap<String, RuntimeContainer> = BTreeMap::new();
    for c in containers
        .iter()
        .filter(|c| c.state == ContainerState::Running)
    {
        match running.get(&c.name) {
            Some(cur) if (cur.attempt, cur.created_at_nanos) >= (c.attempt, c.created_at_nanos) => {
            }
            _ => {
                running.insert(c.name.clone(), c.clone());
            }
        }
    }
    running
}

/// Allocated and actuated state of every pod on the node, loaded from and written through a
/// [`CheckpointStore`]. Shared by the passes of different pods, which may run concurrently:
/// admission and the allocated checkpoint are serialised by one lock (a resize is admitted
/// atomically against every other pod's allocation); enactment holds no lock across a CRI call
/// or a cgroup write. Passes of the *same* pod must not overlap (the caller serialises them).
pub struct Engine {
    runtime: Arc<dyn Runtime>,
    cgroups: Arc<dyn CgroupFs>,
    store: Arc<dyn CheckpointStore>,
    admission: Mutex<Admission>,
    actuated: Mutex<CheckpointData>,
    /// Shares last written to each pod cgroup (pitfall 2), by pod UID.
    last_written_shares: Mutex<BTreeMap<String, u64>>,
}

/// What admission decides against: the node and every pod's allocation.
struct Admission {
    node: NodeConfig,
    allocated: CheckpointData,
    /// `pod_requests` of each allocated pod (a function of its allocation and the immutable
    /// rest of its spec); dropped whenever the allocation changes.
    requests: BTreeMap<String, crate::core::resources::ResourceList>,
}

impl Admission {
    /// Adds what `pod` requests at its allocation (at its desired spec when it has none) to
    /// `used`.
    fn add_requests_of(&mut self, pod: &PodSpec, used: &mut crate::core::resources::ResourceList) {
        use crate::core::admission::add_requests;
        use crate::core::resources::pod_requests;
        if let Some(r) = self.requests.get(&pod.uid) {
            add_requests(used, r);
            return;
        }
        match self.allocated.entries.get(&pod.uid) {
            Some(a) => {
                let r = pod_requests(&pod.with_allocated(a));
                add_requests(used, &r);
                self.requests.insert(pod.uid.clone(), r);
            }
            None => add_requests(used, &pod_requests(pod)),
        }
    }

    /// What the active pods other than `uid` request together: the `used` side of admission.
    fn used_by_others(
        &mut self,
        uid: &str,
        others: &[impl std::borrow::Borrow<PodSpec>],
    ) -> crate::core::resources::ResourceList {
        let mut used = crate::core::resources::ResourceList::new();
        for p in others.iter().map(|p| p.borrow()).filter(|p| p.uid != uid) {
            self.add_requests_of(p, &mut used);
        }
        used
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What one [`Engine::sync_pod`] pass decided and did.
#[derive(Debug)]
pub struct SyncOutcome {
    pub decision: Decision,
    /// Whether the pod had no checkpoint entry and was seeded from the runtime.
    pub seeded: bool,
    pub plan: Plan,
    /// The enactment of `plan` (an empty plan is a success with nothing applied).
    pub enactment: Result<ExecutionReport, ExecError>,
    /// Spec §6.2, after this pass.
    pub in_progress: bool,
    /// The pod's running containers (by name) as listed at the start of the pass.
    pub running: BTreeMap<String, RuntimeContainer>,
}

/// The first half of a pass: admitted (and checkpointed) and planned, nothing enacted yet.
#[derive(Debug)]
pub struct Prepared {
    pub decision: Decision,
    pub seeded: bool,
    pub plan: Plan,
    pub running: BTreeMap<String, RuntimeContainer>,
    /// The pod at its allocated resources after admission.
    pub allocated_pod: PodSpec,
    pod_cgroup: PodCgroupId,
    running_ids: BTreeMap<String, String>,
}

/// Both checkpoints as loaded at start-up.
#[derive(Debug, Clone, Default)]
pub struct Checkpoints {
    pub allocated: CheckpointData,
    pub actuated: CheckpointData,
}

impl Checkpoints {
    /// Loads both; a corrupt one is quarantined by the store and refused here.
    pub fn load(store: &dyn CheckpointStore) -> Result<Self, EngineError> {
        Ok(Checkpoints {
            allocated: store.load(CheckpointKind::Allocated)?,
            actuated: store.load(CheckpointKind::Actuated)?,
        })
    }
}

impl Engine {
    /// Loads both checkpoints from `store` and opens the engine on them.
    pub fn open(
        runtime: Arc<dyn Runtime>,
        cgroups: Arc<dyn CgroupFs>,
        store: Arc<dyn CheckpointStore>,
        node: NodeConfig,
    ) -> Result<Self, EngineError> {
        let checkpoints = Checkpoints::load(store.as_ref())?;
        Ok(Self::new(runtime, cgroups, store, checkpoints, node))
    }

    /// Opens the engine on checkpoints already loaded from `store` (so a caller can refuse a
    /// corrupt checkpoint before it connects to the runtime).
    pub fn new(
        runtime: Arc<dyn Runtime>,
        cgroups: Arc<dyn CgroupFs>,
        store: Arc<dyn CheckpointStore>,
        checkpoints: Checkpoints,
        node: NodeConfig,
    ) -> Self {
        info!(
            pods = checkpoints.allocated.entries.len(),
            "loaded allocated and actuated checkpoints"
        );
        Engine {
            runtime,
            cgroups,
            store,
            admission: Mutex::new(Admission {
                node,
                allocated: checkpoints.allocated,
                requests: BTreeMap::new(),
            }),
            actuated: Mutex::new(checkpoints.actuated),
            last_written_shares: Mutex::new(BTreeMap::new()),
        }
    }

    /// One pass for one pod: seed it if unknown, admit its desired spec, checkpoint an accepted
    /// allocation, then plan and enact allocated → actuated. `others` are the other active pods
    /// on the node (desired specs; their allocations are overlaid here). `after_step` is a test
    /// hook called after each applied step.
    pub async fn sync_pod(
        &self,
        desired: &PodSpec,
        others: &[PodSpec],
        pressure: NodePressure,
        after_step: Option<StepHook<'_>>,
    ) -> Result<SyncOutcome, EngineError> {
        let prepared = self.prepare(desired, others, pressure).await?;
        let enactment = self.enact(&prepared, after_step).await;
        Ok(self.finish(prepared, enactment))
    }

    /// The first half of [`Engine::sync_pod`]: list the runtime's containers, seed, admit (and
    /// checkpoint an accepted allocation), read the pod cgroup and plan.
    pub async fn prepare(
        &self,
        desired: &PodSpec,
        others: &[impl std::borrow::Borrow<PodSpec>],
        pressure: NodePressure,
    ) -> Result<Prepared, EngineError> {
        let containers = self.runtime_containers(desired).await?;
        if containers.is_empty() && self.allocated(&desired.uid).is_none() {
            return Err(EngineError::NoContainers {
                pod: pod_name(desired),
                uid: desired.uid.clone(),
            });
        }
        let running = running_containers(&containers);
        let seeded = self.seed_if_unknown(desired, &running).await?;

        let (decision, allocated_pod, node) = {
            let mut admission = lock(&self.admission);
            let used = admission.used_by_others(&desired.uid, others);
            let allocation = admission
                .allocated
                .entries
                .get(&desired.uid)
                .cloned()
                .unwrap_or_default();
            let decision = admit_with_used(desired, &allocation, &used, &admission.node, pressure);
            if decision == Decision::Accepted {
                Self::allocate_locked(&mut admission, self.store.as_ref(), desired)?;
                info!(
                    pod = %pod_name(desired),
                    generation = desired.generation,
                    "resize accepted: {}",
                    crate::core::resources::PodResourcesDisplay(desired)
                );
            } else if decision != Decision::Unchanged {
                match &decision {
                    Decision::Deferred { reason, message } => info!(
                        pod = %pod_name(desired),
                        "resize deferred ({reason}): {message}; wants {}",
                        crate::core::resources::PodResourcesDisplay(desired)
                    ),
                    Decision::Infeasible { message, .. } => info!(
                        pod = %pod_name(desired),
                        "resize infeasible: {message}; wants {}",
                        crate::core::resources::PodResourcesDisplay(desired)
                    ),
                    _ => debug!(pod = %pod_name(desired), ?decision, "resize not admitted"),
                }
            }
            let allocated_pod = desired.with_allocated(
                admission
                    .allocated
                    .entries
                    .get(&desired.uid)
                    .unwrap_or(&allocation),
            );
            (decision, allocated_pod, admission.node.clone())
        };

        let pod_cgroup = self.pod_cgroup(&allocated_pod);
        let current = if node.cgroups_per_qos {
            Some(
                self.cgroups
                    .read_pod(&pod_cgroup)
                    .map_err(|source| EngineError::Cgroup {
                        pod: pod_name(desired),
                        source,
                    })?,
            )
        } else {
            None
        };
        let running_ids: BTreeMap<String, String> = running
            .iter()
            .map(|(n, c)| (n.clone(), c.id.clone()))
            .collect();
        let actuated = self.actuated(&desired.uid).unwrap_or_default();
        let last_written_shares = lock(&self.last_written_shares).get(&desired.uid).copied();
        let plan = plan_pod_resize(&PlanInput {
            pod: &allocated_pod,
            actuated: &actuated,
            running: &running_ids,
            pod_cgroup: current,
            last_written_shares,
            node: &node,
        });
        Ok(Prepared {
            decision,
            seeded,
            plan,
            running,
            allocated_pod,
            pod_cgroup,
            running_ids,
        })
    }

    /// The second half: applies the prepared plan (nothing when it is empty), recording
    /// actuated state after each container step.
    pub async fn enact(
        &self,
        prepared: &Prepared,
        after_step: Option<StepHook<'_>>,
    ) -> Result<ExecutionReport, ExecError> {
        if prepared.plan.is_empty() {
            return Ok(ExecutionReport::default());
        }
        let executor = Executor {
            runtime: self.runtime.as_ref(),
            cgroups: self.cgroups.as_ref(),
            store: self.store.as_ref(),
            pod_name: pod_name(&prepared.allocated_pod),
            pod_cgroup: prepared.pod_cgroup.clone(),
            after_step,
        };
        let report = executor
            .execute_shared(&prepared.plan, &self.actuated)
            .await?;
        if let Some(shares) = report.last_written_shares {
            lock(&self.last_written_shares).insert(prepared.plan.pod_uid.clone(), shares);
        }
        Ok(report)
    }

    /// Completes a pass: whether the pod is still in progress (§6.2) after `enactment`.
    pub fn finish(
        &self,
        prepared: Prepared,
        enactment: Result<ExecutionReport, ExecError>,
    ) -> SyncOutcome {
        let actuated = self
            .actuated(&prepared.allocated_pod.uid)
            .unwrap_or_default();
        let in_progress = is_in_progress(&prepared.allocated_pod, &actuated, &prepared.running_ids);
        SyncOutcome {
            decision: prepared.decision,
            seeded: prepared.seeded,
            plan: prepared.plan,
            enactment,
            in_progress,
            running: prepared.running,
        }
    }

    pub fn node(&self) -> NodeConfig {
        lock(&self.admission).node.clone()
    }

    /// Node allocatable changed (the Node object was updated). Returns whether it changed.
    pub fn set_allocatable(&self, allocatable: crate::core::resources::ResourceList) -> bool {
        let mut admission = lock(&self.admission);
        let changed = admission.node.allocatable != allocatable;
        admission.node.allocatable = allocatable;
        changed
    }

    /// UIDs of every pod with checkpointed state.
    pub fn known_pods(&self) -> Vec<String> {
        let admission = lock(&self.admission);
        let actuated = lock(&self.actuated);
        admission
            .allocated
            .entries
            .keys()
            .chain(actuated.entries.keys())
            .cloned()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect()
    }

    /// What the active pods other than `uid` request at their allocations — the sum admission
    /// compares against allocatable (for `resizelet explain`).
    pub fn used_by_others(
        &self,
        uid: &str,
        others: &[impl std::borrow::Borrow<PodSpec>],
    ) -> crate::core::resources::ResourceList {
        lock(&self.admission).used_by_others(uid, others)
    }

    pub fn allocated(&self, uid: &str) -> Option<PodResourceState> {
        lock(&self.admission).allocated.entries.get(uid).cloned()
    }

    pub fn actuated(&self, uid: &str) -> Option<PodResourceState> {
        lock(&self.actuated).entries.get(uid).cloned()
    }

    /// Forgets a deleted pod (both checkpoints).
    pub fn forget_pod(&self, uid: &str) -> Result<(), EngineError> {
        lock(&self.last_written_shares).remove(uid);
        {
            let mut admission = lock(&self.admission);
            admission.requests.remove(uid);
            if admission.allocated.entries.remove(uid).is_some() {
                self.store.save_pod(CheckpointKind::Allocated, uid, None)?;
            }
        }
        if lock(&self.actuated).entries.remove(uid).is_some() {
            self.store.save_pod(CheckpointKind::Actuated, uid, None)?;
        }
        Ok(())
    }

    /// The pod's containers as the runtime lists them.
    pub async fn runtime_containers(
        &self,
        pod: &PodSpec,
    ) -> Result<Vec<RuntimeContainer>, EngineError> {
        self.runtime
            .list_containers(Some(&pod.uid))
            .await
            .map_err(|source| EngineError::Runtime {
                pod: pod_name(pod),
                source,
            })
    }

    /// First sight of a pod without checkpoint entries: seed actuated from what the runtime
    /// reports and allocated from actuated (spec §6.1). Returns whether it seeded.
    pub async fn seed_if_unknown(
        &self,
        pod: &PodSpec,
        running: &BTreeMap<String, RuntimeContainer>,
    ) -> Result<bool, EngineError> {
        if self.allocated(&pod.uid).is_some() {
            return Ok(false);
        }
        let mut actual: BTreeMap<String, Option<LinuxResources>> = BTreeMap::new();
        for (name, c) in running {
            let status = self
                .runtime
                .container_status(&c.id)
                .await
                .map_err(|source| EngineError::Runtime {
                    pod: pod_name(pod),
                    source,
                })?;
            actual.insert(name.clone(), status.resources);
        }
        let mut admission = lock(&self.admission);
        if admission.allocated.entries.contains_key(&pod.uid) {
            return Ok(false);
        }
        let seeded = seed_pod(pod, &actual, &admission.node);
        debug!(pod = %pod_name(pod), "seeded allocated and actuated state from the runtime");
        lock(&self.actuated)
            .entries
            .insert(pod.uid.clone(), seeded.clone());
        self.store
            .save_pod(CheckpointKind::Actuated, &pod.uid, Some(&seeded))?;
        self.store
            .save_pod(CheckpointKind::Allocated, &pod.uid, Some(&seeded))?;
        admission.requests.remove(&pod.uid);
        admission.allocated.entries.insert(pod.uid.clone(), seeded);
        Ok(true)
    }

    /// Records an accepted allocation (written before any enactment, spec §4.4).
    pub fn allocate(&self, pod: &PodSpec) -> Result<(), EngineError> {
        let mut admission = lock(&self.admission);
        Self::allocate_locked(&mut admission, self.store.as_ref(), pod)
    }

    fn allocate_locked(
        admission: &mut Admission,
        store: &dyn CheckpointStore,
        pod: &PodSpec,
    ) -> Result<(), EngineError> {
        let state = pod.resource_state();
        if admission.allocated.entries.get(&pod.uid) == Some(&state) {
            return Ok(());
        }
        admission.requests.remove(&pod.uid);
        let previous = admission
            .allocated
            .entries
            .insert(pod.uid.clone(), state.clone());
        // under the admission lock: the next admission must not count an allocation that is
        // rolled back here
        if let Err(e) = store.save_pod(CheckpointKind::Allocated, &pod.uid, Some(&state)) {
            // Not durable, so not accepted: restore and let the caller retry.
            match previous {
                Some(p) => admission.allocated.entries.insert(pod.uid.clone(), p),
                None => admission.allocated.entries.remove(&pod.uid),
            };
            return Err(e.into());
        }
        Ok(())
    }

    pub fn pod_cgroup(&self, pod: &PodSpec) -> PodCgroupId {
        PodCgroupId {
            uid: pod.uid.clone(),
            qos: pod.effective_qos(),
        }
    }

    pub fn cgroups(&self) -> &dyn CgroupFs {
        self.cgroups.as_ref()
    }

    pub fn runtime(&self) -> &dyn Runtime {
        self.runtime.as_ref()
    }

    /// A shared handle on the runtime (for readiness probes).
    pub fn runtime_handle(&self) -> Arc<dyn Runtime> {
        self.runtime.clone()
    }
}

pub fn pod_name(pod: &PodSpec) -> String {
    format!("{}/{}", pod.namespace, pod.name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroup::memory::MemoryCgroupFs;
    use crate::checkpoint::MemoryCheckpointStore;
    use crate::core::node::CgroupVersion;
    use crate::cri::fake::{CallKind, FakeRuntime};
    use crate::testing::{self, *};

    struct Node {
        runtime: Arc<FakeRuntime>,
        cgroups: Arc<MemoryCgroupFs>,
        store: Arc<MemoryCheckpointStore>,
        config: NodeConfig,
    }

    impl Node {
        fn new() -> Self {
            Node {
                runtime: Arc::new(FakeRuntime::new()),
                cgroups: Arc::new(MemoryCgroupFs::new(CgroupVersion::V1)),
                store: Arc::new(MemoryCheckpointStore::new()),
                config: NodeConfig {
                    machine_memory_bytes: 8 << 30,
                    allocatable: list("cpu=4,memory=8Gi"),
                    ..NodeConfig::default()
                },
            }
        }

        fn start(&self, pod: &PodSpec) {
            testing::start_pod(&self.runtime, &self.cgroups, pod, &self.config);
        }

        fn engine(&self) -> Engine {
            Engine::open(
                self.runtime.clone(),
                self.cgroups.clone(),
                self.store.clone(),
                self.config.clone(),
            )
            .unwrap()
        }
    }

    fn resized(p: &PodSpec, requests: &str, limits: &str) -> PodSpec {
        let mut d = p.clone();
        d.containers[0].resources = reqs(requests, limits);
        d.generation += 1;
        d
    }

    #[tokio::test]
    async fn seeds_then_admits_enacts_and_survives_a_restart() {
        let node = Node::new();
        let p = pod(
            "u1",
            vec![container("c", "cpu=500m,memory=1Gi", "cpu=1,memory=1Gi")],
        );
        node.start(&p);
        let engine = node.engine();
        let first = engine
            .sync_pod(&p, &[], NodePressure::default(), None)
            .await
            .unwrap();
        assert!(first.seeded);
        assert_eq!(first.decision, Decision::Unchanged);
        assert!(first.plan.is_empty(), "{:?}", first.plan);
        assert!(!first.in_progress);

        let bigger = resized(&p, "cpu=1,memory=2Gi", "cpu=2,memory=2Gi");
        let out = engine
            .sync_pod(&bigger, &[], NodePressure::default(), None)
            .await
            .unwrap();
        assert_eq!(out.decision, Decision::Accepted);
        out.enactment.unwrap();
        assert!(!out.in_progress);
        assert_eq!(
            node.runtime
                .resources("u1-c")
                .unwrap()
                .memory_limit_in_bytes,
            2 << 30
        );
        assert_eq!(
            node.cgroups.pod("u1").unwrap().memory_limit,
            Some(crate::core::plan::Limit::Value(2 << 30))
        );

        // a restarted agent reloads both checkpoints: nothing is re-admitted or re-enacted
        let calls = node
            .runtime
            .calls_of(CallKind::UpdateContainerResources)
            .len();
        let restarted = node.engine();
        let again = restarted
            .sync_pod(&bigger, &[], NodePressure::default(), None)
            .await
            .unwrap();
        assert!(!again.seeded);
        assert_eq!(again.decision, Decision::Unchanged);
        assert!(again.plan.is_empty());
        assert_eq!(
            node.runtime
                .calls_of(CallKind::UpdateContainerResources)
                .len(),
            calls
        );
    }

    #[tokio::test]
    async fn deferred_until_another_pod_leaves_and_infeasible_beyond_allocatable() {
        let node = Node::new();
        let a = pod("a", vec![container("c", "cpu=1", "")]);
        let b = pod("b", vec![container("c", "cpu=2", "")]);
        node.start(&a);
        node.start(&b);
        let engine = node.engine();
        engine
            .sync_pod(&a, std::slice::from_ref(&b), NodePressure::default(), None)
            .await
            .unwrap();
        engine
            .sync_pod(&b, std::slice::from_ref(&a), NodePressure::default(), None)
            .await
            .unwrap();

        let grow = resized(&a, "cpu=2500m", "");
        let out = engine
            .sync_pod(
                &grow,
                std::slice::from_ref(&b),
                NodePressure::default(),
                None,
            )
            .await
            .unwrap();
        assert!(
            matches!(out.decision, Decision::Deferred { ref reason, .. } if reason == "OutOfcpu"),
            "{:?}",
            out.decision
        );
        assert!(out.plan.is_empty());
        assert_eq!(engine.allocated("a"), Some(a.resource_state()));

        engine.forget_pod("b").unwrap();
        let out = engine
            .sync_pod(&grow, &[], NodePressure::default(), None)
            .await
            .unwrap();
        assert_eq!(out.decision, Decision::Accepted);
        assert_eq!(node.runtime.resources("a-c").unwrap().cpu_shares, 2560);

        let huge = resized(&a, "cpu=5", "");
        let out = engine
            .sync_pod(&huge, &[], NodePressure::default(), None)
            .await
            .unwrap();
        assert!(
            matches!(out.decision, Decision::Infeasible { .. }),
            "{:?}",
            out.decision
        );
    }

    #[tokio::test]
    async fn failed_allocation_checkpoint_is_not_accepted() {
        let node = Node::new();
        let p = pod("u", vec![container("c", "cpu=500m", "")]);
        node.start(&p);
        let engine = node.engine();
        engine
            .sync_pod(&p, &[], NodePressure::default(), None)
            .await
            .unwrap();
        node.store
            .fail_saves
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let err = engine
            .sync_pod(
                &resized(&p, "cpu=1", ""),
                &[],
                NodePressure::default(),
                None,
            )
            .await
            .unwrap_err();
        assert!(matches!(err, EngineError::Checkpoint(_)), "{err}");
        assert_eq!(engine.allocated("u"), Some(p.resource_state()));
        assert!(node
            .runtime
            .calls_of(CallKind::UpdateContainerResources)
            .is_empty());
    }

    #[tokio::test]
    async fn unknown_pod_is_a_clear_error() {
        let node = Node::new();
        let engine = node.engine();
        let p = pod("ghost", vec![container("c", "cpu=1", "")]);
        let err = engine
            .sync_pod(&p, &[], NodePressure::default(), None)
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("has no containers in the runtime"),
            "{err}"
        );
    }
}
