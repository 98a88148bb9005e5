//! `resizelet run` settings: a TOML file, environment variables and flags, layered
//! flag > environment > file > built-in default, then validated into [`Settings`]. File keys are
//! the long flag names (`kube-api-qps = 50.0`); unknown keys and wrong types are errors that name
//! the key and the file. `resizelet config default` prints [`default_toml`].

use std::fmt;
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

/// The kubelet's `memorySwap.swapBehavior`, as named in flags and the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
pub enum SwapBehaviorName {
    #[value(name = "NoSwap")]
    NoSwap,
    #[value(name = "LimitedSwap")]
    LimitedSwap,
}

impl From<SwapBehaviorName> for NodeSwapBehavior {
    fn from(s: SwapBehaviorName) -> Self {
        match s {
            SwapBehaviorName::NoSwap => NodeSwapBehavior::NoSwap,
            SwapBehaviorName::LimitedSwap => NodeSwapBehavior::LimitedSwap,
        }
    }
}

/// `legacy-resize-status`: `auto` decides from the API server's version at start-up; `true` /
/// `false` force it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegacyMode {
    Auto,
    On,
    Off,
}

impl std::str::FromStr for LegacyMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(LegacyMode::Auto),
            "true" => Ok(LegacyMode::On),
            "false" => Ok(LegacyMode::Off),
            _ => Err(format!("{s:?} is not one of auto, true, false")),
        }
    }
}

impl fmt::Display for LegacyMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LegacyMode::Auto => "auto",
            LegacyMode::On => "true",
            LegacyMode::Off => "false",
        })
    }
}

impl<'de> Deserialize<'de> for LegacyMode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum BoolOrText {
            Bool(bool),
            Text(String),
        }
        match BoolOrText::deserialize(d)? {
            BoolOrText::Bool(true) => Ok(LegacyMode::On),
            BoolOrText::Bool(false) => Ok(LegacyMode::Off),
            BoolOrText::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// The API server's version, as far as `/version` told (`major`, `minor`, `gitVersion`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerVersion {
    pub major: String,
    pub minor: String,
    pub git_version: String,
}

impl ServerVersion {
    /// `(1, 32)` from `major: "1", minor: "32+"` (managed clusters add a `+`), else from
    /// `gitVersion` (`v1.32.6-eks-1`).
    pub fn major_minor(&self) -> Option<(u64, u64)> {
        let digits = |s: &str| -> Option<u64> {
            let d: String = s.chars().take_while(char::is_ascii_digit).collect();
            d.parse().ok()
        };
        match (digits(&self.major), digits(&self.minor)) {
            (Some(a), Some(b)) => Some((a, b)),
            _ => {
                let v = self.git_version.trim_start_matches('v');
                let mut parts = v.split('.');
                Some((digits(parts.next()?)?, digits(parts.next()?)?))
            }
        }
    }
}

/// Whether to write the legacy `status.resize`, and why (one line for the log and `check`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyDecision {
    pub on: bool,
    pub reason: String,
}

/// `legacy-resize-status`: forced by `true`/`false`; `auto` is on when the API server is 1.32 or
/// older (it sets `status.resize: Proposed` on every /resize and only the field's writer clears
/// it), off from 1.33 (the field is deprecated and nothing sets it), and on when the version is
/// unknown (a stale `Proposed` is worse than a deprecated field written).
pub fn decide_legacy(mode: LegacyMode, server: Result<&ServerVersion, &str>) -> LegacyDecision {
    let d = |on: bool, reason: String| LegacyDecision { on, reason };
    match mode {
        LegacyMode::On => d(true, "legacy-resize-status = true".into()),
        LegacyMode::Off => d(false, "legacy-resize-status = false".into()),
        LegacyMode::Auto => match server {
            Err(e) => d(
                true,
                format!("auto: the API server's version is unknown ({e}); writing status.resize to be safe"),
            ),
            Ok(v) => match v.major_minor() {
                Some((1, minor)) if minor <= 32 => d(
                    true,
                    format!(
                        "auto: API server {} (<= 1.32) sets status.resize = Proposed on every resize; resizelet clears it when done",
                        v.git_version
                    ),
                ),
                Some(_) => d(
                    false,
                    format!(
                        "auto: API server {} (>= 1.33) reports resizes with pod conditions; status.resize is deprecated and not set",
                        v.git_version
                    ),
                ),
                None => d(
                    true,
                    format!(
                        "auto: cannot parse the API server's version {:?}; writing status.resize to be safe",
                        v.git_version
                    ),
                ),
            },
        },
    }
}

/// Which kubelet configuration file to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KubeletConfigPath {
    /// `kubelet-config` names a file: it must be readable.
    Given(PathBuf),
    /// Not set: [`crate::kubelet_config::DEFAULT_PATH`] if it exists.
    Discover,
    /// `kubelet-config = ""`: none.
    Off,
}

/// One layer of settings (a file, or what flags and the environment gave); `None` = not set
/// here.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Layer {
    pub node_name: Option<String>,
    pub kubeconfig: Option<PathBuf>,
    pub container_runtime_endpoint: Option<String>,
    /// Deprecated name of `cgroup_mount` (kept for one release).
    pub cgroup_root: Option<PathBuf>,
    pub cgroup_mount: Option<PathBuf>,
    pub cgroup_driver: Option<DriverName>,
    pub kubelet_config: Option<PathBuf>,
    pub kubelet_cgroup_root: Option<String>,
    pub swap_behavior: Option<SwapBehaviorName>,
    pub cri_timeout_ms: Option<u64>,
    pub root_dir: Option<PathBuf>,
    pub admin_address: Option<String>,
    pub kube_api_qps: Option<f64>,
    pub kube_api_burst: Option<u32>,
    pub legacy_resize_status: Option<LegacyMode>,
    pub in_progress_threshold_ms: Option<u64>,
    pub pod_selector: Option<String>,
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
            cgroup_mount,
            cgroup_driver,
            kubelet_config,
            kubelet_cgroup_root,
            swap_behavior,
            cri_timeout_ms,
            root_dir,
            admin_address,
            kube_api_qps,
            kube_api_burst,
            legacy_resize_status,
            in_progress_threshold_ms,
            pod_selector,
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
        cgroup_root: None,
        cgroup_mount: Some("/sys/fs/cgroup".into()),
        // from the kubelet's configuration unless set
        cgroup_driver: None,
        kubelet_config: None,
        kubelet_cgroup_root: None,
        swap_behavior: None,
        cri_timeout_ms: Some(2000),
        root_dir: Some("/var/lib/resizelet".into()),
        admin_address: Some("127.0.0.1:10258".into()),
        kube_api_qps: Some(50.0),
        kube_api_burst: Some(100),
        legacy_resize_status: Some(LegacyMode::Auto),
        in_progress_threshold_ms: Some(100),
        pod_selector: Some(String::new()),
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
    /// Mount point of the cgroup filesystem.
    pub cgroup_mount: PathBuf,
    /// Explicit settings of node facts the kubelet's file also holds (`None`: from the file).
    pub cgroup_driver: Option<CgroupDriver>,
    pub kubelet_cgroup_root: Option<String>,
    pub swap_behavior: Option<NodeSwapBehavior>,
    pub kubelet_config: KubeletConfigPath,
    pub cri_timeout: Duration,
    pub root_dir: PathBuf,
    pub admin_address: SocketAddr,
    pub kube_api_qps: f64,
    pub kube_api_burst: u32,
    pub legacy_resize_status: LegacyMode,
    pub in_progress_threshold: Duration,
    /// Pods whose status resizelet writes (default: every pod on the node).
    pub pod_selector: crate::k8s::selector::LabelSelector,
    pub log_level: String,
    pub log_format: LogFormat,
    /// Deprecated keys that were used, as warnings.
    pub deprecations: Vec<String>,
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

/// The cgroup mount point from `cgroup-mount` and its deprecated name `cgroup-root`, with the
/// deprecation warning when the old name was used.
pub fn cgroup_mount(mount: Option<PathBuf>, old: Option<PathBuf>) -> (PathBuf, Option<String>) {
    match (mount, old) {
        (mount, Some(old)) => {
            let warning = format!(
                "cgroup-root (--cgroup-root, RESIZELET_CGROUP_ROOT) is deprecated and will be removed: it means the cgroup \
                 mount point here but the parent of kubepods to the kubelet; use cgroup-mount = {:?} (and kubelet-cgroup-root \
                 for the kubelet's cgroupRoot){}",
                old.display().to_string(),
                if mount.is_some() { "; ignored, cgroup-mount is set" } else { "" }
            );
            (mount.unwrap_or(old), Some(warning))
        }
        (Some(mount), None) => (mount, None),
        (None, None) => (PathBuf::from("/sys/fs/cgroup"), None),
    }
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
    let explicit_mount = layer.cgroup_mount.clone();
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
    let selector = layer.pod_selector.unwrap_or_default();
    let pod_selector = crate::k8s::selector::LabelSelector::parse(&selector)
        .map_err(|e| invalid("pod-selector", &selector, e.to_string()))?;
    let log_level = layer.log_level.unwrap_or_default();
    if let Err(e) = tracing_subscriber::EnvFilter::try_new(&log_level) {
        return Err(invalid("log-level", &log_level, e.to_string()));
    }
    let mut deprecations = Vec::new();
    let (cgroup_mount, deprecated) = cgroup_mount(explicit_mount, layer.cgroup_root);
    deprecations.extend(deprecated);
    if !cgroup_mount.is_absolute() {
        return Err(invalid(
            "cgroup-mount",
            cgroup_mount.display(),
            "must be an absolute path",
        ));
    }
    if let Some(root) = &layer.kubelet_cgroup_root {
        if let Err(reason) = crate::kubelet_config::cgroup_root_parts(root) {
            return Err(invalid("kubelet-cgroup-root", root, reason));
        }
    }
    let kubelet_config = match layer.kubelet_config {
        None => KubeletConfigPath::Discover,
        Some(p) if p.as_os_str().is_empty() => KubeletConfigPath::Off,
        Some(p) => KubeletConfigPath::Given(p),
    };
    Ok(Settings {
        node_name,
        kubeconfig: layer.kubeconfig,
        container_runtime_endpoint: endpoint,
        cgroup_mount,
        cgroup_driver: layer.cgroup_driver.map(Into::into),
        kubelet_cgroup_root: layer.kubelet_cgroup_root,
        swap_behavior: layer.swap_behavior.map(Into::into),
        kubelet_config,
        cri_timeout,
        root_dir: layer.root_dir.unwrap_or_default(),
        admin_address,
        kube_api_qps: qps,
        kube_api_burst: burst,
        legacy_resize_status: layer.legacy_resize_status.unwrap_or(LegacyMode::Auto),
        in_progress_threshold: Duration::from_millis(threshold_ms),
        pod_selector,
        log_level,
        log_format: layer.log_format.unwrap_or(LogFormat::Text),
        deprecations,
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

# Mount point of the cgroup filesystem (v1, v2 or hybrid are detected). Formerly cgroup-root
# (deprecated: that name means the kubelet's cgroupRoot to the kubelet).
cgroup-mount = "/sys/fs/cgroup"

# The kubelet's configuration file (its --config). Node facts resizelet must agree with come
# from it: cgroupDriver, cgroupRoot, cpuCFSQuota, cpuCFSQuotaPeriod, memorySwap.swapBehavior,
# failSwapOn, reserved resources, singleProcessOOMKill, feature gates. Unset: the file at
# /var/lib/kubelet/config.yaml if there is one; "" reads none (the kubelet's defaults apply).
# kubelet-config = "/var/lib/kubelet/config.yaml"

# Override the kubelet's file (a value that contradicts it is a warning at start-up):
# its cgroupDriver ("cgroupfs" or "systemd"), its cgroupRoot (parent of kubepods) and its
# memorySwap.swapBehavior ("NoSwap" or "LimitedSwap").
# cgroup-driver = "systemd"
# kubelet-cgroup-root = "/"
# swap-behavior = "NoSwap"

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

# Also write the deprecated status.resize field: "auto" does when the API server is 1.32 or
# older (it sets status.resize = Proposed on every resize); true or false force it.
legacy-resize-status = "auto"

# An enactment still running after this many milliseconds gets an intermediate
# PodResizeInProgress status write before the final one.
in-progress-threshold-ms = 100

# Label selector of the pods resizelet writes status for (e.g. "resizelet.dev/resize=enabled");
# "" = every pod on the node. Pods outside it cannot be resized: the API server refuses a resize
# while a running container's status lacks resources (docs in README.md).
pod-selector = ""

# Log filter (tracing EnvFilter syntax, e.g. "info" or "resizelet=debug,info") and format.
log-level = "info"
log-format = "text"
"#
    .to_string()
}

/// The effective settings as TOML-like lines (`resizelet config check`); settings that come
/// from the kubelet's file unless set are shown commented out when unset.
pub fn describe(s: &Settings) -> String {
    let unset = |key: &str| format!("# {key}: from the kubelet config\n");
    let mut out = String::new();
    out += &format!("node-name = {:?}\n", s.node_name);
    out += &format!(
        "kubeconfig = {}\n",
        s.kubeconfig
            .as_ref()
            .map_or("(in-cluster)".to_string(), |p| format!(
                "{:?}",
                p.display().to_string()
            ))
    );
    out += &format!(
        "container-runtime-endpoint = {:?}\n",
        s.container_runtime_endpoint
    );
    out += &format!(
        "cgroup-mount = {:?}\n",
        s.cgroup_mount.display().to_string()
    );
    out += &match &s.kubelet_config {
        KubeletConfigPath::Given(p) => format!("kubelet-config = {:?}\n", p.display().to_string()),
        KubeletConfigPath::Discover => format!(
            "# kubelet-config: {} if it exists\n",
            crate::kubelet_config::DEFAULT_PATH
        ),
        KubeletConfigPath::Off => "kubelet-config = \"\"\n".to_string(),
    };
    out += &match s.cgroup_driver {
        Some(d) => format!(
            "cgroup-driver = {:?}\n",
            crate::kubelet_config::driver_name(d)
        ),
        None => unset("cgroup-driver"),
    };
    out += &match &s.kubelet_cgroup_root {
        Some(r) => format!("kubelet-cgroup-root = {r:?}\n"),
        None => unset("kubelet-cgroup-root"),
    };
    out += &match s.swap_behavior {
        Some(b) => format!(
            "swap-behavior = {:?}\n",
            crate::kubelet_config::swap_name(b)
        ),
        None => unset("swap-behavior"),
    };
    out += &format!("cri-timeout-ms = {}\n", s.cri_timeout.as_millis());
    out += &format!("root-dir = {:?}\n", s.root_dir.display().to_string());
    out += &format!("admin-address = {:?}\n", s.admin_address.to_string());
    out += &format!("kube-api-qps = {:?}\n", s.kube_api_qps);
    out += &format!("kube-api-burst = {}\n", s.kube_api_burst);
    out += &match s.legacy_resize_status {
        LegacyMode::Auto => "legacy-resize-status = \"auto\"\n".to_string(),
        m => format!("legacy-resize-status = {m}\n"),
    };
    out += &format!(
        "in-progress-threshold-ms = {}\n",
        s.in_progress_threshold.as_millis()
    );
    out += &format!("pod-selector = {:?}\n", s.pod_selector.to_string());
    out += &format!("log-level = {:?}\n", s.log_level);
    out += &format!(
        "log-format = {:?}\n",
        match s.log_format {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    );
    for d in &s.deprecations {
        out += &format!("# warning: {d}\n");
    }
    out
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
        let base = || Layer {
            node_name: Some("worker-1".into()),
            ..Layer::default()
        };
        let s = resolve(base()).unwrap();
        assert_eq!(s.cgroup_mount, PathBuf::from("/sys/fs/cgroup"));
        assert!(s.deprecations.is_empty());
        assert_eq!(s.cgroup_driver, None, "from the kubelet's file unless set");
        assert_eq!(s.kubelet_config, KubeletConfigPath::Discover);
        let s = resolve(Layer {
            cgroup_root: Some("/host/cgroup".into()),
            ..base()
        })
        .unwrap();
        assert_eq!(s.cgroup_mount, PathBuf::from("/host/cgroup"));
        assert!(
            s.deprecations[0].contains("cgroup-root"),
            "{:?}",
            s.deprecations
        );
        let s = resolve(Layer {
            cgroup_root: Some("/old".into()),
            cgroup_mount: Some("/new".into()),
            ..base()
        })
        .unwrap();
        assert_eq!(s.cgroup_mount, PathBuf::from("/new"));
        assert!(
            s.deprecations[0].contains("ignored"),
            "{:?}",
            s.deprecations
        );
        let e = resolve(Layer {
            kubelet_cgroup_root: Some("/a/../b".into()),
            ..base()
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("kubelet-cgroup-root"), "{e}");
        let s = resolve(Layer {
            kubelet_config: Some("".into()),
            ..base()
        })
        .unwrap();
        assert_eq!(s.kubelet_config, KubeletConfigPath::Off);
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
