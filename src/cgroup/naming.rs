//! Pod and container cgroup names (spec §11.4), pure.

use std::path::PathBuf;

use crate::core::node::CgroupDriver;
use crate::core::resources::QosClass;

/// The pod cgroup's path relative to a hierarchy root, e.g. `kubepods/burstable/pod<uid>`
/// (cgroupfs) or `kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid_>.slice`
/// (systemd). `cgroup_root` are the parts of the kubelet's `cgroupRoot` (empty for `/`).
pub fn pod_cgroup_path(
    driver: CgroupDriver,
    cgroup_root: &[String],
    qos: QosClass,
    uid: &str,
) -> PathBuf {
    let mut parts: Vec<String> = cgroup_root.to_vec();
    parts.push("kubepods".to_string());
    match qos {
        QosClass::Guaranteed => {}
        QosClass::Burstable => parts.push("burstable".to_string()),
        QosClass::BestEffort => parts.push("besteffort".to_string()),
    }
    parts.push(format!("pod{uid}"));
    match driver {
        CgroupDriver::Cgroupfs => parts.iter().collect(),
        CgroupDriver::Systemd => {
            // each part escaped ('-' → '_'), then expanded into the slice chain
            let escaped: Vec<String> = parts.iter().map(|p| p.replace('-', "_")).collect();
            (1..=escaped.len())
                .map(|n| format!("{}.slice", escaped[..n].join("-")))
                .collect()
        }
    }
}

/// A container's cgroup below its pod cgroup, as containerd names it.
pub fn container_cgroup_name(driver: CgroupDriver, container_id: &str) -> String {
    match driver {
        CgroupDriver::Cgroupfs => container_id.to_string(),
        CgroupDriver::Systemd => format!("cri-containerd-{container_id}.scope"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroupfs_names() {
        let p = |qos| pod_cgroup_path(CgroupDriver::Cgroupfs, &[], qos, "1234-5678");
        assert_eq!(
            p(QosClass::Burstable),
            PathBuf::from("kubepods/burstable/pod1234-5678")
        );
        assert_eq!(
            p(QosClass::Guaranteed),
            PathBuf::from("kubepods/pod1234-5678")
        );
        assert_eq!(
            p(QosClass::BestEffort),
            PathBuf::from("kubepods/besteffort/pod1234-5678")
        );
        assert_eq!(
            pod_cgroup_path(
                CgroupDriver::Cgroupfs,
                &["custom".into()],
                QosClass::Guaranteed,
                "u"
            ),
            PathBuf::from("custom/kubepods/podu")
        );
    }

    #[test]
    fn systemd_names() {
        let p = |qos| pod_cgroup_path(CgroupDriver::Systemd, &[], qos, "1234-5678");
        assert_eq!(
            p(QosClass::Burstable),
            PathBuf::from(
                "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1234_5678.slice"
            )
        );
        assert_eq!(
            p(QosClass::Guaranteed),
            PathBuf::from("kubepods.slice/kubepods-pod1234_5678.slice")
        );
        assert_eq!(
            p(QosClass::BestEffort),
            PathBuf::from(
                "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1234_5678.slice"
            )
        );
        assert_eq!(
            container_cgroup_name(CgroupDriver::Systemd, "abc"),
            "cri-containerd-abc.scope"
        );
        assert_eq!(container_cgroup_name(CgroupDriver::Cgroupfs, "abc"), "abc");
    }
}
