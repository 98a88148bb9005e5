//! Pods and a node for the benchmarks (shared by `benches/engine.rs` and
//! `benches/resizelet_bench.rs`).

#![allow(dead_code)]

use resizelet::core::node::NodeConfig;
use resizelet::core::quantity::Quantity;
use resizelet::core::resources::{PodSpec, ResourceList};
use resizelet::testing;

/// A Guaranteed pod `bench/p<i>` with `containers` containers of `cpu_m` millicores and `mem_mib`
/// MiB (the kit's builders).
pub fn pod(i: usize, containers: usize, cpu_m: i64, mem_mib: i64) -> PodSpec {
    let r = format!("cpu={cpu_m}m,memory={mem_mib}Mi");
    let cs = (0..containers)
        .map(|c| testing::container(&format!("c{c}"), &r, &r))
        .collect();
    let mut p = testing::pod(&format!("00000000-0000-4000-8000-{i:012}"), cs);
    p.namespace = "bench".into();
    p.name = format!("p{i}");
    p
}

/// The same pod asking for `cpu_m` millicores in every container (generation + 1).
pub fn resized(p: &PodSpec, cpu_m: i64) -> PodSpec {
    let mut d = p.clone();
    for c in &mut d.containers {
        for list in [&mut c.resources.requests, &mut c.resources.limits] {
            list.insert("cpu".into(), Quantity::from_milli(cpu_m));
        }
    }
    d.generation += 1;
    d
}

/// A node big enough for `pods` pods of 100m / 64Mi with room to grow.
pub fn node(pods: usize) -> NodeConfig {
    let cpu = Quantity::from_milli(pods as i64 * 200 + 4000);
    let memory = Quantity::from_bytes((pods as i64 * 128 + 4096) << 20);
    NodeConfig {
        machine_memory_bytes: (pods as i64 * 128 + 8192) << 20,
        allocatable: ResourceList::from([("cpu".to_string(), cpu), ("memory".to_string(), memory)]),
        ..NodeConfig::default()
    }
}

/// Percentile `p` (0–100) of sorted samples.
pub fn percentile<T: Copy>(sorted: &[T], p: usize) -> T {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}
