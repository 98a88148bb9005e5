//! The double over real HTTP, driven by kube-rs 5 as the agent drives a real
//! API server.

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::events::v1::Event as K8sEvent;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::watcher;
use kube::Client;
use resizelet_double::{ApiServer, Fault, Options, PatchKind, ServerVersion};
use serde_json::{json, Value};
use std::time::Duration;
use tokio::time::timeout;

const T: Duration = Duration::from_secs(10);

fn client(server: &ApiServer) -> Client {
    Client::try_from(kube::Config::new(server.url().parse().unwrap())).unwrap()
}

fn pod(name: &str, node: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"nodeName": node, "containers": [{
            "name": "c", "image": "busybox",
            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}}
        }]},
        "status": {"phase": "Running", "containerStatuses": [{
            "name": "c", "ready": true, "restartCount": 0, "image": "busybox", "imageID": "",
            "state": {"running": {"startedAt": "2025-01-01T00:00:00Z"}},
            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}},
            "allocatedResources": {"cpu": "100m", "memory": "64Mi"}
        }]}
    })
}

#[tokio::test]
async fn list_with_field_selectors() {
    let server = ApiServer::start().await;
    for (n, node) in [("a", "n1"), ("b", "n2"), ("c", "n1")] {
        server.create_pod(pod(n, node)).unwrap();
    }
    let api = Api::<Pod>::all(client(&server));
    let names = |l: kube::api::ObjectList<Pod>| {
        l.items
            .into_iter()
            .map(|p| p.metadata.name.unwrap())
            .collect::<Vec<_>>()
    };
    let l = api
        .list(&ListParams::default().fields("spec.nodeName=n1"))
        .await
        .unwrap();
    assert_eq!(
        l.metadata.resource_version,
        Some(server.resource_version().to_string())
    );
    assert_eq!(names(l), ["a", "c"]);
    let l = api
        .list(&ListParams::default().fields("spec.nodeName=n1,metadata.name!=a"))
        .await
        .unwrap();
    assert_eq!(names(l), ["c"]);
    let ns_api = Api::<Pod>::namespaced(client(&server), "default");
    let p = ns_api.get("b").await.unwrap();
    assert_eq!(p.metadata.generation, Some(1));
    assert!(p.metadata.uid.is_some());
    assert_eq!(p.status.unwrap().qos_class.as_deref(), Some("Burstable"));
    let e = ns_api.get("nope").await.unwrap_err();
    assert!(matches!(e, kube::Error::Api(s) if s.code == 404));
    assert_eq!(server.stats().lists, 2);
}

#[tokio::test]
async fn kubeconfig_is_accepted() {
    let server = ApiServer::start().await;
    server.create_pod(pod("a", "n1")).unwrap();
    let kc = kube::config::Kubeconfig::from_yaml(&server.kubeconfig_yaml()).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    let client = Client::try_from(config).unwrap();
    let p = Api::<Pod>::default_namespaced(client)
        .get("a")
        .await
        .unwrap();
    assert_eq!(p.metadata.name.as_deref(), Some("a"));
}

async fn next_event(
    s: &mut (impl futures::Stream<Item = Result<watcher::Event<Pod>, watcher::Error>> + Unpin),
) -> watcher::Event<Pod> {
    loop {
        match timeout(T, s.next()).await.expect("watcher event in time") {
            Some(Ok(e)) => return e,
            Some(Err(_)) => continue,
            None => panic!("watcher ended"),
        }
    }
}

#[tokio::test]
async fn watcher_sees_init_then_apply_and_relists_after_gone() {
    let server = ApiServer::start().await;
    server.create_pod(pod("a", "n1")).unwrap();
    server.create_pod(pod("b", "n2")).unwrap();
    let api = Api::<Pod>::all(client(&server));
    let mut w = watcher(api, watcher::Config::default().fields("spec.nodeName=n1")).boxed();
    assert!(matches!(next_event(&mut w).await, watcher::Event::Init));
    match next_event(&mut w).await {
        watcher::Event::InitApply(p) => assert_eq!(p.metadata.name.as_deref(), Some("a")),
        e => panic!("unexpected {e:?}"),
    }
    assert!(matches!(next_event(&mut w).await, watcher::Event::InitDone));

    // the watch opens when the stream is next polled, from the list's
    // resourceVersion; history replay covers writes made before that
    let patched = server
        .patch_pod_status(
            "default",
            "a",
            PatchKind::Strategic,
            &json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
        )
        .unwrap();
    // a pod on another node is not seen
    server
        .patch_pod_status(
            "default",
            "b",
            PatchKind::Merge,
            &json!({"status": {"phase": "Failed"}}),
        )
        .unwrap();
    match next_event(&mut w).await {
        watcher::Event::Apply(p) => {
            assert_eq!(p.metadata.name.as_deref(), Some("a"));
            assert_eq!(
                p.metadata.resource_version,
                patched["metadata"]["resourceVersion"]
                    .as_str()
                    .map(String::from)
            );
        }
        e => panic!("unexpected {e:?}"),
    }

    server.force_gone();
    assert!(matches!(next_event(&mut w).await, watcher::Event::Init));
    assert!(matches!(
        next_event(&mut w).await,
        watcher::Event::InitApply(_)
    ));
    assert!(matches!(next_event(&mut w).await, watcher::Event::InitDone));
    server.delete_pod("default", "a").unwrap();
    loop {
        match next_event(&mut w).await {
            watcher::Event::Delete(p) => {
                assert_eq!(p.metadata.name.as_deref(), Some("a"));
                break;
            }
            watcher::Event::Apply(_) => continue,
            e => panic!("unexpected {e:?}"),
        }
    }
}

#[tokio::test]
async fn raw_watch_replays_transitions_bookmarks_and_gone() {
    let server = ApiServer::start().await;
    server.set_bookmark_interval(Duration::from_millis(50));
    let api = Api::<Pod>::namespaced(client(&server), "default");
    let start = server.resource_version().to_string();
    server.create_pod(pod("a", "n1")).unwrap();
    server
        .patch_pod_status(
            "default",
            "a",
            PatchKind::Merge,
            &json!({"status": {"phase": "Succeeded"}}),
        )
        .unwrap();
    // history replay with a selector: ADDED (matching), then DELETED when it stops matching
    let wp = WatchParams::default()
        .fields("status.phase=Running")
        .timeout(5);
    let mut s = api.watch(&wp, &start).await.unwrap().boxed();
    let ev = timeout(T, s.try_next()).await.unwrap().unwrap().unwrap();
    assert!(matches!(ev, WatchEvent::Added(_)), "{ev:?}");
    let ev = timeout(T, s.try_next()).await.unwrap().unwrap().unwrap();
    assert!(matches!(ev, WatchEvent::Deleted(_)), "{ev:?}");
    // then bookmarks
    let ev = timeout(T, s.try_next()).await.unwrap().unwrap().unwrap();
    match ev {
        WatchEvent::Bookmark(b) => assert_eq!(
            b.metadata.resource_version,
            server.resource_version().to_string()
        ),
        e => panic!("unexpected {e:?}"),
    }
    drop(s);

    server.force_gone();
    let mut s = api
        .watch(&WatchParams::default(), &start)
        .await
        .unwrap()
        .boxed();
    match timeout(T, s.try_next()).await.unwrap().unwrap().unwrap() {
        WatchEvent::Error(e) => {
            assert_eq!(e.code, 410);
            assert_eq!(e.reason, "Expired");
            assert!(
                e.message.starts_with("too old resource version"),
                "{}",
                e.message
            );
        }
        e => panic!("unexpected {e:?}"),
    }
    assert!(timeout(T, s.try_next()).await.unwrap().unwrap().is_none());
}

#[tokio::test]
async fn status_patch_conflicts_and_no_ops() {
    let server = ApiServer::start().await;
    let created = server.create_pod(pod("a", "n1")).unwrap();
    let rv = created["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let api = Api::<Pod>::namespaced(client(&server), "default");
    let pp = PatchParams::default();

    let ok = api
        .patch_status(
            "a",
            &pp,
            &Patch::Strategic(json!({"metadata": {"resourceVersion": rv}, "status": {"conditions": [{"type": "PodResizePending", "status": "True", "reason": "Deferred"}]}})),
        )
        .await
        .unwrap();
    let rv2 = ok.metadata.resource_version.clone().unwrap();
    assert_ne!(rv, rv2);

    // stale precondition → 409
    let e = api
        .patch_status(
            "a",
            &pp,
            &Patch::Strategic(
                json!({"metadata": {"resourceVersion": rv}, "status": {"phase": "Failed"}}),
            ),
        )
        .await
        .unwrap_err();
    match e {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 409);
            assert_eq!(s.reason, "Conflict");
            assert!(s.message.contains("the object has been modified"));
        }
        e => panic!("unexpected {e:?}"),
    }

    // same content again: no new resourceVersion
    let again = api
        .patch_status(
            "a",
            &pp,
            &Patch::Strategic(json!({"status": {"conditions": [{"type": "PodResizePending", "status": "True", "reason": "Deferred"}]}})),
        )
        .await
        .unwrap();
    assert_eq!(
        again.metadata.resource_version.as_deref(),
        Some(rv2.as_str())
    );

    // $patch: delete removes the condition; spec changes are ignored
    let del = api
        .patch_status(
            "a",
            &pp,
            &Patch::Strategic(json!({"spec": {"nodeName": "elsewhere"}, "status": {"conditions": [{"type": "PodResizePending", "$patch": "delete"}]}})),
        )
        .await
        .unwrap();
    assert!(del
        .status
        .unwrap()
        .conditions
        .unwrap_or_default()
        .is_empty());
    assert_eq!(del.spec.unwrap().node_name.as_deref(), Some("n1"));

    // JSON patch
    let j = api
        .patch_status(
            "a",
            &pp,
            &Patch::<()>::Json(
                serde_json::from_value(json!([
                    {"op": "remove", "path": "/status/containerStatuses/0/allocatedResources"}
                ]))
                .unwrap(),
            ),
        )
        .await
        .unwrap();
    assert!(j.status.unwrap().container_statuses.unwrap()[0]
        .allocated_resources
        .is_none());

    // injected faults
    server.fail_next(Fault::Conflict);
    let e = api
        .patch_status(
            "a",
            &pp,
            &Patch::Merge(json!({"status": {"phase": "Running"}})),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, kube::Error::Api(s) if s.code == 409));
    // kube-rs retries 503 by itself; a 500 surfaces
    server.fail_next(Fault::Status(503));
    api.get("a").await.unwrap();
    server.fail_next(Fault::Status(500));
    let e = api.get("a").await.unwrap_err();
    assert!(matches!(e, kube::Error::Api(s) if s.code == 500));
    api.get("a").await.unwrap();

    let st = server.stats();
    assert_eq!(st.pod_status_conflicts, 2);
    assert_eq!(st.pod_status_patches, 4);
    assert_eq!(st.faults_fired, 3);
}

#[tokio::test]
async fn resize_subresource_validation_and_generation() {
    let server = ApiServer::start().await;
    server.create_pod(pod("a", "n1")).unwrap();
    let api = Api::<Pod>::namespaced(client(&server), "default");
    let pp = PatchParams::default();
    let resize = |res: Value| {
        Patch::Strategic(json!({"spec": {"containers": [{"name": "c", "resources": res}]}}))
    };

    let ok = api
        .patch_subresource(
            "resize",
            "a",
            &pp,
            &resize(json!({"requests": {"cpu": "200m"}})),
        )
        .await
        .unwrap();
    assert_eq!(ok.metadata.generation, Some(2));
    let res = ok.spec.unwrap().containers[0].resources.clone().unwrap();
    assert_eq!(res.requests.unwrap()["cpu"].0, "200m");

    // the same again: no generation bump
    let same = api
        .patch_subresource(
            "resize",
            "a",
            &pp,
            &resize(json!({"requests": {"cpu": "200m"}})),
        )
        .await
        .unwrap();
    assert_eq!(same.metadata.generation, Some(2));

    let invalid = |e: kube::Error, want: &str| match e {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 422, "{}", s.message);
            assert_eq!(s.reason, "Invalid");
            assert!(s.message.contains(want), "{}", s.message);
        }
        e => panic!("unexpected {e:?}"),
    };
    // QoS change Burstable → Guaranteed
    let e = api
        .patch_subresource(
            "resize",
            "a",
            &pp,
            &resize(json!({"requests": {"cpu": "1", "memory": "128Mi"}, "limits": {"cpu": "1", "memory": "128Mi"}})),
        )
        .await
        .unwrap_err();
    invalid(e, "Pod QOS Class may not change as a result of resizing");
    // other spec fields
    let e = api
        .patch_subresource(
            "resize",
            "a",
            &pp,
            &Patch::Strategic(json!({"spec": {"containers": [{"name": "c", "image": "other"}]}})),
        )
        .await
        .unwrap_err();
    invalid(e, "spec");
    // removing a request
    let e = api
        .patch_subresource(
            "resize",
            "a",
            &pp,
            &resize(json!({"requests": {"cpu": null}})),
        )
        .await
        .unwrap_err();
    invalid(e, "may not be removed");
    // non-cpu/memory resource
    let e = api
        .patch_subresource(
            "resize",
            "a",
            &pp,
            &resize(json!({"requests": {"ephemeral-storage": "1Gi"}})),
        )
        .await
        .unwrap_err();
    invalid(e, "only cpu and memory resources are mutable");

    // node without support: running container lacks status resources
    let _kubelet = server.start_gate_off_kubelet("n1", Duration::from_millis(20));
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let p = server.get_pod("default", "a").unwrap();
        if p["status"]["containerStatuses"][0]
            .get("resources")
            .is_none()
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "kubelet actor did not erase resources"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let e = api
        .patch_subresource(
            "resize",
            "a",
            &pp,
            &resize(json!({"requests": {"cpu": "300m"}})),
        )
        .await
        .unwrap_err();
    invalid(e, "Pod running on node without support for resize");
    let st = server.stats();
    assert_eq!(st.resize_patches, 2);
    assert_eq!(st.resize_rejections, 5);
}

#[tokio::test]
async fn gate_off_kubelet_erases_resize_fields_within_a_period() {
    let server = ApiServer::start().await;
    server.create_pod(pod("a", "n1")).unwrap();
    server.create_pod(pod("b", "n2")).unwrap();
    server
        .patch_pod_status(
            "default",
            "a",
            PatchKind::Strategic,
            &json!({"status": {"resize": "InProgress", "conditions": [
                {"type": "PodResizeInProgress", "status": "True"},
                {"type": "Ready", "status": "True"}
            ]}}),
        )
        .unwrap();
    let mut changes = server.watch_changes();
    let period = Duration::from_millis(200);
    let kubelet = server.start_gate_off_kubelet("n1", period);
    let ev = timeout(period * 2, changes.recv()).await.unwrap().unwrap();
    assert_eq!(ev.object["metadata"]["name"], "a");
    let st = &ev.object["status"];
    assert!(st["containerStatuses"][0].get("resources").is_none());
    assert!(st["containerStatuses"][0]
        .get("allocatedResources")
        .is_none());
    assert!(st.get("resize").is_none());
    // v1.32 does not own the resize conditions: mergePodStatus keeps them
    assert_eq!(
        st["conditions"],
        json!([
            {"type": "PodResizeInProgress", "status": "True"},
            {"type": "Ready", "status": "True"}
        ])
    );
    // pods on other nodes untouched, and no further writes when nothing changes
    assert!(
        server.get_pod("default", "b").unwrap()["status"]["containerStatuses"][0]
            .get("resources")
            .is_some()
    );
    assert!(timeout(period * 2, changes.recv()).await.is_err());
    assert_eq!(server.stats().kubelet_actor_writes, 1);
    kubelet.stop();
}

#[tokio::test]
async fn nodes_and_events() {
    let server = ApiServer::start().await;
    let c = client(&server);
    let nodes = Api::<Node>::all(c.clone());
    nodes
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "n1"}})).unwrap(),
        )
        .await
        .unwrap();
    server
        .create_node(json!({"metadata": {"name": "n2"}}))
        .unwrap();
    let l = nodes
        .list(&ListParams::default().fields("metadata.name=n1"))
        .await
        .unwrap();
    assert_eq!(l.items.len(), 1);
    nodes
        .patch_status(
            "n1",
            &PatchParams::default(),
            &Patch::Strategic(
                json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(
        server.get_node("n1").unwrap()["status"]["conditions"][0]["type"],
        "Ready"
    );

    // events through the kube-rs recorder: create, then merge patch of the series
    let pod_obj = server.create_pod(pod("a", "n1")).unwrap();
    let p: Pod = serde_json::from_value(pod_obj).unwrap();
    let recorder = kube::runtime::events::Recorder::new(
        c.clone(),
        kube::runtime::events::Reporter {
            controller: "resizelet".into(),
            instance: Some("n1".into()),
        },
    );
    let ev = kube::runtime::events::Event {
        type_: kube::runtime::events::EventType::Normal,
        reason: "Resized".into(),
        note: Some("cpu 100m -> 200m".into()),
        action: "Resize".into(),
        secondary: None,
    };
    let reference = kube::Resource::object_ref(&p, &());
    recorder.publish(&ev, &reference).await.unwrap();
    recorder.publish(&ev, &reference).await.unwrap();
    let events = server.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["series"]["count"], 2);
    assert_eq!(events[0]["reason"], "Resized");
    assert_eq!(server.stats().event_writes, 2);

    // direct create with generateName, list through the typed API
    let api = Api::<K8sEvent>::namespaced(c, "default");
    let made = api
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"generateName": "x-"},
                "eventTime": "2025-01-01T00:00:00.000000Z", "type": "Normal",
                "reason": "R", "action": "A", "reportingController": "c", "reportingInstance": "i"
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    assert!(made.metadata.name.unwrap().starts_with("x-"));
    // refused like the real server: a prefix ending in '.', no type; 422 with causes, counted
    let before = server.stats().refused_writes;
    let err = api
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"generateName": "x."},
                "eventTime": "2025-01-01T00:00:00.000000Z",
                "reason": "R", "action": "A", "reportingController": "c", "reportingInstance": "i"
            }))
            .unwrap(),
        )
        .await
        .unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("{err:?}")
    };
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    assert!(
        status.message.contains(
            "metadata.generateName: Invalid value: \"x.\": a lowercase RFC 1123 subdomain"
        ),
        "{}",
        status.message
    );
    let fields: Vec<String> = status
        .details
        .unwrap()
        .causes
        .into_iter()
        .map(|c| c.field)
        .collect();
    assert_eq!(fields, ["metadata.generateName", "type"]);
    let after = server.stats().refused_writes;
    assert_eq!(
        after.get("anonymous").copied().unwrap_or(0),
        before.get("anonymous").copied().unwrap_or(0) + 1,
        "{after:?}"
    );
    assert_eq!(server.refusals().last().unwrap().code, 422);
    assert_eq!(
        api.list(&ListParams::default()).await.unwrap().items.len(),
        2
    );
}

#[tokio::test]
async fn pod_create_delete_and_watch_over_http() {
    let server = ApiServer::start().await;
    let api = Api::<Pod>::namespaced(client(&server), "ns1");
    let from = server.resource_version().to_string();
    let made = api
        .create(
            &PostParams::default(),
            &serde_json::from_value(pod("a", "n1")).unwrap(),
        )
        .await
        .unwrap_err();
    // body namespace "default" differs from the request's
    assert!(matches!(made, kube::Error::Api(s) if s.code == 400));
    let mut p = pod("a", "n1");
    p["metadata"]["namespace"] = "ns1".into();
    let made = api
        .create(
            &PostParams::default(),
            &serde_json::from_value(p.clone()).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(made.metadata.namespace.as_deref(), Some("ns1"));
    let dup = api
        .create(&PostParams::default(), &serde_json::from_value(p).unwrap())
        .await
        .unwrap_err();
    assert!(matches!(dup, kube::Error::Api(s) if s.code == 409 && s.reason == "AlreadyExists"));
    api.delete("a", &Default::default()).await.unwrap();
    assert!(server.get_pod("ns1", "a").is_none());

    let wp = WatchParams::default().timeout(1);
    let events: Vec<_> = timeout(
        T,
        api.watch(&wp, &from).await.unwrap().try_collect::<Vec<_>>(),
    )
    .await
    .expect("stream ends after timeoutSeconds")
    .unwrap();
    assert!(matches!(events[0], WatchEvent::Added(_)));
    match &events[1] {
        WatchEvent::Deleted(p) => {
            assert_eq!(
                p.metadata.resource_version,
                Some(server.resource_version().to_string())
            )
        }
        e => panic!("unexpected {e:?}"),
    }
    // other namespaces are not seen
    let other = Api::<Pod>::namespaced(client(&server), "default");
    let events: Vec<_> = timeout(
        T,
        other
            .watch(&wp, &from)
            .await
            .unwrap()
            .try_collect::<Vec<_>>(),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(
        events.iter().all(|e| matches!(e, WatchEvent::Bookmark(_))),
        "{events:?}"
    );
}

#[tokio::test]
async fn replace_status_and_in_process_errors() {
    let server = ApiServer::start().await;
    let created = server.create_pod(pod("a", "n1")).unwrap();
    let api = Api::<Pod>::namespaced(client(&server), "default");
    let mut p: Pod = serde_json::from_value(created.clone()).unwrap();
    p.status.as_mut().unwrap().phase = Some("Succeeded".into());
    let replaced = api
        .replace_status("a", &PostParams::default(), &p)
        .await
        .unwrap();
    assert_eq!(replaced.status.unwrap().phase.as_deref(), Some("Succeeded"));
    // the same body again carries a stale resourceVersion
    let e = api
        .replace_status("a", &PostParams::default(), &p)
        .await
        .unwrap_err();
    assert!(matches!(e, kube::Error::Api(s) if s.code == 409));

    let e = server
        .patch_pod_status("default", "nope", PatchKind::Merge, &json!({}))
        .unwrap_err();
    assert_eq!((e.code, e.reason.as_str()), (404, "NotFound"));
    assert_eq!(e.message, "pods \"nope\" not found");
    let e = server.create_pod(pod("a", "n1")).unwrap_err();
    assert_eq!(e.code, 409);
    let e = server
        .patch_pod_status(
            "default",
            "a",
            PatchKind::Json,
            &json!([{"op": "test", "path": "/status/phase", "value": "Running"}]),
        )
        .unwrap_err();
    assert_eq!(e.code, 422);
    let e = server.create_pod(json!({"metadata": {}})).unwrap_err();
    assert_eq!(e.code, 422);
    let g = server
        .create_pod(json!({"metadata": {"generateName": "g-"}, "spec": {"containers": []}}))
        .unwrap();
    assert_eq!(g["metadata"]["name"].as_str().unwrap().len(), 7);
    assert_eq!(g["status"]["qosClass"], "BestEffort");
    assert_eq!(g["status"]["phase"], "Pending");
}

#[tokio::test]
async fn node_watch_and_unknown_paths() {
    let server = ApiServer::start().await;
    server
        .create_node(json!({"metadata": {"name": "n1"}}))
        .unwrap();
    let nodes = Api::<Node>::all(client(&server));
    let mut w = watcher(nodes, watcher::Config::default().fields("metadata.name=n1")).boxed();
    let mut seen_ready = false;
    let mut patched = false;
    while !seen_ready {
        let ev = timeout(T, w.next()).await.unwrap().unwrap().unwrap();
        match ev {
            watcher::Event::InitDone if !patched => {
                server
                    .patch_node_status(
                        "n1",
                        PatchKind::Merge,
                        &json!({"status": {"allocatable": {"cpu": "4"}}}),
                    )
                    .unwrap();
                patched = true;
            }
            watcher::Event::Apply(n) => {
                seen_ready = n.status.unwrap().allocatable.unwrap()["cpu"].0 == "4";
            }
            _ => {}
        }
    }
    let resp = client(&server)
        .request_text(
            hyper::Request::get("/api/v1/namespaces/default/configmaps")
                .body(Vec::new())
                .unwrap(),
        )
        .await
        .unwrap_err();
    assert!(matches!(resp, kube::Error::Api(s) if s.code == 404));
}

#[tokio::test]
async fn core_v1_and_events_k8s_io_serve_one_event_storage() {
    let server = ApiServer::start().await;
    let c = client(&server);
    let core = Api::<k8s_openapi::api::core::v1::Event>::namespaced(c.clone(), "default");
    let from = server.resource_version().to_string();
    core.create(
        &PostParams::default(),
        &serde_json::from_value(json!({
            "metadata": {"name": "e1"},
            "involvedObject": {"kind": "Pod", "name": "a", "namespace": "default"},
            "reason": "Old", "message": "core event"
        }))
        .unwrap(),
    )
    .await
    .unwrap();
    let patched = core
        .patch(
            "e1",
            &PatchParams::default(),
            &Patch::Merge(json!({"count": 3})),
        )
        .await
        .unwrap();
    assert_eq!(patched.count, Some(3));
    assert_eq!(
        core.list(&ListParams::default()).await.unwrap().items.len(),
        1
    );
    // the same event through events.k8s.io/v1, converted (involvedObject → regarding, ...)
    let new_api = Api::<K8sEvent>::all(c);
    let items = new_api.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(items.len(), 1);
    assert_eq!(
        items[0].regarding.as_ref().unwrap().name.as_deref(),
        Some("a")
    );
    assert_eq!(items[0].note.as_deref(), Some("core event"));
    assert_eq!(items[0].deprecated_count, Some(3));
    // and a field selector on the core names finds it through core v1
    let l = core
        .list(&ListParams::default().fields("involvedObject.name=a"))
        .await
        .unwrap();
    assert_eq!(l.items.len(), 1);
    assert_eq!(server.events().len(), 1);
    assert_eq!(server.stats().event_writes, 2);

    // watch of core events replays the create and the patch
    let wp = WatchParams::default().timeout(1).disable_bookmarks();
    let evs: Vec<_> = timeout(
        T,
        core.watch(&wp, &from)
            .await
            .unwrap()
            .try_collect::<Vec<_>>(),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(
        matches!(
            evs.as_slice(),
            [WatchEvent::Added(_), WatchEvent::Modified(_)]
        ),
        "{evs:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflector_converges_under_churn_and_gone() {
    use kube::runtime::{reflector, WatchStreamExt};
    let server = ApiServer::start().await;
    server.set_bookmark_interval(Duration::from_millis(20));
    for i in 0..30 {
        server.create_pod(pod(&format!("p{i}"), "n1")).unwrap();
    }
    let api = Api::<Pod>::all(client(&server));
    let (reader, writer) = reflector::store();
    let stream = reflector(
        writer,
        watcher(api, watcher::Config::default().fields("spec.nodeName=n1")),
    )
    .default_backoff();
    let task = tokio::spawn(stream.for_each(|_| futures::future::ready(())));
    for n in 0..1500u32 {
        let name = format!("p{}", n % 30);
        if n > 700 && name == "p3" {
            continue;
        }
        server
            .patch_pod_status(
                "default",
                &name,
                PatchKind::Strategic,
                &json!({"status": {"conditions": [{"type": "Ready", "status": "True", "message": n.to_string()}]}}),
            )
            .unwrap();
        if n % 100 == 0 {
            tokio::task::yield_now().await;
        }
        if n == 700 {
            server.force_gone();
            server.delete_pod("default", "p3").unwrap();
            server.create_pod(pod("late", "n1")).unwrap();
        }
    }
    let want = |s: &ApiServer| {
        let mut v: Vec<(String, String)> = (0..30)
            .map(|i| format!("p{i}"))
            .chain(["late".to_string()])
            .filter_map(|n| s.get_pod("default", &n))
            .map(|p| {
                (
                    p["metadata"]["name"].as_str().unwrap().to_string(),
                    p["metadata"]["resourceVersion"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let mut got: Vec<(String, String)> = reader
            .state()
            .iter()
            .map(|p| {
                (
                    p.metadata.name.clone().unwrap(),
                    p.metadata.resource_version.clone().unwrap(),
                )
            })
            .collect();
        got.sort();
        if got == want(&server) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "reflector did not converge"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(server.stats().lists >= 2, "relisted after gone");
    task.abort();
}

#[tokio::test]
async fn status_writes_are_validated_like_the_real_server() {
    let server = ApiServer::start().await;
    let api = Api::<Pod>::namespaced(client(&server), "default");
    server.create_pod(pod("v", "n1")).unwrap();
    let before = server.get_pod("default", "v").unwrap();
    let bad = [
        (
            json!({"status": {"containerStatuses": [{"name": "c", "allocatedResources": {"cpu": "1x"}}]}}),
            "status.containerStatuses[0].allocatedResources[cpu]",
        ),
        (
            json!({"status": {"observedGeneration": -1}}),
            "status.observedGeneration",
        ),
        (
            json!({"status": {"conditions": [{"type": "PodResizePending", "status": "Maybe"}]}}),
            "status.conditions[0].status",
        ),
    ];
    for (patch, field) in bad {
        let err = api
            .patch_status("v", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap_err();
        let kube::Error::Api(s) = err else {
            panic!("{err:?}")
        };
        assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"), "{patch}");
        assert!(
            s.message.starts_with("Pod \"v\" is invalid: "),
            "{}",
            s.message
        );
        let causes = s.details.unwrap().causes;
        assert!(
            causes.iter().any(|c| c.field == field),
            "{patch}: {causes:?}"
        );
    }
    assert_eq!(
        server.get_pod("default", "v").unwrap(),
        before,
        "nothing changed"
    );
    assert_eq!(server.stats().refused_writes.get("anonymous"), Some(&3));
    // a valid one goes through
    api.patch_status(
        "v",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"observedGeneration": 1}})),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn version_1_32_has_no_generation_drops_observed_generation_and_proposes() {
    let server = ApiServer::start_with(Options {
        version: ServerVersion::V1_32,
        write_latency: Duration::ZERO,
    })
    .await;
    let c = client(&server);
    assert_eq!(c.apiserver_version().await.unwrap().minor, "32");
    let api = Api::<Pod>::namespaced(c, "default");
    let made = server.create_pod(pod("old", "n1")).unwrap();
    assert!(made["metadata"].get("generation").is_none(), "{made}");
    api.patch_status(
        "old",
        &PatchParams::default(),
        &Patch::Strategic(json!({"status": {"observedGeneration": 1, "conditions": [
            {"type": "PodResizeInProgress", "status": "True", "observedGeneration": 1}]}})),
    )
    .await
    .unwrap();
    let p = server.get_pod("default", "old").unwrap();
    assert!(p["status"].get("observedGeneration").is_none(), "{p}");
    assert!(
        p["status"]["conditions"][0]
            .get("observedGeneration")
            .is_none(),
        "{p}"
    );
    let resized = server
        .resize_pod(
            "default",
            "old",
            PatchKind::Strategic,
            &json!({"spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "200m"}}}]}}),
        )
        .unwrap();
    assert_eq!(resized["status"]["resize"], "Proposed");
    assert!(resized["metadata"].get("generation").is_none());

    // 1.33+: generation bumped, no Proposed
    let server = ApiServer::start_with(Options {
        write_latency: Duration::ZERO,
        ..Options::default()
    })
    .await;
    server.create_pod(pod("new", "n1")).unwrap();
    let resized = server
        .resize_pod(
            "default",
            "new",
            PatchKind::Strategic,
            &json!({"spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "200m"}}}]}}),
        )
        .unwrap();
    assert_eq!(resized["metadata"]["generation"], 2);
    assert!(resized["status"].get("resize").is_none());
}

#[tokio::test]
async fn each_http_write_costs_the_write_latency() {
    let server = ApiServer::start().await;
    let api = Api::<Pod>::namespaced(client(&server), "default");
    server.create_pod(pod("w", "n1")).unwrap();
    let patch = |i: i64| Patch::Merge(json!({"status": {"observedGeneration": i % 2}}));
    let t = std::time::Instant::now();
    for i in 0..5 {
        api.patch_status("w", &PatchParams::default(), &patch(i))
            .await
            .unwrap();
    }
    let d = t.elapsed();
    assert!(d >= resizelet_double::DEFAULT_WRITE_LATENCY * 5, "{d:?}");
    // reads are free, and the latency can be turned off
    server.set_write_latency(Duration::ZERO);
    let t = std::time::Instant::now();
    for i in 0..5 {
        api.patch_status("w", &PatchParams::default(), &patch(i))
            .await
            .unwrap();
    }
    assert!(t.elapsed() < d, "{:?} vs {d:?}", t.elapsed());
}

/// A real kube-apiserver writes different objects concurrently (each its own etcd txn): the
/// double's write latency must not serialise them, and a write's watch event goes out when it is
/// stored, not one more write latency later.
#[tokio::test]
async fn concurrent_writes_overlap_and_their_watch_events_come_at_once() {
    let server = ApiServer::start().await;
    // a latency well above scheduling noise, so that the bounds below tell overlap from
    // serialisation on a loaded 2-core host too (the default 9 ms left a 1 ms margin)
    let latency = std::time::Duration::from_millis(60);
    server.set_write_latency(latency);
    let api = Api::<Pod>::namespaced(client(&server), "default");
    let n = 10;
    for i in 0..n {
        server.create_pod(pod(&format!("c{i}"), "n1")).unwrap();
    }
    let patch = Patch::Merge(json!({"status": {"observedGeneration": 1}}));
    let t = std::time::Instant::now();
    let writes = (0..n).map(|i| {
        let (api, patch) = (api.clone(), patch.clone());
        async move {
            api.patch_status(&format!("c{i}"), &PatchParams::default(), &patch)
                .await
                .unwrap()
        }
    });
    futures::future::join_all(writes).await;
    let d = t.elapsed();
    assert!(d >= latency, "{d:?}");
    assert!(
        d < latency * 4,
        "{n} writes to different pods took {d:?}: serialised ({latency:?} each)"
    );

    let rv = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut events = api
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    let patch = Patch::Merge(json!({"status": {"observedGeneration": 2}}));
    api.patch_status("c0", &PatchParams::default(), &patch)
        .await
        .unwrap();
    let t = std::time::Instant::now();
    let ev = timeout(T, events.next()).await.unwrap().unwrap().unwrap();
    assert!(matches!(ev, WatchEvent::Modified(_)), "{ev:?}");
    assert!(
        t.elapsed() < latency / 2,
        "the watch event came {:?} after the write's response",
        t.elapsed()
    );
}
