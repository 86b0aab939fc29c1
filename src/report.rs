//! Rendering a [`Report`]: text for a person on the node at 3 a.m., JSON for tools.
//!
//! Never does: I/O beyond returning strings.

use std::fmt::Write;

use crate::check::{EndpointReport, RegistryReport, Report};
use crate::diagnose::Reason;

/// The JSON document (`--output json`).
pub fn json(report: &Report) -> String {
    serde_json::to_string_pretty(report)
        .unwrap_or_else(|e| format!("{{\"error\":\"cannot serialize report: {e}\"}}"))
}

/// The text report.
pub fn text(report: &Report) -> String {
    let mut s = String::new();
    for f in &report.findings {
        let _ = writeln!(
            s,
            "note: {}{}: {}",
            f.kind,
            f.path.as_ref().map(|p| format!(" {p}")).unwrap_or_default(),
            f.message
        );
    }
    if report.registries.is_empty() {
        let _ = writeln!(
            s,
            "no registries to check (none given, and no host directories found)"
        );
    }
    for r in &report.registries {
        registry_text(&mut s, r);
    }
    s
}

fn registry_text(s: &mut String, r: &RegistryReport) {
    let verdict = if r.ok {
        "OK  ".to_string()
    } else {
        format!("FAIL {}", r.reason)
    };
    let _ = writeln!(
        s,
        "\n{verdict}  {}  ({}{})",
        r.registry,
        r.runtime.as_str(),
        r.host_dir
            .as_ref()
            .map(|d| format!(", {d}"))
            .unwrap_or_else(|| ", no host directory: system roots only".into())
    );
    if r.ok {
        let _ = writeln!(s, "  {}", r.detail);
    }
    let first_ok = r.endpoints.iter().position(|e| e.ok);
    let mut shown: Vec<(Reason, Option<&str>)> = Vec::new();
    for (i, e) in r.endpoints.iter().enumerate() {
        let leaf = e.presented_chain.first().map(|c| c.sha256.as_str());
        if first_ok.is_some_and(|k| i > k) {
            let _ = writeln!(
                s,
                "  [ -- ] {}  {}  (not needed: the runtime stops at the first working endpoint)",
                e.endpoint, e.reason
            );
        } else if !e.ok && shown.contains(&(e.reason, leaf)) {
            let _ = writeln!(
                s,
                "  [FAIL] {}  {}  (same as above; from {})",
                e.endpoint, e.reason, e.origin
            );
        } else {
            endpoint_text(s, e);
            shown.push((e.reason, leaf));
        }
    }
    if r.reason == Reason::ConfigError && r.endpoints.is_empty() {
        let _ = writeln!(s, "  {}", r.detail);
    }
    if !r.findings.is_empty() {
        let _ = writeln!(s, "  findings:");
        for f in &r.findings {
            let _ = writeln!(
                s,
                "    ! {}{}: {}",
                f.kind,
                f.path.as_ref().map(|p| format!(" {p}")).unwrap_or_default(),
                f.message
            );
        }
    }
    if !r.ok && !r.next_step.is_empty() {
        let _ = writeln!(s, "  next step: {}", r.next_step);
    }
}

fn endpoint_text(s: &mut String, e: &EndpointReport) {
    let mark = if e.ok { "ok  " } else { "FAIL" };
    let total = e.timings_ms.total;
    let _ = writeln!(
        s,
        "  [{mark}] {}  {}  ({:.1} ms; from {})",
        e.endpoint, e.reason, total, e.origin
    );
    if e.ok {
        if e.skip_verify {
            let _ = writeln!(s, "         certificate NOT verified (skip_verify)");
        }
        return;
    }
    let _ = writeln!(s, "         runtime error: {}", e.detail);
    if let Some(km) = &e.key_mismatch {
        let _ = writeln!(
            s,
            "         The registry's CA was replaced by one with the SAME NAME ({}) and a DIFFERENT KEY.",
            km.subject
        );
        let _ = writeln!(
            s,
            "         presented: certificate {} signed by CA key id {}{}",
            km.presented_cert_sha256,
            km.presented_issuer_key_id
                .as_deref()
                .unwrap_or("(not stated)"),
            km.presented_issuer_sha256
                .as_ref()
                .map(|h| format!(", CA sha256 {h}"))
                .unwrap_or_else(|| " (CA certificate not sent)".into())
        );
        for t in &km.trusted {
            let _ = writeln!(
                s,
                "         trusted:   CA sha256 {} key id {} from {}",
                t.sha256,
                t.key_id.as_deref().unwrap_or("(none)"),
                t.source
            );
        }
    }
    if !e.presented_chain.is_empty() {
        let _ = writeln!(s, "         registry presented:");
        for (i, c) in e.presented_chain.iter().enumerate() {
            let _ = writeln!(
                s,
                "           [{i}] {}  issuer {}  expires {}  sha256 {}",
                c.subject, c.issuer, c.not_after, c.sha256
            );
        }
    }
    if e.reason != Reason::Ok {
        if e.trusted_cas.is_empty() {
            let _ = writeln!(
                s,
                "         node trusts: {} system roots, no CA configured for this endpoint",
                e.system_roots
            );
        } else {
            let _ = writeln!(
                s,
                "         node trusts ({} system roots, and):",
                e.system_roots
            );
            for t in &e.trusted_cas {
                let _ = writeln!(
                    s,
                    "           {}  expires {}  sha256 {}  from {}",
                    t.subject, t.not_after, t.sha256, t.source
                );
            }
        }
    }
    if !e.next_step.is_empty() {
        let _ = writeln!(s, "         next: {}", e.next_step);
    }
}

/// node-problem-detector's custom plugin contract: one line, at most this many characters.
pub const NPD_MAX_LINE: usize = 80;

/// One line for node-problem-detector: what is wrong, or that all is well.
pub fn npd_line(report: &Report) -> String {
    let bad: Vec<_> = report.registries.iter().filter(|r| !r.ok).collect();
    let line = if bad.is_empty() {
        format!(
            "all {} registries verify with the runtime's trust",
            report.registries.len()
        )
    } else {
        bad.iter()
            .map(|r| format!("{}: {}", r.registry, r.reason))
            .collect::<Vec<_>>()
            .join("; ")
    };
    truncate_line(&line, NPD_MAX_LINE)
}

/// Cuts at a character boundary, marking the cut with "...".
pub fn truncate_line(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(3)).collect();
    out.push_str("...");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npd_lines_fit_80_characters() {
        assert_eq!(truncate_line("short", 80), "short");
        let long = "r.example.com:5000: ca_key_mismatch; ".repeat(10);
        let cut = truncate_line(&long, NPD_MAX_LINE);
        assert_eq!(cut.chars().count(), 80);
        assert!(cut.ends_with("..."));
        assert_eq!(truncate_line(&"é".repeat(100), 80).chars().count(), 80);
    }
}
