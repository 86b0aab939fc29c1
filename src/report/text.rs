//! The text report of `regtrust check`: for a person on the node at 3 a.m.
//!
//! Never does: I/O beyond returning strings.

use std::fmt::Write;

use super::view::{EndpointReport, RegistryReport, Report};
use crate::diagnose::Reason;
use crate::outcome::CheckOutcome;
use crate::trust::runtime_version::{RuntimeInfo, Source};

/// The text report.
pub fn text(outcome: &CheckOutcome) -> String {
    let report = Report::from(outcome);
    let mut s = String::new();
    if let Some(r) = &report.runtime {
        s.push_str(&runtime_line(r));
    }
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

/// The header: which runtime and Go the verdicts follow, and where each came from.
fn runtime_line(r: &RuntimeInfo) -> String {
    let version = match (&r.version, r.version_source) {
        (Some(v), Some(src)) => format!(" {v} ({src})"),
        _ => " (version unknown)".to_string(),
    };
    let from = match &r.binary {
        Some(b) if r.source != Source::Config && r.source != Source::Default => format!(", {b}"),
        _ => String::new(),
    };
    format!(
        "runtime: {}{version}, built with {} ({}{from}): verdicts follow {}'s rules\n",
        r.runtime.as_str(),
        r.go_version,
        r.source,
        r.go_version
    )
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
