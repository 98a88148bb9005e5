//! `resizelet check`: the host facts gathered for the pure assessment in `resizelet::check`.

use std::path::Path;

use resizelet::config::HostSettings;

use crate::host::{legacy_decision, node_facts};

/// The Kubernetes client `check` may use: the given kubeconfig, else in-cluster if there.
async fn check_client(kubeconfig: Option<&Path>) -> Result<Option<kube::Client>, String> {
    if kubeconfig.is_none() && kube::Config::incluster().is_err() {
        return Ok(None);
    }
    let config = crate::host::kube_config(kubeconfig)
        .await
        .map_err(|e| crate::render_error(&e))?;
    resizelet::k8s::client::build_client(config)
        .map(Some)
        .map_err(|e| format!("building the Kubernetes client: {e}"))
}

pub(crate) async fn gather_facts(
    host: &HostSettings,
    kubeconfig: Option<&Path>,
    legacy_mode: resizelet::config::LegacyMode,
) -> resizelet::check::HostFacts {
    use resizelet::check::{HostFacts, RuntimeFacts};
    use resizelet::cri::Runtime;
    let timeout = host.cri_timeout;
    let runtime = match resizelet::cri::client::CriClient::connect_with_timeout(
        &host.container_runtime_endpoint,
        timeout,
    )
    .await
    {
        Ok(client) => client.version().await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    }
    .map(|v| RuntimeFacts {
        endpoint: host.container_runtime_endpoint.clone(),
        name: v.runtime_name,
        version: v.runtime_version,
        cri_version: v.runtime_api_version,
    });
    let cgroup_mount = &host.cgroup_mount;
    let layout = resizelet::cgroup::detect::detect_host();
    let node = node_facts(host, layout.as_ref().ok().map(|l| l.version)).map_err(|e| e.to_string());
    let kubepods = match (&layout, &node) {
        (Ok(layout), Ok(facts)) => {
            let dir = resizelet::cgroup::fs::RealCgroupFs::from_layout(
                layout,
                cgroup_mount,
                facts.cgroup_driver.value,
            )
            .with_cgroup_root(facts.cgroup_root_parts())
            .pod_cpu_dir(&resizelet::cgroup::PodCgroupId {
                uid: String::new(),
                qos: resizelet::core::resources::QosClass::Guaranteed,
            });
            dir.parent().map(|p| {
                let p = p.to_path_buf();
                let exists = p.is_dir();
                (p, exists)
            })
        }
        _ => None,
    };
    let legacy = match legacy_mode {
        resizelet::config::LegacyMode::Auto => match check_client(kubeconfig).await {
            Ok(Some(client)) => Some(legacy_decision(legacy_mode, &client).await),
            Ok(None) => None,
            Err(e) => Some(resizelet::config::decide_legacy(legacy_mode, Err(&e))),
        },
        mode => Some(resizelet::config::decide_legacy(mode, Err("not asked"))),
    };
    let systemd = matches!(&node, Ok(f) if f.cgroup_driver.value == resizelet::core::node::CgroupDriver::Systemd)
        .then(|| {
            use resizelet::cgroup::systemd::{DbusSystemd, SystemdBus};
            DbusSystemd::connect_system(timeout)
                .and_then(|bus| bus.version())
                .map_err(|e| e.to_string())
        });
    HostFacts {
        systemd,
        cgroup: detect_cgroups(layout, cgroup_mount),
        node,
        kubepods,
        runtime,
        legacy,
        deprecations: host.deprecations.clone(),
    }
}

fn detect_cgroups(
    layout: Result<resizelet::cgroup::detect::CgroupLayout, resizelet::cgroup::CgroupError>,
    mount: &Path,
) -> Result<resizelet::check::CgroupFacts, String> {
    let layout = layout.map_err(|e| e.to_string())?;
    if !mount.is_dir() {
        return Err(format!(
            "--cgroup-mount {} is not a directory",
            mount.display()
        ));
    }
    Ok(resizelet::check::CgroupFacts {
        version: layout.version,
        description: layout.describe(),
    })
}
