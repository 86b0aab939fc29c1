//! The agent's judgement over time, as a pure fold: (what it remembers of a registry, a new
//! outcome, the expected CA, the time) → (events, new memory). Metrics, state, logs, the status
//! page and staging are sinks that apply the events; nothing here does I/O or reads a clock.
//!
//! Three drifts: presented vs trusted ([`Drift::PresentedUntrusted`]), trusted vs expected
//! ([`Drift::ExpectedUntrusted`]), and presented vs last seen ([`Event::CaChanged`], counted once
//! per change, across restarts because [`EndpointMemory::seen`] is persisted).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::diagnose::Reason;
use crate::outcome::{EndpointOutcome, IssuerId, RegistryOutcome};
use crate::stage;
use crate::trust::SystemRoots;

use super::state::Seen;

/// A way an endpoint's trust has drifted from where it should be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Drift {
    /// The presented chain does not verify with the node's trust.
    PresentedUntrusted,
    /// The node does not trust every expected CA of the registry.
    ExpectedUntrusted,
}

impl Drift {
    /// The `kind` label of `regtrust_ca_drift`: an interface, never renamed.
    pub fn as_str(self) -> &'static str {
        match self {
            Drift::PresentedUntrusted => "presented_untrusted",
            Drift::ExpectedUntrusted => "expected_untrusted",
        }
    }
}

/// The expected CAs of one registry, as last read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Expected {
    /// SHA-256 of each expected CA (file contents and pins), sorted, deduplicated.
    pub shas: Vec<String>,
    /// Why the expectation could not be read (then it is unknown).
    pub error: Option<String>,
    /// Each expected CA with where it came from, for the status page (the fold reads `shas`).
    pub cas: Vec<ExpectedCa>,
}

/// One expected CA: its fingerprint, its subject when a file gave the certificate, and its source
/// (the file, or the pin in the config).
#[derive(Debug, Clone, PartialEq)]
pub struct ExpectedCa {
    pub sha256: String,
    pub subject: Option<String>,
    /// Its subject key id (hex), when a file gave the certificate: a leaf names it (AKID).
    pub key_id: Option<String>,
    pub source: String,
}

/// Staging as configured for a registry.
#[derive(Debug, Clone)]
pub(crate) struct StagePolicy {
    pub source: stage::Source,
    pub min_interval: Duration,
}

/// What the agent remembers of one endpoint.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct EndpointMemory {
    /// The last verdict, once probed.
    pub reason: Option<Reason>,
    /// Drifts that are on.
    pub drifts: BTreeSet<Drift>,
    /// The issuer last seen (persisted in the state file).
    pub seen: Option<Seen>,
    /// Drifts that were computed in the last round (a drift not computed has no series).
    pub known: BTreeSet<Drift>,
}

/// What the agent remembers of one registry.
#[derive(Debug, Clone, Default)]
pub(crate) struct Memory {
    /// By endpoint URL, boxed: a B-tree leaf holds room for eleven entries, and most registries
    /// have one endpoint (heaptrack at 1,000 registries: 2.5 KiB per registry inline).
    pub endpoints: BTreeMap<String, Box<EndpointMemory>>,
    pub expected_trusted: Option<bool>,
    /// When the last staging attempt started (the rate limit).
    pub last_stage: Option<Instant>,
    /// A staging attempt is running.
    pub staging: bool,
}

/// Something that happened, for the sinks.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The endpoint's verdict is new or changed.
    Verdict {
        url: String,
        reason: Reason,
        previous: Option<Reason>,
    },
    DriftStarted {
        url: String,
        drift: Drift,
        reason: Reason,
    },
    DriftEnded {
        url: String,
        drift: Drift,
    },
    /// The issuing CA the endpoint presents is not the one last seen.
    CaChanged {
        url: String,
        previous: String,
        current: IssuerId,
    },
    /// The remembered issuer was first recorded or is known more precisely now.
    IssuerRecorded {
        url: String,
    },
    /// Whether the node trusts the expected CA changed.
    ExpectedTrust {
        trusted: Option<bool>,
        previous: Option<bool>,
    },
    /// The expected CA cannot be read (every round while it lasts).
    ExpectedUnreadable {
        error: String,
    },
    /// Stage a corrected CA now.
    StageDue {
        source: stage::Source,
    },
    /// Endpoints the registry no longer has.
    EndpointsGone {
        urls: Vec<String>,
    },
}

/// Everything one round of one registry brings.
pub(crate) struct Round<'a> {
    pub outcome: &'a RegistryOutcome,
    pub expected: Option<&'a Expected>,
    pub system: &'a SystemRoots,
    pub stage: Option<&'a StagePolicy>,
    pub now: Instant,
    pub now_unix: i64,
}

/// Reasons that mean "the chain was seen and does not verify with the node's trust".
pub(crate) fn is_verification_failure(r: Reason) -> bool {
    matches!(
        r,
        Reason::UnknownAuthority
            | Reason::CaKeyMismatch
            | Reason::Expired
            | Reason::NotYetValid
            | Reason::CaExpired
            | Reason::CaNotYetValid
            | Reason::NameMismatch
            | Reason::UntrustedSelfSigned
            | Reason::InvalidCertificate
            | Reason::InsecureSignature
    )
}

/// The fold: one registry's new outcome against what was remembered.
pub(crate) fn fold(mut mem: Memory, round: &Round<'_>) -> (Vec<Event>, Memory) {
    let mut events = Vec::new();
    let expected_untrusted = expected_untrusted(round);
    let expected_trusted = if expected_untrusted.is_empty() {
        None
    } else {
        Some(!expected_untrusted.iter().any(|(_, u)| *u))
    };
    if expected_trusted != mem.expected_trusted {
        events.push(Event::ExpectedTrust {
            trusted: expected_trusted,
            previous: mem.expected_trusted,
        });
        mem.expected_trusted = expected_trusted;
    }
    if let Some(err) = round.expected.and_then(|e| e.error.clone()) {
        events.push(Event::ExpectedUnreadable { error: err });
    }
    let mut endpoints = BTreeMap::new();
    for e in round.outcome.by_url() {
        let url = e.url();
        let mut slot = mem.endpoints.remove(&url).unwrap_or_default();
        let exp = expected_untrusted
            .iter()
            .find(|(u, _)| *u == url)
            .map(|(_, v)| *v);
        *slot = fold_endpoint(
            std::mem::take(&mut *slot),
            e,
            exp,
            round.now_unix,
            &mut events,
        );
        endpoints.insert(url, slot);
    }
    let gone: Vec<String> = std::mem::take(&mut mem.endpoints).into_keys().collect();
    if !gone.is_empty() {
        events.push(Event::EndpointsGone { urls: gone });
    }
    mem.endpoints = endpoints;
    if let Some(source) = stage_due(&mem, round) {
        mem.last_stage = Some(round.now);
        mem.staging = true;
        events.push(Event::StageDue { source });
    }
    (events, mem)
}

/// One endpoint: issuer change tracking, drifts, verdict changes.
fn fold_endpoint(
    mut m: EndpointMemory,
    e: &EndpointOutcome,
    expected_untrusted: Option<bool>,
    now_unix: i64,
    events: &mut Vec<Event>,
) -> EndpointMemory {
    let url = e.url();
    if let Some(iss) = e.presented_issuer() {
        track_issuer(&mut m, &url, iss, now_unix, events);
    }
    let presented_untrusted = if e.chain_judged() {
        is_verification_failure(e.reason())
    } else {
        m.drifts.contains(&Drift::PresentedUntrusted)
    };
    let mut on = BTreeSet::new();
    let mut known = BTreeSet::from([Drift::PresentedUntrusted]);
    if presented_untrusted {
        on.insert(Drift::PresentedUntrusted);
    }
    if let Some(u) = expected_untrusted {
        known.insert(Drift::ExpectedUntrusted);
        if u {
            on.insert(Drift::ExpectedUntrusted);
        }
    }
    for d in on.difference(&m.drifts) {
        events.push(Event::DriftStarted {
            url: url.clone(),
            drift: *d,
            reason: e.reason(),
        });
    }
    for d in m.drifts.difference(&on) {
        events.push(Event::DriftEnded {
            url: url.clone(),
            drift: *d,
        });
    }
    if m.reason != Some(e.reason()) {
        events.push(Event::Verdict {
            url,
            reason: e.reason(),
            previous: m.reason,
        });
    }
    m.reason = Some(e.reason());
    m.drifts = on;
    m.known = known;
    m
}

/// Presented vs last seen: a different issuer is one change; the same issuer known more
/// precisely (a fingerprint where only a key id was known) is not.
fn track_issuer(
    m: &mut EndpointMemory,
    url: &str,
    iss: IssuerId,
    now_unix: i64,
    events: &mut Vec<Event>,
) {
    match &mut m.seen {
        Some(seen)
            if !iss.same_issuer(
                seen.issuer_sha256.as_deref(),
                seen.issuer_key_id.as_deref(),
                &seen.issuer_id,
            ) =>
        {
            let previous = std::mem::replace(&mut seen.issuer_id, iss.id.clone());
            seen.previous_issuer_id = Some(previous.clone());
            seen.issuer_subject = iss.subject.clone();
            seen.issuer_sha256 = iss.sha256.clone();
            seen.issuer_key_id = iss.key_id.clone();
            seen.changes += 1;
            seen.changed_at = Some(now_unix);
            seen.seen_at = now_unix;
            events.push(Event::CaChanged {
                url: url.to_string(),
                previous,
                current: iss,
            });
        }
        Some(seen) => {
            seen.seen_at = now_unix;
            if seen.issuer_sha256.is_none() && iss.sha256.is_some() {
                seen.issuer_sha256 = iss.sha256.clone();
                seen.issuer_id = iss.id.clone();
                events.push(Event::IssuerRecorded {
                    url: url.to_string(),
                });
            }
            if seen.issuer_key_id.is_none() && iss.key_id.is_some() {
                seen.issuer_key_id = iss.key_id.clone();
            }
        }
        None => {
            m.seen = Some(Seen {
                issuer_id: iss.id.clone(),
                issuer_subject: iss.subject.clone(),
                seen_at: now_unix,
                changes: 0,
                previous_issuer_id: None,
                changed_at: None,
                issuer_sha256: iss.sha256.clone(),
                issuer_key_id: iss.key_id.clone(),
            });
            events.push(Event::IssuerRecorded {
                url: url.to_string(),
            });
        }
    }
}

/// Trusted vs expected, per endpoint of the registry itself (mirrors have their own CAs): whether
/// an expected CA is missing from the endpoint's pool. Empty when nothing is expected or the
/// expectation cannot be read.
pub(crate) fn expected_untrusted(round: &Round<'_>) -> Vec<(String, bool)> {
    let Some(exp) = round
        .expected
        .filter(|e| e.error.is_none() && !e.shas.is_empty())
    else {
        return Vec::new();
    };
    let name = round.outcome.name();
    let own: Vec<&EndpointOutcome> = {
        let own: Vec<_> = round
            .outcome
            .endpoints
            .iter()
            .filter(|e| e.endpoint.authority == name)
            .collect();
        if own.is_empty() {
            round.outcome.endpoints.iter().collect()
        } else {
            own
        }
    };
    own.iter()
        .map(|e| {
            let in_pool = |s: &String| {
                round.system.contains(s) || e.endpoint.cas.iter().any(|ca| ca.cert.sha256 == *s)
            };
            (e.url(), !exp.shas.iter().all(in_pool))
        })
        .collect()
}

/// Staging: only when enabled for the registry, while its chain does not verify, with no attempt
/// running, at most once per `min_interval`.
fn stage_due(mem: &Memory, round: &Round<'_>) -> Option<stage::Source> {
    let policy = round.stage?;
    let untrusted = mem
        .endpoints
        .values()
        .any(|e| e.drifts.contains(&Drift::PresentedUntrusted));
    let due = mem
        .last_stage
        .is_none_or(|t| round.now.saturating_duration_since(t) >= policy.min_interval);
    (untrusted && !round.outcome.ok() && due && !mem.staging).then(|| policy.source.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cert::Cert;
    use crate::demo::Ca;
    use crate::diagnose::Diagnosis;
    use crate::probe::ProbeResult;
    use crate::trust::{Endpoint, RegistryTrust, Runtime, TrustedCa};
    use std::sync::Arc;

    const REG: &str = "r.test:5000";
    const URL: &str = "https://r.test:5000/v2/";

    struct Pki {
        ca_a: Arc<Cert>,
        ca_b: Arc<Cert>,
        leaf_a: Arc<Cert>,
        leaf_b: Arc<Cert>,
    }

    /// Two CAs with the same subject and different keys (the incident), a leaf from each.
    fn pki() -> Pki {
        let parse = |der: &[u8]| Arc::new(Cert::from_der(der).expect("test certificate"));
        let (a, b) = (
            Ca::new("registry.test").unwrap(),
            Ca::new("registry.test").unwrap(),
        );
        let (la, _) = a.issue_server().unwrap();
        let (lb, _) = b.issue_server().unwrap();
        Pki {
            ca_a: parse(a.cert.der()),
            ca_b: parse(b.cert.der()),
            leaf_a: parse(la.der()),
            leaf_b: parse(lb.der()),
        }
    }

    fn ca(c: &Arc<Cert>) -> TrustedCa {
        TrustedCa {
            cert: c.clone(),
            source: "/etc/containerd/certs.d/r.test:5000/ca.crt".into(),
        }
    }

    /// One endpoint that presented `leaf` (verified by `issuer` when given), judged `reason`.
    fn outcome(
        leaf: &Arc<Cert>,
        issuer: Option<&Arc<Cert>>,
        reason: Reason,
        cas: &[&Arc<Cert>],
    ) -> RegistryOutcome {
        let endpoint = Endpoint {
            cas: cas.iter().map(|c| ca(c)).collect(),
            ..Endpoint::default_for("https", REG, "test")
        };
        let probe = ProbeResult {
            presented: vec![leaf.clone()],
            verified_issuer_sha256: issuer.map(|c| c.sha256.clone()),
            ..ProbeResult::new(URL.into(), Ok(()))
        };
        let e = EndpointOutcome {
            trusted: endpoint.cas.clone(),
            endpoint,
            probe: Some(probe),
            diagnosis: Diagnosis {
                reason,
                detail: String::new(),
                next_step: String::new(),
                key_mismatch: None,
            },
            system_roots: 0,
        };
        let trust = RegistryTrust {
            registry: REG.into(),
            runtime: Runtime::Containerd,
            host_dir: None,
            endpoints: vec![e.endpoint.clone()],
            findings: Vec::new(),
            config_error: None,
            watched: Vec::new(),
        };
        RegistryOutcome::decide(trust, vec![e])
    }

    fn round<'a>(
        o: &'a RegistryOutcome,
        expected: Option<&'a Expected>,
        system: &'a SystemRoots,
        stage: Option<&'a StagePolicy>,
        now: Instant,
    ) -> Round<'a> {
        Round {
            outcome: o,
            expected,
            system,
            stage,
            now,
            now_unix: 1_700_000_000,
        }
    }

    fn drifts(events: &[Event]) -> Vec<String> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::DriftStarted { drift, .. } => Some(format!("+{}", drift.as_str())),
                Event::DriftEnded { drift, .. } => Some(format!("-{}", drift.as_str())),
                _ => None,
            })
            .collect()
    }

    fn changes(events: &[Event]) -> usize {
        events
            .iter()
            .filter(|e| matches!(e, Event::CaChanged { .. }))
            .count()
    }

    #[test]
    fn the_incident_starts_presented_untrusted_and_staging_ends_it() {
        let p = pki();
        let sys = SystemRoots::default();
        let now = Instant::now();
        let ok_a = outcome(&p.leaf_a, Some(&p.ca_a), Reason::Ok, &[&p.ca_a]);
        let (ev, mem) = fold(Memory::default(), &round(&ok_a, None, &sys, None, now));
        assert!(drifts(&ev).is_empty());
        assert!(ev.contains(&Event::Verdict {
            url: URL.into(),
            reason: Reason::Ok,
            previous: None
        }));
        let em = &mem.endpoints[URL];
        assert_eq!(em.known, BTreeSet::from([Drift::PresentedUntrusted]));
        assert!(em.seen.as_ref().is_some_and(|s| s.changes == 0));

        // Rotated to CA-B, same name: the chain does not verify; CA-B known by key id only.
        let bad_b = outcome(&p.leaf_b, None, Reason::CaKeyMismatch, &[&p.ca_a]);
        let (ev, mem) = fold(mem, &round(&bad_b, None, &sys, None, now));
        assert_eq!(drifts(&ev), ["+presented_untrusted"]);
        assert_eq!(changes(&ev), 1, "{ev:?}");
        assert!(ev.contains(&Event::Verdict {
            url: URL.into(),
            reason: Reason::CaKeyMismatch,
            previous: Some(Reason::Ok)
        }));
        // The same failure again: no new event of any kind.
        let (ev, mem) = fold(mem, &round(&bad_b, None, &sys, None, now));
        assert!(ev.is_empty(), "{ev:?}");

        // CA-B staged: verified now, known by fingerprint; the same CA, so no second change.
        let ok_b = outcome(&p.leaf_b, Some(&p.ca_b), Reason::Ok, &[&p.ca_a, &p.ca_b]);
        let (ev, mem) = fold(mem, &round(&ok_b, None, &sys, None, now));
        assert_eq!(drifts(&ev), ["-presented_untrusted"]);
        assert_eq!(changes(&ev), 0, "{ev:?}");
        assert!(ev.contains(&Event::IssuerRecorded { url: URL.into() }));
        let seen = mem.endpoints[URL].seen.clone().unwrap();
        assert_eq!(seen.changes, 1);
        assert_eq!(seen.issuer_sha256.as_deref(), Some(p.ca_b.sha256.as_str()));
    }

    #[test]
    fn a_ca_change_is_counted_once_across_a_restart() {
        let p = pki();
        let sys = SystemRoots::default();
        let now = Instant::now();
        let ok_a = outcome(&p.leaf_a, Some(&p.ca_a), Reason::Ok, &[&p.ca_a]);
        let ok_b = outcome(&p.leaf_b, Some(&p.ca_b), Reason::Ok, &[&p.ca_b]);
        let (_, mem) = fold(Memory::default(), &round(&ok_a, None, &sys, None, now));
        let (ev, mem) = fold(mem, &round(&ok_b, None, &sys, None, now));
        assert_eq!(changes(&ev), 1);
        // A restart keeps only what the state file holds: the issuer last seen.
        let restarted = Memory {
            endpoints: mem
                .endpoints
                .iter()
                .map(|(u, e)| {
                    let em = EndpointMemory {
                        seen: e.seen.clone(),
                        ..Default::default()
                    };
                    (u.clone(), Box::new(em))
                })
                .collect(),
            ..Default::default()
        };
        let (ev, mem) = fold(restarted, &round(&ok_b, None, &sys, None, now));
        assert_eq!(changes(&ev), 0, "{ev:?}");
        assert_eq!(mem.endpoints[URL].seen.as_ref().map(|s| s.changes), Some(1));
    }

    #[test]
    fn expected_untrusted_starts_and_ends_with_the_pool() {
        let p = pki();
        let sys = SystemRoots::default();
        let now = Instant::now();
        let exp = Expected {
            shas: vec![p.ca_b.sha256.clone()],
            error: None,
            ..Default::default()
        };
        let only_a = outcome(&p.leaf_a, Some(&p.ca_a), Reason::Ok, &[&p.ca_a]);
        let (ev, mem) = fold(
            Memory::default(),
            &round(&only_a, Some(&exp), &sys, None, now),
        );
        assert_eq!(drifts(&ev), ["+expected_untrusted"]);
        assert!(ev.contains(&Event::ExpectedTrust {
            trusted: Some(false),
            previous: None
        }));
        assert_eq!(mem.expected_trusted, Some(false));
        let both = outcome(&p.leaf_a, Some(&p.ca_a), Reason::Ok, &[&p.ca_a, &p.ca_b]);
        let (ev, mem) = fold(mem, &round(&both, Some(&exp), &sys, None, now));
        assert_eq!(drifts(&ev), ["-expected_untrusted"]);
        assert!(ev.contains(&Event::ExpectedTrust {
            trusted: Some(true),
            previous: Some(false)
        }));
        // The expectation becomes unreadable: unknown, not "trusted", and said every round.
        let broken = Expected {
            shas: Vec::new(),
            error: Some("/etc/regtrust/expected.pem: no such file".into()),
            ..Default::default()
        };
        let (ev, mem) = fold(mem, &round(&both, Some(&broken), &sys, None, now));
        assert_eq!(mem.expected_trusted, None);
        assert!(ev
            .iter()
            .any(|e| matches!(e, Event::ExpectedUnreadable { .. })));
        assert!(!mem.endpoints[URL].known.contains(&Drift::ExpectedUntrusted));
    }

    #[test]
    fn staging_is_due_once_per_interval_and_never_twice_at_a_time() {
        let p = pki();
        let sys = SystemRoots::default();
        let t0 = Instant::now();
        let policy = StagePolicy {
            source: stage::Source::Pin(vec![p.ca_b.sha256.clone()]),
            min_interval: Duration::from_secs(600),
        };
        let bad = outcome(&p.leaf_b, None, Reason::CaKeyMismatch, &[&p.ca_a]);
        let due = |ev: &[Event]| ev.iter().any(|e| matches!(e, Event::StageDue { .. }));
        let (ev, mut mem) = fold(
            Memory::default(),
            &round(&bad, None, &sys, Some(&policy), t0),
        );
        assert!(due(&ev));
        assert!(mem.staging);
        // Still running: not again.
        let (ev, m) = fold(mem, &round(&bad, None, &sys, Some(&policy), t0));
        assert!(!due(&ev));
        mem = m;
        // Done, but within the interval: not again.
        mem.staging = false;
        let t1 = t0 + Duration::from_secs(1);
        let (ev, mem) = fold(mem, &round(&bad, None, &sys, Some(&policy), t1));
        assert!(!due(&ev));
        let t2 = t0 + Duration::from_secs(601);
        let (ev, mem) = fold(mem, &round(&bad, None, &sys, Some(&policy), t2));
        assert!(due(&ev));
        assert_eq!(mem.last_stage, Some(t2));
        // Without a policy, or when the registry works, never.
        let ok = outcome(&p.leaf_b, Some(&p.ca_b), Reason::Ok, &[&p.ca_b]);
        let t3 = t0 + Duration::from_secs(2000);
        let (ev, _) = fold(Memory::default(), &round(&bad, None, &sys, None, t3));
        assert!(!due(&ev));
        let (ev, _) = fold(
            Memory::default(),
            &round(&ok, None, &sys, Some(&policy), t3),
        );
        assert!(!due(&ev));
    }

    #[test]
    fn a_probe_without_a_chain_keeps_presented_untrusted_and_gone_endpoints_are_reported() {
        let p = pki();
        let sys = SystemRoots::default();
        let now = Instant::now();
        let bad = outcome(&p.leaf_b, None, Reason::CaKeyMismatch, &[&p.ca_a]);
        let (_, mem) = fold(Memory::default(), &round(&bad, None, &sys, None, now));
        let mut timeout = bad.clone();
        timeout.endpoints[0]
            .probe
            .as_mut()
            .unwrap()
            .presented
            .clear();
        timeout.endpoints[0].diagnosis.reason = Reason::Timeout;
        let (ev, mem) = fold(mem, &round(&timeout, None, &sys, None, now));
        assert!(drifts(&ev).is_empty(), "{ev:?}");
        assert!(mem.endpoints[URL]
            .drifts
            .contains(&Drift::PresentedUntrusted));
        let mut moved = bad.clone();
        moved.endpoints[0].probe.as_mut().unwrap().url = "https://mirror.test/v2/".into();
        let (ev, _) = fold(mem, &round(&moved, None, &sys, None, now));
        assert!(ev.contains(&Event::EndpointsGone {
            urls: vec![URL.into()]
        }));
    }
}
