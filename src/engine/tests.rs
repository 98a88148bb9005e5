use super::*;
use crate::cgroup::memory::MemoryCgroupFs;
use crate::checkpoint::MemoryCheckpointStore;
use crate::core::node::CgroupVersion;
use crate::cri::fake::{CallKind, FakeRuntime};
use crate::testing::{self, *};

struct Node {
    runtime: Arc<FakeRuntime>,
    cgroups: Arc<MemoryCgroupFs>,
    store: Arc<MemoryCheckpointStore>,
    config: NodeConfig,
}

impl Node {
    fn new() -> Self {
        Node {
            runtime: Arc::new(FakeRuntime::new()),
            cgroups: Arc::new(MemoryCgroupFs::new(CgroupVersion::V1)),
            store: Arc::new(MemoryCheckpointStore::new()),
            config: NodeConfig {
                machine_memory_bytes: 8 << 30,
                allocatable: list("cpu=4,memory=8Gi"),
                ..NodeConfig::default()
            },
        }
    }

    fn start(&self, pod: &PodSpec) {
        testing::start_pod(&self.runtime, &self.cgroups, pod, &self.config);
    }

    fn engine(&self) -> Engine {
        Engine::open(
            self.runtime.clone(),
            self.cgroups.clone(),
            self.store.clone(),
            self.config.clone(),
        )
        .unwrap()
    }
}

fn resized(p: &PodSpec, requests: &str, limits: &str) -> PodSpec {
    let mut d = p.clone();
    d.containers[0].resources = reqs(requests, limits);
    d.generation += 1;
    d
}

#[tokio::test]
async fn seeds_then_admits_enacts_and_survives_a_restart() {
    let node = Node::new();
    let p = pod(
        "u1",
        vec![container("c", "cpu=500m,memory=1Gi", "cpu=1,memory=1Gi")],
    );
    node.start(&p);
    let engine = node.engine();
    let first = engine
        .sync_pod(&p, &[], NodePressure::default(), None)
        .await
        .unwrap();
    assert!(first.seeded);
    assert_eq!(first.decision, Decision::Unchanged);
    assert!(first.plan.is_empty(), "{:?}", first.plan);
    assert!(!first.in_progress);

    let bigger = resized(&p, "cpu=1,memory=2Gi", "cpu=2,memory=2Gi");
    let out = engine
        .sync_pod(&bigger, &[], NodePressure::default(), None)
        .await
        .unwrap();
    assert_eq!(out.decision, Decision::Accepted);
    out.enactment.unwrap();
    assert!(!out.in_progress);
    assert_eq!(
        node.runtime
            .resources("u1-c")
            .unwrap()
            .memory_limit_in_bytes,
        2 << 30
    );
    assert_eq!(
        node.cgroups.pod("u1").unwrap().memory_limit,
        Some(crate::core::plan::Limit::Value(2 << 30))
    );

    // a restarted agent reloads both checkpoints: nothing is re-admitted or re-enacted
    let calls = node
        .runtime
        .calls_of(CallKind::UpdateContainerResources)
        .len();
    let restarted = node.engine();
    let again = restarted
        .sync_pod(&bigger, &[], NodePressure::default(), None)
        .await
        .unwrap();
    assert!(!again.seeded);
    assert_eq!(again.decision, Decision::Unchanged);
    assert!(again.plan.is_empty());
    assert_eq!(
        node.runtime
            .calls_of(CallKind::UpdateContainerResources)
            .len(),
        calls
    );
}

#[tokio::test]
async fn deferred_until_another_pod_leaves_and_infeasible_beyond_allocatable() {
    let node = Node::new();
    let a = pod("a", vec![container("c", "cpu=1", "")]);
    let b = pod("b", vec![container("c", "cpu=2", "")]);
    node.start(&a);
    node.start(&b);
    let engine = node.engine();
    engine
        .sync_pod(&a, std::slice::from_ref(&b), NodePressure::default(), None)
        .await
        .unwrap();
    engine
        .sync_pod(&b, std::slice::from_ref(&a), NodePressure::default(), None)
        .await
        .unwrap();

    let grow = resized(&a, "cpu=2500m", "");
    let out = engine
        .sync_pod(
            &grow,
            std::slice::from_ref(&b),
            NodePressure::default(),
            None,
        )
        .await
        .unwrap();
    assert!(
        matches!(out.decision, Decision::Deferred { ref reason, .. } if reason == "OutOfcpu"),
        "{:?}",
        out.decision
    );
    assert!(out.plan.is_empty());
    assert_eq!(engine.allocated("a"), Some(a.resource_state()));

    engine.forget_pod("b").unwrap();
    let out = engine
        .sync_pod(&grow, &[], NodePressure::default(), None)
        .await
        .unwrap();
    assert_eq!(out.decision, Decision::Accepted);
    assert_eq!(node.runtime.resources("a-c").unwrap().cpu_shares, 2560);

    let huge = resized(&a, "cpu=5", "");
    let out = engine
        .sync_pod(&huge, &[], NodePressure::default(), None)
        .await
        .unwrap();
    assert!(
        matches!(out.decision, Decision::Infeasible { .. }),
        "{:?}",
        out.decision
    );
}

#[tokio::test]
async fn failed_allocation_checkpoint_is_not_accepted() {
    let node = Node::new();
    let p = pod("u", vec![container("c", "cpu=500m", "")]);
    node.start(&p);
    let engine = node.engine();
    engine
        .sync_pod(&p, &[], NodePressure::default(), None)
        .await
        .unwrap();
    node.store
        .fail_saves
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let err = engine
        .sync_pod(
            &resized(&p, "cpu=1", ""),
            &[],
            NodePressure::default(),
            None,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::Checkpoint(_)), "{err}");
    assert_eq!(engine.allocated("u"), Some(p.resource_state()));
    assert!(node
        .runtime
        .calls_of(CallKind::UpdateContainerResources)
        .is_empty());
}

#[tokio::test]
async fn unknown_pod_is_a_clear_error() {
    let node = Node::new();
    let engine = node.engine();
    let p = pod("ghost", vec![container("c", "cpu=1", "")]);
    let err = engine
        .sync_pod(&p, &[], NodePressure::default(), None)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("has no containers in the runtime"),
        "{err}"
    );
}
