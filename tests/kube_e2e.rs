// End to end on this VM: the API-server double, the real containerd and cgroups, and the
// `resizelet run` binary. Pods are created the way the kubelet would; resizes go through the
// `/resize` subresource over HTTP (one through the real kubectl); a gate-off kubelet actor erases
// the resize fields throughout. Every test ends asserting the double refused none of the agent's
// writes (`Cluster`'s drop). `tests/kube_e2e_v1_32.rs` runs these same tests against the double
// serving as kube-apiserver 1.32 (plain `//` comments: that file `include!`s this one).

mod support;

use std::time::{Duration, Instant};

use resizelet::core::plan::Limit;
use resizelet_double::Fault;
use resizelet_double::ServerVersion;
use support::cluster::{
    api_version, condition, resize_done, resize_fields_present, Agent, Cluster, DEADLINE,
};
use support::eventually;
use support::kubelet::{app, cpu_memory, grow_and_shrink, guaranteed, sized, TestPod};

const MIB: i64 = 1 << 20;

async fn done(cluster: &Cluster, pod: &TestPod) -> serde_json::Value {
    eventually("resize completed in the API status", DEADLINE, || async {
        let p = cluster.pod(pod);
        resize_done(&p).then_some(p)
    })
    .await
}

fn reasons(cluster: &Cluster, pod: &TestPod) -> Vec<String> {
    cluster.event_reasons(pod)
}

/// Polls until the pod's events include every reason in `want` (events are emitted after the
/// status patch they describe, so a status seen through the API may precede them).
async fn wait_reasons(cluster: &Cluster, pod: &TestPod, want: &[&str]) -> Vec<String> {
    let what = format!("events {want:?}");
    eventually(&what, DEADLINE, || async {
        let r = reasons(cluster, pod);
        want.iter().all(|w| r.iter().any(|x| x == w)).then_some(r)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resizes_through_the_api_with_a_gate_off_kubelet_erasing_fields() {
    let cluster = Cluster::start("2", "4Gi").await;
    let _kubelet = cluster
        .api
        .start_gate_off_kubelet(support::cluster::NODE, Duration::from_millis(300));
    let state = cluster.dir.path().join("state");
    let mut agent = Agent::start(&cluster, &state);
    // how long resize fields stay missing after the kubelet actor erases them (per pod)
    let mut feed = cluster.api.watch_changes();
    let gaps = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Duration>::new()));
    let gaps_w = gaps.clone();
    tokio::spawn(async move {
        let mut missing_since: std::collections::HashMap<String, Instant> = Default::default();
        let mut seen: std::collections::HashSet<String> = Default::default();
        while let Ok(ev) = feed.recv().await {
            if ev.kind != "Pod" {
                continue;
            }
            let name = ev.object["metadata"]["name"]
                .as_str()
                .unwrap_or("")
                .to_string();
            let present = resize_fields_present(&ev.object);
            if present {
                seen.insert(name.clone());
                if let Some(t) = missing_since.remove(&name) {
                    gaps_w.lock().unwrap().push(t.elapsed());
                }
            } else if seen.contains(&name) {
                missing_since.entry(name).or_insert_with(Instant::now);
            }
        }
    });

    // Guaranteed, one container
    let g = TestPod::guaranteed("guaranteed", [guaranteed("app", 200, 64)]);
    let g_run = cluster.run_pod(g.clone()).await;
    let g = g_run.pod.clone();
    cluster.wait_resize_fields(&g).await;
    let started = Instant::now();
    cluster
        .resize(&g, &[guaranteed("app", 400, 96)])
        .await
        .expect("resize accepted by the API server");
    let p = done(&cluster, &g).await;
    eprintln!("guaranteed resize reflected after {:?}", started.elapsed());
    g_run.assert_container("app", cpu_memory(409, 40_000, 96 * MIB));
    g_run.assert_pod(cpu_memory(409, 40_000, 96 * MIB));
    let st = &p["status"]["containerStatuses"][0];
    assert_eq!(st["resources"]["limits"]["cpu"], "400m");
    assert_eq!(st["resources"]["limits"]["memory"], "96Mi");
    match api_version() {
        ServerVersion::V1_32 => {
            // no generation on 1.32, and the server drops observedGeneration
            assert!(p["metadata"].get("generation").is_none(), "{p}");
            assert!(p["status"].get("observedGeneration").is_none(), "{p}");
        }
        ServerVersion::V1_33 => assert_eq!(p["status"]["observedGeneration"], 2),
    }
    wait_reasons(&cluster, &g, &["ResizeStarted", "ResizeCompleted"]).await;

    // the real kubectl: `patch --subresource resize`, then `get` and `describe` show it
    let out = eventually("kubectl patch --subresource resize", DEADLINE, || async {
        // refused (422) while the actor has the fields erased, as on a real cluster
        cluster.wait_resize_fields(&g).await;
        let (ok, out, err) = cluster
            .kubectl(&[
                "patch", "pod", &g.name, "-n", &g.namespace, "--subresource", "resize", "--patch",
                r#"{"spec":{"containers":[{"name":"app","resources":{"requests":{"cpu":"500m"},"limits":{"cpu":"500m"}}}]}}"#,
            ])
            .await;
        assert!(ok || err.contains("without support for resize"), "kubectl patch: {err}");
        ok.then_some(out)
    })
    .await;
    assert!(out.contains("pod/guaranteed patched"), "{out}");
    done(&cluster, &g).await;
    assert_eq!(
        g_run.container_cgroup_values("app").cpu_quota,
        Some(Limit::Value(50_000))
    );
    eventually("kubectl get shows the resized limits", DEADLINE, || async {
        let (ok, out, err) = cluster
            .kubectl(&[
                "get",
                "pod",
                &g.name,
                "-n",
                &g.namespace,
                "-o",
                "jsonpath={.status.containerStatuses[0].resources.limits.cpu}",
            ])
            .await;
        assert!(ok, "kubectl get: {err}");
        // empty while the actor has the fields erased
        (out == "500m").then_some(())
    })
    .await;
    let (ok, out, err) = cluster
        .kubectl(&["describe", "pod", &g.name, "-n", &g.namespace])
        .await;
    assert!(ok, "kubectl describe: {err}");
    assert!(
        out.contains("ResizeCompleted") && out.contains("resizelet.dev/resizelet"),
        "the agent's events show in describe:\n{out}"
    );

    // Burstable, two containers: one grows, one shrinks
    let (before, grown) = grow_and_shrink();
    let b_run = cluster
        .run_pod(TestPod::burstable("burstable", before))
        .await;
    let b = b_run.pod.clone();
    cluster.wait_resize_fields(&b).await;
    cluster.resize(&b, &grown).await.expect("resize");
    done(&cluster, &b).await;
    // c1 300m/500m and 192 MiB, c2 100m/200m and 128 MiB; the pod 400m (409 shares)/700m, 320 MiB
    b_run.assert_container("c1", cpu_memory(307, 50_000, 192 * MIB));
    b_run.assert_container("c2", cpu_memory(102, 20_000, 128 * MIB));
    b_run.assert_pod(cpu_memory(409, 70_000, 320 * MIB));

    // Infeasible: more cpu than the node has
    cluster
        .resize(
            &b,
            &[sized("c1", (3000, 3000), (32, 192)), grown[1].clone()],
        )
        .await
        .expect("resize");
    let p = eventually("PodResizePending Infeasible", DEADLINE, || async {
        let p = cluster.pod(&b);
        let reason = condition(&p, "PodResizePending")?["reason"]
            .as_str()?
            .to_string();
        (reason == "Infeasible").then_some(p)
    })
    .await;
    let msg = condition(&p, "PodResizePending").unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        msg.contains("Node didn't have enough capacity: cpu"),
        "{msg}"
    );
    // revert: pending cleared
    cluster.resize(&b, &grown).await.expect("revert");
    done(&cluster, &b).await;

    // 409 on the next status write, then a 410 relist: resizes still complete
    cluster.api.fail_next(Fault::Conflict);
    cluster.api.force_gone();
    cluster
        .resize(&g, &[guaranteed("app", 300, 96)])
        .await
        .expect("resize");
    done(&cluster, &g).await;
    assert_eq!(
        g_run.container_cgroup_values("app").cpu_quota,
        Some(Limit::Value(30_000))
    );

    // latency: /resize PATCH → final status visible to a client (numbers, not a pass/fail)
    let mut changes = cluster.api.watch_changes();
    let writes_before = cluster.api.stats().pod_status_patches;
    let mut samples = Vec::new();
    for i in 0..20 {
        let cpu = if i % 2 == 0 { 400 } else { 300 };
        // a resize landing while the actor has the fields erased gets 422 (as on a real
        // cluster): the client retries once they are back
        cluster.wait_resize_fields(&g).await;
        let t = Instant::now();
        cluster
            .resize(&g, &[guaranteed("app", cpu, 96)])
            .await
            .expect("resize");
        loop {
            if resize_done(&cluster.pod(&g)) {
                break;
            }
            let _ = tokio::time::timeout(Duration::from_millis(50), changes.recv()).await;
            assert!(t.elapsed() < DEADLINE, "resize {i} not reflected");
        }
        samples.push(t.elapsed());
    }
    samples.sort();
    let writes = cluster.api.stats().pod_status_patches - writes_before;
    eprintln!(
        "resize PATCH → final status: p50 {:?}, p99 {:?}, max {:?}; status patches per resize {:.2}; refused while erased {}",
        samples[samples.len() / 2],
        samples[samples.len() * 99 / 100],
        samples[samples.len() - 1],
        writes as f64 / samples.len() as f64,
        cluster.refused.load(std::sync::atomic::Ordering::Relaxed)
    );

    // the kubelet actor erased fields all along; they are back within a watch round trip
    let missing = eventually(
        "the kubelet actor erased fields at least once",
        DEADLINE,
        || async {
            let s = cluster.api.stats();
            (s.kubelet_actor_writes > 0).then_some(s.kubelet_actor_writes)
        },
    )
    .await;
    cluster.wait_resize_fields(&g).await;
    let mut gaps = gaps.lock().unwrap().clone();
    gaps.sort();
    assert!(
        !gaps.is_empty(),
        "the fields were erased and restored at least once"
    );
    eprintln!(
        "kubelet actor writes: {missing}; fields missing after an erasure: n={} p50 {:?} max {:?}",
        gaps.len(),
        gaps[gaps.len() / 2],
        gaps[gaps.len() - 1]
    );

    // the admin endpoint: alive, ready, metrics with the kubelet's names and per-phase timings
    assert_eq!(agent.get("/healthz").await.0, 200);
    eventually("/readyz 200", DEADLINE, || async {
        (agent.get("/readyz").await.0 == 200).then_some(())
    })
    .await;
    let (code, metrics) = agent.get("/metrics").await;
    assert_eq!(code, 200);
    for needle in [
        "kubelet_pod_resize_duration_milliseconds_count{success=\"true\"}",
        "kubelet_container_requested_resizes_total{resource=\"cpu\",requirement=\"limits\",operation=\"increase\"}",
        "kubelet_pod_pending_resizes{reason=\"infeasible\"} 0",
        "resizelet_pod_sync_phase_duration_seconds_count{phase=\"enactment\"}",
        "resizelet_pod_sync_phase_duration_seconds_count{phase=\"status_patch\"}",
        "resizelet_ready 1",
    ] {
        assert!(metrics.contains(needle), "{needle} missing from /metrics:\n{metrics}");
    }
    // where the time goes (means over every pass of this test)
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    let phases: Vec<String> = [
        "admission",
        "enactment",
        "runtime_status",
        "status_patch",
        "total",
    ]
    .iter()
    .map(|p| {
        let sum = value(&format!(
            "resizelet_pod_sync_phase_duration_seconds_sum{{phase=\"{p}\"}}"
        ));
        let n = value(&format!(
            "resizelet_pod_sync_phase_duration_seconds_count{{phase=\"{p}\"}}"
        ));
        format!(
            "{p} {:.2} ms (n={n})",
            if n > 0.0 { sum / n * 1e3 } else { 0.0 }
        )
    })
    .collect();
    eprintln!("agent phases, mean: {}", phases.join(", "));
    // the operator CLI reads the same agent
    let out = agent.cli(&["status"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let row = table
        .lines()
        .find(|l| l.starts_with(&format!("{}/{}", g.namespace, g.name)))
        .unwrap_or_else(|| panic!("no row for {} in\n{table}", g.name));
    assert!(row.contains("app") && row.contains("96Mi"), "{row}");

    agent.kill();
    // with the agent gone the CLI says so instead of printing nothing
    let out = agent.cli(&["status"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no resizelet agent answers on"), "{err}");
    g_run.teardown().await.unwrap();
    b_run.teardown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deferred_until_another_pod_leaves_memory_error_then_revert_and_restart() {
    // 1 cpu allocatable: two 500m pods fill it
    let cluster = Cluster::start("1", "4Gi").await;
    let state = cluster.dir.path().join("state");
    let mut agent = Agent::start(&cluster, &state);
    let a_run = cluster
        .run_pod(TestPod::guaranteed("a", [guaranteed("app", 500, 64)]))
        .await;
    let b_run = cluster
        .run_pod(TestPod::burstable("b", [app((400, 500), (32, 64)).shell(
            "head -c 41943040 /dev/zero > /dev/shm/fill; trap 'exit 0' TERM; sleep 2147483647 & wait",
        )]))
        .await;
    let (a, b) = (a_run.pod.clone(), b_run.pod.clone());
    cluster.wait_resize_fields(&a).await;
    cluster.wait_resize_fields(&b).await;

    // b wants 800m: does not fit next to a → Deferred
    cluster
        .resize(&b, &[app((800, 800), (32, 64))])
        .await
        .expect("resize");
    eventually("Deferred", DEADLINE, || async {
        let p = cluster.pod(&b);
        (condition(&p, "PodResizePending")?["reason"] == "Deferred").then_some(())
    })
    .await;
    wait_reasons(&cluster, &b, &["ResizeDeferred"]).await;
    // `resizelet explain` shows the admission arithmetic behind the Deferred
    let pod = format!("{}/{}", b.namespace, b.name);
    let out = agent.cli(&["explain", &pod]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("PodResizePending: Deferred"), "{text}");
    assert!(text.contains("allocatable"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.trim_start().starts_with("cpu") && l.contains("800m") && l.contains("500m")),
        "{text}"
    );
    let out = agent.cli(&["explain", "default/no-such-pod"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not known to the agent"));
    // a leaves → b's resize is retried and accepted
    cluster.api.delete_pod(&a.namespace, &a.name).unwrap();
    done(&cluster, &b).await;
    assert_eq!(
        b_run.container_cgroup_values("app").cpu_quota,
        Some(Limit::Value(80_000))
    );
    a_run.teardown().await.unwrap();

    // memory limit below usage (b holds ~40 MiB in /dev/shm): InProgress/Error, nothing changed
    b_run.wait_memory_usage("app", 40 * MIB).await;
    cluster
        .resize(&b, &[app((800, 800), (16, 20))])
        .await
        .expect("resize");
    let p = eventually("PodResizeInProgress Error", DEADLINE, || async {
        let p = cluster.pod(&b);
        (condition(&p, "PodResizeInProgress")?["reason"] == "Error").then_some(p)
    })
    .await;
    let msg = condition(&p, "PodResizeInProgress").unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(msg.contains("below current usage"), "{msg}");
    assert_eq!(
        b_run.container_cgroup_values("app").memory_limit,
        Some(Limit::Value(64 * MIB))
    );
    // reverted → success
    cluster
        .resize(&b, &[app((800, 800), (32, 64))])
        .await
        .expect("revert");
    done(&cluster, &b).await;

    // restart: the agent is killed, a resize arrives while it is down, it converges on start
    agent.kill();
    cluster
        .resize(&b, &[app((600, 600), (32, 64))])
        .await
        .expect("resize");
    let mut agent = Agent::start(&cluster, &state);
    done(&cluster, &b).await;
    assert_eq!(
        b_run.container_cgroup_values("app").cpu_quota,
        Some(Limit::Value(60_000))
    );

    // restart mid-resize: the agent dies right after the first step of an enactment (the
    // allocation is checkpointed, part of the plan applied); a fresh agent finishes it
    agent.kill();
    let crashing = std::sync::Mutex::new(Agent::start_with(
        &cluster,
        &state,
        &["--crash-after-step", "0"],
    ));
    cluster
        .resize(&b, &[app((700, 700), (48, 64))])
        .await
        .expect("resize");
    let status = eventually("the agent aborts mid-enactment", DEADLINE, || async {
        crashing.lock().unwrap().child.try_wait().ok().flatten()
    })
    .await;
    assert!(!status.success(), "{status:?}");
    let _agent = Agent::start(&cluster, &state);
    let v = done(&cluster, &b).await;
    assert_eq!(
        v["status"]["containerStatuses"][0]["allocatedResources"]["cpu"],
        "700m"
    );
    let values = b_run.container_cgroup_values("app");
    assert_eq!(values.cpu_quota, Some(Limit::Value(70_000)));
    b_run.teardown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deferred_resizes_are_accepted_in_priority_order() {
    // cpu 2 is full (1 + 0.5 + 0.5); b (priority 0) asks first, c (priority 100) second
    let cluster = Cluster::start("2", "4Gi").await;
    let state = cluster.dir.path().join("state");
    let _agent = Agent::start(&cluster, &state);
    let run = |name: &str, cpu: i64, priority: i32| {
        cluster.run_pod(TestPod::guaranteed(name, [guaranteed("app", cpu, 32)]).priority(priority))
    };
    let a_run = run("a", 1000, 0).await;
    let b_run = run("b", 500, 0).await;
    let c_run = run("c", 500, 100).await;
    let (a, b, cp) = (a_run.pod.clone(), b_run.pod.clone(), c_run.pod.clone());
    for p in [&a, &b, &cp] {
        cluster.wait_resize_fields(p).await;
    }
    let deferred = |p: TestPod| {
        let cluster = &cluster;
        async move {
            eventually("Deferred", DEADLINE, || async {
                let v = cluster.pod(&p);
                (condition(&v, "PodResizePending")?["reason"] == "Deferred").then_some(())
            })
            .await
        }
    };
    cluster
        .resize(&b, &[guaranteed("app", 1100, 32)])
        .await
        .expect("resize");
    deferred(b.clone()).await;
    cluster
        .resize(&cp, &[guaranteed("app", 1000, 32)])
        .await
        .expect("resize");
    deferred(cp.clone()).await;
    // a leaves: c is retried first and fits (1 + 0.5); then b (1.1 + 1 > 2) does not
    cluster.api.delete_pod(&a.namespace, &a.name).unwrap();
    done(&cluster, &cp).await;
    assert_eq!(
        c_run.container_cgroup_values("app").cpu_quota,
        Some(Limit::Value(100_000))
    );
    let v = cluster.pod(&b);
    assert_eq!(
        condition(&v, "PodResizePending").unwrap()["reason"],
        "Deferred",
        "{v}"
    );
    assert_eq!(
        b_run.container_cgroup_values("app").cpu_quota,
        Some(Limit::Value(50_000))
    );
    for r in [a_run, b_run, c_run] {
        r.teardown().await.unwrap();
    }
}
