//! The agent's status page (`GET /` on the listener): each registry's latest outcome for a person
//! on the node. Every string from a registry or a file is HTML-escaped.
//!
//! Never does: I/O beyond returning strings.

use std::fmt::Write as _;

use super::view::RegistryReport;
use crate::outcome::RegistryOutcome;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn short(sha: &str) -> String {
    sha.chars().take(16).collect()
}

/// The page for `entries` (each registry's latest outcome, and whether its expected CA is
/// trusted).
pub fn page(entries: &[(RegistryOutcome, Option<bool>)]) -> String {
    let mut h = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>regtrust</title><style>body{font-family:sans-serif;margin:1em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 6px;vertical-align:top;font-size:13px}.ok{background:#dfd}.bad{background:#fdd}code{font-size:12px}</style></head><body>",
    );
    let _ = write!(h, "<h1>regtrust {}</h1>", env!("CARGO_PKG_VERSION"));
    if entries.is_empty() {
        h.push_str("<p>No registry probed yet.</p>");
    }
    h.push_str("<table><tr><th>registry</th><th>endpoint</th><th>verdict</th><th>presented (leaf / issuer)</th><th>node trusts</th><th>expected CA trusted</th><th>last error</th></tr>");
    for (outcome, expected) in entries {
        let r = RegistryReport::from(outcome);
        let exp = match expected {
            Some(true) => "yes",
            Some(false) => "<b>NO</b>",
            None => "—",
        };
        for e in &r.endpoints {
            let class = if e.ok { "ok" } else { "bad" };
            let presented = match (e.presented_chain.first(), &e.presented_issuer) {
                (Some(l), Some(i)) => format!(
                    "<code>{}</code><br>{} <code>{}</code>",
                    short(&l.sha256),
                    esc(&i.subject),
                    esc(&short(&i.id))
                ),
                (Some(l), None) => format!("<code>{}</code>", short(&l.sha256)),
                _ => "—".into(),
            };
            let trusted: Vec<String> = e
                .trusted_cas
                .iter()
                .map(|t| {
                    format!(
                        "{} <code>{}</code><br><small>{}</small>",
                        esc(&t.subject),
                        short(&t.sha256),
                        esc(&t.source)
                    )
                })
                .collect();
            let err = if e.ok { String::new() } else { esc(&e.detail) };
            let _ = write!(
                h,
                "<tr class=\"{class}\"><td>{}</td><td>{}</td><td>{}</td><td>{presented}</td><td>{} <small>(+{} system roots)</small></td><td>{exp}</td><td>{err}</td></tr>",
                esc(&r.registry),
                esc(&e.endpoint),
                e.reason,
                trusted.join("<br>"),
                e.system_roots
            );
        }
    }
    h.push_str("</table><p><a href=\"/metrics\">/metrics</a> · <a href=\"/healthz\">/healthz</a> · <a href=\"/readyz\">/readyz</a></p></body></html>\n");
    h
}
