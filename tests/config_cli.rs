//! The configuration through the real binary: `config default` round-trips, bad files are
//! refused with the key named, `run` with a missing file does nothing else, and the README's
//! settings table is `config docs`.

#[path = "support/cli.rs"]
mod cli;

use cli::{resizelet, run_with_missing_file};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn config_default_round_trips_and_layers_apply() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.toml");
    let out = resizelet(&["config", "default"], &[]);
    assert!(out.status.success());
    std::fs::write(&file, &out.stdout).unwrap();
    let f = file.to_str().unwrap();
    // file defaults, env beats the file, the flag beats the env
    let out = resizelet(
        &["config", "check", "--config", f, "--kube-api-qps", "7"],
        &[
            ("NODE_NAME", "worker-1"),
            ("RESIZELET_KUBE_API_QPS", "6"),
            ("RESIZELET_KUBE_API_BURST", "3"),
        ],
    );
    let effective = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for line in [
        "node-name = \"worker-1\"",
        "kube-api-qps = 7.0",
        "kube-api-burst = 3",
        "admin-address = \"127.0.0.1:10258\"",
        "in-progress-threshold-ms = 100",
    ] {
        assert!(
            effective.lines().any(|l| l == line),
            "{line} missing in\n{effective}"
        );
    }
}

#[test]
fn unknown_key_is_refused_with_key_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.toml");
    std::fs::write(&file, "node-name = \"w1\"\nkube-api-qsp = 5\n").unwrap();
    let out = resizelet(
        &["config", "check", "--config", file.to_str().unwrap()],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("config file {}", file.display())),
        "{err}"
    );
    assert!(
        err.contains("line 2") && err.contains("unknown field `kube-api-qsp`"),
        "{err}"
    );
}

#[test]
fn run_with_a_missing_config_file_stops_before_doing_anything() {
    let r = run_with_missing_file("--config");
    assert_eq!(
        r.stderr.trim(),
        format!("error: config file {} not found", r.missing.display())
    );
}

#[test]
fn invalid_values_name_the_key() {
    let out = resizelet(&["run", "--node-name", "w1", "--kube-api-burst", "0"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("kube-api-burst = \"0\": must be from 1 to 1000000"));
    let out = resizelet(
        &["run", "--node-name", "w1", "--admin-address", "localhost"],
        &[],
    );
    assert!(text(&out.stderr).contains("admin-address = \"localhost\": must be ip:port"));
}

#[test]
fn the_readme_settings_table_is_config_docs() {
    let out = resizelet(&["config", "docs"], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    assert!(table.lines().count() > 10, "{table}");
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("read README.md");
    assert!(
        readme.contains(&table),
        "README.md's settings table differs from `resizelet config docs`; replace it with:\n{table}"
    );
}

#[test]
fn settings_of_other_commands_come_from_the_same_table() {
    // `check` takes the host settings by flag and environment, with run's validation of the
    // CRI deadline
    let out = resizelet(
        &["check", "--cri-timeout-ms", "0"],
        &[(
            "RESIZELET_CONTAINER_RUNTIME_ENDPOINT",
            "unix:///nonexistent.sock",
        )],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("cri-timeout-ms = \"0\": must be from 1 to 600000"),
        "{}",
        text(&out.stderr)
    );
    // a bad value from the environment names the variable
    let out = resizelet(&["check"], &[("RESIZELET_CGROUP_DRIVER", "Systemd")]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains(
            "environment variable RESIZELET_CGROUP_DRIVER=\"Systemd\" (for --cgroup-driver)"
        ),
        "{err}"
    );
    // run-only settings are not flags of check
    let out = resizelet(&["check", "--kube-api-qps", "5"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("unexpected argument '--kube-api-qps'"));
}
