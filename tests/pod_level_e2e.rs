//! Pod-level `spec.resources` end to end: the API-server double, the real containerd and cgroups
//! and the `resizelet run` binary. A pod whose pod-level requests and limits differ from its
//! containers' gets the pod cgroup upstream gives it (`kubernetes/kubernetes v1.36
//! pkg/kubelet/cm/helpers_linux.go` `ResourceConfigForPod`: pod-level values replace the
//! container sums) and its containers the pod-level limits as their fallback (§10).

mod support;

use serde_json::json;
use support::cluster::{resize_done, Agent, Cluster, DEADLINE, NODE};
use support::eventually;
use support::kubelet::{cgroup_values, cpu_memory, requests, TestPod};

const MIB: i64 = 1 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_level_resources_set_the_pod_cgroup_through_the_api() {
    let cluster = Cluster::start("2", "4Gi").await;
    let state = cluster.dir.path().join("state");
    let _agent = Agent::start(&cluster, &state);

    // One container with requests only; the pod-level resources give the pod 500m/128Mi
    // requested and 1 cpu/512Mi as its limits (Burstable: requests ≠ limits).
    let pod = TestPod::burstable("podlevel", [requests("app", 100, 64)]);
    let spec = json!({
        "nodeName": NODE, "terminationGracePeriodSeconds": 2,
        "resources": {"requests": {"cpu": "500m", "memory": "128Mi"},
                      "limits": {"cpu": "1", "memory": "512Mi"}},
        "containers": [{"name": "app", "image": "resizelet.test/busybox:1",
            "resources": {"requests": {"cpu": "100m", "memory": (64 * MIB).to_string()}}}]
    });
    let running = cluster.run_pod_with_spec(pod, spec).await;
    let pod = running.pod.clone();
    let created = cluster.pod(&pod);
    assert_eq!(created["status"]["qosClass"], "Burstable", "{created}");
    cluster.wait_resize_fields(&pod).await;

    // a cpu request resize of the container, inside the pod-level request
    cluster
        .resize(&pod, &[requests("app", 200, 64)])
        .await
        .expect("resize accepted by the API server");
    eventually("resize completed in the API status", DEADLINE, || async {
        resize_done(&cluster.pod(&pod)).then_some(())
    })
    .await;

    // upstream's pod cgroup: shares from the pod-level request (500m → 512), quota from the
    // pod-level cpu limit (limits declared at pod level), memory from the pod-level limit —
    // not the container sums (204 shares, no quota, no memory limit)
    running.assert_pod_values(cgroup_values(512, 100_000, 512 * MIB));
    // the container: its own request, the pod-level limits as the limits it lacks
    running.assert_container("app", cpu_memory(204, 100_000, 512 * MIB));
    running.teardown().await.unwrap();
}
