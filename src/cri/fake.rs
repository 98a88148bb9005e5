//! [`FakeRuntime`]: an in-memory [`Runtime`] for unit tests, with fault injection and a call log.
//!
//! Behaves like containerd 1.6 where it matters: `UpdateContainerResources` only overrides the
//! non-zero fields (containerd keeps the previous value of a zero field), `ContainerStatus` reports
//! the merged resources, unknown ids give `NotFound`, exited containers refuse updates.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;

use super::client::not_found_as;
use super::{CallCode, CallStatus, CriError, Runtime, RuntimeVersion};
use crate::core::runtime::{
    ContainerState, LinuxResources, RuntimeContainer, RuntimeContainerStatus,
};

/// The kinds of call [`Runtime`] makes (for fault injection and filtering the log).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CallKind {
    Version,
    ListContainers,
    ContainerStatus,
    UpdateContainerResources,
    StopContainer,
}

impl CallKind {
    /// The CRI method name, as in [`CriError::Call`].
    pub fn cri_name(self) -> &'static str {
        match self {
            CallKind::Version => "Version",
            CallKind::ListContainers => "ListContainers",
            CallKind::ContainerStatus => "ContainerStatus",
            CallKind::UpdateContainerResources => "UpdateContainerResources",
            CallKind::StopContainer => "StopContainer",
        }
    }
}

/// One recorded call, with its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Version,
    ListContainers {
        pod_uid: Option<String>,
    },
    ContainerStatus {
        id: String,
    },
    UpdateContainerResources {
        id: String,
        resources: LinuxResources,
    },
    StopContainer {
        id: String,
        timeout_seconds: i64,
    },
}

impl Call {
    pub fn kind(&self) -> CallKind {
        match self {
            Call::Version => CallKind::Version,
            Call::ListContainers { .. } => CallKind::ListContainers,
            Call::ContainerStatus { .. } => CallKind::ContainerStatus,
            Call::UpdateContainerResources { .. } => CallKind::UpdateContainerResources,
            Call::StopContainer { .. } => CallKind::StopContainer,
        }
    }
}

#[derive(Debug, Clone)]
struct FakeContainer {
    container: RuntimeContainer,
    resources: LinuxResources,
}

#[derive(Debug)]
struct State {
    version: RuntimeVersion,
    /// Listing order = insertion order.
    containers: Vec<FakeContainer>,
    faults: HashMap<CallKind, VecDeque<CallStatus>>,
    calls: Vec<Call>,
    report_resources: bool,
}

impl State {
    fn find(&mut self, id: &str) -> Result<&mut FakeContainer, CriError> {
        self.containers
            .iter_mut()
            .find(|c| c.container.id == id)
            .ok_or_else(|| CriError::NotFound { id: id.to_string() })
    }
}

/// In-memory runtime. All methods take `&self`; share it with `Arc`.
#[derive(Debug)]
pub struct FakeRuntime {
    state: Mutex<State>,
    /// While `true`, `UpdateContainerResources` waits (tests of slow and concurrent enactments).
    hold_updates: Hold<bool>,
    /// While `Some(uid)`, `ListContainers` for that pod waits (tests of a pod pass in flight).
    hold_lists: Hold<Option<String>>,
}

/// A gate that calls wait at while a predicate holds for its value, and the count of calls waiting.
#[derive(Debug)]
struct Hold<T> {
    gate: tokio::sync::watch::Sender<T>,
    waiting: std::sync::atomic::AtomicUsize,
}

impl<T> Hold<T> {
    fn new(open: T) -> Self {
        Hold {
            gate: tokio::sync::watch::Sender::new(open),
            waiting: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    fn set(&self, value: T) {
        self.gate.send_replace(value);
    }

    fn waiting(&self) -> usize {
        self.waiting.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Returns at once, or when `held` stops holding for the gate's value.
    async fn pass(&self, held: impl Fn(&T) -> bool) {
        let mut gate = self.gate.subscribe();
        if held(&gate.borrow()) {
            self.waiting
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let _ = gate.wait_for(|v| !held(v)).await;
            self.waiting
                .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

impl Default for FakeRuntime {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeRuntime {
    /// Reports itself as containerd 1.6.20 speaking CRI v1, with resources in `ContainerStatus`.
    pub fn new() -> Self {
        FakeRuntime {
            state: Mutex::new(State {
                version: RuntimeVersion {
                    runtime_name: "containerd".into(),
                    runtime_version: "1.6.20".into(),
                    runtime_api_version: "v1".into(),
                },
                containers: Vec::new(),
                faults: HashMap::new(),
                calls: Vec::new(),
                report_resources: true,
            }),
            hold_updates: Hold::new(false),
            hold_lists: Hold::new(None),
        }
    }

    /// Makes `ListContainers` for `pod_uid` wait until [`FakeRuntime::release_lists`].
    pub fn hold_lists_for(&self, pod_uid: &str) {
        self.hold_lists.set(Some(pod_uid.to_string()));
    }

    pub fn release_lists(&self) {
        self.hold_lists.set(None);
    }

    /// How many `ListContainers` calls are waiting on the hold.
    pub fn held_lists(&self) -> usize {
        self.hold_lists.waiting()
    }

    /// Makes every `UpdateContainerResources` wait until [`FakeRuntime::release_updates`].
    pub fn hold_updates(&self) {
        self.hold_updates.set(true);
    }

    pub fn release_updates(&self) {
        self.hold_updates.set(false);
    }

    /// How many `UpdateContainerResources` calls are waiting on the hold.
    pub fn held_updates(&self) -> usize {
        self.hold_updates.waiting()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking test thread must not hide the state from the assertions of another.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set_version(&self, version: RuntimeVersion) {
        self.lock().version = version;
    }

    /// `false` makes `ContainerStatus` omit resources, like containerd < 1.6.9 (spec §15.5).
    pub fn set_report_resources(&self, report: bool) {
        self.lock().report_resources = report;
    }

    /// Adds (or replaces, by id) a container with its current resources.
    pub fn add_container(&self, container: RuntimeContainer, resources: LinuxResources) {
        let mut st = self.lock();
        st.containers.retain(|c| c.container.id != container.id);
        st.containers.push(FakeContainer {
            container,
            resources,
        });
    }

    /// Adds a running container labelled like the kubelet does; returns it.
    pub fn add_running(
        &self,
        pod_uid: &str,
        name: &str,
        id: &str,
        resources: LinuxResources,
    ) -> RuntimeContainer {
        let labels = BTreeMap::from([
            (
                super::convert::LABEL_POD_UID.to_string(),
                pod_uid.to_string(),
            ),
            (
                super::convert::LABEL_CONTAINER_NAME.to_string(),
                name.to_string(),
            ),
        ]);
        let container = RuntimeContainer {
            id: id.to_string(),
            pod_sandbox_id: format!("sandbox-{pod_uid}"),
            pod_uid: pod_uid.to_string(),
            name: name.to_string(),
            attempt: 0,
            state: ContainerState::Running,
            created_at_nanos: 0,
            labels,
        };
        self.add_container(container.clone(), resources);
        container
    }

    /// Makes a container disappear (as if removed behind resizelet's back); later calls on it give
    /// `NotFound`. Returns whether it existed.
    pub fn remove_container(&self, id: &str) -> bool {
        let mut st = self.lock();
        let before = st.containers.len();
        st.containers.retain(|c| c.container.id != id);
        st.containers.len() != before
    }

    pub fn set_state(&self, id: &str, state: ContainerState) -> Result<(), CriError> {
        self.lock().find(id)?.container.state = state;
        Ok(())
    }

    /// Fails the next call of `kind` with `status` (queued: several faults fail several calls).
    /// A `NotFound` status on a per-container call surfaces as [`CriError::NotFound`], as with
    /// the real client.
    pub fn fail_next(&self, kind: CallKind, status: CallStatus) {
        self.lock()
            .faults
            .entry(kind)
            .or_default()
            .push_back(status);
    }

    /// Faults injected but not consumed yet.
    pub fn pending_faults(&self) -> usize {
        self.lock().faults.values().map(VecDeque::len).sum()
    }

    /// The current resources of a container (after merged updates).
    pub fn resources(&self, id: &str) -> Option<LinuxResources> {
        let mut st = self.lock();
        st.find(id).ok().map(|c| c.resources.clone())
    }

    pub fn state(&self, id: &str) -> Option<ContainerState> {
        let mut st = self.lock();
        st.find(id).ok().map(|c| c.container.state)
    }

    /// Every call so far, in order (failed ones included).
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// Every call of one kind, in order.
    pub fn calls_of(&self, kind: CallKind) -> Vec<Call> {
        self.lock()
            .calls
            .iter()
            .filter(|c| c.kind() == kind)
            .cloned()
            .collect()
    }

    /// Returns the log and clears it.
    pub fn take_calls(&self) -> Vec<Call> {
        std::mem::take(&mut self.lock().calls)
    }

    /// Records the call and pops an injected fault, if any.
    fn begin(&self, call: Call) -> (MutexGuard<'_, State>, Result<(), CriError>) {
        let mut st = self.lock();
        let kind = call.kind();
        let id = match &call {
            Call::ContainerStatus { id }
            | Call::UpdateContainerResources { id, .. }
            | Call::StopContainer { id, .. } => Some(id.clone()),
            Call::Version | Call::ListContainers { .. } => None,
        };
        st.calls.push(call);
        let fault = st.faults.get_mut(&kind).and_then(VecDeque::pop_front);
        let res = match fault {
            None => Ok(()),
            Some(status) => {
                let err = CriError::Call {
                    call: kind.cri_name(),
                    status,
                };
                Err(match id {
                    Some(id) => not_found_as(&id, err),
                    None => err,
                })
            }
        };
        (st, res)
    }
}

/// containerd's `WithResources`: a zero field keeps the previous value.
fn merge(current: &mut LinuxResources, update: &LinuxResources) {
    fn set(dst: &mut i64, src: i64) {
        if src != 0 {
            *dst = src;
        }
    }
    set(&mut current.cpu_period, update.cpu_period);
    set(&mut current.cpu_quota, update.cpu_quota);
    set(&mut current.cpu_shares, update.cpu_shares);
    set(
        &mut current.memory_limit_in_bytes,
        update.memory_limit_in_bytes,
    );
    set(&mut current.oom_score_adj, update.oom_score_adj);
    set(
        &mut current.memory_swap_limit_in_bytes,
        update.memory_swap_limit_in_bytes,
    );
    if !update.hugepage_limits.is_empty() {
        current.hugepage_limits = update.hugepage_limits.clone();
    }
    if !update.unified.is_empty() {
        current.unified = update.unified.clone();
    }
}

#[async_trait]
impl Runtime for FakeRuntime {
    async fn version(&self) -> Result<RuntimeVersion, CriError> {
        let (st, fault) = self.begin(Call::Version);
        fault?;
        Ok(st.version.clone())
    }

    async fn list_containers(
        &self,
        pod_uid: Option<&str>,
    ) -> Result<Vec<RuntimeContainer>, CriError> {
        self.hold_lists
            .pass(|h| h.is_some() && h.as_deref() == pod_uid)
            .await;
        let (st, fault) = self.begin(Call::ListContainers {
            pod_uid: pod_uid.map(str::to_string),
        });
        fault?;
        Ok(st
            .containers
            .iter()
            .filter(|c| pod_uid.is_none_or(|uid| c.container.pod_uid == uid))
            .map(|c| c.container.clone())
            .collect())
    }

    async fn container_status(&self, id: &str) -> Result<RuntimeContainerStatus, CriError> {
        let (mut st, fault) = self.begin(Call::ContainerStatus { id: id.into() });
        fault?;
        let report = st.report_resources;
        let c = st.find(id)?;
        Ok(RuntimeContainerStatus {
            id: c.container.id.clone(),
            name: c.container.name.clone(),
            state: c.container.state,
            resources: report.then(|| c.resources.clone()),
        })
    }

    async fn update_container_resources(
        &self,
        id: &str,
        resources: &LinuxResources,
    ) -> Result<(), CriError> {
        self.hold_updates.pass(|held| *held).await;
        let (mut st, fault) = self.begin(Call::UpdateContainerResources {
            id: id.into(),
            resources: resources.clone(),
        });
        fault?;
        let c = st.find(id)?;
        match c.container.state {
            ContainerState::Created | ContainerState::Running => {
                merge(&mut c.resources, resources);
                Ok(())
            }
            state => Err(CriError::Call {
                call: "UpdateContainerResources",
                status: CallStatus::new(
                    CallCode::FailedPrecondition,
                    format!("container {id} is in {state:?} state"),
                ),
            }),
        }
    }

    async fn stop_container(&self, id: &str, timeout_seconds: i64) -> Result<(), CriError> {
        let (mut st, fault) = self.begin(Call::StopContainer {
            id: id.into(),
            timeout_seconds,
        });
        fault?;
        st.find(id)?.container.state = ContainerState::Exited;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testing::linux;

    /// A runtime with one running container `c1` (pod `u1`) at 2 cpu shares.
    fn running_c1() -> FakeRuntime {
        let rt = FakeRuntime::new();
        rt.add_running("u1", "a", "c1", linux(2, 0, 0));
        rt
    }

    /// `err` is the `NotFound` of `c1`, as the real client maps a gRPC `NotFound`.
    fn assert_c1_not_found(err: &CriError) {
        assert!(
            matches!(err, CriError::NotFound { id } if id == "c1"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn lists_by_pod_uid_in_insertion_order() {
        let rt = running_c1();
        rt.add_running("u2", "b", "c2", linux(2, 0, 0));
        rt.add_running("u1", "c", "c3", linux(2, 0, 0));
        let ids = |v: Vec<RuntimeContainer>| v.into_iter().map(|c| c.id).collect::<Vec<_>>();
        assert_eq!(
            ids(rt.list_containers(Some("u1")).await.unwrap()),
            ["c1", "c3"]
        );
        assert_eq!(
            ids(rt.list_containers(None).await.unwrap()),
            ["c1", "c2", "c3"]
        );
        assert!(rt.list_containers(Some("u9")).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn update_merges_non_zero_fields_and_status_reports_them() {
        let rt = FakeRuntime::new();
        rt.add_running("u1", "a", "c1", linux(512, 50_000, 128 << 20));
        let update = LinuxResources {
            cpu_shares: 1024,
            ..Default::default()
        };
        rt.update_container_resources("c1", &update).await.unwrap();
        let st = rt.container_status("c1").await.unwrap();
        assert_eq!(st.resources, Some(linux(1024, 50_000, 128 << 20)));
        rt.set_report_resources(false);
        assert_eq!(rt.container_status("c1").await.unwrap().resources, None);
    }

    #[tokio::test]
    async fn injected_faults_fail_only_the_next_call_of_their_kind() {
        let rt = running_c1();
        rt.fail_next(
            CallKind::UpdateContainerResources,
            CallStatus::new(CallCode::Unavailable, "boom"),
        );
        // other kinds are unaffected
        rt.container_status("c1").await.unwrap();
        let err = rt
            .update_container_resources("c1", &linux(4, 0, 0))
            .await
            .unwrap_err();
        match &err {
            CriError::Call { call, status } => {
                assert_eq!(*call, "UpdateContainerResources");
                assert_eq!(status.code, CallCode::Unavailable);
            }
            other => panic!("unexpected {other}"),
        }
        assert_eq!(
            rt.resources("c1").unwrap().cpu_shares,
            2,
            "failed update applied"
        );
        rt.update_container_resources("c1", &linux(4, 0, 0))
            .await
            .unwrap();
        assert_eq!(rt.resources("c1").unwrap().cpu_shares, 4);
        assert_eq!(rt.pending_faults(), 0);
        // an injected NotFound maps like the real client's
        rt.fail_next(
            CallKind::ContainerStatus,
            CallStatus::new(CallCode::NotFound, "gone"),
        );
        assert_c1_not_found(&rt.container_status("c1").await.unwrap_err());
    }

    #[tokio::test]
    async fn vanished_container_gives_not_found() {
        let rt = running_c1();
        assert!(rt.remove_container("c1"));
        assert!(!rt.remove_container("c1"));
        for err in [
            rt.container_status("c1").await.unwrap_err(),
            rt.update_container_resources("c1", &linux(4, 0, 0))
                .await
                .unwrap_err(),
            rt.stop_container("c1", 30).await.unwrap_err(),
        ] {
            assert_c1_not_found(&err);
        }
    }

    #[tokio::test]
    async fn stop_exits_and_exited_refuses_updates() {
        let rt = running_c1();
        rt.stop_container("c1", 30).await.unwrap();
        assert_eq!(rt.state("c1"), Some(ContainerState::Exited));
        let err = rt
            .update_container_resources("c1", &linux(4, 0, 0))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, CriError::Call { status, .. } if status.code == CallCode::FailedPrecondition),
            "{err}"
        );
    }

    #[tokio::test]
    async fn records_calls_in_order() {
        let rt = running_c1();
        rt.version().await.unwrap();
        rt.list_containers(Some("u1")).await.unwrap();
        rt.update_container_resources("c1", &linux(4, 0, 0))
            .await
            .unwrap();
        rt.stop_container("c1", 5).await.unwrap();
        let _ = rt.container_status("missing").await;
        assert_eq!(
            rt.take_calls(),
            vec![
                Call::Version,
                Call::ListContainers {
                    pod_uid: Some("u1".into())
                },
                Call::UpdateContainerResources {
                    id: "c1".into(),
                    resources: linux(4, 0, 0)
                },
                Call::StopContainer {
                    id: "c1".into(),
                    timeout_seconds: 5
                },
                Call::ContainerStatus {
                    id: "missing".into()
                },
            ]
        );
        assert!(rt.calls().is_empty());
        rt.version().await.unwrap();
        assert_eq!(rt.calls_of(CallKind::Version), vec![Call::Version]);
        assert!(rt.calls_of(CallKind::StopContainer).is_empty());
    }
}
