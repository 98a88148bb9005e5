//! The Kubernetes control loop: watcher events in ([`Input`]), engine passes, status patches and
//! Events out. One task owns all state; inputs that arrive together are coalesced so each
//! touched pod is synced once per batch.
//!
//! Per pod sync: engine pass (seed → admit → checkpoint → plan → enact), pending-queue update,
//! next conditions and events (core `pod_status`), container `resources`/`allocatedResources`
//! from the runtime (§12), then one strategic-merge status patch with a `resourceVersion`
//! precondition (re-read and recomputed on 409). A gate-off kubelet that erases the resize
//! fields causes a watch event, which re-asserts them on the next pass.

use std::collections::{BTreeMap, BTreeSet};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{FutureExt, Stream, StreamExt};
use kube::runtime::watcher;
use tracing::{debug, info, info_span, warn, Instrument};

use crate::core::admission::{Decision, NodePressure};
use crate::core::pod_status::{next_conditions, PassResult, ResizeConditions};
use crate::core::queue::{PendingQueue, QueueEntry, Trigger, FIRST_RETRY_MS, RETRY_INTERVAL_MS};
use crate::core::resources::{pod_requests, PodSpec, ResourceRequirements, CPU, MEMORY};
use crate::core::status::{allocated_resources_status, container_resources_status};
use crate::engine::{Engine, EngineError};
use crate::k8s::convert::{node_view, pod_view, ContainerStatusResources, PodView, StatusIntent};
use crate::k8s::events::EventRecorder;
use crate::k8s::{Input, KubeWriter, WriteError};

/// Retry of a failed enactment: 10 s plus up to 5 s of jitter (spec §7.4).
pub const ERROR_RETRY: Duration = Duration::from_secs(10);
const CONFLICT_RETRIES: usize = 5;

#[derive(Debug, Clone)]
pub struct ControllerOptions {
    pub node_name: String,
    /// Also write the legacy `status.resize` (decision 2).
    pub legacy_resize_status: bool,
    /// Act even when the node's kubelet enacts resizes itself (decision 6 override).
    pub ignore_resizing_kubelet: bool,
}

/// Counters for metrics, readiness and benchmarks.
#[derive(Debug, Default)]
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
}

pub struct Controller {
    engine: Engine,
    writer: Arc<dyn KubeWriter>,
    opts: ControllerOptions,
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
    events: EventRecorder,
    stats: Arc<ControllerStats>,
}

/// The inputs of a full pass that come from the API, and the container statuses it computed.
struct LastPass {
    spec: PodSpec,
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

impl Controller {
    pub fn new(engine: Engine, writer: Arc<dyn KubeWriter>, opts: ControllerOptions) -> Self {
        let events = EventRecorder::new(&opts.node_name);
        Controller {
            engine,
            writer,
            opts,
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
            events,
            stats: Arc::new(ControllerStats::default()),
        }
    }

    pub fn stats(&self) -> Arc<ControllerStats> {
        self.stats.clone()
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Runs until `inputs` ends or `shutdown` resolves.
    pub async fn run(
        mut self,
        inputs: impl Stream<Item = Input>,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        let mut inputs = pin!(inputs);
        let mut shutdown = pin!(shutdown);
        loop {
            let deadline = self.next_deadline();
            let mut dirty = BTreeSet::new();
            tokio::select! {
                _ = &mut shutdown => break,
                input = inputs.next() => {
                    let Some(input) = input else { break };
                    self.handle(input, &mut dirty);
                    // coalesce whatever else is already there
                    while let Some(Some(input)) = inputs.next().now_or_never() {
                        self.handle(input, &mut dirty);
                    }
                }
                _ = tokio::time::sleep_until(deadline.into()) => self.due(&mut dirty),
            }
            self.process(dirty).await;
        }
        info!("controller stopped");
    }

    /// Feeds one input; returns the pods it touched (for tests driving the loop by hand).
    pub async fn step(&mut self, input: Input) {
        let mut dirty = BTreeSet::new();
        self.handle(input, &mut dirty);
        self.process(dirty).await;
    }

    /// Runs timers that are due at `now` (error retries, the periodic retry pass).
    pub async fn tick(&mut self) {
        let mut dirty = BTreeSet::new();
        self.due(&mut dirty);
        self.process(dirty).await;
    }

    fn next_deadline(&self) -> Instant {
        self.retry_at
            .values()
            .copied()
            .chain(std::iter::once(self.next_periodic))
            .min()
            .unwrap_or(self.next_periodic)
    }

    fn due(&mut self, dirty: &mut BTreeSet<String>) {
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
            dirty.insert(uid);
        }
        if self.next_periodic <= now {
            self.next_periodic = now + Duration::from_millis(RETRY_INTERVAL_MS as u64);
            self.retry_pass.get_or_insert(Trigger::PeriodicRetry);
        }
    }

    fn handle(&mut self, input: Input, dirty: &mut BTreeSet<String>) {
        match input {
            Input::Pod(watcher::Event::Init) => self.relist = Some(BTreeMap::new()),
            Input::Pod(watcher::Event::InitApply(pod)) => match pod_view(&pod) {
                Ok(view) => {
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
                    .chain(self.engine.known_pods())
                    .filter(|u| !listed.contains_key(u))
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect();
                for uid in gone {
                    self.deleted(&uid);
                }
                for (uid, view) in listed {
                    self.applied(view);
                    dirty.insert(uid);
                }
                if !self.pods_synced {
                    info!(pods = self.pods.len(), "pod watch synced");
                }
                self.pods_synced = true;
                self.update_ready();
            }
            Input::Pod(watcher::Event::Apply(pod)) => match pod_view(&pod) {
                Ok(view) => {
                    let uid = view.spec.uid.clone();
                    let became_terminal =
                        view.terminal && self.pods.get(&uid).is_some_and(|p| !p.terminal);
                    self.applied(view);
                    if became_terminal && !self.queue.is_empty() {
                        self.retry_pass.get_or_insert(Trigger::PodTerminated);
                    }
                    dirty.insert(uid);
                }
                Err(e) => warn!(error = %e, "ignoring pod"),
            },
            Input::Pod(watcher::Event::Delete(pod)) => {
                if let Some(uid) = pod.metadata.uid {
                    self.deleted(&uid);
                    dirty.remove(&uid);
                }
            }
            Input::Node(watcher::Event::Apply(node) | watcher::Event::InitApply(node)) => {
                let view = node_view(&node);
                for bad in &view.unparsable {
                    warn!(entry = %bad, "ignoring unparsable node allocatable");
                }
                if let Some(minor) = view.kubelet_version.as_deref().and_then(kubelet_minor) {
                    if minor >= 35 && !self.opts.ignore_resizing_kubelet {
                        let reason = format!(
                            "the node's kubelet {} enacts in-place resizes itself (the gate is locked on from 1.35); resizelet stands down instead of racing it",
                            view.kubelet_version.clone().unwrap_or_default()
                        );
                        let mut s = self.stats.stand_down.lock().unwrap();
                        if s.is_none() {
                            warn!("{reason}");
                        }
                        *s = Some(reason);
                    }
                }
                let changed = self.engine.node().allocatable != view.allocatable;
                if changed {
                    info!(allocatable = ?view.allocatable, "node allocatable");
                    self.engine.set_allocatable(view.allocatable);
                }
                if !self.node_seen {
                    self.node_seen = true;
                    dirty.extend(self.pods.keys().cloned());
                    self.update_ready();
                } else if changed {
                    self.retry_pass.get_or_insert(Trigger::PodResized);
                }
            }
            Input::Node(_) => {}
        }
    }

    fn update_ready(&self) {
        self.stats
            .ready
            .store(self.pods_synced && self.node_seen, Ordering::Relaxed);
    }

    fn applied(&mut self, view: PodView) {
        let uid = view.spec.uid.clone();
        if view.node_name.as_deref() != Some(self.opts.node_name.as_str()) {
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
        self.queue.remove(uid);
        if let Err(e) = self.engine.forget_pod(uid) {
            warn!(error = %e, uid, "forgetting a removed pod");
        }
        self.retry_pass.get_or_insert(Trigger::PodsRemoved);
    }

    async fn process(&mut self, dirty: BTreeSet<String>) {
        for uid in dirty {
            self.sync(&uid).await;
        }
        while let Some(trigger) = self.retry_pass.take() {
            let queued = self.queue.uids();
            if !queued.is_empty() {
                debug!(
                    trigger = trigger.label(),
                    pods = queued.len(),
                    "retrying deferred resizes"
                );
            }
            for uid in queued {
                self.last_pass.remove(&uid);
                self.sync(&uid).await;
            }
        }
    }

    async fn sync(&mut self, uid: &str) {
        let Some(view) = self.pods.get(uid).cloned() else {
            return;
        };
        if !self.node_seen || !self.pods_synced || view.deleting {
            return;
        }
        if self.stats.stand_down.lock().unwrap().is_some() {
            return;
        }
        if view.terminal {
            self.queue.remove(uid);
            return;
        }
        let span = info_span!("pod", namespace = %view.spec.namespace, name = %view.spec.name,
            uid = %uid, generation = view.spec.generation);
        let unchanged = self
            .last_pass
            .get(uid)
            .filter(|last| last.spec == view.spec && last.api_containers == api_containers(&view));
        if let Some(last) = unchanged {
            let containers = last.containers.clone();
            let conditions = self.conditions.get(uid).cloned().unwrap_or_default();
            self.write_status(view, &containers, &conditions)
                .instrument(span)
                .await;
            return;
        }
        self.sync_view(view).instrument(span).await;
    }

    async fn sync_view(&mut self, view: PodView) {
        let uid = view.spec.uid.clone();
        self.stats.syncs.fetch_add(1, Ordering::Relaxed);
        let others: Vec<PodSpec> = self
            .pods
            .values()
            .filter(|p| p.spec.uid != uid && !p.terminal)
            .map(|p| p.spec.clone())
            .collect();
        let allocated_before = self
            .engine
            .allocated(&uid)
            .map(|a| view.spec.with_allocated(a));
        let outcome = match self
            .engine
            .sync_pod(&view.spec, &others, NodePressure::default(), None)
            .await
        {
            Ok(o) => o,
            Err(EngineError::NoContainers { .. }) => {
                debug!("no containers in the runtime yet");
                return;
            }
            Err(e) => {
                warn!(error = %e, "sync failed; retrying");
                self.retry_at
                    .insert(uid.clone(), Instant::now() + ERROR_RETRY + jitter(&uid));
                return;
            }
        };
        let allocated = match self.engine.allocated(&uid) {
            Some(a) => view.spec.with_allocated(a),
            None => view.spec.clone(),
        };
        match &outcome.decision {
            Decision::Deferred { .. } => {
                let since = view
                    .condition_transition_times
                    .get(crate::core::pod_status::POD_RESIZE_PENDING)
                    .and_then(|t| t.parse::<k8s_openapi::jiff::Timestamp>().ok())
                    .map(|t| t.as_millisecond());
                self.queue
                    .insert(QueueEntry::new(&view.spec, &allocated, since));
            }
            _ => {
                self.queue.remove(&uid);
            }
        }
        if outcome.decision == Decision::Accepted {
            if let Some(before) = &allocated_before {
                if shrinks(&view.spec, before) && !self.queue.is_empty() {
                    self.retry_pass.get_or_insert(Trigger::PodResized);
                }
            }
        }
        let error = outcome.enactment.as_ref().err().map(|e| e.to_string());
        if let Some(e) = &error {
            warn!(error = %e, "resize enactment failed; retrying");
            self.retry_at
                .insert(uid.clone(), Instant::now() + ERROR_RETRY + jitter(&uid));
        } else {
            self.retry_at.remove(&uid);
        }
        let previous = self.conditions.get(&uid).cloned().unwrap_or_default();
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
            self.stats.resizes_completed.fetch_add(1, Ordering::Relaxed);
            info!("resize completed");
        }

        // container status resources (§12)
        let actuated = self.engine.actuated(&uid).cloned().unwrap_or_default();
        let mut containers = BTreeMap::new();
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
                Some(c) => match self.engine.runtime().container_status(&c.id).await {
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
                self.reported.get(&id),
            );
            if running.is_some() {
                self.reported.insert(id, resources.clone());
            }
            containers.insert(
                s.name.clone(),
                ContainerStatusResources {
                    allocated: allocated_resources_status(&spec.resources),
                    resources,
                },
            );
        }
        self.last_pass.insert(
            uid.clone(),
            LastPass {
                spec: view.spec.clone(),
                api_containers: api_containers(&view),
                containers: containers.clone(),
            },
        );
        let view = self.write_status(view, &containers, &conditions).await;
        self.conditions.insert(uid.clone(), conditions);
        for event in &events {
            if self.events.emit(self.writer.as_ref(), &view, event).await {
                self.stats.events_written.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Patches the pod's status to say `containers` and `conditions` (nothing is sent when it
    /// already does); on 409 re-reads the pod and recomputes. Returns the latest view.
    async fn write_status(
        &mut self,
        view: PodView,
        containers: &BTreeMap<String, ContainerStatusResources>,
        conditions: &ResizeConditions,
    ) -> PodView {
        let uid = view.spec.uid.clone();
        let now = now_rfc3339();
        let mut view = view;
        for attempt in 0..=CONFLICT_RETRIES {
            let intent = StatusIntent {
                containers,
                conditions,
                observed_generation: Some(view.spec.generation),
                legacy_resize: self.opts.legacy_resize_status,
                now: &now,
            };
            let Some(patch) = crate::k8s::convert::status_patch(&view, &intent) else {
                self.missing_since.remove(&uid);
                break;
            };
            self.stats.status_writes.fetch_add(1, Ordering::Relaxed);
            let (ns, name) = (view.spec.namespace.clone(), view.spec.name.clone());
            match self.writer.patch_pod_status(&ns, &name, &patch).await {
                Ok(pod) => {
                    if let Some(since) = self.missing_since.remove(&uid) {
                        self.stats
                            .fields_missing_us
                            .lock()
                            .unwrap()
                            .push(since.elapsed().as_micros() as u64);
                    }
                    if let Ok(fresh) = pod_view(&pod) {
                        self.pods.insert(uid.clone(), fresh);
                    }
                    break;
                }
                Err(WriteError::Conflict { .. }) if attempt < CONFLICT_RETRIES => {
                    self.stats.status_conflicts.fetch_add(1, Ordering::Relaxed);
                    match self.writer.get_pod(&ns, &name).await.map(|p| pod_view(&p)) {
                        Ok(Ok(fresh)) if fresh.spec.uid == uid => {
                            view = fresh.clone();
                            self.pods.insert(uid.clone(), fresh);
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
                    self.retry_at
                        .insert(uid.clone(), Instant::now() + Duration::from_secs(1));
                    break;
                }
            }
        }
        view
    }
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
            Controller::new(
                engine,
                self.writer.clone(),
                ControllerOptions {
                    node_name: "n1".into(),
                    legacy_resize_status: false,
                    ignore_resizing_kubelet: false,
                },
            )
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
