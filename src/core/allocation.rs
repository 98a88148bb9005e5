//! Allocations (spec §2, §4.1): a pod's resources as allocated or actuated, and the overlay of an
//! allocation onto a pod spec.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::resources::{Container, PodSpec, ResourceRequirements};

/// Resources of one pod as allocated or actuated: per container name, plus pod-level resources.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodResourceState {
    #[serde(rename = "ContainerResources", default)]
    pub container_resources: BTreeMap<String, ResourceRequirements>,
    #[serde(
        rename = "PodLevelResources",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub pod_level_resources: Option<ResourceRequirements>,
}

impl PodSpec {
    /// This pod with its resizable containers' resources (and pod-level resources) replaced by
    /// an allocation. Containers the allocation does not name keep their spec resources.
    pub fn with_allocated(&self, allocated: &PodResourceState) -> PodSpec {
        let mut pod = self.clone();
        let overlay = |c: &mut Container| {
            if let Some(r) = allocated.container_resources.get(&c.name) {
                c.resources = r.clone();
            }
        };
        pod.containers.iter_mut().for_each(overlay);
        pod.init_containers
            .iter_mut()
            .filter(|c| c.sidecar)
            .for_each(overlay);
        if let Some(r) = &allocated.pod_level_resources {
            pod.pod_resources = Some(r.clone());
        }
        pod
    }

    /// The allocation this spec asks for: every resizable container's full resources plus
    /// pod-level resources (spec §4.1).
    pub fn resource_state(&self) -> PodResourceState {
        PodResourceState {
            container_resources: self
                .resizable_containers()
                .map(|c| (c.name.clone(), c.resources.clone()))
                .collect(),
            pod_level_resources: self.pod_resources.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::*;

    #[test]
    fn allocation_overlay_round_trips() {
        let mut p = pod("u", vec![container("a", "cpu=100m", "cpu=200m")]);
        p.init_containers = vec![sidecar("s", "cpu=10m", ""), container("init", "cpu=1", "")];
        let state = p.resource_state();
        assert_eq!(
            state.container_resources.keys().collect::<Vec<_>>(),
            ["a", "s"]
        );
        let mut allocated = state.clone();
        allocated
            .container_resources
            .insert("a".into(), reqs("cpu=500m", "cpu=1"));
        let overlaid = p.with_allocated(&allocated);
        assert_eq!(overlaid.containers[0].resources, reqs("cpu=500m", "cpu=1"));
        assert_eq!(overlaid.resource_state(), allocated);
        // Non-sidecar init containers are never resized.
        assert_eq!(overlaid.init_containers[1], p.init_containers[1]);
    }
}
