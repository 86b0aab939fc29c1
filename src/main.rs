//! The `regtrust` binary: parse the command line ([`cli`]), set up logging, call the library, and
//! turn its answer into output and an exit code.

mod cli;
mod logging;
mod memory;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use cli::{CheckArgs, Cli, Cmd, DemoArgs, Output, ReasonsArgs, ReasonsOutput, RunArgs, StageArgs};
use regtrust::config::{AgentConfig, LogFormat};
use regtrust::{check, demo, report, stage, trust};

/// The run found problems (a registry would fail, staging refused).
const EXIT_PROBLEM: u8 = 1;
/// Usage or configuration error; for node-problem-detector, "unknown".
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    memory::tune_allocator();
    memory::release_relocations();
    let cli = Cli::parse();
    if let Cmd::Reasons(a) = &cli.cmd {
        return reasons(a);
    }
    // reqwest's rustls backend asks for the process-wide provider when a client is built without
    // a ClientConfig of its own; regtrust's own TLS code always names aws-lc-rs.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
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
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match cli.cmd {
        Cmd::Check(a) => check(&rt, a),
        Cmd::Run(a) => run(&rt, a),
        Cmd::Stage(a) => stage(&rt, a),
        Cmd::Demo(a) => demo(&rt, a),
        Cmd::Reasons(a) => reasons(&a),
    }
}

/// `regtrust: msg` on stderr (escaped: it may name a file or a registry), exit 2.
fn usage_error(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("regtrust: {}", trust::escape_control(&msg.to_string()));
    ExitCode::from(EXIT_USAGE)
}

fn exit(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_PROBLEM)
    }
}

fn check(rt: &tokio::runtime::Runtime, a: CheckArgs) -> ExitCode {
    let npd = a.npd;
    logging::init(false, if npd { "off" } else { "warn" });
    // node-problem-detector reads one line from stdout; anything that stops the check is
    // "unknown" (2), with the reason on that line.
    let fail = |msg: String| {
        if !npd {
            return usage_error(msg);
        }
        let line = report::truncate_line(
            &trust::escape_control(&format!("unknown: {msg}")),
            report::NPD_MAX_LINE,
        );
        println!("{line}");
        ExitCode::from(EXIT_USAGE)
    };
    if let Some(e) = a
        .registries
        .iter()
        .find_map(|r| trust::validate_registry(r).err())
    {
        return fail(e);
    }
    let s = match a.trust.settings() {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let pull = if a.by_digest {
        regtrust::trust::PullKind::Digest
    } else {
        regtrust::trust::PullKind::Tag
    };
    match rt.block_on(check::run_as(&s.trust, &a.registries, &s.probe, pull)) {
        Ok(mut report) => {
            report.runtime = Some(s.runtime);
            report.findings.extend(s.findings);
            if npd {
                println!("{}", trust::escape_control(&report::npd_line(&report)));
            } else if a.output == Output::Json {
                println!("{}", report::json(&report));
            } else {
                use std::io::IsTerminal;
                let style = report::text::Style {
                    colour: cli::colour(std::io::stdout().is_terminal()),
                };
                print!("{}", report::text::styled(&report, style));
            }
            exit(report.all_ok())
        }
        Err(e) => fail(e.to_string()),
    }
}

fn run(rt: &tokio::runtime::Runtime, a: RunArgs) -> ExitCode {
    let file = a.config.clone();
    let overrides = a.overrides();
    let cfg = match AgentConfig::load(file.as_deref(), overrides.clone()) {
        Ok(c) => c,
        Err(errs) => {
            for e in errs {
                eprintln!("regtrust: {}", trust::escape_control(&e.to_string()));
            }
            return ExitCode::from(EXIT_USAGE);
        }
    };
    // After the config: its log_format counts as much as the flag.
    logging::init(cfg.log_format == LogFormat::Json, "info");
    let result = rt.block_on(async move {
        let source = regtrust::agent::reload::Source { file, overrides };
        let agent = regtrust::agent::Agent::bind(cfg).await?.reload_from(source);
        regtrust::agent::signals::forward_hangups(agent.commands());
        if let Ok(addr) = agent.local_addr() {
            tracing::info!(%addr, version = env!("CARGO_PKG_VERSION"), "regtrust agent listening");
        }
        agent.run(regtrust::agent::signals::shutdown()).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => usage_error(e),
    }
}

fn stage(rt: &tokio::runtime::Runtime, a: StageArgs) -> ExitCode {
    logging::init(false, "warn");
    if let Err(e) = trust::validate_registry(&a.registry) {
        return usage_error(e);
    }
    let source = a.source();
    let s = match a.trust.settings() {
        Ok(s) => s,
        Err(e) => return usage_error(e),
    };
    let (settings, ps) = (s.trust, s.probe);
    let source = match source {
        Ok(s) => s,
        Err(e) => return usage_error(e),
    };
    let rep = rt.block_on(stage::run(
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
    exit(matches!(
        rep.outcome,
        stage::Outcome::Applied | stage::Outcome::DryRun
    ))
}

fn reasons(a: &ReasonsArgs) -> ExitCode {
    match a.output {
        ReasonsOutput::Text => print!("{}", report::reasons::text()),
        ReasonsOutput::Json => println!("{}", report::reasons::json()),
        ReasonsOutput::Markdown => print!("{}", report::reasons::markdown()),
    }
    ExitCode::SUCCESS
}

fn demo(rt: &tokio::runtime::Runtime, a: DemoArgs) -> ExitCode {
    logging::init(false, "error");
    match rt.block_on(demo::run(a.listen, Duration::from_secs(a.hold))) {
        Ok(d) => {
            if a.output == Output::Json {
                println!("{}", report::demo::render_json(&d));
            } else {
                print!("{}", report::demo::render_text(&d));
            }
            if d.as_expected() {
                return ExitCode::SUCCESS;
            }
            eprintln!("regtrust demo: the diagnosis was not the expected ok → ca_key_mismatch");
            ExitCode::from(EXIT_PROBLEM)
        }
        Err(e) => {
            eprintln!("regtrust demo: {e}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}
