//! Resizes in quick succession (issue 11 item 2, the lost resize) and events kept off the
//! status path (issue 11 item 3).

use super::*;

/// Issue 11 item 2: resizes of one pod in quick succession while the first one's enactment is
/// slow enough for the intermediate `PodResizeInProgress` write. `later` resizes are stored
/// (and their watch events delivered) before the in-progress write; `after` ones once it was
/// written. Once idle, allocated, actuated and the status must show the last resize.
async fn quick_resizes(later: &[&str], after: &[&str]) {
    let w = World::new();
    let (mut c, writes) = w
        .held_resize(Duration::from_millis(1), "500m", "300Mi")
        .await;
    c.dispatch();
    for mem in later {
        let next = w.resize("web", "500m", mem);
        c.handle(pod_input(watcher::Event::Apply(next)));
    }
    let want = after.last().or(later.last()).unwrap().to_string();
    let after: Vec<String> = after.iter().map(|m| m.to_string()).collect();
    let (seen, stored) = w
        .settle_beside(&mut c, move |w| async move {
            let seen = until(|| {
                w.writer.status_patches().iter().skip(writes).any(|(_, p)| {
                    p["status"]["conditions"]
                        .to_string()
                        .contains("PodResizeInProgress")
                })
            })
            .await;
            let stored: Vec<Pod> = after.iter().map(|m| w.resize("web", "500m", m)).collect();
            w.runtime.release_updates();
            (seen, stored)
        })
        .await;
    assert!(
        seen,
        "no PodResizeInProgress write while the enactment was held"
    );
    for pod in stored {
        c.step(pod_input(watcher::Event::Apply(pod))).await;
    }
    // the watch delivers the echoes of our writes
    for _ in 0..3 {
        let echo = w.pod_object("web");
        c.step(pod_input(watcher::Event::Apply(echo))).await;
    }
    let v = w.pod("web");
    let generation = v["metadata"]["generation"].as_i64().unwrap();
    let app = &v["status"]["containerStatuses"][0];
    assert_eq!(
        (
            app["allocatedResources"]["memory"].as_str(),
            app["resources"]["limits"]["memory"].as_str(),
            v["status"]["observedGeneration"].as_i64(),
        ),
        (Some(want.as_str()), Some(want.as_str()), Some(generation)),
        "allocated, actual and observedGeneration after the last resize: {}",
        v["status"]
    );
    assert!(
        v["status"]["conditions"]
            .as_array()
            .is_none_or(|c| c.is_empty()),
        "stale conditions: {}",
        v["status"]
    );
    assert_eq!(
        w.runtime.resources("u1-app").unwrap().memory_limit_in_bytes,
        crate::core::quantity::Quantity::parse(&want)
            .unwrap()
            .value(),
        "actuated memory limit"
    );
}

#[tokio::test]
async fn two_quick_resizes_are_both_enacted() {
    quick_resizes(&["400Mi"], &[]).await;
}

#[tokio::test]
async fn three_quick_resizes_are_all_enacted() {
    quick_resizes(&["400Mi", "450Mi"], &[]).await;
}

#[tokio::test]
async fn resizes_before_and_after_the_in_progress_write_are_enacted() {
    quick_resizes(&["400Mi"], &["450Mi"]).await;
}

#[tokio::test]
async fn a_resize_after_the_in_progress_write_is_enacted() {
    quick_resizes(&[], &["400Mi"]).await;
}

/// A resize stored while a pass of the previous one runs makes its status write conflict;
/// the re-read pod carries the newer generation, which this pass did not admit: no write may
/// claim it with the older allocation. Once idle, the newer resize is enacted.
#[tokio::test]
async fn a_conflict_does_not_claim_the_newer_generation() {
    let w = World::new();
    let (mut c, writes) = w.web(None).await;
    let first = w.resize("web", "500m", "300Mi");
    c.handle(pod_input(watcher::Event::Apply(first)));
    c.dispatch();
    // stored (not yet seen through the watch) before the pass writes
    let second = w.resize("web", "500m", "400Mi");
    c.settle().await;
    c.step(pod_input(watcher::Event::Apply(second))).await;
    let claims: Vec<(Option<i64>, Option<String>)> = w.writer.status_patches()[writes..]
        .iter()
        .map(|(_, p)| {
            (
                p["status"]["observedGeneration"].as_i64(),
                p["status"]["containerStatuses"][0]["allocatedResources"]["memory"]
                    .as_str()
                    .map(String::from),
            )
        })
        .collect();
    assert!(
        !claims.contains(&(Some(3), Some("300Mi".into()))),
        "generation 3 claimed with generation 2's allocation: {claims:?}"
    );
    let v = w.pod("web");
    assert_eq!(
        (
            v["status"]["containerStatuses"][0]["allocatedResources"]["memory"].as_str(),
            v["status"]["observedGeneration"].as_i64()
        ),
        (Some("400Mi"), Some(3)),
        "{}",
        v["status"]
    );
}

/// Issue 11 item 3: a completed resize costs one status write and nothing waits for its
/// events. With event creates held, the pod's pass still ends: the next resize of the same pod
/// is enacted and written while the first one's events wait.
#[tokio::test]
async fn events_do_not_hold_up_the_pods_next_pass() {
    let w = World::new();
    let (mut c, writes) = w.web(None).await;
    w.writer.hold_events();
    let first = w.resize("web", "500m", "300Mi");
    c.handle(pod_input(watcher::Event::Apply(first)));
    // the API server: once the first resize is written, a second one (its watch event on `rx`)
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let api = w.clone();
    let script = tokio::spawn(async move {
        let writer = api.writer.clone();
        let first_written = until(|| writer.status_patches().len() == writes + 1).await;
        let _ = tx.send(api.resize("web", "500m", "400Mi"));
        let second_written = until(|| writer.status_patches().len() == writes + 2).await;
        let held = writer.held_events();
        writer.release_events();
        (first_written, second_written, held)
    });
    loop {
        c.dispatch();
        tokio::select! {
            Some(pod) = rx.recv() => c.handle(pod_input(watcher::Event::Apply(pod))),
            Some(done) = c.tasks.next(), if !c.tasks.is_empty() => c.apply(done),
            else => break,
        }
    }
    let (first_written, second_written, held) = script.await.unwrap();
    c.settle().await;
    assert!(first_written, "the first resize was never written");
    assert!(
        second_written,
        "the second resize waited for the first one's events"
    );
    assert!(held > 0, "no event create was held");
    assert_eq!(
        w.pod("web")["status"]["containerStatuses"][0]["allocatedResources"]["memory"],
        "400Mi"
    );
    assert_eq!(
        w.writer.status_patches().len(),
        writes + 2,
        "one write per resize"
    );
    assert_eq!(
        reasons(&w.writer),
        [
            "ResizeStarted",
            "ResizeCompleted",
            "ResizeStarted",
            "ResizeCompleted"
        ]
    );
}

/// Decision 5's intermediate write emits `ResizeStarted`; the final status write does not wait
/// for it.
#[tokio::test]
async fn the_final_write_does_not_wait_for_the_in_progress_events() {
    let w = World::new();
    let (mut c, writes) = w.held_resize(Duration::from_millis(1), "1", "256Mi").await;
    w.writer.hold_events();
    let (in_progress, done) = w
        .settle_beside(&mut c, move |w| async move {
            let in_progress = until(|| w.writer.status_patches().len() == writes + 1).await;
            w.runtime.release_updates();
            let done = until(|| w.writer.status_patches().len() == writes + 2).await;
            w.writer.release_events();
            (in_progress, done)
        })
        .await;
    assert!(in_progress, "no in-progress write");
    assert!(done, "the final write waited for the ResizeStarted event");
    assert_eq!(reasons(&w.writer), ["ResizeStarted", "ResizeCompleted"]);
}
