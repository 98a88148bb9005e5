//! `resizelet run` settings: a TOML file, environment variables and flags, layered
//! flag > environment > file > built-in default, then validated into [`Settings`]. File keys are
//! the long flag names (`kube-api-qps = 50.0`); unknown keys and wrong types are errors that name
//! the key and the file. Each setting is declared once, in [`registry`]'s table; `resizelet
//! config default` prints [`default_toml`], `resizelet config docs` the README's table.

mod legacy;
pub mod registry;
#[cfg(test)]
mod tests;

pub use legacy::{decide_legacy, LegacyDecision, LegacyMode, ServerVersion};
pub use registry::{default_toml, defaults, docs_table, Layer};

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

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        })
    }
}

/// A node fact's names in flags and files: an enum of `$core`'s variants that clap and serde
/// spell `$text`, the same as the kubelet's file does, with `Display`, `FromStr` and both `From`s.
macro_rules! names {
    ($(#[$meta:meta])* $name:ident => $core:ident { $($variant:ident = $text:literal),* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
        pub enum $name {
            $(#[value(name = $text)] #[serde(rename = $text)] $variant),*
        }

        impl From<$name> for $core {
            fn from(n: $name) -> Self {
                match n { $($name::$variant => $core::$variant),* }
            }
        }

        impl From<$core> for $name {
            fn from(c: $core) -> Self {
                match c { $($core::$variant => $name::$variant),* }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(match self { $($name::$variant => $text),* })
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)*
                    _ => Err(format!("must be {}", [$(concat!("\"", $text, "\"")),*].join(" or "))),
                }
            }
        }
    };
}

/// resizelet's own explicit settings for the facts the kubelet's file also holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Explicit {
    pub cgroup_driver: Option<CgroupDriver>,
    pub kubelet_cgroup_root: Option<String>,
    pub swap_behavior: Option<NodeSwapBehavior>,
}

/// Where kubeadm (and most installers) put the kubelet's configuration file: looked for when
/// `--kubelet-config` is not set.
pub const DEFAULT_KUBELET_CONFIG: &str = "/var/lib/kubelet/config.yaml";

names!(
    /// The kubelet's cgroup driver, as named in flags and files.
    DriverName => CgroupDriver { Cgroupfs = "cgroupfs", Systemd = "systemd" }
);
names!(
    /// The kubelet's `memorySwap.swapBehavior`, as named in flags and files.
    SwapBehaviorName => NodeSwapBehavior { NoSwap = "NoSwap", LimitedSwap = "LimitedSwap" }
);

/// Which kubelet configuration file to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KubeletConfigPath {
    /// `kubelet-config` names a file: it must be readable.
    Given(PathBuf),
    /// Not set: [`DEFAULT_KUBELET_CONFIG`] if it exists.
    Discover,
    /// `kubelet-config = ""`: none.
    Off,
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
    /// The settings of the host (those `check` and `resize` share), with the deprecation warnings.
    pub host: HostSettings,
    pub root_dir: PathBuf,
    pub admin_address: SocketAddr,
    pub kube_api_qps: f64,
    pub kube_api_burst: u32,
    pub legacy_resize_status: LegacyMode,
    pub in_progress_threshold: Duration,
    /// Pods whose status resizelet writes (default: every pod on the node).
    pub pod_selector: crate::core::selector::LabelSelector,
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

/// The cgroup mount point from `cgroup-mount` and its deprecated name `cgroup-root` (`None`
/// both: `default`), with the deprecation warning when the old name was used.
pub fn cgroup_mount(
    mount: Option<PathBuf>,
    old: Option<PathBuf>,
    default: PathBuf,
) -> (PathBuf, Option<String>) {
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
        (None, None) => (default, None),
    }
}

/// The settings of the host every command that touches it shares (`run`, `check`, `resize`).
#[derive(Debug, Clone, PartialEq)]
pub struct HostSettings {
    pub container_runtime_endpoint: String,
    /// Mount point of the cgroup filesystem.
    pub cgroup_mount: PathBuf,
    pub kubelet_config: KubeletConfigPath,
    /// Explicit settings of node facts the kubelet's file also holds (`None`: from the file).
    pub explicit: Explicit,
    pub cri_timeout: Duration,
    /// Deprecated keys that were used, as warnings.
    pub deprecations: Vec<String>,
}

/// The host settings of `layer` (not yet over the defaults) over the defaults; only the CRI
/// deadline is checked here (`run`'s [`resolve`] checks the rest).
pub fn resolve_host(layer: &Layer) -> Result<HostSettings, ConfigError> {
    let all = layer.clone().over(defaults());
    let cri_timeout = cri_timeout(all.cri_timeout_ms.unwrap_or_default())?;
    let (cgroup_mount, deprecated) = cgroup_mount(
        layer.cgroup_mount.clone(),
        all.cgroup_root,
        all.cgroup_mount.unwrap_or_default(),
    );
    let kubelet_config = match all.kubelet_config {
        None => KubeletConfigPath::Discover,
        Some(p) if p.as_os_str().is_empty() => KubeletConfigPath::Off,
        Some(p) => KubeletConfigPath::Given(p),
    };
    Ok(HostSettings {
        container_runtime_endpoint: all.container_runtime_endpoint.unwrap_or_default(),
        cgroup_mount,
        kubelet_config,
        explicit: Explicit {
            cgroup_driver: all.cgroup_driver.map(Into::into),
            kubelet_cgroup_root: all.kubelet_cgroup_root,
            swap_behavior: all.swap_behavior.map(Into::into),
        },
        cri_timeout,
        deprecations: deprecated.into_iter().collect(),
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
    let host = resolve_host(&layer);
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
    let host = host?;
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
    let pod_selector = crate::core::selector::LabelSelector::parse(&selector)
        .map_err(|e| invalid("pod-selector", &selector, e.to_string()))?;
    let log_level = layer.log_level.unwrap_or_default();
    if let Err(e) = tracing_subscriber::EnvFilter::try_new(&log_level) {
        return Err(invalid("log-level", &log_level, e.to_string()));
    }
    if !host.cgroup_mount.is_absolute() {
        return Err(invalid(
            "cgroup-mount",
            host.cgroup_mount.display(),
            "must be an absolute path",
        ));
    }
    if let Some(root) = &layer.kubelet_cgroup_root {
        if let Err(reason) = crate::core::node::cgroup_root_parts(root) {
            return Err(invalid("kubelet-cgroup-root", root, reason));
        }
    }
    Ok(Settings {
        node_name,
        kubeconfig: layer.kubeconfig,
        host,
        root_dir: layer.root_dir.unwrap_or_default(),
        admin_address,
        kube_api_qps: qps,
        kube_api_burst: burst,
        legacy_resize_status: layer.legacy_resize_status.unwrap_or(LegacyMode::Auto),
        in_progress_threshold: Duration::from_millis(threshold_ms),
        pod_selector,
        log_level,
        log_format: layer.log_format.unwrap_or(LogFormat::Text),
    })
}

/// The effective settings as TOML-like lines (`resizelet config check`); settings that come
/// from the kubelet's file unless set are shown commented out when unset.
pub fn describe(s: &Settings) -> String {
    let q = |v: &dyn fmt::Display| format!("{:?}", v.to_string());
    let or_kubelet = |key: &str, v: Option<String>| {
        v.map_or(format!("# {key}: from the kubelet config"), |v| {
            format!("{key} = {v}")
        })
    };
    let kubeconfig = s
        .kubeconfig
        .as_ref()
        .map_or("(in-cluster)".into(), |p| q(&p.display()));
    let mut lines = vec![
        format!("node-name = {}", q(&s.node_name)),
        format!("kubeconfig = {kubeconfig}"),
        format!(
            "container-runtime-endpoint = {}",
            q(&s.host.container_runtime_endpoint)
        ),
        format!("cgroup-mount = {}", q(&s.host.cgroup_mount.display())),
        match &s.host.kubelet_config {
            KubeletConfigPath::Given(p) => format!("kubelet-config = {}", q(&p.display())),
            KubeletConfigPath::Discover => {
                format!("# kubelet-config: {} if it exists", DEFAULT_KUBELET_CONFIG)
            }
            KubeletConfigPath::Off => "kubelet-config = \"\"".into(),
        },
        or_kubelet(
            "cgroup-driver",
            s.host
                .explicit
                .cgroup_driver
                .map(|d| q(&DriverName::from(d))),
        ),
        or_kubelet(
            "kubelet-cgroup-root",
            s.host.explicit.kubelet_cgroup_root.as_ref().map(|r| q(r)),
        ),
        or_kubelet(
            "swap-behavior",
            s.host
                .explicit
                .swap_behavior
                .map(|b| q(&SwapBehaviorName::from(b))),
        ),
        format!("cri-timeout-ms = {}", s.host.cri_timeout.as_millis()),
        format!("root-dir = {}", q(&s.root_dir.display())),
        format!("admin-address = {}", q(&s.admin_address)),
        format!("kube-api-qps = {:?}", s.kube_api_qps),
        format!("kube-api-burst = {}", s.kube_api_burst),
        match s.legacy_resize_status {
            LegacyMode::Auto => "legacy-resize-status = \"auto\"".into(),
            m => format!("legacy-resize-status = {m}"),
        },
        format!(
            "in-progress-threshold-ms = {}",
            s.in_progress_threshold.as_millis()
        ),
        format!("pod-selector = {}", q(&s.pod_selector)),
        format!("log-level = {}", q(&s.log_level)),
        format!("log-format = {}", q(&s.log_format)),
    ];
    lines.extend(
        s.host
            .deprecations
            .iter()
            .map(|d| format!("# warning: {d}")),
    );
    lines.into_iter().map(|l| l + "\n").collect()
}
