//! `resizelet resize`: one pod admitted and enacted against this node, standalone.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use resizelet::config::registry::{Args, RESIZE};

use crate::host::{open_engine, Host};

pub(crate) async fn resize_once(
    pod_path: &Path,
    settings: &Args<RESIZE>,
    allocatable: Option<&str>,
    crash_after_step: Option<usize>,
) -> anyhow::Result<ExitCode> {
    use resizelet::core::admission::{Decision, NodePressure};

    let text = if pod_path == Path::new("-") {
        std::io::read_to_string(std::io::stdin()).context("reading the pod from standard input")?
    } else {
        std::fs::read_to_string(pod_path)
            .with_context(|| format!("reading pod file {}", pod_path.display()))?
    };
    let desired: resizelet::core::resources::PodSpec = serde_json::from_str(&text)
        .with_context(|| format!("parsing pod file {}", pod_path.display()))?;
    resizelet::core::validate::validate_pod(&desired)
        .with_context(|| format!("pod file {}", pod_path.display()))?;

    let allocatable = allocatable
        .map(resizelet::host::parse_resource_list)
        .transpose()?;
    let host = resizelet::config::resolve_host(&settings.layer)?;
    for d in &host.deprecations {
        tracing::warn!("{d}");
    }
    let host = Host::open(&host)?;
    let root_dir = settings.with_defaults().root_dir.unwrap_or_default();
    let (engine, _) = open_engine(&host, &root_dir, allocatable).await?;
    let listed = engine
        .runtime_handle()
        .list_containers(Some(&desired.uid))
        .await?;
    let running: Vec<&str> = listed
        .iter()
        .filter(|c| c.state == resizelet::core::runtime::ContainerState::Running)
        .map(|c| c.name.as_str())
        .collect();
    resizelet::core::validate::check_containers(&desired, &running)
        .with_context(|| format!("pod file {}", pod_path.display()))?;
    let crash = move |step: usize| {
        if Some(step) == crash_after_step {
            eprintln!("resizelet: crash requested after step {step}");
            std::process::abort();
        }
    };
    let outcome = engine
        .sync_pod(&desired, &[], NodePressure::default(), Some(&crash))
        .await?;
    let (decision, message) = match &outcome.decision {
        Decision::Unchanged => ("Unchanged", String::new()),
        Decision::Accepted => ("Accepted", String::new()),
        Decision::Deferred { reason, message } => ("Deferred", format!("{reason}: {message}")),
        Decision::Infeasible { message, .. } => ("Infeasible", message.clone()),
    };
    let error = outcome.enactment.as_ref().err().map(|e| e.to_string());
    let report = serde_json::json!({
        "pod": format!("{}/{}", desired.namespace, desired.name),
        "uid": desired.uid,
        "decision": decision,
        "message": message,
        "seeded": outcome.seeded,
        "steps": outcome.plan.steps,
        "applied": outcome.enactment.as_ref().map(|r| r.applied).unwrap_or(0),
        "error": error,
        "inProgress": outcome.in_progress,
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    let ok = matches!(outcome.decision, Decision::Unchanged | Decision::Accepted)
        && outcome.enactment.is_ok();
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
