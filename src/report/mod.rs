//! Every view of an outcome, and nothing else: text for a person on the node at 3 a.m.
//! ([`text`]), JSON for tools ([`json`], schema in [`view`]), the one line node-problem-detector
//! reads ([`npd`]), the agent's status page ([`status`]), the staging report ([`stage`]), the
//! reason table ([`reasons`]) and the demo's story ([`demo`]).
//!
//! Views read [`crate::outcome`] (or a staging report) and return strings. Never does: I/O,
//! decisions — a view never re-derives a verdict.

pub mod demo;
pub mod npd;
pub mod reasons;
pub mod stage;
pub mod status;
pub mod text;
pub mod view;

pub use npd::{npd_line, truncate_line, NPD_MAX_LINE};
pub use text::text;

use crate::outcome::CheckOutcome;

/// The JSON document (`--output json`).
pub fn json(outcome: &CheckOutcome) -> String {
    to_json(&view::Report::from(outcome))
}

/// Pretty JSON of any view; a value that cannot be serialized says so in the document.
pub fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string_pretty(v)
        .unwrap_or_else(|e| format!("{{\"error\":\"cannot serialize report: {e}\"}}"))
}
