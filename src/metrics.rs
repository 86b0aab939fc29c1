//! The agent's Prometheus metrics: a struct that registers itself, and that remembers which label
//! sets it set for each registry so that stale ones (an old fingerprint, a registry that left the
//! config) are removed, not left at 1 — blackbox_exporter gets that for free by building a registry
//! per scrape; a long-running agent must do it itself.
//!
//! Never does: I/O (the HTTP listener renders [`Metrics::render`]).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use prometheus::{Encoder, GaugeVec, IntCounterVec, Opts, Registry, TextEncoder};

/// Label values of one series.
type Labels = Vec<String>;

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

/// A gauge family whose series are owned per registry and, inside it, per scope (a prefix of the
/// label values, e.g. `[registry, url]`): an update touches only its own scope's series, so a
/// registry's round costs time linear in its endpoints.
struct Tracked {
    vec: GaugeVec,
    /// registry → (scope, label sets currently exported). Vecs, not hash tables: a registry has
    /// a few scopes of one or two sets each, and 200 registries × 15 families of small hash
    /// tables cost over a MiB (massif).
    sets: HashMap<String, Vec<(Labels, Vec<Labels>)>>,
}

impl Tracked {
    fn new(
        reg: &Registry,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> Result<Tracked, prometheus::Error> {
        let vec = GaugeVec::new(Opts::new(name, help), labels)?;
        reg.register(Box::new(vec.clone()))?;
        Ok(Tracked {
            vec,
            sets: HashMap::new(),
        })
    }

    /// Sets `values` for `registry`'s `scope`, removing that scope's series not in `values`.
    fn replace(&mut self, registry: &str, scope: &[&str], values: Vec<(Labels, f64)>) {
        let scope: Labels = scope.iter().map(|s| label_value(s)).collect();
        let scopes = self.sets.entry(registry.to_string()).or_default();
        let at = match scopes.iter().position(|(s, _)| *s == scope) {
            Some(at) => at,
            None => {
                scopes.push((scope, Vec::new()));
                scopes.len() - 1
            }
        };
        let owned = &mut scopes[at].1;
        let values: Vec<(Labels, f64)> = values
            .into_iter()
            .map(|(l, v)| (l.iter().map(|x| label_value(x)).collect(), v))
            .collect();
        owned.retain(|l| {
            let keep = values.iter().any(|(v, _)| v == l);
            if !keep {
                remove(&self.vec, l);
            }
            keep
        });
        for (l, v) in values {
            let refs: Vec<&str> = l.iter().map(String::as_str).collect();
            self.vec.with_label_values(&refs).set(v);
            if !owned.contains(&l) {
                owned.push(l);
            }
        }
        owned.shrink_to_fit();
    }

    /// Removes the series of `registry`'s scopes for which `keep` is false.
    fn retain(&mut self, registry: &str, keep: impl Fn(&Labels) -> bool) {
        let Some(scopes) = self.sets.get_mut(registry) else {
            return;
        };
        scopes.retain(|(scope, sets)| {
            let k = keep(scope);
            if !k {
                sets.iter().for_each(|l| remove(&self.vec, l));
            }
            k
        });
    }

    fn forget(&mut self, registry: &str) {
        self.retain(registry, |_| false);
        self.sets.remove(registry);
    }
}

fn remove(vec: &GaugeVec, l: &Labels) {
    let refs: Vec<&str> = l.iter().map(String::as_str).collect();
    let _ = vec.remove_label_values(&refs);
}

/// A counter family whose series are owned per registry (removed when the registry goes).
struct TrackedCounter {
    vec: IntCounterVec,
    sets: HashMap<String, HashSet<Labels>>,
}

impl TrackedCounter {
    fn new(
        reg: &Registry,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> Result<TrackedCounter, prometheus::Error> {
        let vec = IntCounterVec::new(Opts::new(name, help), labels)?;
        reg.register(Box::new(vec.clone()))?;
        Ok(TrackedCounter {
            vec,
            sets: HashMap::new(),
        })
    }

    fn inc_by(&mut self, registry: &str, labels: &[&str], n: u64) {
        let labels: Labels = labels.iter().map(|s| label_value(s)).collect();
        let refs: Vec<&str> = labels.iter().map(String::as_str).collect();
        self.vec.with_label_values(&refs).inc_by(n);
        self.sets
            .entry(registry.to_string())
            .or_default()
            .insert(labels);
    }

    /// Removes `registry`'s series whose label at `index` is not kept.
    fn retain(&mut self, registry: &str, index: usize, keep: &HashSet<&str>) {
        if let Some(sets) = self.sets.get_mut(registry) {
            sets.retain(|l| {
                let k = l.get(index).is_none_or(|v| keep.contains(v.as_str()));
                if !k {
                    let refs: Vec<&str> = l.iter().map(String::as_str).collect();
                    let _ = self.vec.remove_label_values(&refs);
                }
                k
            });
        }
    }

    fn forget(&mut self, registry: &str) {
        if let Some(sets) = self.sets.remove(registry) {
            for l in sets {
                let refs: Vec<&str> = l.iter().map(String::as_str).collect();
                let _ = self.vec.remove_label_values(&refs);
            }
        }
    }
}

struct Families {
    probe_success: Tracked,
    probe_reason: Tracked,
    probe_duration: Tracked,
    probe_total_duration: Tracked,
    presented_ca_info: Tracked,
    trusted_ca_info: Tracked,
    expected_ca_trusted: Tracked,
    expected_ca_error: Tracked,
    ca_drift: Tracked,
    cert_expiry: Tracked,
    trust_findings: Tracked,
    last_probe: Tracked,
    runtime_stale: Tracked,
    runtime_info: Tracked,
    probes_total: TrackedCounter,
    ca_changes_total: TrackedCounter,
    stage_total: TrackedCounter,
}

impl Families {
    /// The gauge families with one series set per endpoint (scope `[registry, url]`).
    fn per_url(&mut self) -> [&mut Tracked; 8] {
        [
            &mut self.probe_success,
            &mut self.probe_reason,
            &mut self.probe_duration,
            &mut self.probe_total_duration,
            &mut self.presented_ca_info,
            &mut self.cert_expiry,
            &mut self.last_probe,
            &mut self.ca_drift,
        ]
    }
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

/// All regtrust metrics, in their own registry.
pub struct Metrics {
    registry: Registry,
    f: Mutex<Families>,
}

impl Metrics {
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let r = Registry::new();
        let g = |name: &str, help: &str, labels: &[&str]| Tracked::new(&r, name, help, labels);
        let f = Families {
            probe_success: g("regtrust_probe_success", "1 if the last probe of the endpoint succeeded with the runtime's trust, else 0.", &[REGISTRY, URL])?,
            probe_reason: g("regtrust_probe_reason", "1 for the reason of the endpoint's last probe (ok, ca_key_mismatch, unknown_authority, ...).", &[REGISTRY, URL, "reason"])?,
            probe_duration: g("regtrust_probe_duration_seconds", "Duration of each phase (dns, connect, tls, http) of the endpoint's last probe; phases that did not run are absent.", &[REGISTRY, URL, "phase"])?,
            probe_total_duration: g("regtrust_probe_total_duration_seconds", "Duration of the endpoint's last probe, all phases together.", &[REGISTRY, URL])?,
            presented_ca_info: g("regtrust_presented_ca_info", "The issuer of the certificate the endpoint presented: sha256 (hex) of the issuing CA when known, key_id (hex AKID) when the leaf names one.", &[REGISTRY, URL, "subject", "sha256", "key_id"])?,
            trusted_ca_info: g("regtrust_trusted_ca_info", "A CA the node's runtime trusts for the registry (sha256 in hex), with the file it comes from.", &[REGISTRY, "subject", "sha256", "source"])?,
            expected_ca_trusted: g("regtrust_expected_ca_trusted", "1 if the node trusts every expected CA of the registry (a rotation to it is safe), else 0 (also while the expected CA cannot be read).", &[REGISTRY])?,
            expected_ca_error: g("regtrust_expected_ca_error", "1 while the registry's expected CA cannot be read (file, URL), else 0.", &[REGISTRY])?,
            ca_drift: g("regtrust_ca_drift", "1 while the endpoint drifts: presented_untrusted (its chain does not verify with the node's trust) or expected_untrusted (the node does not trust the expected CA).", &[REGISTRY, URL, "kind"])?,
            cert_expiry: g("regtrust_cert_expiry_timestamp_seconds", "notAfter of the presented leaf and intermediates and of the trusted CAs, as a Unix time.", &[REGISTRY, URL, "role", "sha256"])?,
            trust_findings: g("regtrust_trust_findings", "Problems found loading the runtime's trust for the registry, by kind.", &[REGISTRY, "kind"])?,
            last_probe: g("regtrust_last_probe_timestamp_seconds", "When the endpoint was last probed, as a Unix time.", &[REGISTRY, URL])?,
            runtime_stale: g("regtrust_runtime_trust_stale", "1 if the node's system CA bundle changed after the runtime process started: the running runtime still uses the old roots and needs a restart.", &["runtime"])?,
            runtime_info: g("regtrust_runtime_info", "The runtime's version and the Go release its verdicts follow, with where the Go version came from (config, process, binary, default); always 1.", &["runtime", "version", "go_version", "source"])?,
            probes_total: TrackedCounter::new(&r, "regtrust_probes_total", "Probes of the endpoint, by reason.", &[REGISTRY, URL, "reason"])?,
            ca_changes_total: TrackedCounter::new(&r, "regtrust_ca_changes_total", "Times the issuing CA presented by the endpoint changed since the last probe (persisted across restarts).", &[REGISTRY, URL])?,
            stage_total: TrackedCounter::new(
                &r,
                "regtrust_stage_total",
                "Attempts to stage a corrected CA, by result (applied, refused, rolled_back, failed, dry_run).",
                &[REGISTRY, "result"],
            )?,
        };
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
            f: Mutex::new(f),
        })
    }

    fn families(&self) -> std::sync::MutexGuard<'_, Families> {
        self.f.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records one endpoint's probe; `registry`'s other endpoints are untouched.
    pub fn endpoint(&self, registry: &str, s: &EndpointSample<'_>) {
        let mut guard = self.families();
        let f = &mut *guard;
        let re = [registry, s.url];
        let l =
            |extra: &[&str]| -> Labels { re.iter().chain(extra).map(|x| x.to_string()).collect() };
        f.probe_success
            .replace(registry, &re, vec![(l(&[]), if s.ok { 1.0 } else { 0.0 })]);
        f.probe_reason
            .replace(registry, &re, vec![(l(&[s.reason]), 1.0)]);
        f.probe_duration.replace(
            registry,
            &re,
            s.phases.iter().map(|(p, v)| (l(&[p]), *v)).collect(),
        );
        f.probe_total_duration
            .replace(registry, &re, vec![(l(&[]), s.total)]);
        f.presented_ca_info.replace(
            registry,
            &re,
            s.presented_issuer
                .iter()
                .map(|i| (l(&[i.subject, i.sha256, i.key_id]), 1.0))
                .collect(),
        );
        f.cert_expiry.replace(
            registry,
            &re,
            s.expiries
                .iter()
                .map(|(role, sha, t)| (l(&[role, sha]), *t as f64))
                .collect(),
        );
        f.last_probe
            .replace(registry, &re, vec![(l(&[]), s.timestamp)]);
        f.ca_drift.replace(
            registry,
            &re,
            s.drift
                .iter()
                .map(|(k, on)| (l(&[k]), if *on { 1.0 } else { 0.0 }))
                .collect(),
        );
        f.probes_total
            .inc_by(registry, &[registry, s.url, s.reason], 1);
    }

    /// Removes the series of endpoints the registry no longer has (gauges and counters).
    pub fn retain_endpoints(&self, registry: &str, urls: &[String]) {
        let mut guard = self.families();
        let f = &mut *guard;
        let cut: HashSet<String> = urls.iter().map(|u| label_value(u)).collect();
        for t in f.per_url() {
            t.retain(registry, |scope| {
                scope.get(1).is_none_or(|u| cut.contains(u.as_str()))
            });
        }
        let keep_cut: HashSet<&str> = cut.iter().map(String::as_str).collect();
        f.probes_total.retain(registry, 1, &keep_cut);
        f.ca_changes_total.retain(registry, 1, &keep_cut);
    }

    /// The registry-level series: trusted CAs, findings, expected-CA trust.
    pub fn registry_trust(
        &self,
        registry: &str,
        trusted: &[(String, String, String)],
        findings: &[(String, f64)],
        expected: ExpectedState,
    ) {
        let mut guard = self.families();
        let f = &mut *guard;
        let r = registry.to_string();
        f.trusted_ca_info.replace(
            registry,
            &[registry],
            trusted
                .iter()
                .map(|(subj, sha, src)| {
                    (vec![r.clone(), subj.clone(), sha.clone(), src.clone()], 1.0)
                })
                .collect(),
        );
        f.trust_findings.replace(
            registry,
            &[registry],
            findings
                .iter()
                .map(|(k, n)| (vec![r.clone(), k.clone()], *n))
                .collect(),
        );
        let (trusted, error) = match expected {
            ExpectedState::None => (None, None),
            ExpectedState::Trusted(t) => (Some(t), Some(false)),
            ExpectedState::Unreadable => (Some(false), Some(true)),
        };
        let one = |v: Option<bool>| -> Vec<(Labels, f64)> {
            v.map(|b| (vec![r.clone()], if b { 1.0 } else { 0.0 }))
                .into_iter()
                .collect()
        };
        f.expected_ca_trusted
            .replace(registry, &[registry], one(trusted));
        f.expected_ca_error
            .replace(registry, &[registry], one(error));
    }

    pub fn ca_changed(&self, registry: &str, url: &str, n: u64) {
        self.families()
            .ca_changes_total
            .inc_by(registry, &[registry, url], n);
    }

    /// Counts one staging attempt.
    pub fn stage(&self, registry: &str, result: &str) {
        self.families()
            .stage_total
            .inc_by(registry, &[registry, result], 1);
    }

    /// `None` removes the series (runtime process not found).
    pub fn runtime_stale(&self, runtime: &str, stale: Option<bool>) {
        let mut guard = self.families();
        let f = &mut *guard;
        f.runtime_stale.replace(
            "",
            &[runtime],
            stale
                .map(|s| (vec![runtime.to_string()], if s { 1.0 } else { 0.0 }))
                .into_iter()
                .collect(),
        );
    }

    /// The one `regtrust_runtime_info` series (a new detection replaces the old labels).
    pub fn runtime_info(&self, info: &crate::trust::runtime_version::RuntimeInfo) {
        let mut guard = self.families();
        let labels = vec![
            info.runtime.as_str().to_string(),
            info.version.clone().unwrap_or_default(),
            info.go_version.to_string(),
            info.source.as_str().to_string(),
        ];
        guard.runtime_info.replace("", &[], vec![(labels, 1.0)]);
    }

    /// Drops every series of a registry that left the configuration.
    pub fn forget_registry(&self, registry: &str) {
        let mut guard = self.families();
        let f = &mut *guard;
        for t in f.per_url() {
            t.forget(registry);
        }
        for t in [
            &mut f.trusted_ca_info,
            &mut f.expected_ca_trusted,
            &mut f.expected_ca_error,
            &mut f.trust_findings,
        ] {
            t.forget(registry);
        }
        f.probes_total.forget(registry);
        f.ca_changes_total.forget(registry);
        f.stage_total.forget(registry);
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            return format!("# regtrust: cannot encode metrics: {e}\n");
        }
        String::from_utf8_lossy(&buf).into_owned()
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
        for family in m.registry.gather() {
            for metric in family.get_metric() {
                for l in metric.get_label() {
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
                        .contains(&l.name()),
                        "{} has a label {}",
                        family.name(),
                        l.name()
                    );
                }
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
}
