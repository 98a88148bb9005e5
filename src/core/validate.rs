//! Value checks at the edges (API pods in `k8s/convert.rs`, `resizelet resize` pod files): a
//! pod whose quantities are negative or beyond what the enactment can express is refused with
//! the field that is wrong, never admitted. The API server refuses the same values
//! (`ValidateResourceQuantityValue`: "must be greater than or equal to 0",
//! kubernetes/kubernetes `pkg/apis/core/validation/validation.go`); resizelet checks again so a
//! pod file, an API server without that validation, or a quantity apimachinery saturates never
//! reaches a cgroup write.

use super::quantity::Quantity;
use super::resources::{PodSpec, ResourceList, ResourceRequirements, CPU};

/// Why a pod spec is unusable; names the field as the API server would.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("{field}: Invalid value: {value:?}: must be greater than or equal to 0")]
    Negative { field: String, value: String },
    #[error("{field}: Invalid value: {value:?}: out of range (at most {max})")]
    OutOfRange {
        field: String,
        value: String,
        max: String,
    },
}

impl SpecError {
    /// The field path, e.g. `spec.containers[0].resources.requests[cpu]`.
    pub fn field(&self) -> &str {
        match self {
            SpecError::Negative { field, .. } | SpecError::OutOfRange { field, .. } => field,
        }
    }
}

/// Largest cpu quantity: its millicores must fit an `int64` (apimachinery's `MilliValue`
/// saturates beyond, and shares/quota are computed from millicores).
fn max_cpu() -> Quantity {
    Quantity::from_milli(i64::MAX)
}

/// Largest other quantity (memory bytes, hugepages): its value must fit an `int64`.
fn max_value() -> Quantity {
    Quantity::from_int(i64::MAX)
}

fn check_list(field: &str, list: &ResourceList) -> Result<(), SpecError> {
    for (name, q) in list {
        let field = format!("{field}[{name}]");
        if *q < Quantity::zero() {
            return Err(SpecError::Negative {
                field,
                value: q.to_string(),
            });
        }
        let max = if name == CPU { max_cpu() } else { max_value() };
        if *q > max {
            return Err(SpecError::OutOfRange {
                field,
                value: q.to_string(),
                max: max.to_string(),
            });
        }
    }
    Ok(())
}

fn check_requirements(field: &str, r: &ResourceRequirements) -> Result<(), SpecError> {
    check_list(&format!("{field}.requests"), &r.requests)?;
    check_list(&format!("{field}.limits"), &r.limits)
}

/// Every quantity of the pod (containers, init containers, pod-level resources, overhead) is
/// non-negative and in range; the first bad field is returned.
pub fn validate_pod(pod: &PodSpec) -> Result<(), SpecError> {
    for (list, containers) in [
        ("containers", &pod.containers),
        ("initContainers", &pod.init_containers),
    ] {
        for (i, c) in containers.iter().enumerate() {
            check_requirements(&format!("spec.{list}[{i}].resources"), &c.resources)?;
        }
    }
    if let Some(r) = &pod.pod_resources {
        check_requirements("spec.resources", r)?;
    }
    check_list("spec.overhead", &pod.overhead)
}

/// How the containers of a pod file differ from what runs in the pod.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContainerMismatch {
    #[error("pod {pod}: container {container:?} is not running in the pod (running: {running})")]
    Unknown {
        pod: String,
        container: String,
        running: String,
    },
    #[error("pod {pod}: container {container:?} runs in the pod but the pod file does not have it (a resize names every container of the pod)")]
    Missing { pod: String, container: String },
}

/// `resizelet resize`: every resizable container of `pod` runs (by name) among `running`, and
/// every running container is in `pod`; otherwise the resize would act on a container that does
/// not exist, or drop one from the allocation.
pub fn check_containers(pod: &PodSpec, running: &[&str]) -> Result<(), ContainerMismatch> {
    let key = format!("{}/{}", pod.namespace, pod.name);
    for c in pod.resizable_containers() {
        if !running.contains(&c.name.as_str()) {
            let mut names: Vec<&str> = running.to_vec();
            names.sort_unstable();
            names.dedup();
            return Err(ContainerMismatch::Unknown {
                pod: key,
                container: c.name.clone(),
                running: if names.is_empty() {
                    "none".into()
                } else {
                    names.join(", ")
                },
            });
        }
    }
    let declared = |n: &str| {
        pod.containers
            .iter()
            .chain(&pod.init_containers)
            .any(|c| c.name == n)
    };
    if let Some(name) = running.iter().find(|n| !declared(n)) {
        return Err(ContainerMismatch::Missing {
            pod: key,
            container: name.to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{container, pod as pod_of};

    fn pod(requests: &str, limits: &str) -> PodSpec {
        pod_of(
            "u",
            vec![
                container("ok", "cpu=1", ""),
                container("app", requests, limits),
            ],
        )
    }

    #[test]
    fn negative_quantities_are_refused_with_the_field() {
        let e = validate_pod(&pod("cpu=-1", "")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "spec.containers[1].resources.requests[cpu]: Invalid value: \"-1\": must be greater than or equal to 0"
        );
        let e = validate_pod(&pod("", "memory=-64Mi")).unwrap_err();
        assert_eq!(e.field(), "spec.containers[1].resources.limits[memory]");
        let mut p = pod("cpu=1", "");
        p.overhead
            .insert("cpu".into(), Quantity::parse("-1m").unwrap());
        assert_eq!(validate_pod(&p).unwrap_err().field(), "spec.overhead[cpu]");
    }

    #[test]
    fn a_resize_names_exactly_the_running_containers() {
        let p = pod("cpu=1", "");
        assert_eq!(check_containers(&p, &["ok", "app"]), Ok(()));
        let e = check_containers(&p, &["ok"]).unwrap_err().to_string();
        assert_eq!(
            e,
            "pod default/pod-u: container \"app\" is not running in the pod (running: ok)"
        );
        let e = check_containers(&p, &[]).unwrap_err().to_string();
        assert!(e.contains("(running: none)"), "{e}");
        let e = check_containers(&p, &["ok", "app", "extra"])
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("pod default/pod-u: container \"extra\" runs in the pod but the pod file does not have it"),
            "{e}"
        );
    }

    #[test]
    fn values_beyond_int64_are_out_of_range() {
        let e = validate_pod(&pod("cpu=10E", "")).unwrap_err();
        assert!(matches!(e, SpecError::OutOfRange { .. }), "{e}");
        assert!(validate_pod(&pod("memory=10E", "")).is_err());
        // the largest values still fit
        assert_eq!(validate_pod(&pod("cpu=9223372036854775807m", "")), Ok(()));
        assert_eq!(validate_pod(&pod("memory=8Ei", "cpu=0")), Ok(()));
        assert_eq!(validate_pod(&pod("cpu=100m,memory=64Mi", "")), Ok(()));
    }
}
