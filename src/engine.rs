//! The resize engine of one node: holds the allocated and actuated state and drives one pod at a
//! time through admission (§4), the allocated checkpoint, planning (§7) and the executor. This is
//! the imperative shell around the pure core; the Kubernetes controller and the standalone API
//! call [`Engine::sync_pod`] whenever a pod's desired spec, the node or the runtime changes.

use std::collections::BTreeMap;
use std::sync::Arc;

use tracing::{debug, info};

use crate::cgroup::{CgroupError, CgroupFs, PodCgroupId};
use crate::checkpoint::{CheckpointError, CheckpointStore};
use crate::core::node::NodeConfig;
use crate::core::resources::PodSpec;
use crate::core::runtime::{ContainerState, LinuxResources, RuntimeContainer};
use crate::core::seed::seed_pod;
use crate::core::state::{CheckpointData, CheckpointKind, PodResourceState};
use crate::cri::{CriError, Runtime};

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
/// [`CheckpointStore`].
pub struct Engine {
    runtime: Arc<dyn Runtime>,
    cgroups: Arc<dyn CgroupFs>,
    store: Arc<dyn CheckpointStore>,
    node: NodeConfig,
    allocated: CheckpointData,
    actuated: CheckpointData,
}

impl Engine {
    /// Loads both checkpoints; a corrupt one is quarantined by the store and refused here.
    pub fn open(
        runtime: Arc<dyn Runtime>,
        cgroups: Arc<dyn CgroupFs>,
        store: Arc<dyn CheckpointStore>,
        node: NodeConfig,
    ) -> Result<Self, EngineError> {
        let allocated = store.load(CheckpointKind::Allocated)?;
        let actuated = store.load(CheckpointKind::Actuated)?;
        info!(
            pods = allocated.entries.len(),
            "loaded allocated and actuated checkpoints"
        );
        Ok(Engine {
            runtime,
            cgroups,
            store,
            node,
            allocated,
            actuated,
        })
    }

    pub fn node(&self) -> &NodeConfig {
        &self.node
    }

    pub fn allocated(&self, uid: &str) -> Option<&PodResourceState> {
        self.allocated.entries.get(uid)
    }

    pub fn actuated(&self, uid: &str) -> Option<&PodResourceState> {
        self.actuated.entries.get(uid)
    }

    /// Forgets a deleted pod (both checkpoints).
    pub fn forget_pod(&mut self, uid: &str) -> Result<(), EngineError> {
        if self.allocated.entries.remove(uid).is_some() {
            self.store
                .save(CheckpointKind::Allocated, &self.allocated)?;
        }
        if self.actuated.entries.remove(uid).is_some() {
            self.store.save(CheckpointKind::Actuated, &self.actuated)?;
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
        &mut self,
        pod: &PodSpec,
        running: &BTreeMap<String, RuntimeContainer>,
    ) -> Result<bool, EngineError> {
        if self.allocated.entries.contains_key(&pod.uid) {
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
        let seeded = seed_pod(pod, &actual, &self.node);
        debug!(pod = %pod_name(pod), "seeded allocated and actuated state from the runtime");
        self.actuated
            .entries
            .insert(pod.uid.clone(), seeded.clone());
        self.allocated.entries.insert(pod.uid.clone(), seeded);
        self.store.save(CheckpointKind::Actuated, &self.actuated)?;
        self.store
            .save(CheckpointKind::Allocated, &self.allocated)?;
        Ok(true)
    }

    /// Records an accepted allocation (written before any enactment, spec §4.4).
    pub fn allocate(&mut self, pod: &PodSpec) -> Result<(), EngineError> {
        let state = pod.resource_state();
        if self.allocated.entries.get(&pod.uid) == Some(&state) {
            return Ok(());
        }
        let previous = self.allocated.entries.insert(pod.uid.clone(), state);
        if let Err(e) = self.store.save(CheckpointKind::Allocated, &self.allocated) {
            // Not durable, so not accepted: restore and let the caller retry.
            match previous {
                Some(p) => self.allocated.entries.insert(pod.uid.clone(), p),
                None => self.allocated.entries.remove(&pod.uid),
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
}

pub fn pod_name(pod: &PodSpec) -> String {
    format!("{}/{}", pod.namespace, pod.name)
}
