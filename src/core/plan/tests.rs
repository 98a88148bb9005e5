use super::*;
use crate::core::resources::{QosClass, ResizePolicy};
use crate::testing::*;

fn running(names: &[&str]) -> BTreeMap<String, String> {
    names
        .iter()
        .map(|n| (n.to_string(), format!("id-{n}")))
        .collect()
}

/// A compact view of a plan: "pod mem 123", "c1 mem", "check[...]", "stop c1".
fn describe(plan: &Plan) -> Vec<String> {
    plan.steps
        .iter()
        .map(|s| match s {
            Step::CheckMemoryUsage {
                pod_limit,
                containers,
            } => format!(
                "check pod={pod_limit:?} [{}]",
                containers
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            Step::WritePodCgroup { write } => match write {
                PodCgroupWrite::MemoryLimit { bytes } => format!("pod memory {bytes}"),
                PodCgroupWrite::CpuLimit { quota, .. } => format!("pod quota {quota}"),
                PodCgroupWrite::CpuRequest { shares } => format!("pod shares {shares}"),
            },
            Step::UpdateContainer { name, resource, .. } => format!(
                "{name} {}",
                match resource {
                    Resource::Memory => "memory",
                    Resource::Cpu => "cpu",
                }
            ),
            Step::StopContainer { name, .. } => format!("stop {name}"),
        })
        .collect()
}

/// Applies a plan's effects the way the executor would.
fn apply(plan: &Plan, actuated: &mut PodResourceState, cgroup: &mut PodCgroupValues) {
    for s in &plan.steps {
        record_actuated(actuated, s);
        if let Step::WritePodCgroup { write } = s {
            match *write {
                PodCgroupWrite::MemoryLimit { bytes } => cgroup.memory_limit = Some(bytes),
                PodCgroupWrite::CpuLimit { quota, period } => {
                    cgroup.cpu_quota = Some(quota);
                    cgroup.cpu_period = Some(period);
                }
                PodCgroupWrite::CpuRequest { shares } => cgroup.cpu_shares = Some(shares),
            }
        }
    }
}

/// The plan for `pod` from `actuated` on [`node`], no shares written before.
fn plan_with(
    pod: &PodSpec,
    actuated: &PodResourceState,
    running: &BTreeMap<String, String>,
    pod_cgroup: Option<PodCgroupValues>,
) -> Plan {
    plan_pod_resize(&PlanInput {
        pod,
        actuated,
        running,
        pod_cgroup,
        last_written_shares: None,
        node: &node(""),
    })
}

/// Pod `u` with one container `c`.
fn one_pod(requests: &str, limits: &str) -> PodSpec {
    pod("u", vec![container("c", requests, limits)])
}

struct Case {
    before: PodSpec,
    after: PodSpec,
    running: BTreeMap<String, String>,
}

impl Case {
    /// One running container `c` resized from `before` to `after` (each `(requests, limits)`).
    fn one(before: (&str, &str), after: (&str, &str)) -> Self {
        Case {
            before: one_pod(before.0, before.1),
            after: one_pod(after.0, after.1),
            running: running(&["c"]),
        }
    }

    fn plan(&self) -> (Plan, PodResourceState, PodCgroupValues) {
        let actuated = self.before.resource_state();
        let cgroup = pod_cgroup_values(&self.before, &node(""));
        let plan = plan_with(&self.after, &actuated, &self.running, Some(cgroup));
        (plan, actuated, cgroup)
    }

    /// Plans, applies, re-plans: the second plan must be empty.
    fn converges(&self) -> Vec<String> {
        let (plan, mut actuated, mut cgroup) = self.plan();
        apply(&plan, &mut actuated, &mut cgroup);
        let again = plan_with(&self.after, &actuated, &self.running, Some(cgroup));
        assert!(again.is_empty(), "not converged: {:?}", describe(&again));
        assert!(!is_in_progress(&self.after, &actuated, &self.running));
        describe(&plan)
    }
}

#[test]
fn burstable_increase_grows_pod_first_memory_then_cpu() {
    let case = Case::one(
        ("cpu=100m,memory=64Mi", "cpu=200m,memory=128Mi"),
        ("cpu=300m,memory=64Mi", "cpu=400m,memory=256Mi"),
    );
    assert_eq!(
        case.converges(),
        [
            "pod memory 268435456",
            "c memory",
            "pod quota 40000",
            "pod shares 307",
            "c cpu"
        ]
    );
}

#[test]
fn spec_example_net_memory_increase_with_c3_shrinking() {
    // spec §7.2: pod ↑, c3 ↓, c1 ↑, c2 ↑
    let mk = |m1, m2, m3| {
        pod(
            "u",
            vec![
                container("c1", "cpu=100m", &format!("memory={m1}")),
                container("c2", "cpu=100m", &format!("memory={m2}")),
                container("c3", "cpu=100m", &format!("memory={m3}")),
            ],
        )
    };
    let case = Case {
        before: mk("100Mi", "100Mi", "100Mi"),
        after: mk("200Mi", "200Mi", "50Mi"),
        running: running(&["c1", "c2", "c3"]),
    };
    assert_eq!(
        case.converges(),
        [
            "check pod=None [c3]",
            "pod memory 471859200",
            "c3 memory",
            "c1 memory",
            "c2 memory"
        ]
    );
}

#[test]
fn decreases_shrink_pod_last_and_are_checked_first() {
    let case = Case::one(
        ("cpu=500m,memory=256Mi", "cpu=500m,memory=256Mi"),
        ("cpu=250m,memory=128Mi", "cpu=250m,memory=128Mi"),
    );
    assert_eq!(case.before.effective_qos(), QosClass::Guaranteed);
    assert_eq!(
        case.converges(),
        [
            "check pod=Some(134217728) [c]",
            "c memory",
            "pod memory 134217728",
            "c cpu",
            "pod shares 256",
            "pod quota 25000"
        ]
    );
}

#[test]
fn unlimited_to_limited_pod_memory_is_a_checked_shrink() {
    // The pod cgroup reads back `max` (v2 "max", v1 the page-counter maximum): setting a
    // memory limit on every container lowers it, so it is checked and written last.
    let before = one_pod("cpu=100m,memory=64Mi", "cpu=200m");
    let after = one_pod("cpu=100m,memory=64Mi", "cpu=200m,memory=256Mi");
    let cgroup = PodCgroupValues {
        memory_limit: Some(Limit::Max),
        ..pod_cgroup_values(&before, &node(""))
    };
    let plan = plan_with(
        &after,
        &before.resource_state(),
        &running(&["c"]),
        Some(cgroup),
    );
    assert_eq!(
        describe(&plan),
        [
            "check pod=Some(268435456) [c]",
            "c memory",
            "pod memory 268435456"
        ]
    );
}

#[test]
fn memory_and_cpu_updates_carry_the_right_halves() {
    let case = Case::one(
        ("cpu=100m,memory=64Mi", "cpu=200m,memory=128Mi"),
        ("cpu=300m,memory=64Mi", "cpu=400m,memory=256Mi"),
    );
    let (plan, _, _) = case.plan();
    let updates: Vec<&LinuxResources> = plan
        .steps
        .iter()
        .filter_map(|s| match s {
            Step::UpdateContainer { resources, .. } => Some(resources),
            _ => None,
        })
        .collect();
    // memory pass: new memory, old cpu
    assert_eq!(
        (
            updates[0].memory_limit_in_bytes,
            updates[0].cpu_shares,
            updates[0].cpu_quota
        ),
        (256 << 20, 102, 20_000)
    );
    // cpu pass: new cpu, memory as applied
    assert_eq!(
        (
            updates[1].memory_limit_in_bytes,
            updates[1].cpu_shares,
            updates[1].cpu_quota
        ),
        (256 << 20, 307, 40_000)
    );
}

#[test]
fn containers_that_do_not_run_are_not_planned() {
    let case = Case {
        before: pod(
            "u",
            vec![
                container("a", "cpu=100m", "cpu=100m"),
                container("b", "cpu=100m", "cpu=100m"),
            ],
        ),
        after: pod(
            "u",
            vec![
                container("a", "cpu=200m", "cpu=200m"),
                container("b", "cpu=200m", "cpu=200m"),
            ],
        ),
        running: running(&["a"]),
    };
    let (plan, _, _) = case.plan();
    let d = describe(&plan);
    assert!(d.contains(&"a cpu".to_string()), "{d:?}");
    assert!(!d.iter().any(|s| s.starts_with("b ")), "{d:?}");
}

#[test]
fn nothing_to_do_is_an_empty_plan_and_no_pod_cgroups_means_container_steps_only() {
    let p = one_pod("cpu=100m", "cpu=200m");
    let n = node("");
    let r = running(&["c"]);
    let empty = plan_with(&p, &p.resource_state(), &r, Some(pod_cgroup_values(&p, &n)));
    assert!(empty.is_empty(), "{:?}", describe(&empty));
    let after = one_pod("cpu=300m", "cpu=400m");
    let plan = plan_with(&after, &p.resource_state(), &r, None);
    assert_eq!(describe(&plan), ["c cpu"]);
}

#[test]
fn restart_container_policy_stops_after_growing_and_never_shrinks_early() {
    let mut before = one_pod("cpu=100m,memory=64Mi", "memory=128Mi");
    before.containers[0].resize_policy = ResizePolicy {
        cpu: ResizeRestartPolicy::NotRequired,
        memory: ResizeRestartPolicy::RestartContainer,
    };
    let mut after = before.clone();
    after.containers[0].resources = reqs("cpu=100m,memory=32Mi", "memory=256Mi");
    after.termination_grace_period_seconds = Some(1);
    let case = Case {
        before,
        after,
        running: running(&["c"]),
    };
    let (plan, _, _) = case.plan();
    assert_eq!(describe(&plan), ["pod memory 268435456", "stop c"]);
    assert!(matches!(
        plan.steps[1],
        Step::StopContainer {
            timeout_seconds: 2,
            ..
        }
    ));
}

#[test]
fn a_page_rounded_pod_memory_limit_is_already_in_place() {
    // "100M" = 100000000 bytes; the kernel shows 99999744 (whole 4 KiB pages)
    let p = one_pod("cpu=100m,memory=100M", "cpu=100m,memory=100M");
    let n = node("");
    let r = running(&["c"]);
    let mut cgroup = pod_cgroup_values(&p, &n);
    assert_eq!(cgroup.memory_limit, Some(Limit::Value(100_000_000)));
    cgroup.memory_limit = Some(Limit::Value(99_999_744));
    let plan = plan_with(&p, &p.resource_state(), &r, Some(cgroup));
    assert!(plan.is_empty(), "{:?}", describe(&plan));
    // a limit one page lower still differs
    cgroup.memory_limit = Some(Limit::Value(99_999_744 - 4096));
    let plan = plan_with(&p, &p.resource_state(), &r, Some(cgroup));
    assert_eq!(describe(&plan), ["pod memory 100000000"]);
}

#[test]
fn crash_before_the_pod_shrink_converges_on_the_next_pass() {
    let before = one_pod("cpu=500m,memory=256Mi", "cpu=500m,memory=256Mi");
    let after = one_pod("cpu=500m,memory=128Mi", "cpu=500m,memory=128Mi");
    let n = node("");
    let r = running(&["c"]);
    // the container update was recorded, the pod shrink was not
    let actuated = after.resource_state();
    let cgroup = pod_cgroup_values(&before, &n);
    let plan = plan_with(&after, &actuated, &r, Some(cgroup));
    assert_eq!(
        describe(&plan),
        ["check pod=Some(134217728) []", "pod memory 134217728"]
    );
}
