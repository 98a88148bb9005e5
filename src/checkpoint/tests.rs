use super::*;
use crate::core::state::CheckpointKind::{Actuated, Allocated};
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

/// A store in a fresh temporary directory (kept alive by the returned guard).
fn empty_store() -> (tempfile::TempDir, FileCheckpointStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = FileCheckpointStore::new(dir.path()).unwrap();
    (dir, store)
}

/// [`empty_store`] holding `sample("100m")` as `kind`.
fn store_holding(kind: CheckpointKind) -> (tempfile::TempDir, FileCheckpointStore) {
    let (dir, store) = empty_store();
    save_all(&store, kind, &sample("100m")).unwrap();
    (dir, store)
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
    assert_eq!(store.load(Allocated).unwrap(), CheckpointData::default());
    save_all(&store, Allocated, &sample("100m")).unwrap();
    let path = store.pod_path(Allocated, "uid-1");
    assert_eq!(
        fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // a fresh store (a restart) reads it back
    let again = FileCheckpointStore::new(&root).unwrap();
    assert_eq!(again.load(Allocated).unwrap(), sample("100m"));
    assert_eq!(again.load(Actuated).unwrap(), CheckpointData::default());
}

#[test]
fn leftover_temp_file_from_a_crash_is_ignored_and_replaced() {
    let (dir, store) = store_holding(Actuated);
    // a crash after writing the temp file but before the rename
    fs::write(store.dir(Actuated).join(".uid-1.tmp"), b"{half").unwrap();
    let store = FileCheckpointStore::new(dir.path()).unwrap();
    assert_eq!(store.load(Actuated).unwrap(), sample("100m"));
    save_all(&store, Actuated, &sample("200m")).unwrap();
    assert_eq!(store.load(Actuated).unwrap(), sample("200m"));
}

#[test]
fn corrupt_file_is_quarantined_with_its_bytes_and_refused() {
    let (dir, store) = store_holding(Allocated);
    let path = store.pod_path(Allocated, "uid-1");
    let tampered = fs::read_to_string(&path).unwrap().replace("100m", "999m");
    fs::write(&path, &tampered).unwrap();

    let err = FileCheckpointStore::new(dir.path())
        .unwrap()
        .load(Allocated)
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
    let (_dir, store) = store_holding(Allocated);
    let path = store.pod_path(Allocated, "uid-1");
    // Replace the file behind the store's back: an unchanged save must not touch it.
    fs::write(&path, b"sentinel").unwrap();
    save_all(&store, Allocated, &sample("100m")).unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"sentinel");
}

#[test]
fn a_pod_save_writes_only_that_pods_file_and_none_forgets_it() {
    let (dir, store) = empty_store();
    let mut two = sample("100m");
    two.entries
        .insert("uid-2".into(), sample("300m").entries["uid-1"].clone());
    save_all(&store, Allocated, &two).unwrap();
    let other = store.pod_path(Allocated, "uid-2");
    fs::write(&other, b"sentinel").unwrap();
    let changed = sample("200m").entries["uid-1"].clone();
    store.save_pod(Allocated, "uid-1", Some(&changed)).unwrap();
    assert_eq!(
        fs::read(&other).unwrap(),
        b"sentinel",
        "another pod's file was rewritten"
    );
    store.save_pod(Allocated, "uid-2", None).unwrap();
    assert!(!other.exists());
    let again = FileCheckpointStore::new(dir.path()).unwrap();
    assert_eq!(again.load(Allocated).unwrap(), sample("200m"));
    // a uid that is not a file name is refused, nothing written
    assert!(store.save_pod(Allocated, "../x", Some(&changed)).is_err());
}

#[test]
fn the_single_file_layout_is_migrated_on_load() {
    let (dir, store) = empty_store();
    let legacy = store.legacy_path(Actuated);
    fs::write(&legacy, encode(&sample("100m"))).unwrap();
    assert_eq!(store.load(Actuated).unwrap(), sample("100m"));
    assert!(!legacy.exists(), "migrated files are removed");
    assert!(store.pod_path(Actuated, "uid-1").exists());
    let again = FileCheckpointStore::new(dir.path()).unwrap();
    assert_eq!(again.load(Actuated).unwrap(), sample("100m"));
}

#[test]
fn a_symlink_planted_at_the_temp_path_is_replaced_never_followed() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileCheckpointStore::new(dir.path().join("state")).unwrap();
    let victim = dir.path().join("victim");
    fs::write(&victim, b"precious").unwrap();
    let adir = store.dir(Allocated);
    std::os::unix::fs::symlink(&victim, adir.join(".uid-1.tmp")).unwrap();
    let outside = dir.path().join("created-outside");
    std::os::unix::fs::symlink(&outside, adir.join(".uid-2.tmp")).unwrap();
    let mut two = sample("100m");
    two.entries
        .insert("uid-2".into(), sample("300m").entries["uid-1"].clone());
    save_all(&store, Allocated, &two).unwrap();
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
        let m = fs::symlink_metadata(store.pod_path(Allocated, uid)).unwrap();
        assert!(m.file_type().is_file(), "{uid} is not a regular file");
    }
    assert_eq!(store.load(Allocated).unwrap(), two);
}

#[test]
fn writable_state_dirs_are_fixed_and_symlinked_or_foreign_ones_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("state");
    let store = FileCheckpointStore::new(&root).unwrap();
    let adir = store.dir(Allocated);
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
    let (dir, store) = empty_store();
    let adir = store.dir(Allocated);
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
        let err = store.load(Allocated).unwrap_err();
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
    assert_eq!(store.load(Allocated).unwrap(), CheckpointData::default());
}

#[test]
fn names_that_are_not_pod_uids_are_skipped() {
    use std::os::unix::ffi::OsStrExt;
    let (_dir, store) = store_holding(Allocated);
    let adir = store.dir(Allocated);
    fs::write(adir.join(std::ffi::OsStr::from_bytes(b"\xff\xfe")), b"x").unwrap();
    fs::write(adir.join("not a uid"), b"x").unwrap();
    assert_eq!(store.load(Allocated).unwrap(), sample("100m"));
}

#[test]
fn memory_store_can_fail_saves() {
    let store = MemoryCheckpointStore::new();
    store
        .fail_saves
        .store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(save_all(&store, Allocated, &sample("1")).is_err());
    assert_eq!(store.saves(), 0);
}
