//! Allocated and actuated state (spec §2, §6) and its checkpoint document (pure encode/decode;
//! the file IO lives in `crate::checkpoint`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use super::allocation::PodResourceState;

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

/// Version of resizelet's checkpoint document.
pub const CHECKPOINT_VERSION: u32 = 1;

/// Why a checkpoint document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("not a checkpoint document: {0}")]
    Json(String),
    #[error("unsupported checkpoint version {found} (this resizelet reads version {CHECKPOINT_VERSION})")]
    Version { found: u32 },
    #[error("checksum mismatch: recorded {recorded}, computed {computed}")]
    Checksum { recorded: u32, computed: u32 },
    #[error("malformed checkpoint data: {0}")]
    Data(String),
}

#[derive(Serialize, Deserialize)]
struct Document {
    version: u32,
    /// The JSON of [`CheckpointData`], as a string (like the kubelet's checkpoints).
    data: String,
    /// FNV-32a of `data`'s bytes.
    checksum: u32,
}

/// FNV-1a, 32 bit (the kubelet's checkpoint checksum).
pub fn fnv32a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

/// `{"version":1,"data":"<json>","checksum":<fnv32a>}`.
pub fn encode(data: &CheckpointData) -> Vec<u8> {
    let data = serde_json::to_string(data).expect("checkpoint data serializes");
    let checksum = fnv32a(data.as_bytes());
    let mut out = serde_json::to_vec(&Document {
        version: CHECKPOINT_VERSION,
        data,
        checksum,
    })
    .expect("checkpoint document serializes");
    out.push(b'\n');
    out
}

pub fn decode(bytes: &[u8]) -> Result<CheckpointData, DecodeError> {
    let doc: Document =
        serde_json::from_slice(bytes).map_err(|e| DecodeError::Json(e.to_string()))?;
    if doc.version != CHECKPOINT_VERSION {
        return Err(DecodeError::Version { found: doc.version });
    }
    let computed = fnv32a(doc.data.as_bytes());
    if computed != doc.checksum {
        return Err(DecodeError::Checksum {
            recorded: doc.checksum,
            computed,
        });
    }
    serde_json::from_str(&doc.data).map_err(|e| DecodeError::Data(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::reqs;

    fn sample() -> CheckpointData {
        let mut pod = PodResourceState::default();
        pod.container_resources.insert(
            "app".into(),
            reqs("cpu=100m,memory=64Mi", "cpu=1,memory=1Gi"),
        );
        let mut data = CheckpointData::default();
        data.entries.insert("uid-1".into(), pod);
        data
    }

    #[test]
    fn fnv32a_known_values() {
        assert_eq!(fnv32a(b""), 0x811c9dc5);
        assert_eq!(fnv32a(b"a"), 0xe40c292c);
        assert_eq!(fnv32a(b"foobar"), 0xbf9cf968);
    }

    #[test]
    fn round_trip() {
        let bytes = encode(&sample());
        assert_eq!(decode(&bytes).unwrap(), sample());
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.starts_with("{\"version\":1,\"data\":\""), "{text}");
        assert!(text.contains("ContainerResources"), "{text}");
    }

    #[test]
    fn corruption_is_detected() {
        let bytes = encode(&sample());
        let text = String::from_utf8(bytes.clone()).unwrap();
        let tampered = text.replace("100m", "900m");
        assert!(matches!(
            decode(tampered.as_bytes()),
            Err(DecodeError::Checksum { .. })
        ));
        assert!(matches!(
            decode(&bytes[..bytes.len() / 2]),
            Err(DecodeError::Json(_))
        ));
        let future = text.replace("\"version\":1", "\"version\":7");
        assert_eq!(
            decode(future.as_bytes()),
            Err(DecodeError::Version { found: 7 })
        );
    }
}
