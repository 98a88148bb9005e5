//! The coexistence scenario of issue 12, shared by `tests/webhook_e2e.rs` and the
//! `resizelet-bench` rows (`benches/webhook/mod.rs`): the API-server double (calling the real
//! `resizelet webhook` binary over TLS, match conditions as shipped in deploy/webhook/, when
//! `with_webhook`), the real containerd, the `resizelet run` binary and the gate-off kubelet
//! actor (v1.32 status manager, reconciling every `period`). `pods` pods, `rounds` rounds of
//! simultaneous `/resize`s of all of them, then a window at rest of `rest`.
//!
//! Declared next to `webhook_support` (it refers to it as `super::webhook_support`) in a crate
//! that has `support` at its root.

#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::cluster::{resize_done, resize_fields_present, Agent, Cluster, NODE};
use crate::support::kubelet::{RunningPod, TestContainer, TestPod};
use futures::StreamExt;
use resizelet::core::resources::QosClass;
use resizelet_double::FailurePolicy;
use serde_json::{json, Value};

use super::webhook_support::{quantile, register, Webhook};

const MIB: i64 = 1 << 20;

pub struct Scale {
    pub pods: usize,
    pub rounds: usize,
    /// The kubelet actor's reconcile period (the kubelet's is 10 s).
    pub period: Duration,
    /// The window at rest that is measured.
    pub rest: Duration,
}

#[derive(Debug, Default)]
pub struct Outcome {
    pub resizes: u64,
    pub refusals: u64,
    pub agent_patches_at_rest: u64,
    pub stored_pod_writes_at_rest: u64,
    pub kubelet_patches_at_rest: u64,
    pub kubelet_stored_at_rest: u64,
    /// Webhook calls as the API-server double timed them (TLS, request, answer).
    pub webhook_latency: Vec<Duration>,
    pub webhook_failures: u64,
    /// `/metrics` of the webhook binary at the end (empty without the webhook).
    pub webhook_metrics: String,
    /// How long each phase of the scenario took (where a run's time goes).
    pub phases: Vec<(String, Duration)>,
}

/// What the outcome means per pod and minute, and the latency quantiles.
#[derive(Debug, Clone, Copy, Default)]
pub struct Summary {
    pub refusals_per_1000: f64,
    pub agent_patches: f64,
    pub kubelet_sent: f64,
    pub kubelet_stored: f64,
    pub stored_pod_writes: f64,
    pub calls: usize,
    pub p50: Duration,
    pub p99: Duration,
    /// Upper bounds of the webhook's own p50/p99 (its request-duration histogram).
    pub server_p50: Option<f64>,
    pub server_p99: Option<f64>,
}

impl Outcome {
    pub fn summary(&mut self, s: &Scale) -> Summary {
        let per_pod_min = |n: u64| n as f64 / s.pods as f64 / (s.rest.as_secs_f64() / 60.0);
        let name = "resizelet_webhook_request_duration_seconds";
        Summary {
            refusals_per_1000: self.refusals as f64 * 1000.0 / self.resizes.max(1) as f64,
            agent_patches: per_pod_min(self.agent_patches_at_rest),
            kubelet_sent: per_pod_min(self.kubelet_patches_at_rest),
            kubelet_stored: per_pod_min(self.kubelet_stored_at_rest),
            stored_pod_writes: per_pod_min(self.stored_pod_writes_at_rest),
            calls: self.webhook_latency.len(),
            p50: quantile(&mut self.webhook_latency, 0.5),
            p99: quantile(&mut self.webhook_latency, 0.99),
            server_p50: histogram_quantile_bound(&self.webhook_metrics, name, 0.5),
            server_p99: histogram_quantile_bound(&self.webhook_metrics, name, 0.99),
        }
    }
}

/// The upper bound (`le`) of the first bucket of histogram `name` (Prometheus text format)
/// holding at least a `q` share of the observations; `None` without observations.
pub fn histogram_quantile_bound(text: &str, name: &str, q: f64) -> Option<f64> {
    let prefix = format!("{name}_bucket{{le=\"");
    let buckets: Vec<(f64, f64)> = text
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(&prefix)?;
            let (le, count) = rest.split_once("\"} ")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, count.trim().parse().ok()?))
        })
        .collect();
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    buckets
        .iter()
        .find(|(_, c)| *c >= q * total)
        .map(|(le, _)| *le)
}

fn container(round: i64) -> TestContainer {
    TestContainer::new("app")
        .cpu(Some(50 + 10 * round), Some(200 + 10 * round))
        .memory(Some(32 * MIB), Some(64 * MIB))
}

fn spec_resources(c: &TestContainer) -> Value {
    json!({"requests": {"cpu": format!("{}m", c.cpu_request.unwrap()), "memory": c.memory_request.unwrap().to_string()},
           "limits": {"cpu": format!("{}m", c.cpu_limit.unwrap()), "memory": c.memory_limit.unwrap().to_string()}})
}

/// Creates the API pod and its CRI sandbox and container, then lets the kubelet actor report
/// the start as the kubelet does: a burst of status writes (created, started, ready).
async fn start_pod(
    cluster: &Cluster,
    kubelet: &resizelet_double::KubeletActorHandle,
    mut pod: TestPod,
) -> RunningPod {
    let c = &pod.containers[0];
    let created = cluster
        .api
        .create_pod(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": pod.name, "namespace": pod.namespace},
            "spec": {"nodeName": NODE, "terminationGracePeriodSeconds": 2, "containers": [
                {"name": c.name, "image": "resizelet.test/busybox:1", "resources": spec_resources(c)}]}
        }))
        .expect("create pod");
    pod.uid = created["metadata"]["uid"].as_str().unwrap().to_string();
    let running = cluster.kubelet.run_pod(&pod).await;
    let (name, id) = &running.containers[0];
    let status = |ready: bool, started: bool| {
        let cond = if ready { "True" } else { "False" };
        json!({"phase": "Running",
            "conditions": [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": cond},
                           {"type": "ContainersReady", "status": cond}, {"type": "PodScheduled", "status": "True"}],
            "containerStatuses": [{"name": name, "image": "resizelet.test/busybox:1", "imageID": "sha256:0",
                "containerID": format!("containerd://{id}"), "ready": ready, "restartCount": 0, "started": started,
                "state": {"running": {"startedAt": "2026-11-25T00:00:00Z"}}}]})
    };
    for (ready, started) in [(false, false), (false, true), (true, true)] {
        kubelet.set_status(&pod.namespace, &pod.name, &status(ready, started));
    }
    running
}

/// Polls `f` every 50 ms until it holds; panics after `timeout`.
pub async fn until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Resizes `p` to `next` like a client: whether the first `/resize` was refused for missing
/// resize fields; a refused one is retried until the fields are back (a busy node under the war
/// can take longer than the harness's 20 s for one pod).
async fn resize(cluster: &Cluster, p: &TestPod, next: &[TestContainer]) -> bool {
    let refusal = |e: &str| e.contains("without support for resize");
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut refused = false;
    loop {
        match cluster.resize_once(p, next).await {
            Ok(_) => return refused,
            Err(e) if refusal(&e) && Instant::now() < deadline => refused = true,
            Err(e) => panic!("resize of {}: {e}", p.name),
        }
        tokio::time::sleep(Duration::from_millis(20)).await
    }
}

pub async fn scenario(with_webhook: bool, s: &Scale) -> Outcome {
    let mut phases = Phases::default();
    let cluster = Cluster::start("64", "256Gi").await;
    let dir = tempfile::tempdir().unwrap();
    let webhook = if with_webhook {
        let (w, pki) = Webhook::start_fresh("resizelet-webhook", "10s").await;
        register(&cluster.api, &w.url(), &pki.ca_pem, FailurePolicy::Ignore);
        Some(w)
    } else {
        None
    };
    phases.end("cluster and webhook");
    let kubelet = cluster.api.start_gate_off_kubelet(NODE, s.period);
    let _agent = Agent::start(&cluster, &dir.path().join("state"));
    // every stored pod change, and when the last one happened
    let pod_writes = Arc::new(AtomicU64::new(0));
    let last_write = Arc::new(std::sync::Mutex::new(Instant::now()));
    let mut feed = cluster.api.watch_changes();
    let (w, l) = (pod_writes.clone(), last_write.clone());
    let counter = tokio::spawn(async move {
        while let Ok(ev) = feed.recv().await {
            if ev.kind == "Pod" {
                w.fetch_add(1, Ordering::Relaxed);
                *l.lock().unwrap() = Instant::now();
            }
        }
    });

    let pods: Vec<TestPod> = (0..s.pods)
        .map(|i| TestPod::new(&format!("w{i}"), QosClass::Burstable, vec![container(0)]))
        .collect();
    let running: Vec<RunningPod> = futures::stream::iter(pods.clone())
        .map(|p| start_pod(&cluster, &kubelet, p))
        .buffer_unordered(8)
        .collect()
        .await;
    let pods: Vec<TestPod> = running.iter().map(|r| r.pod.clone()).collect();
    phases.end("pods started");
    // each pod once seen with its fields (without the webhook they are erased again and again)
    let mut ready = std::collections::BTreeSet::new();
    until("every pod's resize fields", Duration::from_secs(60), || {
        for p in &pods {
            if !ready.contains(&p.name) && resize_fields_present(&cluster.pod(p)) {
                ready.insert(p.name.clone());
            }
        }
        ready.len() == pods.len()
    })
    .await;
    phases.end("resize fields");

    let mut out = Outcome::default();
    for round in 1..=s.rounds as i64 {
        // all at once; a refusal is counted, then retried once the fields are back
        let next = [container(round)];
        let refused = futures::future::join_all(pods.iter().map(|p| resize(&cluster, p, &next)));
        out.resizes += pods.len() as u64;
        out.refusals += refused.await.into_iter().filter(|r| *r).count() as u64;
        phases.end(&format!("round {round} resized"));
        // each pod once seen done (without the webhook the kubelet keeps erasing the fields, so
        // all of them are rarely complete at the same instant)
        let mut done = std::collections::BTreeSet::new();
        until(
            &format!("round {round} done"),
            Duration::from_secs(90),
            || {
                for p in &pods {
                    if !done.contains(&p.name) && resize_done(&cluster.pod(p)) {
                        done.insert(p.name.clone());
                    }
                }
                done.len() == pods.len()
            },
        )
        .await;
        phases.end(&format!("round {round} done"));
    }

    // at rest: nothing left to do (with the webhook, no stored pod write for three periods)
    let settle = Instant::now();
    until("quiet", s.period * 10 + Duration::from_secs(5), || {
        last_write.lock().unwrap().elapsed() >= s.period * 3
            || (!with_webhook && settle.elapsed() >= s.period * 3)
    })
    .await;
    phases.end("quiet");
    let (a0, k0, w0) = (
        cluster.api.stats(),
        kubelet.stats(),
        pod_writes.load(Ordering::Relaxed),
    );
    tokio::time::sleep(s.rest).await; // the measurement window itself
    let (a1, k1, w1) = (
        cluster.api.stats(),
        kubelet.stats(),
        pod_writes.load(Ordering::Relaxed),
    );
    phases.end("rest");
    out.agent_patches_at_rest = a1.pod_status_patches - a0.pod_status_patches;
    out.stored_pod_writes_at_rest = w1 - w0;
    out.kubelet_patches_at_rest = k1.patches_sent - k0.patches_sent;
    out.kubelet_stored_at_rest = a1.kubelet_actor_writes - a0.kubelet_actor_writes;
    let adm = cluster.api.admission_stats();
    out.webhook_latency = adm.latencies;
    out.webhook_failures = adm.failures;
    if let Some(w) = &webhook {
        out.webhook_metrics = w.metrics_text().await;
    }
    // every pod still resizable
    assert!(pods.iter().all(|p| resize_fields_present(&cluster.pod(p))) || !with_webhook);
    counter.abort();
    drop(webhook);
    futures::stream::iter(running)
        .for_each_concurrent(8, |r| async { r.teardown().await.expect("teardown") })
        .await;
    phases.end("teardown");
    out.phases = phases.done;
    out
}

/// The phases of a scenario as they end.
struct Phases {
    since: Instant,
    done: Vec<(String, Duration)>,
}

impl Default for Phases {
    fn default() -> Self {
        Phases {
            since: Instant::now(),
            done: Vec::new(),
        }
    }
}

impl Phases {
    fn end(&mut self, name: &str) {
        self.done.push((name.to_string(), self.since.elapsed()));
        self.since = Instant::now();
    }
}

/// One line: the scenario's numbers.
pub fn report(name: &str, o: &mut Outcome, s: &Scale) -> Summary {
    let m = o.summary(s);
    eprintln!(
        "webhook e2e [{name}] {} pods, period {:?}, rest {:?}: refusals {}/{} = {:.1} per 1,000 resizes; at rest per pod per minute: agent patches {:.2}, kubelet patches sent {:.2}, kubelet writes stored {:.2}, stored pod writes {:.2}; webhook calls {} p50 {:?} p99 {:?} (server histogram p50 ≤ {:?} s, p99 ≤ {:?} s), failures {}",
        s.pods,
        s.period,
        s.rest,
        o.refusals,
        o.resizes,
        m.refusals_per_1000,
        m.agent_patches,
        m.kubelet_sent,
        m.kubelet_stored,
        m.stored_pod_writes,
        m.calls,
        m.p50,
        m.p99,
        m.server_p50,
        m.server_p99,
        o.webhook_failures,
    );
    let phases: Vec<String> = o
        .phases
        .iter()
        .map(|(n, d)| format!("{n} {d:.1?}"))
        .collect();
    eprintln!("webhook e2e [{name}] phases: {}", phases.join(", "));
    m
}

#[cfg(test)]
mod tests {
    #[test]
    fn histogram_bounds() {
        let text = "x_bucket{le=\"0.001\"} 2\nx_bucket{le=\"0.002\"} 9\nx_bucket{le=\"+Inf\"} 10\n";
        assert_eq!(super::histogram_quantile_bound(text, "x", 0.5), Some(0.002));
        assert_eq!(
            super::histogram_quantile_bound(text, "x", 0.99),
            Some(f64::INFINITY)
        );
        assert_eq!(super::histogram_quantile_bound("", "x", 0.5), None);
    }
}
