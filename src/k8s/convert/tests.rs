use super::*;
use crate::k8s::{EventRecord, Regarding, SeriesUpdate};
use crate::testing::{list, reqs};

fn api_pod() -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "ns", "uid": "u1", "generation": 3,
                     "resourceVersion": "42"},
        "spec": {
            "nodeName": "n1", "priority": 5,
            "containers": [{"name": "app", "image": "busybox",
                "resources": {"requests": {"cpu": "500m", "memory": "128Mi"},
                              "limits": {"cpu": "1", "memory": "256Mi"}},
                "resizePolicy": [{"resourceName": "memory", "restartPolicy": "RestartContainer"}]}],
            "initContainers": [{"name": "side", "image": "busybox", "restartPolicy": "Always"}]
        },
        "status": {
            "phase": "Running", "qosClass": "Burstable", "observedGeneration": 2,
            "conditions": [
                {"type": "Ready", "status": "True"},
                {"type": "PodResizePending", "status": "True", "reason": "Deferred",
                 "message": "Node didn't have enough resource: cpu", "observedGeneration": 3,
                 "lastTransitionTime": "2026-01-01T00:00:00Z"}
            ],
            "containerStatuses": [{"name": "app", "image": "busybox", "imageID": "sha256:1",
                "ready": true, "restartCount": 0, "containerID": "containerd://abc",
                "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}],
            "initContainerStatuses": [{"name": "side", "image": "busybox", "imageID": "",
                "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": "ContainerCreating"}}}]
        }
    }))
    .unwrap()
}

#[test]
fn pod_view_maps_spec_and_status() {
    let v = pod_view(&api_pod()).unwrap();
    assert_eq!(v.key(), "ns/web");
    assert_eq!(v.spec.generation, 3);
    assert_eq!(v.spec.priority, 5);
    assert_eq!(
        v.spec.containers[0].resources,
        reqs("cpu=500m,memory=128Mi", "cpu=1,memory=256Mi")
    );
    assert_eq!(
        v.spec.containers[0].resize_policy.memory,
        ResizeRestartPolicy::RestartContainer
    );
    assert!(v.spec.init_containers[0].sidecar);
    assert_eq!(v.spec.qos_class, Some(QosClass::Burstable));
    assert_eq!(v.conditions.pending.as_ref().unwrap().reason, "Deferred");
    assert_eq!(v.conditions.in_progress, None);
    assert_eq!(v.observed_generation, Some(2));
    assert_eq!(
        v.container_statuses[0].container_id.as_deref(),
        Some("containerd://abc")
    );
    assert!(v.container_statuses[0].running);
    assert!(!v.init_container_statuses[0].running);
    assert_eq!(v.node_name.as_deref(), Some("n1"));
}

#[test]
fn pod_level_resources_json_numbers_and_criticality() {
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "pl", "namespace": "ns", "uid": "u2"},
        "spec": {
            "priorityClassName": "system-cluster-critical", "priority": 2_000_000_000,
            "resources": {"requests": {"cpu": " 1", "memory": 1_073_741_824_i64},
                          "limits": {"cpu": 2, "memory": "2Gi", "hugepages-2Mi": "4Mi"}},
            "containers": [{"name": "app", "image": "busybox",
                "resources": {"requests": {"cpu": "500m "}}}]
        }
    }))
    .unwrap();
    let v = pod_view(&pod).unwrap();
    assert_eq!(
        v.spec.pod_resources,
        Some(reqs(
            "cpu=1,memory=1Gi",
            "cpu=2,memory=2Gi,hugepages-2Mi=4Mi"
        ))
    );
    assert_eq!(v.spec.containers[0].resources, reqs("cpu=500m", ""));
    assert!(v.spec.critical && !v.spec.node_critical);
    let mut node_critical = pod.clone();
    node_critical.spec.as_mut().unwrap().priority_class_name = Some("system-node-critical".into());
    node_critical.spec.as_mut().unwrap().priority = Some(2_000_001_000);
    let v = pod_view(&node_critical).unwrap();
    assert!(v.spec.critical && v.spec.node_critical);
    // The class name alone does not make a pod critical (IsCriticalPod needs the priority).
    let mut low = node_critical.clone();
    low.spec.as_mut().unwrap().priority = Some(0);
    assert!(!pod_view(&low).unwrap().spec.node_critical);
}

/// [`api_pod`] with container `app`'s `cpu` in the chosen half set to `value`, verbatim.
fn with_app_quantity(
    half: fn(
        &mut k8s_openapi::api::core::v1::ResourceRequirements,
    ) -> &mut Option<
        BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
    >,
    value: &str,
) -> Pod {
    let mut pod = api_pod();
    let resources = pod.spec.as_mut().unwrap().containers[0]
        .resources
        .as_mut()
        .unwrap();
    half(resources).as_mut().unwrap().insert(
        "cpu".into(),
        k8s_openapi::apimachinery::pkg::api::resource::Quantity(value.into()),
    );
    pod
}

#[test]
fn malformed_quantity_is_a_clear_error() {
    let pod = with_app_quantity(|r| &mut r.limits, "1 core");
    let err = pod_view(&pod).unwrap_err().to_string();
    assert!(
        err.starts_with("pod ns/web: container app: limits cpu=\"1 core\""),
        "{err}"
    );
}

#[test]
fn negative_quantity_is_refused_at_the_edge() {
    let pod = with_app_quantity(|r| &mut r.requests, "-1");
    let err = pod_view(&pod).unwrap_err().to_string();
    assert_eq!(
        err,
        "pod ns/web: spec.containers[0].resources.requests[cpu]: Invalid value: \"-1\": must be greater than or equal to 0"
    );
}

#[test]
fn status_patch_writes_the_full_atomic_list_and_keyed_conditions() {
    let v = pod_view(&api_pod()).unwrap();
    let containers = BTreeMap::from([(
        "app".to_string(),
        ContainerStatusResources {
            allocated: list("cpu=500m,memory=128Mi"),
            resources: reqs("cpu=500m,memory=128Mi", "cpu=1,memory=256Mi"),
        },
    )]);
    let conditions = ResizeConditions {
        pending: None,
        in_progress: Some(ResizeCondition {
            reason: String::new(),
            message: String::new(),
            observed_generation: 3,
        }),
    };
    let intent = StatusIntent {
        containers: &containers,
        conditions: &conditions,
        observed_generation: Some(3),
        legacy_resize: true,
        now: "2026-11-25T10:00:00Z",
    };
    let StatusPatch {
        namespace,
        name,
        body: patch,
    } = status_patch(&v, &intent).unwrap();
    assert_eq!(
        (namespace.as_str(), name.as_str()),
        ("ns", "web"),
        "addressed"
    );
    assert_eq!(patch["metadata"]["resourceVersion"], "42");
    let s = &patch["status"];
    let app = &s["containerStatuses"][0];
    assert_eq!(app["imageID"], "sha256:1", "the whole entry is kept");
    assert_eq!(
        app["allocatedResources"],
        json!({"cpu": "500m", "memory": "128Mi"})
    );
    assert_eq!(
        app["resources"],
        json!({"limits": {"cpu": "1", "memory": "256Mi"},
               "requests": {"cpu": "500m", "memory": "128Mi"}})
    );
    assert!(
        s.get("initContainerStatuses").is_none(),
        "no runtime status, untouched"
    );
    assert_eq!(
        s["conditions"],
        json!([
            {"type": "PodResizePending", "$patch": "delete"},
            {"type": "PodResizeInProgress", "status": "True", "observedGeneration": 3,
             "lastProbeTime": "2026-11-25T10:00:00Z",
             "lastTransitionTime": "2026-11-25T10:00:00Z"}
        ])
    );
    assert_eq!(s["observedGeneration"], 3);
    assert_eq!(s["resize"], "InProgress");

    // once the API says all that, there is nothing to write
    let mut pod = api_pod();
    let st = pod.status.as_mut().unwrap();
    st.container_statuses = serde_json::from_value(s["containerStatuses"].clone()).unwrap();
    st.conditions = Some(vec![serde_json::from_value(json!({
        "type": "PodResizeInProgress", "status": "True", "observedGeneration": 3
    }))
    .unwrap()]);
    st.observed_generation = Some(3);
    st.resize = Some("InProgress".into());
    assert_eq!(status_patch(&pod_view(&pod).unwrap(), &intent), None);
}

#[test]
fn semantically_equal_quantities_are_not_rewritten() {
    let mut pod = api_pod();
    let st = pod.status.as_mut().unwrap();
    st.container_statuses.as_mut().unwrap()[0].allocated_resources = Some(BTreeMap::from([(
        "cpu".to_string(),
        k8s_openapi::apimachinery::pkg::api::resource::Quantity("0.5".into()),
    )]));
    let v = pod_view(&pod).unwrap();
    let containers = BTreeMap::from([(
        "app".to_string(),
        ContainerStatusResources {
            allocated: list("cpu=500m"),
            resources: ResourceRequirements::default(),
        },
    )]);
    let conditions = v.conditions.clone();
    let patch = status_patch(
        &v,
        &StatusIntent {
            containers: &containers,
            conditions: &conditions,
            observed_generation: None,
            legacy_resize: false,
            now: "t",
        },
    )
    .unwrap()
    .body;
    let app = &patch["status"]["containerStatuses"][0];
    assert_eq!(
        app["allocatedResources"],
        json!({"cpu": "0.5"}),
        "kept as written"
    );
    assert_eq!(app["resources"], json!({}), "running: {{}} never nil");
}

#[test]
fn a_1_32_pod_without_generation_gets_no_observed_generation() {
    // API server 1.32: no metadata.generation, and observedGeneration would be dropped
    let mut pod = api_pod();
    pod.metadata.generation = None;
    let st = pod.status.as_mut().unwrap();
    st.observed_generation = None;
    st.conditions = None;
    let v = pod_view(&pod).unwrap();
    let containers = BTreeMap::new();
    let conditions = ResizeConditions::default();
    let intent = StatusIntent {
        containers: &containers,
        conditions: &conditions,
        observed_generation: Some(v.spec.generation),
        legacy_resize: false,
        now: "t",
    };
    assert_eq!(status_patch(&v, &intent), None);
}

#[test]
fn watch_events_become_inputs_at_the_edge() {
    assert!(matches!(
        pod_input(watcher::Event::Apply(api_pod())),
        Some(Input::Pod(PodEvent::Applied(WatchedPod::Usable(v)))) if v.key() == "ns/web"
    ));
    assert!(matches!(
        pod_input(watcher::Event::InitApply(api_pod())),
        Some(Input::Pod(PodEvent::Listed(WatchedPod::Usable(_))))
    ));
    assert!(matches!(
        pod_input(watcher::Event::Init),
        Some(Input::Pod(PodEvent::RelistStarted))
    ));
    assert!(matches!(
        pod_input(watcher::Event::InitDone),
        Some(Input::Pod(PodEvent::RelistDone))
    ));
    let Some(Input::Pod(PodEvent::Deleted { uid })) = pod_input(watcher::Event::Delete(api_pod()))
    else {
        panic!("a delete")
    };
    assert_eq!(uid, "u1");
    let mut anonymous = api_pod();
    anonymous.metadata.uid = None;
    assert!(pod_input(watcher::Event::Delete(anonymous)).is_none());
    // a refused spec keeps its error and what can be reported of the pod
    let bad = with_app_quantity(|r| &mut r.requests, "-1");
    let Some(Input::Pod(PodEvent::Applied(WatchedPod::Refused { error, unusable }))) =
        pod_input(watcher::Event::Apply(bad))
    else {
        panic!("refused")
    };
    assert_eq!(unusable.unwrap().reason, error.to_string());
    let node: Node = serde_json::from_value(json!({"metadata": {"name": "n1"},
        "status": {"allocatable": {"cpu": "2"}}}))
    .unwrap();
    let Some(Input::Node(view)) = node_input(watcher::Event::Apply(node.clone())) else {
        panic!("the node")
    };
    assert_eq!(view.allocatable, list("cpu=2"));
    assert!(node_input(watcher::Event::InitApply(node.clone())).is_some());
    assert!(node_input(watcher::Event::Delete(node)).is_none());
    assert!(node_input(watcher::Event::InitDone).is_none());
}

#[test]
fn events_map_to_events_k8s_io_v1() {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_micros(1_764_580_000_123_456);
    let record = EventRecord {
        name: "web.187d0c29351e0d15".into(),
        namespace: "ns".into(),
        time: t,
        action: "Resize",
        reason: "ResizeInfeasible".into(),
        note: "too big".into(),
        warning: true,
        reporting_controller: "resizelet.dev/resizelet",
        reporting_instance: "resizelet-n1".into(),
        regarding: Regarding::Pod {
            namespace: "ns".into(),
            name: "web".into(),
            uid: "u1".into(),
            resource_version: "42".into(),
        },
    };
    let v = serde_json::to_value(event_object(&record)).unwrap();
    assert_eq!(
        v,
        json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "web.187d0c29351e0d15", "namespace": "ns"},
            "eventTime": "2025-12-01T09:06:40.123456Z",
            "action": "Resize", "reason": "ResizeInfeasible", "note": "too big",
            "type": "Warning",
            "reportingController": "resizelet.dev/resizelet", "reportingInstance": "resizelet-n1",
            "regarding": {"apiVersion": "v1", "kind": "Pod", "namespace": "ns", "name": "web",
                          "uid": "u1", "resourceVersion": "42"}
        }),
        "no generateName, no series"
    );
    let normal = event_object(&EventRecord {
        warning: false,
        regarding: Regarding::Node { name: "n1".into() },
        ..record
    });
    assert_eq!(normal.type_.as_deref(), Some("Normal"));
    assert_eq!(
        serde_json::to_value(normal.regarding).unwrap(),
        json!({"apiVersion": "v1", "kind": "Node", "name": "n1"}),
        "a node has no namespace, uid or resourceVersion"
    );
    let series = series_patch(&SeriesUpdate {
        namespace: "ns".into(),
        name: "web.1".into(),
        count: 3,
        last_observed: t,
    });
    assert_eq!(
        series,
        json!({"series": {"count": 3, "lastObservedTime": "2025-12-01T09:06:40.123456Z"}})
    );
}

#[test]
fn api_times() {
    assert_eq!(unix_millis("2026-01-01T00:00:00Z"), Some(1_767_225_600_000));
    assert_eq!(unix_millis("yesterday"), None);
    let now = now_rfc3339();
    assert!(unix_millis(&now).is_some(), "{now}");
    assert!(!now.contains('.'), "whole seconds: {now}");
}

/// Decision 6's evidence is the kubelet owning a `PodResize*` condition, nothing else.
#[test]
fn a_gate_off_kubelet_owning_container_statuses_is_no_evidence() {
    let meta: ObjectMeta = serde_json::from_value(json!({"managedFields": [{
            "manager": "kubelet", "operation": "Update", "subresource": "status",
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:status": {"f:containerStatuses": {}, "f:conditions": {
                "k:{\"type\":\"Ready\"}": {}}}}}, {
            "manager": "resizelet", "operation": "Update", "subresource": "status",
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:status": {"f:conditions": {
                "k:{\"type\":\"PodResizePending\"}": {}}}}}]}))
    .unwrap();
    assert!(kubelet_resize_conditions(&meta).is_empty());
}
