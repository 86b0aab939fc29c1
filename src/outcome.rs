//! The outcome of a check, as domain data: the runtime's trust for a registry, what each endpoint
//! presented and how Go's rules judged it, and the registry's verdict reached the runtime's way
//! (endpoints in order, the first that works wins).
//!
//! Every view ([`crate::report`]: text, JSON, the `--npd` line, the status page, staging text) and
//! every sink (the agent's metrics, state and logs, staging) reads these types; none of them
//! re-derives a verdict. Pure: no I/O.

use std::sync::Arc;

use crate::cert::{hex, Cert};
use crate::diagnose::{Diagnosis, Reason};
use crate::probe::ProbeResult;
use crate::trust::{Endpoint, Finding, FindingKind, PullKind, RegistryTrust, TrustedCa};

/// Who issued the presented leaf: the issuing certificate's SHA-256 when it is known (verified
/// chain, or sent by the registry), else the key id the leaf names (AKID).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct IssuerId {
    pub subject: String,
    /// `sha256:<hex>` or `keyid:<hex>`.
    pub id: String,
    /// SHA-256 of the issuing certificate, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// The issuer's key id as the leaf names it (AKID), when present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
}

impl IssuerId {
    /// Same issuing CA? Fingerprints when both are known, else key ids, else the ids. The same CA
    /// is first known by key id only (its chain did not verify) and by fingerprint once it does:
    /// that is not a change.
    pub fn same_issuer(&self, sha256: Option<&str>, key_id: Option<&str>, id: &str) -> bool {
        match (
            self.sha256.as_deref(),
            sha256,
            self.key_id.as_deref(),
            key_id,
        ) {
            (Some(a), Some(b), _, _) => a == b,
            (_, _, Some(a), Some(b)) => a == b,
            _ => self.id == id,
        }
    }

    /// The presented leaf's issuer, as precisely as the probe can tell.
    pub fn of(probe: &ProbeResult) -> Option<IssuerId> {
        let leaf = probe.presented.first()?;
        let sent = probe
            .presented
            .iter()
            .skip(1)
            .find(|c| c.raw_subject() == leaf.raw_issuer())
            .map(|c| c.sha256.clone());
        let sha256 = probe.verified_issuer_sha256.clone().or(sent);
        let key_id = leaf.akid.as_deref().map(hex);
        let id = match (&sha256, &key_id) {
            (Some(sha), _) => format!("sha256:{sha}"),
            (None, Some(k)) => format!("keyid:{k}"),
            (None, None) => return None,
        };
        Some(IssuerId {
            subject: leaf.issuer.clone(),
            id,
            sha256,
            key_id,
        })
    }
}

/// One endpoint, probed and judged.
#[derive(Debug, Clone)]
pub struct EndpointOutcome {
    /// The endpoint as the runtime's configuration names it (URL, origin, CAs, skip_verify).
    pub endpoint: Endpoint,
    /// What the network showed; `None` when the runtime fails before dialling (config error).
    pub probe: Option<ProbeResult>,
    pub diagnosis: Diagnosis,
    /// The CAs that matter for this endpoint: the configured ones, plus any system root named
    /// like an issuer in the presented chain.
    pub trusted: Vec<TrustedCa>,
    /// How many system roots the pool held.
    pub system_roots: usize,
}

impl EndpointOutcome {
    pub fn ok(&self) -> bool {
        self.diagnosis.reason == Reason::Ok
    }

    pub fn reason(&self) -> Reason {
        self.diagnosis.reason
    }

    /// The URL probed (the endpoint's `/v2/`).
    pub fn url(&self) -> String {
        match &self.probe {
            Some(p) => p.url.clone(),
            None => self.endpoint.url(),
        }
    }

    /// The certificates the registry presented, leaf first (empty when none was seen).
    pub fn presented(&self) -> &[Arc<Cert>] {
        self.probe.as_ref().map_or(&[], |p| p.presented.as_slice())
    }

    pub fn presented_issuer(&self) -> Option<IssuerId> {
        self.probe.as_ref().and_then(IssuerId::of)
    }

    /// True when a chain was seen and judged (not skipped with skip_verify).
    pub fn chain_judged(&self) -> bool {
        !self.presented().is_empty() && !self.endpoint.skip_verify
    }
}

/// A registry's verdict, as the runtime reaches it.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub reason: Reason,
    pub detail: String,
    pub next_step: String,
    /// Index of the endpoint the runtime pulls through, when one works.
    pub via: Option<usize>,
}

impl Verdict {
    pub fn ok(&self) -> bool {
        self.via.is_some()
    }
}

/// One registry, checked.
#[derive(Debug, Clone)]
pub struct RegistryOutcome {
    /// Shared with the agent's copy of the registry's trust (one copy per registry, however
    /// many outcomes the status page and the fold keep).
    pub trust: Arc<RegistryTrust>,
    pub endpoints: Vec<EndpointOutcome>,
    pub verdict: Verdict,
    /// Trust findings, then `degraded` findings for failing endpoints before the working one.
    pub findings: Vec<Finding>,
}

impl RegistryOutcome {
    /// One endpoint per URL, in the runtime's order: the same URL can be configured twice (a
    /// `[host]` table and `server`, with different trust), and the runtime, trying both, reaches
    /// it if either works — so the first that is ok stands for the URL, else the first. Series,
    /// drift and history are per URL: they follow this one, not whichever was probed last.
    pub fn by_url(&self) -> Vec<&EndpointOutcome> {
        let mut out: Vec<&EndpointOutcome> = Vec::new();
        for e in &self.endpoints {
            match out.iter_mut().find(|o| o.url() == e.url()) {
                Some(o) if !o.ok() && e.ok() => *o = e,
                Some(_) => {}
                None => out.push(e),
            }
        }
        out
    }
}

/// Words for a registry whose runtime configuration is broken.
pub const CONFIG_ERROR_NEXT_STEP: &str =
    "the runtime fails before dialling: fix the file named in the detail";

/// The endpoint whose error the runtime reports when none works: containerd the first's,
/// containers/image the last's (its own location after the mirrors; plain HTTP after https).
fn reported_failure<'a>(
    trust: &RegistryTrust,
    endpoints: &'a [EndpointOutcome],
) -> Option<&'a EndpointOutcome> {
    match trust.runtime {
        crate::trust::Runtime::Crio => endpoints.last(),
        _ => endpoints.first(),
    }
}

impl RegistryOutcome {
    /// The runtime's verdict over `endpoints` in its order: the first that works wins and every
    /// failing endpoint before it is a `degraded` finding; when none works, the first endpoint's
    /// error is the registry's (containerd reports the first error).
    pub fn decide(
        trust: impl Into<Arc<RegistryTrust>>,
        endpoints: Vec<EndpointOutcome>,
    ) -> RegistryOutcome {
        let trust: Arc<RegistryTrust> = trust.into();
        let mut findings = trust.findings.clone();
        let verdict = if let Some(err) = &trust.config_error {
            Verdict {
                reason: Reason::ConfigError,
                detail: err.clone(),
                next_step: CONFIG_ERROR_NEXT_STEP.into(),
                via: None,
            }
        } else if let Some(i) = endpoints.iter().position(EndpointOutcome::ok) {
            for e in &endpoints[..i] {
                findings.push(Finding::new(
                    FindingKind::Degraded,
                    None,
                    format!(
                        "{} fails ({}: {}) and the runtime falls through to {}",
                        e.url(),
                        e.reason(),
                        e.diagnosis.detail,
                        endpoints[i].url()
                    ),
                ));
            }
            if endpoints[i].endpoint.scheme == "http" {
                findings.push(Finding::new(
                    FindingKind::InsecureHttp,
                    None,
                    format!(
                        "the runtime pulls over plain HTTP ({}): nothing is encrypted or verified",
                        endpoints[i].url()
                    ),
                ));
            }
            Verdict {
                reason: Reason::Ok,
                detail: format!("pulls via {}", endpoints[i].url()),
                next_step: String::new(),
                via: Some(i),
            }
        } else if let Some(e) = reported_failure(&trust, &endpoints) {
            Verdict {
                reason: e.reason(),
                detail: e.diagnosis.detail.clone(),
                next_step: e.diagnosis.next_step.clone(),
                via: None,
            }
        } else {
            Verdict {
                reason: Reason::ConfigError,
                detail: "no endpoint to pull from".into(),
                next_step: "configure a pull-capable host".into(),
                via: None,
            }
        };
        RegistryOutcome {
            trust,
            endpoints,
            verdict,
            findings,
        }
    }

    pub fn name(&self) -> &str {
        &self.trust.registry
    }

    pub fn ok(&self) -> bool {
        self.verdict.ok()
    }
}

/// The whole check.
#[derive(Debug, Clone, Default)]
pub struct CheckOutcome {
    pub registries: Vec<RegistryOutcome>,
    /// Findings about the node as a whole (containerd config, system roots).
    pub findings: Vec<Finding>,
    /// The runtime and Go version the verdicts follow, and where they came from.
    pub runtime: Option<crate::trust::runtime_version::RuntimeInfo>,
    /// The kind of pull modelled.
    pub pull: PullKind,
}

impl CheckOutcome {
    pub fn all_ok(&self) -> bool {
        self.registries.iter().all(RegistryOutcome::ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::Diagnosis;
    use crate::trust::Runtime;

    fn trust(name: &str) -> RegistryTrust {
        RegistryTrust {
            registry: name.into(),
            runtime: Runtime::Containerd,
            host_dir: None,
            endpoints: Vec::new(),
            findings: Vec::new(),
            config_error: None,
            watched: Vec::new(),
        }
    }

    fn ep(url_host: &str, reason: Reason) -> EndpointOutcome {
        EndpointOutcome {
            endpoint: Endpoint::default_for("https", url_host, "test"),
            probe: None,
            diagnosis: Diagnosis {
                reason,
                detail: format!("{reason} detail"),
                next_step: format!("{reason} next"),
                key_mismatch: None,
            },
            trusted: Vec::new(),
            system_roots: 0,
        }
    }

    #[test]
    fn first_working_endpoint_wins_and_earlier_failures_are_degraded() {
        let o = RegistryOutcome::decide(
            trust("r:5000"),
            vec![
                ep("m:1", Reason::Timeout),
                ep("r:5000", Reason::Ok),
                ep("z:1", Reason::UnknownAuthority),
            ],
        );
        assert!(o.ok());
        assert_eq!(o.verdict.via, Some(1));
        assert_eq!(o.verdict.detail, "pulls via https://r:5000/v2/");
        assert_eq!(o.findings.len(), 1);
        assert_eq!(o.findings[0].kind, FindingKind::Degraded);
        assert!(o.findings[0]
            .message
            .starts_with("https://m:1/v2/ fails (timeout"));
    }

    #[test]
    fn one_endpoint_per_url_the_working_one_if_any() {
        let o = RegistryOutcome::decide(
            trust("r:5000"),
            vec![
                ep("r:5000", Reason::UnknownAuthority),
                ep("m:1", Reason::Timeout),
                ep("r:5000", Reason::Ok),
                ep("m:1", Reason::UnknownAuthority),
            ],
        );
        let by_url: Vec<(String, Reason)> =
            o.by_url().iter().map(|e| (e.url(), e.reason())).collect();
        assert_eq!(
            by_url,
            [
                ("https://r:5000/v2/".to_string(), Reason::Ok),
                ("https://m:1/v2/".to_string(), Reason::Timeout),
            ]
        );
    }

    #[test]
    fn with_none_working_the_first_error_is_the_registrys() {
        let o = RegistryOutcome::decide(
            trust("r:5000"),
            vec![ep("a:1", Reason::CaKeyMismatch), ep("b:1", Reason::Timeout)],
        );
        assert!(!o.ok());
        assert_eq!(o.verdict.reason, Reason::CaKeyMismatch);
        assert_eq!(o.verdict.next_step, "ca_key_mismatch next");
        assert!(o.findings.is_empty());
        let none = RegistryOutcome::decide(trust("r"), Vec::new());
        assert_eq!(none.verdict.reason, Reason::ConfigError);
    }

    #[test]
    fn a_config_error_decides_before_any_endpoint() {
        let mut t = trust("r");
        t.config_error = Some("hosts.toml: bad".into());
        let o = RegistryOutcome::decide(t, vec![ep("r", Reason::Ok)]);
        assert!(!o.ok());
        assert_eq!(o.verdict.reason, Reason::ConfigError);
        assert_eq!(o.verdict.detail, "hosts.toml: bad");
    }
}
