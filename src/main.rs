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
    },
    /// Report whether in-place resize will work on this host; exits non-zero with reasons if not.
    Check {
        #[command(flatten)]
        host: HostArgs,
    },
    /// Print the version.
    Version,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
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
        Command::Run { .. } => {
            anyhow::bail!("TODO")
        }
    }
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
