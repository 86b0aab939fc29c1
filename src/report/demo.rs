//! The demo's story, for a person (text) and for tools (JSON): both CAs, the check before and after
//! the rotation, the agent's metrics at each phase, and the check after the agent staged CA-B.
//!
//! Never does: I/O beyond returning strings.

use super::view::Report;
use crate::demo::DemoOutcome;
use crate::outcome::CheckOutcome;

/// The metric lines a person should look at.
pub fn interesting_metrics(text: &str) -> String {
    const NAMES: &[&str] = &[
        "regtrust_probe_success{",
        "regtrust_probe_reason{",
        "regtrust_presented_ca_info{",
        "regtrust_expected_ca_trusted{",
        "regtrust_ca_drift{",
        "regtrust_ca_changes_total{",
        "regtrust_stage_total{",
    ];
    text.lines()
        .filter(|l| NAMES.iter().any(|n| l.starts_with(n)))
        .map(|l| format!("  {l}\n"))
        .collect()
}

/// The story for a person: both CAs, the check before and after the rotation, the agent's
/// metrics at each phase, and the check after the agent staged CA-B.
pub fn render_text(d: &DemoOutcome) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let check = |r: &CheckOutcome| super::text(&strip_node_notes(r.clone()));
    let _ = writeln!(out, "regtrust demo: a TLS registry on loopback, a node (temporary host root) whose containerd hosts dir trusts CA-A.");
    let _ = writeln!(
        out,
        "CA-A sha256 {}\nCA-B sha256 {}  (same subject CN=registry.test, new key)",
        d.ca_a_sha256, d.ca_b_sha256
    );
    let _ = writeln!(out, "\n== regtrust check, before the rotation ==");
    out.push_str(&check(&d.before));
    let _ = writeln!(
        out,
        "\n== regtrust check, after the registry rotated to CA-B =="
    );
    out.push_str(&check(&d.after));
    let _ = writeln!(
        out,
        "\n== the agent's metrics meanwhile ({}) ==",
        d.metrics_url
    );
    for (i, (phase, m)) in d.metrics.iter().enumerate() {
        let _ = writeln!(out, "{}. {phase}", i + 1);
        out.push_str(&interesting_metrics(m));
    }
    let _ = writeln!(out, "\n== regtrust check, after the agent staged CA-B ==");
    out.push_str(&check(&d.remedied));
    out
}

/// The demo as one JSON object: the three checks (the `check --output json` schema), both CAs'
/// fingerprints, and the agent's /metrics per phase.
pub fn render_json(d: &DemoOutcome) -> String {
    let agent: Vec<_> = d
        .metrics
        .iter()
        .map(|(phase, m)| serde_json::json!({"phase": phase, "metrics": m}))
        .collect();
    let v = serde_json::json!({
        "before": Report::from(&d.before),
        "after": Report::from(&d.after),
        "remedied": Report::from(&d.remedied),
        "ca_a_sha256": d.ca_a_sha256,
        "ca_b_sha256": d.ca_b_sha256,
        "agent": agent,
    });
    super::to_json(&v)
}

/// The demo's temporary host root has no system roots or containerd config; saying so is noise.
fn strip_node_notes(mut r: CheckOutcome) -> CheckOutcome {
    r.findings.clear();
    r
}
