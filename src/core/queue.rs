//! Pending resizes (spec §5): a de-duplicated queue of pods whose resize was deferred, kept in the
//! kubelet's priority order — expressed as a proper total order.

use std::cmp::Ordering;

use super::quantity::Quantity;
use super::resources::{pod_requests, PodSpec, QosClass, CPU, MEMORY};

/// Why a retry pass runs (the `retry_trigger` metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Trigger {
    PodUpdated,
    PodsAdded,
    PodsRemoved,
    PodTerminated,
    PodResized,
    PeriodicRetry,
}

impl Trigger {
    pub fn label(self) -> &'static str {
        match self {
            Trigger::PodUpdated => "pod_updated",
            Trigger::PodsAdded => "pods_added",
            Trigger::PodsRemoved => "pods_removed",
            Trigger::PodTerminated => "pod_terminated",
            Trigger::PodResized => "pod_resized",
            Trigger::PeriodicRetry => "periodic_retry",
        }
    }
}

/// First periodic retry after start, and the interval after each pass (spec §5).
pub const FIRST_RETRY_MS: i64 = 30_000;
pub const RETRY_INTERVAL_MS: i64 = 180_000;

/// The sort key of one queued pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueEntry {
    pub uid: String,
    /// The resize does not increase `PodRequests` cpu or memory.
    pub non_increasing: bool,
    pub priority: i32,
    pub guaranteed: bool,
    /// `PodResizePending.lastTransitionTime` (ms since the epoch); `None` = no condition.
    pub pending_since_ms: Option<i64>,
}

impl QueueEntry {
    pub fn new(desired: &PodSpec, allocated_pod: &PodSpec, pending_since_ms: Option<i64>) -> Self {
        let (want, have) = (pod_requests(desired), pod_requests(allocated_pod));
        let zero = Quantity::zero();
        let grows = |n: &str| want.get(n).unwrap_or(&zero) > have.get(n).unwrap_or(&zero);
        QueueEntry {
            uid: desired.uid.clone(),
            non_increasing: !grows(CPU) && !grows(MEMORY),
            priority: desired.priority,
            guaranteed: allocated_pod.effective_qos() == QosClass::Guaranteed,
            pending_since_ms,
        }
    }
}

impl Ord for QueueEntry {
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .non_increasing
            .cmp(&self.non_increasing)
            .then(other.priority.cmp(&self.priority))
            .then(other.guaranteed.cmp(&self.guaranteed))
            .then(match (self.pending_since_ms, other.pending_since_ms) {
                (Some(a), Some(b)) => a.cmp(&b),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => Ordering::Equal,
            })
            .then(self.uid.cmp(&other.uid))
    }
}

impl PartialOrd for QueueEntry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[derive(Debug, Clone, Default)]
pub struct PendingQueue {
    entries: Vec<QueueEntry>,
}

impl PendingQueue {
    /// Inserts or replaces the pod's entry and re-sorts.
    pub fn insert(&mut self, entry: QueueEntry) {
        self.entries.retain(|e| e.uid != entry.uid);
        self.entries.push(entry);
        self.entries.sort();
    }

    pub fn remove(&mut self, uid: &str) -> bool {
        let before = self.entries.len();
        self.entries.retain(|e| e.uid != uid);
        before != self.entries.len()
    }

    /// UIDs in retry order (a retry pass walks this without re-sorting).
    pub fn uids(&self) -> Vec<String> {
        self.entries.iter().map(|e| e.uid.clone()).collect()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;
    use proptest::prelude::*;

    #[test]
    fn kubelet_priority_order() {
        let base = pod("x", vec![container("c", "cpu=1", "cpu=2")]);
        let grow = |uid: &str, prio: i32| {
            let mut d = base.clone();
            d.uid = uid.into();
            d.priority = prio;
            d.containers[0].resources = reqs("cpu=2", "cpu=2");
            d
        };
        let shrink = {
            let mut d = base.clone();
            d.uid = "shrink".into();
            d.containers[0].resources = reqs("cpu=500m", "cpu=2");
            d
        };
        let mut q = PendingQueue::default();
        q.insert(QueueEntry::new(&grow("low", 0), &base, Some(10)));
        q.insert(QueueEntry::new(&grow("high", 100), &base, Some(50)));
        q.insert(QueueEntry::new(&grow("new", 0), &base, None));
        q.insert(QueueEntry::new(&grow("old", 0), &base, Some(5)));
        q.insert(QueueEntry::new(&shrink, &base, None));
        assert_eq!(q.uids(), ["shrink", "high", "old", "low", "new"]);
        // re-inserting replaces, never duplicates
        q.insert(QueueEntry::new(&grow("low", 0), &base, Some(1)));
        assert_eq!(q.uids(), ["shrink", "high", "low", "old", "new"]);
        assert!(q.remove("high"));
        assert_eq!(q.len(), 4);
        assert_eq!(Trigger::PodsRemoved.label(), "pods_removed");
    }

    fn arb_entry() -> impl Strategy<Value = QueueEntry> {
        (
            any::<bool>(),
            -2i32..3,
            any::<bool>(),
            prop::option::of(0i64..4),
            0u8..4,
        )
            .prop_map(
                |(non_increasing, priority, guaranteed, pending_since_ms, uid)| QueueEntry {
                    uid: uid.to_string(),
                    non_increasing,
                    priority,
                    guaranteed,
                    pending_since_ms,
                },
            )
    }

    proptest! {
        #[test]
        fn order_is_total(a in arb_entry(), b in arb_entry(), c in arb_entry()) {
            prop_assert_eq!(a.cmp(&b), b.cmp(&a).reverse());
            if a <= b && b <= c { prop_assert!(a <= c); }
            if a.cmp(&b) == Ordering::Equal { prop_assert_eq!(&a, &b); }
        }
    }
}
