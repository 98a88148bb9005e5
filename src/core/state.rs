//! Allocated and actuated state (spec §2, §6) and its checkpoint document (pure encode/decode;
//! the file IO lives in `crate::checkpoint`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::resources::ResourceRequirements;

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

/// All pods' state of one kind (allocated or actuated), keyed by pod UID.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointData {
    pub entries: BTreeMap<String, PodResourceState>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CheckpointKind {
    Allocated,
    Actuated,
}

impl CheckpointKind {
    pub fn file_name(self) -> &'static str {
        match self {
            CheckpointKind::Allocated => "allocated_pods_state",
            CheckpointKind::Actuated => "actuated_pods_state",
        }
    }
}
