//! What the status page and `/api/v1/status` show: per registry the latest outcome, the expected
//! CAs, when it was probed, and a bounded history — the last [`HISTORY_LEN`] probe results per
//! endpoint and the last [`STAGE_MARKS`] staging attempts — so "when did this start, and did the
//! CA change?" is answered without Prometheus.
//!
//! A sink of the agent's fold ([`super::sinks`]): it records what the fold decided (a CA change is
//! the fold's [`Event::CaChanged`]) and decides nothing. Memory is bounded by the constants and
//! the number of endpoints. Pure: no I/O, no clock (times are passed in).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use crate::diagnose::Reason;
use crate::outcome::{CheckOutcome, RegistryOutcome};
use crate::trust::Finding;

use super::drift::{Event, Expected, ExpectedCa};

/// Probe results kept per endpoint (at the default 60 s interval: the last hour).
pub const HISTORY_LEN: usize = 60;
/// Staging attempts kept per registry.
pub const STAGE_MARKS: usize = 16;

/// One probe result of one endpoint: 24 bytes, so a full history of a steady endpoint is about
/// 1.5 KiB.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub at_unix: i64,
    pub reason: Reason,
    /// The fold saw the presented issuing CA change with this probe.
    pub ca_changed: bool,
    /// What the presented chain was, when one was seen. Shared with the previous point when
    /// unchanged, so a steady endpoint's history holds one copy.
    pub chain: Option<Arc<ChainIds>>,
}

/// The presented chain as a history point names it.
#[derive(Debug, PartialEq)]
pub struct ChainIds {
    /// The presented leaf's issuer (`sha256:…` or `keyid:…`).
    pub issuer: Option<Box<str>>,
    /// SHA-256 of the presented leaf.
    pub leaf_sha256: Option<Box<str>>,
}

impl Point {
    pub fn issuer(&self) -> Option<&str> {
        self.chain.as_ref().and_then(|c| c.issuer.as_deref())
    }

    pub fn leaf_sha256(&self) -> Option<&str> {
        self.chain.as_ref().and_then(|c| c.leaf_sha256.as_deref())
    }
}

/// One staging attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct StageMark {
    pub at_unix: i64,
    /// `applied`, `refused`, `rolled_back`, `failed`.
    pub result: String,
    pub message: String,
}

/// One registry, as the page shows it.
#[derive(Debug, Clone)]
pub struct RegistryStatus {
    pub outcome: RegistryOutcome,
    /// Whether the node trusts every expected CA (`None`: no expectation, or unreadable).
    pub expected_trusted: Option<bool>,
    pub expected: Vec<ExpectedCa>,
    pub expected_error: Option<String>,
    pub probed_at_unix: i64,
    /// By endpoint URL, oldest first, at most [`HISTORY_LEN`] each.
    /// Boxed: a B-tree leaf holds room for eleven entries, and most registries have one endpoint.
    pub history: BTreeMap<String, Box<VecDeque<Point>>>,
    /// Oldest first, at most [`STAGE_MARKS`].
    pub stages: VecDeque<StageMark>,
}

impl RegistryStatus {
    pub fn name(&self) -> &str {
        self.outcome.name()
    }
}

/// Every registry's latest state, sorted by name, and the node's own findings.
#[derive(Debug, Clone, Default)]
pub struct Status {
    pub registries: Vec<RegistryStatus>,
    /// Findings about the node as a whole (system roots), as `check` reports them.
    pub findings: Vec<Finding>,
}

/// One round of one registry, as the fold left it.
pub struct Round<'a> {
    pub outcome: RegistryOutcome,
    pub expected_trusted: Option<bool>,
    pub expected: Option<&'a Expected>,
    pub events: &'a [Event],
    pub now_unix: i64,
}

impl Status {
    /// Drops the registries for which `keep` is false (the agent's configuration lost them).
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.registries.retain(|r| keep(r.name()));
    }

    /// Records a registry's round. Registries stay sorted by name, so finding one is a binary
    /// search: a round of N registries costs N log N, not N² (perf at 1,000 registries).
    pub fn record(&mut self, round: Round<'_>) {
        let name = round.outcome.name();
        let at = self.registries.binary_search_by(|r| r.name().cmp(name));
        let (mut history, stages) = match at {
            Ok(i) => {
                let old = &mut self.registries[i];
                (
                    std::mem::take(&mut old.history),
                    std::mem::take(&mut old.stages),
                )
            }
            Err(_) => (BTreeMap::new(), VecDeque::new()),
        };
        let urls: Vec<String> = round.outcome.endpoints.iter().map(|e| e.url()).collect();
        history.retain(|url, _| urls.contains(url));
        for e in round.outcome.by_url() {
            let url = e.url();
            let points = history.entry(url.clone()).or_default();
            let ca_changed = round
                .events
                .iter()
                .any(|ev| matches!(ev, Event::CaChanged { url: u, .. } if *u == url));
            let last = points.back();
            let issuer = e.presented_issuer().map(|i| i.id);
            let leaf = e.presented().first().map(|c| c.sha256.as_str());
            points.push_back(Point {
                at_unix: round.now_unix,
                reason: e.reason(),
                ca_changed,
                chain: shared(last.and_then(|p| p.chain.as_ref()), issuer.as_deref(), leaf),
            });
            while points.len() > HISTORY_LEN {
                points.pop_front();
            }
        }
        let status = RegistryStatus {
            outcome: round.outcome,
            expected_trusted: round.expected_trusted,
            expected: round.expected.map(expected_cas).unwrap_or_default(),
            expected_error: round.expected.and_then(|e| e.error.clone()),
            probed_at_unix: round.now_unix,
            history,
            stages,
        };
        match at {
            Ok(i) => self.registries[i] = status,
            Err(i) => self.registries.insert(i, status),
        }
    }

    /// Records a staging attempt for `registry` (ignored when it was never probed).
    pub fn staged(&mut self, registry: &str, mark: StageMark) {
        if let Some(r) = self.registries.iter_mut().find(|r| r.name() == registry) {
            r.stages.push_back(mark);
            while r.stages.len() > STAGE_MARKS {
                r.stages.pop_front();
            }
        }
    }

    /// The latest round of every registry as one check (the `check --output json` document).
    pub fn check_outcome(&self) -> CheckOutcome {
        CheckOutcome {
            registries: self.registries.iter().map(|r| r.outcome.clone()).collect(),
            findings: self.findings.clone(),
            pull: crate::trust::PullKind::Tag,
            runtime: None,
        }
    }
}

/// `now` as a shared string: the previous point's when equal.
fn shared(
    prev: Option<&Arc<ChainIds>>,
    issuer: Option<&str>,
    leaf: Option<&str>,
) -> Option<Arc<ChainIds>> {
    if issuer.is_none() && leaf.is_none() {
        return None;
    }
    match prev {
        Some(p) if p.issuer.as_deref() == issuer && p.leaf_sha256.as_deref() == leaf => {
            Some(p.clone())
        }
        _ => Some(Arc::new(ChainIds {
            issuer: issuer.map(Box::from),
            leaf_sha256: leaf.map(Box::from),
        })),
    }
}

/// Every expected CA with its source; a fingerprint known only from `expected_ca_url` (the
/// fetched bundle is joined as fingerprints) is shown with that source.
fn expected_cas(e: &Expected) -> Vec<ExpectedCa> {
    let mut cas = e.cas.clone();
    for sha in &e.shas {
        if !cas.iter().any(|c| c.sha256 == *sha) {
            cas.push(ExpectedCa {
                sha256: sha.clone(),
                subject: None,
                key_id: None,
                source: "expected_ca_url".into(),
            });
        }
    }
    cas
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::RegistryOutcome;
    use crate::report::fixtures::{endpoint, trust};

    fn outcome(name: &str, urls: &[&str]) -> RegistryOutcome {
        let endpoints = urls
            .iter()
            .map(|a| endpoint(a, "test", Reason::Timeout, Vec::new()))
            .collect();
        RegistryOutcome::decide(trust(name, None), endpoints)
    }

    fn round<'a>(o: RegistryOutcome, events: &'a [Event], now: i64) -> Round<'a> {
        Round {
            outcome: o,
            expected_trusted: None,
            expected: None,
            events,
            now_unix: now,
        }
    }

    /// A point is small, and a steady endpoint's points share one copy of the chain's ids.
    #[test]
    fn points_are_small_and_share_an_unchanged_chain() {
        assert_eq!(std::mem::size_of::<Point>(), 24);
        let first = shared(None, Some("sha256:aa"), Some("bb")).unwrap();
        let same = shared(Some(&first), Some("sha256:aa"), Some("bb")).unwrap();
        assert!(Arc::ptr_eq(&first, &same));
        let other = shared(Some(&first), Some("sha256:cc"), Some("bb")).unwrap();
        assert!(!Arc::ptr_eq(&first, &other));
        assert_eq!(other.issuer.as_deref(), Some("sha256:cc"));
        assert_eq!(shared(Some(&first), None, None), None);
        let leaf_only = shared(None, None, Some("dd")).unwrap();
        assert_eq!(
            (
                leaf_only.issuer.as_deref(),
                leaf_only.leaf_sha256.as_deref()
            ),
            (None, Some("dd"))
        );
    }

    #[test]
    fn history_is_bounded_and_marks_the_folds_ca_changes() {
        let mut st = Status::default();
        let change = [Event::CaChanged {
            url: "https://a:1/v2/".into(),
            previous: "sha256:x".into(),
            current: crate::outcome::IssuerId {
                subject: "CN=y".into(),
                id: "sha256:y".into(),
                sha256: Some("y".into()),
                key_id: None,
            },
        }];
        for t in 0..(HISTORY_LEN as i64 + 10) {
            let ev: &[Event] = if t == 65 { &change } else { &[] };
            st.record(round(outcome("r", &["a:1", "a:1", "b:2"]), ev, t));
        }
        let r = &st.registries[0];
        let a = &r.history["https://a:1/v2/"];
        assert_eq!(a.len(), HISTORY_LEN);
        assert_eq!(a.front().map(|p| p.at_unix), Some(10));
        assert_eq!(a.iter().filter(|p| p.ca_changed).count(), 1);
        assert!(!r.history["https://b:2/v2/"].iter().any(|p| p.ca_changed));
        for i in 0..(STAGE_MARKS + 3) {
            st.staged(
                "r",
                StageMark {
                    at_unix: i as i64,
                    result: "applied".into(),
                    message: String::new(),
                },
            );
        }
        assert_eq!(st.registries[0].stages.len(), STAGE_MARKS);
        // A registry that left the configuration goes; an endpoint that left its registry too.
        st.record(round(outcome("s", &["c:3"]), &[], 100));
        st.retain(|n| n != "r");
        assert_eq!(st.registries.len(), 1);
        st.record(round(outcome("s", &["d:4"]), &[], 101));
        // Registries stay sorted by name whatever order their rounds end in; a second round of one
        // replaces its entry.
        for name in ["m", "b", "m", "z"] {
            st.record(round(outcome(name, &["e:5"]), &[], 102));
        }
        let names: Vec<&str> = st.registries.iter().map(|r| r.name()).collect();
        assert_eq!(names, ["b", "m", "s", "z"]);
        st.retain(|n| n == "s");
        assert_eq!(
            st.registries[0].history.keys().collect::<Vec<_>>(),
            ["https://d:4/v2/"]
        );
        assert_eq!(st.check_outcome().registries.len(), 1);
    }
}
