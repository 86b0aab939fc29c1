//! The text report of `regtrust check`: for a person on the node at 3 a.m.
//!
//! An endpoint configured twice with the same URL (a hosts.toml `[host]` table and `server`) is
//! one line naming every origin. Every string that came from a registry or a file (names, paths,
//! subjects, the runtime's error) is shown with control characters escaped ([`esc`]), so a hostile
//! name cannot rewrite the terminal or forge a line. Colour only when the caller asks ([`Style`]).
//!
//! Never does: I/O beyond returning strings.

use std::fmt::Write;

use super::view::{EndpointReport, RegistryReport, Report};
use crate::diagnose::Reason;
use crate::outcome::CheckOutcome;
use crate::trust::runtime_version::{RuntimeInfo, Source};
use crate::trust::{escape_control, Finding, PullKind};

/// How the text is dressed: colour only for a person at a terminal (the caller decides, and
/// honours `NO_COLOR`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Style {
    pub colour: bool,
}

impl Style {
    fn paint(self, s: &str, ok: bool) -> String {
        match (self.colour, ok) {
            (false, _) => s.to_string(),
            (true, true) => format!("\x1b[1;32m{s}\x1b[0m"),
            (true, false) => format!("\x1b[1;31m{s}\x1b[0m"),
        }
    }
}

/// A string from outside, safe to print: control characters as `\x1b`-style escapes.
pub fn esc(s: &str) -> String {
    escape_control(s)
}

/// The text report, without colour.
pub fn text(outcome: &CheckOutcome) -> String {
    styled(outcome, Style::default())
}

/// The text report, dressed as `style` says.
pub fn styled(outcome: &CheckOutcome, style: Style) -> String {
    let report = Report::from(outcome);
    let mut s = String::new();
    if let Some(r) = &report.runtime {
        s.push_str(&runtime_line(r));
    }
    s.push_str(pull_line(report.pull));
    for f in &report.findings {
        let _ = writeln!(s, "note: {}", finding_text(f));
    }
    if report.registries.is_empty() {
        let _ = writeln!(
            s,
            "no registries to check (none given, and no host directories found)"
        );
    }
    for r in &report.registries {
        registry_text(&mut s, r, style);
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
    let part = |what: &str, v: &Option<String>| v.as_ref().map(|v| format!(" {what} {}", esc(v)));
    let parts: Vec<String> = [
        part("defaults", &r.default_godebug),
        part("environment", &r.env_godebug),
    ]
    .into_iter()
    .flatten()
    .collect();
    let godebug = if parts.is_empty() {
        String::new()
    } else {
        format!(" (GODEBUG{})", parts.join(";"))
    };
    format!(
        "runtime: {}{version}, built with {} ({}{from}){godebug}: verdicts follow {}'s rules\n",
        r.runtime.as_str(),
        r.go_version,
        r.source,
        r.go_version
    )
}

/// The header: which kind of pull the verdicts model (containerd's resolver picks hosts by it).
fn pull_line(pull: PullKind) -> &'static str {
    match pull {
        PullKind::Tag => "pull: by tag, as the kubelet pulls image:tag (hosts with pull and resolve; --by-digest for image@sha256:…)\n",
        PullKind::Digest => "pull: by digest, image@sha256:… (hosts with pull)\n",
    }
}

/// `kind path: message`, escaped.
fn finding_text(f: &Finding) -> String {
    format!(
        "{}{}: {}",
        f.kind,
        f.path
            .as_ref()
            .map(|p| format!(" {}", esc(p)))
            .unwrap_or_default(),
        esc(&f.message)
    )
}

/// An endpoint as listed: the first of the endpoints with its URL and verdict, and every origin
/// that configured it.
struct Row<'a> {
    e: &'a EndpointReport,
    origins: Vec<&'a str>,
}

/// Endpoints with the same URL and the same verdict become one row (first occurrence's place).
fn rows(r: &RegistryReport) -> Vec<Row<'_>> {
    let mut out: Vec<Row<'_>> = Vec::new();
    for e in &r.endpoints {
        match out
            .iter_mut()
            .find(|row| row.e.endpoint == e.endpoint && row.e.reason == e.reason)
        {
            Some(row) => {
                if !row.origins.contains(&e.origin.as_str()) {
                    row.origins.push(&e.origin);
                }
            }
            None => out.push(Row {
                e,
                origins: vec![&e.origin],
            }),
        }
    }
    out
}

fn origins(row: &Row<'_>) -> String {
    row.origins
        .iter()
        .map(|o| esc(o))
        .collect::<Vec<_>>()
        .join(", ")
}

fn registry_text(s: &mut String, r: &RegistryReport, style: Style) {
    let verdict = if r.ok {
        style.paint("OK  ", true)
    } else {
        style.paint(&format!("FAIL {}", r.reason), false)
    };
    let _ = writeln!(
        s,
        "\n{verdict}  {}  ({}{})",
        esc(&r.registry),
        r.runtime.as_str(),
        r.host_dir
            .as_ref()
            .map(|d| format!(", {}", esc(d)))
            .unwrap_or_else(|| ", no host directory: system roots only".into())
    );
    if r.ok {
        let _ = writeln!(s, "  {}", esc(&r.detail));
    }
    let rows = rows(r);
    let first_ok = rows.iter().position(|row| row.e.ok);
    let mut shown: Vec<(Reason, Option<&str>)> = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let e = row.e;
        let leaf = e.presented_chain.first().map(|c| c.sha256.as_str());
        if first_ok.is_some_and(|k| i > k) {
            let _ = writeln!(
                s,
                "  [ -- ] {}  not needed: the runtime stops at the first working endpoint (regtrust's probe: {}; from {})",
                esc(&e.endpoint),
                e.reason,
                origins(row)
            );
        } else if !e.ok && shown.contains(&(e.reason, leaf)) {
            let _ = writeln!(
                s,
                "  [{}] {}  {}  (same as above; from {})",
                style.paint("FAIL", false),
                esc(&e.endpoint),
                e.reason,
                origins(row)
            );
        } else {
            endpoint_text(s, row, style);
            shown.push((e.reason, leaf));
        }
    }
    if r.reason == Reason::ConfigError && r.endpoints.is_empty() {
        let _ = writeln!(s, "  {}", esc(&r.detail));
    }
    if !r.findings.is_empty() {
        let _ = writeln!(s, "  findings:");
        for f in &r.findings {
            let _ = writeln!(s, "    ! {}", finding_text(f));
        }
    }
    if !r.ok && !r.next_step.is_empty() {
        let _ = writeln!(s, "  next step: {}", esc(&r.next_step));
    }
}

/// `TLS 1.2 TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA via openssl (…)`: what was negotiated, by Go's
/// names, and by which stack.
fn tls_text(t: &crate::probe::TlsSession) -> String {
    let via = match t.stack {
        crate::probe::Stack::Rustls => "rustls",
        crate::probe::Stack::Openssl => {
            "openssl (the second stack: the runtime's Go offers this, rustls does not)"
        }
    };
    format!("{} {} via {via}", esc(&t.version), esc(&t.cipher_suite))
}

fn endpoint_text(s: &mut String, row: &Row<'_>, style: Style) {
    let e = row.e;
    let mark = if e.ok {
        style.paint("ok  ", true)
    } else {
        style.paint("FAIL", false)
    };
    let _ = writeln!(
        s,
        "  [{mark}] {}  {}  ({:.1} ms; from {})",
        esc(&e.endpoint),
        e.reason,
        e.timings_ms.total,
        origins(row)
    );
    if let Some(t) = &e.tls {
        let _ = writeln!(s, "         tls: {}", tls_text(t));
    }
    if e.ok {
        if e.skip_verify {
            let _ = writeln!(s, "         certificate NOT verified (skip_verify)");
        }
        return;
    }
    let _ = writeln!(s, "         runtime error: {}", esc(&e.detail));
    key_mismatch_text(s, e);
    if !e.presented_chain.is_empty() {
        let _ = writeln!(s, "         registry presented:");
        for (i, c) in e.presented_chain.iter().enumerate() {
            let _ = writeln!(
                s,
                "           [{i}] {}  issuer {}  expires {}  sha256 {}",
                esc(&c.subject),
                esc(&c.issuer),
                c.not_after,
                c.sha256
            );
        }
    }
    trusted_text(s, e);
    if !e.next_step.is_empty() {
        let _ = writeln!(s, "         next: {}", esc(&e.next_step));
    }
}

/// The incident's evidence: same name, different key.
fn key_mismatch_text(s: &mut String, e: &EndpointReport) {
    let Some(km) = &e.key_mismatch else {
        return;
    };
    let _ = writeln!(
        s,
        "         The registry's CA was replaced by one with the SAME NAME ({}) and a DIFFERENT KEY.",
        esc(&km.subject)
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
            esc(&t.source)
        );
    }
}

/// What the node trusts for a failing endpoint.
fn trusted_text(s: &mut String, e: &EndpointReport) {
    if e.trusted_cas.is_empty() {
        let _ = writeln!(
            s,
            "         node trusts: {} system roots, no CA configured for this endpoint",
            e.system_roots
        );
        return;
    }
    let _ = writeln!(
        s,
        "         node trusts ({} system roots, and):",
        e.system_roots
    );
    for t in &e.trusted_cas {
        let _ = writeln!(
            s,
            "           {}  expires {}  sha256 {}  from {}",
            esc(&t.subject),
            t.not_after,
            t.sha256,
            esc(&t.source)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{cert, endpoint, trust};
    use super::*;
    use crate::outcome::{EndpointOutcome, RegistryOutcome};

    fn outcome(endpoints: Vec<EndpointOutcome>) -> CheckOutcome {
        let t = trust(
            "r.test:5000",
            Some("/etc/containerd/certs.d/evil\x1b[2K\rOK  prod"),
        );
        CheckOutcome {
            registries: vec![RegistryOutcome::decide(t, endpoints)],
            ..CheckOutcome::default()
        }
    }

    #[test]
    fn one_url_configured_twice_is_one_line_with_both_origins() {
        let o = outcome(vec![
            endpoint(
                "r.test:5000",
                "hosts.toml [host]",
                Reason::UnknownAuthority,
                Vec::new(),
            ),
            endpoint(
                "r.test:5000",
                "hosts.toml server",
                Reason::UnknownAuthority,
                Vec::new(),
            ),
        ]);
        let t = text(&o);
        assert_eq!(t.matches("https://r.test:5000/v2/").count(), 1, "{t}");
        assert!(
            t.contains("from hosts.toml [host], hosts.toml server"),
            "{t}"
        );
    }

    #[test]
    fn strings_from_registries_and_files_are_escaped() {
        let evil = cert("CA\x1b[2K\rOK  prod.registry:5000\nnext line");
        let o = outcome(vec![endpoint(
            "r.test:5000",
            "o\r",
            Reason::UnknownAuthority,
            vec![evil],
        )]);
        let t = text(&o);
        assert!(!t.contains('\x1b') && !t.contains('\r'), "{t:?}");
        assert!(
            t.contains("CN=CA\\x1b[2K\\rOK  prod.registry:5000\\nnext line"),
            "{t}"
        );
        assert!(t.contains("evil\\x1b[2K\\rOK  prod"), "{t}");
        assert!(t.contains("bad\\x1b[2K\\rdetail"), "{t}");
        let coloured = styled(&o, Style { colour: true });
        assert!(coloured.contains("\x1b[1;31mFAIL unknown_authority\x1b[0m"));
        assert!(!coloured.contains('\r'));
    }
}
