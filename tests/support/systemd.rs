//! The kubelet double's systemd side (the `scripts/vm-test.sh --mode systemd` guest): pod slices
//! created as the kubelet creates them — transient slice units through systemd's D-Bus API with
//! libcontainer's properties (`opencontainers/cgroups systemd/v2.go` `Apply`: `Wants=` the parent
//! slice, accounting on, `DefaultDependencies=no`) and the §11.2 values as `CPUWeight`,
//! `CPUQuotaPeriodUSec`/`CPUQuotaPerSecUSec`, `MemoryMax` — plus read-back and `daemon-reload`.
//! Written against zbus directly, independently of `resizelet::cgroup::systemd`.

use std::time::{Duration, Instant};

use resizelet::core::plan::{Limit, PodCgroupValues};
use resizelet::core::resources::QosClass;
use zbus::zvariant::{OwnedObjectPath, OwnedValue, Value};

use super::kubelet::{shares_to_weight, TestPod, CFS_PERIOD_US};

const DEST: &str = "org.freedesktop.systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";

pub struct Systemd {
    conn: zbus::blocking::Connection,
}

/// The slice chain of a pod (spec §11.4), outermost first: `kubepods.slice`,
/// `kubepods-burstable.slice`, `kubepods-burstable-pod<uid_>.slice`.
pub fn pod_slices(pod: &TestPod) -> Vec<String> {
    let uid = pod.uid.replace('-', "_");
    match pod.qos {
        QosClass::Guaranteed => vec!["kubepods.slice".into(), format!("kubepods-pod{uid}.slice")],
        QosClass::Burstable => vec![
            "kubepods.slice".into(),
            "kubepods-burstable.slice".into(),
            format!("kubepods-burstable-pod{uid}.slice"),
        ],
        QosClass::BestEffort => vec![
            "kubepods.slice".into(),
            "kubepods-besteffort.slice".into(),
            format!("kubepods-besteffort-pod{uid}.slice"),
        ],
    }
}

/// `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid_>.slice`
pub fn pod_slice_path(pod: &TestPod) -> String {
    pod_slices(pod).iter().map(|s| format!("/{s}")).collect()
}

/// §11.2 values as libcontainer's v2 unit properties (quota rounded to whole 10 ms per second).
fn resource_properties(v: &PodCgroupValues) -> Vec<(&'static str, u64)> {
    let mut props = Vec::new();
    if let Some(shares) = v.cpu_shares {
        props.push(("CPUWeight", shares_to_weight(shares as i64) as u64));
    }
    if v.cpu_quota.is_some() || v.cpu_period.is_some() {
        let period = v.cpu_period.unwrap_or(CFS_PERIOD_US as u64);
        props.push(("CPUQuotaPeriodUSec", period));
        let per_sec = match v.cpu_quota {
            Some(Limit::Value(q)) if q > 0 => {
                let u = q as u64 * 1_000_000 / period;
                u.div_ceil(10_000) * 10_000
            }
            _ => u64::MAX,
        };
        props.push(("CPUQuotaPerSecUSec", per_sec));
    }
    if let Some(m) = v.memory_limit {
        let m = m.value().and_then(|b| u64::try_from(b).ok());
        props.push(("MemoryMax", m.unwrap_or(u64::MAX)));
    }
    props
}

impl Systemd {
    pub fn connect() -> Self {
        let conn = zbus::blocking::connection::Builder::system()
            .and_then(|b| b.method_timeout(Duration::from_secs(30)).build())
            .unwrap_or_else(|e| panic!("connect to the system bus: {e}"));
        Systemd { conn }
    }

    fn manager(&self) -> zbus::blocking::Proxy<'_> {
        zbus::blocking::Proxy::new(&self.conn, DEST, "/org/freedesktop/systemd1", MANAGER)
            .expect("manager proxy")
    }

    fn unit_path(&self, unit: &str) -> Option<OwnedObjectPath> {
        self.manager().call("GetUnit", &(unit,)).ok()
    }

    /// A property of a loaded unit on `interface` (e.g. "org.freedesktop.systemd1.Slice").
    pub fn property(&self, unit: &str, interface: &str, name: &str) -> OwnedValue {
        let path = self
            .unit_path(unit)
            .unwrap_or_else(|| panic!("unit {unit} is not loaded"));
        zbus::blocking::Proxy::new(&self.conn, DEST, path, interface.to_string())
            .expect("unit proxy")
            .get_property(name)
            .unwrap_or_else(|e| panic!("{unit} {name}: {e}"))
    }

    /// A u64 property of a slice (`CPUWeight`, `CPUQuotaPerSecUSec`, `MemoryMax`, ...).
    pub fn slice_u64(&self, unit: &str, name: &str) -> u64 {
        let v = self.property(unit, "org.freedesktop.systemd1.Slice", name);
        u64::try_from(&v).unwrap_or_else(|e| panic!("{unit} {name} = {v:?}: {e}"))
    }

    /// `SetUnitProperties(unit, runtime, [(name, value)])` for a u64 property, as a node's admin
    /// (or another agent) would change a slice.
    pub fn set_u64(&self, unit: &str, name: &str, value: u64) {
        let props = vec![(name, Value::U64(value))];
        self.manager()
            .call::<_, _, ()>("SetUnitProperties", &(unit, true, props))
            .unwrap_or_else(|e| panic!("SetUnitProperties {unit} {name}={value}: {e}"));
    }

    fn active_state(&self, unit: &str) -> Option<String> {
        self.unit_path(unit)?;
        let v = self.property(unit, "org.freedesktop.systemd1.Unit", "ActiveState");
        String::try_from(v).ok()
    }

    fn start_slice(&self, unit: &str, parent: Option<&str>, resources: &[(&'static str, u64)]) {
        if self.active_state(unit).as_deref() == Some("active") {
            return; // the QoS slices are shared between pods, as on a node
        }
        let mut props: Vec<(&str, Value<'_>)> = vec![
            ("Description", Value::from(format!("resizelet test {unit}"))),
            ("MemoryAccounting", Value::Bool(true)),
            ("CPUAccounting", Value::Bool(true)),
            ("IOAccounting", Value::Bool(true)),
            ("TasksAccounting", Value::Bool(true)),
            ("DefaultDependencies", Value::Bool(false)),
        ];
        if let Some(p) = parent {
            props.push(("Wants", Value::from(vec![p.to_string()])));
        }
        for (name, v) in resources {
            props.push((name, Value::U64(*v)));
        }
        let aux: Vec<(&str, Vec<(&str, Value<'_>)>)> = Vec::new();
        let started: Result<OwnedObjectPath, _> = self
            .manager()
            .call("StartTransientUnit", &(unit, "replace", props, aux));
        if let Err(e) = started {
            // a concurrent test may have created the shared QoS slice in between
            if !e.to_string().contains("already exists") {
                panic!("StartTransientUnit {unit}: {e}");
            }
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.active_state(unit).as_deref() != Some("active") {
            assert!(
                Instant::now() < deadline,
                "slice {unit} did not become active"
            );
            std::thread::sleep(Duration::from_millis(20)); // poll interval, bounded above
        }
    }

    /// The kubelet's pod slice (and the QoS slices above it), with the §11.2 values.
    pub fn create_pod_slice(&self, pod: &TestPod, values: &PodCgroupValues) {
        let slices = pod_slices(pod);
        let mut parent: Option<&str> = None;
        for (i, s) in slices.iter().enumerate() {
            let resources = if i + 1 == slices.len() {
                resource_properties(values)
            } else {
                Vec::new()
            };
            self.start_slice(s, parent, &resources);
            parent = Some(s);
        }
    }

    /// Stops the pod's slice (systemd removes its cgroup); the QoS slices stay, as on a node.
    pub fn stop_pod_slice(&self, pod: &TestPod) -> Result<(), String> {
        let unit = pod_slices(pod).pop().expect("pod slice");
        if self.unit_path(&unit).is_none() {
            return Ok(());
        }
        let _: OwnedObjectPath = self
            .manager()
            .call("StopUnit", &(unit.as_str(), "replace"))
            .map_err(|e| format!("StopUnit {unit}: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while matches!(
            self.active_state(&unit).as_deref(),
            Some("active" | "deactivating")
        ) {
            if Instant::now() >= deadline {
                return Err(format!("slice {unit} did not stop"));
            }
            std::thread::sleep(Duration::from_millis(20)); // poll interval, bounded above
        }
        Ok(())
    }
}

/// `systemctl daemon-reload` (returns when the reload is done).
pub fn daemon_reload() {
    let out = std::process::Command::new("systemctl")
        .arg("daemon-reload")
        .output()
        .expect("run systemctl daemon-reload");
    assert!(
        out.status.success(),
        "systemctl daemon-reload: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
