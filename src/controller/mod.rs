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

mod inputs;
mod pass;
pub mod report;
pub mod scheduler;
mod standdown;
mod status_write;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, Stream, StreamExt};
use tracing::{debug, info, warn};

use crate::core::pod_status::ResizeConditions;
use crate::core::queue::{PendingQueue, Trigger, FIRST_RETRY_MS, RETRY_INTERVAL_MS};
use crate::core::resources::{PodSpec, ResourceRequirements};
use crate::engine::Engine;
use crate::k8s::convert::PodView;
use crate::k8s::events::EventRecorder;
use crate::k8s::{Input, KubeWriter};
use crate::metrics::Phase;

use inputs::strip_runtime;
use pass::{api_containers, run_pass, FullInput, LastPass, PassOutput, Retry, Work};
use report::ControllerStats;
use scheduler::{Finished, Scheduler};
use status_write::{write_events, Outgoing};

/// Retry of a failed enactment: 10 s plus up to 5 s of jitter (spec §7.4).
pub const ERROR_RETRY: Duration = Duration::from_secs(10);
/// Decision 5's default threshold for the intermediate `PodResizeInProgress` write.
pub const DEFAULT_IN_PROGRESS_THRESHOLD: Duration = Duration::from_millis(100);
const CONFLICT_RETRIES: usize = 5;
/// Passes running at once (more would only queue in the runtime and hold memory).
const MAX_CONCURRENT_PASSES: usize = 32;
/// Pods whose events are written at once.
const EVENT_WRITERS: usize = 8;
/// How long a shutdown waits for passes in flight.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct ControllerOptions {
    pub node_name: String,
    /// Also write the legacy `status.resize` (decision 2).
    pub legacy_resize_status: bool,
    /// Act even when the node's kubelet enacts resizes itself (decision 6 override).
    pub ignore_resizing_kubelet: bool,
    /// The kubelet's `InPlacePodVerticalScaling` gate from its configuration file (decision 6).
    pub kubelet_resize_gate: crate::kubelet_config::ResizeGate,
    /// Decision 5: an enactment still running after this long gets an intermediate
    /// `PodResizeInProgress` status write before the final one.
    pub in_progress_threshold: Duration,
    /// Test hook: abort the process right after plan step N of an enactment was applied.
    pub crash_after_step: Option<usize>,
    /// Only pods it selects get status writes (`--pod-selector`; default every pod).
    pub pod_selector: crate::core::selector::LabelSelector,
}

impl ControllerOptions {
    pub fn new(node_name: impl Into<String>) -> Self {
        ControllerOptions {
            node_name: node_name.into(),
            legacy_resize_status: false,
            ignore_resizing_kubelet: false,
            kubelet_resize_gate: Default::default(),
            in_progress_threshold: DEFAULT_IN_PROGRESS_THRESHOLD,
            crash_after_step: None,
            pod_selector: Default::default(),
        }
    }
}

/// State the passes share (read-only, or internally synchronised).
struct Shared {
    engine: Engine,
    writer: Arc<dyn KubeWriter>,
    opts: ControllerOptions,
    events: EventRecorder,
    stats: Arc<ControllerStats>,
    /// Pods whose spec cannot be used (kept, reported; `k8s::unusable`).
    unusable: crate::k8s::unusable::UnusablePods,
    /// Events passes produced, not yet handed to the event writer (one batch at a time).
    outbox: Mutex<Vec<Outgoing>>,
    outbox_ready: tokio::sync::Notify,
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
    next_periodic: Instant,
    retry_pass: Option<Trigger>,
    node_seen: bool,
    pods_synced: bool,
    missing_since: BTreeMap<String, Instant>,
    /// What the last full pass of each pod saw and computed: a watch event that changes neither
    /// (the echo of our own write, a kubelet erasing the resize fields) only needs the status
    /// re-asserted, not another round of CRI and cgroup reads.
    last_pass: BTreeMap<String, LastPass>,
    /// Which pods to pass: at most one pass per pod at a time (touched meanwhile → passed again
    /// when it ends), at most [`MAX_CONCURRENT_PASSES`], error-retry timers; a pod deleted
    /// during its pass is forgotten by the engine when the pass ends.
    sched: Scheduler<String>,
    retry_pass_running: bool,
    /// A Node event to write (decision 6's stand-down).
    node_event: Option<String>,
    tasks: FuturesUnordered<BoxFuture<'static, TaskDone>>,
    /// A batch of the outbox is being written.
    events_running: bool,
}

/// Runs `task` as its own tokio task, so that passes (and event batches) use every worker
/// thread and a pass blocked in a checkpoint fsync or a cgroup write holds up neither the loop
/// nor the other passes (polled inside the loop's own task they were all serialised on one
/// thread). Aborted when dropped (a shutdown past its grace period drops the loop's futures, as
/// before); a task that panics ends with `on_panic`.
fn spawned(
    task: impl std::future::Future<Output = TaskDone> + Send + 'static,
    on_panic: TaskDone,
) -> BoxFuture<'static, TaskDone> {
    struct AbortOnDrop(tokio::task::JoinHandle<TaskDone>);
    impl Drop for AbortOnDrop {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    let mut handle = AbortOnDrop(tokio::spawn(task));
    async move {
        match (&mut handle.0).await {
            Ok(done) => done,
            Err(e) => {
                warn!(error = %e, "a controller task failed");
                on_panic
            }
        }
    }
    .boxed()
}

struct TaskDone {
    retry_pass: bool,
    /// The event writer's batch ended.
    events: bool,
    outputs: Vec<PassOutput>,
}

impl Controller {
    pub fn new(engine: Engine, writer: Arc<dyn KubeWriter>, opts: ControllerOptions) -> Self {
        let events = EventRecorder::new(&opts.node_name);
        let unusable = crate::k8s::unusable::UnusablePods::new(opts.pod_selector.clone());
        Controller {
            shared: Arc::new(Shared {
                engine,
                writer,
                opts,
                events,
                stats: Arc::new(ControllerStats::default()),
                unusable,
                outbox: Mutex::new(Vec::new()),
                outbox_ready: tokio::sync::Notify::new(),
            }),
            pods: BTreeMap::new(),
            conditions: BTreeMap::new(),
            reported: BTreeMap::new(),
            queue: PendingQueue::default(),
            relist: None,
            next_periodic: Instant::now() + Duration::from_millis(FIRST_RETRY_MS as u64),
            retry_pass: None,
            node_seen: false,
            pods_synced: false,
            missing_since: BTreeMap::new(),
            last_pass: BTreeMap::new(),
            sched: Scheduler::new(MAX_CONCURRENT_PASSES),
            retry_pass_running: false,
            node_event: None,
            tasks: FuturesUnordered::new(),
            events_running: false,
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
        let shared = self.shared.clone();
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
                // a pass queued events (dispatched at the top of the loop)
                _ = shared.outbox_ready.notified() => {}
            }
        }
        let drain = async {
            self.dispatch_events();
            while let Some(done) = self.tasks.next().await {
                self.apply(done);
                self.dispatch_events();
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
        self.sched
            .next_timer()
            .map_or(self.next_periodic, |t| t.min(self.next_periodic))
    }

    fn mark_dirty(&mut self, uid: String) {
        self.sched.touch(uid, Instant::now());
    }

    fn due(&mut self) {
        let now = Instant::now();
        for uid in self.sched.fire_due(now) {
            self.last_pass.remove(&uid);
        }
        if self.next_periodic <= now {
            self.next_periodic = now + Duration::from_millis(RETRY_INTERVAL_MS as u64);
            self.retry_pass.get_or_insert(Trigger::PeriodicRetry);
        }
    }

    /// Hands what the passes queued to the event writer, one batch at a time (so one pod's
    /// events keep their order across batches).
    fn dispatch_events(&mut self) {
        if self.events_running {
            return;
        }
        let batch = std::mem::take(&mut *self.shared.outbox.lock().unwrap());
        if batch.is_empty() {
            return;
        }
        self.events_running = true;
        let shared = self.shared.clone();
        let done = || TaskDone {
            retry_pass: false,
            events: true,
            outputs: Vec::new(),
        };
        self.tasks.push(spawned(
            async move {
                write_events(&shared, batch).await;
                done()
            },
            done(),
        ));
    }

    /// Starts passes for dirty pods (each pod at most once at a time) and, when none runs, a
    /// retry pass over the pending queue.
    fn dispatch(&mut self) {
        self.dispatch_events();
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
                        events: false,
                        outputs: Vec::new(),
                    }
                }
                .boxed(),
            );
        }
        while let Some((uid, since)) = self.sched.pop_ready() {
            let Some(work) = self.work_for(&uid, None) else {
                continue;
            };
            self.sched.start(uid.clone());
            let shared = self.shared.clone();
            let started_rv = self
                .pods
                .get(&uid)
                .map(|v| v.resource_version.clone())
                .unwrap_or_default();
            let failed = PassOutput {
                uid,
                started_rv,
                since,
                retry: Retry::After(ERROR_RETRY),
                fresh: None,
                status_ok: false,
                full: None,
            };
            self.tasks.push(spawned(
                async move {
                    TaskDone {
                        retry_pass: false,
                        events: false,
                        outputs: vec![run_pass(&shared, work, since).await],
                    }
                },
                TaskDone {
                    retry_pass: false,
                    events: false,
                    outputs: vec![failed],
                },
            ));
        }
        if self.retry_pass_running || self.retry_pass.is_none() {
            return;
        }
        // a queued pod with a pass of its own running would be admitted outside queue order, and
        // any pass running may be about to queue its pod (its Deferred status already written,
        // its output not yet applied: with a 9 ms status write a removal lands in that gap):
        // the retry pass starts when the running passes end
        if self.sched.running() > 0 {
            return;
        }
        let Some(trigger) = self.retry_pass.take() else {
            return;
        };
        let mut works = Vec::new();
        for uid in self.queue.uids() {
            self.last_pass.remove(&uid);
            if let Some(work) = self.work_for(&uid, Some(trigger)) {
                self.sched.start(uid);
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
                    events: false,
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
        if done.events {
            self.events_running = false;
        }
        for out in done.outputs {
            self.apply_one(out);
        }
        self.update_gauges();
    }

    fn apply_one(&mut self, out: PassOutput) {
        let uid = out.uid;
        if self.sched.finish(&uid, Instant::now()) == Finished::Removed {
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
                // a histogram only: bounded however often a kubelet erases the fields
                self.shared.stats.metrics.fields_missing(since.elapsed());
            }
        }
        match out.retry {
            Retry::Keep => {}
            Retry::Clear => self.sched.clear_timer(&uid),
            Retry::After(d) => self.sched.set_timer(uid.clone(), Instant::now() + d),
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
            // the pod as stored now (our write's answer) may carry a newer spec than the one the
            // pass decided on: pass it again rather than wait for its watch event
            if self
                .pods
                .get(&uid)
                .is_some_and(|p| p.spec != full.last_pass.spec)
            {
                self.mark_dirty(uid.clone());
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
