//! The systemd cgroup driver's pod-cgroup writes (spec §11.3). On a systemd-driver node systemd owns
//! the pod slices: the kubelet creates them as transient units and resizes them by setting unit
//! properties over D-Bus (`SetUnitProperties`, runtime) and then writing the same values to the
//! files (libcontainer's systemd manager: `opencontainers/cgroups systemd/v1.go`, `v2.go`,
//! `common.go` `addCPUQuota`). A value written only to the file is put back by systemd on the next
//! `daemon-reload`, so [`SystemdCgroupFs`] does the same: properties first, then the files.
//!
//! [`unit_properties`] is the pure conversion; [`SystemdBus`] is the IO edge, with the D-Bus
//! implementation [`DbusSystemd`] (zbus, system bus) and the in-memory [`MemorySystemd`].

#[cfg(any(test, feature = "testing"))]
use std::collections::HashMap;
#[cfg(any(test, feature = "testing"))]
use std::sync::Mutex;
use std::sync::OnceLock;
use std::time::Duration;

use zbus::zvariant::{OwnedObjectPath, OwnedValue, Value};

use crate::cgroup::{naming, CgroupError, CgroupFs, PodCgroupId};
use crate::core::conversions::{shares_to_weight_linear, systemd_round_quota};
use crate::core::node::{CgroupDriver, CgroupVersion};
use crate::core::plan::PodCgroupWrite;
use crate::core::pod_cgroup::{Limit, PodCgroupValues};

/// systemd's `USEC_INFINITY` / `CGROUP_LIMIT_MAX` ("no limit"), also what libcontainer sends.
pub const INFINITY: u64 = u64::MAX;

const DESTINATION: &str = "org.freedesktop.systemd1";
const MANAGER_PATH: &str = "/org/freedesktop/systemd1";
const MANAGER_INTERFACE: &str = "org.freedesktop.systemd1.Manager";

/// The first systemd that knows `CPUQuotaPeriodUSec`: an older one refuses the whole
/// `SetUnitProperties` call for it, so it is left out there and the period goes to the files only
/// (runc `libcontainer/cgroups/systemd/common.go` `addCpuQuota`).
pub const QUOTA_PERIOD_SINCE: u32 = 242;

/// The numeric systemd version of the manager's `Version` property: the first integer after an
/// optional `"`/`v` prefix ("252.38-1~deb12u1" → 252, "v245.4-1.fc32" → 245; runc
/// `systemdVersionAtoi`). `None` when there is none.
pub fn parse_version(version: &str) -> Option<u32> {
    let s = version.trim_start_matches(['"', 'v']);
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    s[..digits].parse().ok()
}

/// One unit property (every resource property resizelet sets is a D-Bus `t`, a u64).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnitProperty {
    pub name: &'static str,
    pub value: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SystemdError {
    #[error("cannot connect to the system bus (systemd's D-Bus API): {reason}")]
    Connect { reason: String },
    #[error("systemd {method}({unit}): {reason}")]
    Call {
        method: &'static str,
        unit: String,
        reason: String,
    },
    #[error("unit {unit} property {property}: {reason}")]
    Property {
        unit: String,
        property: String,
        reason: String,
    },
}

/// The unit properties a pod-cgroup write becomes, with the kubelet's names and conversions, and
/// the file write that follows them (its quota rounded as systemd rounds it, so the file and the
/// unit agree). v2: `CPUWeight` (linear from shares), `CPUQuotaPeriodUSec` + `CPUQuotaPerSecUSec`,
/// `MemoryMax`; v1: `CPUShares`, the same quota pair, `MemoryLimit`. A limit of −1 is
/// [`INFINITY`]. `systemd` is the manager's version ([`parse_version`]); below
/// [`QUOTA_PERIOD_SINCE`], or unknown (as runc's −1), `CPUQuotaPeriodUSec` is not sent.
pub fn unit_properties(
    version: CgroupVersion,
    systemd: Option<u32>,
    write: &PodCgroupWrite,
) -> (Vec<UnitProperty>, PodCgroupWrite) {
    let prop = |name, value| UnitProperty { name, value };
    match (version, *write) {
        (CgroupVersion::V2, PodCgroupWrite::CpuRequest { shares }) => (
            vec![prop("CPUWeight", shares_to_weight_linear(shares))],
            *write,
        ),
        (CgroupVersion::V1, PodCgroupWrite::CpuRequest { shares }) => {
            (vec![prop("CPUShares", shares)], *write)
        }
        (_, PodCgroupWrite::CpuLimit { quota, period }) => {
            // addCPUQuota: the period (systemd ≥ 242), then the quota per second of CPU time,
            // rounded up to whole 10 ms (systemd keeps it as a percentage).
            let mut props = Vec::new();
            if period != 0 && systemd.is_some_and(|v| v >= QUOTA_PERIOD_SINCE) {
                props.push(prop("CPUQuotaPeriodUSec", period));
            }
            let quota = match quota {
                Limit::Value(q) => Limit::Value(systemd_round_quota(q, period)),
                Limit::Max => Limit::Max,
            };
            if quota != Limit::Value(0) || period != 0 {
                let per_sec = match quota {
                    Limit::Value(q) if q > 0 => {
                        let period = if period == 0 { 100_000 } else { period };
                        (q as u64).saturating_mul(1_000_000) / period
                    }
                    _ => INFINITY,
                };
                props.push(prop("CPUQuotaPerSecUSec", per_sec));
            }
            (props, PodCgroupWrite::CpuLimit { quota, period })
        }
        (_, PodCgroupWrite::MemoryLimit { bytes }) => {
            let name = match version {
                CgroupVersion::V1 => "MemoryLimit",
                CgroupVersion::V2 => "MemoryMax",
            };
            let value = bytes
                .value()
                .and_then(|b| u64::try_from(b).ok())
                .unwrap_or(INFINITY);
            (vec![prop(name, value)], *write)
        }
    }
}

/// The D-Bus interface holding a unit's resource-control properties, by unit type.
fn unit_interface(unit: &str) -> &'static str {
    match unit.rsplit('.').next() {
        Some("scope") => "org.freedesktop.systemd1.Scope",
        Some("service") => "org.freedesktop.systemd1.Service",
        _ => "org.freedesktop.systemd1.Slice",
    }
}

/// systemd's manager API, as much of it as resizelet uses.
pub trait SystemdBus: Send + Sync {
    /// `SetUnitProperties(unit, runtime = true, properties)`.
    fn set_unit_properties(
        &self,
        unit: &str,
        properties: &[UnitProperty],
    ) -> Result<(), SystemdError>;
    /// A u64 resource-control property of a loaded unit (e.g. `CPUWeight`, `MemoryMax`).
    fn unit_property(&self, unit: &str, property: &str) -> Result<u64, SystemdError>;
    /// The manager's `Version` property (e.g. "252.38-1~deb12u1").
    fn version(&self) -> Result<String, SystemdError>;
}

/// systemd on the system bus (`/run/dbus/system_bus_socket` or `DBUS_SYSTEM_BUS_ADDRESS`), through
/// zbus's blocking API; every call has a deadline.
pub struct DbusSystemd {
    conn: zbus::blocking::Connection,
}

impl DbusSystemd {
    pub fn connect_system(timeout: Duration) -> Result<Self, SystemdError> {
        let conn = zbus::blocking::connection::Builder::system()
            .and_then(|b| b.method_timeout(timeout).build())
            .map_err(|e| SystemdError::Connect {
                reason: e.to_string(),
            })?;
        Ok(DbusSystemd { conn })
    }

    fn manager(
        &self,
        unit: &str,
        method: &'static str,
    ) -> Result<zbus::blocking::Proxy<'_>, SystemdError> {
        zbus::blocking::Proxy::new(&self.conn, DESTINATION, MANAGER_PATH, MANAGER_INTERFACE)
            .map_err(|e| SystemdError::Call {
                method,
                unit: unit.to_string(),
                reason: e.to_string(),
            })
    }

    /// Calls a manager method, mapping errors to [`SystemdError::Call`].
    fn call<B, R>(&self, method: &'static str, unit: &str, body: &B) -> Result<R, SystemdError>
    where
        B: serde::Serialize + zbus::zvariant::DynamicType,
        R: for<'d> zbus::zvariant::DynamicDeserialize<'d>,
    {
        self.manager(unit, method)?
            .call(method, body)
            .map_err(|e| SystemdError::Call {
                method,
                unit: unit.to_string(),
                reason: e.to_string(),
            })
    }
}

impl SystemdBus for DbusSystemd {
    fn set_unit_properties(
        &self,
        unit: &str,
        properties: &[UnitProperty],
    ) -> Result<(), SystemdError> {
        let props: Vec<(&str, Value<'_>)> = properties
            .iter()
            .map(|p| (p.name, Value::U64(p.value)))
            .collect();
        self.call::<_, ()>("SetUnitProperties", unit, &(unit, true, props))
    }

    fn unit_property(&self, unit: &str, property: &str) -> Result<u64, SystemdError> {
        let path: OwnedObjectPath = self.call("GetUnit", unit, &(unit,))?;
        let err = |reason: String| SystemdError::Property {
            unit: unit.to_string(),
            property: property.to_string(),
            reason,
        };
        let proxy = zbus::blocking::Proxy::new(&self.conn, DESTINATION, path, unit_interface(unit))
            .map_err(|e| err(e.to_string()))?;
        let value: OwnedValue = proxy
            .get_property(property)
            .map_err(|e| err(e.to_string()))?;
        u64::try_from(&value).map_err(|e| err(format!("not a u64 ({e}): {value:?}")))
    }

    fn version(&self) -> Result<String, SystemdError> {
        self.manager("", "Version")?
            .get_property::<String>("Version")
            .map_err(|e| SystemdError::Property {
                unit: "manager".to_string(),
                property: "Version".to_string(),
                reason: e.to_string(),
            })
    }
}

/// In-memory systemd: unit properties in a map, calls logged, failures injectable.
#[cfg(any(test, feature = "testing"))]
#[derive(Default)]
pub struct MemorySystemd {
    state: Mutex<MemoryState>,
}

#[cfg(any(test, feature = "testing"))]
#[derive(Default)]
struct MemoryState {
    units: HashMap<String, HashMap<String, u64>>,
    calls: Vec<(String, Vec<UnitProperty>)>,
    fail: Option<String>,
    /// The manager's `Version` ("252" unless set; `Err` = the property cannot be read).
    version: Option<Result<String, String>>,
    version_reads: usize,
}

#[cfg(any(test, feature = "testing"))]
impl MemorySystemd {
    /// A loaded unit (as the kubelet's transient slice) with these properties.
    pub fn add_unit(&self, unit: &str) {
        let mut s = self.state.lock().unwrap();
        s.units.entry(unit.to_string()).or_default();
    }
    /// The next calls fail with `reason` (as systemd refusing a value).
    pub fn fail_with(&self, reason: &str) {
        self.state.lock().unwrap().fail = Some(reason.to_string());
    }
    pub fn calls(&self) -> Vec<(String, Vec<UnitProperty>)> {
        self.state.lock().unwrap().calls.clone()
    }
    /// The manager's `Version` from now on (`Err(reason)`: reading it fails).
    pub fn set_version(&self, version: Result<&str, &str>) {
        self.state.lock().unwrap().version =
            Some(version.map(str::to_string).map_err(str::to_string));
    }
    /// How often `Version` was read.
    pub fn version_reads(&self) -> usize {
        self.state.lock().unwrap().version_reads
    }
}

#[cfg(any(test, feature = "testing"))]
impl SystemdBus for MemorySystemd {
    fn set_unit_properties(
        &self,
        unit: &str,
        properties: &[UnitProperty],
    ) -> Result<(), SystemdError> {
        let mut s = self.state.lock().unwrap();
        let call_err = |reason: String| SystemdError::Call {
            method: "SetUnitProperties",
            unit: unit.to_string(),
            reason,
        };
        if let Some(reason) = s.fail.clone() {
            return Err(call_err(reason));
        }
        s.calls.push((unit.to_string(), properties.to_vec()));
        let props = s
            .units
            .get_mut(unit)
            .ok_or_else(|| call_err(format!("Unit {unit} not loaded.")))?;
        for p in properties {
            props.insert(p.name.to_string(), p.value);
        }
        Ok(())
    }

    fn unit_property(&self, unit: &str, property: &str) -> Result<u64, SystemdError> {
        let s = self.state.lock().unwrap();
        s.units
            .get(unit)
            .and_then(|p| p.get(property).copied())
            .ok_or_else(|| SystemdError::Property {
                unit: unit.to_string(),
                property: property.to_string(),
                reason: "not set".to_string(),
            })
    }

    fn version(&self) -> Result<String, SystemdError> {
        let mut s = self.state.lock().unwrap();
        s.version_reads += 1;
        match s.version.clone() {
            None => Ok("252".to_string()),
            Some(Ok(v)) => Ok(v),
            Some(Err(reason)) => Err(SystemdError::Property {
                unit: "manager".to_string(),
                property: "Version".to_string(),
                reason,
            }),
        }
    }
}

/// The systemd driver's pod cgroups: writes go to the pod slice's unit properties, then to the
/// files through `files`; everything else (reads, usage, containers) is `files`.
pub struct SystemdCgroupFs<F, B> {
    files: F,
    bus: B,
    cgroup_root: Vec<String>,
    /// The manager's numeric version, read once at the first write (as runc's `systemdVersion`).
    systemd_version: OnceLock<Option<u32>>,
}

impl<F: CgroupFs, B: SystemdBus> SystemdCgroupFs<F, B> {
    /// `files` must use the systemd naming; `cgroup_root` are the kubelet's `cgroupRoot` parts.
    pub fn new(files: F, bus: B, cgroup_root: Vec<String>) -> Self {
        SystemdCgroupFs {
            files,
            bus,
            cgroup_root,
            systemd_version: OnceLock::new(),
        }
    }

    /// systemd's numeric version, asked over D-Bus once; `None` (logged) when it cannot be read
    /// or parsed, which leaves out the properties of newer systemds, as runc does.
    pub fn systemd_version(&self) -> Option<u32> {
        *self.systemd_version.get_or_init(|| {
            let version = self.bus.version().map_err(|e| e.to_string()).and_then(|v| {
                parse_version(&v).ok_or_else(|| format!("no version number in {v:?}"))
            });
            match version {
                Ok(v) if v < QUOTA_PERIOD_SINCE => {
                    tracing::info!(
                        systemd = v,
                        "systemd {v} is older than {QUOTA_PERIOD_SINCE}: CPUQuotaPeriodUSec is \
                         not set on pod slices (the period still goes to cpu.max)"
                    );
                    Some(v)
                }
                Ok(v) => Some(v),
                Err(e) => {
                    tracing::warn!(
                        error = %e,
                        "cannot read systemd's version: CPUQuotaPeriodUSec is not set on pod \
                         slices (the period still goes to cpu.max)"
                    );
                    None
                }
            }
        })
    }

    /// The pod slice's unit name, e.g. `kubepods-burstable-pod<uid_>.slice` (spec §11.4).
    pub fn unit_name(&self, pod: &PodCgroupId) -> String {
        let path =
            naming::pod_cgroup_path(CgroupDriver::Systemd, &self.cgroup_root, pod.qos, &pod.uid);
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    pub fn bus(&self) -> &B {
        &self.bus
    }
}

/// `CgroupFs` methods of [`SystemdCgroupFs`] that are its `files`' unchanged.
macro_rules! from_files {
    ($(fn $name:ident(&self $(, $arg:ident: $ty:ty)*) -> $ret:ty;)*) => {
        $(
            fn $name(&self $(, $arg: $ty)*) -> $ret {
                self.files.$name($($arg),*)
            }
        )*
    };
}

impl<F: CgroupFs, B: SystemdBus> CgroupFs for SystemdCgroupFs<F, B> {
    fn driver(&self) -> CgroupDriver {
        CgroupDriver::Systemd
    }

    fn write_pod(&self, pod: &PodCgroupId, write: &PodCgroupWrite) -> Result<(), CgroupError> {
        // The pod cgroup must exist: a unit systemd does not know would be refused anyway, but the
        // files' error names the path.
        self.files.read_pod(pod)?;
        let unit = self.unit_name(pod);
        let (properties, file_write) =
            unit_properties(self.files.version(), self.systemd_version(), write);
        self.bus
            .set_unit_properties(&unit, &properties)
            .map_err(|source| CgroupError::Systemd {
                unit: unit.clone(),
                source: Box::new(source),
            })?;
        self.files.write_pod(pod, &file_write)
    }

    // reads, usage and containers
    from_files! {
        fn version(&self) -> CgroupVersion;
        fn read_pod(&self, pod: &PodCgroupId) -> Result<PodCgroupValues, CgroupError>;
        fn pod_memory_usage(&self, pod: &PodCgroupId) -> Result<u64, CgroupError>;
        fn container_memory_usage(&self, pod: &PodCgroupId, container_id: &str)
            -> Result<u64, CgroupError>;
        fn read_container(&self, pod: &PodCgroupId, container_id: &str)
            -> Result<PodCgroupValues, CgroupError>;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroup::memory::MemoryCgroupFs;
    use crate::core::resources::QosClass;

    fn names(props: &[UnitProperty]) -> Vec<(&str, u64)> {
        props.iter().map(|p| (p.name, p.value)).collect()
    }

    #[test]
    fn properties_follow_libcontainer() {
        use CgroupVersion::{V1, V2};
        let cpu = |quota, period| PodCgroupWrite::CpuLimit { quota, period };
        let memory = |bytes| PodCgroupWrite::MemoryLimit { bytes };
        let shares = |shares| PodCgroupWrite::CpuRequest { shares };
        let quota_props = |per_sec| {
            vec![
                ("CPUQuotaPeriodUSec", 100_000),
                ("CPUQuotaPerSecUSec", per_sec),
            ]
        };
        // (version, write, properties, the write as the files then get it)
        let cases = [
            (V2, shares(1024), vec![("CPUWeight", 39)], shares(1024)),
            // 250m: 25000/100000 → 250 ms per second, already whole 10 ms.
            (
                V2,
                cpu(Limit::Value(25_000), 100_000),
                quota_props(250_000),
                cpu(Limit::Value(25_000), 100_000),
            ),
            // 25m: 2500 → 25 ms/s → rounded up to 30 ms/s; the file gets the rounded 3000 too.
            (
                V2,
                cpu(Limit::Value(2500), 100_000),
                quota_props(30_000),
                cpu(Limit::Value(3000), 100_000),
            ),
            (
                V2,
                cpu(Limit::Max, 100_000),
                quota_props(INFINITY),
                cpu(Limit::Max, 100_000),
            ),
            (
                V2,
                memory(Limit::Value(256 << 20)),
                vec![("MemoryMax", 256 << 20)],
                memory(Limit::Value(256 << 20)),
            ),
            (
                V2,
                memory(Limit::Max),
                vec![("MemoryMax", INFINITY)],
                memory(Limit::Max),
            ),
            // v1 uses the v1 names
            (V1, shares(307), vec![("CPUShares", 307)], shares(307)),
            (
                V1,
                memory(Limit::Value(1 << 30)),
                vec![("MemoryLimit", 1 << 30)],
                memory(Limit::Value(1 << 30)),
            ),
        ];
        for (version, write, props, written) in cases {
            let (p, w) = unit_properties(version, Some(252), &write);
            assert_eq!(names(&p), props, "{version:?} {write:?}");
            assert_eq!(w, written, "{version:?} {write:?}");
        }
    }

    #[test]
    fn versions_parse_like_runc() {
        let cases = [
            ("252.38-1~deb12u1", Some(252)),
            ("v245.4-1.fc32", Some(245)),
            ("\"245\"", Some(245)),
            ("245-1.fc32", Some(245)),
            ("241", Some(241)),
            ("", None),
            ("systemd", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_version(text), want, "{text:?}");
        }
    }

    #[test]
    fn unit_interfaces_by_type() {
        assert_eq!(
            unit_interface("kubepods.slice"),
            "org.freedesktop.systemd1.Slice"
        );
        assert_eq!(
            unit_interface("cri-containerd-x.scope"),
            "org.freedesktop.systemd1.Scope"
        );
    }

    fn pod() -> PodCgroupId {
        PodCgroupId {
            uid: "1234-5678".to_string(),
            qos: QosClass::Burstable,
        }
    }

    const SLICE: &str = "kubepods-burstable-pod1234_5678.slice";

    /// The driver over in-memory files and bus, both holding [`pod`] (cgroup and slice unit).
    fn with_pod_slice() -> SystemdCgroupFs<MemoryCgroupFs, MemorySystemd> {
        let files = MemoryCgroupFs::new(CgroupVersion::V2);
        files.add_pod("1234-5678", PodCgroupValues::default());
        let bus = MemorySystemd::default();
        bus.add_unit(SLICE);
        SystemdCgroupFs::new(files, bus, vec![])
    }

    #[test]
    fn writes_set_the_unit_then_the_files() {
        let cg = with_pod_slice();
        cg.write_pod(
            &pod(),
            &PodCgroupWrite::CpuLimit {
                quota: Limit::Value(1500),
                period: 100_000,
            },
        )
        .unwrap();
        assert_eq!(
            cg.bus().unit_property(SLICE, "CPUQuotaPerSecUSec").unwrap(),
            20_000
        );
        // the file has the rounded quota, as libcontainer writes it after the properties
        assert_eq!(
            cg.read_pod(&pod()).unwrap().cpu_quota,
            Some(Limit::Value(2000))
        );
    }

    /// runc's `addCpuQuota` on an older systemd: no `CPUQuotaPeriodUSec` (it would refuse the whole
    /// call), the quota per second still sent, the period still written to the files; the version
    /// is asked once.
    #[test]
    fn the_quota_period_property_needs_systemd_242() {
        let limit = PodCgroupWrite::CpuLimit {
            quota: Limit::Value(50_000),
            period: 100_000,
        };
        // (manager Version, properties sent)
        let with_period = vec![
            ("CPUQuotaPeriodUSec", 100_000),
            ("CPUQuotaPerSecUSec", 500_000),
        ];
        let without = vec![("CPUQuotaPerSecUSec", 500_000)];
        let cases = [
            (Ok("242"), with_period.clone()),
            (Ok("252.38-1~deb12u1"), with_period),
            (Ok("241"), without.clone()),
            (Ok("v219-78.el7"), without.clone()),
            (Ok("unknown"), without.clone()),
            (Err("Access denied"), without),
        ];
        for (version, want) in cases {
            let cg = with_pod_slice();
            cg.bus().set_version(version);
            cg.write_pod(&pod(), &limit).unwrap();
            cg.write_pod(&pod(), &limit).unwrap();
            let calls = cg.bus().calls();
            assert_eq!(calls.len(), 2, "{version:?}");
            assert_eq!(names(&calls[0].1), want, "{version:?}");
            assert_eq!(cg.bus().version_reads(), 1, "{version:?}: read once");
            let files = cg.read_pod(&pod()).unwrap();
            assert_eq!(
                (files.cpu_quota, files.cpu_period),
                (Some(Limit::Value(50_000)), Some(100_000)),
                "{version:?}: the files get the period either way"
            );
        }
    }

    #[test]
    fn a_refused_property_leaves_the_files_alone() {
        let cg = with_pod_slice();
        cg.bus().fail_with("Access denied");
        let err = cg
            .write_pod(
                &pod(),
                &PodCgroupWrite::MemoryLimit {
                    bytes: Limit::Value(64 << 20),
                },
            )
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "systemd unit kubepods-burstable-pod1234_5678.slice: systemd SetUnitProperties\
             (kubepods-burstable-pod1234_5678.slice): Access denied"
        );
        assert_eq!(cg.read_pod(&pod()).unwrap().memory_limit, None);
    }

    #[test]
    fn a_missing_pod_cgroup_is_refused_before_systemd_is_asked() {
        let files = MemoryCgroupFs::new(CgroupVersion::V2);
        let bus = MemorySystemd::default();
        let cg = SystemdCgroupFs::new(files, bus, vec![]);
        assert!(cg
            .write_pod(&pod(), &PodCgroupWrite::CpuRequest { shares: 2 })
            .is_err());
        assert!(cg.bus().calls().is_empty());
    }
}
