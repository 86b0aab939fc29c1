//! Logging set-up for the binary: `tracing` to stderr, text or JSON, filtered by `REGTRUST_LOG`.
//!
//! The filter is `tracing_subscriber`'s `Targets` (`info`, `regtrust=debug,warn`): the directives a
//! person gives here, without `EnvFilter`'s regex engine (about 230 KiB of code that a node agent
//! would keep resident for span-field filters nobody uses).

use std::io::IsTerminal;

use regtrust::{config, trust};
use tracing_subscriber::field::MakeExt;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::cli;

/// The filter: `REGTRUST_LOG` when it parses, else `default_level`; a directive that does not
/// parse is said on stderr (naming the variable) rather than silently ignored.
fn filter(default_level: &str) -> Targets {
    let fallback = || {
        default_level
            .parse()
            .unwrap_or_else(|_| Targets::new().with_default(tracing::Level::INFO))
    };
    match std::env::var(config::ENV_LOG) {
        Ok(v) if !v.trim().is_empty() => v.parse().unwrap_or_else(|e| {
            eprintln!(
                "regtrust: {}={:?} is not a log filter ({e}); logging at {default_level}",
                config::ENV_LOG,
                trust::escape_control(&v)
            );
            fallback()
        }),
        _ => fallback(),
    }
}

pub(crate) fn init(json: bool, default_level: &str) {
    let filter = filter(default_level);
    // Colour only for a person at a terminal (and not with NO_COLOR); journald, files and kubectl
    // logs get plain text.
    let b = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(cli::colour(std::io::stderr().is_terminal()))
        .with_max_level(tracing::Level::TRACE);
    if json {
        // JSON strings escape control characters by themselves.
        b.json().flatten_event(true).finish().with(filter).init();
    } else {
        // Field values come from registries and files: a subject or a path with ESC, CR or LF
        // must not rewrite the terminal or forge a log line.
        b.fmt_fields(
            tracing_subscriber::fmt::format::debug_fn(|w, field, value| {
                let v = trust::escape_control(&format!("{value:?}"));
                if field.name() == "message" {
                    write!(w, "{v}")
                } else {
                    write!(w, "{field}={v}")
                }
            })
            .delimited(" "),
        )
        .finish()
        .with(filter)
        .init();
    }
}
