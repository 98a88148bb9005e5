//! Shared harness for the integration tests that run against a real containerd
//! (started by `scripts/test.sh`).

#![allow(dead_code)]

pub mod cluster;
pub mod engine;
pub mod kubelet;
pub mod process;
pub mod systemd;

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Environment variable naming the CRI socket of the test containerd.
pub const ENDPOINT_ENV: &str = "RESIZELET_TEST_CRI_ENDPOINT";
/// Environment variable naming the workload image imported into that containerd.
pub const IMAGE_ENV: &str = "RESIZELET_TEST_IMAGE";

fn required_env(name: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!(
            "{name} is not set: these tests need a real containerd; run them with `scripts/test.sh` \
             (as root), which starts a private containerd, imports the test images and exports \
             {ENDPOINT_ENV} and {IMAGE_ENV}"
        ),
    }
}

/// The CRI endpoint (`unix:///…/containerd.sock`); panics with instructions when unset.
/// These tests must never skip silently.
pub fn cri_endpoint() -> String {
    required_env(ENDPOINT_ENV)
}

/// The busybox workload image reference; panics with instructions when unset.
pub fn test_image() -> String {
    required_env(IMAGE_ENV)
}

/// `resizelet resize --pod <pod_file> --root-dir <state>` against the test containerd.
pub fn resize_cmd(pod_file: &std::path::Path, state: &std::path::Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_resizelet"));
    cmd.arg("resize")
        .arg("--pod")
        .arg(pod_file)
        .arg("--root-dir")
        .arg(state)
        .arg("--container-runtime-endpoint")
        .arg(cri_endpoint())
        .env_remove("RESIZELET_ALLOCATABLE");
    cmd
}

/// A fresh, UUID-shaped pod UID (unique per process and call).
pub fn unique_uid() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos() as u64;
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        (nanos >> 32) as u32,
        (nanos >> 16) as u16,
        n & 0xfff,
        pid & 0xfff,
        nanos & 0xffff_ffff_ffff
    )
}

/// Polls `check` until it returns `Some` or `timeout` passes (no blind sleeps: the interval only
/// paces the polling).
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether this runs inside the VM guest `mode` of `scripts/vm-test.sh` (`RESIZELET_VM_GUEST`);
/// elsewhere it says why the test is skipped (`needs`) and the test passes.
pub fn vm_guest(mode: &str, needs: &str) -> bool {
    if std::env::var("RESIZELET_VM_GUEST").as_deref() == Ok(mode) {
        return true;
    }
    eprintln!(
        "skipped: needs the {needs} guest of `scripts/vm-test.sh --mode {mode}` \
         (RESIZELET_VM_GUEST={mode})"
    );
    false
}

/// A cgroup file's content, trimmed; panics naming the file.
pub fn read_trimmed(dir: &std::path::Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("read {}/{file}: {e}", dir.display()))
        .trim()
        .to_string()
}

/// `resizelet check` against the test containerd with a guest's 30 s CRI deadline and this
/// cgroup driver; asserts it succeeds and says in-place resize is supported on cgroup v2;
/// returns its output.
pub fn check_v2(driver: &str) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_resizelet"))
        .args([
            "check",
            "--container-runtime-endpoint",
            &cri_endpoint(),
            "--cri-timeout-ms",
            "30000",
            "--cgroup-driver",
            driver,
        ])
        .output()
        .expect("run resizelet check");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("(cpu/memory on cgroup v2)"), "{text}");
    assert!(text.contains(&format!("cgroupDriver: {driver}")), "{text}");
    assert!(text.contains("in-place resize: supported"), "{text}");
    text
}
