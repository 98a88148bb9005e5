//! The only place CRI proto types map to and from [`crate::core::runtime`] types.

use std::collections::BTreeMap;

use super::proto;
use super::{CallCode, CallStatus, CriError, RuntimeVersion};
use crate::core::runtime::{
    ContainerState, LinuxResources, RuntimeContainer, RuntimeContainerStatus,
};

/// Kubelet label carrying the pod UID (`kubernetes/kubernetes v1.36.2 pkg/kubelet/types/labels.go`).
pub const LABEL_POD_UID: &str = "io.kubernetes.pod.uid";
pub const LABEL_POD_NAME: &str = "io.kubernetes.pod.name";
pub const LABEL_POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
pub const LABEL_CONTAINER_NAME: &str = "io.kubernetes.container.name";

/// A failed call's `tonic::Status` as resizelet's [`CallStatus`] (an `Ok` code on an error, which
/// tonic never produces, reads as `Unknown`).
pub fn call_status(status: &tonic::Status) -> CallStatus {
    use tonic::Code;
    let code = match status.code() {
        Code::Cancelled => CallCode::Cancelled,
        Code::InvalidArgument => CallCode::InvalidArgument,
        Code::DeadlineExceeded => CallCode::DeadlineExceeded,
        Code::NotFound => CallCode::NotFound,
        Code::AlreadyExists => CallCode::AlreadyExists,
        Code::PermissionDenied => CallCode::PermissionDenied,
        Code::ResourceExhausted => CallCode::ResourceExhausted,
        Code::FailedPrecondition => CallCode::FailedPrecondition,
        Code::Aborted => CallCode::Aborted,
        Code::OutOfRange => CallCode::OutOfRange,
        Code::Unimplemented => CallCode::Unimplemented,
        Code::Internal => CallCode::Internal,
        Code::Unavailable => CallCode::Unavailable,
        Code::DataLoss => CallCode::DataLoss,
        Code::Unauthenticated => CallCode::Unauthenticated,
        Code::Ok | Code::Unknown => CallCode::Unknown,
    };
    CallStatus::new(code, status.message())
}

pub fn container_state(state: i32) -> ContainerState {
    match proto::ContainerState::try_from(state) {
        Ok(proto::ContainerState::ContainerCreated) => ContainerState::Created,
        Ok(proto::ContainerState::ContainerRunning) => ContainerState::Running,
        Ok(proto::ContainerState::ContainerExited) => ContainerState::Exited,
        Ok(proto::ContainerState::ContainerUnknown) | Err(_) => ContainerState::Unknown,
    }
}

pub fn container_state_to_proto(state: ContainerState) -> proto::ContainerState {
    match state {
        ContainerState::Created => proto::ContainerState::ContainerCreated,
        ContainerState::Running => proto::ContainerState::ContainerRunning,
        ContainerState::Exited => proto::ContainerState::ContainerExited,
        ContainerState::Unknown => proto::ContainerState::ContainerUnknown,
    }
}

pub fn runtime_version(v: proto::VersionResponse) -> RuntimeVersion {
    RuntimeVersion {
        runtime_name: v.runtime_name,
        runtime_version: v.runtime_version,
        runtime_api_version: v.runtime_api_version,
    }
}

/// A listed container. The name is the kubelet's `io.kubernetes.container.name` label, falling back
/// to the CRI metadata name; a container with neither is malformed.
pub fn runtime_container(c: proto::Container) -> Result<RuntimeContainer, CriError> {
    let labels: BTreeMap<String, String> = c.labels.into_iter().collect();
    let (meta_name, attempt) = c
        .metadata
        .map(|m| (Some(m.name), m.attempt))
        .unwrap_or((None, 0));
    let name = labels
        .get(LABEL_CONTAINER_NAME)
        .cloned()
        .or(meta_name)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| CriError::Malformed {
            call: "ListContainers",
            reason: format!(
                "container {} has neither metadata nor a {LABEL_CONTAINER_NAME} label",
                c.id
            ),
        })?;
    Ok(RuntimeContainer {
        pod_uid: labels.get(LABEL_POD_UID).cloned().unwrap_or_default(),
        id: c.id,
        pod_sandbox_id: c.pod_sandbox_id,
        name,
        attempt,
        state: container_state(c.state),
        created_at_nanos: c.created_at,
        labels,
    })
}

/// `ContainerStatus` reduced to what resizing needs; `resources` is `None` when the runtime does not
/// report Linux resources (containerd < 1.6.9, spec §15.5).
pub fn runtime_container_status(s: proto::ContainerStatus) -> RuntimeContainerStatus {
    let name = s
        .labels
        .get(LABEL_CONTAINER_NAME)
        .cloned()
        .or_else(|| s.metadata.as_ref().map(|m| m.name.clone()))
        .unwrap_or_default();
    RuntimeContainerStatus {
        id: s.id,
        name,
        state: container_state(s.state),
        resources: s
            .resources
            .and_then(|r| r.linux)
            .map(|l| linux_resources_from_proto(&l)),
    }
}

/// Spec §10 values to the CRI message. cpuset fields are left empty (the runtime keeps its own).
pub fn linux_resources_to_proto(r: &LinuxResources) -> proto::LinuxContainerResources {
    proto::LinuxContainerResources {
        cpu_period: r.cpu_period,
        cpu_quota: r.cpu_quota,
        cpu_shares: r.cpu_shares,
        memory_limit_in_bytes: r.memory_limit_in_bytes,
        oom_score_adj: r.oom_score_adj,
        cpuset_cpus: String::new(),
        cpuset_mems: String::new(),
        hugepage_limits: r
            .hugepage_limits
            .iter()
            .map(|(page_size, limit)| proto::HugepageLimit {
                page_size: page_size.clone(),
                limit: *limit,
            })
            .collect(),
        unified: r
            .unified
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        memory_swap_limit_in_bytes: r.memory_swap_limit_in_bytes,
    }
}

pub fn linux_resources_from_proto(l: &proto::LinuxContainerResources) -> LinuxResources {
    LinuxResources {
        cpu_period: l.cpu_period,
        cpu_quota: l.cpu_quota,
        cpu_shares: l.cpu_shares,
        memory_limit_in_bytes: l.memory_limit_in_bytes,
        oom_score_adj: l.oom_score_adj,
        hugepage_limits: l
            .hugepage_limits
            .iter()
            .map(|h| (h.page_size.clone(), h.limit))
            .collect(),
        unified: l
            .unified
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        memory_swap_limit_in_bytes: l.memory_swap_limit_in_bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn call_status_keeps_the_code_and_the_message() {
        let s = call_status(&tonic::Status::not_found("container \"x\" not found"));
        assert_eq!(
            s,
            CallStatus::new(CallCode::NotFound, "container \"x\" not found")
        );
        assert_eq!(s.to_string(), "NotFound: container \"x\" not found");
        let s = call_status(&tonic::Status::unavailable("socket gone"));
        assert_eq!(s.code, CallCode::Unavailable);
        // tonic never fails a call with Ok; if it did, it is not mistaken for success
        assert_eq!(call_status(&tonic::Status::ok("")).code, CallCode::Unknown);
    }

    fn sample_resources() -> LinuxResources {
        LinuxResources {
            cpu_period: 100_000,
            cpu_quota: 50_000,
            cpu_shares: 512,
            memory_limit_in_bytes: 256 << 20,
            oom_score_adj: 968,
            hugepage_limits: vec![("2MB".into(), 0), ("1GB".into(), 0)],
            unified: BTreeMap::from([("memory.oom.group".into(), "1".into())]),
            memory_swap_limit_in_bytes: 256 << 20,
        }
    }

    #[test]
    fn linux_resources_round_trip() {
        let r = sample_resources();
        let p = linux_resources_to_proto(&r);
        assert_eq!(p.cpu_quota, 50_000);
        assert_eq!(p.hugepage_limits.len(), 2);
        assert_eq!(p.hugepage_limits[1].page_size, "1GB");
        assert_eq!(
            p.unified.get("memory.oom.group").map(String::as_str),
            Some("1")
        );
        assert_eq!(linux_resources_from_proto(&p), r);
    }

    #[test]
    fn states_map_both_ways() {
        for (p, s) in [
            (
                proto::ContainerState::ContainerCreated,
                ContainerState::Created,
            ),
            (
                proto::ContainerState::ContainerRunning,
                ContainerState::Running,
            ),
            (
                proto::ContainerState::ContainerExited,
                ContainerState::Exited,
            ),
            (
                proto::ContainerState::ContainerUnknown,
                ContainerState::Unknown,
            ),
        ] {
            assert_eq!(container_state(p as i32), s);
            assert_eq!(container_state_to_proto(s), p);
        }
        assert_eq!(container_state(42), ContainerState::Unknown);
    }

    fn listed(labels: &[(&str, &str)], meta: Option<(&str, u32)>) -> proto::Container {
        proto::Container {
            id: "c1".into(),
            pod_sandbox_id: "s1".into(),
            metadata: meta.map(|(name, attempt)| proto::ContainerMetadata {
                name: name.into(),
                attempt,
            }),
            state: proto::ContainerState::ContainerRunning as i32,
            created_at: 7,
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<HashMap<_, _>>(),
            ..Default::default()
        }
    }

    #[test]
    fn listed_container_prefers_the_kubelet_label() {
        let c = runtime_container(listed(
            &[(LABEL_POD_UID, "u1"), (LABEL_CONTAINER_NAME, "app")],
            Some(("app_meta", 3)),
        ))
        .unwrap();
        assert_eq!(c.name, "app");
        assert_eq!(c.pod_uid, "u1");
        assert_eq!(c.attempt, 3);
        assert_eq!(c.state, ContainerState::Running);
        assert_eq!(c.created_at_nanos, 7);
        assert_eq!(c.labels.len(), 2);
    }

    #[test]
    fn listed_container_falls_back_to_metadata_name() {
        let c = runtime_container(listed(&[], Some(("meta", 0)))).unwrap();
        assert_eq!(c.name, "meta");
        assert_eq!(c.pod_uid, "");
    }

    #[test]
    fn listed_container_without_any_name_is_malformed() {
        let err = runtime_container(listed(&[], None)).unwrap_err();
        assert!(
            matches!(
                err,
                CriError::Malformed {
                    call: "ListContainers",
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("c1"), "{err}");
    }

    #[test]
    fn status_without_resources_reports_none() {
        let s = proto::ContainerStatus {
            id: "c1".into(),
            metadata: Some(proto::ContainerMetadata {
                name: "app".into(),
                attempt: 0,
            }),
            state: proto::ContainerState::ContainerExited as i32,
            resources: None,
            ..Default::default()
        };
        let st = runtime_container_status(s.clone());
        assert_eq!(st.resources, None);
        assert_eq!(st.name, "app");
        assert_eq!(st.state, ContainerState::Exited);
        // resources present but without the Linux part: still None
        let st = runtime_container_status(proto::ContainerStatus {
            resources: Some(proto::ContainerResources {
                linux: None,
                windows: None,
            }),
            ..s
        });
        assert_eq!(st.resources, None);
    }

    #[test]
    fn status_with_resources_reports_them() {
        let r = sample_resources();
        let s = proto::ContainerStatus {
            id: "c1".into(),
            labels: HashMap::from([(LABEL_CONTAINER_NAME.to_string(), "app".to_string())]),
            resources: Some(proto::ContainerResources {
                linux: Some(linux_resources_to_proto(&r)),
                windows: None,
            }),
            ..Default::default()
        };
        let st = runtime_container_status(s);
        assert_eq!(st.name, "app");
        assert_eq!(st.resources, Some(r));
    }
}
