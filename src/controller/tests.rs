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
use crate::cgroup::memory::MemoryCgroupFs;
use crate::checkpoint::MemoryCheckpointStore;
use crate::core::node::{CgroupVersion, NodeConfig};
use crate::cri::fake::FakeRuntime;
use crate::k8s::convert::pod_view;
use crate::k8s::memory::MemoryWriter;
use crate::k8s::{Input, WriteError};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::runtime::watcher;
use serde_json::json;
use std::sync::atomic::Ordering;

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
        crate::engine::testing::start_pod(&self.runtime, &self.cgroups, &view.spec, &self.config);
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
    assert!(c
        .stats()
        .metrics
        .render()
        .contains("kubelet_pod_deferred_accepted_resizes_total{retry_trigger=\"pods_removed\"} 1"));
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
    assert!(
        c.sched.is_running(&"uc".to_string()),
        "c has a pass of its own"
    );
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

/// Issue 11 item 2: resizes of one pod in quick succession while the first one's enactment is
/// slow enough for the intermediate `PodResizeInProgress` write. `later` resizes are stored
/// (and their watch events delivered) before the in-progress write; `after` ones once it was
/// written. Once idle, allocated, actuated and the status must show the last resize.
async fn quick_resizes(later: &[&str], after: &[&str]) {
    let w = World::new();
    let pod = w.start(&api_pod("web", "u1", 1, "500m", "256Mi"));
    let mut c = w.controller();
    Arc::get_mut(&mut c.shared)
        .unwrap()
        .opts
        .in_progress_threshold = Duration::from_millis(1);
    sync_all(&mut c, vec![pod]).await;
    let writes = w.writer.status_patches().len();
    w.runtime.hold_updates();
    let first = w.resize("web", "500m", "300Mi");
    c.handle(Input::Pod(watcher::Event::Apply(first)));
    c.dispatch();
    for mem in later {
        let next = w.resize("web", "500m", mem);
        c.handle(Input::Pod(watcher::Event::Apply(next)));
    }
    let (writer, runtime) = (w.writer.clone(), w.runtime.clone());
    let want = after.last().or(later.last()).unwrap().to_string();
    let after: Vec<String> = after.iter().map(|m| m.to_string()).collect();
    let w2 = World {
        runtime: w.runtime.clone(),
        cgroups: w.cgroups.clone(),
        writer: w.writer.clone(),
        config: w.config.clone(),
    };
    let release = tokio::spawn(async move {
        let seen = until(|| {
            writer.status_patches().iter().skip(writes).any(|(_, p)| {
                p["status"]["conditions"]
                    .to_string()
                    .contains("PodResizeInProgress")
            })
        })
        .await;
        let stored: Vec<Pod> = after.iter().map(|m| w2.resize("web", "500m", m)).collect();
        runtime.release_updates();
        (seen, stored)
    });
    c.settle().await;
    let (seen, stored) = release.await.unwrap();
    assert!(
        seen,
        "no PodResizeInProgress write while the enactment was held"
    );
    for pod in stored {
        c.step(Input::Pod(watcher::Event::Apply(pod))).await;
    }
    // the watch delivers the echoes of our writes
    for _ in 0..3 {
        let echo = w.pod_object("web");
        c.step(Input::Pod(watcher::Event::Apply(echo))).await;
    }
    let v = w.pod("web");
    let generation = v["metadata"]["generation"].as_i64().unwrap();
    let app = &v["status"]["containerStatuses"][0];
    assert_eq!(
        (
            app["allocatedResources"]["memory"].as_str(),
            app["resources"]["limits"]["memory"].as_str(),
            v["status"]["observedGeneration"].as_i64(),
        ),
        (Some(want.as_str()), Some(want.as_str()), Some(generation)),
        "allocated, actual and observedGeneration after the last resize: {}",
        v["status"]
    );
    assert!(
        v["status"]["conditions"]
            .as_array()
            .is_none_or(|c| c.is_empty()),
        "stale conditions: {}",
        v["status"]
    );
    assert_eq!(
        w.runtime.resources("u1-app").unwrap().memory_limit_in_bytes,
        crate::core::quantity::Quantity::parse(&want)
            .unwrap()
            .value(),
        "actuated memory limit"
    );
}

#[tokio::test]
async fn two_quick_resizes_are_both_enacted() {
    quick_resizes(&["400Mi"], &[]).await;
}

#[tokio::test]
async fn three_quick_resizes_are_all_enacted() {
    quick_resizes(&["400Mi", "450Mi"], &[]).await;
}

#[tokio::test]
async fn resizes_before_and_after_the_in_progress_write_are_enacted() {
    quick_resizes(&["400Mi"], &["450Mi"]).await;
}

#[tokio::test]
async fn a_resize_after_the_in_progress_write_is_enacted() {
    quick_resizes(&[], &["400Mi"]).await;
}

/// A resize stored while a pass of the previous one runs makes its status write conflict;
/// the re-read pod carries the newer generation, which this pass did not admit: no write may
/// claim it with the older allocation. Once idle, the newer resize is enacted.
#[tokio::test]
async fn a_conflict_does_not_claim_the_newer_generation() {
    let w = World::new();
    let pod = w.start(&api_pod("web", "u1", 1, "500m", "256Mi"));
    let mut c = w.controller();
    sync_all(&mut c, vec![pod]).await;
    let writes = w.writer.status_patches().len();
    let first = w.resize("web", "500m", "300Mi");
    c.handle(Input::Pod(watcher::Event::Apply(first)));
    c.dispatch();
    // stored (not yet seen through the watch) before the pass writes
    let second = w.resize("web", "500m", "400Mi");
    c.settle().await;
    c.step(Input::Pod(watcher::Event::Apply(second))).await;
    let claims: Vec<(Option<i64>, Option<String>)> = w.writer.status_patches()[writes..]
        .iter()
        .map(|(_, p)| {
            (
                p["status"]["observedGeneration"].as_i64(),
                p["status"]["containerStatuses"][0]["allocatedResources"]["memory"]
                    .as_str()
                    .map(String::from),
            )
        })
        .collect();
    assert!(
        !claims.contains(&(Some(3), Some("300Mi".into()))),
        "generation 3 claimed with generation 2's allocation: {claims:?}"
    );
    let v = w.pod("web");
    assert_eq!(
        (
            v["status"]["containerStatuses"][0]["allocatedResources"]["memory"].as_str(),
            v["status"]["observedGeneration"].as_i64()
        ),
        (Some("400Mi"), Some(3)),
        "{}",
        v["status"]
    );
}

/// Issue 11 item 3: a completed resize costs one status write and nothing waits for its
/// events. With event creates held, the pod's pass still ends: the next resize of the same pod
/// is enacted and written while the first one's events wait.
#[tokio::test]
async fn events_do_not_hold_up_the_pods_next_pass() {
    let w = World::new();
    let pod = w.start(&api_pod("web", "u1", 1, "500m", "256Mi"));
    let mut c = w.controller();
    sync_all(&mut c, vec![pod]).await;
    let writes = w.writer.status_patches().len();
    w.writer.hold_events();
    let first = w.resize("web", "500m", "300Mi");
    c.handle(Input::Pod(watcher::Event::Apply(first)));
    // the API server: once the first resize is written, a second one (its watch event on `rx`)
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let api = World {
        runtime: w.runtime.clone(),
        cgroups: w.cgroups.clone(),
        writer: w.writer.clone(),
        config: w.config.clone(),
    };
    let script = tokio::spawn(async move {
        let writer = api.writer.clone();
        let first_written = until(|| writer.status_patches().len() == writes + 1).await;
        let _ = tx.send(api.resize("web", "500m", "400Mi"));
        let second_written = until(|| writer.status_patches().len() == writes + 2).await;
        let held = writer.held_events();
        writer.release_events();
        (first_written, second_written, held)
    });
    loop {
        c.dispatch();
        tokio::select! {
            Some(pod) = rx.recv() => c.handle(Input::Pod(watcher::Event::Apply(pod))),
            Some(done) = c.tasks.next(), if !c.tasks.is_empty() => c.apply(done),
            else => break,
        }
    }
    let (first_written, second_written, held) = script.await.unwrap();
    c.settle().await;
    assert!(first_written, "the first resize was never written");
    assert!(
        second_written,
        "the second resize waited for the first one's events"
    );
    assert!(held > 0, "no event create was held");
    assert_eq!(
        w.pod("web")["status"]["containerStatuses"][0]["allocatedResources"]["memory"],
        "400Mi"
    );
    assert_eq!(
        w.writer.status_patches().len(),
        writes + 2,
        "one write per resize"
    );
    assert_eq!(
        reasons(&w.writer),
        [
            "ResizeStarted",
            "ResizeCompleted",
            "ResizeStarted",
            "ResizeCompleted"
        ]
    );
}

/// Decision 5's intermediate write emits `ResizeStarted`; the final status write does not wait
/// for it.
#[tokio::test]
async fn the_final_write_does_not_wait_for_the_in_progress_events() {
    let w = World::new();
    let pod = w.start(&api_pod("web", "u1", 1, "500m", "256Mi"));
    let mut c = w.controller();
    Arc::get_mut(&mut c.shared)
        .unwrap()
        .opts
        .in_progress_threshold = Duration::from_millis(1);
    sync_all(&mut c, vec![pod]).await;
    let writes = w.writer.status_patches().len();
    w.runtime.hold_updates();
    w.writer.hold_events();
    let resized = w.resize("web", "1", "256Mi");
    c.handle(Input::Pod(watcher::Event::Apply(resized)));
    let (writer, runtime) = (w.writer.clone(), w.runtime.clone());
    let script = tokio::spawn(async move {
        let in_progress = until(|| writer.status_patches().len() == writes + 1).await;
        runtime.release_updates();
        let done = until(|| writer.status_patches().len() == writes + 2).await;
        writer.release_events();
        (in_progress, done)
    });
    c.settle().await;
    let (in_progress, done) = script.await.unwrap();
    assert!(in_progress, "no in-progress write");
    assert!(done, "the final write waited for the ResizeStarted event");
    assert_eq!(reasons(&w.writer), ["ResizeStarted", "ResizeCompleted"]);
}

/// The controller's per-pod scheduling against a model of the API server and the watch:
/// random interleavings of resizes, watch deliveries (late, in order), pass progress, slow
/// enactments with their intermediate `PodResizeInProgress` write, other writers' status
/// updates (which make our writes conflict) and erasures of the resize fields. Once the agent
/// is idle and the watch delivered everything, every pod's allocated and actuated resources
/// equal its latest desired spec and its status says so.
mod model {
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    const PODS: [&str; 2] = ["a", "b"];
    const MEMORY: [&str; 4] = ["200Mi", "256Mi", "300Mi", "400Mi"];

    #[derive(Debug, Clone)]
    enum Op {
        /// A `/resize` of pod `.0` to memory `.1`, stored now, its watch event queued.
        Resize(usize, usize),
        /// The watch delivers the oldest queued event.
        Deliver,
        /// The watch delivers the echo of the pod as stored now (our own writes).
        Echo(usize),
        /// Passes make progress (those not held).
        Poll,
        HoldUpdates,
        ReleaseUpdates,
        /// Another writer updates the pod's status (our writes in flight then conflict).
        OtherWrite(usize),
        /// A gate-off kubelet rewrites containerStatuses without the resize fields.
        Erase(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (0..PODS.len(), 0..MEMORY.len()).prop_map(|(p, m)| Op::Resize(p, m)),
            3 => Just(Op::Deliver),
            1 => (0..PODS.len()).prop_map(Op::Echo),
            4 => Just(Op::Poll),
            1 => Just(Op::HoldUpdates),
            1 => Just(Op::ReleaseUpdates),
            1 => (0..PODS.len()).prop_map(Op::OtherWrite),
            1 => (0..PODS.len()).prop_map(Op::Erase),
        ]
    }

    /// Lets passes run until they end or block (time is paused: a blocked runtime advances
    /// the clock, so decision 5's threshold fires while an update is held).
    async fn poll(c: &mut Controller) {
        c.dispatch();
        if let Ok(Some(done)) = tokio::time::timeout(Duration::from_millis(2), c.tasks.next()).await
        {
            c.apply(done);
        }
    }

    async fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
        let w = World::new();
        let pods: Vec<Pod> = PODS
            .iter()
            .enumerate()
            .map(|(i, name)| w.start(&api_pod(name, &format!("u{i}"), 1, "500m", "256Mi")))
            .collect();
        for i in 0..PODS.len() {
            // well under every size, so a decrease is never refused (§7.3)
            w.cgroups.set_pod_usage(&format!("u{i}"), 64 << 20);
            w.cgroups
                .set_container_usage(&format!("u{i}-app"), 64 << 20);
        }
        let mut c = w.controller();
        Arc::get_mut(&mut c.shared)
            .unwrap()
            .opts
            .in_progress_threshold = Duration::from_millis(1);
        sync_all(&mut c, pods).await;
        let mut watch: VecDeque<Pod> = VecDeque::new();
        for op in ops {
            match op {
                Op::Resize(p, m) => watch.push_back(w.resize(PODS[p], "500m", MEMORY[m])),
                Op::Deliver => {
                    if let Some(pod) = watch.pop_front() {
                        c.handle(Input::Pod(watcher::Event::Apply(pod)));
                    }
                }
                Op::Echo(p) => watch.push_back(w.pod_object(PODS[p])),
                Op::Poll => poll(&mut c).await,
                Op::HoldUpdates => w.runtime.hold_updates(),
                Op::ReleaseUpdates => w.runtime.release_updates(),
                Op::OtherWrite(p) => {
                    let mut v = w.pod(PODS[p]);
                    let ready = v["status"]["conditions"]
                        .as_array()
                        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
                        .is_some_and(|c| c["status"] == "True");
                    let mut conditions: Vec<serde_json::Value> = v["status"]["conditions"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default()
                        .into_iter()
                        .filter(|c| c["type"] != "Ready")
                        .collect();
                    conditions.push(json!({"type": "Ready",
                        "status": if ready { "False" } else { "True" }}));
                    v["status"]["conditions"] = json!(conditions);
                    watch.push_back(w.writer.put_pod(&serde_json::from_value(v).unwrap()));
                }
                Op::Erase(p) => {
                    let mut v = w.pod(PODS[p]);
                    let app = v["status"]["containerStatuses"][0].as_object_mut().unwrap();
                    app.remove("resources");
                    app.remove("allocatedResources");
                    watch.push_back(w.writer.put_pod(&serde_json::from_value(v).unwrap()));
                }
            }
        }
        // quiesce: the runtime answers, the watch delivers everything and then the echoes of
        // our own writes, until a round changes nothing
        w.runtime.release_updates();
        for round in 0.. {
            prop_assert!(round < 20, "the agent never became idle");
            let writes = w.writer.status_patches().len();
            for pod in watch.drain(..) {
                c.handle(Input::Pod(watcher::Event::Apply(pod)));
            }
            c.settle().await;
            for name in PODS {
                c.handle(Input::Pod(watcher::Event::Apply(w.pod_object(name))));
            }
            c.settle().await;
            if w.writer.status_patches().len() == writes {
                break;
            }
        }
        for (i, name) in PODS.iter().enumerate() {
            let v = w.pod(name);
            let want = v["spec"]["containers"][0]["resources"]["limits"]["memory"]
                .as_str()
                .unwrap()
                .to_string();
            let app = &v["status"]["containerStatuses"][0];
            prop_assert_eq!(
                (
                    app["allocatedResources"]["memory"].as_str(),
                    app["resources"]["limits"]["memory"].as_str(),
                    v["status"]["observedGeneration"].as_i64(),
                ),
                (
                    Some(want.as_str()),
                    Some(want.as_str()),
                    v["metadata"]["generation"].as_i64()
                ),
                "pod {} status: {}",
                name,
                v["status"]
            );
            let resize_conditions: Vec<&serde_json::Value> = v["status"]["conditions"]
                .as_array()
                .map(|cs| {
                    cs.iter()
                        .filter(|c| {
                            c["type"]
                                .as_str()
                                .is_some_and(|t| t.starts_with("PodResize"))
                        })
                        .collect()
                })
                .unwrap_or_default();
            prop_assert!(
                resize_conditions.is_empty(),
                "pod {name}: {resize_conditions:?}"
            );
            let want_bytes = crate::core::quantity::Quantity::parse(&want)
                .unwrap()
                .value();
            let uid = format!("u{i}");
            let allocated = c.engine().allocated(&uid).unwrap();
            let actuated = c.engine().actuated(&uid).unwrap();
            let mem = |s: &crate::core::state::PodResourceState| {
                s.container_resources["app"]
                    .limits
                    .get(MEMORY_KEY)
                    .map(|q| q.value())
            };
            prop_assert_eq!(mem(&allocated), Some(want_bytes), "pod {} allocated", name);
            prop_assert_eq!(mem(&actuated), Some(want_bytes), "pod {} actuated", name);
            prop_assert_eq!(
                w.runtime
                    .resources(&format!("{uid}-app"))
                    .unwrap()
                    .memory_limit_in_bytes,
                want_bytes,
                "pod {} runtime",
                name
            );
        }
        Ok(())
    }

    const MEMORY_KEY: &str = crate::core::resources::MEMORY;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
        #[test]
        fn once_idle_every_pod_shows_its_latest_resize(ops in proptest::collection::vec(op(), 0..40)) {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .start_paused(true)
                .build()
                .unwrap();
            rt.block_on(run(ops))?;
        }
    }
}
