//! The command line: subcommands, flags, their defaults and environment variables, and how the
//! flags become the library's settings. Parsing only; `main` dispatches.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use regtrust::config::{self, LogFormat, Overrides};
use regtrust::hostroot::HostRoot;
use regtrust::{probe, stage, trust};

#[derive(Parser)]
#[command(
    name = "regtrust",
    version,
    about = "Can this node pull from that registry? Probes registries with exactly the TLS trust the node's container runtime uses."
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) cmd: Cmd,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub(crate) enum Output {
    Text,
    Json,
}

#[derive(Subcommand)]
pub(crate) enum Cmd {
    /// Check registries once, as the node's runtime would reach them. Exit 0: all ok; 1: a
    /// registry would fail; 2: usage or configuration error.
    Check(CheckArgs),
    /// Run the node agent: probe continuously, serve /metrics, /healthz, /readyz and a status page.
    /// Settings come from --config (TOML), overridden by the flags given.
    Run(RunArgs),
    /// Stage a corrected CA where the runtime reads it: plan and print; write only with --apply.
    /// The candidate must come from --ca (a file the operator trusts) or --pin (a fingerprint of a
    /// certificate the registry presents), and must make the live chain verify. Exit 0: applied or
    /// planned; 1: refused, rolled back or failed; 2: usage.
    Stage(StageArgs),
    /// Replay the incident on loopback (CA rotated to a new key with the same name): the check's
    /// diagnosis, and the agent's metrics while it happens.
    Demo(DemoArgs),
    /// List every reason regtrust reports: what it means, the runtime's own words for it, and the
    /// next step.
    Reasons(ReasonsArgs),
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub(crate) enum ReasonsOutput {
    Text,
    Json,
    /// README's table.
    Markdown,
}

#[derive(clap::Args)]
pub(crate) struct ReasonsArgs {
    #[arg(long, value_enum, default_value = "text")]
    pub(crate) output: ReasonsOutput,
}

#[derive(clap::Args)]
pub(crate) struct CheckArgs {
    #[command(flatten)]
    pub(crate) trust: TrustArgs,
    #[arg(long, value_enum, default_value = "text")]
    pub(crate) output: Output,
    /// node-problem-detector plugin mode: one line of at most 80 characters; exit 0 ok,
    /// 1 problem, 2 unknown (configuration error).
    #[arg(long)]
    pub(crate) npd: bool,
    /// Model a pull by digest (`image@sha256:…`: hosts with the `pull` capability) instead of a
    /// pull by tag (what the kubelet does for `image:tag`: hosts with `pull` and `resolve`).
    #[arg(long)]
    pub(crate) by_digest: bool,
    /// Registries as in an image reference, `host[:port]`; none: every configured host dir.
    pub(crate) registries: Vec<String>,
}

/// Where the node's trust is, and the probe deadline: the same flags for check and stage.
#[derive(clap::Args)]
pub(crate) struct TrustArgs {
    /// Where the node's filesystem is mounted (a DaemonSet mounts it, e.g. /host).
    #[arg(long, default_value = config::DEFAULT_HOST_ROOT, env = config::ENV_HOST_ROOT)]
    host_root: PathBuf,
    /// containerd config file (a node path).
    #[arg(long, default_value = trust::DEFAULT_CONTAINERD_CONFIG, conflicts_with = "hosts_dir")]
    containerd_config: PathBuf,
    /// containerd hosts directory (a node path), instead of reading it from the config.
    #[arg(long)]
    hosts_dir: Option<PathBuf>,
    /// Whose trust rules to apply.
    #[arg(long, value_enum, default_value_t = config::DEFAULT_RUNTIME)]
    runtime: trust::Runtime,
    /// Deadline for each endpoint probe, all phases together, in seconds.
    #[arg(long, default_value_t = config::DEFAULT_TIMEOUT.as_secs_f64())]
    timeout: f64,
    /// Where the runtime's process is visible (the node's /proc), to read which Go it runs.
    #[arg(long, default_value = config::DEFAULT_PROC_DIR)]
    proc_dir: PathBuf,
    /// The runtime's version, instead of reading it from its process or binary.
    #[arg(long, value_parser = config::runtime_version)]
    runtime_version: Option<String>,
    /// The Go the runtime is built with (`1.22`, `go1.21.5`), instead of reading it from its
    /// process or binary; verdicts follow that Go's rules.
    #[arg(long, value_parser = config::go_version)]
    go_version: Option<regtrust::verify::GoVersion>,
    /// The GODEBUG the runtime runs with (`x509sha1=1,tlsrsakex=1`), instead of reading it from
    /// its process's environment; its binary's defaults still apply beneath it.
    #[arg(long, value_parser = config::godebug)]
    godebug: Option<String>,
}

/// The validated settings of [`TrustArgs`], with the runtime and Go version the verdicts follow.
pub(crate) struct Settings {
    pub(crate) trust: trust::TrustSettings,
    pub(crate) probe: probe::ProbeSettings,
    pub(crate) runtime: trust::runtime_version::RuntimeInfo,
    /// Findings of the version detection, for the report.
    pub(crate) findings: Vec<trust::Finding>,
}

impl TrustArgs {
    /// The validated settings, or what is wrong with them (exit 2). Reads the runtime's
    /// process and binary for its version (blocking: before the runtime starts probing).
    pub(crate) fn settings(self) -> Result<Settings, String> {
        let timeout =
            config::timeout_from_secs(self.timeout).map_err(|e| format!("--timeout: {e}"))?;
        if !self.host_root.is_dir() {
            return Err(format!(
                "--host-root {} is not a directory",
                self.host_root.display()
            ));
        }
        let host_root = HostRoot::new(self.host_root);
        let overrides = trust::runtime_version::Overrides {
            runtime_version: self.runtime_version,
            go_version: self.go_version,
            godebug: self.godebug,
        };
        let (runtime, findings) =
            trust::runtime_version::detect(&host_root, &self.proc_dir, self.runtime, &overrides);
        let probe =
            probe::ProbeSettings::for_runtime(timeout, probe::ProxyEnv::from_env(), &runtime);
        let trust = trust::TrustSettings {
            host_root,
            runtime: self.runtime,
            hosts_dir: self.hosts_dir,
            containerd_config: self.containerd_config,
            runtime_version: runtime.version.clone(),
        };
        Ok(Settings {
            trust,
            probe,
            runtime,
            findings,
        })
    }
}

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("candidate").required(true).args(["ca", "pin"])))]
pub(crate) struct StageArgs {
    /// Write (without it: show what would be written where).
    #[arg(long)]
    pub(crate) apply: bool,
    #[command(flatten)]
    pub(crate) trust: TrustArgs,
    /// The registry, `host[:port]`.
    #[arg(long)]
    pub(crate) registry: String,
    /// A PEM file holding the CA to install (e.g. the mounted expected-CA ConfigMap).
    #[arg(long)]
    ca: Option<PathBuf>,
    /// SHA-256 of a certificate the registry itself presents (repeatable).
    #[arg(long)]
    pin: Vec<String>,
    /// keep: the file's current CAs stay beside the new one; replace: the new CA alone.
    #[arg(long, value_enum, default_value = "keep")]
    pub(crate) policy: stage::Policy,
    #[arg(long, value_enum, default_value = "text")]
    pub(crate) output: Output,
}

impl StageArgs {
    /// Where the candidate CA comes from, or what is wrong with the pins (exit 2).
    pub(crate) fn source(&self) -> Result<stage::Source, String> {
        if let Some(f) = &self.ca {
            return Ok(stage::Source::File(f.clone()));
        }
        self.pin
            .iter()
            .map(|p| config::normalize_sha256(p))
            .collect::<Result<Vec<_>, _>>()
            .map(stage::Source::Pin)
            .map_err(|e| format!("--pin: {e}"))
    }
}

/// `regtrust run`: a config file and flags that override it (see [`config::Overrides`]).
#[derive(clap::Args)]
pub(crate) struct RunArgs {
    /// Agent config file (deploy/regtrust.toml is a commented example).
    #[arg(long, env = config::ENV_CONFIG)]
    pub(crate) config: Option<PathBuf>,
    #[arg(long, env = config::ENV_HOST_ROOT)]
    host_root: Option<PathBuf>,
    #[arg(long, value_enum)]
    runtime: Option<trust::Runtime>,
    #[arg(long, conflicts_with = "containerd_config")]
    hosts_dir: Option<PathBuf>,
    #[arg(long)]
    containerd_config: Option<PathBuf>,
    /// A registry to watch (repeatable), in addition to those in the config.
    #[arg(long = "registry")]
    registries: Vec<String>,
    /// Address for /metrics and the status page.
    #[arg(long, env = config::ENV_LISTEN)]
    listen: Option<SocketAddr>,
    /// Probe interval, e.g. 60s, 5m.
    #[arg(long)]
    interval: Option<String>,
    /// Deadline for one endpoint probe, e.g. 10s (shorter than the interval).
    #[arg(long)]
    timeout: Option<String>,
    #[arg(long)]
    state_dir: Option<PathBuf>,
    #[arg(long, value_enum, env = config::ENV_LOG_FORMAT)]
    log_format: Option<LogFormat>,
}

impl RunArgs {
    /// The flags that override the config file.
    pub(crate) fn overrides(self) -> Overrides {
        Overrides {
            host_root: self.host_root,
            runtime: self.runtime,
            hosts_dir: self.hosts_dir,
            containerd_config: self.containerd_config,
            registries: self.registries,
            listen: self.listen,
            interval: self.interval,
            timeout: self.timeout,
            state_dir: self.state_dir,
            log_format: self.log_format,
        }
    }
}

/// Colour for a stream: only on a terminal, and never when `NO_COLOR` is set to anything but
/// the empty string (no-color.org).
pub(crate) fn colour(is_terminal: bool) -> bool {
    is_terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

#[derive(clap::Args)]
pub(crate) struct DemoArgs {
    #[arg(long, value_enum, default_value = "text")]
    pub(crate) output: Output,
    /// Where the demo agent serves /metrics.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub(crate) listen: SocketAddr,
    /// Keep the agent serving this many seconds after the replay (to look at it with a browser).
    #[arg(long, default_value_t = 0)]
    pub(crate) hold: u64,
}
