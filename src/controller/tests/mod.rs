//! The controller's tests: the loop driven by hand over the fake runtime and the in-memory writer.

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

use super::standdown::kubelet_minor;
use crate::core::node::NodeConfig;
use crate::cri::fake::FakeRuntime;
use crate::k8s::convert::pod_view;
use crate::k8s::memory::MemoryWriter;
use crate::k8s::{Input, WriteError};

/// A pod watch event as the stream delivers it (converted at its edge, `convert::pod_input`).
fn pod_input(event: watcher::Event<Pod>) -> Input {
    crate::k8s::convert::pod_input(event).expect("a pod with a uid")
}

/// A node watch event as the stream delivers it.
fn node_input(event: watcher::Event<Node>) -> Input {
    crate::k8s::convert::node_input(event).expect("the node as listed or changed")
}
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::runtime::watcher;
use serde_json::json;
use std::sync::atomic::Ordering;

/// The kit's in-memory node plus the in-memory API writer (`w.runtime`, `w.cgroups`, … through
/// `Deref`).
#[derive(Clone)]
struct World {
    node: crate::testing::World,
    writer: Arc<MemoryWriter>,
}

impl std::ops::Deref for World {
    type Target = crate::testing::World;
    fn deref(&self) -> &Self::Target {
        &self.node
    }
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

/// Pods (name, cpu, memory) as [`api_pod`] builds them, uid `u<name>`.
fn api_pods(pods: &[(&str, &str, &str)]) -> Vec<Pod> {
    pods.iter()
        .map(|(name, cpu, mem)| api_pod(name, &format!("u{name}"), 1, cpu, mem))
        .collect()
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
            node: crate::testing::World::with_config(NodeConfig {
                machine_memory_bytes: 8 << 30,
                ..NodeConfig::default()
            }),
            writer: Arc::new(MemoryWriter::new()),
        }
    }

    /// The kubelet started the pod: runtime containers, pod cgroup, API object.
    fn start(&self, pod: &Pod) -> Pod {
        let view = pod_view(pod).unwrap();
        self.node.start(&view.spec);
        self.writer.put_pod(pod)
    }

    fn controller(&self) -> Controller {
        self.controller_with(ControllerOptions::new("n1"))
    }

    fn controller_with(&self, opts: ControllerOptions) -> Controller {
        Controller::new(self.node.engine(), self.writer.clone(), opts)
    }

    fn pod_object(&self, name: &str) -> Pod {
        self.writer.pod("ns", name).unwrap()
    }

    fn pod(&self, name: &str) -> serde_json::Value {
        serde_json::to_value(self.writer.pod("ns", name).unwrap()).unwrap()
    }

    /// One pod `web` (500m, 256Mi) started and synced by a new controller (with decision 5's
    /// threshold, if given); returns it and the number of status writes so far.
    async fn web(&self, in_progress_threshold: Option<Duration>) -> (Controller, usize) {
        let pod = self.start(&api_pod("web", "u1", 1, "500m", "256Mi"));
        let mut c = self.controller();
        if let Some(t) = in_progress_threshold {
            Arc::get_mut(&mut c.shared)
                .unwrap()
                .opts
                .in_progress_threshold = t;
        }
        sync_all(&mut c, vec![pod]).await;
        (c, self.writer.status_patches().len())
    }

    /// `pods` started by the kubelet and synced by a new controller; returns it and the pods as
    /// stored.
    async fn synced(&self, pods: &[Pod]) -> (Controller, Vec<Pod>) {
        let stored: Vec<Pod> = pods.iter().map(|p| self.start(p)).collect();
        let mut c = self.controller();
        sync_all(&mut c, stored.clone()).await;
        (c, stored)
    }

    /// `web` synced with decision 5's `threshold`, then resized to (`cpu`, `mem`) while the
    /// runtime holds its updates: the resize's watch event is handled, its pass not yet run.
    async fn held_resize(&self, threshold: Duration, cpu: &str, mem: &str) -> (Controller, usize) {
        let (mut c, writes) = self.web(Some(threshold)).await;
        self.runtime.hold_updates();
        let resized = self.resize("web", cpu, mem);
        c.handle(pod_input(watcher::Event::Apply(resized)));
        (c, writes)
    }

    /// Settles `c` while `script` (the test's other actor: the runtime answering, the API server
    /// storing) runs beside it on a clone of this world; returns what the script returns.
    async fn settle_beside<T, F>(&self, c: &mut Controller, script: impl FnOnce(World) -> F) -> T
    where
        F: std::future::Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let script = tokio::spawn(script(self.clone()));
        c.settle().await;
        script.await.unwrap()
    }

    /// Settles `c` while the runtime holds calls: once `held` says they are all held, they are
    /// released (`release`). Whether they ever were.
    async fn settle_releasing(
        &self,
        c: &mut Controller,
        held: fn(&FakeRuntime) -> bool,
        release: fn(&FakeRuntime),
    ) -> bool {
        self.settle_beside(c, move |w| async move {
            let seen = until(|| held(&w.runtime)).await;
            release(&w.runtime);
            seen
        })
        .await
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
    c.step(node_input(watcher::Event::Apply(api_node("2", "4Gi"))))
        .await;
    c.step(pod_input(watcher::Event::Init)).await;
    for p in pods {
        c.step(pod_input(watcher::Event::InitApply(p))).await;
    }
    c.step(pod_input(watcher::Event::InitDone)).await;
}

/// The first container's `allocatedResources` and `resources.limits` in the stored pod `v`.
fn assert_allocated_and_actual(v: &serde_json::Value, cpu: &str, memory: &str) {
    let app = &v["status"]["containerStatuses"][0];
    let want = json!({"cpu": cpu, "memory": memory});
    assert_eq!(app["allocatedResources"], want, "allocatedResources");
    assert_eq!(app["resources"]["limits"], want, "resources.limits");
}

fn reasons(w: &MemoryWriter) -> Vec<String> {
    w.events().iter().map(|e| e.reason.clone()).collect()
}

#[tokio::test]
async fn pods_outside_the_pod_selector_are_never_written() {
    let w = World::new();
    let mut selected = api_pod("web", "u1", 1, "500m", "256Mi");
    selected.metadata.labels = Some([("resize".to_string(), "on".to_string())].into());
    let selected = w.start(&selected);
    let other = w.start(&api_pod("other", "u2", 1, "500m", "256Mi"));
    let mut opts = ControllerOptions::new("n1");
    opts.pod_selector = crate::core::selector::LabelSelector::parse("resize=on").unwrap();
    let mut c = w.controller_with(opts);
    sync_all(&mut c, vec![selected, other]).await;
    assert!(!w.pod("web")["status"]["containerStatuses"][0]["resources"].is_null());
    assert!(w.pod("other")["status"]["containerStatuses"][0]
        .get("resources")
        .is_none());
    assert_eq!(w.writer.status_patches().len(), 1);
}

/// An unusable spec (a quantity resizelet refuses) of a pod outside `--pod-selector`: neither
/// the `PodResizePending{Infeasible}` report nor its event is written (issue 12 item 3); the
/// same pod inside the selector is reported.
#[tokio::test]
async fn unusable_pods_outside_the_pod_selector_are_never_written() {
    for (labelled, want) in [(false, 0), (true, 1)] {
        let w = World::new();
        let mut pod = api_pod("bad", "u3", 2, "99999999999999Ei", "256Mi");
        if labelled {
            pod.metadata.labels = Some([("resize".to_string(), "on".to_string())].into());
        }
        let pod = w.writer.put_pod(&pod);
        let mut opts = ControllerOptions::new("n1");
        opts.pod_selector = crate::core::selector::LabelSelector::parse("resize=on").unwrap();
        let mut c = w.controller_with(opts);
        sync_all(&mut c, vec![pod.clone()]).await;
        c.step(pod_input(watcher::Event::Apply(pod))).await;
        let mut bumped = w.pod_object("bad");
        bumped.metadata.generation = Some(3);
        c.step(pod_input(watcher::Event::Apply(w.writer.put_pod(&bumped))))
            .await;
        let patches = w.writer.status_patches().len();
        assert_eq!(
            patches,
            want * 2,
            "labelled {labelled}: status patches {:?}",
            w.writer.status_patches()
        );
        // the second report's event is the first one's, counted again (same reason and message)
        assert_eq!(w.writer.events().len(), want, "labelled {labelled}");
    }
}

#[tokio::test]
async fn populates_resize_fields_then_enacts_a_resize_in_one_status_patch() {
    let w = World::new();
    let (mut c, writes) = w.web(None).await;
    let v = w.pod("web");
    assert_allocated_and_actual(&v, "500m", "256Mi");
    assert_eq!(v["status"]["observedGeneration"], 1);
    assert!(c.stats().ready.load(Ordering::Relaxed));

    let resized = w.resize("web", "1", "512Mi");
    c.step(pod_input(watcher::Event::Apply(resized))).await;
    let patches = w.writer.status_patches();
    assert_eq!(
        patches.len(),
        writes + 1,
        "fast path: one patch per completed resize"
    );
    let v = w.pod("web");
    assert_allocated_and_actual(&v, "1", "512Mi");
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
    c.step(pod_input(watcher::Event::Apply(echo))).await;
    assert_eq!(w.writer.status_patches().len(), writes + 1);
}

#[tokio::test]
async fn erased_fields_are_reasserted() {
    let w = World::new();
    let (mut c, _) = w.web(None).await;
    // a gate-off kubelet rewrites containerStatuses without the resize fields
    let mut v = w.pod("web");
    let app = v["status"]["containerStatuses"][0].as_object_mut().unwrap();
    app.remove("resources");
    app.remove("allocatedResources");
    let erased = w.writer.put_pod(&serde_json::from_value(v).unwrap());
    let runtime_calls = w.runtime.calls().len();
    c.step(pod_input(watcher::Event::Apply(erased))).await;
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
    assert!(
        c.stats()
            .metrics
            .render()
            .contains("resizelet_resize_fields_missing_duration_seconds_count 1"),
        "one erasure observed in the histogram"
    );
}

#[tokio::test]
async fn deferred_until_another_pod_is_deleted() {
    let w = World::new();
    let pods = api_pods(&[("a", "1", "1Gi"), ("b", "500m", "1Gi")]);
    let (mut c, pods) = w.synced(&pods).await;
    let a = pods[0].clone();
    let resized = w.resize("b", "1500m", "1Gi");
    c.step(pod_input(watcher::Event::Apply(resized))).await;
    let v = w.pod("b");
    let cond = &v["status"]["conditions"][0];
    assert_eq!(cond["type"], "PodResizePending");
    assert_eq!(cond["reason"], "Deferred");
    assert_eq!(cond["observedGeneration"], 2);
    assert!(cond["message"].as_str().unwrap().contains("cpu"), "{cond}");
    assert_eq!(reasons(&w.writer), ["ResizeDeferred"]);
    // pod a goes away: the deferred resize is retried and accepted
    c.step(pod_input(watcher::Event::Delete(a))).await;
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
/// for 1: both wait, b first in arrival order, c first in priority order. Returns the
/// controller and a.
async fn two_deferred_resizes(w: &World) -> (Controller, Pod) {
    let mut pods = api_pods(&[
        ("a", "1", "1Gi"),
        ("b", "500m", "1Gi"),
        ("c", "500m", "1Gi"),
    ]);
    pods[2].spec.as_mut().unwrap().priority = Some(100);
    let (mut c, pods) = w.synced(&pods).await;
    let rb = w.resize("b", "1100m", "1Gi");
    c.step(pod_input(watcher::Event::Apply(rb))).await;
    let rc = w.resize("c", "1", "1Gi");
    c.step(pod_input(watcher::Event::Apply(rc))).await;
    (c, pods[0].clone())
}

#[tokio::test]
async fn deferred_resizes_are_retried_in_priority_order() {
    let w = World::new();
    let (mut c, a) = two_deferred_resizes(&w).await;
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
    c.step(pod_input(watcher::Event::Delete(a))).await;
    assert_eq!(
        w.pod("c")["status"]["containerStatuses"][0]["allocatedResources"]["cpu"],
        "1"
    );
    assert_eq!(w.pod("b")["status"]["conditions"][0]["reason"], "Deferred");
    assert!(c
        .stats()
        .metrics
        .render()
        .contains("kubelet_pod_deferred_accepted_resizes_total{retry_trigger=\"pods_removed\"} 1"));
}

#[tokio::test]
async fn the_retry_pass_waits_for_a_queued_pod_whose_own_pass_is_running() {
    let w = World::new();
    let (mut c, a) = two_deferred_resizes(&w).await;
    // c (first in the queue) gets a pass of its own, held at its first CRI call …
    w.runtime.hold_lists_for("uc");
    c.handle(pod_input(watcher::Event::Apply(w.pod_object("c"))));
    c.dispatch();
    assert!(
        c.sched.is_running(&"uc".to_string()),
        "c has a pass of its own"
    );
    assert_eq!(c.queue.uids(), ["uc", "ub"]);
    // … when a leaves and asks for a retry pass. A retry pass started now would run a second
    // pass of c beside its own (or, skipping c, admit b into the freed cpu ahead of it): it
    // waits until c's pass has ended
    c.handle(pod_input(watcher::Event::Delete(a)));
    c.dispatch();
    assert!(c.retry_pass.is_some(), "pods removed asks for a retry pass");
    assert!(
        !c.retry_pass_running,
        "the retry pass started while c's own pass was in flight"
    );
    let held = |r: &FakeRuntime| r.held_lists() == 1;
    let reached = w
        .settle_releasing(&mut c, held, FakeRuntime::release_lists)
        .await;
    assert!(reached, "c's pass never reached the runtime");
    assert_eq!(
        w.pod("c")["status"]["containerStatuses"][0]["allocatedResources"]["cpu"],
        "1"
    );
    assert_eq!(w.pod("b")["status"]["conditions"][0]["reason"], "Deferred");
}

#[tokio::test]
async fn conflicts_are_re_read_and_retried() {
    let w = World::new();
    w.writer
        .fail_next(WriteError::Conflict { what: "pod".into() });
    let (c, _) = w.web(None).await;
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
    let pods = api_pods(&[("a", "500m", "256Mi"), ("b", "500m", "256Mi")]);
    let (mut c, _) = w.synced(&pods).await;
    w.runtime.hold_updates();
    let (ra, rb) = (
        w.resize("a", "700m", "256Mi"),
        w.resize("b", "700m", "256Mi"),
    );
    c.handle(pod_input(watcher::Event::Apply(ra)));
    c.handle(pod_input(watcher::Event::Apply(rb)));
    // both pods' CRI updates are in flight at once (serialised passes would show one)
    let both = |r: &FakeRuntime| r.held_updates() == 2;
    let overlapped = w
        .settle_releasing(&mut c, both, FakeRuntime::release_updates)
        .await;
    assert!(overlapped, "the two pods' updates never overlapped");
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
    let (mut c, writes) = w.held_resize(Duration::from_millis(5), "1", "256Mi").await;
    let during = w
        .settle_beside(&mut c, move |w| async move {
            let seen = until(|| w.writer.status_patches().len() > writes).await;
            let pod = w.pod("web");
            w.runtime.release_updates();
            assert!(seen, "no status write while the enactment was held");
            pod
        })
        .await;
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
    assert_eq!(events[0].reason, "ResizeletStandingDown");
    assert_eq!(
        events[0].regarding,
        crate::k8s::Regarding::Node { name: "n1".into() }
    );
    assert!(c
        .stats()
        .metrics
        .render()
        .contains("resizelet_stand_down 1"));
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
    c.step(node_input(watcher::Event::Apply(node))).await;
    c.step(pod_input(watcher::Event::Init)).await;
    c.step(pod_input(watcher::Event::InitApply(pod))).await;
    c.step(pod_input(watcher::Event::InitDone)).await;
    assert!(w.writer.status_patches().is_empty());
    let why = c.stats().stand_down.lock().unwrap().clone().unwrap();
    assert!(why.contains("v1.35.0"), "{why}");
}

mod model;
mod quick;
