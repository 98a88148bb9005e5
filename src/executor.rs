//! Applies a [`Plan`] through the runtime and cgroup traits, step by step. Stops at the first
//! error; records actuated state after each successful container step (written through the
//! checkpoint store before the next step), so re-running after a crash at any point re-plans only
//! what is left and converges.

use crate::cgroup::{CgroupError, CgroupFs, PodCgroupId};
use crate::checkpoint::{CheckpointError, CheckpointStore};
use crate::core::plan::{record_actuated, ContainerLimitCheck, Plan, PodCgroupWrite, Step};
use crate::core::state::{CheckpointData, CheckpointKind};
use std::sync::Mutex;

use crate::cri::{CriError, Runtime};

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// Spec §7.3; the message matches `memory limit \(\d+\) below current usage`.
    #[error("cannot decrease memory limits: {0}")]
    MemoryDecrease(String),
    #[error("{0}")]
    MemoryStats(String),
    #[error("pod {pod}: writing pod cgroup ({write}): {source}")]
    Cgroup {
        pod: String,
        write: String,
        #[source]
        source: CgroupError,
    },
    #[error(
        "pod {pod}: container {container:?} ({id}) is gone: it was removed while the resize ran"
    )]
    ContainerGone {
        pod: String,
        container: String,
        id: String,
    },
    #[error("pod {pod}: {call} of container {container:?}: {source}")]
    Runtime {
        pod: String,
        container: String,
        call: &'static str,
        #[source]
        source: CriError,
    },
    #[error("pod {pod}: recording actuated state: {source}")]
    Checkpoint {
        pod: String,
        #[source]
        source: CheckpointError,
    },
}

/// What [`execute`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecutionReport {
    /// Steps applied successfully, in order.
    pub applied: usize,
    /// Shares last written to the pod cgroup, if any (pitfall 2).
    pub last_written_shares: Option<u64>,
}

/// Called after each successful step with its index; tests use it to simulate a crash.
pub type StepHook<'a> = &'a (dyn Fn(usize) + Send + Sync);

pub struct Executor<'a> {
    pub runtime: &'a dyn Runtime,
    pub cgroups: &'a dyn CgroupFs,
    pub store: &'a dyn CheckpointStore,
    /// `namespace/name` for messages.
    pub pod_name: String,
    pub pod_cgroup: PodCgroupId,
    pub after_step: Option<StepHook<'a>>,
}

impl Executor<'_> {
    /// Applies `plan`; `actuated` is the node's actuated checkpoint, updated and saved after
    /// every container step.
    pub async fn execute(
        &self,
        plan: &Plan,
        actuated: &mut CheckpointData,
    ) -> Result<ExecutionReport, ExecError> {
        let shared = Mutex::new(std::mem::take(actuated));
        let result = self.execute_shared(plan, &shared).await;
        *actuated = shared.into_inner().unwrap_or_else(|e| e.into_inner());
        result
    }

    /// [`Executor::execute`] with the node's actuated checkpoint shared between pods enacted
    /// concurrently: the lock is held only while one step is recorded and saved, never across
    /// a CRI call.
    pub async fn execute_shared(
        &self,
        plan: &Plan,
        actuated: &Mutex<CheckpointData>,
    ) -> Result<ExecutionReport, ExecError> {
        let mut report = ExecutionReport::default();
        for (i, step) in plan.steps.iter().enumerate() {
            let started = std::time::Instant::now();
            self.apply(step).await?;
            tracing::debug!(pod = %self.pod_name, step = i, elapsed_us = started.elapsed().as_micros() as u64, "applied {step:?}");
            if matches!(
                step,
                Step::UpdateContainer { .. } | Step::StopContainer { .. }
            ) {
                let entry = {
                    let mut actuated = actuated.lock().unwrap_or_else(|e| e.into_inner());
                    let entry = actuated.entries.entry(plan.pod_uid.clone()).or_default();
                    record_actuated(entry, step);
                    entry.clone()
                };
                // outside the lock: other pods' steps are not held up by this pod's fsync
                self.store
                    .save_pod(CheckpointKind::Actuated, &plan.pod_uid, Some(&entry))
                    .map_err(|source| ExecError::Checkpoint {
                        pod: self.pod_name.clone(),
                        source,
                    })?;
            }
            if let Step::WritePodCgroup {
                write: PodCgroupWrite::CpuRequest { shares },
            } = step
            {
                report.last_written_shares = Some(*shares);
            }
            report.applied += 1;
            if let Some(hook) = self.after_step {
                hook(i);
            }
        }
        Ok(report)
    }

    async fn apply(&self, step: &Step) -> Result<(), ExecError> {
        match step {
            Step::CheckMemoryUsage {
                pod_limit,
                containers,
            } => self.check_memory(*pod_limit, containers),
            Step::WritePodCgroup { write } => self
                .cgroups
                .write_pod(&self.pod_cgroup, write)
                .map_err(|source| ExecError::Cgroup {
                    pod: self.pod_name.clone(),
                    write: describe_write(write),
                    source,
                }),
            Step::UpdateContainer {
                name,
                id,
                resources,
                ..
            } => self
                .runtime
                .update_container_resources(id, resources)
                .await
                .map_err(|e| self.runtime_error(name, id, "UpdateContainerResources", e)),
            Step::StopContainer {
                name,
                id,
                timeout_seconds,
                ..
            } => self
                .runtime
                .stop_container(id, *timeout_seconds)
                .await
                .map_err(|e| self.runtime_error(name, id, "StopContainer", e)),
        }
    }

    fn runtime_error(&self, name: &str, id: &str, call: &'static str, e: CriError) -> ExecError {
        let gone = match &e {
            CriError::NotFound { .. } => true,
            CriError::Call { status, .. } => status.code() == tonic::Code::NotFound,
            _ => false,
        };
        if gone {
            ExecError::ContainerGone {
                pod: self.pod_name.clone(),
                container: name.to_string(),
                id: id.to_string(),
            }
        } else {
            ExecError::Runtime {
                pod: self.pod_name.clone(),
                container: name.to_string(),
                call,
                source: e,
            }
        }
    }

    /// Spec §7.3. The container message names the container's own usage (the kubelet prints the
    /// pod's there, a bug not copied).
    fn check_memory(
        &self,
        pod_limit: Option<i64>,
        containers: &[ContainerLimitCheck],
    ) -> Result<(), ExecError> {
        let mut errors = Vec::new();
        if let Some(limit) = pod_limit {
            let usage = self
                .cgroups
                .pod_memory_usage(&self.pod_cgroup)
                .map_err(|_| {
                    ExecError::MemoryStats(format!(
                        "unable to read memory usage for pod {:?}: missing pod memory usage",
                        self.pod_name
                    ))
                })?;
            if usage as i128 >= limit as i128 {
                errors.push(format!(
                    "attempting to set pod memory limit ({limit}) below current usage ({usage})"
                ));
            }
        }
        for c in containers {
            let usage = self
                .cgroups
                .container_memory_usage(&self.pod_cgroup, &c.id)
                .map_err(|_| {
                    ExecError::MemoryStats(format!(
                        "unable to read memory usage for pod {:?}: missing container {:?} memory usage",
                        self.pod_name, c.name
                    ))
                })?;
            if usage as i128 >= c.new_limit as i128 {
                errors.push(format!(
                    "attempting to set container {:?} memory limit ({}) below current usage ({usage})",
                    c.name, c.new_limit
                ));
            }
        }
        match errors.len() {
            0 => Ok(()),
            1 => Err(ExecError::MemoryDecrease(errors.remove(0))),
            _ => Err(ExecError::MemoryDecrease(format!(
                "[{}]",
                errors.join(", ")
            ))),
        }
    }
}

fn describe_write(write: &PodCgroupWrite) -> String {
    match write {
        PodCgroupWrite::CpuLimit { quota, period } => format!("cpu quota {quota} period {period}"),
        PodCgroupWrite::CpuRequest { shares } => format!("cpu shares {shares}"),
        PodCgroupWrite::MemoryLimit { bytes } => format!("memory limit {bytes}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroup::memory::MemoryCgroupFs;
    use crate::checkpoint::MemoryCheckpointStore;
    use crate::core::node::{CgroupVersion, NodeConfig};
    use crate::core::plan::{plan_pod_resize, Limit, PlanInput};
    use crate::core::pod_cgroup::pod_cgroup_values;
    use crate::core::resources::{PodSpec, QosClass};
    use crate::core::runtime::{ContainerState, LinuxResources, RuntimeContainer};
    use crate::cri::fake::{CallKind, FakeRuntime};
    use crate::testing::*;
    use std::collections::BTreeMap;

    struct World {
        runtime: FakeRuntime,
        cgroups: MemoryCgroupFs,
        store: MemoryCheckpointStore,
        node: NodeConfig,
    }

    fn world(before: &PodSpec) -> World {
        let node = NodeConfig {
            machine_memory_bytes: 8 << 30,
            ..NodeConfig::default()
        };
        let runtime = FakeRuntime::new();
        for c in &before.containers {
            runtime.add_container(
                RuntimeContainer {
                    id: format!("id-{}", c.name),
                    pod_sandbox_id: "sb".into(),
                    pod_uid: before.uid.clone(),
                    name: c.name.clone(),
                    attempt: 0,
                    state: ContainerState::Running,
                    created_at_nanos: 0,
                    labels: BTreeMap::new(),
                },
                LinuxResources::default(),
            );
        }
        let cgroups = MemoryCgroupFs::new(CgroupVersion::V1);
        cgroups.add_pod(&before.uid, pod_cgroup_values(before, &node));
        World {
            runtime,
            cgroups,
            store: MemoryCheckpointStore::new(),
            node,
        }
    }

    impl World {
        fn plan(&self, after: &PodSpec, actuated: &CheckpointData) -> Plan {
            let running: BTreeMap<String, String> = after
                .containers
                .iter()
                .map(|c| (c.name.clone(), format!("id-{}", c.name)))
                .collect();
            let empty = Default::default();
            plan_pod_resize(&PlanInput {
                pod: after,
                actuated: actuated.entries.get(&after.uid).unwrap_or(&empty),
                running: &running,
                pod_cgroup: self.cgroups.pod(&after.uid),
                last_written_shares: None,
                node: &self.node,
            })
        }

        fn executor<'a>(&'a self, pod: &PodSpec, hook: Option<StepHook<'a>>) -> Executor<'a> {
            Executor {
                runtime: &self.runtime,
                cgroups: &self.cgroups,
                store: &self.store,
                pod_name: format!("{}/{}", pod.namespace, pod.name),
                pod_cgroup: PodCgroupId {
                    uid: pod.uid.clone(),
                    qos: pod.effective_qos(),
                },
                after_step: hook,
            }
        }
    }

    fn actuated_of(pod: &PodSpec) -> CheckpointData {
        let mut d = CheckpointData::default();
        d.entries.insert(pod.uid.clone(), pod.resource_state());
        d
    }

    #[tokio::test]
    async fn applies_in_order_and_records_actuated_per_step() {
        let before = pod(
            "u",
            vec![container(
                "c",
                "cpu=100m,memory=64Mi",
                "cpu=200m,memory=128Mi",
            )],
        );
        let after = pod(
            "u",
            vec![container(
                "c",
                "cpu=300m,memory=64Mi",
                "cpu=400m,memory=256Mi",
            )],
        );
        let w = world(&before);
        let mut actuated = actuated_of(&before);
        let plan = w.plan(&after, &actuated);
        let report = w
            .executor(&after, None)
            .execute(&plan, &mut actuated)
            .await
            .unwrap();
        assert_eq!(report.applied, plan.steps.len());
        assert_eq!(report.last_written_shares, Some(307));
        assert_eq!(
            w.cgroups
                .writes()
                .iter()
                .map(|(_, w)| *w)
                .collect::<Vec<_>>(),
            [
                PodCgroupWrite::MemoryLimit {
                    bytes: Limit::Value(256 << 20)
                },
                PodCgroupWrite::CpuLimit {
                    quota: Limit::Value(40_000),
                    period: 100_000
                },
                PodCgroupWrite::CpuRequest { shares: 307 },
            ]
        );
        assert_eq!(
            w.runtime.calls_of(CallKind::UpdateContainerResources).len(),
            2
        );
        assert_eq!(w.runtime.resources("id-c").unwrap().cpu_quota, 40_000);
        // two container steps → two checkpoint saves; re-planning finds nothing left
        assert_eq!(w.store.saves(), 2);
        assert_eq!(w.store.get(CheckpointKind::Actuated), actuated);
        assert!(w.plan(&after, &actuated).is_empty());
    }

    #[tokio::test]
    async fn memory_decrease_below_usage_is_refused_and_nothing_changes() {
        let before = pod("u", vec![container("c", "memory=256Mi", "memory=256Mi")]);
        let after = pod("u", vec![container("c", "memory=64Mi", "memory=64Mi")]);
        let w = world(&before);
        w.cgroups.set_pod_usage("u", 100 << 20);
        w.cgroups.set_container_usage("id-c", 99 << 20);
        let mut actuated = actuated_of(&before);
        let plan = w.plan(&after, &actuated);
        let err = w
            .executor(&after, None)
            .execute(&plan, &mut actuated)
            .await
            .unwrap_err();
        let msg = err.to_string();
        assert_eq!(
            msg,
            format!(
                "cannot decrease memory limits: [attempting to set pod memory limit ({}) below current usage ({}), \
                 attempting to set container \"c\" memory limit ({}) below current usage ({})]",
                64 << 20,
                100 << 20,
                64 << 20,
                99 << 20
            )
        );
        assert!(w.cgroups.writes().is_empty());
        assert!(w
            .runtime
            .calls_of(CallKind::UpdateContainerResources)
            .is_empty());
        assert_eq!(actuated, actuated_of(&before));
        // only the container over its new limit: no brackets
        w.cgroups.set_pod_usage("u", 10 << 20);
        let err = w
            .executor(&after, None)
            .execute(&plan, &mut actuated)
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "cannot decrease memory limits: attempting to set container \"c\" memory limit ({}) below current usage ({})",
                64 << 20,
                99 << 20
            )
        );
    }

    #[tokio::test]
    async fn first_error_aborts_and_a_rerun_converges() {
        let mk = |a: &str, b: &str| {
            pod(
                "u",
                vec![
                    container("a", &format!("cpu={a}"), ""),
                    container("b", &format!("cpu={b}"), ""),
                ],
            )
        };
        let before = mk("100m", "100m");
        let after = mk("200m", "300m");
        assert_eq!(after.effective_qos(), QosClass::Burstable);
        let w = world(&before);
        let mut actuated = actuated_of(&before);
        let plan = w.plan(&after, &actuated);
        // pod shares grow, then a, then b; b's update fails (fault injected once a's succeeded)
        let hook = |i: usize| {
            if i == 1 {
                w.runtime.fail_next(
                    CallKind::UpdateContainerResources,
                    tonic::Status::unavailable("runtime restarting"),
                );
            }
        };
        let err = w
            .executor(&after, Some(&hook))
            .execute(&plan, &mut actuated)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, ExecError::Runtime { container, .. } if container == "b"),
            "{err}"
        );
        let recorded = &actuated.entries["u"].container_resources;
        assert_eq!(recorded["a"].requests["cpu"].milli_value(), 200);
        assert_eq!(recorded["b"].requests["cpu"].milli_value(), 100);
        // the re-plan holds only what is left
        let rest = w.plan(&after, &actuated);
        assert_eq!(rest.steps.len(), 1, "{rest:?}");
        w.executor(&after, None)
            .execute(&rest, &mut actuated)
            .await
            .unwrap();
        assert!(w.plan(&after, &actuated).is_empty());
        assert_eq!(w.runtime.resources("id-a").unwrap().cpu_shares, 204);
        assert_eq!(w.runtime.resources("id-b").unwrap().cpu_shares, 307);
        assert_eq!(w.cgroups.pod("u").unwrap().cpu_shares, Some(512));
    }

    #[tokio::test]
    async fn vanished_container_is_a_clear_error_and_stops_the_plan() {
        let mk = |a: &str, b: &str| {
            pod(
                "u",
                vec![
                    container("a", &format!("cpu={a}"), ""),
                    container("b", &format!("cpu={b}"), ""),
                ],
            )
        };
        let before = mk("100m", "100m");
        let after = mk("200m", "300m");
        let w = world(&before);
        let mut actuated = actuated_of(&before);
        let plan = w.plan(&after, &actuated);
        assert!(w.runtime.remove_container("id-a"));
        let err = w
            .executor(&after, None)
            .execute(&plan, &mut actuated)
            .await
            .unwrap_err();
        assert!(matches!(err, ExecError::ContainerGone { .. }), "{err}");
        assert!(err.to_string().contains("container \"a\""), "{err}");
        // b was not touched
        assert_eq!(w.runtime.resources("id-b").unwrap().cpu_shares, 0);
    }
}
