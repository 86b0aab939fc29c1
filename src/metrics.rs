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

/// A gauge family whose series are owned per registry.
struct Tracked {
    vec: GaugeVec,
    /// registry → label sets currently exported.
    sets: HashMap<String, HashSet<Labels>>,
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

    /// Sets `values` for `registry`, removing that registry's series that match `scope` (a prefix of
    /// label values, e.g. `[registry, endpoint]`) and are not in `values`.
    fn replace(&mut self, registry: &str, scope: &[&str], values: Vec<(Labels, f64)>) {
        let owned = self.sets.entry(registry.to_string()).or_default();
        let keep: HashSet<Labels> = values.iter().map(|(l, _)| l.clone()).collect();
        let stale: Vec<Labels> = owned
            .iter()
            .filter(|l| l.iter().zip(scope).all(|(a, b)| a == b) && !keep.contains(*l))
            .cloned()
            .collect();
        for l in stale {
            let refs: Vec<&str> = l.iter().map(String::as_str).collect();
            let _ = self.vec.remove_label_values(&refs);
            owned.remove(&l);
        }
        for (l, v) in values {
            let refs: Vec<&str> = l.iter().map(String::as_str).collect();
            self.vec.with_label_values(&refs).set(v);
            owned.insert(l);
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
        self.vec.with_label_values(labels).inc_by(n);
        self.sets
            .entry(registry.to_string())
            .or_default()
            .insert(labels.iter().map(|s| s.to_string()).collect());
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
    presented_ca_info: Tracked,
    trusted_ca_info: Tracked,
    expected_ca_trusted: Tracked,
    ca_drift: Tracked,
    cert_expiry: Tracked,
    trust_findings: Tracked,
    last_probe: Tracked,
    runtime_stale: Tracked,
    probes_total: TrackedCounter,
    ca_changes_total: TrackedCounter,
    stage_total: TrackedCounter,
}

/// What one endpoint probe contributes.
pub struct EndpointSample<'a> {
    pub endpoint: &'a str,
    pub ok: bool,
    pub reason: &'a str,
    /// (phase, seconds)
    pub durations: Vec<(&'static str, f64)>,
    pub presented_issuer: Option<(&'a str, &'a str)>,
    /// (role, sha256, not_after unix)
    pub expiries: Vec<(&'static str, String, i64)>,
    pub timestamp: f64,
    /// kind → 0/1 (`presented_untrusted`, `expected_untrusted`); absent kinds are removed.
    pub drift: Vec<(&'static str, bool)>,
}

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
            probe_success: g("regtrust_probe_success", "1 if the last probe of the endpoint succeeded with the runtime's trust, else 0.", &["registry", "endpoint"])?,
            probe_reason: g("regtrust_probe_reason", "1 for the reason of the endpoint's last probe (ok, ca_key_mismatch, unknown_authority, ...).", &["registry", "endpoint", "reason"])?,
            probe_duration: g("regtrust_probe_duration_seconds", "Duration of the phases of the endpoint's last probe.", &["registry", "endpoint", "phase"])?,
            presented_ca_info: g("regtrust_presented_ca_info", "The issuer of the certificate the endpoint presented (sha256 of the issuing CA, or keyid:<AKID> when only its key id is known).", &["registry", "endpoint", "subject", "sha256"])?,
            trusted_ca_info: g("regtrust_trusted_ca_info", "A CA the node's runtime trusts for the registry, with the file it comes from.", &["registry", "subject", "sha256", "source"])?,
            expected_ca_trusted: g("regtrust_expected_ca_trusted", "1 if the node trusts every expected CA of the registry (a rotation to it is safe), else 0.", &["registry"])?,
            ca_drift: g("regtrust_ca_drift", "1 while the endpoint drifts: presented_untrusted (its chain does not verify with the node's trust) or expected_untrusted (the node does not trust the expected CA).", &["registry", "endpoint", "kind"])?,
            cert_expiry: g("regtrust_cert_expiry_timestamp_seconds", "notAfter of the presented leaf and intermediates and of the trusted CAs, as a Unix time.", &["registry", "endpoint", "role", "sha256"])?,
            trust_findings: g("regtrust_trust_findings", "Problems found loading the runtime's trust for the registry, by kind.", &["registry", "kind"])?,
            last_probe: g("regtrust_last_probe_timestamp_seconds", "When the endpoint was last probed, as a Unix time.", &["registry", "endpoint"])?,
            runtime_stale: g("regtrust_runtime_trust_stale", "1 if the node's system CA bundle changed after the runtime process started: the running runtime still uses the old roots and needs a restart.", &["runtime"])?,
            probes_total: TrackedCounter::new(&r, "regtrust_probes_total", "Probes of the endpoint, by reason.", &["registry", "endpoint", "reason"])?,
            ca_changes_total: TrackedCounter::new(&r, "regtrust_ca_changes_total", "Times the issuing CA presented by the endpoint changed since the last probe (persisted across restarts).", &["registry", "endpoint"])?,
            stage_total: TrackedCounter::new(
                &r,
                "regtrust_stage_total",
                "Attempts to stage a corrected CA, by result (applied, refused, rolled_back, failed, dry_run).",
                &["registry", "result"],
            )?,
        };
        let build = GaugeVec::new(
            Opts::new("regtrust_build_info", "regtrust's version; always 1."),
            &["version"],
        )?;
        build
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
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
        let re = [registry, s.endpoint];
        let l =
            |extra: &[&str]| -> Labels { re.iter().chain(extra).map(|x| x.to_string()).collect() };
        f.probe_success
            .replace(registry, &re, vec![(l(&[]), if s.ok { 1.0 } else { 0.0 })]);
        f.probe_reason
            .replace(registry, &re, vec![(l(&[s.reason]), 1.0)]);
        f.probe_duration.replace(
            registry,
            &re,
            s.durations.iter().map(|(p, v)| (l(&[p]), *v)).collect(),
        );
        f.presented_ca_info.replace(
            registry,
            &re,
            s.presented_issuer
                .iter()
                .map(|(subj, sha)| (l(&[subj, sha]), 1.0))
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
            .inc_by(registry, &[registry, s.endpoint, s.reason], 1);
    }

    /// Removes the series of endpoints the registry no longer has.
    pub fn retain_endpoints(&self, registry: &str, endpoints: &[String]) {
        let mut guard = self.families();
        let f = &mut *guard;
        let keep: HashSet<&str> = endpoints.iter().map(String::as_str).collect();
        let gone: Vec<String> = f
            .probe_success
            .sets
            .get(registry)
            .map(|s| {
                s.iter()
                    .filter_map(|l| l.get(1))
                    .filter(|e| !keep.contains(e.as_str()))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        for ep in gone {
            let scope = [registry, ep.as_str()];
            for t in [
                &mut f.probe_success,
                &mut f.probe_reason,
                &mut f.probe_duration,
                &mut f.presented_ca_info,
                &mut f.cert_expiry,
                &mut f.last_probe,
                &mut f.ca_drift,
            ] {
                t.replace(registry, &scope, Vec::new());
            }
        }
    }

    /// The registry-level series: trusted CAs, findings, expected-CA trust.
    pub fn registry_trust(
        &self,
        registry: &str,
        trusted: &[(String, String, String)],
        findings: &[(String, f64)],
        expected_trusted: Option<bool>,
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
        f.expected_ca_trusted.replace(
            registry,
            &[registry],
            expected_trusted
                .map(|t| (vec![r.clone()], if t { 1.0 } else { 0.0 }))
                .into_iter()
                .collect(),
        );
    }

    pub fn ca_changed(&self, registry: &str, endpoint: &str, n: u64) {
        self.families()
            .ca_changes_total
            .inc_by(registry, &[registry, endpoint], n);
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

    /// Drops every series of a registry that left the configuration.
    pub fn forget_registry(&self, registry: &str) {
        let mut guard = self.families();
        let f = &mut *guard;
        for t in [
            &mut f.probe_success,
            &mut f.probe_reason,
            &mut f.probe_duration,
            &mut f.presented_ca_info,
            &mut f.trusted_ca_info,
            &mut f.expected_ca_trusted,
            &mut f.ca_drift,
            &mut f.cert_expiry,
            &mut f.trust_findings,
            &mut f.last_probe,
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

    fn sample<'a>(ep: &'a str, issuer: (&'a str, &'a str), reason: &'a str) -> EndpointSample<'a> {
        EndpointSample {
            endpoint: ep,
            ok: reason == "ok",
            reason,
            durations: vec![("total", 0.01)],
            presented_issuer: Some(issuer),
            expiries: vec![],
            timestamp: 1.0,
            drift: vec![("presented_untrusted", reason != "ok")],
        }
    }

    #[test]
    fn stale_fingerprints_and_departed_registries_are_removed() {
        let m = Metrics::new().unwrap();
        m.endpoint("r", &sample("https://r/v2/", ("CN=A", "sha256:aaa"), "ok"));
        m.endpoint(
            "r",
            &sample("https://r/v2/", ("CN=A", "sha256:bbb"), "ca_key_mismatch"),
        );
        let text = m.render();
        assert!(text.contains("sha256=\"sha256:bbb\""), "{text}");
        assert!(
            !text.contains("sha256=\"sha256:aaa\""),
            "old fingerprint left behind:\n{text}"
        );
        assert!(
            !text.contains("reason=\"ok\"} 1"),
            "old reason left at 1:\n{text}"
        );
        assert!(text.contains(
            "regtrust_probes_total{endpoint=\"https://r/v2/\",reason=\"ok\",registry=\"r\"} 1"
        ));
        m.forget_registry("r");
        assert!(!m.render().contains("registry=\"r\""));
    }

    #[test]
    fn endpoints_that_left_are_removed() {
        let m = Metrics::new().unwrap();
        m.endpoint("r", &sample("https://m/v2/", ("CN=A", "x"), "ok"));
        m.endpoint("r", &sample("https://r/v2/", ("CN=A", "x"), "ok"));
        m.retain_endpoints("r", &["https://r/v2/".to_string()]);
        let text = m.render();
        assert!(
            !text.contains("https://m/v2/\",registry=\"r\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("regtrust_probe_success{endpoint=\"https://r/v2/\",registry=\"r\"} 1")
        );
    }
}
