//! A generic per-key runner, the shape of kube-runtime's `Runner` over its `Scheduler`: keys are
//! *touched* (something about them changed), a touched key is handed out to run, **at most one
//! run per key at a time** (a key touched while it runs is held and handed out again when that
//! run ends), at most `limit` runs at once, and per-key timers that touch their key when due.
//!
//! It is pure state: the caller owns the futures, tells it when a run starts
//! ([`Scheduler::start`]) and ends ([`Scheduler::finish`]), and passes the time in. No
//! Kubernetes types; keys are anything ordered (the controller uses pod UIDs).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

#[derive(Debug, Clone)]
pub struct Scheduler<K> {
    /// Touched keys not running, with when they were first touched.
    ready: BTreeMap<K, Instant>,
    running: BTreeSet<K>,
    /// Running keys touched again meanwhile: ready again when their run ends.
    rerun: BTreeSet<K>,
    /// Running keys removed meanwhile: their run's end reports it.
    removed: BTreeSet<K>,
    timers: BTreeMap<K, Instant>,
    limit: usize,
}

/// How a run ended, for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finished {
    /// The key is still wanted (and ready again if it was touched during the run).
    Done,
    /// The key was removed during the run: its effects should be dropped.
    Removed,
}

impl<K: Ord + Clone> Scheduler<K> {
    /// `limit`: runs at once handed out by [`Scheduler::pop_ready`] (at least 1).
    pub fn new(limit: usize) -> Self {
        Scheduler {
            ready: BTreeMap::new(),
            running: BTreeSet::new(),
            rerun: BTreeSet::new(),
            removed: BTreeSet::new(),
            timers: BTreeMap::new(),
            limit: limit.max(1),
        }
    }

    /// Something about `key` changed: run it (again).
    pub fn touch(&mut self, key: K, now: Instant) {
        if self.running.contains(&key) {
            self.rerun.insert(key);
        } else {
            self.ready.entry(key).or_insert(now);
        }
    }

    /// Forgets `key`: not touched, no timer, not run again. Returns whether a run of it is in
    /// flight (its [`Scheduler::finish`] then says [`Finished::Removed`]).
    pub fn remove(&mut self, key: &K) -> bool {
        self.ready.remove(key);
        self.rerun.remove(key);
        self.timers.remove(key);
        let running = self.running.contains(key);
        if running {
            self.removed.insert(key.clone());
        }
        running
    }

    /// The next touched key that may run now (not running, under the limit), in key order,
    /// with when it was touched. It is no longer touched; call [`Scheduler::start`] to run it.
    pub fn pop_ready(&mut self) -> Option<(K, Instant)> {
        if self.running.len() >= self.limit {
            return None;
        }
        self.ready.pop_first()
    }

    /// A run of `key` starts (outside [`Scheduler::pop_ready`] too: a group run claims its keys
    /// this way). Returns false, changing nothing, when one is already running.
    pub fn start(&mut self, key: K) -> bool {
        if self.running.contains(&key) {
            return false;
        }
        self.ready.remove(&key);
        self.removed.remove(&key);
        self.running.insert(key)
    }

    /// The run of `key` ended. A key touched meanwhile (after its removal, if it was removed)
    /// is ready again, touched `now`.
    pub fn finish(&mut self, key: &K, now: Instant) -> Finished {
        self.running.remove(key);
        if self.rerun.remove(key) {
            self.ready.entry(key.clone()).or_insert(now);
        }
        if self.removed.remove(key) {
            Finished::Removed
        } else {
            Finished::Done
        }
    }

    pub fn is_running(&self, key: &K) -> bool {
        self.running.contains(key)
    }

    pub fn running(&self) -> usize {
        self.running.len()
    }

    /// Nothing ready, running or waiting for a rerun (timers may be set).
    pub fn is_idle(&self) -> bool {
        self.ready.is_empty() && self.running.is_empty()
    }

    /// Touch `key` at `at` (replacing its timer).
    pub fn set_timer(&mut self, key: K, at: Instant) {
        self.timers.insert(key, at);
    }

    pub fn clear_timer(&mut self, key: &K) {
        self.timers.remove(key);
    }

    /// The earliest timer.
    pub fn next_timer(&self) -> Option<Instant> {
        self.timers.values().min().copied()
    }

    /// Fires the timers due at `now`: each key is touched; returns them.
    pub fn fire_due(&mut self, now: Instant) -> Vec<K> {
        let due: Vec<K> = self
            .timers
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for key in &due {
            self.timers.remove(key);
            self.touch(key.clone(), now);
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(ms: u64) -> Instant {
        thread_local!(static BASE: Instant = Instant::now());
        BASE.with(|b| *b + Duration::from_millis(ms))
    }

    /// A scheduler with `key` touched at 0, handed out by `pop_ready` and running.
    fn running(limit: usize, key: &'static str) -> Scheduler<&'static str> {
        let mut s = Scheduler::new(limit);
        s.touch(key, at(0));
        assert_eq!(s.pop_ready(), Some((key, at(0))));
        assert!(s.start(key));
        s
    }

    /// Also when the key was removed before the touch: the removed run's end reports the
    /// removal, and the touch after it still gets its run.
    #[test]
    fn a_key_touched_while_running_is_held_until_its_run_ends() {
        for (removed, ends) in [(false, Finished::Done), (true, Finished::Removed)] {
            let mut s = running(4, "a");
            if removed {
                assert!(s.remove(&"a"));
            }
            s.touch("a", at(1));
            assert_eq!(s.pop_ready(), None, "a second run of a beside the first");
            assert!(!s.start("a"), "removed: {removed}");
            assert_eq!(s.finish(&"a", at(2)), ends);
            assert_eq!(s.pop_ready(), Some(("a", at(2))), "removed: {removed}");
        }
    }

    #[test]
    fn touches_coalesce_and_keep_the_first_time() {
        let mut s = Scheduler::new(4);
        s.touch("a", at(0));
        s.touch("a", at(5));
        assert_eq!(s.pop_ready(), Some(("a", at(0))));
        assert_eq!(s.pop_ready(), None);
    }

    #[test]
    fn the_limit_holds_keys_until_a_run_ends() {
        let mut s = Scheduler::new(2);
        for k in ["a", "b", "c"] {
            s.touch(k, at(0));
        }
        for k in ["a", "b"] {
            let (got, _) = s.pop_ready().unwrap();
            assert_eq!(got, k);
            s.start(got);
        }
        assert_eq!(s.pop_ready(), None);
        s.finish(&"a", at(1));
        assert_eq!(s.pop_ready().map(|(k, _)| k), Some("c"));
    }

    #[test]
    fn a_key_removed_while_running_reports_it_and_is_not_rerun() {
        let mut s = running(2, "a");
        s.touch("a", at(1));
        s.set_timer("a", at(9));
        assert!(s.remove(&"a"));
        assert_eq!(s.finish(&"a", at(2)), Finished::Removed);
        assert_eq!(s.pop_ready(), None);
        assert_eq!(s.next_timer(), None);
        assert!(s.is_idle());
    }

    #[test]
    fn timers_touch_their_key_when_due() {
        let mut s = Scheduler::new(2);
        s.set_timer("a", at(10));
        s.set_timer("b", at(20));
        assert_eq!(s.next_timer(), Some(at(10)));
        assert!(s.fire_due(at(9)).is_empty());
        assert_eq!(s.fire_due(at(15)), ["a"]);
        assert_eq!(s.pop_ready(), Some(("a", at(15))));
        assert_eq!(s.next_timer(), Some(at(20)));
        s.clear_timer(&"b");
        assert_eq!(s.next_timer(), None);
    }

    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Touch(u8),
        Remove(u8),
        /// Start what pop_ready hands out.
        Dispatch,
        /// A group run claiming these keys unless one is running.
        Group(Vec<u8>),
        /// The n-th running key's run ends.
        Finish(usize),
        Timer(u8, u8),
        Tick(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u8..6).prop_map(Op::Touch),
            1 => (0u8..6).prop_map(Op::Remove),
            3 => Just(Op::Dispatch),
            1 => proptest::collection::vec(0u8..6, 0..4).prop_map(Op::Group),
            3 => (0usize..8).prop_map(Op::Finish),
            1 => (0u8..6, 0u8..50).prop_map(|(k, t)| Op::Timer(k, t)),
            1 => (0u8..50).prop_map(Op::Tick),
        ]
    }

    proptest! {
        /// Against a model: never two runs of a key at once, never more than the limit from
        /// pop_ready, and every touch is followed by a run that starts after it (no lost touch),
        /// unless the key was removed after the touch.
        #[test]
        fn never_two_runs_of_a_key_and_no_touch_is_lost(
            limit in 1usize..4,
            ops in proptest::collection::vec(op(), 0..80),
        ) {
            let mut s = Scheduler::new(limit);
            let mut clock = 0u64;
            // model: keys running (by us), keys owed a run that starts after their last touch
            let mut running: Vec<u8> = Vec::new();
            let mut owed: BTreeSet<u8> = BTreeSet::new();
            let mut timers: BTreeMap<u8, u64> = BTreeMap::new();
            let drain = |s: &mut Scheduler<u8>,
                         running: &mut Vec<u8>,
                         owed: &mut BTreeSet<u8>|
             -> Result<(), TestCaseError> {
                loop {
                    let before = s.running();
                    let Some((k, _)) = s.pop_ready() else { break };
                    prop_assert!(before < limit, "handed out {k} at {before} runs, limit {limit}");
                    prop_assert!(!running.contains(&k), "pop_ready handed out running key {k}");
                    prop_assert!(s.start(k));
                    running.push(k);
                    owed.remove(&k);
                }
                Ok(())
            };
            for op in ops {
                clock += 1;
                match op {
                    Op::Touch(k) => { s.touch(k, at(clock)); owed.insert(k); }
                    Op::Remove(k) => {
                        prop_assert_eq!(s.remove(&k), running.contains(&k));
                        owed.remove(&k);
                        timers.remove(&k);
                    }
                    Op::Dispatch => drain(&mut s, &mut running, &mut owed)?,
                    Op::Group(keys) => {
                        let keys: BTreeSet<u8> = keys.into_iter().collect();
                        if !keys.iter().any(|k| s.is_running(k)) {
                            for k in keys {
                                prop_assert!(s.start(k));
                                running.push(k);
                                owed.remove(&k);
                            }
                        }
                    }
                    Op::Finish(n) => {
                        if !running.is_empty() {
                            let k = running.remove(n % running.len());
                            let _ = s.finish(&k, at(clock));
                        }
                    }
                    Op::Timer(k, t) => {
                        let when = clock + t as u64;
                        s.set_timer(k, at(when));
                        timers.insert(k, when);
                    }
                    Op::Tick(t) => {
                        clock += t as u64;
                        let mut fired = s.fire_due(at(clock));
                        fired.sort();
                        let want: Vec<u8> = timers.iter().filter(|(_, w)| **w <= clock).map(|(k, _)| *k).collect();
                        prop_assert_eq!(&fired, &want);
                        for k in want { timers.remove(&k); owed.insert(k); }
                    }
                }
                let mut sorted = running.clone();
                sorted.sort();
                sorted.dedup();
                prop_assert_eq!(sorted.len(), running.len(), "two runs of one key: {:?}", running);
                prop_assert_eq!(s.running(), running.len());
            }
            // quiesce: end every run, dispatch until idle; every owed key must have run
            loop {
                drain(&mut s, &mut running, &mut owed)?;
                let Some(k) = running.pop() else { break };
                let _ = s.finish(&k, at(clock));
            }
            prop_assert!(owed.is_empty(), "touches never run: {:?}", owed);
            prop_assert!(s.is_idle());
        }
    }
}
