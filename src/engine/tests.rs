use super::*;
use crate::cri::fake::CallKind;
use crate::testing::*;

/// The engine's node: 8 GiB of machine memory, 4 cpu and 8 GiB allocatable.
fn world() -> World {
    World::with_config(node("cpu=4,memory=8Gi"))
}

#[tokio::test]
async fn seeds_then_admits_enacts_and_survives_a_restart() {
    let w = world();
    let p = pod(
        "u1",
        vec![container("c", "cpu=500m,memory=1Gi", "cpu=1,memory=1Gi")],
    );
    w.start(&p);
    let engine = w.engine();
    let first = sync(&engine, &p).await;
    assert!(first.seeded);
    assert_eq!(first.decision, Decision::Unchanged);
    assert!(first.plan.is_empty(), "{:?}", first.plan);
    assert!(!first.in_progress);

    let bigger = resized(&p, "cpu=1,memory=2Gi", "cpu=2,memory=2Gi");
    let out = sync(&engine, &bigger).await;
    assert_eq!(out.decision, Decision::Accepted);
    out.enactment.unwrap();
    assert!(!out.in_progress);
    assert_eq!(
        w.runtime.resources("u1-c").unwrap().memory_limit_in_bytes,
        2 << 30
    );
    assert_eq!(
        w.cgroups.pod("u1").unwrap().memory_limit,
        Some(crate::core::plan::Limit::Value(2 << 30))
    );

    // a restarted agent reloads both checkpoints: nothing is re-admitted or re-enacted
    let calls = w.runtime.calls_of(CallKind::UpdateContainerResources).len();
    let restarted = w.engine();
    let again = sync(&restarted, &bigger).await;
    assert!(!again.seeded);
    assert_eq!(again.decision, Decision::Unchanged);
    assert!(again.plan.is_empty());
    assert_eq!(
        w.runtime.calls_of(CallKind::UpdateContainerResources).len(),
        calls
    );
}

#[tokio::test]
async fn deferred_until_another_pod_leaves_and_infeasible_beyond_allocatable() {
    let w = world();
    let a = pod("a", vec![container("c", "cpu=1", "")]);
    let b = pod("b", vec![container("c", "cpu=2", "")]);
    w.start(&a);
    w.start(&b);
    let engine = w.engine();
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
    let out = sync(&engine, &grow).await;
    assert_eq!(out.decision, Decision::Accepted);
    assert_eq!(w.runtime.resources("a-c").unwrap().cpu_shares, 2560);

    let huge = resized(&a, "cpu=5", "");
    let out = sync(&engine, &huge).await;
    assert!(
        matches!(out.decision, Decision::Infeasible { .. }),
        "{:?}",
        out.decision
    );
}

#[tokio::test]
async fn failed_allocation_checkpoint_is_not_accepted() {
    let w = world();
    let p = pod("u", vec![container("c", "cpu=500m", "")]);
    w.start(&p);
    let engine = w.engine();
    sync(&engine, &p).await;
    w.store
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
    assert!(w
        .runtime
        .calls_of(CallKind::UpdateContainerResources)
        .is_empty());
}

#[tokio::test]
async fn unknown_pod_is_a_clear_error() {
    let w = world();
    let engine = w.engine();
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
