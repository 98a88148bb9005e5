//! Issue 14 through the real binary, for what needs no container runtime: bad numbers refused by
//! `config check`, `run`, `check` and `resize` alike (never a panic), nothing created on disk
//! before the configuration is known to be usable, errors that name the environment variable,
//! OS errors printed once, a non-socket endpoint said so, and bad quantities refused by
//! `resizelet resize` before anything is touched. (The rows that need containerd are in
//! `tests/hardening_containerd.rs`.)

#[path = "support/cli.rs"]
mod cli;

use std::path::Path;
use std::process::Output;

use cli::{assert_refused, resizelet, run, run_with_missing_file, stderr, MissingFile};

/// `resizelet config check --node-name w1 <extra>`.
fn config_check(extra: &[&str], env: &[(&str, &str)]) -> Output {
    let args: Vec<&str> = ["config", "check", "--node-name", "w1"]
        .into_iter()
        .chain(extra.iter().copied())
        .collect();
    resizelet(&args, env)
}

/// A kubeconfig that parses (the API server it names is never reached by these tests).
fn kubeconfig(dir: &Path) -> String {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:1\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user: {}\n",
    )
    .unwrap();
    path.to_str().unwrap().to_string()
}

fn pod_file(dir: &Path, cpu: &str, memory: &str) -> String {
    let path = dir.join("pod.json");
    let pod = serde_json::json!({
        "uid": "4f1c0000-0000-4000-8000-000000000001", "namespace": "default", "name": "web",
        "containers": [{"name": "app", "resources": {
            "requests": {"cpu": cpu, "memory": memory}, "limits": {"cpu": "1", "memory": "256Mi"}}}]
    });
    std::fs::write(&path, serde_json::to_vec(&pod).unwrap()).unwrap();
    path.to_str().unwrap().to_string()
}

/// Row 6: a CRI deadline tonic cannot represent is refused, identically, by every command.
#[test]
fn an_unrealistic_cri_timeout_is_refused_by_every_command_without_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let want = "cri-timeout-ms = \"1000000000000000000\": must be from 1 to 600000 (10 minutes)";
    let kc = kubeconfig(dir.path());
    let pod = pod_file(dir.path(), "100m", "64Mi");
    let state = dir.path().join("state");
    let runs: Vec<Vec<&str>> = vec![
        vec!["config", "check", "--node-name", "w1"],
        vec![
            "run",
            "--node-name",
            "w1",
            "--kubeconfig",
            &kc,
            "--root-dir",
            state.to_str().unwrap(),
        ],
        vec!["check"],
        vec![
            "resize",
            "--pod",
            &pod,
            "--root-dir",
            state.to_str().unwrap(),
        ],
    ];
    for mut args in runs {
        args.extend(["--cri-timeout-ms", "1000000000000000000"]);
        let out = resizelet(&args, &[]);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(want), "{args:?}: {}", stderr(&out));
        assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    }
    assert!(!state.exists(), "nothing may be created");
}

/// Row 12: a rate that would stall writes for ~1000 s is refused, not clamped.
#[test]
fn a_vanishing_api_rate_is_refused_not_clamped() {
    let out = config_check(&["--kube-api-qps", "1e-300"], &[]);
    let want = "kube-api-qps = \"1e-300\": must be a number from 0.01 to 1000000";
    assert_refused(&out, 1, want);
    let out = config_check(&["--kube-api-qps", "0.01"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("kube-api-qps = 0.01"));
}

/// Row 12: a bad value from the environment names the variable, not only the flag.
#[test]
fn an_env_var_error_names_the_env_var() {
    let out = config_check(&[], &[("RESIZELET_KUBE_API_QPS", "fast")]);
    assert_eq!(out.status.code(), Some(2));
    let e = stderr(&out);
    assert!(
        e.starts_with(
            "error: environment variable RESIZELET_KUBE_API_QPS=\"fast\" (for --kube-api-qps):"
        ),
        "{e}"
    );
    // the same value on the command line is the flag's error
    let out = config_check(&["--kube-api-qps", "fast"], &[]);
    assert_refused(&out, 2, "'--kube-api-qps <KUBE_API_QPS>'");
}

/// Row 12: `run` checks the kubeconfig and the runtime before it creates root-dir and its
/// parents; the OS error is printed once.
#[test]
fn run_creates_nothing_before_the_configuration_is_usable_and_prints_os_errors_once() {
    let MissingFile {
        dir,
        state,
        stderr: e,
        ..
    } = run_with_missing_file("--kubeconfig");
    assert_eq!(e.matches("No such file or directory").count(), 1, "{e}");
    // a usable kubeconfig, an endpoint that is a regular file: said so, still nothing created
    let kc = kubeconfig(dir.path());
    let file = dir.path().join("not-a-socket");
    std::fs::write(&file, b"").unwrap();
    let endpoint = format!("unix://{}", file.display());
    let out = run(
        &state,
        &[
            ("--kubeconfig", &kc),
            ("--container-runtime-endpoint", &endpoint),
            ("--admin-address", "127.0.0.1:0"),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let e = stderr(&out);
    assert!(
        e.contains(&format!(
            "{} is not a socket but a regular file",
            file.display()
        )),
        "{e}"
    );
    assert!(!e.contains("Connection refused"), "{e}");
    assert!(
        !dir.path().join("a").exists(),
        "root-dir created before the CRI check"
    );
}

/// Row 4: `resizelet resize` refuses negative quantities before touching anything.
#[test]
fn resize_refuses_negative_quantities_before_anything_is_touched() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    for (cpu, memory, field, value) in [
        ("-1", "64Mi", "requests[cpu]", "-1"),
        ("100m", "-64Mi", "requests[memory]", "-64Mi"),
    ] {
        let pod = pod_file(dir.path(), cpu, memory);
        let out = resizelet(
            &[
                "resize",
                "--pod",
                &pod,
                "--root-dir",
                state.to_str().unwrap(),
                "--container-runtime-endpoint",
                "unix:///nonexistent.sock",
            ],
            &[],
        );
        assert_eq!(out.status.code(), Some(1));
        let e = stderr(&out);
        assert!(
            e.contains(&format!(
                "spec.containers[0].resources.{field}: Invalid value: \"{value}\": must be greater than or equal to 0"
            )),
            "{e}"
        );
        assert!(out.stdout.is_empty(), "no outcome printed");
    }
    assert!(!state.exists(), "nothing may be created");
}
