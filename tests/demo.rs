//! `scripts/demo.sh`: resizelet resizing a pod in place on this machine, shown step by step.
//! An API-server double stands in for Kubernetes (node `n1`, with a gate-off kubelet that keeps
//! erasing the resize fields, as a real v1.32 kubelet does); the pod runs in the real
//! containerd with the kubelet's cgroup layout; the real `resizelet run` binary does the work;
//! the resizes are the real kubectl 1.37's `kubectl patch --subresource resize`.
//! A plain program (`harness = false`); it does nothing unless RESIZELET_DEMO=1, so the test
//! suite does not run it twice.

mod support;

use std::time::{Duration, Instant};

use resizelet::core::plan::PodCgroupValues;
use resizelet::core::resources::QosClass;
use serde_json::Value;
use support::cluster::{condition, resize_done, Agent, Cluster, DEADLINE};
use support::eventually;
use support::kubelet::{RunningPod, TestContainer, TestPod};

const MIB: i64 = 1 << 20;

fn container(cpu_m: i64, mem_mib: i64) -> TestContainer {
    TestContainer::new("app")
        .cpu(Some(cpu_m), Some(cpu_m))
        .memory(Some(mem_mib * MIB), Some(mem_mib * MIB))
}

fn show_cgroup(label: &str, v: &PodCgroupValues) {
    fn f<T: ToString>(o: Option<T>) -> String {
        o.map_or("-".to_string(), |x| x.to_string())
    }
    println!(
        "  {label:<15} cpu.cfs_quota_us={} cpu.cfs_period_us={} cpu.shares={} memory.limit_in_bytes={}",
        f(v.cpu_quota),
        f(v.cpu_period),
        f(v.cpu_shares),
        f(v.memory_limit)
    );
}

fn show_status(pod: &Value) {
    let cs = &pod["status"]["containerStatuses"][0];
    println!(
        "  API status      generation={} observedGeneration={} allocatedResources={} resources.limits={}",
        pod["metadata"]["generation"],
        pod["status"]["observedGeneration"],
        cs["allocatedResources"],
        cs["resources"]["limits"]
    );
    let conditions: Vec<String> = pod["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| {
            c["type"]
                .as_str()
                .is_some_and(|t| t.starts_with("PodResize"))
        })
        .map(|c| {
            format!(
                "{} {}: {}",
                c["type"].as_str().unwrap_or(""),
                c["reason"].as_str().unwrap_or(""),
                c["message"].as_str().unwrap_or("")
            )
        })
        .collect();
    if !conditions.is_empty() {
        println!("  conditions      {}", conditions.join("; "));
    }
}

fn show(run: &RunningPod, cluster: &Cluster, pod: &TestPod) {
    show_cgroup("pod cgroup", &run.pod_cgroup_values());
    show_cgroup("container app", &run.container_cgroup_values("app"));
    show_status(&cluster.pod(pod));
}

fn events(cluster: &Cluster, pod: &TestPod) -> String {
    cluster.event_reasons(pod).join(", ")
}

/// Runs the real `kubectl patch pod <name> --subresource resize`, printing the command line
/// exactly as it runs and kubectl's answer. A 422 "without support for resize" (the gate-off
/// kubelet has just erased the fields) is retried once resizelet has restored them.
async fn kubectl_resize(cluster: &Cluster, pod: &TestPod, cpu_m: i64, mem_mib: i64) {
    let patch = format!(
        r#"{{"spec":{{"containers":[{{"name":"app","resources":{{"requests":{{"cpu":"{cpu_m}m","memory":"{mem_mib}Mi"}},"limits":{{"cpu":"{cpu_m}m","memory":"{mem_mib}Mi"}}}}}}]}}}}"#
    );
    let args = [
        "patch",
        "pod",
        &pod.name,
        "-n",
        &pod.namespace,
        "--subresource",
        "resize",
        "--patch",
        &patch,
    ];
    println!("$ kubectl {}", args.map(shell_word).join(" "));
    let deadline = Instant::now() + DEADLINE;
    loop {
        let (ok, out, err) = cluster.kubectl(&args).await;
        if ok {
            print!("{out}");
            return;
        }
        assert!(
            err.contains("without support for resize") && Instant::now() < deadline,
            "kubectl: {err}"
        );
        println!(
            "{}  (the gate-off kubelet has just erased the resize fields; retrying once resizelet restores them)",
            err.trim_end()
        );
        cluster.wait_resize_fields(pod).await;
    }
}

fn shell_word(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_./=:".contains(c))
    {
        s.to_string()
    } else {
        format!("'{s}'")
    }
}

/// kubectl's resize, then wait until the status shows it done.
async fn resize_until_done(cluster: &Cluster, pod: &TestPod, cpu_m: i64, mem_mib: i64) {
    kubectl_resize(cluster, pod, cpu_m, mem_mib).await;
    eventually("the resize is done", DEADLINE, || async {
        resize_done(&cluster.pod(pod)).then_some(())
    })
    .await;
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::var("RESIZELET_DEMO").as_deref() != Ok("1") {
        eprintln!("demo: skipped (run scripts/demo.sh)");
        return;
    }
    let cluster = Cluster::start("2", "4Gi").await;
    let _actor = cluster
        .api
        .start_gate_off_kubelet(support::cluster::NODE, Duration::from_millis(500));
    println!("== resizelet demo");
    println!(
        "API server (double): {}; node {} with allocatable cpu 2, memory 4Gi; containerd: {}",
        cluster.api.url(),
        support::cluster::NODE,
        support::cri_endpoint()
    );
    let state = cluster.dir.path().join("state");
    let agent = Agent::start(&cluster, &state);
    println!(
        "started: resizelet run --node-name {} (admin endpoint {})",
        support::cluster::NODE,
        agent.admin
    );

    let run = cluster
        .run_pod(TestPod::new(
            "web",
            QosClass::Guaranteed,
            vec![container(250, 64)],
        ))
        .await;
    let pod = run.pod.clone();
    println!(
        "\n== pod {}/{} created the way the kubelet does (pod cgroup, sandbox and container through CRI): app cpu 250m, memory 64Mi",
        pod.namespace, pod.name
    );
    cluster.wait_resize_fields(&pod).await;
    println!("resizelet reported the resize fields (the API server refuses /resize without them):");
    show(&run, &cluster, &pod);

    println!("\n== resize with the real kubectl → app cpu 500m, memory 128Mi");
    let t = Instant::now();
    resize_until_done(&cluster, &pod, 500, 128).await;
    println!(
        "done in {:?}, in place (same container, no restart):",
        t.elapsed()
    );
    show(&run, &cluster, &pod);
    println!("  events          {}", events(&cluster, &pod));
    let (_, out, err) = cluster
        .kubectl(&["describe", "pod", &pod.name, "-n", &pod.namespace])
        .await;
    let tail: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.starts_with("Events:"))
        .collect();
    println!(
        "\n$ kubectl describe pod {} -n {}   (the events part)\n{}{err}",
        pod.name,
        pod.namespace,
        tail.join("\n")
    );

    println!("\n== a resize that cannot fit: cpu 3 on a 2-cpu node");
    kubectl_resize(&cluster, &pod, 3000, 128).await;
    eventually("PodResizePending", DEADLINE, || async {
        condition(&cluster.pod(&pod), "PodResizePending").map(|_| ())
    })
    .await;
    show(&run, &cluster, &pod);
    let out = agent.cli(&["explain", &format!("{}/{}", pod.namespace, pod.name)]);
    println!(
        "\n$ resizelet explain {}/{}\n{}",
        pod.namespace,
        pod.name,
        String::from_utf8_lossy(&out.stdout)
    );

    println!("== revert to what fits: cpu 500m");
    resize_until_done(&cluster, &pod, 500, 128).await;
    let out = agent.cli(&["status"]);
    println!(
        "$ resizelet status\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    run.teardown().await.expect("teardown");
    println!("demo finished: the pod was resized in place; see README.md for installing resizelet on a node");
}
