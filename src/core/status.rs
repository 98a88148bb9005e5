//! Status values (spec §12): `containerStatuses[].resources` from allocated, actuated and what the
//! runtime reports, and `allocatedResources`.

use super::conversions::{quota_to_milli_cpu, shares_to_milli_cpu};
use super::quantity::Quantity;
use super::resources::{ResourceList, ResourceRequirements, CPU, MEMORY};
use super::runtime::LinuxResources;

/// cpu limits at or below this (10m) read back as the 1 ms minimum quota: keep allocated.
const MIN_REPORTED_CPU_LIMIT_MILLI: i64 = 10;
/// cpu requests at or below this (2m) read back as the minimum 2 shares: keep allocated.
const MIN_REPORTED_CPU_REQUEST_MILLI: i64 = 2;

/// Spec §12.1 runtime input: what the runtime's `LinuxResources` say about the four values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct RuntimeValues {
    cpu_limit: Option<i64>,
    cpu_request: Option<i64>,
    memory_limit: Option<i64>,
}

fn runtime_values(r: &LinuxResources) -> RuntimeValues {
    let cpu_limit = (r.cpu_period > 0)
        .then(|| quota_to_milli_cpu(r.cpu_quota, r.cpu_period))
        .filter(|m| *m > 0);
    let cpu_request = (r.cpu_shares > 0)
        .then(|| shares_to_milli_cpu(r.cpu_shares))
        .filter(|m| *m > 0);
    let memory_limit = (r.memory_limit_in_bytes > 0).then_some(r.memory_limit_in_bytes);
    RuntimeValues {
        cpu_limit,
        cpu_request,
        memory_limit,
    }
}

/// `containerStatuses[].resources` (spec §12.1).
///
/// - not running → allocated;
/// - running → allocated, with cpu limit / memory limit / cpu request from the runtime (cpu kept
///   at allocated when both are at or below the readback floor), memory request from actuated;
///   when the runtime reports nothing, the values come from actuated; a value neither has keeps
///   `previous` (the value reported for the same container ID).
pub fn container_resources_status(
    allocated: &ResourceRequirements,
    actuated: Option<&ResourceRequirements>,
    runtime: Option<&LinuxResources>,
    running: bool,
    previous: Option<&ResourceRequirements>,
) -> ResourceRequirements {
    if !running {
        return allocated.clone();
    }
    let actuated_value = |l: fn(&ResourceRequirements) -> &ResourceList, name: &str| {
        actuated
            .and_then(|a| l(a).get(name))
            .copied()
            .filter(|q| !q.is_zero())
    };
    let reported = runtime.map(runtime_values);
    let from_runtime = |v: Option<i64>, milli: bool| {
        v.map(|v| {
            if milli {
                Quantity::from_milli(v)
            } else {
                Quantity::from_bytes(v)
            }
        })
    };
    let (cpu_limit, cpu_request, memory_limit) = match reported {
        Some(r) => (
            from_runtime(r.cpu_limit, true),
            from_runtime(r.cpu_request, true),
            from_runtime(r.memory_limit, false),
        ),
        None => (
            actuated_value(|a| &a.limits, CPU),
            actuated_value(|a| &a.requests, CPU),
            actuated_value(|a| &a.limits, MEMORY),
        ),
    };
    let memory_request = actuated_value(|a| &a.requests, MEMORY);
    let prev = |l: fn(&ResourceRequirements) -> &ResourceList, name: &str| {
        previous.and_then(|p| l(p).get(name)).copied()
    };

    let mut out = allocated.clone();
    if !allocated.limits.is_empty() {
        let alloc_cpu = allocated.limits.get(CPU).map_or(0, Quantity::milli_value);
        match cpu_limit.or_else(|| prev(|p| &p.limits, CPU)) {
            Some(q)
                if q.milli_value() <= MIN_REPORTED_CPU_LIMIT_MILLI
                    && alloc_cpu <= MIN_REPORTED_CPU_LIMIT_MILLI => {}
            Some(q) => {
                out.limits.insert(CPU.into(), q);
            }
            None => {}
        }
        if let Some(q) = memory_limit.or_else(|| prev(|p| &p.limits, MEMORY)) {
            out.limits.insert(MEMORY.into(), q);
        }
    }
    if !allocated.requests.is_empty() {
        let alloc_cpu = allocated.requests.get(CPU).map_or(0, Quantity::milli_value);
        match cpu_request.or_else(|| prev(|p| &p.requests, CPU)) {
            Some(q)
                if q.milli_value() <= MIN_REPORTED_CPU_REQUEST_MILLI
                    && alloc_cpu <= MIN_REPORTED_CPU_REQUEST_MILLI => {}
            Some(q) => {
                out.requests.insert(CPU.into(), q);
            }
            None => {}
        }
        if let Some(q) = memory_request.or_else(|| prev(|p| &p.requests, MEMORY)) {
            out.requests.insert(MEMORY.into(), q);
        }
    }
    out
}

/// `containerStatuses[].allocatedResources` (spec §12.2): the allocated requests.
pub fn allocated_resources_status(allocated: &ResourceRequirements) -> ResourceList {
    allocated.requests.clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::reqs;

    fn linux(shares: i64, quota: i64, memory: i64) -> LinuxResources {
        LinuxResources {
            cpu_period: 100_000,
            cpu_quota: quota,
            cpu_shares: shares,
            memory_limit_in_bytes: memory,
            ..LinuxResources::default()
        }
    }

    #[test]
    fn not_running_reports_allocated() {
        let a = reqs("cpu=100m", "cpu=200m");
        assert_eq!(container_resources_status(&a, None, None, false, None), a);
    }

    #[test]
    fn running_reports_actual_cpu_and_memory_limit_and_actuated_memory_request() {
        let allocated = reqs("cpu=300m,memory=64Mi", "cpu=400m,memory=256Mi");
        let actuated = reqs("cpu=100m,memory=32Mi", "cpu=200m,memory=128Mi");
        let got = container_resources_status(
            &allocated,
            Some(&actuated),
            Some(&linux(102, 20_000, 128 << 20)),
            true,
            None,
        );
        assert_eq!(got, reqs("cpu=100m,memory=32Mi", "cpu=200m,memory=128Mi"));
    }

    #[test]
    fn tiny_cpu_values_report_allocated() {
        // 1m ≡ 2m requests and 5m ≡ 10m limits
        let allocated = reqs("cpu=1m", "cpu=5m");
        let got = container_resources_status(
            &allocated,
            Some(&allocated),
            Some(&linux(2, 1000, 0)),
            true,
            None,
        );
        assert_eq!(got, allocated);
        let bigger = reqs("cpu=1m", "cpu=50m");
        let got = container_resources_status(
            &bigger,
            Some(&bigger),
            Some(&linux(2, 1000, 0)),
            true,
            None,
        );
        assert_eq!(got.limits["cpu"], Quantity::from_milli(10));
    }

    #[test]
    fn nothing_reported_falls_back_to_actuated_then_previous() {
        let allocated = reqs("cpu=300m,memory=64Mi", "cpu=400m,memory=256Mi");
        let actuated = reqs("cpu=100m,memory=32Mi", "cpu=200m,memory=128Mi");
        let got = container_resources_status(&allocated, Some(&actuated), None, true, None);
        assert_eq!(got, actuated);
        // runtime reports no memory limit; the previous report for this container keeps it
        let prev = reqs("cpu=100m", "memory=99Mi");
        let got = container_resources_status(
            &allocated,
            Some(&actuated),
            Some(&linux(102, 20_000, 0)),
            true,
            Some(&prev),
        );
        assert_eq!(got.limits["memory"], Quantity::parse("99Mi").unwrap());
    }
}
