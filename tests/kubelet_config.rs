//! The kubelet's configuration file through the real binary: `resizelet check --kubelet-config`
//! prints every node fact with its source for each fixture (cgroupfs, systemd, custom
//! cgroupRoot, LimitedSwap, custom CFS period), contradicting flags are warnings, bad files are
//! clear errors that stop `run` before it does anything, `--cgroup-root` is deprecated, and a
//! redirected log has no colour codes.

#[path = "support/cli.rs"]
mod cli;

use std::path::{Path, PathBuf};

use cli::{resizelet, run, stderr};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/kubelet")
        .join(name)
}

/// `resizelet check` with `extra` flags; no runtime to reach (its absence is one of the problems).
fn check(extra: &[&str]) -> String {
    let mut args = vec![
        "check",
        "--container-runtime-endpoint",
        "unix:///nonexistent/containerd.sock",
        "--cri-timeout-ms",
        "200",
    ];
    args.extend_from_slice(extra);
    let out = resizelet(&args, &[]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn check_file(name: &str, extra: &[&str]) -> (String, String) {
    let path = fixture(name);
    let p = path.to_str().unwrap().to_string();
    let mut args = vec!["--kubelet-config", p.as_str()];
    args.extend_from_slice(extra);
    (check(&args), p)
}

/// `check` of the fixture `name`: each of `facts` is a line, from the file; the output.
fn check_fixture_facts(name: &str, facts: &[&str]) -> String {
    let (out, p) = check_file(name, &[]);
    assert_facts(&out, &format!("kubelet config {p}"), facts);
    out
}

/// `check` looks for the pods' cgroups in a `kubepods` directory whose path has `part`.
fn assert_kubepods(out: &str, part: &str) {
    assert!(
        out.lines()
            .any(|l| l.starts_with("kubepods cgroup: ") && l.contains(part)),
        "{out}"
    );
}

/// Each of `facts` is a line of `text`, from `source`.
fn assert_facts(text: &str, source: &str, facts: &[&str]) {
    for fact in facts {
        assert_has(text, &format!("{fact} ({source})"));
    }
}

fn assert_has(text: &str, line: &str) {
    assert!(
        text.lines().any(|l| l.trim() == line),
        "no line {line:?} in:\n{text}"
    );
}

#[test]
fn check_prints_every_node_fact_and_its_source() {
    let (out, p) = check_file("cgroupfs.yaml", &[]);
    let file = format!("kubelet config {p}");
    let default = format!("kubelet default, absent from {p}");
    assert_facts(&out, &file, &["cgroupDriver: cgroupfs"]);
    assert_facts(
        &out,
        &default,
        &[
            "cgroupRoot: /",
            "cgroupsPerQOS: true",
            "cpuCFSQuota: true",
            "cpuCFSQuotaPeriod: 100ms",
            "memorySwap.swapBehavior: NoSwap",
            "failSwapOn: true",
            "systemReserved: none",
            "kubeReserved: none",
            "evictionHard memory.available: 100Mi",
        ],
    );
    assert!(out.contains("singleProcessOOMKill: "), "{out}");
    assert!(
        out.contains("featureGates.InPlacePodVerticalScaling: unset"),
        "{out}"
    );
    assert!(
        out.contains("legacy status.resize: auto, decided by `run`"),
        "{out}"
    );
}

#[test]
fn systemd_fixture() {
    let out = check_fixture_facts(
        "systemd.yaml",
        &[
            "cgroupDriver: systemd",
            "systemReserved: cpu=500m,memory=1Gi",
            "kubeReserved: cpu=250m,memory=512Mi",
            "featureGates.InPlacePodVerticalScaling: false",
        ],
    );
    // the systemd pod cgroup names: kubepods.slice under the cgroup mount
    assert_kubepods(&out, "/kubepods.slice");
}

#[test]
fn custom_cgroup_root_fixture() {
    let out = check_fixture_facts("custom-cgroup-root.yaml", &["cgroupRoot: /custom"]);
    // kubepods is looked for under the kubelet's cgroupRoot
    assert_kubepods(&out, "/custom/kubepods");
}

#[test]
fn limited_swap_fixture() {
    check_fixture_facts(
        "limited-swap.yaml",
        &["memorySwap.swapBehavior: LimitedSwap", "failSwapOn: false"],
    );
}

#[test]
fn custom_cfs_period_fixture() {
    check_fixture_facts("custom-cfs-period.yaml", &["cpuCFSQuotaPeriod: 50ms"]);
}

#[test]
fn flags_win_and_contradictions_are_warnings() {
    let (out, p) = check_file(
        "systemd.yaml",
        &["--cgroup-driver", "cgroupfs", "--swap-behavior", "NoSwap"],
    );
    assert_has(
        &out,
        "cgroupDriver: cgroupfs (resizelet setting cgroup-driver)",
    );
    assert!(
        out.contains(&format!(
            "warning: cgroup-driver = \"cgroupfs\" contradicts the kubelet's cgroupDriver \"systemd\" (kubelet config {p}); using \"cgroupfs\""
        )),
        "{out}"
    );
    // agreeing with the kubelet's default is no contradiction
    assert!(
        !out.contains("swap-behavior = \"NoSwap\" contradicts"),
        "{out}"
    );
    let (out, _) = check_file("custom-cgroup-root.yaml", &["--kubelet-cgroup-root", "/"]);
    assert!(
        out.contains(
            "warning: kubelet-cgroup-root = \"/\" contradicts the kubelet's cgroupRoot \"/custom\""
        ),
        "{out}"
    );
}

#[test]
fn invalid_and_hostile_files_are_clear_errors() {
    let (out, p) = check_file("invalid-period.yaml", &[]);
    assert!(
        out.contains(&format!(
            "cannot use the kubelet's configuration: kubelet config {p}: cpuCFSQuotaPeriod = \"50ms\": requires feature gate CustomCPUCFSQuotaPeriod"
        )),
        "{out}"
    );
    assert!(out.contains("in-place resize: NOT supported"), "{out}");

    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("config.yaml");
    std::os::unix::fs::symlink(fixture("systemd.yaml"), &link).unwrap();
    let out = check(&["--kubelet-config", link.to_str().unwrap()]);
    assert!(out.contains("is a symbolic link (to "), "{out}");

    // `run` refuses before it opens checkpoints, cgroups or the runtime
    let state = dir.path().join("state");
    let out = run(
        &state,
        &[
            ("--kubeconfig", "/nonexistent/kubeconfig"),
            (
                "--kubelet-config",
                fixture("invalid-period.yaml").to_str().unwrap(),
            ),
        ],
    );
    let e = stderr(&out);
    assert!(!out.status.success());
    assert!(
        e.contains("cpuCFSQuotaPeriod = \"50ms\": requires feature gate CustomCPUCFSQuotaPeriod"),
        "{e}"
    );
    assert!(!state.exists(), "nothing created before the error");
    let out = run(&state, &[("--kubelet-config", "/nonexistent/config.yaml")]);
    let e = stderr(&out);
    assert!(
        e.contains("kubelet config /nonexistent/config.yaml: No such file or directory"),
        "{e}"
    );
}

#[test]
fn cgroup_root_is_deprecated_and_logs_have_no_colour_when_redirected() {
    let out = check(&["--kubelet-config", "", "--cgroup-root", "/sys/fs/cgroup"]);
    assert!(
        out.contains("warning: cgroup-root (--cgroup-root, RESIZELET_CGROUP_ROOT) is deprecated"),
        "{out}"
    );
    let out = resizelet(
        &[
            "config",
            "check",
            "--node-name",
            "w1",
            "--cgroup-root",
            "/host/cgroup",
        ],
        &[],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("cgroup-mount = \"/host/cgroup\""),
        "{stdout}"
    );
    assert!(stdout.contains("# warning: cgroup-root"), "{stdout}");
    // `run` logs the deprecation through the logger; stderr is a pipe here, not a terminal
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        &dir.path().join("state"),
        &[
            ("--cgroup-root", "/sys/fs/cgroup"),
            ("--kubelet-config", "/nonexistent/config.yaml"),
        ],
    );
    let e = stderr(&out);
    assert!(e.contains("WARN") && e.contains("deprecated"), "{e}");
    assert!(!e.contains('\x1b'), "ANSI codes in a redirected log: {e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_says_whether_legacy_status_is_written_and_why() {
    let api = resizelet_double::ApiServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    api.write_kubeconfig(&kubeconfig).unwrap();
    let k = kubeconfig.to_str().unwrap().to_string();
    let run = |extra: Vec<String>| {
        let mut args = vec![
            "--kubelet-config".to_string(),
            String::new(),
            "--kubeconfig".into(),
            k.clone(),
        ];
        args.extend(extra);
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            check(&args)
        })
    };
    api.set_minor_version(32);
    let out = run(vec![]).await.unwrap();
    assert!(
        out.contains("legacy status.resize: written (auto: API server v1.32.0-double (<= 1.32) sets status.resize = Proposed"),
        "{out}"
    );
    api.set_minor_version(33);
    let out = run(vec![]).await.unwrap();
    assert!(
        out.contains(
            "legacy status.resize: not written (auto: API server v1.33.0-double (>= 1.33)"
        ),
        "{out}"
    );
    let out = run(vec!["--legacy-resize-status".into(), "true".into()])
        .await
        .unwrap();
    assert!(
        out.contains("legacy status.resize: written (legacy-resize-status = true)"),
        "{out}"
    );
}
