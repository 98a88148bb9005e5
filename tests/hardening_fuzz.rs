//! Arbitrary-input runs of every parser that reads outside input (issue 14): quantities,
//! checkpoint documents, the config TOML, API pods through `k8s::convert` and `resizelet
//! resize` pod files. Each target starts from a corpus of real and hostile inputs, mutates it
//! and adds random input; none may panic, and what parses must survive its own round trip.
//! `cargo fuzz` needs nightly; this runs in the normal test suite with a bounded number of cases
//! (`RESIZELET_FUZZ_CASES` overrides it, e.g. for a longer run). Each target prints how many
//! inputs it executed.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use resizelet::core::quantity::Quantity;
use resizelet::core::state::{decode, encode};

fn cases(default: u32) -> u32 {
    std::env::var("RESIZELET_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs `check` on `strategy`'s inputs; returns how many were executed.
fn run<S: Strategy>(name: &str, default_cases: u32, strategy: S, check: impl Fn(S::Value)) -> u64
where
    S::Value: std::fmt::Debug,
{
    let executed = AtomicU64::new(0);
    let mut runner = TestRunner::new(Config {
        cases: cases(default_cases),
        failure_persistence: None,
        ..Config::default()
    });
    let started = std::time::Instant::now();
    runner
        .run(&strategy, |v| {
            executed.fetch_add(1, Ordering::Relaxed);
            check(v);
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let n = executed.load(Ordering::Relaxed);
    eprintln!(
        "fuzz {name}: {n} executions in {:.1?}, no panic",
        started.elapsed()
    );
    n
}

/// `s` with one edit (insert, delete or replace a char) at each of `edits`.
fn mutated(corpus: &'static [&'static str]) -> impl Strategy<Value = String> {
    (
        prop::sample::select(corpus),
        prop::collection::vec((any::<usize>(), 0u8..3, any::<char>()), 0..4),
    )
        .prop_map(|(seed, edits)| {
            let mut chars: Vec<char> = seed.chars().collect();
            for (at, op, c) in edits {
                let i = if chars.is_empty() {
                    0
                } else {
                    at % (chars.len() + 1)
                };
                match op {
                    0 => chars.insert(i, c),
                    1 if i < chars.len() => {
                        chars.remove(i);
                    }
                    _ if i < chars.len() => chars[i] = c,
                    _ => chars.push(c),
                }
            }
            chars.into_iter().collect()
        })
}

const QUANTITIES: &[&str] = &[
    "100m",
    "1",
    "1.5",
    "64Mi",
    "1Gi",
    "8Ei",
    "99999999999999Ei",
    "-1",
    "-64Mi",
    "1e18",
    "1E-9",
    "0.000000001",
    "9223372036854775807m",
    "1e27",
    "1e28",
    ".5",
    "+1k",
    "",
    "-",
    ".",
    "1 core",
    "12345678901234567890123456789012345678901234567890",
];

#[test]
fn fuzz_quantities() {
    let strategy = prop_oneof![
        mutated(QUANTITIES),
        "[-+]?[0-9]{0,30}(\\.[0-9]{0,12})?([eE][-+]?[0-9]{1,4}|[numkMGTPE]|[KMGTPE]i)?",
        any::<String>(),
    ];
    run("quantity", 10_000, strategy, |s| {
        if let Ok(q) = Quantity::parse(&s) {
            let (_, _) = (q.value(), q.milli_value());
            let _ = q.add(&q).sub(&q);
            let text = q.to_string();
            let again = Quantity::parse(&text)
                .unwrap_or_else(|e| panic!("{s:?} formats as {text:?}, which does not parse: {e}"));
            assert_eq!(again, q, "{s:?} → {text:?}");
        }
    });
}

const CHECKPOINTS: &[&str] = &[
    r#"{"version":1,"data":"{\"entries\":{}}","checksum":1}"#,
    r#"{"version":7,"data":"","checksum":0}"#,
    r#"{"version":1,"data":"{\"entries\":{\"u\":{\"ContainerResources\":{\"app\":{\"requests\":{\"cpu\":\"-1\"}}}}}}","checksum":0}"#,
    "{half",
    "",
    "null",
    "[]",
];

#[test]
fn fuzz_checkpoint_documents() {
    use resizelet::core::state::{CheckpointData, PodResourceState};
    // valid documents (checksummed), to mutate past the checksum into the data
    let valid: &'static [&'static str] = {
        let mut out: Vec<&'static str> = CHECKPOINTS.to_vec();
        let mut data = CheckpointData::default();
        let mut pod = PodResourceState::default();
        pod.container_resources.insert(
            "app".into(),
            serde_json::from_str(
                r#"{"requests":{"cpu":"100m","memory":"64Mi"},"limits":{"cpu":"1"}}"#,
            )
            .unwrap(),
        );
        data.entries.insert("uid-1".into(), pod);
        out.push(Box::leak(
            String::from_utf8(encode(&data)).unwrap().into_boxed_str(),
        ));
        Box::leak(out.into_boxed_slice())
    };
    let strategy = prop_oneof![
        mutated(valid).prop_map(String::into_bytes),
        prop::collection::vec(any::<u8>(), 0..256),
    ];
    run("checkpoint document", 10_000, strategy, |bytes| {
        if let Ok(data) = decode(&bytes) {
            assert_eq!(decode(&encode(&data)).unwrap(), data);
        }
    });
}

#[test]
fn fuzz_config_toml() {
    let default = Box::leak(resizelet::config::default_toml().into_boxed_str());
    let corpus: &'static [&'static str] = Box::leak(
        vec![
            &*default,
            "cri-timeout-ms = 1000000000000000000\nnode-name = \"w1\"\n",
            "kube-api-qps = 1e-300\nnode-name = \"w1\"\n",
            "kube-api-qps = nan\n",
            "kube-api-burst = -1\n",
            "admin-address = \"[::1]:99999\"\n",
            "root-dir = \"\"\nnode-name = \"w1\"\n",
            "[section]\nx = 1\n",
            "node-name = \"w1\"\nin-progress-threshold-ms = 18446744073709551615\n",
        ]
        .into_boxed_slice(),
    );
    let strategy = prop_oneof![mutated(corpus), any::<String>()];
    run("config toml", 3_000, strategy, |text| {
        if let Ok(layer) = resizelet::config::parse(Path::new("/fuzz.toml"), &text) {
            if let Ok(s) = resizelet::config::resolve(layer) {
                assert!(s.host.cri_timeout.as_millis() >= 1);
                assert!(s.kube_api_qps >= resizelet::config::MIN_QPS);
                let _ = resizelet::config::describe(&s);
            }
        }
    });
}

/// Quantity-ish strings, including hostile ones, for the pod generators.
fn quantity_text() -> impl Strategy<Value = String> {
    prop_oneof![
        mutated(QUANTITIES),
        prop::sample::select(QUANTITIES).prop_map(String::from)
    ]
}

fn resource_map() -> impl Strategy<Value = serde_json::Value> {
    prop::collection::btree_map(
        prop::sample::select(&["cpu", "memory", "hugepages-2Mi", "ephemeral-storage"][..]),
        quantity_text(),
        0..3,
    )
    .prop_map(|m| serde_json::json!(m))
}

fn container_json() -> impl Strategy<Value = serde_json::Value> {
    (
        prop::sample::select(&["app", "side", "", "a/b"][..]),
        resource_map(),
        resource_map(),
        prop::option::of(prop::sample::select(&["Always", "Never", ""][..])),
    )
        .prop_map(|(name, requests, limits, restart)| {
            let mut c = serde_json::json!({"name": name, "image": "x",
                "resources": {"requests": requests, "limits": limits},
                "resizePolicy": [{"resourceName": "cpu", "restartPolicy": "NotRequired"}]});
            if let Some(r) = restart {
                c["restartPolicy"] = serde_json::json!(r);
            }
            c
        })
}

#[test]
fn fuzz_api_pods_through_convert() {
    use k8s_openapi::api::core::v1::Pod;
    use resizelet::k8s::convert::{pod_view, unusable_pod, unusable_status_patch};
    let structured = (
        prop::collection::vec(container_json(), 0..3),
        prop::collection::vec(container_json(), 0..2),
        resource_map(),
        prop::option::of(prop::sample::select(&["Running", "Succeeded", "Pending"][..])),
        any::<i64>(),
        prop::option::of(any::<i32>()),
    )
        .prop_map(|(containers, init, overhead, phase, generation, priority)| {
            serde_json::json!({
                "metadata": {"name": "p", "namespace": "ns", "uid": "u-1", "generation": generation,
                             "resourceVersion": "1"},
                "spec": {"nodeName": "n1", "containers": containers, "initContainers": init,
                         "overhead": overhead, "priority": priority},
                "status": {"phase": phase, "qosClass": "Burstable",
                           "conditions": [{"type": "PodResizePending", "status": "True",
                                           "reason": "Infeasible", "observedGeneration": generation}],
                           "containerStatuses": [{"name": "app", "image": "x", "imageID": "",
                               "ready": true, "restartCount": 0, "containerID": "containerd://abc",
                               "state": {"running": {}}}]}
            })
            .to_string()
        });
    let strategy = prop_oneof![4 => structured, 1 => any::<String>()];
    run("api pod json", 3_000, strategy, |text| {
        let Ok(pod) = serde_json::from_str::<Pod>(&text) else {
            return;
        };
        match pod_view(&pod) {
            Ok(view) => {
                resizelet::core::validate::validate_pod(&view.spec)
                    .expect("pod_view returns only valid specs");
            }
            Err(e) => {
                assert!(!e.to_string().is_empty());
                if let Some(u) = unusable_pod(&pod, &e) {
                    let patch = unusable_status_patch(&u, "2026-12-01T00:00:00Z");
                    assert_eq!(patch["status"]["conditions"][0]["reason"], "Infeasible");
                }
            }
        }
    });
}

#[test]
fn fuzz_resize_pod_files() {
    use resizelet::core::resources::PodSpec;
    let structured = (
        prop::collection::vec(container_json(), 0..3),
        prop::collection::vec(prop::sample::select(&["app", "side", "ghost"][..]), 0..3),
    )
        .prop_map(|(containers, running)| {
            let containers: Vec<serde_json::Value> = containers
                .into_iter()
                .map(|mut c| {
                    c.as_object_mut().unwrap().remove("image");
                    c.as_object_mut().unwrap().remove("resizePolicy");
                    c.as_object_mut().unwrap().remove("restartPolicy");
                    c
                })
                .collect();
            (
                serde_json::json!({"uid": "u", "namespace": "default", "name": "web",
                                   "containers": containers})
                .to_string(),
                running,
            )
        });
    run("resize pod file", 3_000, structured, |(text, running)| {
        let Ok(pod) = serde_json::from_str::<PodSpec>(&text) else {
            return;
        };
        let _ = resizelet::core::validate::validate_pod(&pod);
        let _ = resizelet::core::validate::check_containers(&pod, &running);
    });
}
