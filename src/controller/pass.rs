//! One pod's pass: prepare (seed, admit, checkpoint, plan), enactment with decision 5's
//! intermediate write, conditions and events, container status resources, the status write.

use std::collections::BTreeMap;
use std::pin::pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{debug, info, info_span, warn, Instrument};

use crate::core::admission::{Decision, NodePressure};
use crate::core::pod_status::{next_conditions, PassResult, ResizeConditions};
use crate::core::queue::{QueueEntry, Trigger};
use crate::core::resources::{pod_requests, Container, PodSpec, ResourceRequirements, CPU, MEMORY};
use crate::core::status::{allocated_resources_status, container_resources_status};
use crate::engine::{Engine, EngineError};
use crate::k8s::convert::{
    now_rfc3339, unix_millis, ApiContainerStatus, ContainerStatusResources, PodView,
};
use crate::metrics::Phase;

use super::inputs::strip_runtime;
use super::report::{AdmissionLine, ConditionReport, ContainerReport, PodReport};
use super::status_write::{queue_events, write_status};
use super::{Shared, ERROR_RETRY};

/// The inputs of a full pass that come from the API, and the container statuses it computed.
#[derive(Clone)]
pub(super) struct LastPass {
    pub(super) spec: Arc<PodSpec>,
    /// (name, container ID, running) of every container status.
    pub(super) api_containers: Vec<(String, Option<String>, bool)>,
    pub(super) containers: BTreeMap<String, ContainerStatusResources>,
}

pub(super) fn api_containers(view: &PodView) -> Vec<(String, Option<String>, bool)> {
    view.container_statuses
        .iter()
        .chain(&view.init_container_statuses)
        .map(|c| (c.name.clone(), c.container_id.clone(), c.running))
        .collect()
}

pub(super) fn jitter(uid: &str) -> Duration {
    let h = uid
        .bytes()
        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64));
    Duration::from_millis(h % 5000)
}

pub(super) fn shrinks(desired: &PodSpec, allocated: &PodSpec) -> bool {
    let (want, have) = (pod_requests(desired), pod_requests(allocated));
    [CPU, MEMORY]
        .iter()
        .any(|r| matches!((want.get(*r), have.get(*r)), (Some(w), Some(h)) if w < h))
}

/// What a pass needs; built by the owning task from its state.
pub(super) enum Work {
    /// Only re-assert the last pass's status (nothing the pass depends on changed).
    Reassert {
        view: Box<PodView>,
        containers: BTreeMap<String, ContainerStatusResources>,
        conditions: ResizeConditions,
    },
    Full(Box<FullInput>),
}

pub(super) struct FullInput {
    pub(super) view: PodView,
    /// The node's active pods, shared with the controller (one `Arc` per pod, not a copy).
    pub(super) others: Vec<Arc<PodSpec>>,
    pub(super) previous: ResizeConditions,
    /// Previously reported `resources` of this pod's containers, by container ID.
    pub(super) reported: BTreeMap<String, ResourceRequirements>,
    /// Set when the pass is part of a retry pass (the metric label of its trigger).
    pub(super) trigger: Option<Trigger>,
}

/// The effects of one pass on the owning task's state.
pub(super) struct PassOutput {
    pub(super) uid: String,
    /// The resourceVersion the pass started from.
    pub(super) started_rv: String,
    pub(super) since: Instant,
    pub(super) retry: Retry,
    /// The pod as the API returned it after our write.
    pub(super) fresh: Option<PodView>,
    /// The API now shows the resize fields we want (written, or nothing to write).
    pub(super) status_ok: bool,
    pub(super) full: Option<FullOutput>,
}

pub(super) struct FullOutput {
    /// `Some`: (re)queue as pending; `None`: leave the queue.
    pub(super) queue: Option<QueueEntry>,
    pub(super) shrank: bool,
    pub(super) conditions: ResizeConditions,
    pub(super) reported: Vec<(String, ResourceRequirements)>,
    pub(super) last_pass: LastPass,
    pub(super) report: PodReport,
}

pub(super) enum Retry {
    Keep,
    Clear,
    After(Duration),
}

/// A pass that did not get to a status write.
pub(super) fn no_pass(uid: &str, view: &PodView, since: Instant, retry: Retry) -> PassOutput {
    PassOutput {
        uid: uid.to_string(),
        started_rv: view.resource_version.clone(),
        since,
        retry,
        fresh: None,
        status_ok: false,
        full: None,
    }
}
/// One pass of one pod (runs as its own task; touches only `shared`).
pub(super) async fn run_pass(shared: &Shared, work: Work, since: Instant) -> PassOutput {
    match work {
        Work::Reassert {
            view,
            containers,
            conditions,
        } => {
            let uid = view.spec.uid.clone();
            let span = pod_span(&view);
            let started_rv = view.resource_version.clone();
            let generation = view.spec.generation;
            let written = write_status(shared, *view, generation, &containers, &conditions)
                .instrument(span)
                .await;
            PassOutput {
                uid,
                started_rv,
                since,
                retry: written.retry,
                fresh: written.fresh,
                status_ok: written.ok,
                full: None,
            }
        }
        Work::Full(input) => {
            let span = pod_span(&input.view);
            full_pass(shared, *input, since).instrument(span).await
        }
    }
}

pub(super) fn pod_span(view: &PodView) -> tracing::Span {
    info_span!("pod", namespace = %view.spec.namespace, name = %view.spec.name,
        uid = %view.spec.uid, generation = view.spec.generation)
}

pub(super) async fn full_pass(shared: &Shared, input: FullInput, since: Instant) -> PassOutput {
    let FullInput {
        view,
        others,
        previous,
        reported,
        trigger,
    } = input;
    let uid = view.spec.uid.clone();
    let engine = &shared.engine;
    let metrics = &shared.stats.metrics;
    shared.stats.syncs.fetch_add(1, Ordering::Relaxed);

    let allocated_before = engine.allocated(&uid).map(|a| view.spec.with_allocated(&a));
    let t = Instant::now();
    let prepared = match engine
        .prepare(&view.spec, &others, NodePressure::default())
        .await
    {
        Ok(p) => p,
        Err(EngineError::NoContainers { .. }) => {
            debug!("no containers in the runtime yet");
            return no_pass(&uid, &view, since, Retry::Keep);
        }
        Err(e) => {
            warn!(error = %e, "sync failed; retrying");
            return no_pass(&uid, &view, since, Retry::After(ERROR_RETRY + jitter(&uid)));
        }
    };
    metrics.observe_phase(Phase::Admission, t.elapsed());
    let allocated = prepared.allocated_pod.clone();
    let decision = prepared.decision.clone();
    if decision == Decision::Accepted {
        if let Some(before) = &allocated_before {
            metrics.requested(before, &view.spec);
        }
        if let (Some(trigger), Some(p)) = (trigger, &previous.pending) {
            if p.reason != crate::core::admission::REASON_INFEASIBLE {
                metrics.deferred_accepted(trigger.label());
            }
        }
    }
    let plan_steps: Vec<String> = prepared
        .plan
        .steps
        .iter()
        .map(|s| format!("{s:?}"))
        .collect();

    // enactment; decision 5: a slow one gets an intermediate PodResizeInProgress write
    // `view` stays what this pass decided on (its spec and generation); a write during the
    // enactment only moves the base the final patch is computed against
    let mut previous = previous;
    let mut base: Option<PodView> = None;
    let enactment = if prepared.plan.is_empty() {
        Ok(Default::default())
    } else {
        let t = Instant::now();
        let crash = shared.opts.crash_after_step.map(|n| {
            move |step: usize| {
                if step == n {
                    eprintln!("resizelet: crash requested after step {step}");
                    std::process::abort();
                }
            }
        });
        let hook = crash.as_ref().map(|f| f as &(dyn Fn(usize) + Send + Sync));
        let mut enact = pin!(engine.enact(&prepared, hook));
        let result = tokio::select! {
            r = &mut enact => r,
            _ = tokio::time::sleep(shared.opts.in_progress_threshold) => {
                let (r, (fresh, conditions)) = tokio::join!(
                    &mut enact,
                    write_in_progress(shared, &view, &decision, &allocated, &previous, &reported)
                );
                if fresh.is_some() {
                    base = fresh;
                }
                previous = conditions;
                r
            }
        };
        metrics.observe_phase(Phase::Enactment, t.elapsed());
        metrics.resize_enacted(t.elapsed(), result.is_ok());
        result
    };
    let outcome = engine.finish(prepared, enactment);

    let queue = match &outcome.decision {
        Decision::Deferred { .. } => {
            let since_ms = view
                .condition_transition_times
                .get(crate::core::pod_status::POD_RESIZE_PENDING)
                .and_then(|t| unix_millis(t));
            Some(QueueEntry::new(&view.spec, &allocated, since_ms))
        }
        _ => None,
    };
    let shrank = outcome.decision == Decision::Accepted
        && allocated_before
            .as_ref()
            .is_some_and(|before| shrinks(&view.spec, before));
    let error = outcome.enactment.as_ref().err().map(|e| e.to_string());
    let mut retry = match &error {
        Some(e) => {
            warn!(error = %e, "resize enactment failed; retrying");
            Retry::After(ERROR_RETRY + jitter(&uid))
        }
        None => Retry::Clear,
    };
    let (conditions, events) = next_conditions(
        &previous,
        &PassResult {
            decision: &outcome.decision,
            desired: &view.spec,
            allocated: &allocated,
            in_progress: outcome.in_progress || error.is_some(),
            error: error.as_deref(),
        },
    );
    if events.iter().any(|e| e.reason == "ResizeCompleted") {
        shared
            .stats
            .resizes_completed
            .fetch_add(1, Ordering::Relaxed);
        info!(
            "resize completed: {}",
            crate::core::resources::PodResourcesDisplay(&allocated)
        );
    }
    if let Decision::Infeasible { reason_detail, .. } = &outcome.decision {
        if events.iter().any(|e| e.reason == "ResizeInfeasible") {
            metrics.infeasible(reason_detail);
        }
    }

    // container status resources (§12)
    let t = Instant::now();
    let actuated = engine.actuated(&uid).unwrap_or_default();
    let mut containers = BTreeMap::new();
    let mut now_reported = Vec::new();
    let mut container_reports = Vec::new();
    // one CRI ContainerStatus per running container, all at once (a pod's containers are
    // independent; in sequence they would add a runtime round trip per container)
    let listed: Vec<_> = allocated_containers(&view, &allocated)
        .map(|(s, id, spec)| {
            let running = outcome.running.get(&s.name).filter(|c| c.id == id);
            (s, id.to_string(), spec, running)
        })
        .collect();
    let statuses = futures::future::join_all(listed.iter().map(|(s, _, _, running)| async move {
        let c = (*running)?;
        match engine.runtime().container_status(&c.id).await {
            Ok(st) => st.resources,
            Err(e) => {
                debug!(error = %e, container = %s.name, "container status");
                None
            }
        }
    }))
    .await;
    for ((s, id, spec, running), runtime) in listed.into_iter().zip(statuses) {
        let resources = container_resources_status(
            &spec.resources,
            actuated.container_resources.get(&s.name),
            runtime.as_ref(),
            running.is_some(),
            reported.get(&id),
        );
        if running.is_some() {
            now_reported.push((id, resources.clone()));
        }
        container_reports.push(ContainerReport {
            name: s.name.clone(),
            desired: view
                .spec
                .container(&s.name)
                .map(|c| c.resources.clone())
                .unwrap_or_default(),
            allocated: spec.resources.clone(),
            actuated: actuated.container_resources.get(&s.name).cloned(),
            actual: running.is_some().then(|| resources.clone()),
        });
        containers.insert(s.name.clone(), status_resources(spec, resources));
    }
    metrics.observe_phase(Phase::RuntimeStatus, t.elapsed());
    let last_pass = LastPass {
        spec: view.spec.clone(),
        api_containers: api_containers(&view),
        containers: containers.clone(),
    };
    let report = PodReport {
        namespace: view.spec.namespace.clone(),
        name: view.spec.name.clone(),
        uid: uid.clone(),
        generation: view.spec.generation,
        containers: container_reports,
        decision: decision_name(&outcome.decision).into(),
        decision_message: decision_message(&outcome.decision),
        pending: conditions.pending.as_ref().map(condition_report),
        in_progress: conditions.in_progress.as_ref().map(condition_report),
        last_error: error.clone(),
        last_plan: plan_steps,
        admission: match &outcome.decision {
            Decision::Deferred { .. } | Decision::Infeasible { .. } => {
                admission_lines(engine, &view.spec, &others)
            }
            _ => Vec::new(),
        },
        at: now_rfc3339(),
    };
    let started_rv = view.resource_version.clone();
    let generation = view.spec.generation;
    let written = write_status(
        shared,
        base.unwrap_or(view),
        generation,
        &containers,
        &conditions,
    )
    .await;
    if let Retry::After(_) = written.retry {
        if error.is_none() {
            retry = written.retry;
        }
    }
    queue_events(shared, written.fresh.as_ref(), &events);
    PassOutput {
        uid,
        started_rv,
        since,
        retry,
        fresh: written.fresh,
        status_ok: written.ok,
        full: Some(FullOutput {
            queue,
            shrank,
            conditions,
            reported: now_reported,
            last_pass,
            report,
        }),
    }
}

/// Decision 5: the status an enactment in progress shows (new allocation, condition
/// `PodResizeInProgress`, `ResizeStarted`), written while it continues. Returns the pod as
/// written and the conditions now in the API.
pub(super) async fn write_in_progress(
    shared: &Shared,
    view: &PodView,
    decision: &Decision,
    allocated: &PodSpec,
    previous: &ResizeConditions,
    reported: &BTreeMap<String, ResourceRequirements>,
) -> (Option<PodView>, ResizeConditions) {
    let (conditions, events) = next_conditions(
        previous,
        &PassResult {
            decision,
            desired: &view.spec,
            allocated,
            in_progress: true,
            error: None,
        },
    );
    let containers = allocated_containers(view, allocated)
        .map(|(s, id, spec)| {
            // the actual values are still the old ones
            let resources = reported
                .get(id)
                .cloned()
                .unwrap_or_else(|| spec.resources.clone());
            (s.name.clone(), status_resources(spec, resources))
        })
        .collect();
    debug!("enactment slower than the threshold: writing PodResizeInProgress first");
    let written = write_status(
        shared,
        view.clone(),
        view.spec.generation,
        &containers,
        &conditions,
    )
    .await;
    queue_events(shared, written.fresh.as_ref().or(Some(view)), &events);
    (written.fresh, conditions)
}

/// The pod's container statuses that have a container ID (without the runtime prefix) and an
/// allocated container of that name: the containers whose resize fields a status reports.
fn allocated_containers<'a>(
    view: &'a PodView,
    allocated: &'a PodSpec,
) -> impl Iterator<Item = (&'a ApiContainerStatus, &'a str, &'a Container)> + 'a {
    view.container_statuses
        .iter()
        .chain(&view.init_container_statuses)
        .filter_map(move |s| {
            let id = strip_runtime(s.container_id.as_deref()?);
            let spec = allocated
                .containers
                .iter()
                .chain(&allocated.init_containers)
                .find(|c| c.name == s.name)?;
            Some((s, id, spec))
        })
}

/// What the status says of one container: `allocatedResources` from its allocation and
/// `resources` as given.
fn status_resources(spec: &Container, resources: ResourceRequirements) -> ContainerStatusResources {
    ContainerStatusResources {
        allocated: allocated_resources_status(&spec.resources),
        resources,
    }
}

pub(super) fn decision_name(d: &Decision) -> &'static str {
    match d {
        Decision::Unchanged => "Unchanged",
        Decision::Accepted => "Accepted",
        Decision::Deferred { .. } => "Deferred",
        Decision::Infeasible { .. } => "Infeasible",
    }
}

pub(super) fn decision_message(d: &Decision) -> String {
    match d {
        Decision::Deferred { reason, message } => format!("{reason}: {message}"),
        Decision::Infeasible { message, .. } => message.clone(),
        _ => String::new(),
    }
}

pub(super) fn condition_report(c: &crate::core::pod_status::ResizeCondition) -> ConditionReport {
    ConditionReport {
        reason: c.reason.clone(),
        message: c.message.clone(),
        observed_generation: c.observed_generation,
    }
}

/// Per resource (cpu, memory): allocatable, the sum of the other pods' allocated requests and
/// this pod's desired requests — the arithmetic behind a Deferred/Infeasible decision.
pub(super) fn admission_lines(
    engine: &Engine,
    desired: &PodSpec,
    others: &[Arc<PodSpec>],
) -> Vec<AdmissionLine> {
    let node = engine.node();
    let sum = engine.used_by_others(&desired.uid, others);
    let this = pod_requests(desired);
    [CPU, MEMORY]
        .iter()
        .map(|r| AdmissionLine {
            resource: r.to_string(),
            allocatable: node.allocatable.get(*r).map(|q| q.to_string()),
            other_pods: sum
                .get(*r)
                .map(|q| q.to_string())
                .unwrap_or_else(|| "0".into()),
            this_pod: this
                .get(*r)
                .map(|q| q.to_string())
                .unwrap_or_else(|| "0".into()),
        })
        .collect()
}
