//! The `resizelet` binary: argument parsing and dispatch; the wiring of each command is in
//! `src/cli/` (the binary crate is the only place that uses `anyhow`). The settings' flags come
//! from `resizelet::config::registry`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use resizelet::config::registry::{Args, ADMIN, CHECK, RESIZE, RUN};
use resizelet::config::LegacyMode;

#[path = "cli/agent.rs"]
mod agent;
#[path = "cli/check.rs"]
mod check;
#[path = "cli/host.rs"]
mod host;
#[path = "cli/resize.rs"]
mod resize;

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

/// `resizelet run` flags. Each may also come from its environment variable or the config file
/// (key = flag name); flag > environment > file > default.
#[derive(clap::Args, Debug, Clone)]
struct RunArgs {
    /// Config file (TOML; `resizelet config default` prints one).
    #[arg(long, env = "RESIZELET_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    settings: Args<RUN>,
    /// Act even if the node's kubelet enacts resizes itself (it races resizelet; not
    /// recommended).
    #[arg(long, hide = true)]
    ignore_resizing_kubelet: bool,
    /// Test hook: abort the process right after plan step N (0-based) of an enactment.
    #[arg(long, hide = true)]
    crash_after_step: Option<usize>,
}

impl RunArgs {
    /// Flags and environment over the config file over the defaults, validated.
    fn settings(&self) -> Result<resizelet::config::Settings, resizelet::config::ConfigError> {
        let file = match &self.config {
            Some(path) => resizelet::config::load(path)?,
            None => Default::default(),
        };
        resizelet::config::resolve(self.settings.layer.clone().over(file))
    }
}

#[derive(Subcommand, Debug)]
enum ConfigCommand {
    /// Print a commented configuration file with every key at its default.
    Default,
    /// Validate a configuration file (with flags and environment applied) and print the
    /// effective settings.
    Check(Box<RunArgs>),
    /// Print the settings as the README's Markdown table.
    Docs,
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
        settings: Args<CHECK>,
    },
    /// Standalone one-shot: admit and enact the desired resources of one pod (JSON, see README)
    /// against this node, then print the outcome as JSON. Exits non-zero if the resize is not
    /// admitted or fails.
    Resize {
        /// The desired pod (resizelet's pod model as JSON); `-` reads standard input.
        #[arg(long)]
        pod: PathBuf,
        #[command(flatten)]
        settings: Args<RESIZE>,
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
        #[command(flatten)]
        settings: Args<ADMIN>,
    },
    /// Why a pod's resize is pending or in progress: the admission arithmetic, the plan and the
    /// last error, from the running agent.
    Explain {
        /// The pod, as `namespace/name`.
        pod: String,
        #[command(flatten)]
        settings: Args<ADMIN>,
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
        Command::Status { settings } => {
            let admin_address = admin_target(&settings);
            let pods = resizelet::admin::fetch_pods(&admin_address).await?;
            print!("{}", resizelet::admin::render_status(&pods));
            Ok(ExitCode::SUCCESS)
        }
        Command::Explain { pod, settings } => {
            let admin_address = admin_target(&settings);
            let (ns, name) = pod.split_once('/').ok_or_else(|| {
                anyhow::anyhow!("pod must be given as namespace/name, got {pod:?}")
            })?;
            let report = resizelet::admin::fetch_pod(&admin_address, ns, name).await?;
            print!("{}", resizelet::admin::render_explain(&report));
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { settings } => {
            let host = resizelet::config::resolve_host(&settings.layer)?;
            let all = settings.with_defaults();
            let legacy = all.legacy_resize_status.unwrap_or(LegacyMode::Auto);
            let facts = check::gather_facts(&host, all.kubeconfig.as_deref(), legacy).await;
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
            settings,
            allocatable,
            crash_after_step,
        } => resize::resize_once(&pod, &settings, allocatable.as_deref(), crash_after_step).await,
        Command::Config(ConfigCommand::Default) => {
            print!("{}", resizelet::config::default_toml());
            Ok(ExitCode::SUCCESS)
        }
        Command::Config(ConfigCommand::Docs) => {
            print!("{}", resizelet::config::docs_table());
            Ok(ExitCode::SUCCESS)
        }
        Command::Config(ConfigCommand::Check(args)) => {
            let settings = args.settings()?;
            print!("{}", resizelet::config::describe(&settings));
            Ok(ExitCode::SUCCESS)
        }
        Command::Run(args) => {
            let s = args.settings()?;
            for d in &s.host.deprecations {
                tracing::warn!("{d}");
            }
            agent::run_agent(
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

/// Where `status` and `explain` connect: an IP alone gets the default admin port (as `run`'s
/// `admin-address`); anything else (`host:port`) is used as given.
fn admin_target(settings: &Args<ADMIN>) -> String {
    let address = settings.with_defaults().admin_address.unwrap_or_default();
    resizelet::config::parse_admin_address(&address).map_or(address, |a| a.to_string())
}
