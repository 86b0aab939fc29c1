//! The `regtrust` binary: parse the command line, set up logging, call the library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
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
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
        /// Registries as in an image reference, `host[:port]`; none: every configured host dir.
        registries: Vec<String>,
    },
    /// Replay the incident on loopback (CA rotated to a new key with the same name) and show the diagnosis.
    Demo {
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("REGTRUST_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
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
            host_root,
            containerd_config,
            hosts_dir,
            runtime,
            timeout,
            output,
            registries,
        } => {
            if !(timeout > 0.0 && timeout <= 3600.0) {
                eprintln!("regtrust: --timeout must be between 0 and 3600 seconds, got {timeout}");
                return ExitCode::from(2);
            }
            for r in &registries {
                if let Err(e) = trust::validate_registry(r) {
                    eprintln!("regtrust: {e}");
                    return ExitCode::from(2);
                }
            }
            if !host_root.is_dir() {
                eprintln!(
                    "regtrust: --host-root {} is not a directory",
                    host_root.display()
                );
                return ExitCode::from(2);
            }
            let settings = trust::TrustSettings {
                host_root: HostRoot::new(host_root),
                runtime,
                hosts_dir,
                containerd_config,
            };
            let ps = probe::ProbeSettings {
                timeout: Duration::from_secs_f64(timeout),
                proxy: probe::ProxyEnv::from_env(),
            };
            let result = rt.block_on(check::run(&settings, &registries, &ps));
            match result {
                Ok(report) => {
                    print!(
                        "{}",
                        if output == Output::Json {
                            report::json(&report) + "\n"
                        } else {
                            report::text(&report)
                        }
                    );
                    if report.all_ok() {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(1)
                    }
                }
                Err(e) => {
                    eprintln!("regtrust: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Cmd::Demo { output } => {
            match rt.block_on(demo::run()) {
                Ok(d) => {
                    if output == Output::Json {
                        let v = serde_json::json!({"before": d.before, "after": d.after, "ca_a_sha256": d.ca_a_sha256, "ca_b_sha256": d.ca_b_sha256});
                        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
                    } else {
                        println!("regtrust demo: a TLS registry on loopback, a node (temporary host root) whose containerd hosts dir trusts CA-A.");
                        println!("CA-A sha256 {}\nCA-B sha256 {}  (same subject CN=registry.test, new key)", d.ca_a_sha256, d.ca_b_sha256);
                        println!("\n== 1. the registry serves a certificate from CA-A ==");
                        print!("{}", report::text(&strip_node_notes(d.before.clone())));
                        println!(
                            "\n== 2. the registry rotates to CA-B; the node still trusts CA-A =="
                        );
                        print!("{}", report::text(&strip_node_notes(d.after.clone())));
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

/// The demo's temporary host root has no system roots or containerd config; saying so is noise.
fn strip_node_notes(mut r: check::Report) -> check::Report {
    r.findings.clear();
    r
}
