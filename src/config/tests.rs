use super::*;

fn file(text: &str) -> Layer {
    parse(Path::new("/etc/resizelet/config.toml"), text).unwrap()
}

#[test]
fn the_default_file_parses_back_to_the_defaults() {
    let layer = file(&default_toml());
    assert_eq!(
        layer.clone().over(defaults()),
        defaults(),
        "config default must say the defaults"
    );
    let mut with_node = layer;
    with_node.node_name = Some("worker-1".into());
    let s = resolve(with_node).unwrap();
    assert_eq!(s.kube_api_qps, 50.0);
    assert_eq!(s.in_progress_threshold, Duration::from_millis(100));
    assert_eq!(s.admin_address.to_string(), "127.0.0.1:10258");
}

#[test]
fn flag_beats_env_beats_file_beats_default() {
    let flags = Layer {
        kube_api_qps: Some(5.0),
        ..Layer::default()
    };
    let env = Layer {
        kube_api_qps: Some(6.0),
        kube_api_burst: Some(7),
        node_name: Some("from-env".into()),
        ..Layer::default()
    };
    let f = file(
        "kube-api-qps = 8.0\nkube-api-burst = 9\ncri-timeout-ms = 10\nnode-name = \"from-file\"\n",
    );
    let s = resolve(flags.over(env).over(f)).unwrap();
    assert_eq!(s.kube_api_qps, 5.0);
    assert_eq!(s.kube_api_burst, 7);
    assert_eq!(s.host.cri_timeout, Duration::from_millis(10));
    assert_eq!(s.node_name, "from-env");
    assert_eq!(s.root_dir, PathBuf::from("/var/lib/resizelet"));
}

#[test]
fn unknown_keys_and_wrong_types_name_key_and_file() {
    let e = parse(Path::new("/etc/r.toml"), "kube-api-qsp = 5\n")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("config file /etc/r.toml:"), "{e}");
    assert!(e.contains("kube-api-qsp"), "{e}");
    assert!(e.contains("kube-api-qps"), "lists the valid keys: {e}");
    let e = parse(Path::new("/etc/r.toml"), "kube-api-burst = \"many\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("kube-api-burst"), "{e}");
    let e = parse(Path::new("/etc/r.toml"), "cgroup-driver = \"systemD\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("cgroupfs") && e.contains("systemd"), "{e}");
}

#[test]
fn values_are_validated() {
    let node = Layer {
        node_name: Some("worker-1".into()),
        ..Layer::default()
    };
    for (text, want) in [
        (
            "kube-api-qps = 0.0",
            "kube-api-qps = \"0.0\": must be a number from 0.01 to 1000000",
        ),
        ("kube-api-qps = nan", "kube-api-qps"),
        (
            "kube-api-burst = 0",
            "kube-api-burst = \"0\": must be from 1 to 1000000",
        ),
        ("cri-timeout-ms = 0", "cri-timeout-ms"),
        (
            "kube-api-qps = 1e-300",
            "kube-api-qps = \"1e-300\": must be a number from 0.01",
        ),
        ("kube-api-qps = inf", "kube-api-qps"),
        (
            "cri-timeout-ms = 1000000000000000000",
            "cri-timeout-ms = \"1000000000000000000\": must be from 1 to 600000",
        ),
        (
            "in-progress-threshold-ms = 9223372036854775807",
            "in-progress-threshold-ms",
        ),
        (
            "admin-address = \"localhost\"",
            "admin-address = \"localhost\": must be ip:port",
        ),
        (
            "container-runtime-endpoint = \"/run/containerd/containerd.sock\"",
            "must be unix://",
        ),
        ("node-name = \"Worker_1\"", "not a valid node name"),
        ("log-level = \"resizelet=loud\"", "log-level"),
    ] {
        let e = resolve(file(text).over(node.clone()))
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{text}: {e} does not contain {want}");
    }
    let e = resolve(Layer::default()).unwrap_err().to_string();
    assert!(
        e.contains("node-name is required (flag --node-name, environment NODE_NAME"),
        "{e}"
    );
}

#[test]
fn legacy_resize_status_is_auto_true_or_false() {
    assert_eq!(
        file("legacy-resize-status = true\n").legacy_resize_status,
        Some(LegacyMode::On)
    );
    assert_eq!(
        file("legacy-resize-status = \"auto\"\n").legacy_resize_status,
        Some(LegacyMode::Auto)
    );
    let e = parse(Path::new("/r.toml"), "legacy-resize-status = \"yes\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("not one of auto, true, false"), "{e}");
    let v = |minor: &str, git: &str| ServerVersion {
        major: "1".into(),
        minor: minor.into(),
        git_version: git.into(),
    };
    assert!(decide_legacy(LegacyMode::Auto, Ok(&v("32", "v1.32.6"))).on);
    assert!(decide_legacy(LegacyMode::Auto, Ok(&v("32+", "v1.32.6-eks-1"))).on);
    let d = decide_legacy(LegacyMode::Auto, Ok(&v("33", "v1.33.0")));
    assert!(!d.on && d.reason.contains("v1.33.0"), "{d:?}");
    assert!(decide_legacy(LegacyMode::Auto, Ok(&v("", "v1.31.2"))).on);
    assert!(decide_legacy(LegacyMode::Auto, Err("timed out")).on);
    assert!(!decide_legacy(LegacyMode::Off, Ok(&v("32", "v1.32.6"))).on);
    assert!(decide_legacy(LegacyMode::On, Ok(&v("34", "v1.34.0"))).on);
}

#[test]
fn cgroup_root_is_the_deprecated_name_of_cgroup_mount() {
    let with = |text: &str| resolve(file(&format!("node-name = \"worker-1\"\n{text}")));
    let s = with("").unwrap();
    assert_eq!(s.host.cgroup_mount, PathBuf::from("/sys/fs/cgroup"));
    assert!(s.host.deprecations.is_empty());
    assert_eq!(
        s.host.explicit.cgroup_driver, None,
        "from the kubelet's file unless set"
    );
    assert_eq!(s.host.kubelet_config, KubeletConfigPath::Discover);
    // the old name alone is the mount; beside the new name it is ignored; warned of either way
    for (text, mount, warning) in [
        (
            "cgroup-root = \"/host/cgroup\"",
            "/host/cgroup",
            "cgroup-root",
        ),
        (
            "cgroup-root = \"/old\"\ncgroup-mount = \"/new\"",
            "/new",
            "ignored",
        ),
    ] {
        let s = with(text).unwrap();
        assert_eq!(s.host.cgroup_mount, PathBuf::from(mount), "{text}");
        assert!(
            s.host.deprecations[0].contains(warning),
            "{:?}",
            s.host.deprecations
        );
    }
    let e = with("kubelet-cgroup-root = \"/a/../b\"").unwrap_err();
    assert!(e.to_string().contains("kubelet-cgroup-root"), "{e}");
    let s = with("kubelet-config = \"\"").unwrap();
    assert_eq!(s.host.kubelet_config, KubeletConfigPath::Off);
}

#[test]
fn node_names() {
    assert!(is_dns_subdomain("ip-10-0-0-1.ec2.internal"));
    assert!(!is_dns_subdomain("-a"));
    assert!(!is_dns_subdomain("a..b"));
    assert!(!is_dns_subdomain(""));
}

#[test]
fn admin_address_takes_ip_port_or_an_ip_alone() {
    for (text, want) in [
        ("127.0.0.1:10258", "127.0.0.1:10258"),
        ("10.0.0.7", "10.0.0.7:10258"),
        ("[fd00::7]:9000", "[fd00::7]:9000"),
        ("fd00::7", "[fd00::7]:10258"),
    ] {
        assert_eq!(
            parse_admin_address(text).map(|a| a.to_string()).as_deref(),
            Some(want),
            "{text}"
        );
    }
    for bad in [
        "",
        "localhost:10258",
        "10.0.0.7:",
        "10.0.0.7:99999",
        "fd00::7:10258:1",
    ] {
        assert_eq!(parse_admin_address(bad), None, "{bad}");
    }
}

#[test]
fn every_setting_is_a_flag_with_its_env_and_a_file_key_of_the_same_value() {
    use clap::{Args as _, FromArgMatches as _};
    use registry::{Args, Builtin, RUN, SETTINGS};
    let cmd = Args::<RUN>::augment_args(clap::Command::new("run").no_binary_name(true));
    for s in SETTINGS {
        let arg = cmd
            .get_arguments()
            .find(|a| a.get_long() == Some(s.key))
            .unwrap_or_else(|| panic!("--{} is not a flag of run", s.key));
        assert_eq!(
            arg.get_env(),
            Some(std::ffi::OsStr::new(s.env)),
            "{}",
            s.key
        );
        assert_eq!(
            SETTINGS
                .iter()
                .filter(|o| o.key == s.key || o.env == s.env)
                .count(),
            1,
            "{} is declared once",
            s.key
        );
    }
    // the test's own environment must not set anything
    let cmd = cmd.mut_args(|a| a.env(None));
    for s in SETTINGS {
        let value = match s.default {
            Builtin::Value(v) => v,
            Builtin::Unset { example, .. } | Builtin::Required { example } => example,
        };
        let from_file = file(&format!("{} = {value}\n", s.key));
        assert_ne!(from_file, Layer::default(), "{} sets nothing", s.key);
        let flag = format!("--{}={}", s.key, value.trim_matches('"'));
        let m = cmd.clone().try_get_matches_from([&flag]).unwrap();
        let from_flag = Args::<RUN>::from_arg_matches(&m).unwrap().layer;
        assert_eq!(from_flag, from_file, "{flag}");
    }
}

#[test]
fn defaults_are_the_documented_values() {
    let d = defaults();
    assert_eq!(d.kube_api_qps, Some(50.0));
    assert_eq!(d.kube_api_burst, Some(100));
    assert_eq!(d.cri_timeout_ms, Some(2000));
    assert_eq!(d.admin_address.as_deref(), Some("127.0.0.1:10258"));
    assert_eq!(d.legacy_resize_status, Some(LegacyMode::Auto));
    assert_eq!(d.log_format, Some(LogFormat::Text));
    assert_eq!(d.node_name, None);
    assert_eq!(d.cgroup_driver, None, "from the kubelet's file unless set");
    let table = docs_table();
    assert!(
        table.contains("| `kube-api-qps` | `RESIZELET_KUBE_API_QPS` | `50.0` |"),
        "{table}"
    );
    assert!(
        !table.contains("| `cgroup-root` |"),
        "the deprecated name is not listed"
    );
}
