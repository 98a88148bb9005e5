//! Checkpoint store for allocated and actuated state: atomic, checksummed, versioned files.

use std::path::PathBuf;

use crate::core::state::{CheckpointData, CheckpointKind, PodResourceState};

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint {path} is corrupt ({reason}); moved to {quarantined}: inspect it (the next start re-seeds this state from the runtime)")]
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
    #[error("unsafe checkpoint directory {path}: {reason}")]
    Unsafe { path: PathBuf, reason: String },
}

/// Durable store of the allocated and actuated checkpoints. Real: `FileCheckpointStore`;
/// in memory: `MemoryCheckpointStore`.
pub trait CheckpointStore: Send + Sync {
    /// Every pod's entry. Nothing stored is empty state; a corrupt file is quarantined and
    /// refused.
    fn load(&self, kind: CheckpointKind) -> Result<CheckpointData, CheckpointError>;
    /// Durably stores one pod's entry (`None`: forgets the pod); other pods are untouched, so
    /// saves of different pods may run concurrently. Saves of one pod must not overlap.
    fn save_pod(
        &self,
        kind: CheckpointKind,
        uid: &str,
        entry: Option<&PodResourceState>,
    ) -> Result<(), CheckpointError>;
}

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::core::state::{decode, encode};

/// Checkpoints as one file per pod, `<root>/allocated_pods_state.d/<uid>` and
/// `<root>/actuated_pods_state.d/<uid>` (resizelet's own directory, never the kubelet's), each a
/// checksummed document holding that pod's entry. A save writes only its pod's file, so its
/// cost does not grow with the number of pods and saves of different pods run concurrently.
/// Writes are atomic: temp file in the same directory, fsync, rename; the directory is fsync'd
/// when a pod's file is created or removed (see `write_pod` for why not on every replace).
/// The single-file layout of resizelet 0.1 (`<root>/allocated_pods_state`) is read and
/// migrated on load.
pub struct FileCheckpointStore {
    root: PathBuf,
    /// Last bytes written per kind and pod, to skip unchanged writes.
    last: Mutex<[std::collections::BTreeMap<String, Vec<u8>>; 2]>,
}

fn slot(kind: CheckpointKind) -> usize {
    match kind {
        CheckpointKind::Allocated => 0,
        CheckpointKind::Actuated => 1,
    }
}

/// Pod UIDs become file names: only the characters a UID has.
fn valid_uid(uid: &str) -> bool {
    !uid.is_empty()
        && !uid.starts_with('.')
        && uid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// Largest checkpoint file read (one pod's entry is a few KiB; the 0.1 single file of a full
/// node well below this). A larger file is quarantined unread: reading it whole would let a
/// stray file exhaust a memory-limited agent on every start.
pub const MAX_CHECKPOINT_BYTES: u64 = 4 << 20;

/// Opens never follow a symlink, and never block on a FIFO planted in the directory.
const NO_FOLLOW: i32 = nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC;

fn euid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// Checks (or creates, mode 0700) one state directory without following a symlink: it must be a
/// directory owned by resizelet's uid; group/world write permission is removed with a warning
/// (another local user could otherwise plant files or links in it).
fn secure_dir(dir: &Path, recursive: bool) -> Result<(), CheckpointError> {
    let unsafe_dir = |reason: String| CheckpointError::Unsafe {
        path: dir.to_path_buf(),
        reason,
    };
    match fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fs::DirBuilder::new()
                .recursive(recursive)
                .mode(0o700)
                .create(dir)
                .map_err(write_err(dir))?;
        }
        Err(e) => return Err(read_err(dir)(e)),
        Ok(m) if m.file_type().is_symlink() => {
            return Err(unsafe_dir(format!(
                "it is a symlink (to {}); resizelet follows no symlink in its state directory: give the target path itself",
                fs::read_link(dir).map_or_else(|e| e.to_string(), |t| t.display().to_string())
            )))
        }
        Ok(m) if !m.is_dir() => return Err(unsafe_dir("it is not a directory".into())),
        Ok(_) => {}
    }
    let d = OpenOptions::new()
        .read(true)
        .custom_flags(NO_FOLLOW | nix::libc::O_DIRECTORY)
        .open(dir)
        .map_err(read_err(dir))?;
    let m = d.metadata().map_err(read_err(dir))?;
    if m.uid() != euid() {
        return Err(unsafe_dir(format!(
            "owned by uid {}, not by resizelet's uid {}",
            m.uid(),
            euid()
        )));
    }
    let mode = m.mode() & 0o7777;
    if mode & 0o022 != 0 {
        let fixed = mode & !0o022;
        d.set_permissions(fs::Permissions::from_mode(fixed))
            .map_err(write_err(dir))?;
        tracing::warn!(
            path = %dir.display(),
            "state directory was group/world-writable (mode {mode:04o}); set to {fixed:04o}"
        );
    }
    Ok(())
}

fn fsync_dir(dir: &Path) -> Result<(), CheckpointError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(write_err(dir))
}

impl FileCheckpointStore {
    /// Creates `root` and the per-kind directories (mode 0700) if they do not exist; refuses
    /// them if they are symlinks or not owned by resizelet's uid, and removes group/world write
    /// permission (with a warning).
    pub fn new(root: impl Into<PathBuf>) -> Result<Self, CheckpointError> {
        let root = root.into();
        let store = FileCheckpointStore {
            root,
            last: Mutex::new(Default::default()),
        };
        secure_dir(&store.root, true)?;
        for kind in [CheckpointKind::Allocated, CheckpointKind::Actuated] {
            secure_dir(&store.dir(kind), false)?;
        }
        Ok(store)
    }

    /// The directory of one kind's per-pod files.
    pub fn dir(&self, kind: CheckpointKind) -> PathBuf {
        self.root.join(format!("{}.d", kind.file_name()))
    }

    /// One pod's file.
    pub fn pod_path(&self, kind: CheckpointKind, uid: &str) -> PathBuf {
        self.dir(kind).join(uid)
    }

    /// The single file of the 0.1 layout.
    pub fn legacy_path(&self, kind: CheckpointKind) -> PathBuf {
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
        while fs::symlink_metadata(&quarantined).is_ok() {
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

    /// Reads and decodes one file; `None` when it does not exist. A symlink, a non-regular
    /// file, a file of another uid or one above [`MAX_CHECKPOINT_BYTES`] is quarantined unread.
    fn read(&self, path: &Path) -> Result<Option<(Vec<u8>, CheckpointData)>, CheckpointError> {
        let file = match OpenOptions::new()
            .read(true)
            .custom_flags(NO_FOLLOW)
            .open(path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.raw_os_error() == Some(nix::libc::ELOOP) => {
                return Err(self.quarantine(path, "it is a symlink".into()))
            }
            Err(source) => {
                return Err(CheckpointError::Read {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        let meta = file.metadata().map_err(read_err(path))?;
        if let Some(reason) = refuse_file(&meta) {
            drop(file);
            return Err(self.quarantine(path, reason));
        }
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        file.take(MAX_CHECKPOINT_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(read_err(path))?;
        if bytes.len() as u64 > MAX_CHECKPOINT_BYTES {
            return Err(self.quarantine(path, too_large(bytes.len() as u64)));
        }
        match decode(&bytes) {
            Ok(data) => Ok(Some((bytes, data))),
            Err(e) => Err(self.quarantine(path, e.to_string())),
        }
    }

    fn write_pod(
        &self,
        kind: CheckpointKind,
        uid: &str,
        bytes: &[u8],
        created: bool,
    ) -> Result<(), CheckpointError> {
        let dir = self.dir(kind);
        let path = dir.join(uid);
        let tmp = dir.join(format!(".{uid}.tmp"));
        // a leftover of a crash (or anything planted there): unlinked, never followed; the
        // temp file is then created fresh, refusing to open anything that exists
        match fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(write_err(&tmp)(e)),
        }
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(NO_FOLLOW)
            .open(&tmp)
            .map_err(write_err(&tmp))?;
        file.write_all(bytes).map_err(write_err(&tmp))?;
        file.sync_all().map_err(write_err(&tmp))?;
        drop(file);
        // Replacing a pod's file needs no directory fsync (the kubelet's filestore does none
        // at all): the rename is atomic, and the file the directory names — old or new — is
        // complete and fsync'd. A process crash sees the new file at once; only a power loss
        // before the journal commits the rename could bring back the previous version, and a
        // power loss reboots the node, which restarts every container anyway. Creating a pod's
        // first file does fsync the directory, so a pod is never missing from it.
        fs::rename(&tmp, &path).map_err(write_err(&path))?;
        if created {
            fsync_dir(&dir)?;
        }
        Ok(())
    }
}

/// Why an open checkpoint file is refused unread (`None`: fine).
fn refuse_file(meta: &fs::Metadata) -> Option<String> {
    if !meta.file_type().is_file() {
        Some("it is not a regular file".into())
    } else if meta.uid() != euid() {
        Some(format!(
            "owned by uid {}, not by resizelet's uid {}",
            meta.uid(),
            euid()
        ))
    } else if meta.len() > MAX_CHECKPOINT_BYTES {
        Some(too_large(meta.len()))
    } else {
        None
    }
}

fn too_large(len: u64) -> String {
    format!("{len} bytes, above the limit of {MAX_CHECKPOINT_BYTES} bytes; not read")
}

fn read_err(path: &Path) -> impl Fn(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Read {
        path: path.to_path_buf(),
        source,
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
        let mut data = CheckpointData::default();
        let mut last = std::collections::BTreeMap::new();
        // the 0.1 single file, if any: read first, migrated below
        let legacy = self.legacy_path(kind);
        let migrate = self.read(&legacy)?.map(|(_, d)| d);
        if let Some(old) = &migrate {
            data.entries.extend(old.entries.clone());
        }
        let dir = self.dir(kind);
        let entries = fs::read_dir(&dir).map_err(|source| CheckpointError::Read {
            path: dir.clone(),
            source,
        })?;
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| CheckpointError::Read {
                path: dir.clone(),
                source,
            })?;
            let Ok(name) = entry.file_name().into_string() else {
                tracing::warn!(
                    dir = %dir.display(),
                    name = ?entry.file_name(),
                    "ignoring a file whose name is not UTF-8 (not a pod uid)"
                );
                continue;
            };
            // temp files of interrupted writes are not state
            if name.starts_with('.') {
                continue;
            }
            if let Some((uid, _)) = name.split_once(".corrupt-") {
                tracing::warn!(
                    pod_uid = uid,
                    quarantined = %dir.join(&name).display(),
                    "a quarantined checkpoint of this pod is kept aside; its state was re-seeded from the runtime (remove the file once inspected)"
                );
                continue;
            }
            if !valid_uid(&name) {
                tracing::warn!(
                    path = %dir.join(&name).display(),
                    "ignoring a file whose name is not a pod uid"
                );
                continue;
            }
            names.push(name);
        }
        names.sort();
        for uid in names {
            let path = dir.join(&uid);
            let Some((bytes, pod)) = self.read(&path)? else {
                continue;
            };
            match pod.entries.get(&uid) {
                Some(entry) if pod.entries.len() == 1 => {
                    data.entries.insert(uid.clone(), entry.clone());
                    last.insert(uid, bytes);
                }
                _ => {
                    return Err(self.quarantine(
                        &path,
                        format!("the file does not hold exactly the entry of pod {uid}"),
                    ))
                }
            }
        }
        self.last.lock().expect("checkpoint lock")[slot(kind)] = last;
        if let Some(old) = migrate {
            for (uid, entry) in &old.entries {
                if !valid_uid(uid) {
                    tracing::warn!(
                        path = %legacy.display(),
                        pod_uid = ?uid,
                        "not migrating an entry whose pod uid is not a valid file name"
                    );
                    continue;
                }
                if fs::symlink_metadata(self.pod_path(kind, uid)).is_err() {
                    self.save_pod(kind, uid, Some(entry))?;
                }
            }
            fs::remove_file(&legacy).map_err(write_err(&legacy))?;
            fsync_dir(&self.root)?;
        }
        Ok(data)
    }

    fn save_pod(
        &self,
        kind: CheckpointKind,
        uid: &str,
        entry: Option<&PodResourceState>,
    ) -> Result<(), CheckpointError> {
        let path = self.pod_path(kind, uid);
        if !valid_uid(uid) {
            return Err(CheckpointError::Write {
                path,
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("pod uid {uid:?} is not a valid file name"),
                ),
            });
        }
        match entry {
            Some(entry) => {
                let mut one = CheckpointData::default();
                one.entries.insert(uid.to_string(), entry.clone());
                let bytes = encode(&one);
                // `last` holds every file loaded or written, so it also says whether this one exists
                let exists = match self.last.lock().expect("checkpoint lock")[slot(kind)].get(uid) {
                    Some(last) if *last == bytes => return Ok(()),
                    Some(_) => true,
                    None => false,
                };
                self.write_pod(kind, uid, &bytes, !exists)?;
                self.last.lock().expect("checkpoint lock")[slot(kind)]
                    .insert(uid.to_string(), bytes);
            }
            None => {
                match fs::remove_file(&path) {
                    Ok(()) => fsync_dir(&self.dir(kind))?,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(write_err(&path)(e)),
                }
                self.last.lock().expect("checkpoint lock")[slot(kind)].remove(uid);
            }
        }
        Ok(())
    }
}

/// In-memory store for unit tests; `fail_saves` makes every save fail.
#[cfg(any(test, feature = "testing"))]
#[derive(Default)]
pub struct MemoryCheckpointStore {
    data: Mutex<[CheckpointData; 2]>,
    pub fail_saves: std::sync::atomic::AtomicBool,
    saves: std::sync::atomic::AtomicUsize,
}

#[cfg(any(test, feature = "testing"))]
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

    /// Counts a save, or fails it when `fail_saves` is set.
    fn check_fault(&self, kind: CheckpointKind) -> Result<(), CheckpointError> {
        if self.fail_saves.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(CheckpointError::Write {
                path: PathBuf::from(kind.file_name()),
                source: std::io::Error::other("injected save failure"),
            });
        }
        self.saves.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }
}

#[cfg(any(test, feature = "testing"))]
impl CheckpointStore for MemoryCheckpointStore {
    fn load(&self, kind: CheckpointKind) -> Result<CheckpointData, CheckpointError> {
        Ok(self.get(kind))
    }

    fn save_pod(
        &self,
        kind: CheckpointKind,
        uid: &str,
        entry: Option<&PodResourceState>,
    ) -> Result<(), CheckpointError> {
        self.check_fault(kind)?;
        let mut data = self.data.lock().expect("store lock");
        match entry {
            Some(e) => data[slot(kind)].entries.insert(uid.to_string(), e.clone()),
            None => data[slot(kind)].entries.remove(uid),
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::state::PodResourceState;
    use crate::testing::reqs;
    use std::os::unix::fs::PermissionsExt;

    /// Saves every pod of `data`, one `save_pod` each.
    fn save_all(
        store: &dyn CheckpointStore,
        kind: CheckpointKind,
        data: &CheckpointData,
    ) -> Result<(), CheckpointError> {
        for (uid, entry) in &data.entries {
            store.save_pod(kind, uid, Some(entry))?;
        }
        Ok(())
    }

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
        save_all(&store, CheckpointKind::Allocated, &sample("100m")).unwrap();
        let path = store.pod_path(CheckpointKind::Allocated, "uid-1");
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
        save_all(&store, CheckpointKind::Actuated, &sample("100m")).unwrap();
        // a crash after writing the temp file but before the rename
        fs::write(
            store.dir(CheckpointKind::Actuated).join(".uid-1.tmp"),
            b"{half",
        )
        .unwrap();
        let store = FileCheckpointStore::new(dir.path()).unwrap();
        assert_eq!(
            store.load(CheckpointKind::Actuated).unwrap(),
            sample("100m")
        );
        save_all(&store, CheckpointKind::Actuated, &sample("200m")).unwrap();
        assert_eq!(
            store.load(CheckpointKind::Actuated).unwrap(),
            sample("200m")
        );
    }

    #[test]
    fn corrupt_file_is_quarantined_with_its_bytes_and_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileCheckpointStore::new(dir.path()).unwrap();
        save_all(&store, CheckpointKind::Allocated, &sample("100m")).unwrap();
        let path = store.pod_path(CheckpointKind::Allocated, "uid-1");
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
        assert!(msg.contains("moved to"), "{msg}");
        assert!(msg.starts_with("checkpoint "), "{msg}");
    }

    #[test]
    fn unchanged_content_is_not_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileCheckpointStore::new(dir.path()).unwrap();
        save_all(&store, CheckpointKind::Allocated, &sample("100m")).unwrap();
        let path = store.pod_path(CheckpointKind::Allocated, "uid-1");
        // Replace the file behind the store's back: an unchanged save must not touch it.
        fs::write(&path, b"sentinel").unwrap();
        save_all(&store, CheckpointKind::Allocated, &sample("100m")).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"sentinel");
    }

    #[test]
    fn a_pod_save_writes_only_that_pods_file_and_none_forgets_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileCheckpointStore::new(dir.path()).unwrap();
        let mut two = sample("100m");
        two.entries
            .insert("uid-2".into(), sample("300m").entries["uid-1"].clone());
        save_all(&store, CheckpointKind::Allocated, &two).unwrap();
        let other = store.pod_path(CheckpointKind::Allocated, "uid-2");
        fs::write(&other, b"sentinel").unwrap();
        let changed = sample("200m").entries["uid-1"].clone();
        store
            .save_pod(CheckpointKind::Allocated, "uid-1", Some(&changed))
            .unwrap();
        assert_eq!(
            fs::read(&other).unwrap(),
            b"sentinel",
            "another pod's file was rewritten"
        );
        store
            .save_pod(CheckpointKind::Allocated, "uid-2", None)
            .unwrap();
        assert!(!other.exists());
        let again = FileCheckpointStore::new(dir.path()).unwrap();
        assert_eq!(
            again.load(CheckpointKind::Allocated).unwrap(),
            sample("200m")
        );
        // a uid that is not a file name is refused, nothing written
        assert!(store
            .save_pod(CheckpointKind::Allocated, "../x", Some(&changed))
            .is_err());
    }

    #[test]
    fn the_single_file_layout_is_migrated_on_load() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileCheckpointStore::new(dir.path()).unwrap();
        let legacy = store.legacy_path(CheckpointKind::Actuated);
        fs::write(&legacy, encode(&sample("100m"))).unwrap();
        assert_eq!(
            store.load(CheckpointKind::Actuated).unwrap(),
            sample("100m")
        );
        assert!(!legacy.exists(), "migrated files are removed");
        assert!(store.pod_path(CheckpointKind::Actuated, "uid-1").exists());
        let again = FileCheckpointStore::new(dir.path()).unwrap();
        assert_eq!(
            again.load(CheckpointKind::Actuated).unwrap(),
            sample("100m")
        );
    }

    #[test]
    fn a_symlink_planted_at_the_temp_path_is_replaced_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileCheckpointStore::new(dir.path().join("state")).unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, b"precious").unwrap();
        let adir = store.dir(CheckpointKind::Allocated);
        std::os::unix::fs::symlink(&victim, adir.join(".uid-1.tmp")).unwrap();
        let outside = dir.path().join("created-outside");
        std::os::unix::fs::symlink(&outside, adir.join(".uid-2.tmp")).unwrap();
        let mut two = sample("100m");
        two.entries
            .insert("uid-2".into(), sample("300m").entries["uid-1"].clone());
        save_all(&store, CheckpointKind::Allocated, &two).unwrap();
        assert_eq!(
            fs::read(&victim).unwrap(),
            b"precious",
            "link target written"
        );
        assert!(
            !outside.exists(),
            "a dangling link created a file outside root-dir"
        );
        for uid in ["uid-1", "uid-2"] {
            let m = fs::symlink_metadata(store.pod_path(CheckpointKind::Allocated, uid)).unwrap();
            assert!(m.file_type().is_file(), "{uid} is not a regular file");
        }
        assert_eq!(store.load(CheckpointKind::Allocated).unwrap(), two);
    }

    #[test]
    fn writable_state_dirs_are_fixed_and_symlinked_or_foreign_ones_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("state");
        let store = FileCheckpointStore::new(&root).unwrap();
        let adir = store.dir(CheckpointKind::Allocated);
        for d in [&root, &adir] {
            fs::set_permissions(d, fs::Permissions::from_mode(0o777)).unwrap();
        }
        FileCheckpointStore::new(&root).unwrap();
        for d in [&root, &adir] {
            let mode = fs::metadata(d).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o755, "{} left writable", d.display());
        }
        // a symlinked kind directory (or root) is refused, nothing written through it
        let elsewhere = dir.path().join("elsewhere");
        fs::create_dir(&elsewhere).unwrap();
        fs::remove_dir(&adir).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &adir).unwrap();
        let err = FileCheckpointStore::new(&root).err().unwrap().to_string();
        assert!(
            err.starts_with(&format!(
                "unsafe checkpoint directory {}: it is a symlink",
                adir.display()
            )),
            "{err}"
        );
        let link = dir.path().join("root-link");
        std::os::unix::fs::symlink(&root, &link).unwrap();
        let err = FileCheckpointStore::new(&link).err().unwrap().to_string();
        assert!(err.contains("is a symlink"), "{err}");
        // a directory of another uid (the tests run as root, so chown works)
        fs::remove_file(&adir).unwrap();
        fs::create_dir(&adir).unwrap();
        std::os::unix::fs::chown(&adir, Some(4242), None).unwrap();
        let err = FileCheckpointStore::new(&root).err().unwrap().to_string();
        assert!(
            err.contains("owned by uid 4242, not by resizelet's uid"),
            "{err}"
        );
        assert_eq!(fs::read_dir(&elsewhere).unwrap().count(), 0);
    }

    #[test]
    fn oversized_symlinked_fifo_and_foreign_files_are_quarantined_unread() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileCheckpointStore::new(dir.path()).unwrap();
        let adir = store.dir(CheckpointKind::Allocated);
        let big = adir.join("uid-big");
        let f = File::create(&big).unwrap();
        f.set_len(MAX_CHECKPOINT_BYTES + 1).unwrap();
        drop(f);
        let target = dir.path().join("target");
        fs::write(&target, encode(&sample("1"))).unwrap();
        std::os::unix::fs::symlink(&target, adir.join("uid-link")).unwrap();
        nix::unistd::mkfifo(&adir.join("uid-fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        let foreign = adir.join("uid-foreign");
        fs::write(&foreign, encode(&sample("1"))).unwrap();
        std::os::unix::fs::chown(&foreign, Some(4242), None).unwrap();
        let mut reasons = Vec::new();
        // one refusal per load (the agent exits, its restart meets the next)
        for _ in 0..4 {
            let err = store.load(CheckpointKind::Allocated).unwrap_err();
            let CheckpointError::Corrupt {
                reason,
                quarantined,
                path,
            } = &err
            else {
                panic!("{err}")
            };
            assert!(
                fs::symlink_metadata(path).is_err(),
                "{} left in place",
                path.display()
            );
            assert!(fs::symlink_metadata(quarantined).is_ok());
            let msg = err.to_string();
            assert!(
                msg.contains(&format!("moved to {}", quarantined.display())),
                "{msg}"
            );
            assert!(!msg.contains("delete it"), "{msg}");
            reasons.push(reason.clone());
        }
        reasons.sort();
        assert_eq!(
            reasons[0],
            format!(
                "{} bytes, above the limit of {MAX_CHECKPOINT_BYTES} bytes; not read",
                MAX_CHECKPOINT_BYTES + 1
            )
        );
        assert_eq!(reasons[1], "it is a symlink");
        assert_eq!(reasons[2], "it is not a regular file");
        assert!(
            reasons[3].starts_with("owned by uid 4242"),
            "{}",
            reasons[3]
        );
        assert_eq!(fs::read(&target).unwrap(), encode(&sample("1")));
        // the quarantined files are kept aside (logged) and no longer refuse the start
        assert_eq!(
            store.load(CheckpointKind::Allocated).unwrap(),
            CheckpointData::default()
        );
    }

    #[test]
    fn names_that_are_not_pod_uids_are_skipped() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let store = FileCheckpointStore::new(dir.path()).unwrap();
        save_all(&store, CheckpointKind::Allocated, &sample("100m")).unwrap();
        let adir = store.dir(CheckpointKind::Allocated);
        fs::write(adir.join(std::ffi::OsStr::from_bytes(b"\xff\xfe")), b"x").unwrap();
        fs::write(adir.join("not a uid"), b"x").unwrap();
        assert_eq!(
            store.load(CheckpointKind::Allocated).unwrap(),
            sample("100m")
        );
    }

    #[test]
    fn memory_store_can_fail_saves() {
        let store = MemoryCheckpointStore::new();
        store
            .fail_saves
            .store(true, std::sync::atomic::Ordering::SeqCst);
        assert!(save_all(&store, CheckpointKind::Allocated, &sample("1")).is_err());
        assert_eq!(store.saves(), 0);
    }
}
