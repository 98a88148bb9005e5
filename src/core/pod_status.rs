//! Resize conditions and events of one pod sync (spec §3.2, §4.4, §7.4, §12.3, §13, decisions 2
//! and 5): from the previous conditions and what this pass decided and did, the next conditions
//! and the events to emit. Pure: the controller turns the result into a status patch and Event
//! objects.

use serde::Serialize;

use super::admission::{Decision, REASON_INFEASIBLE};
use super::resources::{PodSpec, ResourceRequirements};

pub const POD_RESIZE_PENDING: &str = "PodResizePending";
pub const POD_RESIZE_IN_PROGRESS: &str = "PodResizeInProgress";
pub const REASON_DEFERRED: &str = "Deferred";
pub const REASON_ERROR: &str = "Error";

/// One `PodResize*` condition (`status: "True"`; absence means false).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResizeCondition {
    pub reason: String,
    pub message: String,
    pub observed_generation: i64,
}

/// The two resize conditions of a pod.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResizeConditions {
    pub pending: Option<ResizeCondition>,
    pub in_progress: Option<ResizeCondition>,
}

impl ResizeConditions {
    /// Legacy `status.resize` (decision 2): pending reason, else `InProgress`, else cleared.
    pub fn legacy_resize(&self) -> Option<&str> {
        match (&self.pending, &self.in_progress) {
            (Some(p), _) => Some(p.reason.as_str()),
            (None, Some(_)) => Some("InProgress"),
            (None, None) => None,
        }
    }
}

/// An event to emit (spec §13); `reason` is the Event reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResizeEvent {
    pub reason: &'static str,
    pub warning: bool,
    pub message: String,
}

/// What one sync pass of a pod decided and did.
#[derive(Debug, Clone)]
pub struct PassResult<'a> {
    pub decision: &'a Decision,
    /// The desired pod (`metadata.generation` of the synced pod).
    pub desired: &'a PodSpec,
    /// The allocated pod after the pass.
    pub allocated: &'a PodSpec,
    /// Spec §6.2 after the pass.
    pub in_progress: bool,
    /// The enactment error of this pass, if any.
    pub error: Option<&'a str>,
}

/// Next conditions and events (spec §4.4, §12.3). A pass that accepts and completes a resize
/// writes no intermediate `PodResizeInProgress` (decision 5) but still emits `ResizeStarted` and
/// `ResizeCompleted`.
pub fn next_conditions(
    previous: &ResizeConditions,
    pass: &PassResult<'_>,
) -> (ResizeConditions, Vec<ResizeEvent>) {
    let generation = pass.desired.generation;
    let mut events = Vec::new();
    let mut pending_condition = |condition_reason: &str, raw_reason: &str, message: &str| {
        let event_reason = if condition_reason == REASON_INFEASIBLE {
            "ResizeInfeasible"
        } else {
            "ResizeDeferred"
        };
        let cond = ResizeCondition {
            reason: condition_reason.into(),
            message: message.to_string(),
            observed_generation: generation,
        };
        if pending_changed(previous, &cond) {
            events.push(ResizeEvent {
                reason: event_reason,
                warning: true,
                message: format!(
                    "Pod resize {raw_reason}: {}",
                    event_json(pass.desired, Some(message))
                ),
            });
        }
        Some(cond)
    };
    let pending = match pass.decision {
        Decision::Unchanged | Decision::Accepted => None,
        Decision::Deferred { reason, message } => {
            pending_condition(REASON_DEFERRED, reason, message)
        }
        Decision::Infeasible { message, .. } => {
            pending_condition(REASON_INFEASIBLE, REASON_INFEASIBLE, message)
        }
    };

    let mut in_progress = previous.in_progress.clone();
    if *pass.decision == Decision::Accepted {
        events.push(ResizeEvent {
            reason: "ResizeStarted",
            warning: false,
            message: format!("Pod resize started: {}", event_json(pass.desired, None)),
        });
        in_progress = Some(ResizeCondition {
            reason: String::new(),
            message: String::new(),
            observed_generation: generation,
        });
    }
    if let Some(error) = pass.error {
        let kept = in_progress
            .as_ref()
            .map(|c| c.observed_generation)
            .unwrap_or(generation);
        let cond = ResizeCondition {
            reason: REASON_ERROR.into(),
            message: error.to_string(),
            observed_generation: kept,
        };
        if in_progress.as_ref() != Some(&cond) {
            let mut allocated = pass.allocated.clone();
            allocated.generation = kept;
            events.push(ResizeEvent {
                reason: "ResizeError",
                warning: true,
                message: format!("Pod resize error: {}", event_json(&allocated, Some(error))),
            });
        }
        in_progress = Some(cond);
    } else if pass.in_progress {
        in_progress.get_or_insert_with(|| ResizeCondition {
            reason: String::new(),
            message: String::new(),
            observed_generation: generation,
        });
    } else if let Some(done) = in_progress.take() {
        let mut allocated = pass.allocated.clone();
        allocated.generation = done.observed_generation;
        events.push(ResizeEvent {
            reason: "ResizeCompleted",
            warning: false,
            message: format!("Pod resize completed: {}", event_json(&allocated, None)),
        });
    }
    (
        ResizeConditions {
            pending,
            in_progress,
        },
        events,
    )
}

fn pending_changed(previous: &ResizeConditions, next: &ResizeCondition) -> bool {
    match &previous.pending {
        None => true,
        Some(p) => p.reason != next.reason || p.observed_generation != next.observed_generation,
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EventContainer<'a> {
    name: &'a str,
    resources: &'a ResourceRequirements,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EventBody<'a> {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    init_containers: Vec<EventContainer<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    containers: Vec<EventContainer<'a>>,
    generation: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

fn event_containers(cs: &[super::resources::Container]) -> Vec<EventContainer<'_>> {
    cs.iter()
        .map(|c| EventContainer {
            name: &c.name,
            resources: &c.resources,
        })
        .collect()
}

/// The `<json>` of the kubelet's resize event messages (spec §13).
pub fn event_json(pod: &PodSpec, error: Option<&str>) -> String {
    let body = EventBody {
        init_containers: event_containers(&pod.init_containers),
        containers: event_containers(&pod.containers),
        generation: pod.generation,
        error: error.filter(|e| !e.is_empty()),
    };
    serde_json::to_string(&body).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;

    fn desired(gen: i64) -> PodSpec {
        let mut p = pod("u1", vec![container("c1", "cpu=1,memory=1Gi", "")]);
        p.generation = gen;
        p
    }

    fn pass<'a>(
        decision: &'a Decision,
        desired: &'a PodSpec,
        in_progress: bool,
        error: Option<&'a str>,
    ) -> PassResult<'a> {
        PassResult {
            decision,
            desired,
            allocated: desired,
            in_progress,
            error,
        }
    }

    #[test]
    fn event_json_matches_the_kubelet_example() {
        assert_eq!(
            event_json(&desired(1), None),
            r#"{"containers":[{"name":"c1","resources":{"requests":{"cpu":"1","memory":"1Gi"}}}],"generation":1}"#
        );
        let mut p = desired(3);
        p.init_containers = vec![sidecar("s", "", "")];
        assert_eq!(
            event_json(&p, Some("boom")),
            r#"{"initContainers":[{"name":"s","resources":{}}],"containers":[{"name":"c1","resources":{"requests":{"cpu":"1","memory":"1Gi"}}}],"generation":3,"error":"boom"}"#
        );
    }

    #[test]
    fn accepted_and_completed_in_one_pass_writes_no_in_progress_but_both_events() {
        let d = desired(2);
        let (next, events) = next_conditions(
            &ResizeConditions::default(),
            &pass(&Decision::Accepted, &d, false, None),
        );
        assert_eq!(next, ResizeConditions::default());
        let reasons: Vec<_> = events.iter().map(|e| e.reason).collect();
        assert_eq!(reasons, ["ResizeStarted", "ResizeCompleted"]);
        assert!(events[0].message.starts_with("Pod resize started: {"));
        assert!(events[1].message.ends_with(r#""generation":2}"#));
    }

    #[test]
    fn accepted_but_unfinished_sets_in_progress_at_the_accepted_generation() {
        let d = desired(4);
        let (next, events) = next_conditions(
            &ResizeConditions::default(),
            &pass(&Decision::Accepted, &d, true, None),
        );
        let c = next.in_progress.unwrap();
        assert_eq!((c.reason.as_str(), c.observed_generation), ("", 4));
        assert_eq!(events.len(), 1);
        assert_eq!(next.pending, None);
    }

    #[test]
    fn error_keeps_the_generation_and_emits_once() {
        let previous = ResizeConditions {
            pending: None,
            in_progress: Some(ResizeCondition {
                reason: String::new(),
                message: String::new(),
                observed_generation: 2,
            }),
        };
        let d = desired(5);
        let (next, events) = next_conditions(
            &previous,
            &pass(&Decision::Unchanged, &d, true, Some("no memory")),
        );
        let c = next.in_progress.clone().unwrap();
        assert_eq!(
            (c.reason.as_str(), c.message.as_str(), c.observed_generation),
            ("Error", "no memory", 2)
        );
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].reason, "ResizeError");
        assert!(events[0]
            .message
            .contains(r#""generation":2,"error":"no memory""#));
        // same error again: no new event; then success clears it with ResizeCompleted
        let (again, events) = next_conditions(
            &next,
            &pass(&Decision::Unchanged, &d, true, Some("no memory")),
        );
        assert!(events.is_empty());
        let (done, events) = next_conditions(&again, &pass(&Decision::Unchanged, &d, false, None));
        assert_eq!(done.in_progress, None);
        assert_eq!(events[0].reason, "ResizeCompleted");
        assert!(events[0].message.contains(r#""generation":2}"#));
    }

    #[test]
    fn deferred_event_only_when_new_or_reason_or_generation_changed() {
        let d = desired(2);
        let deferred = Decision::Deferred {
            reason: "OutOfcpu".into(),
            message: "Node didn't have enough resource: cpu".into(),
        };
        let (next, events) = next_conditions(
            &ResizeConditions::default(),
            &pass(&deferred, &d, false, None),
        );
        assert_eq!(next.pending.as_ref().unwrap().reason, "Deferred");
        assert_eq!(next.legacy_resize(), Some("Deferred"));
        assert!(events[0].message.starts_with("Pod resize OutOfcpu: {"));
        let (same, events) = next_conditions(&next, &pass(&deferred, &d, false, None));
        assert!(events.is_empty());
        let d3 = desired(3);
        let (_, events) = next_conditions(&same, &pass(&deferred, &d3, false, None));
        assert_eq!(events.len(), 1);
        // a deferral never clears an existing in-progress condition
        let with_progress = ResizeConditions {
            pending: None,
            in_progress: Some(ResizeCondition {
                reason: String::new(),
                message: String::new(),
                observed_generation: 1,
            }),
        };
        let (both, _) = next_conditions(&with_progress, &pass(&deferred, &d3, true, None));
        assert!(both.pending.is_some() && both.in_progress.is_some());
        assert_eq!(both.legacy_resize(), Some("Deferred"));
        // reverted: pending cleared
        let (cleared, events) =
            next_conditions(&same, &pass(&Decision::Unchanged, &d, false, None));
        assert_eq!(cleared, ResizeConditions::default());
        assert!(events.is_empty());
    }

    #[test]
    fn infeasible_condition() {
        let d = desired(2);
        let infeasible = Decision::Infeasible {
            message: "Node didn't have enough capacity: cpu, requested: 9000, capacity: 4000"
                .into(),
            reason_detail: "",
        };
        let (next, events) = next_conditions(
            &ResizeConditions::default(),
            &pass(&infeasible, &d, false, None),
        );
        assert_eq!(next.pending.unwrap().reason, "Infeasible");
        assert_eq!(events[0].reason, "ResizeInfeasible");
        assert!(events[0].message.starts_with("Pod resize Infeasible: {"));
    }
}
