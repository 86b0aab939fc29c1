//! The agent's Prometheus metrics: a compact store of what each registry's last round set, rendered
//! in the text exposition format at scrape time. A registry's round replaces its own entries, so
//! stale label sets (an old fingerprint, an endpoint or a registry that left the config) are gone,
//! not left at 1 — blackbox_exporter gets that for free by building a registry per scrape; a
//! long-running agent must do it itself.
//!
//! Never does: I/O (the HTTP listener renders [`Metrics::render`], on the blocking pool).
use std::collections::{BTreeMap, HashSet};
use std::ops::Bound;
use std::sync::Mutex;

use prometheus::{Encoder, GaugeVec, Opts, Registry, TextEncoder};

/// Registries rendered under one hold of the store's lock.
const RENDER_CHUNK: usize = 32;

/// Longest label value exported; a longer one (a 30 KB issuer CN, say) is cut and marked.
pub const MAX_LABEL_BYTES: usize = 256;
/// What marks a cut label value.
pub const CUT_MARKER: &str = "...";

/// `s`, cut at a character boundary to at most [`MAX_LABEL_BYTES`] with [`CUT_MARKER`].
pub fn label_value(s: &str) -> String {
    if s.len() <= MAX_LABEL_BYTES {
        return s.to_string();
    }
    let mut end = MAX_LABEL_BYTES - CUT_MARKER.len();
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{CUT_MARKER}", &s[..end])
}

/// The presented leaf's issuer, as `regtrust_presented_ca_info` labels it.
pub struct IssuerLabels<'a> {
    pub subject: &'a str,
    /// Hex SHA-256 of the issuing CA; empty when only its key id is known.
    pub sha256: &'a str,
    /// Hex key id the leaf names (AKID); empty when absent.
    pub key_id: &'a str,
}

/// What one endpoint probe contributes.
pub struct EndpointSample<'a> {
    pub url: &'a str,
    pub ok: bool,
    pub reason: &'a str,
    /// (phase, seconds) for the phases that ran: dns, connect, tls, http.
    pub phases: Vec<(&'static str, f64)>,
    /// The whole probe, seconds.
    pub total: f64,
    pub presented_issuer: Option<IssuerLabels<'a>>,
    /// (role, sha256, not_after unix)
    pub expiries: Vec<(&'static str, String, i64)>,
    pub timestamp: f64,
    /// kind → 0/1 (`presented_untrusted`, `expected_untrusted`); absent kinds are removed.
    pub drift: Vec<(&'static str, bool)>,
}

/// What a registry's expected CA says, for `regtrust_expected_ca_trusted` and
/// `regtrust_expected_ca_error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedState {
    /// No expected CA is configured: neither series exists.
    None,
    /// Read; whether the node trusts all of it.
    Trusted(bool),
    /// Configured but unreadable: trusted reads 0 (the guard must not go silent), error 1.
    Unreadable,
}

/// Labels every regtrust series may carry; none is named like one Prometheus or
/// prometheus-operator attaches (job, instance, endpoint, namespace, pod, container, service,
/// node).
const REGISTRY: &str = "registry";
const URL: &str = "url";

/// One endpoint's gauges, as its last probe set them.
struct Gauges {
    ok: bool,
    reason: String,
    phases: Vec<(&'static str, f64)>,
    total: f64,
    /// subject, sha256, key_id
    presented: Option<[String; 3]>,
    /// role, sha256, not_after
    expiries: Vec<(&'static str, String, i64)>,
    timestamp: f64,
    drift: Vec<(&'static str, bool)>,
}

/// One endpoint's series: its gauges once probed, its counters (a CA change count restored from
/// the state can come before the first probe).
#[derive(Default)]
struct EndpointSeries {
    gauges: Option<Gauges>,
    /// reason → probes
    probes: Vec<(String, u64)>,
    ca_changes: Option<u64>,
}

/// One registry's series. Endpoints by (cut) URL, boxed: a B-tree leaf holds room for eleven
/// entries, and most registries have one endpoint (heaptrack at 1,000 registries: 2.8 KiB per
/// registry with the series inline, a pointer each boxed).
#[derive(Default)]
struct RegistrySeries {
    endpoints: BTreeMap<String, Box<EndpointSeries>>,
    /// subject, sha256, source
    trusted: Vec<[String; 3]>,
    findings: Vec<(String, f64)>,
    expected: Option<ExpectedState>,
    /// result → attempts
    stages: Vec<(String, u64)>,
}

/// Everything the per-registry families export, by registry name.
#[derive(Default)]
struct Store {
    registries: BTreeMap<String, RegistrySeries>,
    runtime_stale: Option<(String, bool)>,
    /// runtime, version, go_version, source
    runtime_info: Option<[String; 4]>,
}

impl Store {
    fn registry(&mut self, name: &str) -> &mut RegistrySeries {
        if !self.registries.contains_key(name) {
            self.registries
                .insert(name.to_string(), RegistrySeries::default());
        }
        self.registries
            .get_mut(name)
            .expect("the registry was just inserted")
    }

    fn endpoint(&mut self, registry: &str, url: &str) -> &mut EndpointSeries {
        self.registry(registry)
            .endpoints
            .entry(label_value(url))
            .or_default()
    }
}

/// Adds `n` to the count of `key`.
fn count(counts: &mut Vec<(String, u64)>, key: &str, n: u64) {
    let key = label_value(key);
    match counts.iter_mut().find(|(k, _)| *k == key) {
        Some((_, c)) => *c += n,
        None => counts.push((key, n)),
    }
}

/// `items` with one entry per key, the last value winning (as setting a series twice does).
fn dedup<K: PartialEq, V>(items: impl IntoIterator<Item = (K, V)>) -> Vec<(K, V)> {
    let mut out: Vec<(K, V)> = Vec::new();
    for (k, v) in items {
        match out.iter_mut().find(|(o, _)| *o == k) {
            Some(slot) => slot.1 = v,
            None => out.push((k, v)),
        }
    }
    // Kept until the endpoint's next probe: no room beyond the series.
    out.shrink_to_fit();
    out
}

/// All regtrust metrics. The per-registry families live in a compact store rendered in the text
/// exposition format at scrape time (no per-series objects between scrapes: the prometheus
/// crate's vectors cost a protobuf label pair per label per series, a third of the agent's heap
/// at 1,000 registries); the build info and the process metrics are the prometheus crate's own.
pub struct Metrics {
    registry: Registry,
    store: Mutex<Store>,
}

impl Metrics {
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let r = Registry::new();
        let build = GaugeVec::new(
            Opts::new(
                "regtrust_build_info",
                "regtrust's version, the source revision and the compiler it was built from; always 1.",
            ),
            &["version", "revision", "rustc_version"],
        )?;
        build
            .with_label_values(&[
                env!("CARGO_PKG_VERSION"),
                env!("REGTRUST_REVISION"),
                env!("REGTRUST_RUSTC_VERSION"),
            ])
            .set(1.0);
        r.register(Box::new(build))?;
        r.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        Ok(Metrics {
            registry: r,
            store: Mutex::new(Store::default()),
        })
    }

    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records one endpoint's probe; `registry`'s other endpoints are untouched.
    pub fn endpoint(&self, registry: &str, s: &EndpointSample<'_>) {
        let gauges = Gauges {
            ok: s.ok,
            reason: label_value(s.reason),
            phases: dedup(s.phases.iter().copied()),
            total: s.total,
            presented: s.presented_issuer.as_ref().map(|i| {
                [
                    label_value(i.subject),
                    label_value(i.sha256),
                    label_value(i.key_id),
                ]
            }),
            expiries: dedup(
                s.expiries
                    .iter()
                    .map(|(role, sha, t)| ((*role, label_value(sha)), *t)),
            )
            .into_iter()
            .map(|((role, sha), t)| (role, sha, t))
            .collect(),
            timestamp: s.timestamp,
            drift: dedup(s.drift.iter().copied()),
        };
        let mut store = self.store();
        let e = store.endpoint(registry, s.url);
        e.gauges = Some(gauges);
        count(&mut e.probes, s.reason, 1);
    }

    /// Removes the series of endpoints the registry no longer has (gauges and counters).
    pub fn retain_endpoints(&self, registry: &str, urls: &[String]) {
        let keep: HashSet<String> = urls.iter().map(|u| label_value(u)).collect();
        if let Some(r) = self.store().registries.get_mut(registry) {
            r.endpoints.retain(|url, _| keep.contains(url));
        }
    }

    /// The registry-level series: trusted CAs, findings, expected-CA trust.
    pub fn registry_trust(
        &self,
        registry: &str,
        trusted: &[(String, String, String)],
        findings: &[(String, f64)],
        expected: ExpectedState,
    ) {
        let mut trusted: Vec<[String; 3]> = trusted
            .iter()
            .map(|(subj, sha, src)| [label_value(subj), label_value(sha), label_value(src)])
            .collect();
        trusted.sort();
        trusted.dedup();
        let findings = dedup(findings.iter().map(|(k, n)| (label_value(k), *n)));
        let mut store = self.store();
        let r = store.registry(registry);
        r.trusted = trusted;
        r.findings = findings;
        r.expected = Some(expected);
    }

    pub fn ca_changed(&self, registry: &str, url: &str, n: u64) {
        let mut store = self.store();
        *store.endpoint(registry, url).ca_changes.get_or_insert(0) += n;
    }

    /// Counts one staging attempt.
    pub fn stage(&self, registry: &str, result: &str) {
        count(&mut self.store().registry(registry).stages, result, 1);
    }

    /// `None` removes the series (runtime process not found).
    pub fn runtime_stale(&self, runtime: &str, stale: Option<bool>) {
        self.store().runtime_stale = stale.map(|s| (label_value(runtime), s));
    }

    /// The one `regtrust_runtime_info` series (a new detection replaces the old labels).
    pub fn runtime_info(&self, info: &crate::trust::runtime_version::RuntimeInfo) {
        self.store().runtime_info = Some([
            info.runtime.as_str().to_string(),
            label_value(info.version.as_deref().unwrap_or_default()),
            info.go_version.to_string(),
            info.source.as_str().to_string(),
        ]);
    }

    /// Drops every series of a registry that left the configuration.
    pub fn forget_registry(&self, registry: &str) {
        self.store().registries.remove(registry);
    }

    /// The text exposition format: the store's families, then the prometheus crate's. Each
    /// per-registry family is written over [`RENDER_CHUNK`] registries per hold of the store's
    /// lock, so a scrape of 10,000 endpoints (about 150 ms of rendering, on the blocking pool)
    /// never holds off the loop's updates for long; a registry that comes or goes during the
    /// scrape may be in some families and not in others.
    pub fn render(&self) -> String {
        let registries = self.store().registries.len();
        let mut out = render::Out::with_capacity(4096 + registries * 4096);
        let mut family = 0;
        loop {
            out.turn(Some(family));
            let mut after: Option<String> = None;
            let mut families = 0;
            loop {
                let store = self.store();
                let next = match &after {
                    None => store.registries.range::<String, _>(..),
                    Some(k) => store
                        .registries
                        .range::<String, _>((Bound::Excluded(k), Bound::Unbounded)),
                }
                .take(RENDER_CHUNK);
                let Some((last, _)) = next.clone().last() else {
                    break;
                };
                after = Some(last.clone());
                families = render::registries(&mut out, next);
            }
            family += 1;
            if family >= families {
                break;
            }
        }
        out.turn(None);
        render::node(&mut out, &self.store());
        let mut out = out.finish();
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            out.push_str(&format!("# regtrust: cannot encode metrics: {e}\n"));
        }
        out.push_str(&String::from_utf8_lossy(&buf));
        out
    }
}

/// The store in the text exposition format (version 0.0.4), as the prometheus crate's
/// `TextEncoder` writes it: label names in lexical order, label values escaped, a family without
/// series left out.
mod render {
    use std::fmt::{Display, Write};

    use super::{ExpectedState, RegistrySeries, Store, REGISTRY, URL};

    /// The exposition, in one buffer. The per-registry families are written one at a time, each
    /// over all registries a chunk at a time ([`Out::turn`]): `registries` names every family on
    /// each call, and only the family whose turn it is writes. Outside a turn (the node's
    /// families) every family named writes.
    pub(super) struct Out {
        buf: String,
        /// The family whose turn it is, by the order `registries` names them.
        only: Option<usize>,
        /// Families named in this call of `registries`.
        named: usize,
        /// Where the turn's HELP began and its samples begin, once written.
        head: Option<(usize, usize)>,
    }

    /// The samples of one family.
    struct Family<'a> {
        buf: &'a mut String,
        name: &'a str,
    }

    impl Out {
        pub(super) fn with_capacity(n: usize) -> Out {
            Out {
                buf: String::with_capacity(n),
                only: None,
                named: 0,
                head: None,
            }
        }

        /// From now on only the `i`th family writes (the last turn's, if it wrote no sample,
        /// is taken back).
        pub(super) fn turn(&mut self, i: Option<usize>) {
            if let Some((mark, start)) = self.head.take() {
                if self.buf.len() == start {
                    self.buf.truncate(mark);
                }
            }
            self.only = i;
        }

        pub(super) fn finish(mut self) -> String {
            self.turn(None);
            self.buf
        }

        fn family(
            &mut self,
            name: &str,
            help: &str,
            kind: &str,
            body: impl FnOnce(&mut Family<'_>),
        ) {
            let i = self.named;
            self.named += 1;
            let head = |buf: &mut String| {
                let mark = buf.len();
                let _ = write!(buf, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
                (mark, buf.len())
            };
            match self.only {
                Some(only) if only != i => return,
                Some(_) => {
                    if self.head.is_none() {
                        self.head = Some(head(&mut self.buf));
                    }
                }
                None => self.head = Some(head(&mut self.buf)),
            }
            body(&mut Family {
                buf: &mut self.buf,
                name,
            });
            if self.only.is_none() {
                self.turn(None);
            }
        }
    }

    impl Family<'_> {
        /// One sample; `labels` in lexical order of their names.
        fn put(&mut self, labels: &[(&str, &str)], value: impl Display) {
            self.buf.push_str(self.name);
            let mut sep = '{';
            for (name, value) in labels {
                self.buf.push(sep);
                self.buf.push_str(name);
                self.buf.push_str("=\"");
                escape(self.buf, value);
                self.buf.push('"');
                sep = ',';
            }
            if !labels.is_empty() {
                self.buf.push('}');
            }
            let _ = writeln!(self.buf, " {value}");
        }
    }

    /// `\` → `\\`, newline → `\n`, `"` → `\"`. The three are ASCII, so the runs between them
    /// are found with `memchr3` and copied whole (a scrape at 200 endpoints is 380 KB of labels:
    /// pushed a character at a time, that was half of its time).
    fn escape(buf: &mut String, v: &str) {
        let mut rest = v;
        while let Some(i) = memchr::memchr3(b'\\', b'\n', b'"', rest.as_bytes()) {
            buf.push_str(&rest[..i]);
            buf.push_str(match rest.as_bytes()[i] {
                b'\\' => "\\\\",
                b'\n' => "\\n",
                _ => "\\\"",
            });
            rest = &rest[i + 1..];
        }
        buf.push_str(rest);
    }

    fn bit(b: bool) -> f64 {
        if b {
            1.0
        } else {
            0.0
        }
    }

    /// The per-registry families' samples of `regs` (in name order, after those rendered before);
    /// returns how many families there are.
    pub(super) fn registries<'a>(
        out: &mut Out,
        regs: impl Iterator<Item = (&'a String, &'a RegistrySeries)> + Clone,
    ) -> usize {
        out.named = 0;
        let endpoints = regs.clone().flat_map(|(r, rs)| {
            rs.endpoints
                .iter()
                .map(move |(u, e)| (r.as_str(), u.as_str(), e))
        });
        let probed = endpoints
            .clone()
            .filter_map(|(r, u, e)| e.gauges.as_ref().map(|g| (r, u, g)));
        out.family("regtrust_ca_changes_total", "Times the issuing CA presented by the endpoint changed since the last probe (persisted across restarts).", "counter", |f| {
            for (r, u, e) in endpoints.clone() {
                if let Some(n) = e.ca_changes {
                    f.put(&[(REGISTRY, r), (URL, u)], n);
                }
            }
        });
        out.family("regtrust_ca_drift", "1 while the endpoint drifts: presented_untrusted (its chain does not verify with the node's trust) or expected_untrusted (the node does not trust the expected CA).", "gauge", |f| {
            for (r, u, g) in probed.clone() {
                for (kind, on) in &g.drift {
                    f.put(&[("kind", kind), (REGISTRY, r), (URL, u)], bit(*on));
                }
            }
        });
        out.family("regtrust_cert_expiry_timestamp_seconds", "notAfter of the presented leaf and intermediates and of the trusted CAs, as a Unix time.", "gauge", |f| {
            for (r, u, g) in probed.clone() {
                for (role, sha, t) in &g.expiries {
                    f.put(&[(REGISTRY, r), ("role", role), ("sha256", sha), (URL, u)], *t as f64);
                }
            }
        });
        registry_families(out, regs);
        out.family(
            "regtrust_last_probe_timestamp_seconds",
            "When the endpoint was last probed, as a Unix time.",
            "gauge",
            |f| {
                for (r, u, g) in probed.clone() {
                    f.put(&[(REGISTRY, r), (URL, u)], g.timestamp);
                }
            },
        );
        out.family("regtrust_presented_ca_info", "The issuer of the certificate the endpoint presented: sha256 (hex) of the issuing CA when known, key_id (hex AKID) when the leaf names one.", "gauge", |f| {
            for (r, u, g) in probed.clone() {
                if let Some([subject, sha, key_id]) = &g.presented {
                    f.put(&[("key_id", key_id), (REGISTRY, r), ("sha256", sha), ("subject", subject), (URL, u)], 1.0);
                }
            }
        });
        out.family("regtrust_probe_duration_seconds", "Duration of each phase (dns, connect, tls, http) of the endpoint's last probe; phases that did not run are absent.", "gauge", |f| {
            for (r, u, g) in probed.clone() {
                for (phase, v) in &g.phases {
                    f.put(&[("phase", phase), (REGISTRY, r), (URL, u)], v);
                }
            }
        });
        out.family("regtrust_probe_reason", "1 for the reason of the endpoint's last probe (ok, ca_key_mismatch, unknown_authority, ...).", "gauge", |f| {
            for (r, u, g) in probed.clone() {
                f.put(&[("reason", &g.reason), (REGISTRY, r), (URL, u)], 1.0);
            }
        });
        out.family(
            "regtrust_probe_success",
            "1 if the last probe of the endpoint succeeded with the runtime's trust, else 0.",
            "gauge",
            |f| {
                for (r, u, g) in probed.clone() {
                    f.put(&[(REGISTRY, r), (URL, u)], bit(g.ok));
                }
            },
        );
        out.family(
            "regtrust_probe_total_duration_seconds",
            "Duration of the endpoint's last probe, all phases together.",
            "gauge",
            |f| {
                for (r, u, g) in probed.clone() {
                    f.put(&[(REGISTRY, r), (URL, u)], g.total);
                }
            },
        );
        out.family(
            "regtrust_probes_total",
            "Probes of the endpoint, by reason.",
            "counter",
            |f| {
                for (r, u, e) in endpoints.clone() {
                    for (reason, n) in &e.probes {
                        f.put(&[("reason", reason), (REGISTRY, r), (URL, u)], n);
                    }
                }
            },
        );
        out.named
    }

    /// The families with one series set per registry.
    fn registry_families<'a>(
        out: &mut Out,
        regs: impl Iterator<Item = (&'a String, &'a RegistrySeries)> + Clone,
    ) {
        let expected = |pick: fn(ExpectedState) -> Option<bool>| {
            regs.clone()
                .filter_map(move |(r, rs)| rs.expected.and_then(pick).map(|b| (r.as_str(), b)))
        };
        out.family(
            "regtrust_expected_ca_error",
            "1 while the registry's expected CA cannot be read (file, URL), else 0.",
            "gauge",
            |f| {
                for (r, b) in expected(|e| match e {
                    ExpectedState::None => None,
                    ExpectedState::Trusted(_) => Some(false),
                    ExpectedState::Unreadable => Some(true),
                }) {
                    f.put(&[(REGISTRY, r)], bit(b));
                }
            },
        );
        out.family("regtrust_expected_ca_trusted", "1 if the node trusts every expected CA of the registry (a rotation to it is safe), else 0 (also while the expected CA cannot be read).", "gauge", |f| {
            for (r, b) in expected(|e| match e {
                ExpectedState::None => None,
                ExpectedState::Trusted(t) => Some(t),
                ExpectedState::Unreadable => Some(false),
            }) {
                f.put(&[(REGISTRY, r)], bit(b));
            }
        });
        out.family("regtrust_stage_total", "Attempts to stage a corrected CA, by result (applied, refused, rolled_back, failed, dry_run).", "counter", |f| {
            for (r, rs) in regs.clone() {
                for (result, n) in &rs.stages {
                    f.put(&[(REGISTRY, r), ("result", result)], n);
                }
            }
        });
        out.family(
            "regtrust_trust_findings",
            "Problems found loading the runtime's trust for the registry, by kind.",
            "gauge",
            |f| {
                for (r, rs) in regs.clone() {
                    for (kind, n) in &rs.findings {
                        f.put(&[("kind", kind), (REGISTRY, r)], n);
                    }
                }
            },
        );
        out.family("regtrust_trusted_ca_info", "A CA the node's runtime trusts for the registry (sha256 in hex), with the file it comes from.", "gauge", |f| {
            for (r, rs) in regs.clone() {
                for [subject, sha, source] in &rs.trusted {
                    f.put(&[(REGISTRY, r), ("sha256", sha), ("source", source), ("subject", subject)], 1.0);
                }
            }
        });
    }

    /// The node-level families.
    pub(super) fn node(out: &mut Out, s: &Store) {
        out.family("regtrust_runtime_info", "The runtime's version and the Go release its verdicts follow, with where the Go version came from (config, process, binary, default); always 1.", "gauge", |f| {
            if let Some([runtime, version, go, source]) = &s.runtime_info {
                f.put(&[("go_version", go), ("runtime", runtime), ("source", source), ("version", version)], 1.0);
            }
        });
        out.family("regtrust_runtime_trust_stale", "1 if the node's system CA bundle changed after the runtime process started: the running runtime still uses the old roots and needs a restart.", "gauge", |f| {
            if let Some((runtime, stale)) = &s.runtime_stale {
                f.put(&[("runtime", runtime)], bit(*stale));
            }
        });
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    fn sample<'a>(url: &'a str, sha: &'a str, reason: &'a str) -> EndpointSample<'a> {
        EndpointSample {
            url,
            ok: reason == "ok",
            reason,
            phases: vec![("dns", 0.001), ("tls", 0.004)],
            total: 0.01,
            presented_issuer: Some(IssuerLabels {
                subject: "CN=A",
                sha256: sha,
                key_id: "bb01",
            }),
            expiries: vec![],
            timestamp: 1.0,
            drift: vec![("presented_untrusted", reason != "ok")],
        }
    }

    #[test]
    fn stale_fingerprints_and_departed_registries_are_removed() {
        let m = Metrics::new().unwrap();
        m.endpoint("r", &sample("https://r/v2/", "aaa", "ok"));
        m.endpoint("r", &sample("https://r/v2/", "bbb", "ca_key_mismatch"));
        let text = m.render();
        assert!(
            text.contains("key_id=\"bb01\",registry=\"r\",sha256=\"bbb\""),
            "{text}"
        );
        assert!(
            !text.contains("sha256=\"aaa\""),
            "old fingerprint left behind:\n{text}"
        );
        assert!(
            !text.contains("reason=\"ok\"} 1"),
            "old reason left at 1:\n{text}"
        );
        assert!(text.contains(
            "regtrust_probes_total{reason=\"ok\",registry=\"r\",url=\"https://r/v2/\"} 1"
        ));
        assert!(text.contains(
            "regtrust_probe_total_duration_seconds{registry=\"r\",url=\"https://r/v2/\"} 0.01"
        ));
        assert!(text.contains("phase=\"dns\""), "{text}");
        assert!(!text.contains("phase=\"total\""), "{text}");
        m.forget_registry("r");
        assert!(!m.render().contains("registry=\"r\""));
    }

    /// More registries than one hold of the lock renders: every family still once, with every
    /// registry's series, in name order.
    #[test]
    fn a_render_in_chunks_is_one_exposition() {
        let m = Metrics::new().unwrap();
        let n = RENDER_CHUNK * 2 + 5;
        for i in 0..n {
            let reg = format!("r{i:03}");
            let url = format!("https://{reg}/v2/");
            m.endpoint(&reg, &sample(&url, "aa", "ok"));
            m.stage(&reg, "applied");
        }
        m.runtime_stale("containerd", Some(false));
        let text = m.render();
        for family in [
            "regtrust_probe_success",
            "regtrust_stage_total",
            "regtrust_runtime_trust_stale",
        ] {
            assert_eq!(
                text.matches(&format!("# TYPE {family} ")).count(),
                1,
                "{family}"
            );
        }
        let success: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("regtrust_probe_success{"))
            .collect();
        assert_eq!(success.len(), n);
        let mut sorted = success.clone();
        sorted.sort();
        assert_eq!(success, sorted);
        // The families after the per-registry ones: the node's, then the prometheus crate's.
        let stale = text.find("# TYPE regtrust_runtime_trust_stale").unwrap();
        assert!(text.find("# TYPE regtrust_probes_total").unwrap() < stale);
        assert!(stale < text.find("regtrust_build_info").unwrap());
    }

    #[test]
    fn endpoints_that_left_are_removed() {
        let m = Metrics::new().unwrap();
        m.endpoint("r", &sample("https://m/v2/", "x", "ok"));
        m.endpoint("r", &sample("https://r/v2/", "x", "ok"));
        m.retain_endpoints("r", &["https://r/v2/".to_string()]);
        let text = m.render();
        assert!(!text.contains("https://m/v2/"), "{text}");
        assert!(text.contains("regtrust_probe_success{registry=\"r\",url=\"https://r/v2/\"} 1"));
    }

    #[test]
    fn runtime_info_keeps_one_series() {
        use crate::trust::runtime_version::{RuntimeInfo, Source};
        let m = Metrics::new().unwrap();
        let mut info = RuntimeInfo {
            runtime: crate::trust::Runtime::Containerd,
            version: Some("1.6.20~ds1".into()),
            version_source: Some(Source::Process),
            go_version: crate::verify::GoVersion::new(19, 8),
            source: Source::Process,
            binary: None,
            default_godebug: None,
            env_godebug: None,
        };
        m.runtime_info(&info);
        info.go_version = crate::verify::GoVersion::new(22, 5);
        info.source = Source::Config;
        m.runtime_info(&info);
        let text = m.render();
        assert!(text.contains("regtrust_runtime_info{go_version=\"go1.22.5\",runtime=\"containerd\",source=\"config\",version=\"1.6.20~ds1\"} 1"), "{text}");
        assert!(!text.contains("go1.19.8"), "{text}");
    }

    #[test]
    fn no_label_is_named_like_one_prometheus_or_the_operator_attaches() {
        let m = Metrics::new().unwrap();
        m.endpoint("r", &sample("https://r/v2/", "x", "ok"));
        m.registry_trust(
            "r",
            &[("CN=A".into(), "aa".into(), "/f".into())],
            &[("k".into(), 1.0)],
            ExpectedState::Trusted(true),
        );
        m.ca_changed("r", "https://r/v2/", 1);
        m.stage("r", "applied");
        m.runtime_stale("containerd", Some(false));
        let text = m.render();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((_, labels)) = line.split_once('{') else {
                continue;
            };
            for pair in labels.split("\",") {
                let name = pair.split('=').next().unwrap_or("");
                assert!(
                    ![
                        "job",
                        "instance",
                        "endpoint",
                        "namespace",
                        "pod",
                        "container",
                        "service",
                        "node"
                    ]
                    .contains(&name),
                    "{line} has a label {name}"
                );
            }
        }
        assert!(m.render().contains("regtrust_build_info{revision=\""));
    }

    #[test]
    fn an_unreadable_expected_ca_keeps_the_guard_series_at_zero() {
        let m = Metrics::new().unwrap();
        m.registry_trust("r", &[], &[], ExpectedState::Trusted(true));
        m.registry_trust("r", &[], &[], ExpectedState::Unreadable);
        let text = m.render();
        assert!(
            text.contains("regtrust_expected_ca_trusted{registry=\"r\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("regtrust_expected_ca_error{registry=\"r\"} 1"),
            "{text}"
        );
        m.registry_trust("r", &[], &[], ExpectedState::None);
        assert!(!m.render().contains("regtrust_expected_ca_trusted{"));
    }

    #[test]
    fn huge_label_values_are_cut_with_a_marker() {
        assert_eq!(label_value("short"), "short");
        let cut = label_value(&"é".repeat(30_000));
        assert!(
            cut.len() <= MAX_LABEL_BYTES && cut.ends_with(CUT_MARKER),
            "{}",
            cut.len()
        );
        let m = Metrics::new().unwrap();
        let subject = format!("CN={}", "x".repeat(30_000));
        let mut s = sample("https://r/v2/", "x", "ok");
        s.presented_issuer = Some(IssuerLabels {
            subject: &subject,
            sha256: "x",
            key_id: "",
        });
        m.endpoint("r", &s);
        m.endpoint("r", &s);
        let text = m.render();
        assert!(text.len() < 10_000, "label not cut: {} bytes", text.len());
        assert_eq!(
            text.matches("regtrust_presented_ca_info{").count(),
            1,
            "{text}"
        );
    }

    /// Every sample line, label set and value our renderer writes is what the prometheus crate's
    /// own `TextEncoder` writes for the same series (label order, escaping, number formatting),
    /// and every family appears once with its HELP and TYPE.
    #[test]
    fn the_rendering_is_the_prometheus_crates_own() {
        let m = Metrics::new().unwrap();
        let mut s = sample("https://r/v2/", "ab\\c\"d", "ca_key_mismatch");
        s.expiries = vec![
            ("leaf", "11".into(), 1_900_000_000),
            ("ca", "22".into(), 1_800_000_000),
        ];
        s.presented_issuer = Some(IssuerLabels {
            subject: "CN=ä \"quoted\"\nline\\x\\",
            sha256: "ff",
            key_id: "",
        });
        m.endpoint("r", &s);
        m.endpoint("r", &sample("https://m:5000/v2/", "x", "ok"));
        m.endpoint("other", &sample("https://o/v2/", "y", "ok"));
        m.registry_trust(
            "r",
            &[("CN=A".into(), "aa".into(), "/f".into())],
            &[("ca_unreadable".into(), 2.0)],
            ExpectedState::Unreadable,
        );
        m.ca_changed("r", "https://r/v2/", 3);
        m.stage("r", "applied");
        m.stage("r", "applied");
        m.runtime_stale("containerd", Some(true));
        let text = m.render();

        // The same series through the prometheus crate: a gauge or counter vector per family
        // with the label names and values read back from our text.
        let reference = Registry::new();
        let mut families: Vec<(String, String, String)> = Vec::new();
        /// A sample: family name, label pairs, value.
        type Sample = (String, Vec<(String, String)>, f64);
        let mut samples: Vec<Sample> = Vec::new();
        let mut lines = text.lines();
        while let Some(line) = lines.next() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').unwrap();
                let kind = lines.next().unwrap().rsplit(' ').next().unwrap();
                families.push((name.into(), help.into(), kind.into()));
                continue;
            }
            let (name, rest) = line.split_at(line.find(['{', ' ']).unwrap());
            let (labels, value) = rest.rsplit_once(' ').unwrap();
            samples.push((name.into(), unescape_labels(labels), value.parse().unwrap()));
        }
        let names: Vec<&str> = families.iter().map(|f| f.0.as_str()).collect();
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "a family twice: {names:?}");
        for (name, help, kind) in &families {
            let mine: Vec<_> = samples.iter().filter(|s| &s.0 == name).collect();
            assert!(!mine.is_empty(), "{name}: a family without samples");
            let label_names: Vec<&str> = mine[0].1.iter().map(|(k, _)| k.as_str()).collect();
            match kind.as_str() {
                "gauge" => {
                    let v = GaugeVec::new(Opts::new(name, help), &label_names).unwrap();
                    for (_, l, x) in &mine {
                        let vals: Vec<&str> = l.iter().map(|(_, v)| v.as_str()).collect();
                        v.with_label_values(&vals).set(*x);
                    }
                    reference.register(Box::new(v)).unwrap();
                }
                "counter" => {
                    let v = prometheus::IntCounterVec::new(Opts::new(name, help), &label_names)
                        .unwrap();
                    for (_, l, x) in &mine {
                        let vals: Vec<&str> = l.iter().map(|(_, v)| v.as_str()).collect();
                        v.with_label_values(&vals).inc_by(*x as u64);
                    }
                    reference.register(Box::new(v)).unwrap();
                }
                other => panic!("{name}: type {other}"),
            }
        }
        let mut theirs = Vec::new();
        TextEncoder::new()
            .encode(&reference.gather(), &mut theirs)
            .unwrap();
        let theirs = String::from_utf8(theirs).unwrap();
        let sorted = |t: &str| {
            let mut l: Vec<String> = t.lines().map(String::from).collect();
            l.sort();
            l
        };
        assert_eq!(sorted(&text), sorted(&theirs));
        for needle in [
            "regtrust_ca_changes_total{registry=\"r\",url=\"https://r/v2/\"} 3",
            "regtrust_stage_total{registry=\"r\",result=\"applied\"} 2",
            "subject=\"CN=ä \\\"quoted\\\"\\nline\\\\x\\\\\"",
            "regtrust_expected_ca_error{registry=\"r\"} 1",
            "regtrust_trust_findings{kind=\"ca_unreadable\",registry=\"r\"} 2",
            "regtrust_runtime_trust_stale{runtime=\"containerd\"} 1",
            "regtrust_build_info{",
            "process_resident_memory_bytes ",
        ] {
            assert!(text.contains(needle), "{needle} not in\n{text}");
        }
    }

    /// `{a="x",b="y\"z"}` → [(a, x), (b, y"z)].
    fn unescape_labels(s: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let Some(body) = s.strip_prefix('{').and_then(|b| b.strip_suffix('}')) else {
            return out;
        };
        let mut chars = body.chars().peekable();
        while chars.peek().is_some() {
            let name: String = chars.by_ref().take_while(|c| *c != '=').collect();
            assert_eq!(chars.next(), Some('"'));
            let mut value = String::new();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some('n') => value.push('\n'),
                        Some(c) => value.push(c),
                        None => panic!("dangling escape in {s}"),
                    },
                    '"' => break,
                    c => value.push(c),
                }
            }
            if chars.peek() == Some(&',') {
                chars.next();
            }
            out.push((name, value));
        }
        out
    }
}
