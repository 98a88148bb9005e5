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

mod duration;
mod facts;
#[cfg(test)]
mod tests;

pub use duration::{format_go_duration, parse_go_duration};
pub use facts::{allocatable, describe, format_list, resolve, Explicit, Fact, NodeFacts, Source};

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::config::{DriverName, SwapBehaviorName};
use crate::core::node::{CgroupDriver, NodeSwapBehavior};
use crate::core::quantity::Quantity;
use crate::core::resources::ResourceList;

pub use crate::config::DEFAULT_KUBELET_CONFIG as DEFAULT_PATH;
pub use crate::core::node::cgroup_root_parts;
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
        Some(text) => {
            let d: DriverName = text
                .parse()
                .map_err(|reason: String| invalid("cgroupDriver", text, &reason))?;
            field(Some(d.into()), CgroupDriver::Cgroupfs)
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
        Some(s) => {
            let b: SwapBehaviorName = s
                .parse()
                .map_err(|reason: String| invalid("memorySwap.swapBehavior", &s, &reason))?;
            field(Some(b.into()), NodeSwapBehavior::NoSwap)
        }
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
