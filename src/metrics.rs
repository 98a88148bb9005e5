//! Prometheus metrics: the kubelet's resize metrics (spec §13, same names and labels) plus
//! resizelet's own per-phase latency histograms, in base units (seconds) except where the
//! kubelet's name says otherwise. Registered once; rendered by the admin endpoint.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

use crate::core::resources::{PodSpec, ResourceList, CPU, MEMORY};

/// The phases of one pod pass, as measured by the controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Runtime listing, seeding, admission, allocated checkpoint, pod cgroup read, planning.
    Admission,
    /// Applying the plan: cgroup writes, CRI `UpdateContainerResources`, actuated checkpoint.
    Enactment,
    /// CRI `ContainerStatus` reads for `containerStatuses[].resources`.
    RuntimeStatus,
    /// The status patch (including 409 re-reads).
    StatusPatch,
    /// Watch event received → status written (the whole pass, queueing included).
    Total,
}

impl Phase {
    pub const ALL: [Phase; 5] = [
        Phase::Admission,
        Phase::Enactment,
        Phase::RuntimeStatus,
        Phase::StatusPatch,
        Phase::Total,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Phase::Admission => "admission",
            Phase::Enactment => "enactment",
            Phase::RuntimeStatus => "runtime_status",
            Phase::StatusPatch => "status_patch",
            Phase::Total => "total",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResizeOpLabels {
    resource: &'static str,
    requirement: &'static str,
    operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SuccessLabels {
    success: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonDetailLabels {
    reason_detail: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TriggerLabels {
    retry_trigger: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    phase: &'static str,
}

fn resize_duration_ms() -> Histogram {
    // kubelet: 10, 50, 100, 500, 1000, 5000, 10000, 20000, 30000, 60000, 120000, 300000, 600000 ms
    Histogram::new([
        10.0, 50.0, 100.0, 500.0, 1000.0, 5000.0, 10000.0, 20000.0, 30000.0, 60000.0, 120000.0,
        300000.0, 600000.0,
    ])
}

fn phase_seconds() -> Histogram {
    // 100 µs … ~13 s
    Histogram::new(exponential_buckets(0.0001, 2.0, 18))
}

/// Declares every metric once — field, type, exported name, optional unit, help, optional
/// constructor (`Default::default()` when absent) — and derives from that one list the
/// `Metrics` struct, its `Default` and `Metrics::registry`, so a metric cannot be declared but
/// left unregistered, and the registration order (the render order) is the list's.
macro_rules! metrics {
    ($($field:ident: $ty:ty $(= $init:expr)?, $name:literal $(in $unit:ident)?, $help:literal;)*) => {
        /// Every metric resizelet exports.
        pub struct Metrics {
            $($field: $ty,)*
        }

        impl Default for Metrics {
            fn default() -> Self {
                Metrics {
                    $($field: metrics!(@init $($init)?),)*
                }
            }
        }

        impl Metrics {
            /// A registry holding (clones of) every metric; the metrics stay live.
            pub fn registry(&self) -> Registry {
                let mut r = Registry::default();
                $(metrics!(@register r, $name, $help, self.$field.clone() $(, $unit)?);)*
                r
            }
        }
    };
    (@init) => {
        Default::default()
    };
    (@init $init:expr) => {
        $init
    };
    (@register $r:ident, $name:literal, $help:literal, $metric:expr) => {
        $r.register($name, $help, $metric)
    };
    (@register $r:ident, $name:literal, $help:literal, $metric:expr, $unit:ident) => {
        $r.register_with_unit($name, $help, Unit::$unit, $metric)
    };
}

metrics! {
    requested_resizes: Family<ResizeOpLabels, Counter>,
        "kubelet_container_requested_resizes",
        "Requested resizes, by resource, requirement and operation (kubelet name)";
    resize_duration: Family<SuccessLabels, Histogram, fn() -> Histogram> = Family::new_with_constructor(resize_duration_ms),
        "kubelet_pod_resize_duration_milliseconds",
        "Duration of enacting a pod resize, in milliseconds (kubelet name and unit)";
    pending_resizes: Family<ReasonLabels, Gauge>,
        "kubelet_pod_pending_resizes",
        "Pods with a pending resize, by reason (deferred|infeasible)";
    infeasible_resizes: Family<ReasonDetailLabels, Counter>,
        "kubelet_pod_infeasible_resizes",
        "Resizes found infeasible, by reason detail";
    in_progress_resizes: Gauge,
        "kubelet_pod_in_progress_resizes",
        "Pods whose resize is in progress";
    deferred_accepted: Family<TriggerLabels, Counter>,
        "kubelet_pod_deferred_accepted_resizes",
        "Deferred resizes accepted on a retry, by retry trigger";
    phase_duration: Family<PhaseLabels, Histogram, fn() -> Histogram> = Family::new_with_constructor(phase_seconds),
        "resizelet_pod_sync_phase_duration" in Seconds,
        "Duration of each phase of a pod pass";
    status_patches: Counter,
        "resizelet_status_patches",
        "Pod status patches sent";
    status_conflicts: Counter,
        "resizelet_status_conflicts",
        "Pod status patches refused with 409 Conflict (re-read and retried)";
    events: Counter,
        "resizelet_events",
        "Events written (creates and series updates)";
    fields_missing: Histogram = phase_seconds(),
        "resizelet_resize_fields_missing_duration" in Seconds,
        "How long containerStatuses[].resources/allocatedResources were missing after another writer erased them";
    stand_down: Gauge,
        "resizelet_stand_down",
        "1 when resizelet refuses to act because the node's kubelet enacts resizes itself";
    ready: Gauge,
        "resizelet_ready",
        "1 when the pod and node watches are synced";
}

impl Metrics {
    /// The registry in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // formatting into a String cannot fail
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry());
        out
    }

    pub fn observe_phase(&self, phase: Phase, d: Duration) {
        self.phase_duration
            .get_or_create(&PhaseLabels {
                phase: phase.label(),
            })
            .observe(d.as_secs_f64());
    }

    pub fn resize_enacted(&self, d: Duration, success: bool) {
        self.resize_duration
            .get_or_create(&SuccessLabels {
                success: if success { "true" } else { "false" },
            })
            .observe(d.as_secs_f64() * 1000.0);
    }

    pub fn requested(&self, allocated: &PodSpec, desired: &PodSpec) {
        for op in requested_resize_operations(allocated, desired) {
            self.requested_resizes
                .get_or_create(&ResizeOpLabels {
                    resource: op.resource,
                    requirement: op.requirement,
                    operation: op.operation,
                })
                .inc();
        }
    }

    pub fn infeasible(&self, reason_detail: &'static str) {
        self.infeasible_resizes
            .get_or_create(&ReasonDetailLabels { reason_detail })
            .inc();
    }

    pub fn deferred_accepted(&self, trigger: &'static str) {
        self.deferred_accepted
            .get_or_create(&TriggerLabels {
                retry_trigger: trigger,
            })
            .inc();
    }

    /// Sets the gauges of pending (deferred, infeasible) and in-progress pods.
    pub fn set_resize_gauges(&self, deferred: usize, infeasible: usize, in_progress: usize) {
        self.pending_resizes
            .get_or_create(&ReasonLabels { reason: "deferred" })
            .set(deferred as i64);
        self.pending_resizes
            .get_or_create(&ReasonLabels {
                reason: "infeasible",
            })
            .set(infeasible as i64);
        self.in_progress_resizes.set(in_progress as i64);
    }

    pub fn status_patch(&self) {
        self.status_patches.inc();
    }

    pub fn status_conflict(&self) {
        self.status_conflicts.inc();
    }

    pub fn event(&self) {
        self.events.inc();
    }

    pub fn fields_missing(&self, d: Duration) {
        self.fields_missing.observe(d.as_secs_f64());
    }

    pub fn set_stand_down(&self, on: bool) {
        self.stand_down.set(on as i64);
    }

    pub fn set_ready(&self, on: bool) {
        self.ready.set(on as i64);
    }
}

/// One `kubelet_container_requested_resizes_total` increment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResizeOperation {
    pub resource: &'static str,
    pub requirement: &'static str,
    pub operation: &'static str,
}

/// What changed between the allocated and the desired resources of each resizable container
/// (cpu and memory; requests and limits): add, remove, increase or decrease.
pub fn requested_resize_operations(allocated: &PodSpec, desired: &PodSpec) -> Vec<ResizeOperation> {
    let mut ops = Vec::new();
    for want in desired.resizable_containers() {
        let Some(have) = allocated.container(&want.name) else {
            continue;
        };
        let pairs: [(&'static str, &ResourceList, &ResourceList); 2] = [
            (
                "requests",
                &have.resources.requests,
                &want.resources.requests,
            ),
            ("limits", &have.resources.limits, &want.resources.limits),
        ];
        for (requirement, before, after) in pairs {
            for resource in [CPU, MEMORY] {
                let operation = match (before.get(resource), after.get(resource)) {
                    (None, Some(_)) => "add",
                    (Some(_), None) => "remove",
                    (Some(b), Some(a)) if a > b => "increase",
                    (Some(b), Some(a)) if a < b => "decrease",
                    _ => continue,
                };
                ops.push(ResizeOperation {
                    resource: if resource == CPU { "cpu" } else { "memory" },
                    requirement,
                    operation,
                });
            }
        }
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;

    #[test]
    fn operations_per_resource_and_requirement() {
        let c = container("c", "cpu=500m,memory=1Gi", "memory=1Gi");
        let before = pod("u", vec![c]);
        let after = resized(&before, "cpu=1,memory=1Gi", "cpu=2,memory=512Mi");
        let ops: Vec<_> = requested_resize_operations(&before, &after)
            .iter()
            .map(|o| format!("{} {} {}", o.resource, o.requirement, o.operation))
            .collect();
        assert_eq!(
            ops,
            [
                "cpu requests increase",
                "cpu limits add",
                "memory limits decrease"
            ]
        );
    }

    #[test]
    fn renders_kubelet_names_and_phase_histograms() {
        let m = Metrics::default();
        m.observe_phase(Phase::Enactment, Duration::from_millis(8));
        m.resize_enacted(Duration::from_millis(12), true);
        m.set_resize_gauges(2, 1, 0);
        let text = m.render();
        for needle in [
            "kubelet_pod_resize_duration_milliseconds_bucket{le=\"50.0\",success=\"true\"} 1",
            "kubelet_pod_pending_resizes{reason=\"deferred\"} 2",
            "kubelet_pod_in_progress_resizes 0",
            "resizelet_pod_sync_phase_duration_seconds_count{phase=\"enactment\"} 1",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
    }
}
