//! Criterion benchmarks of the pure engine: admission, planning, status computation and the
//! pending queue, at 110 (the default max pods) and 1,000 pods. `cargo bench --bench engine`.

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use resizelet::core::admission::{admit, Decision, NodePressure};
use resizelet::core::plan::{plan_pod_resize, PlanInput};
use resizelet::core::pod_cgroup::pod_cgroup_values;
use resizelet::core::pod_status::{next_conditions, PassResult, ResizeConditions};
use resizelet::core::queue::{PendingQueue, QueueEntry};
use resizelet::core::status::{allocated_resources_status, container_resources_status};

#[path = "fixtures.rs"]
mod fixtures;
use fixtures::{node, pod, resized};

fn admission(c: &mut Criterion) {
    let mut g = c.benchmark_group("admission");
    for n in [110, 1000] {
        let node = node(n);
        let pods: Vec<_> = (0..n).map(|i| pod(i, 1, 100, 64)).collect();
        let desired = resized(&pods[0], 300);
        let allocation = pods[0].resource_state();
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                let d = admit(
                    black_box(&desired),
                    &allocation,
                    &pods[1..],
                    &node,
                    NodePressure::default(),
                );
                assert_eq!(d, Decision::Accepted);
            })
        });
    }
    g.finish();
}

fn planning(c: &mut Criterion) {
    let mut g = c.benchmark_group("plan");
    let node = node(110);
    for containers in [1, 4] {
        let before = pod(0, containers, 100, 64);
        let after = resized(&before, 300);
        let actuated = before.resource_state();
        let running: BTreeMap<String, String> = before
            .containers
            .iter()
            .map(|c| (c.name.clone(), format!("id-{}", c.name)))
            .collect();
        let cgroup = pod_cgroup_values(&before, &node);
        g.bench_with_input(
            BenchmarkId::new("containers", containers),
            &containers,
            |b, _| {
                b.iter(|| {
                    let plan = plan_pod_resize(&PlanInput {
                        pod: black_box(&after),
                        actuated: &actuated,
                        running: &running,
                        pod_cgroup: Some(cgroup),
                        last_written_shares: None,
                        node: &node,
                    });
                    assert!(!plan.is_empty());
                })
            },
        );
    }
    g.finish();
}

/// Conditions, events and container status resources for every pod of the node (one full
/// re-status sweep).
fn status(c: &mut Criterion) {
    let mut g = c.benchmark_group("status_sweep");
    for n in [110, 1000] {
        let pods: Vec<_> = (0..n).map(|i| pod(i, 1, 100, 64)).collect();
        let desired: Vec<_> = pods.iter().map(|p| resized(p, 200)).collect();
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                let mut written = 0;
                for (allocated, want) in pods.iter().zip(&desired) {
                    let (conditions, _events) = next_conditions(
                        &ResizeConditions::default(),
                        &PassResult {
                            decision: &Decision::Accepted,
                            desired: want,
                            allocated: want,
                            in_progress: false,
                            error: None,
                        },
                    );
                    for ctr in &allocated.containers {
                        let alloc = allocated_resources_status(&ctr.resources);
                        let r = container_resources_status(&ctr.resources, None, None, true, None);
                        written += alloc.len() + r.limits.len();
                    }
                    black_box(conditions);
                }
                written
            })
        });
    }
    g.finish();
}

fn queue(c: &mut Criterion) {
    let pods: Vec<_> = (0..1000).map(|i| pod(i, 1, 100, 64)).collect();
    let entries: Vec<_> = pods
        .iter()
        .enumerate()
        .map(|(i, p)| QueueEntry::new(&resized(p, 100 + (i as i64 % 3) * 100), p, Some(i as i64)))
        .collect();
    c.bench_function("queue/insert_1000_then_order", |b| {
        b.iter(|| {
            let mut q = PendingQueue::default();
            for e in &entries {
                q.insert(e.clone());
            }
            black_box(q.uids())
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(std::time::Duration::from_millis(300))
        .measurement_time(std::time::Duration::from_secs(1));
    targets = admission, planning, status, queue
}
criterion_main!(benches);
