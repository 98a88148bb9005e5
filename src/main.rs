//! The `resizelet` binary: argument parsing and wiring (the only place that uses `anyhow`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

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

/// Host flags shared by `check` and `resize`.
#[derive(clap::Args, Debug, Clone)]
struct HostArgs {
    /// CRI endpoint of the container runtime (unix socket).
    #[arg(
        long,
        env = "RESIZELET_CONTAINER_RUNTIME_ENDPOINT",
        default_value = "unix:///run/containerd/containerd.sock"
    )]
    container_runtime_endpoint: String,
    #[command(flatten)]
    kubelet: KubeletArgs,
    /// Deadline of each CRI call, in milliseconds.
    #[arg(long, env = "RESIZELET_CRI_TIMEOUT_MS", default_value_t = 2000)]
    cri_timeout_ms: u64,
}

/// A path, the empty one included (clap's own parser refuses `""`).
fn any_path(s: &str) -> Result<PathBuf, std::convert::Infallible> {
    Ok(PathBuf::from(s))
}

/// The cgroup mount point and the node facts the kubelet's configuration file holds, shared by
/// every command.
#[derive(clap::Args, Debug, Clone, Default)]
struct KubeletArgs {
    /// Mount point of the cgroup filesystem [default: /sys/fs/cgroup].
    #[arg(long, env = "RESIZELET_CGROUP_MOUNT")]
    cgroup_mount: Option<PathBuf>,
    /// Deprecated name of --cgroup-mount (the kubelet's --cgroup-root is --kubelet-cgroup-root).
    #[arg(long, env = "RESIZELET_CGROUP_ROOT")]
    cgroup_root: Option<PathBuf>,
    /// The kubelet's configuration file (its --config) [default: /var/lib/kubelet/config.yaml
    /// if it exists; "" reads none].
    #[arg(long, env = "RESIZELET_KUBELET_CONFIG", value_parser = any_path)]
    kubelet_config: Option<PathBuf>,
    /// The kubelet's cgroup driver [default: the kubelet config's cgroupDriver].
    #[arg(long, env = "RESIZELET_CGROUP_DRIVER", value_enum)]
    cgroup_driver: Option<resizelet::config::DriverName>,
    /// The kubelet's cgroupRoot, parent of kubepods [default: the kubelet config's].
    #[arg(long, env = "RESIZELET_KUBELET_CGROUP_ROOT")]
    kubelet_cgroup_root: Option<String>,
    /// The kubelet's memorySwap.swapBehavior [default: the kubelet config's].
    #[arg(long, env = "RESIZELET_SWAP_BEHAVIOR", value_enum)]
    swap_behavior: Option<resizelet::config::SwapBehaviorName>,
}

/// `resizelet run` flags. Each may also come from its environment variable or the config file
/// (key = flag name); flag > environment > file > default.
#[derive(clap::Args, Debug, Clone)]
struct RunArgs {
    /// Config file (TOML; `resizelet config default` prints one).
    #[arg(long, env = "RESIZELET_CONFIG")]
    config: Option<PathBuf>,
    /// Name of this node (pods are watched with spec.nodeName=<node-name>).
    #[arg(long, env = "NODE_NAME")]
    node_name: Option<String>,
    /// kubeconfig file [default: in-cluster configuration].
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// CRI endpoint of the container runtime [default: unix:///run/containerd/containerd.sock].
    #[arg(long, env = "RESIZELET_CONTAINER_RUNTIME_ENDPOINT")]
    container_runtime_endpoint: Option<String>,
    #[command(flatten)]
    kubelet: KubeletArgs,
    /// Deadline of each CRI call, in milliseconds [default: 2000].
    #[arg(long, env = "RESIZELET_CRI_TIMEOUT_MS")]
    cri_timeout_ms: Option<u64>,
    /// Directory for resizelet's allocated/actuated checkpoints [default: /var/lib/resizelet].
    #[arg(long, env = "RESIZELET_ROOT_DIR")]
    root_dir: Option<PathBuf>,
    /// Admin endpoint: metrics, health, pod reports [default: 127.0.0.1:10258].
    #[arg(long, env = "RESIZELET_ADMIN_ADDRESS")]
    admin_address: Option<String>,
    /// Client-side rate limit of API writes, queries per second [default: 50].
    #[arg(long, env = "RESIZELET_KUBE_API_QPS")]
    kube_api_qps: Option<f64>,
    /// Burst of the client-side rate limit [default: 100].
    #[arg(long, env = "RESIZELET_KUBE_API_BURST")]
    kube_api_burst: Option<u32>,
    /// Also write the deprecated `status.resize` field: auto (API server <= 1.32), true,
    /// false [default: auto].
    #[arg(long, env = "RESIZELET_LEGACY_RESIZE_STATUS", num_args = 0..=1, default_missing_value = "true")]
    legacy_resize_status: Option<resizelet::config::LegacyMode>,
    /// Write PodResizeInProgress first when an enactment takes longer, ms [default: 100].
    #[arg(long, env = "RESIZELET_IN_PROGRESS_THRESHOLD_MS")]
    in_progress_threshold_ms: Option<u64>,
    /// Label selector of the pods whose status resizelet writes; others cannot be resized
    /// [default: "" = every pod].
    #[arg(long, env = "RESIZELET_POD_SELECTOR")]
    pod_selector: Option<String>,
    /// Log filter, e.g. `info` or `resizelet=debug,info` [default: info].
    #[arg(long, env = "RESIZELET_LOG")]
    log_level: Option<String>,
    /// Log format [default: text].
    #[arg(long, env = "RESIZELET_LOG_FORMAT", value_enum)]
    log_format: Option<resizelet::config::LogFormat>,
    /// Act even if the node's kubelet enacts resizes itself (it races resizelet; not
    /// recommended).
    #[arg(long, hide = true)]
    ignore_resizing_kubelet: bool,
    /// Test hook: abort the process right after plan step N (0-based) of an enactment.
    #[arg(long, hide = true)]
    crash_after_step: Option<usize>,
}

impl RunArgs {
    /// What flags and the environment set (clap has merged those two, flag first).
    fn layer(&self) -> resizelet::config::Layer {
        resizelet::config::Layer {
            node_name: self.node_name.clone(),
            kubeconfig: self.kubeconfig.clone(),
            container_runtime_endpoint: self.container_runtime_endpoint.clone(),
            cgroup_root: self.kubelet.cgroup_root.clone(),
            cgroup_mount: self.kubelet.cgroup_mount.clone(),
            cgroup_driver: self.kubelet.cgroup_driver,
            kubelet_config: self.kubelet.kubelet_config.clone(),
            kubelet_cgroup_root: self.kubelet.kubelet_cgroup_root.clone(),
            swap_behavior: self.kubelet.swap_behavior,
            cri_timeout_ms: self.cri_timeout_ms,
            root_dir: self.root_dir.clone(),
            admin_address: self.admin_address.clone(),
            kube_api_qps: self.kube_api_qps,
            kube_api_burst: self.kube_api_burst,
            legacy_resize_status: self.legacy_resize_status,
            in_progress_threshold_ms: self.in_progress_threshold_ms,
            pod_selector: self.pod_selector.clone(),
            log_level: self.log_level.clone(),
            log_format: self.log_format,
        }
    }

    /// Flags and environment over the config file over the defaults, validated.
    fn settings(&self) -> Result<resizelet::config::Settings, resizelet::config::ConfigError> {
        let file = match &self.config {
            Some(path) => resizelet::config::load(path)?,
            None => Default::default(),
        };
        resizelet::config::resolve(self.layer().over(file))
    }
}

#[derive(Subcommand, Debug)]
enum ConfigCommand {
    /// Print a commented configuration file with every key at its default.
    Default,
    /// Validate a configuration file (with flags and environment applied) and print the
    /// effective settings.
    Check(Box<RunArgs>),
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the node agent.
    Run(RunArgs),
    /// Print or validate the configuration file.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Report whether in-place resize will work on this host; exits non-zero with reasons if not.
    Check {
        #[command(flatten)]
        host: HostArgs,
        /// kubeconfig to ask the API server's version (legacy-resize-status = auto)
        /// [default: in-cluster configuration, if running in a cluster].
        #[arg(long, env = "KUBECONFIG")]
        kubeconfig: Option<PathBuf>,
        /// As `run --legacy-resize-status`: auto, true or false.
        #[arg(long, env = "RESIZELET_LEGACY_RESIZE_STATUS", num_args = 0..=1, default_missing_value = "true", default_value = "auto")]
        legacy_resize_status: resizelet::config::LegacyMode,
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
        /// Node allocatable, e.g. `cpu=4,memory=8Gi` (default: the machine's capacity less the
        /// kubelet config's systemReserved, kubeReserved and evictionHard memory.available).
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
    /// Serve the pods/status mutating admission webhook that keeps a gate-off kubelet from
    /// erasing the resize fields (HTTPS, see deploy/webhook/).
    Webhook(resizelet::webhook::Options),
    /// Print the version.
    Version,
}

/// glibc gives every thread that allocates its own malloc arena, and a burst of concurrent
/// passes leaves each holding its peak; two arenas keep the footprint of a node agent small.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only tunes the allocator; called before any other thread exists
    unsafe {
        nix::libc::mallopt(nix::libc::M_ARENA_MAX, 2);
    }
}

/// clap's error for a bad value names the flag even when the value came from the flag's
/// environment variable; this names the variable instead (the flag is not on the command line).
fn env_value_error(e: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    use clap::CommandFactory;
    if !matches!(
        e.kind(),
        ErrorKind::InvalidValue | ErrorKind::ValueValidation
    ) {
        return None;
    }
    let ContextValue::String(arg) = e.get(ContextKind::InvalidArg)? else {
        return None;
    };
    let long = arg
        .strip_prefix("--")?
        .split([' ', '='])
        .next()?
        .to_string();
    let argv: Vec<String> = std::env::args().collect();
    let flag = format!("--{long}");
    if argv
        .iter()
        .any(|a| *a == flag || a.starts_with(&format!("{flag}=")))
    {
        return None;
    }
    fn find_env(cmd: &clap::Command, long: &str) -> Option<String> {
        cmd.get_arguments()
            .find(|a| a.get_long() == Some(long))
            .and_then(|a| a.get_env())
            .map(|v| v.to_string_lossy().into_owned())
            .or_else(|| cmd.get_subcommands().find_map(|c| find_env(c, long)))
    }
    let env = find_env(&Cli::command(), &long)?;
    let value = std::env::var_os(&env)?;
    let reason = std::error::Error::source(e)
        .map(|s| s.to_string())
        .unwrap_or_else(|| "invalid value".into());
    Some(format!(
        "error: environment variable {env}={:?} (for --{long}): {reason}",
        value.to_string_lossy()
    ))
}

/// An error and its causes, each once: a message that already includes its source's text
/// (`"cannot write x: Permission denied"` over the io::Error) does not repeat it.
fn render_error(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

fn main() -> ExitCode {
    limit_malloc_arenas();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            if let Some(msg) = env_value_error(&e) {
                eprintln!("{msg}");
                return ExitCode::from(2);
            }
            e.exit()
        }
    };
    // `run` takes its log settings from the layered configuration; everything else from the
    // environment (RESIZELET_LOG, RESIZELET_LOG_FORMAT)
    let (level, format) = match &cli.command {
        Command::Run(args) => match args.settings() {
            Ok(s) => (s.log_level, s.log_format),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        },
        _ => (
            std::env::var("RESIZELET_LOG").unwrap_or_else(|_| "info".into()),
            if std::env::var("RESIZELET_LOG_FORMAT").as_deref() == Ok("json") {
                resizelet::config::LogFormat::Json
            } else {
                resizelet::config::LogFormat::Text
            },
        ),
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // colour only on a terminal: a log in a file, journald or `kubectl logs` stays plain text
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        resizelet::config::LogFormat::Json => builder.json().init(),
        resizelet::config::LogFormat::Text => builder.init(),
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
            eprintln!("error: {}", render_error(&e));
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Webhook(o) => {
            resizelet::webhook::serve(o).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Version => {
            println!("resizelet {}", env!("CARGO_PKG_VERSION"));
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { admin_address } => {
            let admin_address = admin_target(&admin_address);
            let pods = resizelet::admin::fetch_pods(&admin_address).await?;
            print!("{}", resizelet::admin::render_status(&pods));
            Ok(ExitCode::SUCCESS)
        }
        Command::Explain { pod, admin_address } => {
            let admin_address = admin_target(&admin_address);
            let (ns, name) = pod.split_once('/').ok_or_else(|| {
                anyhow::anyhow!("pod must be given as namespace/name, got {pod:?}")
            })?;
            let report = resizelet::admin::fetch_pod(&admin_address, ns, name).await?;
            print!("{}", resizelet::admin::render_explain(&report));
            Ok(ExitCode::SUCCESS)
        }
        Command::Check {
            host,
            kubeconfig,
            legacy_resize_status,
        } => {
            resizelet::config::cri_timeout(host.cri_timeout_ms)?;
            let facts = gather_facts(&host, kubeconfig.as_deref(), legacy_resize_status).await;
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
        Command::Config(ConfigCommand::Default) => {
            print!("{}", resizelet::config::default_toml());
            Ok(ExitCode::SUCCESS)
        }
        Command::Config(ConfigCommand::Check(args)) => {
            let settings = args.settings()?;
            print!("{}", resizelet::config::describe(&settings));
            Ok(ExitCode::SUCCESS)
        }
        Command::Run(args) => {
            let s = args.settings()?;
            for d in &s.deprecations {
                tracing::warn!("{d}");
            }
            run_agent(
                resizelet::controller::ControllerOptions {
                    node_name: s.node_name.clone(),
                    // decided in run_agent from the API server's version
                    legacy_resize_status: false,
                    ignore_resizing_kubelet: args.ignore_resizing_kubelet,
                    // from the kubelet's file, in run_agent
                    kubelet_resize_gate: Default::default(),
                    in_progress_threshold: s.in_progress_threshold,
                    pod_selector: s.pod_selector.clone(),
                    crash_after_step: args.crash_after_step,
                },
                &s,
            )
            .await
        }
    }
}

/// Where the runtime and the cgroups are, and the node facts (from `HostArgs` or the `run`
/// settings).
struct Host {
    endpoint: String,
    cgroup_mount: PathBuf,
    facts: resizelet::kubelet_config::NodeFacts,
    cri_timeout: std::time::Duration,
}

impl HostArgs {
    /// The mount point, with a deprecation warning when given by its old name.
    fn cgroup_mount(&self) -> (PathBuf, Option<String>) {
        resizelet::config::cgroup_mount(
            self.kubelet.cgroup_mount.clone(),
            self.kubelet.cgroup_root.clone(),
        )
    }

    fn explicit(&self) -> resizelet::kubelet_config::Explicit {
        resizelet::kubelet_config::Explicit {
            cgroup_driver: self.kubelet.cgroup_driver.map(Into::into),
            kubelet_cgroup_root: self.kubelet.kubelet_cgroup_root.clone(),
            swap_behavior: self.kubelet.swap_behavior.map(Into::into),
        }
    }

    fn kubelet_config_path(&self) -> resizelet::config::KubeletConfigPath {
        use resizelet::config::KubeletConfigPath;
        match &self.kubelet.kubelet_config {
            None => KubeletConfigPath::Discover,
            Some(p) if p.as_os_str().is_empty() => KubeletConfigPath::Off,
            Some(p) => KubeletConfigPath::Given(p.clone()),
        }
    }

    fn host(&self) -> anyhow::Result<Host> {
        let (cgroup_mount, deprecated) = self.cgroup_mount();
        if let Some(d) = deprecated {
            tracing::warn!("{d}");
        }
        let layout = resizelet::cgroup::detect::detect_host().ok();
        let facts = node_facts(
            &self.kubelet_config_path(),
            &self.explicit(),
            layout.map(|l| l.version),
        )?;
        Ok(Host {
            endpoint: self.container_runtime_endpoint.clone(),
            cgroup_mount,
            facts,
            cri_timeout: resizelet::config::cri_timeout(self.cri_timeout_ms)?,
        })
    }
}

/// The kubelet's configuration (the given file, or the usual path if it exists) under
/// resizelet's explicit settings. A given file that cannot be read or parsed is an error; so is
/// a file found at the usual path that is invalid.
fn node_facts(
    path: &resizelet::config::KubeletConfigPath,
    explicit: &resizelet::kubelet_config::Explicit,
    cgroup_version: Option<resizelet::core::node::CgroupVersion>,
) -> Result<resizelet::kubelet_config::NodeFacts, resizelet::kubelet_config::KubeletConfigError> {
    use resizelet::config::KubeletConfigPath;
    use resizelet::kubelet_config as kc;
    let file = match path {
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
    Ok(kc::resolve(file.as_ref(), explicit, cgroup_version))
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
async fn open_engine(
    host: &Host,
    root_dir: &std::path::Path,
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

async fn run_agent(
    opts: resizelet::controller::ControllerOptions,
    s: &resizelet::config::Settings,
) -> anyhow::Result<ExitCode> {
    use std::sync::Arc;

    use anyhow::Context;

    let admin_address = s.admin_address;
    if !admin_address.ip().is_loopback() {
        tracing::warn!(address = %admin_address, "the admin endpoint (metrics, pod reports) listens beyond loopback");
    }
    let explicit = resizelet::kubelet_config::Explicit {
        cgroup_driver: s.cgroup_driver,
        kubelet_cgroup_root: s.kubelet_cgroup_root.clone(),
        swap_behavior: s.swap_behavior,
    };
    let layout = resizelet::cgroup::detect::detect_host().ok();
    let facts = node_facts(&s.kubelet_config, &explicit, layout.map(|l| l.version))?;
    for line in resizelet::kubelet_config::describe(&facts) {
        tracing::info!("node fact {line}");
    }
    for w in &facts.warnings {
        tracing::warn!("{w}");
    }
    let mut opts = opts;
    opts.kubelet_resize_gate = facts.resize_gate;
    let host = Host {
        endpoint: s.container_runtime_endpoint.clone(),
        cgroup_mount: s.cgroup_mount.clone(),
        facts,
        cri_timeout: s.cri_timeout,
    };
    let (kubeconfig, root_dir, qps, burst) = (
        s.kubeconfig.as_deref(),
        &s.root_dir,
        s.kube_api_qps,
        s.kube_api_burst,
    );
    // every check that can fail on configuration before anything is created on disk
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

/// `legacy-resize-status` from its mode and, for `auto`, the API server's version.
async fn legacy_decision(
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

/// The Kubernetes client `check` may use: the given kubeconfig, else in-cluster if there.
async fn check_client(
    kubeconfig: Option<&std::path::Path>,
) -> Result<Option<kube::Client>, String> {
    let config = match kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| format!("reading kubeconfig {}: {e}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|e| format!("loading kubeconfig {}: {e}", path.display()))?
        }
        None => match kube::Config::incluster() {
            Ok(c) => c,
            Err(_) => return Ok(None),
        },
    };
    resizelet::k8s::client::build_client(config)
        .map(Some)
        .map_err(|e| format!("building the Kubernetes client: {e}"))
}

async fn gather_facts(
    host: &HostArgs,
    kubeconfig: Option<&std::path::Path>,
    legacy_mode: resizelet::config::LegacyMode,
) -> resizelet::check::HostFacts {
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
    let (cgroup_mount, deprecated) = host.cgroup_mount();
    let layout = resizelet::cgroup::detect::detect_host();
    let node = node_facts(
        &host.kubelet_config_path(),
        &host.explicit(),
        layout.as_ref().ok().map(|l| l.version),
    )
    .map_err(|e| e.to_string());
    let kubepods = match (&layout, &node) {
        (Ok(layout), Ok(facts)) => {
            let dir = resizelet::cgroup::fs::RealCgroupFs::from_layout(
                layout,
                &cgroup_mount,
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
        cgroup: detect_cgroups(layout, &cgroup_mount),
        node,
        kubepods,
        runtime,
        legacy,
        deprecations: deprecated.into_iter().collect(),
    }
}

fn detect_cgroups(
    layout: Result<resizelet::cgroup::detect::CgroupLayout, resizelet::cgroup::CgroupError>,
    mount: &std::path::Path,
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
    resizelet::core::validate::validate_pod(&desired)
        .with_context(|| format!("pod file {}", pod_path.display()))?;

    let allocatable = allocatable
        .map(resizelet::host::parse_resource_list)
        .transpose()?;
    let host = host.host()?;
    let (engine, _) = open_engine(&host, root_dir, allocatable).await?;
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

/// Where `status` and `explain` connect: an IP alone gets the default admin port (as `run`'s
/// `admin-address`); anything else (`host:port`) is used as given.
fn admin_target(address: &str) -> String {
    resizelet::config::parse_admin_address(address)
        .map_or_else(|| address.to_string(), |a| a.to_string())
}
