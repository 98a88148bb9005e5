//! The kubelet's configuration file (`KubeletConfiguration`, `kubelet.config.k8s.io/v1beta1`,
//! the kubelet's `--config`, usually `/var/lib/kubelet/config.yaml`): the node facts resizelet
//! must agree with, with the kubelet's own defaults for absent fields, and where each fact came
//! from.
//!
//! Follows kubernetes/kubernetes `staging/src/k8s.io/kubelet/config/v1beta1/types.go` (field
//! names), `pkg/kubelet/apis/config/v1beta1/defaults.go` (defaults), `cmd/kubelet/app/server.go`
//! (`cgroupRoot` defaults to `/` with `cgroupsPerQOS`), `pkg/kubelet/kubelet.go`
//! (`singleProcessOOMKill`: always on with cgroup v1, else the setting, default off) and
//! `pkg/kubelet/apis/config/validation/validation.go` (the `cpuCFSQuotaPeriod` rules).
//!
//! Reading is IO ([`load`]: a regular file, not a symbolic link, at most [`MAX_FILE_BYTES`]);
//! everything else is pure: [`parse`] and [`resolve`], which layers resizelet's explicit
//! settings over the file and reports each contradiction as a warning.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::core::node::{CgroupDriver, CgroupVersion, NodeSwapBehavior};
use crate::core::quantity::Quantity;
use crate::core::resources::ResourceList;

/// Where kubeadm (and most installers) put the kubelet's configuration file.
pub const DEFAULT_PATH: &str = "/var/lib/kubelet/config.yaml";
/// A kubelet configuration is a few KiB; anything bigger is not one.
pub const MAX_FILE_BYTES: u64 = 1 << 20;
const API_VERSION: &str = "kubelet.config.k8s.io/v1beta1";
const KIND: &str = "KubeletConfiguration";
/// `cpuCFSQuotaPeriod`'s default (and only value without `CustomCPUCFSQuotaPeriod`).
const DEFAULT_CFS_PERIOD: Duration = Duration::from_millis(100);
pub const GATE_IN_PLACE_RESIZE: &str = "InPlacePodVerticalScaling";
const GATE_CUSTOM_CFS_PERIOD: &str = "CustomCPUCFSQuotaPeriod";

#[derive(Debug, thiserror::Error)]
pub enum KubeletConfigError {
    #[error("kubelet config {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("kubelet config {path} is a symbolic link{target}; pass the file it points to with --kubelet-config")]
    Symlink { path: PathBuf, target: String },
    #[error("kubelet config {path} is not a regular file")]
    NotAFile { path: PathBuf },
    #[error("kubelet config {path} is larger than {max} bytes; not a kubelet configuration")]
    TooLarge { path: PathBuf, max: u64 },
    #[error("kubelet config {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("kubelet config {path}: {field} = {value:?}: {reason}")]
    Invalid {
        path: PathBuf,
        field: &'static str,
        value: String,
        reason: String,
    },
}

/// The fields resizelet reads, as the file has them (absent = `None`). Unknown fields are
/// ignored, as the kubelet's lenient decoding does.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    api_version: Option<String>,
    kind: Option<String>,
    cgroup_driver: Option<String>,
    cgroup_root: Option<String>,
    #[serde(rename = "cgroupsPerQOS")]
    cgroups_per_qos: Option<bool>,
    #[serde(rename = "cpuCFSQuota")]
    cpu_cfs_quota: Option<bool>,
    #[serde(rename = "cpuCFSQuotaPeriod")]
    cpu_cfs_quota_period: Option<String>,
    memory_swap: Option<RawMemorySwap>,
    fail_swap_on: Option<bool>,
    system_reserved: Option<BTreeMap<String, String>>,
    kube_reserved: Option<BTreeMap<String, String>>,
    #[serde(rename = "singleProcessOOMKill")]
    single_process_oom_kill: Option<bool>,
    feature_gates: Option<BTreeMap<String, bool>>,
    eviction_hard: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawMemorySwap {
    swap_behavior: Option<String>,
}

/// A value and whether the file set it (`false`: the kubelet's default for an absent field).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FromFile<T> {
    pub value: T,
    pub set: bool,
}

fn field<T>(v: Option<T>, default: T) -> FromFile<T> {
    match v {
        Some(value) => FromFile { value, set: true },
        None => FromFile {
            value: default,
            set: false,
        },
    }
}

/// The kubelet's settings resizelet needs, defaulted like the kubelet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeletConfig {
    pub path: PathBuf,
    pub cgroup_driver: FromFile<CgroupDriver>,
    /// `cgroupRoot` as written (`/` when absent).
    pub cgroup_root: FromFile<String>,
    pub cgroups_per_qos: FromFile<bool>,
    pub cpu_cfs_quota: FromFile<bool>,
    pub cpu_cfs_quota_period: FromFile<Duration>,
    pub swap_behavior: FromFile<NodeSwapBehavior>,
    pub fail_swap_on: FromFile<bool>,
    pub system_reserved: FromFile<ResourceList>,
    pub kube_reserved: FromFile<ResourceList>,
    /// `None` when absent: the kubelet then decides by the cgroup version.
    pub single_process_oom_kill: Option<bool>,
    pub feature_gates: BTreeMap<String, bool>,
    /// `evictionHard["memory.available"]` (`100Mi` when `evictionHard` is absent).
    pub eviction_hard_memory: FromFile<Option<Threshold>>,
}

/// An eviction threshold: a quantity, or a percentage of capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threshold {
    Quantity(Quantity),
    /// Per mille of capacity (`10%` = 100, `0.5%` = 5).
    PerMille(i64),
}

impl Threshold {
    fn parse(s: &str) -> Option<Threshold> {
        match s.strip_suffix('%') {
            Some(p) => {
                let v: f64 = p.trim().parse().ok()?;
                (0.0..=100.0)
                    .contains(&v)
                    .then(|| Threshold::PerMille((v * 10.0).round() as i64))
            }
            None => Quantity::parse(s).ok().map(Threshold::Quantity),
        }
    }

    /// Bytes of `capacity` bytes this threshold reserves.
    pub fn bytes_of(self, capacity: i64) -> i64 {
        match self {
            Threshold::Quantity(q) => q.value(),
            Threshold::PerMille(pm) => (capacity as i128 * pm as i128 / 1000) as i64,
        }
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Threshold::Quantity(q) => write!(f, "{q}"),
            Threshold::PerMille(pm) if pm % 10 == 0 => write!(f, "{}%", pm / 10),
            Threshold::PerMille(pm) => write!(f, "{}.{}%", pm / 10, pm % 10),
        }
    }
}

impl KubeletConfig {
    /// The source of a fact from this file: set in it, or the kubelet's default.
    fn source(&self, set: bool) -> Source {
        if set {
            Source::KubeletFile(self.path.clone())
        } else {
            Source::KubeletDefault(self.path.clone())
        }
    }

    /// The explicit `InPlacePodVerticalScaling` gate, if the file sets it.
    pub fn in_place_resize_gate(&self) -> Option<bool> {
        self.feature_gates.get(GATE_IN_PLACE_RESIZE).copied()
    }
}

/// Reads the file at `path`: it must be a regular file (a symbolic link is refused, so that a
/// path that points elsewhere is never read silently), at most [`MAX_FILE_BYTES`] long.
pub fn load(path: &Path) -> Result<KubeletConfig, KubeletConfigError> {
    use std::os::unix::fs::OpenOptionsExt;
    let read_err = |source| KubeletConfigError::Read {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::symlink_metadata(path).map_err(read_err)?;
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(path)
            .map(|t| format!(" (to {})", t.display()))
            .unwrap_or_default();
        return Err(KubeletConfigError::Symlink {
            path: path.to_path_buf(),
            target,
        });
    }
    // O_NOFOLLOW: the path cannot turn into a link between the check and the open;
    // O_NONBLOCK: a FIFO put there does not hang the open
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)
        .map_err(read_err)?;
    let meta = file.metadata().map_err(read_err)?;
    if !meta.is_file() {
        return Err(KubeletConfigError::NotAFile {
            path: path.to_path_buf(),
        });
    }
    let too_large = || KubeletConfigError::TooLarge {
        path: path.to_path_buf(),
        max: MAX_FILE_BYTES,
    };
    if meta.len() > MAX_FILE_BYTES {
        return Err(too_large());
    }
    let mut text = String::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(read_err)?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(too_large());
    }
    parse(path, &text)
}

/// Go's `time.ParseDuration` for the units a kubelet configuration uses (`100ms`, `1m30s`,
/// `0.5s`, `50us`); `None` for anything else.
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = s;
    let mut total_nanos: u128 = 0;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(num_len);
        if num.is_empty() || num == "." {
            return None;
        }
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        let (int, frac) = num.split_once('.').unwrap_or((num, ""));
        let int: u128 = if int.is_empty() { 0 } else { int.parse().ok()? };
        let mut nanos = int.checked_mul(scale)?;
        if !frac.is_empty() {
            let digits = frac.len().min(18) as u32;
            let f: u128 = frac[..digits as usize].parse().ok()?;
            nanos = nanos.checked_add(f * scale / 10u128.pow(digits))?;
        }
        total_nanos = total_nanos.checked_add(nanos)?;
        rest = tail;
    }
    u64::try_from(total_nanos).ok().map(Duration::from_nanos)
}

/// Go's `Duration.String()` for the durations shown here (`100ms`, `1s`, `250us`).
pub fn format_go_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    match nanos {
        0 => "0s".into(),
        n if n % 1_000_000_000 == 0 => format!("{}s", n / 1_000_000_000),
        n if n % 1_000_000 == 0 => format!("{}ms", n / 1_000_000),
        n if n % 1_000 == 0 => format!("{}µs", n / 1_000),
        n => format!("{n}ns"),
    }
}

/// Parses the file text (YAML or JSON) and applies the kubelet's defaults.
pub fn parse(path: &Path, text: &str) -> Result<KubeletConfig, KubeletConfigError> {
    let parse_err = |message: String| KubeletConfigError::Parse {
        path: path.to_path_buf(),
        message,
    };
    let invalid = |field: &'static str, value: &str, reason: &str| KubeletConfigError::Invalid {
        path: path.to_path_buf(),
        field,
        value: value.to_string(),
        reason: reason.to_string(),
    };
    let raw: Raw = if text.trim().is_empty() {
        Raw::default()
    } else {
        serde_yaml::from_str(text).map_err(|e| parse_err(e.to_string()))?
    };
    match (raw.api_version.as_deref(), raw.kind.as_deref()) {
        (Some(API_VERSION), Some(KIND)) => {}
        (v, k) => {
            return Err(parse_err(format!(
                "not a kubelet configuration: apiVersion {:?}, kind {:?} (want {API_VERSION:?}, {KIND:?})",
                v.unwrap_or(""),
                k.unwrap_or("")
            )))
        }
    }
    let cgroup_driver = match raw.cgroup_driver.as_deref() {
        None | Some("") => field(None, CgroupDriver::Cgroupfs),
        Some("cgroupfs") => field(Some(CgroupDriver::Cgroupfs), CgroupDriver::Cgroupfs),
        Some("systemd") => field(Some(CgroupDriver::Systemd), CgroupDriver::Cgroupfs),
        Some(other) => {
            return Err(invalid(
                "cgroupDriver",
                other,
                "must be \"cgroupfs\" or \"systemd\"",
            ))
        }
    };
    let cgroups_per_qos = field(raw.cgroups_per_qos, true);
    let cgroup_root = match raw.cgroup_root.filter(|r| !r.is_empty()) {
        Some(r) => {
            cgroup_root_parts(&r).map_err(|reason| invalid("cgroupRoot", &r, reason))?;
            field(Some(r), String::new())
        }
        None => field(None, "/".to_string()),
    };
    let feature_gates = raw.feature_gates.unwrap_or_default();
    let period = match raw.cpu_cfs_quota_period.as_deref() {
        None => field(None, DEFAULT_CFS_PERIOD),
        Some(text) => {
            let d = parse_go_duration(text).ok_or_else(|| {
                invalid("cpuCFSQuotaPeriod", text, "not a duration (e.g. \"100ms\")")
            })?;
            let custom = feature_gates
                .get(GATE_CUSTOM_CFS_PERIOD)
                .copied()
                .unwrap_or(false);
            if !custom && d != DEFAULT_CFS_PERIOD {
                return Err(invalid(
                    "cpuCFSQuotaPeriod",
                    text,
                    "requires feature gate CustomCPUCFSQuotaPeriod (the kubelet refuses this file too)",
                ));
            }
            if custom && !(Duration::from_micros(1)..=Duration::from_secs(1)).contains(&d) {
                return Err(invalid(
                    "cpuCFSQuotaPeriod",
                    text,
                    "must be between 1us and 1s, inclusive",
                ));
            }
            field(Some(d), DEFAULT_CFS_PERIOD)
        }
    };
    let swap_behavior = match raw.memory_swap.and_then(|m| m.swap_behavior) {
        None => field(None, NodeSwapBehavior::NoSwap),
        Some(s) if s.is_empty() => field(None, NodeSwapBehavior::NoSwap),
        Some(s) => match s.as_str() {
            "NoSwap" => field(Some(NodeSwapBehavior::NoSwap), NodeSwapBehavior::NoSwap),
            "LimitedSwap" => field(
                Some(NodeSwapBehavior::LimitedSwap),
                NodeSwapBehavior::NoSwap,
            ),
            other => {
                return Err(invalid(
                    "memorySwap.swapBehavior",
                    other,
                    "must be \"NoSwap\" or \"LimitedSwap\"",
                ))
            }
        },
    };
    let reserved = |name: &'static str, m: Option<BTreeMap<String, String>>| {
        let Some(m) = m else {
            return Ok(field(None, ResourceList::new()));
        };
        let mut list = ResourceList::new();
        for (k, v) in m {
            let q = Quantity::parse(&v)
                .map_err(|e| invalid(name, &format!("{k}={v}"), &e.to_string()))?;
            list.insert(k, q);
        }
        Ok(field(Some(list), ResourceList::new()))
    };
    let system_reserved = reserved("systemReserved", raw.system_reserved)?;
    let kube_reserved = reserved("kubeReserved", raw.kube_reserved)?;
    // the kubelet's DefaultEvictionHard (memory.available 100Mi) when evictionHard is absent
    let default_eviction = Some(Threshold::Quantity(Quantity::from_bytes(100 << 20)));
    let eviction_hard_memory = match raw.eviction_hard {
        None => field(None, default_eviction),
        Some(m) => match m.get("memory.available") {
            None => field(Some(None), default_eviction),
            Some(v) => {
                let t = Threshold::parse(v).ok_or_else(|| {
                    invalid(
                        "evictionHard",
                        &format!("memory.available={v}"),
                        "not a quantity or a percentage",
                    )
                })?;
                field(Some(Some(t)), default_eviction)
            }
        },
    };
    Ok(KubeletConfig {
        path: path.to_path_buf(),
        cgroup_driver,
        cgroup_root,
        cgroups_per_qos,
        cpu_cfs_quota: field(raw.cpu_cfs_quota, true),
        cpu_cfs_quota_period: period,
        swap_behavior,
        fail_swap_on: field(raw.fail_swap_on, true),
        system_reserved,
        kube_reserved,
        single_process_oom_kill: raw.single_process_oom_kill,
        feature_gates,
        eviction_hard_memory,
    })
}

/// What the kubelet's file says about its `InPlacePodVerticalScaling` gate (decision 6).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ResizeGate {
    /// No kubelet configuration was read.
    #[default]
    Unknown,
    /// The file leaves the gate at its version's default (alpha off 1.27–1.32, beta on 1.33–1.34).
    VersionDefault,
    /// The file sets it.
    Set(bool),
}

impl ResizeGate {
    pub fn of(k: Option<&KubeletConfig>) -> ResizeGate {
        match k.map(KubeletConfig::in_place_resize_gate) {
            None => ResizeGate::Unknown,
            Some(None) => ResizeGate::VersionDefault,
            Some(Some(v)) => ResizeGate::Set(v),
        }
    }

    /// Why a kubelet 1.`minor` (`version` as the Node reports it) with this gate enacts in-place
    /// resizes itself, or `None` when it does not or that cannot be told. From 1.35 the gate is
    /// locked on.
    pub fn kubelet_resizes(self, minor: u32, version: &str) -> Option<String> {
        let tail = "resizelet stands down instead of racing it";
        if minor >= 35 {
            return Some(format!(
                "the node's kubelet {version} enacts in-place resizes itself (the gate is locked on from 1.35); {tail}"
            ));
        }
        match self {
            ResizeGate::Set(true) if minor >= 27 => Some(format!(
                "the node's kubelet {version} has InPlacePodVerticalScaling: true in its configuration file and enacts in-place resizes itself; {tail}"
            )),
            ResizeGate::VersionDefault if minor >= 33 => Some(format!(
                "the node's kubelet {version} leaves InPlacePodVerticalScaling at its default (on from 1.33) in its configuration file and enacts in-place resizes itself; {tail} (a kubelet with the gate off by a command-line flag: set featureGates.InPlacePodVerticalScaling: false in its file)"
            )),
            _ => None,
        }
    }
}

/// `cgroupRoot` as the kubelet's `ParseCgroupfsToCgroupName` splits it: `/` → no parts,
/// `/custom/pods` → `["custom", "pods"]`. `.` and `..` parts are refused.
pub fn cgroup_root_parts(root: &str) -> Result<Vec<String>, &'static str> {
    let parts: Vec<String> = root
        .split('/')
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect();
    if parts.iter().any(|p| p == "." || p == "..") {
        return Err("must not contain \".\" or \"..\" components");
    }
    Ok(parts)
}

/// Where a node fact came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// resizelet's own setting (flag, environment or config file).
    Setting(&'static str),
    /// The kubelet's configuration file sets it.
    KubeletFile(PathBuf),
    /// Absent from the kubelet's file: the kubelet's default.
    KubeletDefault(PathBuf),
    /// No kubelet configuration: resizelet's default (the kubelet's default too).
    Default,
    /// Detected on this host.
    Detected,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Setting(key) => write!(f, "resizelet setting {key}"),
            Source::KubeletFile(p) => write!(f, "kubelet config {}", p.display()),
            Source::KubeletDefault(p) => {
                write!(f, "kubelet default, absent from {}", p.display())
            }
            Source::Default => write!(f, "default, no kubelet config"),
            Source::Detected => write!(f, "detected on this host"),
        }
    }
}

/// A node fact and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fact<T> {
    pub value: T,
    pub source: Source,
}

/// resizelet's own explicit settings for the facts the kubelet's file also holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Explicit {
    pub cgroup_driver: Option<CgroupDriver>,
    pub kubelet_cgroup_root: Option<String>,
    pub swap_behavior: Option<NodeSwapBehavior>,
}

/// Every node fact resizelet uses, with its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeFacts {
    pub cgroup_driver: Fact<CgroupDriver>,
    /// The kubelet's `cgroupRoot` (parent of `kubepods`).
    pub cgroup_root: Fact<String>,
    pub cgroups_per_qos: Fact<bool>,
    pub cpu_cfs_quota: Fact<bool>,
    pub cpu_cfs_quota_period: Fact<Duration>,
    pub swap_behavior: Fact<NodeSwapBehavior>,
    pub fail_swap_on: Fact<bool>,
    pub system_reserved: Fact<ResourceList>,
    pub kube_reserved: Fact<ResourceList>,
    /// `evictionHard` memory.available (`None`: no threshold, or no kubelet config).
    pub eviction_hard_memory: Fact<Option<Threshold>>,
    pub single_process_oom_kill: Fact<bool>,
    /// The kubelet's explicit `InPlacePodVerticalScaling` gate (`None`: its version's default).
    pub in_place_resize_gate: Fact<Option<bool>>,
    /// The same for the stand-down decision.
    pub resize_gate: ResizeGate,
    /// A setting that contradicts the kubelet's file (the setting wins).
    pub warnings: Vec<String>,
}

impl NodeFacts {
    /// `cgroupRoot`'s parts for pod cgroup names.
    pub fn cgroup_root_parts(&self) -> Vec<String> {
        cgroup_root_parts(&self.cgroup_root.value).unwrap_or_default()
    }
}

pub fn driver_name(d: CgroupDriver) -> &'static str {
    match d {
        CgroupDriver::Cgroupfs => "cgroupfs",
        CgroupDriver::Systemd => "systemd",
    }
}

pub fn swap_name(s: NodeSwapBehavior) -> &'static str {
    match s {
        NodeSwapBehavior::NoSwap => "NoSwap",
        NodeSwapBehavior::LimitedSwap => "LimitedSwap",
    }
}

/// Layers resizelet's explicit settings over the kubelet's file (or the defaults when there is
/// none). A setting that differs from what the file sets is a warning; the setting wins.
/// `cgroup_version` decides the `singleProcessOOMKill` default as the kubelet does.
pub fn resolve(
    kubelet: Option<&KubeletConfig>,
    explicit: &Explicit,
    cgroup_version: Option<CgroupVersion>,
) -> NodeFacts {
    let mut warnings = Vec::new();
    fn from_kubelet<T: Clone>(
        k: Option<&KubeletConfig>,
        f: impl Fn(&KubeletConfig) -> &FromFile<T>,
        default: T,
    ) -> Fact<T> {
        match k {
            Some(k) => {
                let v = f(k);
                Fact {
                    value: v.value.clone(),
                    source: k.source(v.set),
                }
            }
            None => Fact {
                value: default,
                source: Source::Default,
            },
        }
    }
    let mut overlay = |key: &'static str,
                       kubelet_field: &'static str,
                       from: Fact<String>,
                       mine: Option<String>|
     -> Fact<String> {
        match mine {
            Some(v) => {
                if matches!(
                    from.source,
                    Source::KubeletFile(_) | Source::KubeletDefault(_)
                ) && v != from.value
                {
                    warnings.push(format!(
                        "{key} = {v:?} contradicts the kubelet's {kubelet_field} {:?} ({}); using {v:?}",
                        from.value, from.source
                    ));
                }
                Fact {
                    value: v,
                    source: Source::Setting(key),
                }
            }
            None => from,
        }
    };
    let driver = overlay(
        "cgroup-driver",
        "cgroupDriver",
        string_fact(
            from_kubelet(kubelet, |k| &k.cgroup_driver, CgroupDriver::Cgroupfs),
            driver_name,
        ),
        explicit.cgroup_driver.map(|d| driver_name(d).to_string()),
    );
    let cgroup_root = overlay(
        "kubelet-cgroup-root",
        "cgroupRoot",
        from_kubelet(kubelet, |k| &k.cgroup_root, "/".to_string()),
        explicit.kubelet_cgroup_root.clone(),
    );
    let swap = overlay(
        "swap-behavior",
        "memorySwap.swapBehavior",
        string_fact(
            from_kubelet(kubelet, |k| &k.swap_behavior, NodeSwapBehavior::NoSwap),
            swap_name,
        ),
        explicit.swap_behavior.map(|s| swap_name(s).to_string()),
    );
    let single_process_oom_kill = match (cgroup_version, kubelet) {
        (Some(CgroupVersion::V1), _) => Fact {
            value: true,
            source: Source::Detected,
        },
        (_, Some(k)) => match k.single_process_oom_kill {
            Some(v) => Fact {
                value: v,
                source: Source::KubeletFile(k.path.clone()),
            },
            None => Fact {
                value: false,
                source: Source::KubeletDefault(k.path.clone()),
            },
        },
        (_, None) => Fact {
            value: false,
            source: Source::Default,
        },
    };
    let gate = match kubelet {
        Some(k) => Fact {
            value: k.in_place_resize_gate(),
            source: k.source(k.in_place_resize_gate().is_some()),
        },
        None => Fact {
            value: None,
            source: Source::Default,
        },
    };
    NodeFacts {
        cgroup_driver: Fact {
            value: if driver.value == "systemd" {
                CgroupDriver::Systemd
            } else {
                CgroupDriver::Cgroupfs
            },
            source: driver.source,
        },
        cgroup_root,
        cgroups_per_qos: from_kubelet(kubelet, |k| &k.cgroups_per_qos, true),
        cpu_cfs_quota: from_kubelet(kubelet, |k| &k.cpu_cfs_quota, true),
        cpu_cfs_quota_period: from_kubelet(
            kubelet,
            |k| &k.cpu_cfs_quota_period,
            DEFAULT_CFS_PERIOD,
        ),
        swap_behavior: Fact {
            value: if swap.value == "LimitedSwap" {
                NodeSwapBehavior::LimitedSwap
            } else {
                NodeSwapBehavior::NoSwap
            },
            source: swap.source,
        },
        fail_swap_on: from_kubelet(kubelet, |k| &k.fail_swap_on, true),
        system_reserved: from_kubelet(kubelet, |k| &k.system_reserved, ResourceList::new()),
        kube_reserved: from_kubelet(kubelet, |k| &k.kube_reserved, ResourceList::new()),
        eviction_hard_memory: from_kubelet(kubelet, |k| &k.eviction_hard_memory, None),
        single_process_oom_kill,
        in_place_resize_gate: gate,
        resize_gate: ResizeGate::of(kubelet),
        warnings,
    }
}

fn string_fact<T>(f: Fact<T>, name: fn(T) -> &'static str) -> Fact<String> {
    Fact {
        value: name(f.value).to_string(),
        source: f.source,
    }
}

/// `cpu=500m,memory=1Gi`, or `none`.
pub fn format_list(l: &ResourceList) -> String {
    if l.is_empty() {
        return "none".into();
    }
    l.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The kubelet's node allocatable from `capacity`: capacity − systemReserved − kubeReserved −
/// the hard eviction threshold (memory), at least zero (`GetNodeAllocatableReservation` in
/// kubernetes/kubernetes `pkg/kubelet/cm/node_container_manager_linux.go`).
pub fn allocatable(capacity: &ResourceList, facts: &NodeFacts) -> ResourceList {
    let milli = |l: &ResourceList, k: &str| l.get(k).map_or(0, Quantity::milli_value);
    capacity
        .iter()
        .map(|(k, cap)| {
            let mut reserved =
                milli(&facts.system_reserved.value, k) + milli(&facts.kube_reserved.value, k);
            if k == crate::core::resources::MEMORY {
                if let Some(t) = facts.eviction_hard_memory.value {
                    reserved += t.bytes_of(cap.value()).saturating_mul(1000);
                }
            }
            let left = (cap.milli_value() - reserved).max(0);
            let q = if k == crate::core::resources::CPU {
                Quantity::from_milli(left)
            } else if k == crate::core::resources::MEMORY {
                Quantity::from_bytes(left / 1000)
            } else {
                Quantity::from_milli(left)
            };
            (k.clone(), q)
        })
        .collect()
}

/// One `name: value (source)` line per fact (`resizelet check`, the start-up log).
pub fn describe(f: &NodeFacts) -> Vec<String> {
    let line = |name: &str, value: String, source: &Source| format!("{name}: {value} ({source})");
    vec![
        line(
            "cgroupDriver",
            driver_name(f.cgroup_driver.value).into(),
            &f.cgroup_driver.source,
        ),
        line(
            "cgroupRoot",
            f.cgroup_root.value.clone(),
            &f.cgroup_root.source,
        ),
        line(
            "cgroupsPerQOS",
            f.cgroups_per_qos.value.to_string(),
            &f.cgroups_per_qos.source,
        ),
        line(
            "cpuCFSQuota",
            f.cpu_cfs_quota.value.to_string(),
            &f.cpu_cfs_quota.source,
        ),
        line(
            "cpuCFSQuotaPeriod",
            format_go_duration(f.cpu_cfs_quota_period.value),
            &f.cpu_cfs_quota_period.source,
        ),
        line(
            "memorySwap.swapBehavior",
            swap_name(f.swap_behavior.value).into(),
            &f.swap_behavior.source,
        ),
        line(
            "failSwapOn",
            f.fail_swap_on.value.to_string(),
            &f.fail_swap_on.source,
        ),
        line(
            "systemReserved",
            format_list(&f.system_reserved.value),
            &f.system_reserved.source,
        ),
        line(
            "kubeReserved",
            format_list(&f.kube_reserved.value),
            &f.kube_reserved.source,
        ),
        line(
            "evictionHard memory.available",
            f.eviction_hard_memory
                .value
                .map_or("none".to_string(), |t| t.to_string()),
            &f.eviction_hard_memory.source,
        ),
        line(
            "singleProcessOOMKill",
            f.single_process_oom_kill.value.to_string(),
            &f.single_process_oom_kill.source,
        ),
        line(
            "featureGates.InPlacePodVerticalScaling",
            match f.in_place_resize_gate.value {
                Some(v) => v.to_string(),
                None => {
                    "unset (the kubelet version's default: off before 1.33, on from 1.33)".into()
                }
            },
            &f.in_place_resize_gate.source,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n";

    fn parsed(body: &str) -> Result<KubeletConfig, KubeletConfigError> {
        parse(
            Path::new("/var/lib/kubelet/config.yaml"),
            &format!("{HEAD}{body}"),
        )
    }

    #[test]
    fn absent_fields_get_the_kubelets_defaults() {
        let k = parsed("").unwrap();
        assert_eq!(k.cgroup_driver.value, CgroupDriver::Cgroupfs);
        assert!(!k.cgroup_driver.set);
        assert_eq!(k.cgroup_root.value, "/");
        assert!(k.cpu_cfs_quota.value);
        assert_eq!(k.cpu_cfs_quota_period.value, Duration::from_millis(100));
        assert_eq!(k.swap_behavior.value, NodeSwapBehavior::NoSwap);
        assert!(k.fail_swap_on.value);
        assert_eq!(k.single_process_oom_kill, None);
        assert_eq!(k.in_place_resize_gate(), None);
    }

    #[test]
    fn set_fields_are_read() {
        let k = parsed(
            "cgroupDriver: systemd\ncgroupRoot: /custom\ncpuCFSQuota: false\ncpuCFSQuotaPeriod: 50ms\n\
             featureGates:\n  CustomCPUCFSQuotaPeriod: true\n  InPlacePodVerticalScaling: true\n\
             memorySwap:\n  swapBehavior: LimitedSwap\nfailSwapOn: false\nsingleProcessOOMKill: true\n\
             systemReserved:\n  cpu: 500m\n  memory: 1Gi\nunknownField: 3\n",
        )
        .unwrap();
        assert_eq!(k.cgroup_driver.value, CgroupDriver::Systemd);
        assert_eq!(k.cgroup_root.value, "/custom");
        assert!(!k.cpu_cfs_quota.value);
        assert_eq!(k.cpu_cfs_quota_period.value, Duration::from_millis(50));
        assert_eq!(k.swap_behavior.value, NodeSwapBehavior::LimitedSwap);
        assert!(!k.fail_swap_on.value);
        assert_eq!(k.single_process_oom_kill, Some(true));
        assert_eq!(k.in_place_resize_gate(), Some(true));
        assert_eq!(format_list(&k.system_reserved.value), "cpu=500m,memory=1Gi");
    }

    #[test]
    fn invalid_files_name_field_and_value() {
        for (body, want) in [
            ("cgroupDriver: Systemd\n", "cgroupDriver = \"Systemd\""),
            (
                "cpuCFSQuotaPeriod: 50ms\n",
                "requires feature gate CustomCPUCFSQuotaPeriod",
            ),
            (
                "cpuCFSQuotaPeriod: 2s\nfeatureGates:\n  CustomCPUCFSQuotaPeriod: true\n",
                "between 1us and 1s",
            ),
            ("cpuCFSQuotaPeriod: soon\n", "not a duration"),
            (
                "memorySwap:\n  swapBehavior: UnlimitedSwap\n",
                "memorySwap.swapBehavior",
            ),
            (
                "systemReserved:\n  memory: 1GB\n",
                "systemReserved = \"memory=1GB\"",
            ),
            ("cgroupRoot: /a/../b\n", "cgroupRoot"),
            (
                "cgroupDriver: [1]\n",
                "kubelet config /var/lib/kubelet/config.yaml:",
            ),
        ] {
            let e = parsed(body).unwrap_err().to_string();
            assert!(e.contains(want), "{body}: {e}");
        }
        let e = parse(Path::new("/k.yaml"), "kind: Pod\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a kubelet configuration"), "{e}");
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("100ms"), Some(Duration::from_millis(100)));
        assert_eq!(parse_go_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("0.5s"), Some(Duration::from_millis(500)));
        assert_eq!(parse_go_duration("250us"), Some(Duration::from_micros(250)));
        assert_eq!(parse_go_duration("5"), None);
        assert_eq!(parse_go_duration("ms"), None);
        assert_eq!(format_go_duration(Duration::from_millis(100)), "100ms");
        assert_eq!(format_go_duration(Duration::from_micros(250)), "250µs");
    }

    #[test]
    fn settings_win_and_contradictions_warn() {
        let k =
            parsed("cgroupDriver: systemd\nmemorySwap:\n  swapBehavior: LimitedSwap\n").unwrap();
        let f = resolve(
            Some(&k),
            &Explicit {
                cgroup_driver: Some(CgroupDriver::Cgroupfs),
                swap_behavior: Some(NodeSwapBehavior::LimitedSwap),
                ..Explicit::default()
            },
            Some(CgroupVersion::V2),
        );
        assert_eq!(f.cgroup_driver.value, CgroupDriver::Cgroupfs);
        assert_eq!(f.cgroup_driver.source, Source::Setting("cgroup-driver"));
        assert_eq!(f.warnings.len(), 1, "{:?}", f.warnings);
        assert!(
            f.warnings[0].contains(
                "cgroup-driver = \"cgroupfs\" contradicts the kubelet's cgroupDriver \"systemd\""
            ),
            "{:?}",
            f.warnings
        );
        assert_eq!(f.swap_behavior.value, NodeSwapBehavior::LimitedSwap);
        assert!(!f.single_process_oom_kill.value);
        let v1 = resolve(Some(&k), &Explicit::default(), Some(CgroupVersion::V1));
        assert!(
            v1.single_process_oom_kill.value,
            "cgroup v1 always kills single processes"
        );
        let none = resolve(None, &Explicit::default(), None);
        assert_eq!(none.cgroup_driver.source, Source::Default);
        assert!(none.warnings.is_empty());
    }

    #[test]
    fn the_kubelets_gate_decides_the_stand_down() {
        let v = "v1.33.1";
        assert!(ResizeGate::Unknown.kubelet_resizes(33, v).is_none());
        assert!(ResizeGate::Unknown.kubelet_resizes(35, v).is_some());
        assert!(ResizeGate::VersionDefault.kubelet_resizes(32, v).is_none());
        assert!(ResizeGate::VersionDefault.kubelet_resizes(33, v).is_some());
        assert!(ResizeGate::Set(false).kubelet_resizes(34, v).is_none());
        assert!(
            ResizeGate::Set(false).kubelet_resizes(35, v).is_some(),
            "locked on"
        );
        assert!(ResizeGate::Set(true).kubelet_resizes(32, v).is_some());
        assert!(ResizeGate::Set(true).kubelet_resizes(26, v).is_none());
        let k = parsed("featureGates:\n  InPlacePodVerticalScaling: false\n").unwrap();
        assert_eq!(ResizeGate::of(Some(&k)), ResizeGate::Set(false));
        assert_eq!(
            ResizeGate::of(Some(&parsed("").unwrap())),
            ResizeGate::VersionDefault
        );
        assert_eq!(ResizeGate::of(None), ResizeGate::Unknown);
    }

    #[test]
    fn allocatable_is_capacity_minus_reserved_and_eviction() {
        let k = parsed(
            "systemReserved:\n  cpu: 500m\n  memory: 1Gi\nkubeReserved:\n  cpu: 250m\n  memory: 512Mi\n",
        )
        .unwrap();
        let facts = resolve(Some(&k), &Explicit::default(), None);
        let capacity: ResourceList = [
            ("cpu".to_string(), Quantity::parse("4").unwrap()),
            ("memory".to_string(), Quantity::parse("8Gi").unwrap()),
        ]
        .into_iter()
        .collect();
        // 8Gi − 1Gi − 512Mi − 100Mi (the default hard eviction)
        assert_eq!(
            format_list(&allocatable(&capacity, &facts)),
            "cpu=3250m,memory=6556Mi"
        );
        let k = parsed("evictionHard:\n  memory.available: 10%\n").unwrap();
        let facts = resolve(Some(&k), &Explicit::default(), None);
        assert_eq!(
            facts.eviction_hard_memory.value,
            Some(Threshold::PerMille(100))
        );
        let got = allocatable(&capacity, &facts);
        assert_eq!(got["memory"].value(), 8 * (1 << 30) - 8 * (1 << 30) / 10);
        let k = parsed("evictionHard:\n  nodefs.available: 10%\n").unwrap();
        assert_eq!(
            k.eviction_hard_memory.value, None,
            "an evictionHard without memory.available has no memory threshold"
        );
        assert!(parsed("evictionHard:\n  memory.available: lots\n").is_err());
        let none = resolve(None, &Explicit::default(), None);
        assert_eq!(
            allocatable(&capacity, &none),
            capacity,
            "no kubelet config: capacity"
        );
    }

    #[test]
    fn hostile_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("config.yaml");
        std::fs::write(&real, format!("{HEAD}cgroupDriver: systemd\n")).unwrap();
        assert_eq!(
            load(&real).unwrap().cgroup_driver.value,
            CgroupDriver::Systemd
        );
        let link = dir.path().join("link.yaml");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let e = load(&link).unwrap_err().to_string();
        assert!(e.contains("is a symbolic link (to "), "{e}");
        let big = dir.path().join("big.yaml");
        std::fs::write(&big, vec![b'#'; (MAX_FILE_BYTES + 1) as usize]).unwrap();
        assert!(load(&big).unwrap_err().to_string().contains("larger than"));
        let e = load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
        let e = load(&dir.path().join("absent.yaml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("absent.yaml") && e.contains("No such file"),
            "{e}"
        );
    }
}
