//! The sinks of the agent's fold: each applies a registry's new outcome and the fold's events to
//! one consumer — the metrics ([`metrics`]), the logs ([`log`]), the persisted state ([`state`]).
//! None of them decides anything: decisions are [`super::drift`]'s.

use std::collections::BTreeMap;

use crate::metrics::{EndpointSample, ExpectedState, IssuerLabels, Metrics};
use crate::outcome::{EndpointOutcome, RegistryOutcome};
use crate::trust::FindingKind;

use super::drift::{Event, Expected, Memory};
use super::state::{self, State};

/// Sets the registry's series from its outcome and the fold's memory; counts CA changes.
pub(crate) fn metrics(
    m: &Metrics,
    o: &RegistryOutcome,
    mem: &Memory,
    expected: Option<&Expected>,
    events: &[Event],
    now_unix: i64,
) {
    let name = o.name();
    for e in o.by_url() {
        endpoint_series(m, name, e, mem, now_unix);
    }
    let urls: Vec<String> = o.endpoints.iter().map(|e| e.url()).collect();
    m.retain_endpoints(name, &urls);
    let mut trusted: Vec<(String, String, String)> = o
        .endpoints
        .iter()
        .flat_map(|e| &e.trusted)
        .map(|t| {
            (
                t.cert.subject.clone(),
                t.cert.sha256.clone(),
                t.source.to_string(),
            )
        })
        .collect();
    trusted.sort();
    trusted.dedup();
    let expected = match expected {
        None => ExpectedState::None,
        Some(e) if e.error.is_some() => ExpectedState::Unreadable,
        Some(_) => mem
            .expected_trusted
            .map_or(ExpectedState::None, ExpectedState::Trusted),
    };
    let mut findings: BTreeMap<String, f64> = BTreeMap::new();
    for f in &o.findings {
        *findings.entry(f.kind.to_string()).or_default() += 1.0;
    }
    if expected == ExpectedState::Unreadable {
        *findings
            .entry(FindingKind::ExpectedCaUnreadable.to_string())
            .or_default() += 1.0;
    }
    let findings: Vec<(String, f64)> = findings.into_iter().collect();
    m.registry_trust(name, &trusted, &findings, expected);
    for ev in events {
        if let Event::CaChanged { url, .. } = ev {
            m.ca_changed(name, url, 1);
        }
    }
}

/// One endpoint's series: verdict, phases, presented issuer, expiries, drifts.
fn endpoint_series(m: &Metrics, registry: &str, e: &EndpointOutcome, mem: &Memory, now: i64) {
    let url = e.url();
    let timings = e
        .probe
        .as_ref()
        .map(|p| p.timings.clone())
        .unwrap_or_default();
    let phases = [
        ("dns", timings.dns),
        ("connect", timings.connect),
        ("tls", timings.tls),
        ("http", timings.http),
    ]
    .into_iter()
    .filter_map(|(phase, ms)| ms.map(|v| (phase, v / 1000.0)))
    .collect();
    let mut expiries: Vec<(&'static str, String, i64)> = Vec::new();
    for (i, c) in e.presented().iter().enumerate() {
        let role = if i == 0 { "leaf" } else { "intermediate" };
        expiries.push((role, c.sha256.clone(), c.not_after));
    }
    for t in &e.trusted {
        expiries.push(("ca", t.cert.sha256.clone(), t.cert.not_after));
    }
    let issuer = e.presented_issuer();
    let drift = mem
        .endpoints
        .get(&url)
        .map(|em| {
            em.known
                .iter()
                .map(|d| (d.as_str(), em.drifts.contains(d)))
                .collect()
        })
        .unwrap_or_default();
    m.endpoint(
        registry,
        &EndpointSample {
            url: &url,
            ok: e.ok(),
            reason: e.reason().as_str(),
            phases,
            total: timings.total / 1000.0,
            presented_issuer: issuer.as_ref().map(|i| IssuerLabels {
                subject: &i.subject,
                sha256: i.sha256.as_deref().unwrap_or(""),
                key_id: i.key_id.as_deref().unwrap_or(""),
            }),
            expiries,
            timestamp: now as f64,
            drift,
        },
    );
}

/// One log line per event, with the fields an on-call filters on.
pub(crate) fn log(o: &RegistryOutcome, events: &[Event]) {
    let name = o.name();
    for ev in events {
        match ev {
            Event::Verdict {
                url,
                reason,
                previous,
            } => verdict_log(o, url, *reason, *previous),
            Event::DriftStarted { url, drift, reason } => {
                let issuer = o
                    .endpoints
                    .iter()
                    .find(|e| e.url() == *url)
                    .and_then(|e| e.presented_issuer())
                    .map(|i| i.id);
                tracing::warn!(registry = %name, endpoint = %url, kind = drift.as_str(), reason = %reason, presented_issuer = ?issuer, "CA drift started");
            }
            Event::DriftEnded { url, drift } => {
                tracing::info!(registry = %name, endpoint = %url, kind = drift.as_str(), "CA drift ended")
            }
            Event::CaChanged {
                url,
                previous,
                current,
            } => {
                tracing::warn!(registry = %name, endpoint = %url, previous = %previous, current = %current.id, subject = %current.subject, "the registry's issuing CA changed")
            }
            Event::ExpectedTrust {
                trusted: Some(false),
                ..
            } => {
                tracing::warn!(registry = %name, "expected CA is not trusted by the node: a rotation to it would break pulls")
            }
            Event::ExpectedTrust {
                trusted: Some(true),
                previous: Some(_),
            } => tracing::info!(registry = %name, "expected CA is trusted by the node again"),
            Event::ExpectedUnreadable { error } => {
                tracing::warn!(registry = %name, error = %error, "cannot read the expected CA")
            }
            Event::StageDue { .. } => {
                tracing::info!(registry = %name, "staging the expected CA")
            }
            Event::EndpointsGone { urls } => {
                tracing::info!(registry = %name, endpoints = ?urls, "endpoints left the registry's configuration; their series are removed")
            }
            Event::ExpectedTrust { .. } | Event::IssuerRecorded { .. } => {}
        }
    }
}

fn verdict_log(
    o: &RegistryOutcome,
    url: &str,
    reason: crate::diagnose::Reason,
    previous: Option<crate::diagnose::Reason>,
) {
    let Some(e) = o.by_url().into_iter().find(|e| e.url() == url) else {
        return;
    };
    let name = o.name();
    let trusted: Vec<&str> = e.trusted.iter().map(|t| t.cert.sha256.as_str()).collect();
    let leaf = e
        .presented()
        .first()
        .map(|c| c.sha256.as_str())
        .unwrap_or("");
    if e.ok() {
        tracing::info!(registry = %name, endpoint = %url, reason = %reason, previous = ?previous, leaf, trusted = ?trusted, "endpoint verdict");
    } else {
        let issuer = e.presented_issuer().map(|i| i.id);
        tracing::warn!(registry = %name, endpoint = %url, reason = %reason, previous = ?previous, detail = %e.diagnosis.detail, leaf, presented_issuer = ?issuer, trusted = ?trusted, "endpoint verdict");
    }
}

/// Copies the remembered issuers of `registry` into the state; true when the file must be saved.
pub(crate) fn state(st: &mut State, registry: &str, mem: &Memory, events: &[Event]) -> bool {
    for (url, em) in &mem.endpoints {
        if let Some(seen) = &em.seen {
            st.insert(state::key(registry, url), seen.clone());
        }
    }
    events
        .iter()
        .any(|e| matches!(e, Event::CaChanged { .. } | Event::IssuerRecorded { .. }))
}
