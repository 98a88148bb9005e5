//! `resizelet run`: the agent wired from its validated settings.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;

use crate::host::{kube_config, legacy_decision, open_engine, Host};

pub(crate) async fn run_agent(
    opts: resizelet::controller::ControllerOptions,
    s: &resizelet::config::Settings,
) -> anyhow::Result<ExitCode> {
    let admin_address = s.admin_address;
    if !admin_address.ip().is_loopback() {
        tracing::warn!(address = %admin_address, "the admin endpoint (metrics, pod reports) listens beyond loopback");
    }
    let host = Host::open(&s.host)?;
    for line in resizelet::kubelet_config::describe(&host.facts) {
        tracing::info!("node fact {line}");
    }
    for w in &host.facts.warnings {
        tracing::warn!("{w}");
    }
    let mut opts = opts;
    opts.kubelet_resize_gate = host.facts.resize_gate;
    let (kubeconfig, root_dir, qps, burst) = (
        s.kubeconfig.as_deref(),
        &s.root_dir,
        s.kube_api_qps,
        s.kube_api_burst,
    );
    // every check that can fail on configuration before anything is created on disk
    let config = kube_config(kubeconfig).await?;
    let client =
        resizelet::k8s::client::build_client(config).context("building the Kubernetes client")?;
    let legacy = legacy_decision(s.legacy_resize_status, &client).await;
    tracing::info!(
        "legacy status.resize: {} ({})",
        if legacy.on { "written" } else { "not written" },
        legacy.reason
    );
    opts.legacy_resize_status = legacy.on;
    let admin = resizelet::admin::bind(admin_address).await?;
    let (engine, hierarchies) = open_engine(&host, root_dir, None).await?;
    for problem in resizelet::admin::cgroup_problems(&hierarchies) {
        tracing::warn!("{problem}; /readyz reports not ready until it is fixed");
    }
    let writer = Arc::new(resizelet::k8s::client::ApiWriter::new(
        client.clone(),
        qps,
        burst,
    ));
    tracing::info!(node = %opts.node_name, "resizelet starting");
    let inputs = resizelet::k8s::client::watch_inputs(client, &opts.node_name);
    let runtime = engine.runtime_handle();
    let controller = resizelet::controller::Controller::new(engine, writer, opts);
    let admin = tokio::spawn(resizelet::admin::serve(
        admin,
        resizelet::admin::AdminState {
            stats: controller.stats(),
            runtime,
            cgroup_hierarchies: hierarchies,
        },
    ));
    tracing::info!(address = %admin_address, "admin endpoint listening");
    controller.run(inputs, shutdown_signal()).await;
    admin.abort();
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutting down");
}
