//! The `resizelet` binary run as a user runs it, for the tests that need no container runtime
//! (`hardening`, `config_cli`, `kubelet_config`). They include this file alone with
//! `#[path = "support/cli.rs"] mod cli;`, not the containerd harness of `support/mod.rs`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `resizelet <args>` with `env` as its whole environment: no setting, kubeconfig or
/// in-cluster service of the test's own environment leaks in.
pub fn resizelet(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_resizelet"))
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .expect("run resizelet")
}

/// `resizelet run --node-name w1 --root-dir <root_dir>` and each `(flag, value)` of `flags`,
/// with no environment.
pub fn run(root_dir: &Path, flags: &[(&str, &str)]) -> Output {
    let root_dir = root_dir.to_str().expect("a UTF-8 root-dir");
    let mut args = vec!["run", "--node-name", "w1", "--root-dir", root_dir];
    args.extend(flags.iter().flat_map(|(flag, value)| [*flag, *value]));
    resizelet(&args, &[])
}

/// The output's stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts that `out` exited with `code` and said `text` on stderr, without a panic.
pub fn assert_refused(out: &Output, code: i32, text: &str) {
    let e = stderr(out);
    assert_eq!(out.status.code(), Some(code), "{e}");
    assert!(e.contains(text), "want {text:?} in: {e}");
    assert!(!e.contains("panicked"), "{e}");
}

/// What `run` said when a flag named a file that does not exist.
pub struct MissingFile {
    /// The test's directory, holding root-dir `a/b/state` (not created) and the missing file.
    pub dir: tempfile::TempDir,
    pub state: PathBuf,
    pub missing: PathBuf,
    pub stderr: String,
}

/// `run` with `flag` naming a file that does not exist: asserts exit code 1, an error that
/// names the file, and that nothing was created, not even root-dir's parents.
pub fn run_with_missing_file(flag: &str) -> MissingFile {
    let dir = tempfile::tempdir().expect("a temp dir");
    let state = dir.path().join("a/b/state");
    let missing = dir.path().join("missing");
    let out = run(&state, &[(flag, missing.to_str().expect("a UTF-8 path"))]);
    assert_refused(&out, 1, &missing.display().to_string());
    assert!(
        !dir.path().join("a").exists(),
        "{flag}: root-dir or its parents created"
    );
    MissingFile {
        dir,
        state,
        missing,
        stderr: stderr(&out),
    }
}
