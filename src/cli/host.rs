//! What the commands that touch the host share: the runtime endpoint, the cgroups and the node
//! facts from the kubelet's file ([`Host`]), the engine over them, and the Kubernetes client.

use std::path::{Path, PathBuf};

use anyhow::Context;
use resizelet::config::HostSettings;

/// Where the runtime and the cgroups are, and the node facts.
pub(crate) struct Host {
    pub(crate) endpoint: String,
    pub(crate) cgroup_mount: PathBuf,
    pub(crate) facts: resizelet::kubelet_config::NodeFacts,
    pub(crate) cri_timeout: std::time::Duration,
}

impl Host {
    /// The host of `settings`, with the node facts read from the kubelet's file.
    pub(crate) fn open(
        settings: &HostSettings,
    ) -> Result<Host, resizelet::kubelet_config::KubeletConfigError> {
        let layout = resizelet::cgroup::detect::detect_host().ok();
        Ok(Host {
            endpoint: settings.container_runtime_endpoint.clone(),
            cgroup_mount: settings.cgroup_mount.clone(),
            facts: node_facts(settings, layout.map(|l| l.version))?,
            cri_timeout: settings.cri_timeout,
        })
    }
}

/// The kubelet's configuration (the given file, or the usual path if it exists) under
/// resizelet's explicit settings. A given file that cannot be read or parsed is an error; so is
/// a file found at the usual path that is invalid.
pub(crate) fn node_facts(
    settings: &HostSettings,
    cgroup_version: Option<resizelet::core::node::CgroupVersion>,
) -> Result<resizelet::kubelet_config::NodeFacts, resizelet::kubelet_config::KubeletConfigError> {
    use resizelet::config::KubeletConfigPath;
    use resizelet::kubelet_config as kc;
    let file = match &settings.kubelet_config {
        KubeletConfigPath::Given(p) => Some(kc::load(p)?),
        KubeletConfigPath::Discover => {
            let p = std::path::Path::new(kc::DEFAULT_PATH);
            match std::fs::symlink_metadata(p) {
                Ok(_) => Some(kc::load(p)?),
                Err(_) => None,
            }
        }
        KubeletConfigPath::Off => None,
    };
    Ok(kc::resolve(
        file.as_ref(),
        &settings.explicit,
        cgroup_version,
    ))
}

/// The node facts applied to the host's node configuration.
fn apply_facts(
    mut node: resizelet::core::node::NodeConfig,
    facts: &resizelet::kubelet_config::NodeFacts,
) -> resizelet::core::node::NodeConfig {
    node.cgroup_driver = facts.cgroup_driver.value;
    node.cgroups_per_qos = facts.cgroups_per_qos.value;
    node.cpu_cfs_quota = facts.cpu_cfs_quota.value;
    node.cpu_cfs_period_us = facts.cpu_cfs_quota_period.value.as_micros() as u64;
    node.swap_behavior = facts.swap_behavior.value;
    node.single_process_oom_kill = facts.single_process_oom_kill.value;
    node
}

/// Opens the runtime and the cgroup filesystem, then the checkpoints (a corrupt one is refused):
/// nothing is created on disk (the checkpoint directories) before the runtime and the cgroups
/// are known to be usable.
pub(crate) async fn open_engine(
    host: &Host,
    root_dir: &Path,
    allocatable: Option<resizelet::core::resources::ResourceList>,
) -> anyhow::Result<(resizelet::engine::Engine, Vec<PathBuf>)> {
    use std::sync::Arc;

    use resizelet::engine::{Checkpoints, Engine};

    let runtime =
        resizelet::cri::client::CriClient::connect_with_timeout(&host.endpoint, host.cri_timeout)
            .await?;
    let layout = resizelet::cgroup::detect::detect_host()?;
    let driver = host.facts.cgroup_driver.value;
    // systemd driver: pod-cgroup writes go through systemd's D-Bus API (deadline = the CRI one).
    let cgroups =
        resizelet::cgroup::fs::RealCgroupFs::from_layout(&layout, &host.cgroup_mount, driver)
            .with_cgroup_root(host.facts.cgroup_root_parts());
    let hierarchies = cgroups.hierarchies();
    let cgroups =
        resizelet::cgroup::open_host(cgroups, host.facts.cgroup_root_parts(), host.cri_timeout)?;
    let given = allocatable.is_some();
    let mut node = apply_facts(
        resizelet::host::node_config(layout.version, driver, allocatable)?,
        &host.facts,
    );
    if !given {
        // the machine's capacity less what the kubelet's file reserves (`run` then takes the
        // Node's allocatable)
        node.allocatable = resizelet::kubelet_config::allocatable(&node.allocatable, &host.facts);
    }
    let store = resizelet::checkpoint::FileCheckpointStore::new(root_dir)?;
    let checkpoints = Checkpoints::load(&store)?;
    Ok((
        Engine::new(
            Arc::new(runtime),
            Arc::from(cgroups),
            Arc::new(store),
            checkpoints,
            node,
        ),
        hierarchies,
    ))
}

/// `legacy-resize-status` from its mode and, for `auto`, the API server's version.
pub(crate) async fn legacy_decision(
    mode: resizelet::config::LegacyMode,
    client: &kube::Client,
) -> resizelet::config::LegacyDecision {
    use resizelet::config::{decide_legacy, LegacyMode};
    if mode != LegacyMode::Auto {
        return decide_legacy(mode, Err("not asked"));
    }
    let version = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        resizelet::k8s::client::server_version(client),
    )
    .await
    .map_err(|_| "GET /version timed out after 10s".to_string())
    .and_then(|r| r.map_err(|e| format!("GET /version: {e}")));
    decide_legacy(mode, version.as_ref().map_err(String::as_str))
}

/// The client configuration from `kubeconfig`, else the in-cluster one.
pub(crate) async fn kube_config(kubeconfig: Option<&Path>) -> anyhow::Result<kube::Config> {
    let Some(path) = kubeconfig else {
        return kube::Config::incluster()
            .context("no --kubeconfig given and not running in a cluster");
    };
    let kc = kube::config::Kubeconfig::read_from(path)
        .with_context(|| format!("reading kubeconfig {}", path.display()))?;
    kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
        .await
        .with_context(|| format!("loading kubeconfig {}", path.display()))
}
