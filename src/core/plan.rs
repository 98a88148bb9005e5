//! Enactment planning (spec §7, §8): for one pod, the ordered steps as data. Applied by
//! `crate::executor`.

use serde::{Deserialize, Serialize};

use super::resources::{Resource, ResourceRequirements};
use super::runtime::LinuxResources;

pub use super::pod_cgroup::{Limit, PodCgroupValues};

/// One write to the pod cgroup (spec §7.2 `writePod`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PodCgroupWrite {
    /// v1 `cpu.cfs_period_us` + `cpu.cfs_quota_us`; v2 `cpu.max`.
    CpuLimit { quota: Limit, period: u64 },
    /// v1 `cpu.shares`; v2 `cpu.weight` (linear conversion, §9).
    CpuRequest { shares: u64 },
    /// v1 `memory.limit_in_bytes`; v2 `memory.max`.
    MemoryLimit { bytes: Limit },
}

/// A container memory-limit decrease to verify against usage (§7.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerLimitCheck {
    pub name: String,
    pub id: String,
    pub new_limit: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Step {
    /// Refuse if usage ≥ new limit for the pod or any listed container (§7.3).
    CheckMemoryUsage {
        pod_limit: Option<i64>,
        containers: Vec<ContainerLimitCheck>,
    },
    WritePodCgroup {
        write: PodCgroupWrite,
    },
    /// `UpdateContainerResources`; on success `actuated` becomes the container's actuated record.
    UpdateContainer {
        name: String,
        id: String,
        resource: Resource,
        resources: LinuxResources,
        actuated: ResourceRequirements,
    },
    /// RestartContainer policy (§8, decision 4). The kubelet recreates the container from the
    /// (allocated) spec, so on success `actuated` (the allocated values) is recorded.
    StopContainer {
        name: String,
        id: String,
        timeout_seconds: i64,
        actuated: ResourceRequirements,
    },
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub pod_uid: String,
    pub steps: Vec<Step>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
}

use std::collections::BTreeMap;

use super::allocation::PodResourceState;
use super::container_resources::{container_linux_resources, Reduced};
use super::conversions::pod_shares_read_back;
use super::node::NodeConfig;
use super::pod_cgroup::pod_cgroup_values;
use super::resources::{Container, PodSpec, ResizeRestartPolicy};

/// Everything planning one pod needs, read by the shell beforehand.
#[derive(Debug, Clone)]
pub struct PlanInput<'a> {
    /// The pod with its allocated resources (`PodSpec::with_allocated`).
    pub pod: &'a PodSpec,
    pub actuated: &'a PodResourceState,
    /// Running containers: name → container ID. Containers not listed are not planned: they get
    /// the allocated values when (re)started.
    pub running: &'a BTreeMap<String, String>,
    /// Current pod cgroup values; `None` when there are no pod cgroups (`cgroupsPerQOS=false`).
    pub pod_cgroup: Option<PodCgroupValues>,
    /// Shares last written to the pod cgroup, preferred over a lossy v2 readback (pitfall 2).
    pub last_written_shares: Option<u64>,
    pub node: &'a NodeConfig,
}

/// Default `terminationGracePeriodSeconds`.
const DEFAULT_GRACE_SECONDS: i64 = 30;
/// The kubelet's minimum kill grace period.
const MIN_GRACE_SECONDS: i64 = 2;

struct Update {
    container: Container,
    id: String,
    desired: Reduced,
    current: Reduced,
}

/// Builds the ordered enactment of one pod (spec §7.2): memory-decrease check; memory: pod
/// grow → container updates (decreases first) → pod shrink; then the same for cpu (limit before
/// request when growing, request before limit when shrinking); container stops for
/// `RestartContainer` last. Values that already match are skipped; a converged pod yields an empty
/// plan.
///
/// Deviation (documented in docs/ARCHITECTURE.md): the pod-cgroup part of a resource also runs
/// when no container of that resource changes but the pod cgroup differs from its allocated value,
/// so a crash between the last container update and the pod shrink converges on the next pass.
pub fn plan_pod_resize(input: &PlanInput) -> Plan {
    let pod = input.pod;
    let mut memory_updates: Vec<Update> = Vec::new();
    let mut cpu_updates: Vec<Update> = Vec::new();
    let mut restarts: Vec<Step> = Vec::new();
    let mut restart_memory = false;
    let mut restart_cpu = false;

    // Evaluation order: sidecars in reverse spec order, then regular containers.
    let sidecars = pod.init_containers.iter().filter(|c| c.sidecar).rev();
    for c in sidecars.chain(pod.containers.iter()) {
        let Some(id) = input.running.get(&c.name) else {
            continue;
        };
        let desired = Reduced::of(&c.resources);
        let current = input
            .actuated
            .container_resources
            .get(&c.name)
            .map(Reduced::of)
            .unwrap_or_default();
        let memory_changed = desired.memory_limit != current.memory_limit
            || desired.memory_request != current.memory_request;
        let cpu_changed =
            desired.cpu_limit != current.cpu_limit || desired.cpu_request != current.cpu_request;
        let restart = (memory_changed
            && c.resize_policy.memory == ResizeRestartPolicy::RestartContainer)
            || (cpu_changed && c.resize_policy.cpu == ResizeRestartPolicy::RestartContainer);
        if restart {
            restart_memory |= memory_changed;
            restart_cpu |= cpu_changed;
            let grace = pod
                .deletion_grace_period_seconds
                .or(pod.termination_grace_period_seconds)
                .unwrap_or(DEFAULT_GRACE_SECONDS)
                .max(MIN_GRACE_SECONDS);
            restarts.push(Step::StopContainer {
                name: c.name.clone(),
                id: id.clone(),
                timeout_seconds: grace,
                actuated: desired.to_requirements(),
            });
            continue;
        }
        let update = |desired| Update {
            container: c.clone(),
            id: id.clone(),
            desired,
            current,
        };
        if memory_changed {
            let decrease = if desired.memory_limit != current.memory_limit {
                desired.memory_limit < current.memory_limit
            } else {
                desired.memory_request < current.memory_request
            };
            let u = update(desired);
            if decrease {
                memory_updates.insert(0, u);
            } else {
                memory_updates.push(u);
            }
        }
        if cpu_changed {
            let decrease = if desired.cpu_limit != current.cpu_limit {
                desired.cpu_limit < current.cpu_limit
            } else {
                desired.cpu_request < current.cpu_request
            };
            let u = update(desired);
            if decrease {
                cpu_updates.insert(0, u);
            } else {
                cpu_updates.push(u);
            }
        }
    }

    let target = input.pod_cgroup.map(|_| pod_cgroup_values(pod, input.node));
    let mut steps = Vec::new();

    // §7.3: the memory-limit decrease check, before anything changes.
    let mut pod_limit_check = None;
    if let (Some(cur), Some(new)) = (input.pod_cgroup, target) {
        if let Some(new_limit) = new.memory_limit.and_then(Limit::value).filter(|l| *l > 0) {
            // Unknown, unlimited (`max`) or larger: a decrease to check.
            let current = cur.memory_limit.unwrap_or(Limit::Value(0));
            if current == Limit::Value(0) || Limit::Value(new_limit) < current {
                pod_limit_check = Some(new_limit);
            }
        }
    }
    let container_checks: Vec<ContainerLimitCheck> = memory_updates
        .iter()
        .filter(|u| {
            u.desired.memory_limit != 0
                && (u.current.memory_limit == 0 || u.desired.memory_limit < u.current.memory_limit)
        })
        .map(|u| ContainerLimitCheck {
            name: u.container.name.clone(),
            id: u.id.clone(),
            new_limit: u.desired.memory_limit,
        })
        .collect();
    let memory_work = !memory_updates.is_empty() || restart_memory;
    let memory_pod_differs = match (input.pod_cgroup, target) {
        (Some(cur), Some(new)) => new
            .memory_limit
            .is_some_and(|l| !same_memory_limit(l, cur.memory_limit)),
        _ => false,
    };
    if (memory_work || memory_pod_differs)
        && (pod_limit_check.is_some() || !container_checks.is_empty())
    {
        steps.push(Step::CheckMemoryUsage {
            pod_limit: pod_limit_check,
            containers: container_checks,
        });
    }

    // memory: pod grow → containers → pod shrink
    let cur_mem = input.pod_cgroup.and_then(|c| c.memory_limit);
    let new_mem = target
        .and_then(|t| t.memory_limit)
        .filter(|l| *l > Limit::Value(0))
        .or(cur_mem);
    let (cur_mem, new_mem) = (
        cur_mem.unwrap_or(Limit::Value(0)),
        new_mem.unwrap_or(Limit::Value(0)),
    );
    if memory_work || memory_pod_differs {
        if input.pod_cgroup.is_some() && new_mem > cur_mem {
            steps.push(Step::WritePodCgroup {
                write: PodCgroupWrite::MemoryLimit { bytes: new_mem },
            });
        }
        for u in &memory_updates {
            // memory pass: desired memory, current cpu
            let values = Reduced {
                memory_limit: u.desired.memory_limit,
                memory_request: u.desired.memory_request,
                ..u.current
            };
            steps.push(container_step(pod, u, values, Resource::Memory, input.node));
        }
        if input.pod_cgroup.is_some() && new_mem < cur_mem && !restart_memory {
            steps.push(Step::WritePodCgroup {
                write: PodCgroupWrite::MemoryLimit { bytes: new_mem },
            });
        }
    }

    // cpu: limit grow, request grow → containers → request shrink, limit shrink
    let cpu_work = !cpu_updates.is_empty() || restart_cpu;
    if let (Some(cur), Some(new)) = (input.pod_cgroup, target) {
        let cur_quota = cur.cpu_quota.unwrap_or(Limit::Max);
        let new_quota = new.cpu_quota.unwrap_or(cur_quota);
        let period = new
            .cpu_period
            .or(cur.cpu_period)
            .unwrap_or(input.node.cpu_cfs_period_us);
        let cur_shares = input.last_written_shares.or(cur.cpu_shares).unwrap_or(0);
        let new_shares = new.cpu_shares.unwrap_or(cur_shares);
        // Without a last-written value the current shares are a readback, lossy on v2
        // (pitfall 2): shares that read back as the current value are the same.
        let same_shares = new_shares == cur_shares
            || (input.last_written_shares.is_none()
                && pod_shares_read_back(input.node.cgroup_version, new_shares) == cur_shares);
        let new_shares = if same_shares { cur_shares } else { new_shares };
        let differs = new_quota != cur_quota || !same_shares;
        if cpu_work || differs {
            let limit = PodCgroupWrite::CpuLimit {
                quota: new_quota,
                period,
            };
            let request = PodCgroupWrite::CpuRequest { shares: new_shares };
            if new_quota > cur_quota {
                steps.push(Step::WritePodCgroup { write: limit });
            }
            if new_shares > cur_shares {
                steps.push(Step::WritePodCgroup { write: request });
            }
            push_cpu_updates(&mut steps, pod, &cpu_updates, &memory_updates, input.node);
            if !restart_cpu {
                if new_shares < cur_shares {
                    steps.push(Step::WritePodCgroup { write: request });
                }
                if new_quota < cur_quota {
                    steps.push(Step::WritePodCgroup { write: limit });
                }
            }
        }
    } else {
        push_cpu_updates(&mut steps, pod, &cpu_updates, &memory_updates, input.node);
    }

    steps.extend(restarts);
    Plan {
        pod_uid: pod.uid.clone(),
        steps,
    }
}

/// The kernel keeps memory limits in whole pages: `memory.max` (v2) and `memory.limit_in_bytes` (v1)
/// read back rounded down to the page size (kernel 6.1: 999999999 → 999997440). A limit of "100M"
/// is therefore already in place when the file shows its page-aligned value; comparing exact bytes
/// would re-plan the pod-cgroup write on every pass. 4 KiB pages (x86-64, arm64 defaults).
const PAGE_SIZE: i64 = 4096;

fn same_memory_limit(want: Limit, have: Option<Limit>) -> bool {
    match (want, have) {
        (Limit::Value(w), Some(Limit::Value(h))) => h == w || (w > 0 && h == w - w % PAGE_SIZE),
        (want, have) => Some(want) == have,
    }
}

fn push_cpu_updates(
    steps: &mut Vec<Step>,
    pod: &PodSpec,
    cpu_updates: &[Update],
    memory_updates: &[Update],
    node: &NodeConfig,
) {
    for u in cpu_updates {
        // cpu pass: desired cpu, memory as already applied by the memory pass
        let memory_applied = memory_updates
            .iter()
            .any(|m| m.container.name == u.container.name);
        let memory = if memory_applied { u.desired } else { u.current };
        let values = Reduced {
            cpu_limit: u.desired.cpu_limit,
            cpu_request: u.desired.cpu_request,
            memory_limit: memory.memory_limit,
            memory_request: memory.memory_request,
        };
        steps.push(container_step(pod, u, values, Resource::Cpu, node));
    }
}

fn container_step(
    pod: &PodSpec,
    u: &Update,
    values: Reduced,
    resource: Resource,
    node: &NodeConfig,
) -> Step {
    Step::UpdateContainer {
        name: u.container.name.clone(),
        id: u.id.clone(),
        resource,
        resources: container_linux_resources(pod, &u.container, values, node),
        actuated: values.to_requirements(),
    }
}

/// Applies a successful step's effect to the actuated state (what the executor records), so a
/// re-plan sees the rest only.
pub fn record_actuated(actuated: &mut PodResourceState, step: &Step) {
    match step {
        Step::UpdateContainer {
            name, actuated: a, ..
        }
        | Step::StopContainer {
            name, actuated: a, ..
        } => {
            actuated.container_resources.insert(name.clone(), a.clone());
        }
        Step::CheckMemoryUsage { .. } | Step::WritePodCgroup { .. } => {}
    }
}

/// Spec §6.2: in progress while some running resizable container's allocated cpu/memory differ
/// from actuated.
pub fn is_in_progress(
    allocated: &PodSpec,
    actuated: &PodResourceState,
    running: &BTreeMap<String, String>,
) -> bool {
    allocated
        .resizable_containers()
        .filter(|c| running.contains_key(&c.name))
        .any(|c| {
            let a = actuated
                .container_resources
                .get(&c.name)
                .map(Reduced::of)
                .unwrap_or_default();
            Reduced::of(&c.resources) != a
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::resources::{QosClass, ResizePolicy};
    use crate::testing::*;

    fn node() -> NodeConfig {
        NodeConfig {
            machine_memory_bytes: 8 << 30,
            ..NodeConfig::default()
        }
    }

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

    struct Case {
        before: PodSpec,
        after: PodSpec,
        running: BTreeMap<String, String>,
    }

    impl Case {
        fn plan(&self) -> (Plan, PodResourceState, PodCgroupValues) {
            let actuated = self.before.resource_state();
            let cgroup = pod_cgroup_values(&self.before, &node());
            let n = node();
            let plan = plan_pod_resize(&PlanInput {
                pod: &self.after,
                actuated: &actuated,
                running: &self.running,
                pod_cgroup: Some(cgroup),
                last_written_shares: None,
                node: &n,
            });
            (plan, actuated, cgroup)
        }

        /// Plans, applies, re-plans: the second plan must be empty.
        fn converges(&self) -> Vec<String> {
            let (plan, mut actuated, mut cgroup) = self.plan();
            apply(&plan, &mut actuated, &mut cgroup);
            let n = node();
            let again = plan_pod_resize(&PlanInput {
                pod: &self.after,
                actuated: &actuated,
                running: &self.running,
                pod_cgroup: Some(cgroup),
                last_written_shares: None,
                node: &n,
            });
            assert!(again.is_empty(), "not converged: {:?}", describe(&again));
            assert!(!is_in_progress(&self.after, &actuated, &self.running));
            describe(&plan)
        }
    }

    #[test]
    fn burstable_increase_grows_pod_first_memory_then_cpu() {
        let case = Case {
            before: pod(
                "u",
                vec![container(
                    "c",
                    "cpu=100m,memory=64Mi",
                    "cpu=200m,memory=128Mi",
                )],
            ),
            after: pod(
                "u",
                vec![container(
                    "c",
                    "cpu=300m,memory=64Mi",
                    "cpu=400m,memory=256Mi",
                )],
            ),
            running: running(&["c"]),
        };
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
        let case = Case {
            before: pod(
                "u",
                vec![container(
                    "c",
                    "cpu=500m,memory=256Mi",
                    "cpu=500m,memory=256Mi",
                )],
            ),
            after: pod(
                "u",
                vec![container(
                    "c",
                    "cpu=250m,memory=128Mi",
                    "cpu=250m,memory=128Mi",
                )],
            ),
            running: running(&["c"]),
        };
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
        let before = pod(
            "u",
            vec![container("c", "cpu=100m,memory=64Mi", "cpu=200m")],
        );
        let after = pod(
            "u",
            vec![container(
                "c",
                "cpu=100m,memory=64Mi",
                "cpu=200m,memory=256Mi",
            )],
        );
        let cgroup = PodCgroupValues {
            memory_limit: Some(Limit::Max),
            ..pod_cgroup_values(&before, &node())
        };
        let n = node();
        let plan = plan_pod_resize(&PlanInput {
            pod: &after,
            actuated: &before.resource_state(),
            running: &running(&["c"]),
            pod_cgroup: Some(cgroup),
            last_written_shares: None,
            node: &n,
        });
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
        let case = Case {
            before: pod(
                "u",
                vec![container(
                    "c",
                    "cpu=100m,memory=64Mi",
                    "cpu=200m,memory=128Mi",
                )],
            ),
            after: pod(
                "u",
                vec![container(
                    "c",
                    "cpu=300m,memory=64Mi",
                    "cpu=400m,memory=256Mi",
                )],
            ),
            running: running(&["c"]),
        };
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
        let p = pod("u", vec![container("c", "cpu=100m", "cpu=200m")]);
        let n = node();
        let r = running(&["c"]);
        let empty = plan_pod_resize(&PlanInput {
            pod: &p,
            actuated: &p.resource_state(),
            running: &r,
            pod_cgroup: Some(pod_cgroup_values(&p, &n)),
            last_written_shares: None,
            node: &n,
        });
        assert!(empty.is_empty(), "{:?}", describe(&empty));
        let after = pod("u", vec![container("c", "cpu=300m", "cpu=400m")]);
        let plan = plan_pod_resize(&PlanInput {
            pod: &after,
            actuated: &p.resource_state(),
            running: &r,
            pod_cgroup: None,
            last_written_shares: None,
            node: &n,
        });
        assert_eq!(describe(&plan), ["c cpu"]);
    }

    #[test]
    fn restart_container_policy_stops_after_growing_and_never_shrinks_early() {
        let mut before = pod(
            "u",
            vec![container("c", "cpu=100m,memory=64Mi", "memory=128Mi")],
        );
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
        let p = pod(
            "u",
            vec![container(
                "c",
                "cpu=100m,memory=100M",
                "cpu=100m,memory=100M",
            )],
        );
        let n = node();
        let r = running(&["c"]);
        let mut cgroup = pod_cgroup_values(&p, &n);
        assert_eq!(cgroup.memory_limit, Some(Limit::Value(100_000_000)));
        cgroup.memory_limit = Some(Limit::Value(99_999_744));
        let plan = plan_pod_resize(&PlanInput {
            pod: &p,
            actuated: &p.resource_state(),
            running: &r,
            pod_cgroup: Some(cgroup),
            last_written_shares: None,
            node: &n,
        });
        assert!(plan.is_empty(), "{:?}", describe(&plan));
        // a limit one page lower still differs
        cgroup.memory_limit = Some(Limit::Value(99_999_744 - 4096));
        let plan = plan_pod_resize(&PlanInput {
            pod: &p,
            actuated: &p.resource_state(),
            running: &r,
            pod_cgroup: Some(cgroup),
            last_written_shares: None,
            node: &n,
        });
        assert_eq!(describe(&plan), ["pod memory 100000000"]);
    }

    #[test]
    fn crash_before_the_pod_shrink_converges_on_the_next_pass() {
        let before = pod(
            "u",
            vec![container(
                "c",
                "cpu=500m,memory=256Mi",
                "cpu=500m,memory=256Mi",
            )],
        );
        let after = pod(
            "u",
            vec![container(
                "c",
                "cpu=500m,memory=128Mi",
                "cpu=500m,memory=128Mi",
            )],
        );
        let n = node();
        let r = running(&["c"]);
        // the container update was recorded, the pod shrink was not
        let actuated = after.resource_state();
        let cgroup = pod_cgroup_values(&before, &n);
        let plan = plan_pod_resize(&PlanInput {
            pod: &after,
            actuated: &actuated,
            running: &r,
            pod_cgroup: Some(cgroup),
            last_written_shares: None,
            node: &n,
        });
        assert_eq!(
            describe(&plan),
            ["check pod=Some(134217728) []", "pod memory 134217728"]
        );
    }
}
