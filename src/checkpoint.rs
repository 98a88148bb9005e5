//! Checkpoint store for allocated and actuated state: atomic, checksummed, versioned files.

use std::path::PathBuf;

use crate::core::state::{CheckpointData, CheckpointKind};

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint {path} is corrupt ({reason}); moved aside to {quarantined}: inspect it, then delete it to re-seed state from the runtime")]
    Corrupt {
        path: PathBuf,
        reason: String,
        quarantined: PathBuf,
    },
    #[error("cannot read checkpoint {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write checkpoint {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Durable store of the allocated and actuated checkpoints. Real: `FileCheckpointStore`;
/// in memory: `MemoryCheckpointStore`.
pub trait CheckpointStore: Send + Sync {
    /// A missing file is empty state; a corrupt one is quarantined and refused.
    fn load(&self, kind: CheckpointKind) -> Result<CheckpointData, CheckpointError>;
    fn save(&self, kind: CheckpointKind, data: &CheckpointData) -> Result<(), CheckpointError>;
}
