//! The `resizelet` binary: argument parsing and wiring (the only place that uses `anyhow`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use resizelet::core::node::CgroupDriver;

#[derive(Parser, Debug)]
#[command(
    name = "resizelet",
    version,
    about = "Enacts Kubernetes in-place pod resizes on this node"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum DriverArg {
    Cgroupfs,
    Systemd,
}

impl From<DriverArg> for CgroupDriver {
    fn from(d: DriverArg) -> Self {
        match d {
            DriverArg::Cgroupfs => CgroupDriver::Cgroupfs,
            DriverArg::Systemd => CgroupDriver::Systemd,
        }
    }
}

/// Host flags shared by `run` and `check`.
#[derive(clap::Args, Debug, Clone)]
struct HostArgs {
    /// CRI endpoint of the container runtime (unix socket).
    #[arg(
        long,
        env = "RESIZELET_CONTAINER_RUNTIME_ENDPOINT",
        default_value = "unix:///run/containerd/containerd.sock"
    )]
    container_runtime_endpoint: String,
    /// Mount point of the cgroup filesystem.
    #[arg(long, env = "RESIZELET_CGROUP_ROOT", default_value = "/sys/fs/cgroup")]
    cgroup_root: PathBuf,
    /// The kubelet's cgroup driver (pod cgroup naming).
    #[arg(
        long,
        env = "RESIZELET_CGROUP_DRIVER",
        value_enum,
        default_value = "cgroupfs"
    )]
    cgroup_driver: DriverArg,
    /// Deadline of each CRI call, in milliseconds.
    #[arg(long, env = "RESIZELET_CRI_TIMEOUT_MS", default_value_t = 2000)]
    cri_timeout_ms: u64,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the node agent.
    Run {
        /// Name of this node (pods are watched with spec.nodeName=<node-name>).
        #[arg(long, env = "NODE_NAME")]
        node_name: String,
        /// kubeconfig file; in-cluster configuration when absent.
        #[arg(long, env = "KUBECONFIG")]
        kubeconfig: Option<PathBuf>,
        #[command(flatten)]
        host: HostArgs,
        /// Directory for resizelet's allocated/actuated checkpoints (never the kubelet's).
        #[arg(long, env = "RESIZELET_ROOT_DIR", default_value = "/var/lib/resizelet")]
        root_dir: PathBuf,
        /// Address of the admin endpoint (metrics, health).
        #[arg(
            long,
            env = "RESIZELET_ADMIN_ADDRESS",
            default_value = "127.0.0.1:10258"
        )]
        admin_address: String,
        /// Client-side rate limit of API writes (queries per second).
        #[arg(long, env = "RESIZELET_KUBE_API_QPS", default_value_t = 50.0)]
        kube_api_qps: f64,
        /// Burst of the client-side rate limit.
        #[arg(long, env = "RESIZELET_KUBE_API_BURST", default_value_t = 100)]
        kube_api_burst: u32,
        /// Also write the deprecated `status.resize` field (for API servers older than 1.33 and
        /// clients that still read it).
        #[arg(long, env = "RESIZELET_LEGACY_RESIZE_STATUS")]
        legacy_resize_status: bool,
        /// Act even if the node's kubelet enacts resizes itself (it races resizelet; not
        /// recommended).
        #[arg(long, hide = true)]
        ignore_resizing_kubelet: bool,
        /// Test hook: abort the process right after plan step N (0-based) of an enactment.
        #[arg(long, hide = true)]
        crash_after_step: Option<usize>,
    },
    /// Report whether in-place resize will work on this host; exits non-zero with reasons if not.
    Check {
        #[command(flatten)]
        host: HostArgs,
    },
    /// Standalone one-shot: admit and enact the desired resources of one pod (JSON, see README)
    /// against this node, then print the outcome as JSON. Exits non-zero if the resize is not
    /// admitted or fails.
    Resize {
        /// The desired pod (resizelet's pod model as JSON); `-` reads standard input.
        #[arg(long)]
        pod: PathBuf,
        #[command(flatten)]
        host: HostArgs,
        /// Directory for resizelet's allocated/actuated checkpoints.
        #[arg(long, env = "RESIZELET_ROOT_DIR", default_value = "/var/lib/resizelet")]
        root_dir: PathBuf,
        /// Node allocatable, e.g. `cpu=4,memory=8Gi` (default: the machine's capacity).
        #[arg(long, env = "RESIZELET_ALLOCATABLE")]
        allocatable: Option<String>,
        /// Test hook: abort the process right after plan step N (0-based) was applied.
        #[arg(long, hide = true)]
        crash_after_step: Option<usize>,
    },
    /// Table of this node's pods as the running agent sees them: desired, allocated, actuated
    /// and actual resources per container, and the resize state.
    Status {
        /// The running agent's admin endpoint.
        #[arg(
            long,
            env = "RESIZELET_ADMIN_ADDRESS",
            default_value = "127.0.0.1:10258"
        )]
        admin_address: String,
    },
    /// Why a pod's resize is pending or in progress: the admission arithmetic, the plan and the
    /// last error, from the running agent.
    Explain {
        /// The pod, as `namespace/name`.
        pod: String,
        /// The running agent's admin endpoint.
        #[arg(
            long,
            env = "RESIZELET_ADMIN_ADDRESS",
            default_value = "127.0.0.1:10258"
        )]
        admin_address: String,
    },
    /// Print the version.
    Version,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("RESIZELET_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var("RESIZELET_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().init();
    } else {
        builder.init();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Version => {
            println!("resizelet {}", env!("CARGO_PKG_VERSION"));
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { admin_address } => {
            let pods = resizelet::admin::fetch_pods(&admin_address).await?;
            print!("{}", resizelet::admin::render_status(&pods));
            Ok(ExitCode::SUCCESS)
        }
        Command::Explain { pod, admin_address } => {
            let (ns, name) = pod.split_once('/').ok_or_else(|| {
                anyhow::anyhow!("pod must be given as namespace/name, got {pod:?}")
            })?;
            let report = resizelet::admin::fetch_pod(&admin_address, ns, name).await?;
            print!("{}", resizelet::admin::render_explain(&report));
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { host } => {
            let facts = gather_facts(&host).await;
            let report = resizelet::check::assess(&facts);
            print!("{report}");
            Ok(if report.supported() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Resize {
            pod,
            host,
            root_dir,
            allocatable,
            crash_after_step,
        } => {
            resize_once(
                &pod,
                &host,
                &root_dir,
                allocatable.as_deref(),
                crash_after_step,
            )
            .await
        }
        Command::Run {
            node_name,
            kubeconfig,
            host,
            root_dir,
            admin_address,
            kube_api_qps,
            kube_api_burst,
            legacy_resize_status,
            ignore_resizing_kubelet,
            crash_after_step,
        } => {
            run_agent(
                resizelet::controller::ControllerOptions {
                    node_name,
                    legacy_resize_status,
                    ignore_resizing_kubelet,
                    in_progress_threshold: resizelet::controller::DEFAULT_IN_PROGRESS_THRESHOLD,
                    crash_after_step,
                },
                kubeconfig.as_deref(),
                &host,
                &root_dir,
                (kube_api_qps, kube_api_burst),
                &admin_address,
            )
            .await
        }
    }
}

/// Opens the checkpoints (a corrupt one is refused first), the cgroup filesystem and the runtime.
async fn open_engine(
    host: &HostArgs,
    root_dir: &std::path::Path,
    allocatable: Option<resizelet::core::resources::ResourceList>,
) -> anyhow::Result<resizelet::engine::Engine> {
    use std::sync::Arc;

    use resizelet::engine::{Checkpoints, Engine};

    // Checkpoints first: a corrupt one is refused (and quarantined) before anything else.
    let store = resizelet::checkpoint::FileCheckpointStore::new(root_dir)?;
    let checkpoints = Checkpoints::load(&store)?;
    let layout = resizelet::cgroup::detect::detect_host()?;
    let driver: CgroupDriver = host.cgroup_driver.into();
    let cgroups =
        resizelet::cgroup::fs::RealCgroupFs::from_layout(&layout, &host.cgroup_root, driver);
    let node = resizelet::host::node_config(layout.version, driver, allocatable)?;
    let runtime = resizelet::cri::client::CriClient::connect_with_timeout(
        &host.container_runtime_endpoint,
        std::time::Duration::from_millis(host.cri_timeout_ms),
    )
    .await?;
    Ok(Engine::new(
        Arc::new(runtime),
        Arc::new(cgroups),
        Arc::new(store),
        checkpoints,
        node,
    ))
}

async fn run_agent(
    opts: resizelet::controller::ControllerOptions,
    kubeconfig: Option<&std::path::Path>,
    host: &HostArgs,
    root_dir: &std::path::Path,
    (qps, burst): (f64, u32),
    admin_address: &str,
) -> anyhow::Result<ExitCode> {
    use std::sync::Arc;

    use anyhow::Context;

    let admin_address: std::net::SocketAddr = admin_address.parse().with_context(|| {
        format!("--admin-address {admin_address:?} is not an ip:port socket address")
    })?;
    if !admin_address.ip().is_loopback() {
        tracing::warn!(address = %admin_address, "the admin endpoint (metrics, pod reports) listens beyond loopback");
    }
    let engine = open_engine(host, root_dir, None).await?;
    let admin = resizelet::admin::bind(admin_address).await?;
    let config = match kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .with_context(|| format!("loading kubeconfig {}", path.display()))?
        }
        None => kube::Config::incluster()
            .context("no --kubeconfig given and not running in a cluster")?,
    };
    let client =
        resizelet::k8s::client::build_client(config).context("building the Kubernetes client")?;
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

async fn gather_facts(host: &HostArgs) -> resizelet::check::HostFacts {
    use resizelet::check::{HostFacts, RuntimeFacts};
    use resizelet::cri::Runtime;
    let timeout = std::time::Duration::from_millis(host.cri_timeout_ms);
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
    HostFacts {
        cgroup: detect_cgroups(&host.cgroup_root),
        cgroup_driver: host.cgroup_driver.into(),
        runtime,
    }
}

fn detect_cgroups(root: &std::path::Path) -> Result<resizelet::check::CgroupFacts, String> {
    let layout = resizelet::cgroup::detect::detect_host().map_err(|e| e.to_string())?;
    if !root.is_dir() {
        return Err(format!(
            "--cgroup-root {} is not a directory",
            root.display()
        ));
    }
    Ok(resizelet::check::CgroupFacts {
        version: layout.version,
        description: layout.describe(),
    })
}

async fn resize_once(
    pod_path: &std::path::Path,
    host: &HostArgs,
    root_dir: &std::path::Path,
    allocatable: Option<&str>,
    crash_after_step: Option<usize>,
) -> anyhow::Result<ExitCode> {
    use anyhow::Context;
    use resizelet::core::admission::{Decision, NodePressure};

    let text = if pod_path == std::path::Path::new("-") {
        std::io::read_to_string(std::io::stdin()).context("reading the pod from standard input")?
    } else {
        std::fs::read_to_string(pod_path)
            .with_context(|| format!("reading pod file {}", pod_path.display()))?
    };
    let desired: resizelet::core::resources::PodSpec = serde_json::from_str(&text)
        .with_context(|| format!("parsing pod file {}", pod_path.display()))?;

    let allocatable = allocatable
        .map(resizelet::host::parse_resource_list)
        .transpose()?;
    let engine = open_engine(host, root_dir, allocatable).await?;
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
