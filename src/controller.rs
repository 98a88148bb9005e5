//! The Kubernetes control loop: watcher events in ([`Input`]), pod passes, status patches and
//! Events out.
//!
//! One task owns the controller's state and never waits on IO: inputs that arrive together are
//! coalesced, and each touched pod gets a *pass* that runs as its own task, so resizes of
//! different pods proceed concurrently while one pod's passes never overlap (a pod touched while
//! its pass runs is passed again when it ends). Admission is serialised inside the [`Engine`].
//! Deferred resizes are retried in queue order by one sequential retry pass at a time (spec §5).
//!
//! A pass: engine prepare (seed → admit → checkpoint → plan), enactment (decision 5: if it
//! takes longer than `in_progress_threshold`, `PodResizeInProgress` is written first), next
//! conditions and events (core `pod_status`), container `resources`/`allocatedResources` from
//! the runtime (§12), then one strategic-merge status patch with a `resourceVersion`
//! precondition (re-read and recomputed on 409). The pass's effects come back to the owning
//! task as data ([`PassOutput`]). A gate-off kubelet that erases the resize fields causes a
//! watch event, which re-asserts them without another runtime round.

use std::collections::{BTreeMap, BTreeSet};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, Stream, StreamExt};
use kube::runtime::watcher;
use serde::Serialize;
use tracing::{debug, info, info_span, warn, Instrument};

use crate::core::admission::{Decision, NodePressure};
use crate::core::pod_status::{next_conditions, PassResult, ResizeConditions, ResizeEvent};
use crate::core::queue::{PendingQueue, QueueEntry, Trigger, FIRST_RETRY_MS, RETRY_INTERVAL_MS};
use crate::core::resources::{pod_requests, PodSpec, ResourceRequirements, CPU, MEMORY};
use crate::core::status::{allocated_resources_status, container_resources_status};
use crate::engine::{Engine, EngineError};
use crate::k8s::convert::{node_view, pod_view, ContainerStatusResources, PodView, StatusIntent};
use crate::k8s::events::EventRecorder;
use crate::k8s::{Input, KubeWriter, WriteError};
use crate::metrics::{Metrics, Phase};

/// Retry of a failed enactment: 10 s plus up to 5 s of jitter (spec §7.4).
pub const ERROR_RETRY: Duration = Duration::from_secs(10);
/// Decision 5's default threshold for the intermediate `PodResizeInProgress` write.
pub const DEFAULT_IN_PROGRESS_THRESHOLD: Duration = Duration::from_millis(100);
const CONFLICT_RETRIES: usize = 5;
/// Passes running at once (more would only queue in the runtime and hold memory).
const MAX_CONCURRENT_PASSES: usize = 32;
/// How long a shutdown waits for passes in flight.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct ControllerOptions {
    pub node_name: String,
    /// Also write the legacy `status.resize` (decision 2).
    pub legacy_resize_status: bool,
    /// Act even when the node's kubelet enacts resizes itself (decision 6 override).
    pub ignore_resizing_kubelet: bool,
    /// Decision 5: an enactment still running after this long gets an intermediate
    /// `PodResizeInProgress` status write before the final one.
    pub in_progress_threshold: Duration,
    /// Test hook: abort the process right after plan step N of an enactment was applied.
    pub crash_after_step: Option<usize>,
    /// Only pods it selects get status writes (`--pod-selector`; default every pod).
    pub pod_selector: crate::k8s::selector::LabelSelector,
}

impl ControllerOptions {
    pub fn new(node_name: impl Into<String>) -> Self {
        ControllerOptions {
            node_name: node_name.into(),
            legacy_resize_status: false,
            ignore_resizing_kubelet: false,
            in_progress_threshold: DEFAULT_IN_PROGRESS_THRESHOLD,
            crash_after_step: None,
            pod_selector: Default::default(),
        }
    }
}

/// Counters, metrics and the per-pod reports, shared with the admin endpoint and benchmarks.
#[derive(Default)]
pub struct ControllerStats {
    pub syncs: AtomicU64,
    pub status_writes: AtomicU64,
    pub status_conflicts: AtomicU64,
    pub events_written: AtomicU64,
    pub resizes_completed: AtomicU64,
    /// Watch synced (first `InitDone` of the pod watch and the node seen).
    pub ready: AtomicBool,
    /// Times (µs) from seeing erased resize fields to having re-asserted them.
    pub fields_missing_us: Mutex<Vec<u64>>,
    /// Why the controller stands down (decision 6), if it does.
    pub stand_down: Mutex<Option<String>>,
    /// What the last pass of each pod saw and did, by UID (for `resizelet status`/`explain`).
    pub pods: Mutex<BTreeMap<String, PodReport>>,
    pub metrics: Metrics,
}

/// One pod as its last pass saw it: the kubelet's four views of its resources, the resize
/// conditions, and — when a resize waits or failed — why.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PodReport {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub generation: i64,
    /// Per container: desired (spec), allocated, actuated (what resizelet last applied) and
    /// actual (what the runtime reports, as written to `status.resources`).
    pub containers: Vec<ContainerReport>,
    /// `Unchanged`, `Accepted`, `Deferred`, `Infeasible`.
    pub decision: String,
    pub decision_message: String,
    pub pending: Option<ConditionReport>,
    pub in_progress: Option<ConditionReport>,
    pub last_error: Option<String>,
    /// The steps of the last non-empty plan (debug form), in order.
    pub last_plan: Vec<String>,
    /// Admission arithmetic when the resize does not fit: per resource, allocatable, the
    /// other pods' allocated requests and this pod's desired requests.
    pub admission: Vec<AdmissionLine>,
    /// RFC 3339 time of the pass.
    pub at: String,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ContainerReport {
    pub name: String,
    pub desired: ResourceRequirements,
    pub allocated: ResourceRequirements,
    pub actuated: Option<ResourceRequirements>,
    pub actual: Option<ResourceRequirements>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ConditionReport {
    pub reason: String,
    pub message: String,
    pub observed_generation: i64,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionLine {
    pub resource: String,
    pub allocatable: Option<String>,
    pub other_pods: String,
    pub this_pod: String,
}

/// State the passes share (read-only, or internally synchronised).
struct Shared {
    engine: Engine,
    writer: Arc<dyn KubeWriter>,
    opts: ControllerOptions,
    events: EventRecorder,
    stats: Arc<ControllerStats>,
}

pub struct Controller {
    shared: Arc<Shared>,
    pods: BTreeMap<String, PodView>,
    /// The resize conditions as resizelet last decided them (seeded from the API on first sight;
    /// kept here because a gate-off kubelet erases them from the API).
    conditions: BTreeMap<String, ResizeConditions>,
    /// Last `resources` reported per container ID (§12.1 "previously reported").
    reported: BTreeMap<String, ResourceRequirements>,
    queue: PendingQueue,
    relist: Option<BTreeMap<String, PodView>>,
    retry_at: BTreeMap<String, Instant>,
    next_periodic: Instant,
    retry_pass: Option<Trigger>,
    node_seen: bool,
    pods_synced: bool,
    missing_since: BTreeMap<String, Instant>,
    /// What the last full pass of each pod saw and computed: a watch event that changes neither
    /// (the echo of our own write, a kubelet erasing the resize fields) only needs the status
    /// re-asserted, not another round of CRI and cgroup reads.
    last_pass: BTreeMap<String, LastPass>,
    /// Pods to pass, with when they became dirty.
    dirty: BTreeMap<String, Instant>,
    /// Pods whose pass is running; touched again meanwhile → `rerun`.
    in_flight: BTreeSet<String>,
    rerun: BTreeSet<String>,
    /// Deleted while in flight: forget the engine state when the pass ends.
    forget_after: BTreeSet<String>,
    retry_pass_running: bool,
    /// A Node event to write (decision 6's stand-down).
    node_event: Option<String>,
    tasks: FuturesUnordered<BoxFuture<'static, TaskDone>>,
}

/// The inputs of a full pass that come from the API, and the container statuses it computed.
#[derive(Clone)]
struct LastPass {
    spec: Arc<PodSpec>,
    /// (name, container ID, running) of every container status.
    api_containers: Vec<(String, Option<String>, bool)>,
    containers: BTreeMap<String, ContainerStatusResources>,
}

fn api_containers(view: &PodView) -> Vec<(String, Option<String>, bool)> {
    view.container_statuses
        .iter()
        .chain(&view.init_container_statuses)
        .map(|c| (c.name.clone(), c.container_id.clone(), c.running))
        .collect()
}

fn jitter(uid: &str) -> Duration {
    let h = uid
        .bytes()
        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64));
    Duration::from_millis(h % 5000)
}

fn now_rfc3339() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .round(k8s_openapi::jiff::Unit::Second)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// `v1.35.2` → 35.
fn kubelet_minor(version: &str) -> Option<u32> {
    let v = version.trim_start_matches('v');
    let mut parts = v.split('.');
    let major: u32 = parts.next()?.parse().ok()?;
    let minor: u32 = parts
        .next()?
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect::<String>()
        .parse()
        .ok()?;
    (major == 1).then_some(minor)
}

fn shrinks(desired: &PodSpec, allocated: &PodSpec) -> bool {
    let (want, have) = (pod_requests(desired), pod_requests(allocated));
    [CPU, MEMORY]
        .iter()
        .any(|r| matches!((want.get(*r), have.get(*r)), (Some(w), Some(h)) if w < h))
}

/// What a pass needs; built by the owning task from its state.
enum Work {
    /// Only re-assert the last pass's status (nothing the pass depends on changed).
    Reassert {
        view: Box<PodView>,
        containers: BTreeMap<String, ContainerStatusResources>,
        conditions: ResizeConditions,
    },
    Full(Box<FullInput>),
}

struct FullInput {
    view: PodView,
    /// The node's active pods, shared with the controller (one `Arc` per pod, not a copy).
    others: Vec<Arc<PodSpec>>,
    previous: ResizeConditions,
    /// Previously reported `resources` of this pod's containers, by container ID.
    reported: BTreeMap<String, ResourceRequirements>,
    /// Set when the pass is part of a retry pass (the metric label of its trigger).
    trigger: Option<Trigger>,
}

struct TaskDone {
    retry_pass: bool,
    outputs: Vec<PassOutput>,
}

/// The effects of one pass on the owning task's state.
struct PassOutput {
    uid: String,
    /// The resourceVersion the pass started from.
    started_rv: String,
    since: Instant,
    retry: Retry,
    /// The pod as the API returned it after our write.
    fresh: Option<PodView>,
    /// The API now shows the resize fields we want (written, or nothing to write).
    status_ok: bool,
    full: Option<FullOutput>,
}

struct FullOutput {
    /// `Some`: (re)queue as pending; `None`: leave the queue.
    queue: Option<QueueEntry>,
    shrank: bool,
    conditions: ResizeConditions,
    reported: Vec<(String, ResourceRequirements)>,
    last_pass: LastPass,
    report: PodReport,
}

enum Retry {
    Keep,
    Clear,
    After(Duration),
}

/// A pass that did not get to a status write.
fn no_pass(uid: &str, view: &PodView, since: Instant, retry: Retry) -> PassOutput {
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

impl Controller {
    pub fn new(engine: Engine, writer: Arc<dyn KubeWriter>, opts: ControllerOptions) -> Self {
        let events = EventRecorder::new(&opts.node_name);
        Controller {
            shared: Arc::new(Shared {
                engine,
                writer,
                opts,
                events,
                stats: Arc::new(ControllerStats::default()),
            }),
            pods: BTreeMap::new(),
            conditions: BTreeMap::new(),
            reported: BTreeMap::new(),
            queue: PendingQueue::default(),
            relist: None,
            retry_at: BTreeMap::new(),
            next_periodic: Instant::now() + Duration::from_millis(FIRST_RETRY_MS as u64),
            retry_pass: None,
            node_seen: false,
            pods_synced: false,
            missing_since: BTreeMap::new(),
            last_pass: BTreeMap::new(),
            dirty: BTreeMap::new(),
            in_flight: BTreeSet::new(),
            rerun: BTreeSet::new(),
            forget_after: BTreeSet::new(),
            retry_pass_running: false,
            node_event: None,
            tasks: FuturesUnordered::new(),
        }
    }

    pub fn stats(&self) -> Arc<ControllerStats> {
        self.shared.stats.clone()
    }

    pub fn engine(&self) -> &Engine {
        &self.shared.engine
    }

    /// Runs until `inputs` ends or `shutdown` resolves; then waits (bounded) for passes in
    /// flight.
    pub async fn run(
        mut self,
        inputs: impl Stream<Item = Input>,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        let mut inputs = pin!(inputs);
        let mut shutdown = pin!(shutdown);
        loop {
            self.dispatch();
            let deadline = self.next_deadline();
            tokio::select! {
                _ = &mut shutdown => break,
                input = inputs.next() => {
                    let Some(input) = input else { break };
                    self.handle(input);
                    // coalesce whatever else is already there
                    while let Some(Some(input)) = inputs.next().now_or_never() {
                        self.handle(input);
                    }
                }
                Some(done) = self.tasks.next(), if !self.tasks.is_empty() => self.apply(done),
                _ = tokio::time::sleep_until(deadline.into()) => self.due(),
            }
        }
        let drain = async {
            while let Some(done) = self.tasks.next().await {
                self.apply(done);
            }
        };
        if tokio::time::timeout(SHUTDOWN_GRACE, drain).await.is_err() {
            warn!(
                "passes still running at shutdown; the checkpoints let the next start finish them"
            );
        }
        info!("controller stopped");
    }

    /// Feeds one input and waits until every pass it caused has ended (for tests driving the
    /// loop by hand).
    pub async fn step(&mut self, input: Input) {
        self.handle(input);
        self.settle().await;
    }

    /// Runs timers that are due now (error retries, the periodic retry pass) and waits for the
    /// passes they caused.
    pub async fn tick(&mut self) {
        self.due();
        self.settle().await;
    }

    async fn settle(&mut self) {
        loop {
            self.dispatch();
            match self.tasks.next().await {
                Some(done) => self.apply(done),
                None => break,
            }
        }
    }

    fn next_deadline(&self) -> Instant {
        self.retry_at
            .values()
            .copied()
            .chain(std::iter::once(self.next_periodic))
            .min()
            .unwrap_or(self.next_periodic)
    }

    fn mark_dirty(&mut self, uid: String) {
        self.dirty.entry(uid).or_insert_with(Instant::now);
    }

    fn due(&mut self) {
        let now = Instant::now();
        let due: Vec<String> = self
            .retry_at
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(u, _)| u.clone())
            .collect();
        for uid in due {
            self.retry_at.remove(&uid);
            self.last_pass.remove(&uid);
            self.mark_dirty(uid);
        }
        if self.next_periodic <= now {
            self.next_periodic = now + Duration::from_millis(RETRY_INTERVAL_MS as u64);
            self.retry_pass.get_or_insert(Trigger::PeriodicRetry);
        }
    }

    fn handle(&mut self, input: Input) {
        match input {
            Input::Pod(watcher::Event::Init) => self.relist = Some(BTreeMap::new()),
            Input::Pod(watcher::Event::InitApply(pod)) => match pod_view(&pod) {
                Ok(view) => {
                    self.check_resizing_kubelet(&view);
                    self.relist
                        .get_or_insert_with(BTreeMap::new)
                        .insert(view.spec.uid.clone(), view);
                }
                Err(e) => warn!(error = %e, "ignoring pod"),
            },
            Input::Pod(watcher::Event::InitDone) => {
                let listed = self.relist.take().unwrap_or_default();
                // pods gone while the watch was down (or the agent was)
                let gone: Vec<String> = self
                    .pods
                    .keys()
                    .cloned()
                    .chain(self.shared.engine.known_pods())
                    .filter(|u| !listed.contains_key(u))
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect();
                for uid in gone {
                    self.deleted(&uid);
                }
                for (uid, view) in listed {
                    self.applied(view);
                    self.mark_dirty(uid);
                }
                if !self.pods_synced {
                    info!(pods = self.pods.len(), "pod watch synced");
                }
                self.pods_synced = true;
                self.update_ready();
            }
            Input::Pod(watcher::Event::Apply(pod)) => match pod_view(&pod) {
                Ok(view) => {
                    self.check_resizing_kubelet(&view);
                    let uid = view.spec.uid.clone();
                    let became_terminal =
                        view.terminal && self.pods.get(&uid).is_some_and(|p| !p.terminal);
                    self.applied(view);
                    if became_terminal && !self.queue.is_empty() {
                        self.retry_pass.get_or_insert(Trigger::PodTerminated);
                    }
                    self.mark_dirty(uid);
                }
                Err(e) => warn!(error = %e, "ignoring pod"),
            },
            Input::Pod(watcher::Event::Delete(pod)) => {
                if let Some(uid) = pod.metadata.uid {
                    self.deleted(&uid);
                    self.dirty.remove(&uid);
                }
            }
            Input::Node(watcher::Event::Apply(node) | watcher::Event::InitApply(node)) => {
                let view = node_view(&node);
                for bad in &view.unparsable {
                    warn!(entry = %bad, "ignoring unparsable node allocatable");
                }
                if let Some(minor) = view.kubelet_version.as_deref().and_then(kubelet_minor) {
                    if minor >= 35 && !self.shared.opts.ignore_resizing_kubelet {
                        self.stand_down(format!(
                            "the node's kubelet {} enacts in-place resizes itself (the gate is locked on from 1.35); resizelet stands down instead of racing it",
                            view.kubelet_version.clone().unwrap_or_default()
                        ));
                    }
                }
                let changed = self.shared.engine.set_allocatable(view.allocatable.clone());
                if changed {
                    info!(allocatable = ?view.allocatable, "node allocatable");
                }
                if !self.node_seen {
                    self.node_seen = true;
                    let all: Vec<String> = self.pods.keys().cloned().collect();
                    for uid in all {
                        self.mark_dirty(uid);
                    }
                    self.update_ready();
                } else if changed {
                    self.retry_pass.get_or_insert(Trigger::PodResized);
                }
            }
            Input::Node(_) => {}
        }
    }

    /// Decision 6: stop acting on this node (log, metric, Node event, readiness unaffected).
    fn stand_down(&mut self, reason: String) {
        let stats = self.shared.stats.clone();
        let mut s = stats.stand_down.lock().unwrap();
        if s.is_none() {
            warn!("{reason}");
            self.node_event = Some(reason.clone());
            stats.metrics.set_stand_down(true);
            *s = Some(reason);
        }
    }

    /// Decision 6 evidence in a pod: the kubelet owns `PodResize*` conditions.
    fn check_resizing_kubelet(&mut self, view: &PodView) {
        if view.kubelet_resize_conditions.is_empty() || self.shared.opts.ignore_resizing_kubelet {
            return;
        }
        self.stand_down(format!(
            "the node's kubelet enacts in-place resizes itself: it wrote {} of pod {} (managedFields manager \"kubelet\"); resizelet stands down instead of racing it",
            view.kubelet_resize_conditions.join(" and "),
            view.key()
        ));
    }

    fn update_ready(&self) {
        let ready = self.pods_synced && self.node_seen;
        self.shared.stats.ready.store(ready, Ordering::Relaxed);
        self.shared.stats.metrics.set_ready(ready);
    }

    fn applied(&mut self, view: PodView) {
        let uid = view.spec.uid.clone();
        if view.node_name.as_deref() != Some(self.shared.opts.node_name.as_str()) {
            return;
        }
        self.conditions
            .entry(uid.clone())
            .or_insert_with(|| view.conditions.clone());
        // resize fields we reported, erased by someone else (a gate-off kubelet)
        let erased = view.running_in_api().any(|c| {
            c.container_id
                .as_deref()
                .is_some_and(|id| self.reported.contains_key(strip_runtime(id)))
                && c.raw.get("resources").is_none_or(|r| r.is_null())
        });
        if erased {
            self.missing_since
                .entry(uid.clone())
                .or_insert_with(Instant::now);
        }
        self.pods.insert(uid, view);
    }

    fn deleted(&mut self, uid: &str) {
        if let Some(view) = self.pods.remove(uid) {
            for c in view
                .container_statuses
                .iter()
                .chain(&view.init_container_statuses)
            {
                if let Some(id) = &c.container_id {
                    self.reported.remove(strip_runtime(id));
                }
            }
            debug!(pod = %view.key(), "pod removed");
        }
        self.conditions.remove(uid);
        self.retry_at.remove(uid);
        self.missing_since.remove(uid);
        self.last_pass.remove(uid);
        self.rerun.remove(uid);
        self.queue.remove(uid);
        self.shared.stats.pods.lock().unwrap().remove(uid);
        if self.in_flight.contains(uid) {
            self.forget_after.insert(uid.to_string());
        } else if let Err(e) = self.shared.engine.forget_pod(uid) {
            warn!(error = %e, uid, "forgetting a removed pod");
        }
        self.retry_pass.get_or_insert(Trigger::PodsRemoved);
    }

    /// Starts passes for dirty pods (each pod at most once at a time) and, when none runs, a
    /// retry pass over the pending queue.
    fn dispatch(&mut self) {
        if let Some(reason) = self.node_event.take() {
            let shared = self.shared.clone();
            self.tasks.push(
                async move {
                    let node = &shared.opts.node_name;
                    shared
                        .events
                        .emit_node(
                            shared.writer.as_ref(),
                            node,
                            "ResizeletStandingDown",
                            &reason,
                        )
                        .await;
                    TaskDone {
                        retry_pass: false,
                        outputs: Vec::new(),
                    }
                }
                .boxed(),
            );
        }
        for (uid, since) in std::mem::take(&mut self.dirty) {
            if self.in_flight.contains(&uid) {
                self.rerun.insert(uid);
                continue;
            }
            if self.in_flight.len() >= MAX_CONCURRENT_PASSES {
                // picked up when a pass ends
                self.dirty.insert(uid, since);
                continue;
            }
            let Some(work) = self.work_for(&uid, None) else {
                continue;
            };
            self.in_flight.insert(uid.clone());
            let shared = self.shared.clone();
            self.tasks.push(
                async move {
                    TaskDone {
                        retry_pass: false,
                        outputs: vec![run_pass(&shared, work, since).await],
                    }
                }
                .boxed(),
            );
        }
        if self.retry_pass_running || self.retry_pass.is_none() {
            return;
        }
        // a queued pod with a pass of its own running would be admitted outside queue order:
        // the retry pass starts when those passes end
        if self.queue.uids().iter().any(|u| self.in_flight.contains(u)) {
            return;
        }
        let Some(trigger) = self.retry_pass.take() else {
            return;
        };
        let mut works = Vec::new();
        for uid in self.queue.uids() {
            self.last_pass.remove(&uid);
            if let Some(work) = self.work_for(&uid, Some(trigger)) {
                self.in_flight.insert(uid);
                works.push(work);
            }
        }
        if works.is_empty() {
            return;
        }
        debug!(
            trigger = trigger.label(),
            pods = works.len(),
            "retrying deferred resizes"
        );
        self.retry_pass_running = true;
        let shared = self.shared.clone();
        self.tasks.push(
            async move {
                // in queue order, each admitted before the next is evaluated (spec §5)
                let mut outputs = Vec::with_capacity(works.len());
                for work in works {
                    outputs.push(run_pass(&shared, work, Instant::now()).await);
                }
                TaskDone {
                    retry_pass: true,
                    outputs,
                }
            }
            .boxed(),
        );
    }

    fn work_for(&mut self, uid: &str, trigger: Option<Trigger>) -> Option<Work> {
        let view = self.pods.get(uid)?;
        if !self.node_seen || !self.pods_synced || view.deleting {
            return None;
        }
        if self.shared.stats.stand_down.lock().unwrap().is_some() {
            return None;
        }
        if view.terminal {
            self.queue.remove(uid);
            return None;
        }
        let unchanged = self
            .last_pass
            .get(uid)
            .filter(|last| last.spec == view.spec && last.api_containers == api_containers(view));
        if let Some(last) = unchanged {
            return Some(Work::Reassert {
                view: Box::new(view.clone()),
                containers: last.containers.clone(),
                conditions: self.conditions.get(uid).cloned().unwrap_or_default(),
            });
        }
        let others: Vec<Arc<PodSpec>> = self
            .pods
            .values()
            .filter(|p| p.spec.uid != uid && !p.terminal)
            .map(|p| p.spec.clone())
            .collect();
        let reported = view
            .container_statuses
            .iter()
            .chain(&view.init_container_statuses)
            .filter_map(|c| c.container_id.as_deref())
            .map(strip_runtime)
            .filter_map(|id| self.reported.get(id).map(|r| (id.to_string(), r.clone())))
            .collect();
        Some(Work::Full(Box::new(FullInput {
            view: view.clone(),
            others,
            previous: self.conditions.get(uid).cloned().unwrap_or_default(),
            reported,
            trigger,
        })))
    }

    /// Applies the effects of finished passes.
    fn apply(&mut self, done: TaskDone) {
        if done.retry_pass {
            self.retry_pass_running = false;
        }
        for out in done.outputs {
            self.apply_one(out);
        }
        self.update_gauges();
    }

    fn apply_one(&mut self, out: PassOutput) {
        let uid = out.uid;
        self.in_flight.remove(&uid);
        if self.forget_after.remove(&uid) {
            if let Err(e) = self.shared.engine.forget_pod(&uid) {
                warn!(error = %e, uid, "forgetting a removed pod");
            }
            return;
        }
        let Some(current) = self.pods.get(&uid) else {
            return;
        };
        if let Some(fresh) = out.fresh {
            // unless a newer event arrived meanwhile
            if current.resource_version == out.started_rv {
                self.pods.insert(uid.clone(), fresh);
            }
        }
        if out.status_ok {
            if let Some(since) = self.missing_since.remove(&uid) {
                let missing = since.elapsed();
                let stats = &self.shared.stats;
                stats
                    .fields_missing_us
                    .lock()
                    .unwrap()
                    .push(missing.as_micros() as u64);
                stats.metrics.fields_missing(missing);
            }
        }
        match out.retry {
            Retry::Keep => {}
            Retry::Clear => {
                self.retry_at.remove(&uid);
            }
            Retry::After(d) => {
                self.retry_at.insert(uid.clone(), Instant::now() + d);
            }
        }
        if let Some(full) = out.full {
            match full.queue {
                Some(entry) => self.queue.insert(entry),
                None => {
                    self.queue.remove(&uid);
                }
            }
            if full.shrank && !self.queue.is_empty() {
                self.retry_pass.get_or_insert(Trigger::PodResized);
            }
            self.conditions.insert(uid.clone(), full.conditions);
            for (id, r) in full.reported {
                self.reported.insert(id, r);
            }
            self.last_pass.insert(uid.clone(), full.last_pass);
            self.shared
                .stats
                .pods
                .lock()
                .unwrap()
                .insert(uid.clone(), full.report);
        }
        self.shared
            .stats
            .metrics
            .observe_phase(Phase::Total, out.since.elapsed());
        if self.rerun.remove(&uid) {
            self.mark_dirty(uid);
        }
    }

    fn update_gauges(&self) {
        let (mut deferred, mut infeasible, mut in_progress) = (0, 0, 0);
        for c in self.conditions.values() {
            match c.pending.as_ref().map(|p| p.reason.as_str()) {
                Some(crate::core::admission::REASON_INFEASIBLE) => infeasible += 1,
                Some(_) => deferred += 1,
                None => {}
            }
            in_progress += c.in_progress.is_some() as usize;
        }
        self.shared
            .stats
            .metrics
            .set_resize_gauges(deferred, infeasible, in_progress);
    }
}

/// One pass of one pod (runs as its own task; touches only `shared`).
async fn run_pass(shared: &Shared, work: Work, since: Instant) -> PassOutput {
    match work {
        Work::Reassert {
            view,
            containers,
            conditions,
        } => {
            let uid = view.spec.uid.clone();
            let span = pod_span(&view);
            let started_rv = view.resource_version.clone();
            let written = write_status(shared, *view, &containers, &conditions)
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

fn pod_span(view: &PodView) -> tracing::Span {
    info_span!("pod", namespace = %view.spec.namespace, name = %view.spec.name,
        uid = %view.spec.uid, generation = view.spec.generation)
}

async fn full_pass(shared: &Shared, input: FullInput, since: Instant) -> PassOutput {
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
    let mut previous = previous;
    let mut view = view;
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
                if let Some(fresh) = fresh {
                    view = fresh;
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
                .and_then(|t| t.parse::<k8s_openapi::jiff::Timestamp>().ok())
                .map(|t| t.as_millisecond());
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
        info!("resize completed");
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
    for s in view
        .container_statuses
        .iter()
        .chain(&view.init_container_statuses)
    {
        let Some(api_id) = &s.container_id else {
            continue;
        };
        let id = strip_runtime(api_id).to_string();
        let Some(spec) = allocated
            .containers
            .iter()
            .chain(&allocated.init_containers)
            .find(|c| c.name == s.name)
        else {
            continue;
        };
        let running = outcome.running.get(&s.name).filter(|c| c.id == id);
        let runtime = match running {
            Some(c) => match engine.runtime().container_status(&c.id).await {
                Ok(st) => st.resources,
                Err(e) => {
                    debug!(error = %e, container = %s.name, "container status");
                    None
                }
            },
            None => None,
        };
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
        containers.insert(
            s.name.clone(),
            ContainerStatusResources {
                allocated: allocated_resources_status(&spec.resources),
                resources,
            },
        );
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
    let written = write_status(shared, view, &containers, &conditions).await;
    if let Retry::After(_) = written.retry {
        if error.is_none() {
            retry = written.retry;
        }
    }
    emit_events(shared, written.fresh.as_ref(), &events).await;
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
async fn write_in_progress(
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
    let mut containers = BTreeMap::new();
    for s in view
        .container_statuses
        .iter()
        .chain(&view.init_container_statuses)
    {
        let (Some(api_id), Some(spec)) = (
            &s.container_id,
            allocated
                .containers
                .iter()
                .chain(&allocated.init_containers)
                .find(|c| c.name == s.name),
        ) else {
            continue;
        };
        // the actual values are still the old ones
        let resources = reported
            .get(strip_runtime(api_id))
            .cloned()
            .unwrap_or_else(|| spec.resources.clone());
        containers.insert(
            s.name.clone(),
            ContainerStatusResources {
                allocated: allocated_resources_status(&spec.resources),
                resources,
            },
        );
    }
    debug!("enactment slower than the threshold: writing PodResizeInProgress first");
    let written = write_status(shared, view.clone(), &containers, &conditions).await;
    emit_events(shared, written.fresh.as_ref().or(Some(view)), &events).await;
    (written.fresh, conditions)
}

async fn emit_events(shared: &Shared, view: Option<&PodView>, events: &[ResizeEvent]) {
    let Some(view) = view else { return };
    for event in events {
        if shared
            .events
            .emit(shared.writer.as_ref(), view, event)
            .await
        {
            shared.stats.events_written.fetch_add(1, Ordering::Relaxed);
            shared.stats.metrics.event();
        }
    }
}

fn decision_name(d: &Decision) -> &'static str {
    match d {
        Decision::Unchanged => "Unchanged",
        Decision::Accepted => "Accepted",
        Decision::Deferred { .. } => "Deferred",
        Decision::Infeasible { .. } => "Infeasible",
    }
}

fn decision_message(d: &Decision) -> String {
    match d {
        Decision::Deferred { reason, message } => format!("{reason}: {message}"),
        Decision::Infeasible { message, .. } => message.clone(),
        _ => String::new(),
    }
}

fn condition_report(c: &crate::core::pod_status::ResizeCondition) -> ConditionReport {
    ConditionReport {
        reason: c.reason.clone(),
        message: c.message.clone(),
        observed_generation: c.observed_generation,
    }
}

/// Per resource (cpu, memory): allocatable, the sum of the other pods' allocated requests and
/// this pod's desired requests — the arithmetic behind a Deferred/Infeasible decision.
fn admission_lines(
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

struct StatusWrite {
    fresh: Option<PodView>,
    ok: bool,
    retry: Retry,
}

/// Patches the pod's status to say `containers` and `conditions` (nothing is sent when it
/// already does); on 409 re-reads the pod and recomputes.
async fn write_status(
    shared: &Shared,
    view: PodView,
    containers: &BTreeMap<String, ContainerStatusResources>,
    conditions: &ResizeConditions,
) -> StatusWrite {
    let t = Instant::now();
    let uid = view.spec.uid.clone();
    let now = now_rfc3339();
    let stats = &shared.stats;
    let mut view = view;
    let mut result = StatusWrite {
        fresh: None,
        ok: false,
        retry: Retry::Keep,
    };
    if !shared.opts.pod_selector.matches(&view.labels) {
        // never written: its status keeps no resize fields, so the API server refuses resizes
        result.ok = true;
        return result;
    }
    for attempt in 0..=CONFLICT_RETRIES {
        let intent = StatusIntent {
            containers,
            conditions,
            observed_generation: Some(view.spec.generation),
            legacy_resize: shared.opts.legacy_resize_status,
            now: &now,
        };
        let Some(patch) = crate::k8s::convert::status_patch(&view, &intent) else {
            result.ok = true;
            break;
        };
        stats.status_writes.fetch_add(1, Ordering::Relaxed);
        stats.metrics.status_patch();
        let (ns, name) = (view.spec.namespace.clone(), view.spec.name.clone());
        match shared.writer.patch_pod_status(&ns, &name, &patch).await {
            Ok(pod) => {
                result.ok = true;
                result.fresh = pod_view(&pod).ok();
                break;
            }
            Err(WriteError::Conflict { .. }) if attempt < CONFLICT_RETRIES => {
                stats.status_conflicts.fetch_add(1, Ordering::Relaxed);
                stats.metrics.status_conflict();
                match shared
                    .writer
                    .get_pod(&ns, &name)
                    .await
                    .map(|p| pod_view(&p))
                {
                    Ok(Ok(fresh)) if fresh.spec.uid == uid => {
                        view = fresh.clone();
                        result.fresh = Some(fresh);
                    }
                    Ok(_) => break,
                    Err(e) => {
                        warn!(error = %e, "re-reading pod after a conflict");
                        break;
                    }
                }
            }
            Err(WriteError::NotFound { .. }) => break,
            Err(e) => {
                warn!(error = %e, "status write failed; retrying");
                result.retry = Retry::After(Duration::from_secs(1));
                break;
            }
        }
    }
    stats.metrics.observe_phase(Phase::StatusPatch, t.elapsed());
    result
}

/// `containerd://abc` → `abc`.
fn strip_runtime(id: &str) -> &str {
    id.split_once("://").map_or(id, |(_, rest)| rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubelet_versions() {
        assert_eq!(kubelet_minor("v1.35.2"), Some(35));
        assert_eq!(kubelet_minor("v1.32.0-eks-1"), Some(32));
        assert_eq!(kubelet_minor("1.36"), Some(36));
        assert_eq!(kubelet_minor("garbage"), None);
    }

    #[test]
    fn runtime_prefix() {
        assert_eq!(strip_runtime("containerd://abc"), "abc");
        assert_eq!(strip_runtime("abc"), "abc");
    }

    use crate::cgroup::memory::MemoryCgroupFs;
    use crate::checkpoint::MemoryCheckpointStore;
    use crate::core::node::{CgroupVersion, NodeConfig};
    use crate::cri::fake::FakeRuntime;
    use crate::k8s::memory::MemoryWriter;
    use k8s_openapi::api::core::v1::{Node, Pod};
    use serde_json::json;

    struct World {
        runtime: Arc<FakeRuntime>,
        cgroups: Arc<MemoryCgroupFs>,
        writer: Arc<MemoryWriter>,
        config: NodeConfig,
    }

    fn api_pod(name: &str, uid: &str, gen: i64, cpu: &str, mem: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "ns", "uid": uid, "generation": gen},
            "spec": {"nodeName": "n1", "containers": [{"name": "app", "image": "busybox",
                "resources": {"requests": {"cpu": cpu, "memory": mem},
                              "limits": {"cpu": cpu, "memory": mem}}}]},
            "status": {"phase": "Running", "qosClass": "Guaranteed",
                "containerStatuses": [{"name": "app", "image": "busybox", "imageID": "",
                    "ready": true, "restartCount": 0, "containerID": format!("containerd://{uid}-app"),
                    "state": {"running": {}}}]}
        }))
        .unwrap()
    }

    fn api_node(cpu: &str, mem: &str) -> Node {
        serde_json::from_value(json!({"metadata": {"name": "n1"},
            "status": {"allocatable": {"cpu": cpu, "memory": mem},
                       "nodeInfo": {"kubeletVersion": "v1.32.3", "machineID": "", "systemUUID": "",
                         "bootID": "", "kernelVersion": "", "osImage": "", "containerRuntimeVersion": "",
                         "kubeProxyVersion": "", "operatingSystem": "linux", "architecture": "amd64"}}}))
        .unwrap()
    }

    impl World {
        fn new() -> Self {
            World {
                runtime: Arc::new(FakeRuntime::new()),
                cgroups: Arc::new(MemoryCgroupFs::new(CgroupVersion::V1)),
                writer: Arc::new(MemoryWriter::new()),
                config: NodeConfig {
                    machine_memory_bytes: 8 << 30,
                    ..NodeConfig::default()
                },
            }
        }

        /// The kubelet started the pod: runtime containers, pod cgroup, API object.
        fn start(&self, pod: &Pod) -> Pod {
            let view = pod_view(pod).unwrap();
            crate::engine::testing::start_pod(
                &self.runtime,
                &self.cgroups,
                &view.spec,
                &self.config,
            );
            self.writer.put_pod(pod)
        }

        fn controller(&self) -> Controller {
            let engine = Engine::open(
                self.runtime.clone(),
                self.cgroups.clone(),
                Arc::new(MemoryCheckpointStore::new()),
                self.config.clone(),
            )
            .unwrap();
            Controller::new(engine, self.writer.clone(), ControllerOptions::new("n1"))
        }

        fn pod_object(&self, name: &str) -> Pod {
            self.writer.pod("ns", name).unwrap()
        }

        fn pod(&self, name: &str) -> serde_json::Value {
            serde_json::to_value(self.writer.pod("ns", name).unwrap()).unwrap()
        }

        /// The API server applied a `/resize`: new resources, generation + 1.
        fn resize(&self, name: &str, cpu: &str, mem: &str) -> Pod {
            let mut v = self.pod(name);
            v["spec"]["containers"][0]["resources"] = json!({"requests": {"cpu": cpu, "memory": mem},
                "limits": {"cpu": cpu, "memory": mem}});
            v["metadata"]["generation"] = json!(v["metadata"]["generation"].as_i64().unwrap() + 1);
            self.writer.put_pod(&serde_json::from_value(v).unwrap())
        }
    }

    async fn sync_all(c: &mut Controller, pods: Vec<Pod>) {
        c.step(Input::Node(watcher::Event::Apply(api_node("2", "4Gi"))))
            .await;
        c.step(Input::Pod(watcher::Event::Init)).await;
        for p in pods {
            c.step(Input::Pod(watcher::Event::InitApply(p))).await;
        }
        c.step(Input::Pod(watcher::Event::InitDone)).await;
    }

    fn reasons(w: &MemoryWriter) -> Vec<String> {
        w.events()
            .iter()
            .map(|e| e.reason.clone().unwrap())
            .collect()
    }

    #[tokio::test]
    async fn pods_outside_the_pod_selector_are_never_written() {
        let w = World::new();
        let mut selected = api_pod("web", "u1", 1, "500m", "256Mi");
        selected.metadata.labels = Some([("resize".to_string(), "on".to_string())].into());
        let selected = w.start(&selected);
        let other = w.start(&api_pod("other", "u2", 1, "500m", "256Mi"));
        let engine = Engine::open(
            w.runtime.clone(),
            w.cgroups.clone(),
            Arc::new(MemoryCheckpointStore::new()),
            w.config.clone(),
        )
        .unwrap();
        let mut opts = ControllerOptions::new("n1");
        opts.pod_selector = crate::k8s::selector::LabelSelector::parse("resize=on").unwrap();
        let mut c = Controller::new(engine, w.writer.clone(), opts);
        sync_all(&mut c, vec![selected, other]).await;
        assert!(!w.pod("web")["status"]["containerStatuses"][0]["resources"].is_null());
        assert!(w.pod("other")["status"]["containerStatuses"][0]
            .get("resources")
            .is_none());
        assert_eq!(w.writer.status_patches().len(), 1);
    }

    #[tokio::test]
    async fn populates_resize_fields_then_enacts_a_resize_in_one_status_patch() {
        let w = World::new();
        let pod = w.start(&api_pod("web", "u1", 1, "500m", "256Mi"));
        let mut c = w.controller();
        sync_all(&mut c, vec![pod]).await;
        let v = w.pod("web");
        let app = &v["status"]["containerStatuses"][0];
        assert_eq!(
            app["allocatedResources"],
            json!({"cpu": "500m", "memory": "256Mi"})
        );
        assert_eq!(
            app["resources"]["limits"],
            json!({"cpu": "500m", "memory": "256Mi"})
        );
        assert_eq!(v["status"]["observedGeneration"], 1);
        assert!(c.stats().ready.load(Ordering::Relaxed));

        let writes = w.writer.status_patches().len();
        let resized = w.resize("web", "1", "512Mi");
        c.step(Input::Pod(watcher::Event::Apply(resized))).await;
        let patches = w.writer.status_patches();
        assert_eq!(
            patches.len(),
            writes + 1,
            "fast path: one patch per completed resize"
        );
        let v = w.pod("web");
        let app = &v["status"]["containerStatuses"][0];
        assert_eq!(
            app["allocatedResources"],
            json!({"cpu": "1", "memory": "512Mi"})
        );
        assert_eq!(
            app["resources"]["limits"],
            json!({"cpu": "1", "memory": "512Mi"})
        );
        assert_eq!(v["status"]["observedGeneration"], 2);
        assert!(v["status"]
            .get("conditions")
            .is_none_or(|c| c.as_array().unwrap().is_empty()));
        assert_eq!(reasons(&w.writer), ["ResizeStarted", "ResizeCompleted"]);
        assert_eq!(
            w.runtime.resources("u1-app").unwrap().memory_limit_in_bytes,
            512 << 20
        );
        // the echo of our own write changes nothing
        let echo = w.writer.pod("ns", "web").unwrap();
        c.step(Input::Pod(watcher::Event::Apply(echo))).await;
        assert_eq!(w.writer.status_patches().len(), writes + 1);
    }

    #[tokio::test]
    async fn erased_fields_are_reasserted() {
        let w = World::new();
        let pod = w.start(&api_pod("web", "u1", 1, "500m", "256Mi"));
        let mut c = w.controller();
        sync_all(&mut c, vec![pod]).await;
        // a gate-off kubelet rewrites containerStatuses without the resize fields
        let mut v = w.pod("web");
        let app = v["status"]["containerStatuses"][0].as_object_mut().unwrap();
        app.remove("resources");
        app.remove("allocatedResources");
        let erased = w.writer.put_pod(&serde_json::from_value(v).unwrap());
        let runtime_calls = w.runtime.calls().len();
        c.step(Input::Pod(watcher::Event::Apply(erased))).await;
        assert_eq!(
            w.runtime.calls().len(),
            runtime_calls,
            "re-asserting needs no runtime reads"
        );
        let v = w.pod("web");
        assert_eq!(
            v["status"]["containerStatuses"][0]["allocatedResources"],
            json!({"cpu": "500m", "memory": "256Mi"})
        );
        assert_eq!(c.stats().fields_missing_us.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn deferred_until_another_pod_is_deleted() {
        let w = World::new();
        let a = w.start(&api_pod("a", "ua", 1, "1", "1Gi"));
        let b = w.start(&api_pod("b", "ub", 1, "500m", "1Gi"));
        let mut c = w.controller();
        sync_all(&mut c, vec![a.clone(), b]).await;
        let resized = w.resize("b", "1500m", "1Gi");
        c.step(Input::Pod(watcher::Event::Apply(resized))).await;
        let v = w.pod("b");
        let cond = &v["status"]["conditions"][0];
        assert_eq!(cond["type"], "PodResizePending");
        assert_eq!(cond["reason"], "Deferred");
        assert_eq!(cond["observedGeneration"], 2);
        assert!(cond["message"].as_str().unwrap().contains("cpu"), "{cond}");
        assert_eq!(reasons(&w.writer), ["ResizeDeferred"]);
        // pod a goes away: the deferred resize is retried and accepted
        c.step(Input::Pod(watcher::Event::Delete(a))).await;
        let v = w.pod("b");
        assert!(
            v["status"]["conditions"].as_array().unwrap().is_empty(),
            "{v}"
        );
        assert_eq!(
            v["status"]["containerStatuses"][0]["allocatedResources"]["cpu"],
            "1500m"
        );
        assert_eq!(
            reasons(&w.writer),
            ["ResizeDeferred", "ResizeStarted", "ResizeCompleted"]
        );
    }

    /// Node cpu 2, full: a (1 cpu), b (500m) and c (500m, priority 100). b asks for 1100m, then c
    /// for 1: both wait, b first in arrival order, c first in priority order. Returns a.
    async fn two_deferred_resizes(w: &World, c: &mut Controller) -> Pod {
        let a = w.start(&api_pod("a", "ua", 1, "1", "1Gi"));
        let b = w.start(&api_pod("b", "ub", 1, "500m", "1Gi"));
        let mut high = api_pod("c", "uc", 1, "500m", "1Gi");
        high.spec.as_mut().unwrap().priority = Some(100);
        let c_pod = w.start(&high);
        sync_all(c, vec![a.clone(), b, c_pod]).await;
        let rb = w.resize("b", "1100m", "1Gi");
        c.step(Input::Pod(watcher::Event::Apply(rb))).await;
        let rc = w.resize("c", "1", "1Gi");
        c.step(Input::Pod(watcher::Event::Apply(rc))).await;
        a
    }

    #[tokio::test]
    async fn deferred_resizes_are_retried_in_priority_order() {
        let w = World::new();
        let mut c = w.controller();
        let a = two_deferred_resizes(&w, &mut c).await;
        // what `resizelet explain b` shows: a (1) and c (500m) use the node's 2 cpu
        let report = c.stats().pods.lock().unwrap()["ub"].clone();
        let cpu = report
            .admission
            .iter()
            .find(|l| l.resource == "cpu")
            .unwrap();
        assert_eq!(
            (
                cpu.allocatable.as_deref(),
                cpu.other_pods.as_str(),
                cpu.this_pod.as_str()
            ),
            (Some("2"), "1500m", "1100m")
        );
        for name in ["b", "c"] {
            assert_eq!(
                w.pod(name)["status"]["conditions"][0]["reason"],
                "Deferred",
                "{name}"
            );
        }
        // a leaves: 1 cpu frees; c (priority 100) is retried first and fits (1 + 0.5), after
        // which b (1.1 + 1 > 2) no longer does — in arrival order it would be the other way
        c.step(Input::Pod(watcher::Event::Delete(a))).await;
        assert_eq!(
            w.pod("c")["status"]["containerStatuses"][0]["allocatedResources"]["cpu"],
            "1"
        );
        assert_eq!(w.pod("b")["status"]["conditions"][0]["reason"], "Deferred");
        assert!(c.stats().metrics.render().contains(
            "kubelet_pod_deferred_accepted_resizes_total{retry_trigger=\"pods_removed\"} 1"
        ));
    }

    #[tokio::test]
    async fn the_retry_pass_waits_for_a_queued_pod_whose_own_pass_is_running() {
        let w = World::new();
        let mut c = w.controller();
        let a = two_deferred_resizes(&w, &mut c).await;
        // c (first in the queue) gets a pass of its own, held at its first CRI call …
        w.runtime.hold_lists_for("uc");
        c.handle(Input::Pod(watcher::Event::Apply(w.pod_object("c"))));
        c.dispatch();
        assert!(c.in_flight.contains("uc"), "c has a pass of its own");
        assert_eq!(c.queue.uids(), ["uc", "ub"]);
        // … when a leaves and asks for a retry pass. A retry pass started now would run a second
        // pass of c beside its own (or, skipping c, admit b into the freed cpu ahead of it): it
        // waits until c's pass has ended
        c.handle(Input::Pod(watcher::Event::Delete(a)));
        c.dispatch();
        assert!(c.retry_pass.is_some(), "pods removed asks for a retry pass");
        assert!(
            !c.retry_pass_running,
            "the retry pass started while c's own pass was in flight"
        );
        let runtime = w.runtime.clone();
        let release = tokio::spawn(async move {
            let held = until(|| runtime.held_lists() == 1).await;
            runtime.release_lists();
            held
        });
        c.settle().await;
        assert!(release.await.unwrap(), "c's pass never reached the runtime");
        assert_eq!(
            w.pod("c")["status"]["containerStatuses"][0]["allocatedResources"]["cpu"],
            "1"
        );
        assert_eq!(w.pod("b")["status"]["conditions"][0]["reason"], "Deferred");
    }

    #[tokio::test]
    async fn conflicts_are_re_read_and_retried() {
        let w = World::new();
        let pod = w.start(&api_pod("web", "u1", 1, "500m", "256Mi"));
        let mut c = w.controller();
        w.writer
            .fail_next(WriteError::Conflict { what: "pod".into() });
        sync_all(&mut c, vec![pod]).await;
        assert_eq!(c.stats().status_conflicts.load(Ordering::Relaxed), 1);
        assert_eq!(
            w.pod("web")["status"]["containerStatuses"][0]["allocatedResources"]["memory"],
            "256Mi"
        );
    }

    /// Polls `f` until it holds; false after 10 s.
    async fn until(f: impl Fn() -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !f() {
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        true
    }

    #[tokio::test]
    async fn resizes_of_different_pods_are_enacted_concurrently() {
        let w = World::new();
        let a = w.start(&api_pod("a", "ua", 1, "500m", "256Mi"));
        let b = w.start(&api_pod("b", "ub", 1, "500m", "256Mi"));
        let mut c = w.controller();
        sync_all(&mut c, vec![a, b]).await;
        w.runtime.hold_updates();
        let (ra, rb) = (
            w.resize("a", "700m", "256Mi"),
            w.resize("b", "700m", "256Mi"),
        );
        c.handle(Input::Pod(watcher::Event::Apply(ra)));
        c.handle(Input::Pod(watcher::Event::Apply(rb)));
        let runtime = w.runtime.clone();
        let release = tokio::spawn(async move {
            // both pods' CRI updates are in flight at once (serialised passes would show one)
            let both = until(|| runtime.held_updates() == 2).await;
            runtime.release_updates();
            both
        });
        c.settle().await;
        assert!(
            release.await.unwrap(),
            "the two pods' updates never overlapped"
        );
        for name in ["a", "b"] {
            assert_eq!(
                w.pod(name)["status"]["containerStatuses"][0]["allocatedResources"]["cpu"],
                "700m"
            );
        }
    }

    #[tokio::test]
    async fn a_slow_enactment_writes_in_progress_first() {
        let w = World::new();
        let pod = w.start(&api_pod("web", "u1", 1, "500m", "256Mi"));
        let mut c = w.controller();
        Arc::get_mut(&mut c.shared)
            .unwrap()
            .opts
            .in_progress_threshold = Duration::from_millis(5);
        sync_all(&mut c, vec![pod]).await;
        let writes = w.writer.status_patches().len();
        w.runtime.hold_updates();
        let resized = w.resize("web", "1", "256Mi");
        c.handle(Input::Pod(watcher::Event::Apply(resized)));
        let (writer, runtime) = (w.writer.clone(), w.runtime.clone());
        let release = tokio::spawn(async move {
            let seen = until(|| writer.status_patches().len() > writes).await;
            let pod = serde_json::to_value(writer.pod("ns", "web").unwrap()).unwrap();
            runtime.release_updates();
            assert!(seen, "no status write while the enactment was held");
            pod
        });
        c.settle().await;
        let during = release.await.unwrap();
        assert_eq!(
            during["status"]["conditions"][0]["type"],
            "PodResizeInProgress"
        );
        assert_eq!(
            during["status"]["containerStatuses"][0]["allocatedResources"]["cpu"],
            "1"
        );
        assert_eq!(
            during["status"]["containerStatuses"][0]["resources"]["limits"]["cpu"], "500m",
            "actual values stay the old ones until enacted"
        );
        let after = w.pod("web");
        assert!(
            after["status"]["conditions"].as_array().unwrap().is_empty(),
            "{after}"
        );
        assert_eq!(
            after["status"]["containerStatuses"][0]["resources"]["limits"]["cpu"],
            "1"
        );
        assert_eq!(w.writer.status_patches().len(), writes + 2);
        assert_eq!(reasons(&w.writer), ["ResizeStarted", "ResizeCompleted"]);
    }

    #[tokio::test]
    async fn stands_down_when_the_kubelet_writes_resize_conditions() {
        let w = World::new();
        let mut pod = api_pod("web", "u1", 1, "500m", "256Mi");
        pod.metadata.managed_fields = Some(vec![serde_json::from_value(json!({
            "manager": "kubelet", "operation": "Update", "subresource": "status",
            "apiVersion": "v1", "fieldsType": "FieldsV1",
            "fieldsV1": {"f:status": {"f:conditions": {
                "k:{\"type\":\"PodResizeInProgress\"}": {".": {}, "f:type": {}}}}}
        }))
        .unwrap()]);
        let pod = w.start(&pod);
        let mut c = w.controller();
        sync_all(&mut c, vec![pod]).await;
        assert!(
            w.writer.status_patches().is_empty(),
            "acted next to a resizing kubelet"
        );
        let why = c.stats().stand_down.lock().unwrap().clone().unwrap();
        assert!(why.contains("PodResizeInProgress of pod ns/web"), "{why}");
        let events = w.writer.events();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].reason.as_deref(), Some("ResizeletStandingDown"));
        assert_eq!(
            events[0].regarding.as_ref().unwrap().kind.as_deref(),
            Some("Node")
        );
        assert!(c
            .stats()
            .metrics
            .render()
            .contains("resizelet_stand_down 1"));
    }

    #[test]
    fn a_gate_off_kubelet_owning_container_statuses_is_no_evidence() {
        let meta: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta =
            serde_json::from_value(json!({"managedFields": [{
                "manager": "kubelet", "operation": "Update", "subresource": "status",
                "fieldsType": "FieldsV1",
                "fieldsV1": {"f:status": {"f:containerStatuses": {}, "f:conditions": {
                    "k:{\"type\":\"Ready\"}": {}}}}}, {
                "manager": "resizelet", "operation": "Update", "subresource": "status",
                "fieldsType": "FieldsV1",
                "fieldsV1": {"f:status": {"f:conditions": {
                    "k:{\"type\":\"PodResizePending\"}": {}}}}}]}))
            .unwrap();
        assert!(crate::k8s::convert::kubelet_resize_conditions(&meta).is_empty());
    }

    #[tokio::test]
    async fn stands_down_next_to_a_resizing_kubelet() {
        let w = World::new();
        let pod = w.start(&api_pod("web", "u1", 1, "500m", "256Mi"));
        let mut c = w.controller();
        let mut node = api_node("2", "4Gi");
        node.status
            .as_mut()
            .unwrap()
            .node_info
            .as_mut()
            .unwrap()
            .kubelet_version = "v1.35.0".into();
        c.step(Input::Node(watcher::Event::Apply(node))).await;
        c.step(Input::Pod(watcher::Event::Init)).await;
        c.step(Input::Pod(watcher::Event::InitApply(pod))).await;
        c.step(Input::Pod(watcher::Event::InitDone)).await;
        assert!(w.writer.status_patches().is_empty());
        let why = c.stats().stand_down.lock().unwrap().clone().unwrap();
        assert!(why.contains("v1.35.0"), "{why}");
    }
}
