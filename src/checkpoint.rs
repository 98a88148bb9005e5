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

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::core::state::{decode, encode};

/// Checkpoints as files `<root>/allocated_pods_state` and `<root>/actuated_pods_state`
/// (resizelet's own directory, never the kubelet's). Writes are atomic: temp file in the same
/// directory, fsync, rename, fsync of the directory.
pub struct FileCheckpointStore {
    root: PathBuf,
    /// Last bytes written per kind, to skip unchanged writes.
    last: Mutex<[Option<Vec<u8>>; 2]>,
}

fn slot(kind: CheckpointKind) -> usize {
    match kind {
        CheckpointKind::Allocated => 0,
        CheckpointKind::Actuated => 1,
    }
}

impl FileCheckpointStore {
    /// Creates `root` (mode 0700) if it does not exist.
    pub fn new(root: impl Into<PathBuf>) -> Result<Self, CheckpointError> {
        let root = root.into();
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&root)
            .map_err(|source| CheckpointError::Write {
                path: root.clone(),
                source,
            })?;
        Ok(FileCheckpointStore {
            root,
            last: Mutex::new([None, None]),
        })
    }

    pub fn path(&self, kind: CheckpointKind) -> PathBuf {
        self.root.join(kind.file_name())
    }

    fn quarantine(&self, path: &Path, reason: String) -> CheckpointError {
        let stamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut quarantined = path.with_file_name(format!(
            "{}.corrupt-{stamp}",
            path.file_name().unwrap_or_default().to_string_lossy()
        ));
        let mut n = 1;
        while quarantined.exists() {
            quarantined = path.with_file_name(format!(
                "{}.corrupt-{stamp}-{n}",
                path.file_name().unwrap_or_default().to_string_lossy()
            ));
            n += 1;
        }
        if let Err(e) = fs::rename(path, &quarantined) {
            return CheckpointError::Corrupt {
                path: path.to_path_buf(),
                reason: format!("{reason}; moving it aside failed: {e}"),
                quarantined: path.to_path_buf(),
            };
        }
        CheckpointError::Corrupt {
            path: path.to_path_buf(),
            reason,
            quarantined,
        }
    }
}

fn write_err(path: &Path) -> impl Fn(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Write {
        path: path.to_path_buf(),
        source,
    }
}

impl CheckpointStore for FileCheckpointStore {
    fn load(&self, kind: CheckpointKind) -> Result<CheckpointData, CheckpointError> {
        let path = self.path(kind);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(CheckpointData::default())
            }
            Err(source) => return Err(CheckpointError::Read { path, source }),
        };
        match decode(&bytes) {
            Ok(data) => {
                self.last.lock().expect("checkpoint lock")[slot(kind)] = Some(bytes);
                Ok(data)
            }
            Err(e) => Err(self.quarantine(&path, e.to_string())),
        }
    }

    fn save(&self, kind: CheckpointKind, data: &CheckpointData) -> Result<(), CheckpointError> {
        let bytes = encode(data);
        let mut last = self.last.lock().expect("checkpoint lock");
        if last[slot(kind)].as_ref() == Some(&bytes) {
            return Ok(());
        }
        let path = self.path(kind);
        let tmp = path.with_file_name(format!(".{}.tmp", kind.file_name()));
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(write_err(&tmp))?;
        file.write_all(&bytes).map_err(write_err(&tmp))?;
        file.sync_all().map_err(write_err(&tmp))?;
        drop(file);
        fs::rename(&tmp, &path).map_err(write_err(&path))?;
        File::open(&self.root)
            .and_then(|d| d.sync_all())
            .map_err(write_err(&self.root))?;
        last[slot(kind)] = Some(bytes);
        Ok(())
    }
}

/// In-memory store for unit tests; `fail_saves` makes every save fail.
#[derive(Default)]
pub struct MemoryCheckpointStore {
    data: Mutex<[CheckpointData; 2]>,
    pub fail_saves: std::sync::atomic::AtomicBool,
    saves: std::sync::atomic::AtomicUsize,
}

impl MemoryCheckpointStore {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn saves(&self) -> usize {
        self.saves.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn get(&self, kind: CheckpointKind) -> CheckpointData {
        self.data.lock().expect("store lock")[slot(kind)].clone()
    }
}

impl CheckpointStore for MemoryCheckpointStore {
    fn load(&self, kind: CheckpointKind) -> Result<CheckpointData, CheckpointError> {
        Ok(self.get(kind))
    }

    fn save(&self, kind: CheckpointKind, data: &CheckpointData) -> Result<(), CheckpointError> {
        if self.fail_saves.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(CheckpointError::Write {
                path: PathBuf::from(kind.file_name()),
                source: std::io::Error::other("injected save failure"),
            });
        }
        self.saves.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.data.lock().expect("store lock")[slot(kind)] = data.clone();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::resources::testing::reqs;
    use crate::core::state::PodResourceState;
    use std::os::unix::fs::PermissionsExt;

    fn sample(cpu: &str) -> CheckpointData {
        let mut pod = PodResourceState::default();
        pod.container_resources
            .insert("app".into(), reqs(&format!("cpu={cpu}"), ""));
        let mut data = CheckpointData::default();
        data.entries.insert("uid-1".into(), pod);
        data
    }

    #[test]
    fn missing_file_is_empty_state_and_save_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("state");
        let store = FileCheckpointStore::new(&root).unwrap();
        assert_eq!(
            fs::metadata(&root).unwrap().permissions().mode() & 0o777,
            0o700
        );
        assert_eq!(
            store.load(CheckpointKind::Allocated).unwrap(),
            CheckpointData::default()
        );
        store
            .save(CheckpointKind::Allocated, &sample("100m"))
            .unwrap();
        let path = store.path(CheckpointKind::Allocated);
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // a fresh store (a restart) reads it back
        let again = FileCheckpointStore::new(&root).unwrap();
        assert_eq!(
            again.load(CheckpointKind::Allocated).unwrap(),
            sample("100m")
        );
        assert_eq!(
            again.load(CheckpointKind::Actuated).unwrap(),
            CheckpointData::default()
        );
    }

    #[test]
    fn leftover_temp_file_from_a_crash_is_ignored_and_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileCheckpointStore::new(dir.path()).unwrap();
        store
            .save(CheckpointKind::Actuated, &sample("100m"))
            .unwrap();
        // a crash after writing the temp file but before the rename
        fs::write(dir.path().join(".actuated_pods_state.tmp"), b"{half").unwrap();
        let store = FileCheckpointStore::new(dir.path()).unwrap();
        assert_eq!(
            store.load(CheckpointKind::Actuated).unwrap(),
            sample("100m")
        );
        store
            .save(CheckpointKind::Actuated, &sample("200m"))
            .unwrap();
        assert_eq!(
            store.load(CheckpointKind::Actuated).unwrap(),
            sample("200m")
        );
    }

    #[test]
    fn corrupt_file_is_quarantined_with_its_bytes_and_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileCheckpointStore::new(dir.path()).unwrap();
        store
            .save(CheckpointKind::Allocated, &sample("100m"))
            .unwrap();
        let path = store.path(CheckpointKind::Allocated);
        let tampered = fs::read_to_string(&path).unwrap().replace("100m", "999m");
        fs::write(&path, &tampered).unwrap();

        let err = FileCheckpointStore::new(dir.path())
            .unwrap()
            .load(CheckpointKind::Allocated)
            .unwrap_err();
        let CheckpointError::Corrupt {
            reason,
            quarantined,
            ..
        } = &err
        else {
            panic!("{err}")
        };
        assert!(reason.contains("checksum mismatch"), "{reason}");
        assert!(!path.exists(), "corrupt file must be moved aside");
        assert_eq!(fs::read_to_string(quarantined).unwrap(), tampered);
        let msg = err.to_string();
        assert!(msg.contains("moved aside to"), "{msg}");
        assert!(msg.starts_with("checkpoint "), "{msg}");
    }

    #[test]
    fn unchanged_content_is_not_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileCheckpointStore::new(dir.path()).unwrap();
        store
            .save(CheckpointKind::Allocated, &sample("100m"))
            .unwrap();
        let path = store.path(CheckpointKind::Allocated);
        // Replace the file behind the store's back: an unchanged save must not touch it.
        fs::write(&path, b"sentinel").unwrap();
        store
            .save(CheckpointKind::Allocated, &sample("100m"))
            .unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"sentinel");
    }

    #[test]
    fn memory_store_can_fail_saves() {
        let store = MemoryCheckpointStore::new();
        store
            .fail_saves
            .store(true, std::sync::atomic::Ordering::SeqCst);
        assert!(store.save(CheckpointKind::Allocated, &sample("1")).is_err());
        assert_eq!(store.saves(), 0);
    }
}
