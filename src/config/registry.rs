//! The settings table: each setting is declared once in [`settings!`] below, with its file key (=
//! long flag), environment variable, default, one-line help and doc comment. From that one entry
//! come the [`Layer`] field (serde: the file key), its clap argument (flag, `env`, value parser,
//! `[default: …]` in the help), the built-in [`defaults`], the `resizelet config default` file
//! ([`default_toml`]) and the README table ([`docs_table`], `resizelet config docs`; a test fails
//! when README.md differs).

use std::path::PathBuf;

use serde::Deserialize;

use super::{DriverName, LegacyMode, LogFormat, SwapBehaviorName};

/// The commands a setting is a flag of (a bit set); every setting is one of `run`.
pub type Commands = u8;
pub const RUN: Commands = 1;
/// `resizelet check`.
pub const CHECK: Commands = 1 << 1;
/// `resizelet resize`.
pub const RESIZE: Commands = 1 << 2;
/// `resizelet status` and `resizelet explain` (the agent's admin endpoint).
pub const ADMIN: Commands = 1 << 3;
/// Kept out of `config default` and the README table (a deprecated name).
pub const UNLISTED: Commands = 1 << 7;
const HOST: Commands = RUN | CHECK | RESIZE;

/// A setting's built-in value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    /// This value, as TOML.
    Value(&'static str),
    /// None; `shown` says what applies instead, `example` (TOML) is the file's commented line.
    Unset {
        shown: &'static str,
        example: &'static str,
    },
    /// None, and `run` needs one.
    Required { example: &'static str },
}

/// What the table says of one setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    /// File key and long flag (`kube-api-qps`).
    pub key: &'static str,
    pub env: &'static str,
    pub commands: Commands,
    pub default: Builtin,
    /// One line for `--help`.
    pub help: &'static str,
    /// The doc comment: the `config default` comment and the README's meaning.
    pub doc: &'static [&'static str],
}

impl Setting {
    /// The default as people read it: `2000`, `unix:///run/…`, `in-cluster`.
    pub fn shown_default(&self) -> &'static str {
        match self.default {
            Builtin::Value(v) => match v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
                Some(s) if !s.is_empty() => s,
                _ => v,
            },
            Builtin::Unset { shown, .. } => shown,
            Builtin::Required { .. } => "none: required",
        }
    }

    fn doc_text(&self) -> String {
        self.doc
            .iter()
            .map(|l| l.trim())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

macro_rules! settings {
    ($(
        $(#[doc = $doc:literal])*
        $field:ident: $ty:ty {
            key: $key:literal,
            env: $env:literal,
            commands: $cmds:expr,
            default: $default:expr,
            help: $help:literal
            $(, arg: $arg:expr)?
            $(,)?
        }
    )*) => {
        /// One layer of settings (a file, or what flags and the environment gave); `None` = not
        /// set here.
        #[derive(Debug, Clone, Default, PartialEq, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct Layer {
            $(
                $(#[doc = $doc])*
                #[serde(rename = $key)]
                pub $field: Option<$ty>,
            )*
        }

        /// Every setting, in the order of the file and the README.
        pub const SETTINGS: &[Setting] = &[$(
            Setting {
                key: $key,
                env: $env,
                commands: $cmds,
                default: $default,
                help: $help,
                doc: &[$($doc),*],
            },
        )*];

        impl Layer {
            /// This layer over `below`: each value set here wins.
            pub fn over(self, below: Layer) -> Layer {
                Layer { $($field: self.$field.or(below.$field)),* }
            }

            /// The clap arguments of the settings of `commands`.
            fn clap_args(commands: Commands) -> Vec<clap::Arg> {
                let mut args = Vec::new();
                $(
                    if $cmds & commands != 0 {
                        let arg = clap_arg(setting($key), clap::value_parser!($ty));
                        $(let arg = ($arg)(arg);)?
                        args.push(arg);
                    }
                )*
                args
            }

            /// What clap matched (flag or environment) of the settings of `commands`.
            fn from_matches(
                m: &mut clap::ArgMatches,
                commands: Commands,
            ) -> Result<Layer, clap::Error> {
                Ok(Layer { $($field: take::<$ty>(m, $key, $cmds & commands != 0)?),* })
            }
        }
    };
}

settings! {
    /// Name of this node; pods are watched with `spec.nodeName=<node-name>`. Usually from
    /// `NODE_NAME`.
    node_name: String {
        key: "node-name",
        env: "NODE_NAME",
        commands: RUN,
        default: Builtin::Required { example: "\"worker-1\"" },
        help: "Name of this node (pods are watched with spec.nodeName=<node-name>)",
    }
    /// kubeconfig file; when absent, the in-cluster configuration (service account) is used
    /// (`check`: to ask the API server's version for `legacy-resize-status = auto`).
    kubeconfig: PathBuf {
        key: "kubeconfig",
        env: "KUBECONFIG",
        commands: RUN | CHECK,
        default: Builtin::Unset { shown: "in-cluster", example: "\"/etc/resizelet/kubeconfig\"" },
        help: "kubeconfig file",
    }
    /// CRI endpoint of containerd (>= 1.6.9), `unix://` and an absolute socket path.
    container_runtime_endpoint: String {
        key: "container-runtime-endpoint",
        env: "RESIZELET_CONTAINER_RUNTIME_ENDPOINT",
        commands: HOST,
        default: Builtin::Value("\"unix:///run/containerd/containerd.sock\""),
        help: "CRI endpoint of the container runtime (unix socket)",
    }
    /// Deprecated name of cgroup-mount (kept for one release).
    cgroup_root: PathBuf {
        key: "cgroup-root",
        env: "RESIZELET_CGROUP_ROOT",
        commands: HOST | UNLISTED,
        default: Builtin::Unset { shown: "cgroup-mount", example: "\"/sys/fs/cgroup\"" },
        help: "Deprecated name of --cgroup-mount (the kubelet's --cgroup-root is --kubelet-cgroup-root)",
    }
    /// Mount point of the cgroup filesystem (v1, v2 or hybrid are detected). Formerly
    /// `cgroup-root` (deprecated: that name means the kubelet's `cgroupRoot` to the kubelet).
    cgroup_mount: PathBuf {
        key: "cgroup-mount",
        env: "RESIZELET_CGROUP_MOUNT",
        commands: HOST,
        default: Builtin::Value("\"/sys/fs/cgroup\""),
        help: "Mount point of the cgroup filesystem",
    }
    /// The kubelet's configuration file (its `--config`). Node facts resizelet must agree with
    /// come from it: `cgroupDriver`, `cgroupRoot`, `cpuCFSQuota`, `cpuCFSQuotaPeriod`,
    /// `memorySwap.swapBehavior`, `failSwapOn`, reserved resources, `singleProcessOOMKill`,
    /// feature gates. Unset: `/var/lib/kubelet/config.yaml` if there is one; `""` reads none (the
    /// kubelet's defaults apply).
    kubelet_config: PathBuf {
        key: "kubelet-config",
        env: "RESIZELET_KUBELET_CONFIG",
        commands: HOST,
        default: Builtin::Unset {
            shown: "/var/lib/kubelet/config.yaml if it exists",
            example: "\"/var/lib/kubelet/config.yaml\"",
        },
        help: "The kubelet's configuration file (its --config); \"\" reads none",
        arg: |a: clap::Arg| a.value_parser(any_path),
    }
    /// Override of the kubelet's `cgroupDriver` (`cgroupfs` or `systemd`); a value that
    /// contradicts the kubelet's file is a warning at start-up.
    cgroup_driver: DriverName {
        key: "cgroup-driver",
        env: "RESIZELET_CGROUP_DRIVER",
        commands: HOST,
        default: Builtin::Unset { shown: "the kubelet config's (cgroupfs)", example: "\"systemd\"" },
        help: "The kubelet's cgroup driver",
    }
    /// Override of the kubelet's `cgroupRoot` (the parent of `kubepods`).
    kubelet_cgroup_root: String {
        key: "kubelet-cgroup-root",
        env: "RESIZELET_KUBELET_CGROUP_ROOT",
        commands: HOST,
        default: Builtin::Unset { shown: "the kubelet config's (/)", example: "\"/\"" },
        help: "The kubelet's cgroupRoot, parent of kubepods",
    }
    /// Override of the kubelet's `memorySwap.swapBehavior` (`NoSwap` or `LimitedSwap`; cgroup
    /// v2: each Burstable container keeps `memory.swap.max` = its memory request's share of the
    /// node's swap).
    swap_behavior: SwapBehaviorName {
        key: "swap-behavior",
        env: "RESIZELET_SWAP_BEHAVIOR",
        commands: HOST,
        default: Builtin::Unset { shown: "the kubelet config's (NoSwap)", example: "\"NoSwap\"" },
        help: "The kubelet's memorySwap.swapBehavior",
    }
    /// Deadline of each CRI call, in milliseconds (1 to 600000).
    cri_timeout_ms: u64 {
        key: "cri-timeout-ms",
        env: "RESIZELET_CRI_TIMEOUT_MS",
        commands: HOST,
        default: Builtin::Value("2000"),
        help: "Deadline of each CRI call, in milliseconds",
    }
    /// Directory of resizelet's allocated/actuated checkpoints (never the kubelet's); created
    /// 0700; it and its `*.d` directories must not be symlinks and must be owned by resizelet's
    /// uid (group/world write is removed with a warning).
    root_dir: PathBuf {
        key: "root-dir",
        env: "RESIZELET_ROOT_DIR",
        commands: RUN | RESIZE,
        default: Builtin::Value("\"/var/lib/resizelet\""),
        help: "Directory for resizelet's allocated/actuated checkpoints",
    }
    /// Admin endpoint (`/metrics`, `/healthz`, `/readyz`, `/debug/pods`): `ip:port`,
    /// `[v6]:port` or an IP alone (port 10258). Loopback unless you need it remote (a
    /// non-loopback address logs a warning). `status` and `explain` connect to it.
    admin_address: String {
        key: "admin-address",
        env: "RESIZELET_ADMIN_ADDRESS",
        commands: RUN | ADMIN,
        default: Builtin::Value("\"127.0.0.1:10258\""),
        help: "Admin endpoint: metrics, health, pod reports",
    }
    /// Client-side rate limit of API writes, queries per second (0.01 to 1000000).
    kube_api_qps: f64 {
        key: "kube-api-qps",
        env: "RESIZELET_KUBE_API_QPS",
        commands: RUN,
        default: Builtin::Value("50.0"),
        help: "Client-side rate limit of API writes, queries per second",
    }
    /// Burst of the client-side rate limit of API writes (1 to 1000000).
    kube_api_burst: u32 {
        key: "kube-api-burst",
        env: "RESIZELET_KUBE_API_BURST",
        commands: RUN,
        default: Builtin::Value("100"),
        help: "Burst of the client-side rate limit",
    }
    /// Also write the deprecated `status.resize` field: `auto` does when the API server is 1.32
    /// or older (it sets `status.resize = Proposed` on every resize); `true` or `false` force it.
    legacy_resize_status: LegacyMode {
        key: "legacy-resize-status",
        env: "RESIZELET_LEGACY_RESIZE_STATUS",
        commands: RUN | CHECK,
        default: Builtin::Value("\"auto\""),
        help: "Also write the deprecated `status.resize` field: auto (API server <= 1.32), true, false",
        arg: |a: clap::Arg| a.num_args(0..=1).default_missing_value("true"),
    }
    /// An enactment still running after this many milliseconds (0 to 600000) gets an
    /// intermediate `PodResizeInProgress` status write before the final one.
    in_progress_threshold_ms: u64 {
        key: "in-progress-threshold-ms",
        env: "RESIZELET_IN_PROGRESS_THRESHOLD_MS",
        commands: RUN,
        default: Builtin::Value("100"),
        help: "Write PodResizeInProgress first when an enactment takes longer, ms",
    }
    /// Label selector of the pods resizelet writes status for (e.g.
    /// `app=web,tier in (a,b),!legacy`); `""` = every pod on the node. Pods outside it are never
    /// written, so their statuses never carry `resources` and the API server refuses every
    /// `/resize` of them (`Pod running on node without support for resize`); they still count
    /// in admission.
    pod_selector: String {
        key: "pod-selector",
        env: "RESIZELET_POD_SELECTOR",
        commands: RUN,
        default: Builtin::Value("\"\""),
        help: "Label selector of the pods whose status resizelet writes; others cannot be resized",
    }
    /// Log filter (tracing `EnvFilter` syntax, e.g. `info` or `resizelet=debug,info`).
    log_level: String {
        key: "log-level",
        env: "RESIZELET_LOG",
        commands: RUN,
        default: Builtin::Value("\"info\""),
        help: "Log filter, e.g. `info` or `resizelet=debug,info`",
    }
    /// Log format: `text` or `json`.
    log_format: LogFormat {
        key: "log-format",
        env: "RESIZELET_LOG_FORMAT",
        commands: RUN,
        default: Builtin::Value("\"text\""),
        help: "Log format",
    }
}

fn setting(key: &str) -> &'static Setting {
    SETTINGS
        .iter()
        .find(|s| s.key == key)
        .expect("every key of settings! is in SETTINGS")
}

/// A path, the empty one included (clap's own parser refuses `""`).
fn any_path(s: &str) -> Result<PathBuf, std::convert::Infallible> {
    Ok(PathBuf::from(s))
}

fn clap_arg(s: &'static Setting, parser: impl Into<clap::builder::ValueParser>) -> clap::Arg {
    clap::Arg::new(s.key)
        .long(s.key)
        .value_name(s.key.to_uppercase().replace('-', "_"))
        .env(s.env)
        .value_parser(parser)
        .help(format!("{} [default: {}]", s.help, s.shown_default()))
}

fn take<T: Clone + Send + Sync + 'static>(
    m: &mut clap::ArgMatches,
    key: &str,
    defined: bool,
) -> Result<Option<T>, clap::Error> {
    if !defined {
        return Ok(None);
    }
    m.try_remove_one::<T>(key)
        .map_err(|e| clap::Error::raw(clap::error::ErrorKind::ArgumentConflict, e))
}

/// The built-in defaults: each setting's [`Builtin::Value`] (read as the file would be).
pub fn defaults() -> Layer {
    let text: String = SETTINGS
        .iter()
        .filter_map(|s| match s.default {
            Builtin::Value(v) => Some(format!("{} = {v}\n", s.key)),
            _ => None,
        })
        .collect();
    toml::from_str(&text).expect("the defaults in settings! are valid TOML of their types")
}

/// The commented default configuration (`resizelet config default`). Every key is present with
/// its default; one without a default is a commented example.
pub fn default_toml() -> String {
    let mut out = String::from(
        "# resizelet configuration (TOML). Keys are the `resizelet run` flag names.\n\
         # Precedence: command-line flag > environment variable > this file > built-in default.\n",
    );
    for s in SETTINGS.iter().filter(|s| s.commands & UNLISTED == 0) {
        out.push('\n');
        for line in s.doc {
            out += &format!("#{line}\n");
        }
        out += &match s.default {
            Builtin::Value(v) => format!("{} = {v}\n", s.key),
            Builtin::Unset { example, .. } | Builtin::Required { example } => {
                format!("# {} = {example}\n", s.key)
            }
        };
    }
    out
}

/// The README's settings table (`resizelet config docs`).
pub fn docs_table() -> String {
    let mut out =
        String::from("| Key / flag | Environment | Default | Meaning |\n|---|---|---|---|\n");
    for s in SETTINGS.iter().filter(|s| s.commands & UNLISTED == 0) {
        let default = match s.default {
            Builtin::Value(_) => format!("`{}`", s.shown_default()),
            _ => s.shown_default().to_string(),
        };
        out += &format!(
            "| `{}` | `{}` | {default} | {} |\n",
            s.key,
            s.env,
            s.doc_text().replace('|', "\\|")
        );
    }
    out
}

/// The settings of the commands `C` as clap arguments (`#[command(flatten)]`): what flags and
/// the environment set, as a [`Layer`] (the others `None`).
#[derive(Debug, Clone, PartialEq)]
pub struct Args<const C: Commands> {
    pub layer: Layer,
}

impl<const C: Commands> Args<C> {
    /// These settings over the built-in defaults.
    pub fn with_defaults(&self) -> Layer {
        self.layer.clone().over(defaults())
    }
}

impl<const C: Commands> clap::FromArgMatches for Args<C> {
    fn from_arg_matches(m: &clap::ArgMatches) -> Result<Self, clap::Error> {
        Self::from_arg_matches_mut(&mut m.clone())
    }

    fn from_arg_matches_mut(m: &mut clap::ArgMatches) -> Result<Self, clap::Error> {
        Ok(Args {
            layer: Layer::from_matches(m, C)?,
        })
    }

    fn update_from_arg_matches(&mut self, m: &clap::ArgMatches) -> Result<(), clap::Error> {
        let given = Layer::from_matches(&mut m.clone(), C)?;
        self.layer = given.over(std::mem::take(&mut self.layer));
        Ok(())
    }
}

impl<const C: Commands> clap::Args for Args<C> {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        cmd.args(Layer::clap_args(C))
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}
