//! The `regtrust` binary: parse the command line, set up logging, call the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use regtrust::config::{AgentConfig, LogFormat, RegistryConfig};
use regtrust::{check, demo, hostroot::HostRoot, probe, report, trust};

#[derive(Parser)]
#[command(
    name = "regtrust",
    version,
    about = "Can this node pull from that registry? Probes registries with exactly the TLS trust the node's container runtime uses."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Output {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Cmd {
    /// Check registries once, as the node's runtime would reach them. Exit 0: all ok; 1: a
    /// registry would fail; 2: usage or configuration error.
    Check {
        #[command(flatten)]
        trust: TrustArgs,
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
        /// node-problem-detector plugin mode: one line of at most 80 characters; exit 0 ok,
        /// 1 problem, 2 unknown (configuration error).
        #[arg(long)]
        npd: bool,
        /// Registries as in an image reference, `host[:port]`; none: every configured host dir.
        registries: Vec<String>,
    },
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
    Demo {
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
        /// Where the demo agent serves /metrics.
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// Keep the agent serving this many seconds after the replay (to look at it with a browser).
        #[arg(long, default_value_t = 0)]
        hold: u64,
    },
}

/// Where the node's trust is, and the probe deadline: the same flags for check and stage.
#[derive(clap::Args)]
struct TrustArgs {
    /// Where the node's filesystem is mounted (a DaemonSet mounts it, e.g. /host).
    #[arg(long, default_value = "/", env = "REGTRUST_HOST_ROOT")]
    host_root: PathBuf,
    /// containerd config file (a node path).
    #[arg(long, default_value = trust::DEFAULT_CONTAINERD_CONFIG, conflicts_with = "hosts_dir")]
    containerd_config: PathBuf,
    /// containerd hosts directory (a node path), instead of reading it from the config.
    #[arg(long)]
    hosts_dir: Option<PathBuf>,
    /// Whose trust rules to apply.
    #[arg(long, value_enum, default_value = "containerd")]
    runtime: trust::Runtime,
    /// Deadline for each endpoint probe, all phases together, in seconds.
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
}

impl TrustArgs {
    /// The validated settings, or what is wrong with them (exit 2).
    fn settings(self) -> Result<(trust::TrustSettings, probe::ProbeSettings), String> {
        if !(self.timeout > 0.0 && self.timeout <= regtrust::config::MAX_TIMEOUT.as_secs_f64()) {
            return Err(format!(
                "--timeout must be more than 0 and at most {} seconds, got {}",
                regtrust::config::MAX_TIMEOUT.as_secs(),
                self.timeout
            ));
        }
        if !self.host_root.is_dir() {
            return Err(format!(
                "--host-root {} is not a directory",
                self.host_root.display()
            ));
        }
        let settings = trust::TrustSettings {
            host_root: HostRoot::new(self.host_root),
            runtime: self.runtime,
            hosts_dir: self.hosts_dir,
            containerd_config: self.containerd_config,
        };
        let ps = probe::ProbeSettings {
            timeout: Duration::from_secs_f64(self.timeout),
            proxy: probe::ProxyEnv::from_env(),
        };
        Ok((settings, ps))
    }
}

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("candidate").required(true).args(["ca", "pin"])))]
struct StageArgs {
    /// Write (without it: show what would be written where).
    #[arg(long)]
    apply: bool,
    #[command(flatten)]
    trust: TrustArgs,
    /// The registry, `host[:port]`.
    #[arg(long)]
    registry: String,
    /// A PEM file holding the CA to install (e.g. the mounted expected-CA ConfigMap).
    #[arg(long)]
    ca: Option<PathBuf>,
    /// SHA-256 of a certificate the registry itself presents (repeatable).
    #[arg(long)]
    pin: Vec<String>,
    /// keep: the file's current CAs stay beside the new one; replace: the new CA alone.
    #[arg(long, value_enum, default_value = "keep")]
    policy: regtrust::stage::Policy,
    #[arg(long, value_enum, default_value = "text")]
    output: Output,
}

#[derive(clap::Args)]
struct RunArgs {
    /// Agent config file (deploy/regtrust.toml is a commented example).
    #[arg(long, env = "REGTRUST_CONFIG")]
    config: Option<PathBuf>,
    #[arg(long, env = "REGTRUST_HOST_ROOT")]
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
    #[arg(long, env = "REGTRUST_LISTEN")]
    listen: Option<SocketAddr>,
    /// Probe interval, e.g. 60s, 5m.
    #[arg(long)]
    interval: Option<String>,
    /// Deadline for one endpoint probe, e.g. 10s (shorter than the interval).
    #[arg(long)]
    timeout: Option<String>,
    #[arg(long)]
    state_dir: Option<PathBuf>,
    #[arg(long, value_enum, env = "REGTRUST_LOG_FORMAT")]
    log_format: Option<Output>,
}

fn init_logging(json: bool, default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("REGTRUST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    use std::io::IsTerminal;
    // Colour only for a person at a terminal; journald, files and kubectl logs get plain text.
    let b = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(filter);
    if json {
        b.json().flatten_event(true).init();
    } else {
        b.init();
    }
}

/// The agent's settings: the file (if any), then each flag given. All problems at once.
fn agent_config(a: RunArgs) -> Result<AgentConfig, Vec<String>> {
    let mut cfg = match &a.config {
        Some(p) => AgentConfig::from_file(p)?,
        None => AgentConfig::default(),
    };
    let mut errs = Vec::new();
    if let Some(v) = a.host_root {
        cfg.host_root = v;
    }
    if let Some(v) = a.runtime {
        cfg.runtime = v;
    }
    if let Some(v) = a.hosts_dir {
        cfg.hosts_dir = Some(v);
    }
    if let Some(v) = a.containerd_config {
        cfg.containerd_config = v;
        cfg.hosts_dir = None;
    }
    for r in a.registries {
        match trust::validate_registry(&r) {
            Ok(()) if !cfg.registries.iter().any(|x| x.name == r) => {
                cfg.registries.push(RegistryConfig {
                    name: r,
                    expected_ca_file: None,
                    expected_ca_sha256: vec![],
                    stage: false,
                })
            }
            Ok(()) => {}
            Err(e) => errs.push(format!("--registry: {e}")),
        }
    }
    if let Some(v) = a.listen {
        cfg.listen = v;
    }
    if let Some(v) = a.interval {
        match regtrust::config::parse_duration(&v) {
            Ok(d) if d >= regtrust::config::MIN_INTERVAL && d <= regtrust::config::MAX_INTERVAL => {
                cfg.interval = d
            }
            Ok(_) => errs.push(format!(
                "--interval: must be between {:?} and {:?}",
                regtrust::config::MIN_INTERVAL,
                regtrust::config::MAX_INTERVAL
            )),
            Err(e) => errs.push(format!("--interval: {e}")),
        }
    }
    if let Some(v) = a.timeout {
        match regtrust::config::parse_duration(&v) {
            Ok(d) if !d.is_zero() && d <= regtrust::config::MAX_TIMEOUT => cfg.timeout = d,
            Ok(_) => errs.push(format!(
                "--timeout: must be more than zero and at most {:?}",
                regtrust::config::MAX_TIMEOUT
            )),
            Err(e) => errs.push(format!("--timeout: {e}")),
        }
    }
    if cfg.timeout >= cfg.interval {
        errs.push(format!(
            "the timeout ({:?}) must be shorter than the interval ({:?})",
            cfg.timeout, cfg.interval
        ));
    }
    if let Some(v) = a.state_dir {
        cfg.state_dir = v;
    }
    if let Some(v) = a.log_format {
        cfg.log_format = if v == Output::Json {
            LogFormat::Json
        } else {
            LogFormat::Text
        };
    }
    if !cfg.host_root.is_dir() {
        errs.push(format!(
            "host_root: {} is not a directory",
            cfg.host_root.display()
        ));
    }
    if errs.is_empty() {
        Ok(cfg)
    } else {
        Err(errs)
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // One event-loop thread: probing is I/O-bound, and everything that blocks or burns CPU (file
    // reads, fsync, /proc, chain verification, bcrypt) leaves it through regtrust::offload for the
    // blocking pool, so a second loop thread would only add an allocator arena. Measured in
    // README's benchmark (scripts/bench).
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(regtrust::offload::MAX_BLOCKING_THREADS)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("regtrust: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.cmd {
        Cmd::Check {
            trust,
            output,
            npd,
            registries,
        } => {
            init_logging(false, if npd { "off" } else { "warn" });
            // node-problem-detector reads one line from stdout; anything that stops the check is
            // "unknown" (2), with the reason on that line.
            let fail = |msg: String| {
                if npd {
                    println!(
                        "{}",
                        report::truncate_line(&format!("unknown: {msg}"), report::NPD_MAX_LINE)
                    );
                } else {
                    eprintln!("regtrust: {msg}");
                }
                ExitCode::from(2)
            };
            for r in &registries {
                if let Err(e) = trust::validate_registry(r) {
                    return fail(e);
                }
            }
            let (settings, ps) = match trust.settings() {
                Ok(s) => s,
                Err(e) => return fail(e),
            };
            match rt.block_on(check::run(&settings, &registries, &ps)) {
                Ok(report) => {
                    if npd {
                        println!("{}", report::npd_line(&report));
                    } else if output == Output::Json {
                        println!("{}", report::json(&report));
                    } else {
                        print!("{}", report::text(&report));
                    }
                    if report.all_ok() {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(1)
                    }
                }
                Err(e) => fail(e.to_string()),
            }
        }
        Cmd::Run(args) => {
            let cfg = match agent_config(args) {
                Ok(c) => c,
                Err(errs) => {
                    for e in errs {
                        eprintln!("regtrust: {e}");
                    }
                    return ExitCode::from(2);
                }
            };
            // After the config: its log_format counts as much as the flag.
            init_logging(cfg.log_format == LogFormat::Json, "info");
            let result = rt.block_on(async move {
                let agent = regtrust::agent::Agent::bind(cfg).await?;
                if let Ok(addr) = agent.local_addr() {
                    tracing::info!(%addr, version = env!("CARGO_PKG_VERSION"), "regtrust agent listening");
                }
                agent.run(shutdown_signal()).await
            });
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("regtrust: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Cmd::Stage(a) => {
            init_logging(false, "warn");
            if let Err(e) = trust::validate_registry(&a.registry) {
                eprintln!("regtrust: {e}");
                return ExitCode::from(2);
            }
            let (settings, ps) = match a.trust.settings() {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("regtrust: {e}");
                    return ExitCode::from(2);
                }
            };
            let source = match &a.ca {
                Some(f) => regtrust::stage::Source::File(f.clone()),
                None => {
                    let pins: Result<Vec<String>, String> = a
                        .pin
                        .iter()
                        .map(|p| regtrust::config::normalize_sha256(p))
                        .collect();
                    match pins {
                        Ok(p) => regtrust::stage::Source::Pin(p),
                        Err(e) => {
                            eprintln!("regtrust: --pin: {e}");
                            return ExitCode::from(2);
                        }
                    }
                }
            };
            let rep = rt.block_on(regtrust::stage::run(
                &settings,
                &a.registry,
                &source,
                a.policy,
                a.apply,
                &ps,
            ));
            if a.output == Output::Json {
                println!("{}", serde_json::to_string_pretty(&rep).unwrap_or_default());
            } else {
                print!("{}", report::stage::text(&rep));
            }
            match rep.outcome {
                regtrust::stage::Outcome::Applied | regtrust::stage::Outcome::DryRun => {
                    ExitCode::SUCCESS
                }
                _ => ExitCode::from(1),
            }
        }
        Cmd::Demo {
            output,
            listen,
            hold,
        } => {
            init_logging(false, "error");
            match rt.block_on(demo::run(listen, Duration::from_secs(hold))) {
                Ok(d) => {
                    if output == Output::Json {
                        let metrics: Vec<_> = d
                            .metrics
                            .iter()
                            .map(|(phase, m)| serde_json::json!({"phase": phase, "metrics": m}))
                            .collect();
                        let view = report::view::Report::from;
                        let v = serde_json::json!({"before": view(&d.before), "after": view(&d.after), "remedied": view(&d.remedied), "ca_a_sha256": d.ca_a_sha256, "ca_b_sha256": d.ca_b_sha256, "agent": metrics});
                        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
                    } else {
                        print_demo(&d);
                    }
                    if d.as_expected() {
                        ExitCode::SUCCESS
                    } else {
                        eprintln!("regtrust demo: the diagnosis was not the expected ok → ca_key_mismatch");
                        ExitCode::from(1)
                    }
                }
                Err(e) => {
                    eprintln!("regtrust demo: {e}");
                    ExitCode::from(2)
                }
            }
        }
    }
}

fn print_demo(d: &demo::DemoOutcome) {
    println!("regtrust demo: a TLS registry on loopback, a node (temporary host root) whose containerd hosts dir trusts CA-A.");
    println!(
        "CA-A sha256 {}\nCA-B sha256 {}  (same subject CN=registry.test, new key)",
        d.ca_a_sha256, d.ca_b_sha256
    );
    println!("\n== regtrust check, before the rotation ==");
    print!("{}", report::text(&strip_node_notes(d.before.clone())));
    println!("\n== regtrust check, after the registry rotated to CA-B ==");
    print!("{}", report::text(&strip_node_notes(d.after.clone())));
    println!("\n== the agent's metrics meanwhile ({}) ==", d.metrics_url);
    for (i, (phase, m)) in d.metrics.iter().enumerate() {
        println!("{}. {phase}", i + 1);
        print!("{}", demo::interesting_metrics(m));
    }
    println!("\n== regtrust check, after the agent staged CA-B ==");
    print!("{}", report::text(&strip_node_notes(d.remedied.clone())));
    if false {}
}

/// The demo's temporary host root has no system roots or containerd config; saying so is noise.
fn strip_node_notes(mut r: regtrust::outcome::CheckOutcome) -> regtrust::outcome::CheckOutcome {
    r.findings.clear();
    r
}
