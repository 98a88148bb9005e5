//! `resizelet run` settings: a TOML file, environment variables and flags, layered
//! flag > environment > file > built-in default, then validated into [`Settings`]. File keys are
//! the long flag names (`kube-api-qps = 50.0`); unknown keys and wrong types are errors that name
//! the key and the file. `resizelet config default` prints [`default_toml`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::core::node::{CgroupDriver, NodeSwapBehavior};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path} not found")]
    NotFound { path: PathBuf },
    #[error("reading config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{key} = {value:?}: {reason}")]
    Invalid {
        key: &'static str,
        value: String,
        reason: String,
    },
    #[error("{key} is required (flag --{key}, environment {env}, or config file key {key})")]
    Missing {
        key: &'static str,
        env: &'static str,
    },
}

/// `text` or `json` log lines on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// The kubelet's cgroup driver, as named in flags and the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DriverName {
    Cgroupfs,
    Systemd,
}

impl From<DriverName> for CgroupDriver {
    fn from(d: DriverName) -> Self {
        match d {
            DriverName::Cgroupfs => CgroupDriver::Cgroupfs,
            DriverName::Systemd => CgroupDriver::Systemd,
        }
    }
}

/// The kubelet's `memorySwap.swapBehavior`, as named in flags and the file (the kubelet's
/// spelling; its empty default is `NoSwap`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
pub enum SwapBehaviorName {
    #[value(name = "NoSwap")]
    NoSwap,
    #[value(name = "LimitedSwap")]
    LimitedSwap,
}

impl From<SwapBehaviorName> for NodeSwapBehavior {
    fn from(b: SwapBehaviorName) -> Self {
        match b {
            SwapBehaviorName::NoSwap => NodeSwapBehavior::NoSwap,
            SwapBehaviorName::LimitedSwap => NodeSwapBehavior::LimitedSwap,
        }
    }
}

/// One layer of settings (a file, or what flags and the environment gave); `None` = not set
/// here.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Layer {
    pub node_name: Option<String>,
    pub kubeconfig: Option<PathBuf>,
    pub container_runtime_endpoint: Option<String>,
    pub cgroup_root: Option<PathBuf>,
    pub cgroup_driver: Option<DriverName>,
    pub swap_behavior: Option<SwapBehaviorName>,
    pub cri_timeout_ms: Option<u64>,
    pub root_dir: Option<PathBuf>,
    pub admin_address: Option<String>,
    pub kube_api_qps: Option<f64>,
    pub kube_api_burst: Option<u32>,
    pub legacy_resize_status: Option<bool>,
    pub in_progress_threshold_ms: Option<u64>,
    pub log_level: Option<String>,
    pub log_format: Option<LogFormat>,
}

macro_rules! over {
    ($top:expr, $below:expr, $($f:ident),*) => {
        Layer { $($f: $top.$f.or($below.$f)),* }
    };
}

impl Layer {
    /// This layer over `below`: each value set here wins.
    pub fn over(self, below: Layer) -> Layer {
        over!(
            self,
            below,
            node_name,
            kubeconfig,
            container_runtime_endpoint,
            cgroup_root,
            cgroup_driver,
            swap_behavior,
            cri_timeout_ms,
            root_dir,
            admin_address,
            kube_api_qps,
            kube_api_burst,
            legacy_resize_status,
            in_progress_threshold_ms,
            log_level,
            log_format
        )
    }
}

/// The built-in defaults (no node name, in-cluster configuration).
pub fn defaults() -> Layer {
    Layer {
        node_name: None,
        kubeconfig: None,
        container_runtime_endpoint: Some("unix:///run/containerd/containerd.sock".into()),
        cgroup_root: Some("/sys/fs/cgroup".into()),
        cgroup_driver: Some(DriverName::Cgroupfs),
        swap_behavior: Some(SwapBehaviorName::NoSwap),
        cri_timeout_ms: Some(2000),
        root_dir: Some("/var/lib/resizelet".into()),
        admin_address: Some("127.0.0.1:10258".into()),
        kube_api_qps: Some(50.0),
        kube_api_burst: Some(100),
        legacy_resize_status: Some(false),
        in_progress_threshold_ms: Some(100),
        log_level: Some("info".into()),
        log_format: Some(LogFormat::Text),
    }
}

/// Reads a config file given explicitly (a missing one is an error).
pub fn load(path: &Path) -> Result<Layer, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            ConfigError::NotFound {
                path: path.to_path_buf(),
            }
        } else {
            ConfigError::Read {
                path: path.to_path_buf(),
                source,
            }
        }
    })?;
    parse(path, &text)
}

/// Parses file text; errors name the file, the key and the line.
pub fn parse(path: &Path, text: &str) -> Result<Layer, ConfigError> {
    toml::from_str(text).map_err(|e| {
        let line = e.span().map(|span| {
            let start = span.start.min(text.len());
            let n = text[..start].matches('\n').count() + 1;
            (n, text.lines().nth(n - 1).unwrap_or("").trim())
        });
        let message = e.message().trim_end().replace('\n', " ");
        ConfigError::Parse {
            path: path.to_path_buf(),
            message: match line {
                Some((n, content)) => format!("line {n} `{content}`: {message}"),
                None => message,
            },
        }
    })
}

/// The admin port when `admin-address` is an IP alone.
pub const DEFAULT_ADMIN_PORT: u16 = 10258;

/// `ip:port` (`[v6]:port` for IPv6) or an IP alone, which gets [`DEFAULT_ADMIN_PORT`]: the
/// DaemonSet passes `$(POD_IP)`, which cannot take a `:port` suffix on an IPv6 cluster.
pub fn parse_admin_address(text: &str) -> Option<SocketAddr> {
    text.parse::<SocketAddr>().ok().or_else(|| {
        text.parse::<std::net::IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, DEFAULT_ADMIN_PORT))
    })
}

/// Validated settings of `resizelet run`.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub node_name: String,
    pub kubeconfig: Option<PathBuf>,
    pub container_runtime_endpoint: String,
    pub cgroup_root: PathBuf,
    pub cgroup_driver: CgroupDriver,
    pub swap_behavior: NodeSwapBehavior,
    pub cri_timeout: Duration,
    pub root_dir: PathBuf,
    pub admin_address: SocketAddr,
    pub kube_api_qps: f64,
    pub kube_api_burst: u32,
    pub legacy_resize_status: bool,
    pub in_progress_threshold: Duration,
    pub log_level: String,
    pub log_format: LogFormat,
}

fn invalid(key: &'static str, value: impl ToString, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// RFC 1123 DNS subdomain (what a Node name must be).
fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Range of `kube-api-qps`: below the minimum a write would wait minutes for its token.
pub const MIN_QPS: f64 = 0.01;
pub const MAX_QPS: f64 = 1_000_000.0;
pub const MAX_BURST: u32 = 1_000_000;
/// Largest millisecond setting (`cri-timeout-ms`, `in-progress-threshold-ms`): 10 minutes.
pub const MAX_MS: u64 = 600_000;

/// `cri-timeout-ms` checked (1 ms to 10 minutes) for `run`, `check` and `resize` alike.
pub fn cri_timeout(ms: u64) -> Result<Duration, ConfigError> {
    if !(1..=MAX_MS).contains(&ms) {
        return Err(invalid(
            "cri-timeout-ms",
            ms,
            format!("must be from 1 to {MAX_MS} (10 minutes)"),
        ));
    }
    Ok(Duration::from_millis(ms))
}

/// Validates the merged layers (`flags.over(env).over(file).over(defaults())`).
pub fn resolve(layer: Layer) -> Result<Settings, ConfigError> {
    let layer = layer.over(defaults());
    let node_name = layer.node_name.ok_or(ConfigError::Missing {
        key: "node-name",
        env: "NODE_NAME",
    })?;
    if !is_dns_subdomain(&node_name) {
        return Err(invalid(
            "node-name",
            &node_name,
            "not a valid node name (lowercase DNS subdomain)",
        ));
    }
    let endpoint = layer.container_runtime_endpoint.unwrap_or_default();
    match endpoint.strip_prefix("unix://") {
        Some(path) if path.starts_with('/') => {}
        _ => {
            return Err(invalid(
                "container-runtime-endpoint",
                &endpoint,
                "must be unix:// followed by an absolute socket path",
            ))
        }
    }
    let qps = layer.kube_api_qps.unwrap_or_default();
    if !(qps.is_finite() && (MIN_QPS..=MAX_QPS).contains(&qps)) {
        return Err(invalid(
            "kube-api-qps",
            format!("{qps:?}"),
            format!("must be a number from {MIN_QPS} to {MAX_QPS}"),
        ));
    }
    let burst = layer.kube_api_burst.unwrap_or_default();
    if !(1..=MAX_BURST).contains(&burst) {
        return Err(invalid(
            "kube-api-burst",
            burst,
            format!("must be from 1 to {MAX_BURST}"),
        ));
    }
    let cri_timeout = cri_timeout(layer.cri_timeout_ms.unwrap_or_default())?;
    let threshold_ms = layer.in_progress_threshold_ms.unwrap_or_default();
    if threshold_ms > MAX_MS {
        return Err(invalid(
            "in-progress-threshold-ms",
            threshold_ms,
            format!("must be at most {MAX_MS} (10 minutes)"),
        ));
    }
    let admin = layer.admin_address.unwrap_or_default();
    let admin_address = parse_admin_address(&admin).ok_or_else(|| {
        invalid(
            "admin-address",
            &admin,
            "must be ip:port or an ip (port 10258), e.g. 127.0.0.1:10258, [fd00::1]:10258, fd00::1",
        )
    })?;
    let log_level = layer.log_level.unwrap_or_default();
    if let Err(e) = tracing_subscriber::EnvFilter::try_new(&log_level) {
        return Err(invalid("log-level", &log_level, e.to_string()));
    }
    Ok(Settings {
        node_name,
        kubeconfig: layer.kubeconfig,
        container_runtime_endpoint: endpoint,
        cgroup_root: layer.cgroup_root.unwrap_or_default(),
        cgroup_driver: layer.cgroup_driver.unwrap_or(DriverName::Cgroupfs).into(),
        swap_behavior: layer
            .swap_behavior
            .unwrap_or(SwapBehaviorName::NoSwap)
            .into(),
        cri_timeout,
        root_dir: layer.root_dir.unwrap_or_default(),
        admin_address,
        kube_api_qps: qps,
        kube_api_burst: burst,
        legacy_resize_status: layer.legacy_resize_status.unwrap_or_default(),
        in_progress_threshold: Duration::from_millis(threshold_ms),
        log_level,
        log_format: layer.log_format.unwrap_or(LogFormat::Text),
    })
}

/// The commented default configuration (`resizelet config default`). Every key is present with
/// its default; `node-name` is commented out (it usually comes from NODE_NAME).
pub fn default_toml() -> String {
    r#"# resizelet configuration (TOML). Keys are the `resizelet run` flag names.
# Precedence: command-line flag > environment variable > this file > built-in default.

# Name of this node; pods are watched with spec.nodeName=<node-name>. Usually from NODE_NAME.
# node-name = "worker-1"

# kubeconfig file; when absent, the in-cluster configuration (service account) is used.
# kubeconfig = "/etc/resizelet/kubeconfig"

# CRI endpoint of containerd (>= 1.6.9).
container-runtime-endpoint = "unix:///run/containerd/containerd.sock"

# Mount point of the cgroup filesystem (v1, v2 or hybrid are detected).
cgroup-root = "/sys/fs/cgroup"

# The kubelet's cgroup driver (its cgroupDriver setting): "cgroupfs" or "systemd".
cgroup-driver = "cgroupfs"

# The kubelet's memorySwap.swapBehavior: "NoSwap" or "LimitedSwap" (swap share per Burstable
# container on cgroup v2; sent again with every resize).
swap-behavior = "NoSwap"

# Deadline of each CRI call, in milliseconds.
cri-timeout-ms = 2000

# Directory of resizelet's allocated/actuated checkpoints (never the kubelet's).
root-dir = "/var/lib/resizelet"

# Admin endpoint: /metrics, /healthz, /readyz, /debug/pods; ip:port, [v6]:port or an IP alone
# (port 10258). Loopback unless you need it remote.
admin-address = "127.0.0.1:10258"

# Client-side rate limit of API writes: queries per second, and burst.
kube-api-qps = 50.0
kube-api-burst = 100

# Also write the deprecated status.resize field (API servers before 1.33, old clients).
legacy-resize-status = false

# An enactment still running after this many milliseconds gets an intermediate
# PodResizeInProgress status write before the final one.
in-progress-threshold-ms = 100

# Log filter (tracing EnvFilter syntax, e.g. "info" or "resizelet=debug,info") and format.
log-level = "info"
log-format = "text"
"#
    .to_string()
}

/// The effective settings as TOML-like lines (`resizelet config check`).
pub fn describe(s: &Settings) -> String {
    let driver = match s.cgroup_driver {
        CgroupDriver::Cgroupfs => "cgroupfs",
        CgroupDriver::Systemd => "systemd",
    };
    format!(
        "node-name = {:?}\nkubeconfig = {}\ncontainer-runtime-endpoint = {:?}\ncgroup-root = {:?}\ncgroup-driver = {:?}\nswap-behavior = {:?}\ncri-timeout-ms = {}\nroot-dir = {:?}\nadmin-address = {:?}\nkube-api-qps = {:?}\nkube-api-burst = {}\nlegacy-resize-status = {}\nin-progress-threshold-ms = {}\nlog-level = {:?}\nlog-format = {:?}\n",
        s.node_name,
        s.kubeconfig
            .as_ref()
            .map_or("(in-cluster)".to_string(), |p| format!("{:?}", p.display().to_string())),
        s.container_runtime_endpoint,
        s.cgroup_root.display().to_string(),
        driver,
        match s.swap_behavior {
            NodeSwapBehavior::NoSwap => "NoSwap",
            NodeSwapBehavior::LimitedSwap => "LimitedSwap",
        },
        s.cri_timeout.as_millis(),
        s.root_dir.display().to_string(),
        s.admin_address.to_string(),
        s.kube_api_qps,
        s.kube_api_burst,
        s.legacy_resize_status,
        s.in_progress_threshold.as_millis(),
        s.log_level,
        match s.log_format {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    )
}

#[cfg(test)]
mod tests {
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
        let f = file("kube-api-qps = 8.0\nkube-api-burst = 9\ncri-timeout-ms = 10\nnode-name = \"from-file\"\n");
        let s = resolve(flags.over(env).over(f)).unwrap();
        assert_eq!(s.kube_api_qps, 5.0);
        assert_eq!(s.kube_api_burst, 7);
        assert_eq!(s.cri_timeout, Duration::from_millis(10));
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
        let base = || Layer {
            node_name: Some("worker-1".into()),
            ..Layer::default()
        };
        let cases: Vec<(Layer, &str)> = vec![
            (
                Layer {
                    kube_api_qps: Some(0.0),
                    ..base()
                },
                "kube-api-qps = \"0.0\": must be a number from 0.01 to 1000000",
            ),
            (
                Layer {
                    kube_api_qps: Some(f64::NAN),
                    ..base()
                },
                "kube-api-qps",
            ),
            (
                Layer {
                    kube_api_burst: Some(0),
                    ..base()
                },
                "kube-api-burst = \"0\": must be from 1 to 1000000",
            ),
            (
                Layer {
                    cri_timeout_ms: Some(0),
                    ..base()
                },
                "cri-timeout-ms",
            ),
            (
                Layer {
                    kube_api_qps: Some(1e-300),
                    ..base()
                },
                "kube-api-qps = \"1e-300\": must be a number from 0.01",
            ),
            (
                Layer {
                    kube_api_qps: Some(f64::INFINITY),
                    ..base()
                },
                "kube-api-qps",
            ),
            (
                Layer {
                    cri_timeout_ms: Some(1_000_000_000_000_000_000),
                    ..base()
                },
                "cri-timeout-ms = \"1000000000000000000\": must be from 1 to 600000",
            ),
            (
                Layer {
                    in_progress_threshold_ms: Some(u64::MAX),
                    ..base()
                },
                "in-progress-threshold-ms",
            ),
            (
                Layer {
                    admin_address: Some("localhost".into()),
                    ..base()
                },
                "admin-address = \"localhost\": must be ip:port",
            ),
            (
                Layer {
                    container_runtime_endpoint: Some("/run/containerd/containerd.sock".into()),
                    ..base()
                },
                "must be unix://",
            ),
            (
                Layer {
                    node_name: Some("Worker_1".into()),
                    ..Layer::default()
                },
                "not a valid node name",
            ),
            (
                Layer::default(),
                "node-name is required (flag --node-name, environment NODE_NAME",
            ),
            (
                Layer {
                    log_level: Some("resizelet=loud".into()),
                    ..base()
                },
                "log-level",
            ),
        ];
        for (layer, want) in cases {
            let e = resolve(layer).unwrap_err().to_string();
            assert!(e.contains(want), "{e} does not contain {want}");
        }
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
}
