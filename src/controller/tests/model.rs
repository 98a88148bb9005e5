//! The controller's per-pod scheduling against a model of the API server and the watch:
//! random interleavings of resizes, watch deliveries (late, in order), pass progress, slow
//! enactments with their intermediate `PodResizeInProgress` write, other writers' status
//! updates (which make our writes conflict) and erasures of the resize fields. Once the agent
//! is idle and the watch delivered everything, every pod's allocated and actuated resources
//! equal its latest desired spec and its status says so.

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
    if let Ok(Some(done)) = tokio::time::timeout(Duration::from_millis(2), c.tasks.next()).await {
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
                    c.handle(pod_input(watcher::Event::Apply(pod)));
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
            c.handle(pod_input(watcher::Event::Apply(pod)));
        }
        c.settle().await;
        for name in PODS {
            c.handle(pod_input(watcher::Event::Apply(w.pod_object(name))));
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
