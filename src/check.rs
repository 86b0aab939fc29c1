//! The one-shot check: for each registry, the runtime's endpoints probed with the runtime's trust,
//! and a verdict reached the way the runtime reaches it — endpoints in order, the first that works
//! wins; earlier failures are `degraded` findings; when none works, the first endpoint's error is
//! the registry's (containerd reports the first error).
//!
//! Never does: writes. Network I/O only through [`crate::probe`].

use std::collections::HashSet;
use std::sync::Arc;

use serde::Serialize;

use crate::cert::{rfc3339, Cert, CertInfo};
use crate::diagnose::{self, Diagnosis, KeyMismatch, Reason};
use crate::probe::{self, ProbeSettings, Timings};
use crate::trust::{
    self, ConfigError, Finding, FindingKind, RegistryTrust, Runtime, SystemRoots, TrustLoader,
    TrustSettings,
};

/// Most endpoint probes in flight at once.
pub const MAX_CONCURRENT_PROBES: usize = 16;

/// A trusted CA as reported.
#[derive(Debug, Clone, Serialize)]
pub struct TrustedCaInfo {
    pub sha256: String,
    pub subject: String,
    pub source: String,
    pub not_after: String,
    #[serde(skip)]
    pub not_after_unix: i64,
}

/// Who issued the presented leaf: the issuing certificate's SHA-256 when it is known (verified
/// chain, or sent by the registry), else the key id the leaf names (AKID).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
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
}

/// One endpoint's result.
#[derive(Debug, Clone, Serialize)]
pub struct EndpointReport {
    pub endpoint: String,
    pub origin: String,
    pub ok: bool,
    pub reason: Reason,
    pub detail: String,
    pub next_step: String,
    pub http_status: Option<u16>,
    pub presented_chain: Vec<CertInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presented_issuer: Option<IssuerId>,
    /// The presented certificates themselves (for staging from a pinned fingerprint).
    #[serde(skip)]
    pub presented_certs: Vec<Arc<Cert>>,
    /// Configured CAs, plus any system root named like an issuer in the presented chain.
    pub trusted_cas: Vec<TrustedCaInfo>,
    pub system_roots: usize,
    pub skip_verify: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_mismatch: Option<KeyMismatch>,
    pub timings_ms: Timings,
}

/// One registry's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct RegistryReport {
    pub registry: String,
    pub runtime: Runtime,
    pub host_dir: Option<String>,
    pub ok: bool,
    pub reason: Reason,
    pub detail: String,
    pub next_step: String,
    pub findings: Vec<Finding>,
    pub endpoints: Vec<EndpointReport>,
}

/// The whole check.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub registries: Vec<RegistryReport>,
    /// Findings about the node as a whole (containerd config, system roots).
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn all_ok(&self) -> bool {
        self.registries.iter().all(|r| r.ok)
    }
}

/// Runs the check for `registries`, or for every configured registry when none is given.
pub async fn run(
    settings: &TrustSettings,
    registries: &[String],
    probe_settings: &ProbeSettings,
) -> Result<Report, ConfigError> {
    let loader = TrustLoader::new(settings)?;
    let (registries, skipped) = if registries.is_empty() {
        let discovery = loader.discover();
        (discovery.registries, discovery.findings)
    } else {
        (registries.to_vec(), Vec::new())
    };
    let system = Arc::new(trust::system::load(&settings.host_root));
    let mut findings = system.findings.clone();
    findings.extend_from_slice(loader.findings());
    findings.extend(skipped);
    let sem = Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_PROBES));
    let mut tasks = Vec::new();
    for reg in &registries {
        let rt = loader.registry(reg);
        let system = system.clone();
        let ps = probe_settings.clone();
        let sem = sem.clone();
        tasks.push(tokio::spawn(async move {
            check_registry(rt, &system, &ps, &sem).await
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        match t.await {
            Ok(r) => out.push(r),
            Err(e) => tracing::error!(error = %e, "a registry check task failed"),
        }
    }
    Ok(Report {
        registries: out,
        findings,
    })
}

/// Probes every endpoint of one registry (concurrently) and reaches the runtime's verdict.
pub async fn check_registry(
    rt: RegistryTrust,
    system: &SystemRoots,
    ps: &ProbeSettings,
    sem: &tokio::sync::Semaphore,
) -> RegistryReport {
    let mut findings = rt.findings.clone();
    if let Some(err) = &rt.config_error {
        let endpoints = rt
            .endpoints
            .iter()
            .map(|ep| EndpointReport {
                endpoint: ep.url(),
                origin: ep.origin.clone(),
                ok: false,
                reason: Reason::ConfigError,
                detail: err.clone(),
                next_step: String::new(),
                http_status: None,
                presented_chain: Vec::new(),
                presented_issuer: None,
                presented_certs: Vec::new(),
                trusted_cas: configured(ep),
                system_roots: system.cas.len(),
                skip_verify: ep.skip_verify,
                proxy: None,
                key_mismatch: None,
                timings_ms: Timings::default(),
            })
            .collect();
        return RegistryReport {
            registry: rt.registry,
            runtime: rt.runtime,
            host_dir: rt.host_dir,
            ok: false,
            reason: Reason::ConfigError,
            detail: err.clone(),
            next_step: "the runtime fails before dialling: fix the file named in the detail".into(),
            findings,
            endpoints,
        };
    }
    let probes = rt.endpoints.iter().map(|ep| {
        let roots = pool(system, ep);
        async move {
            let _permit = sem.acquire().await;
            let roots_arc = Arc::new(roots.iter().map(|(c, _)| c.clone()).collect::<Vec<_>>());
            let res = probe::probe(ep, roots_arc, ps).await;
            let diag = diagnose::diagnose(&res, &roots);
            endpoint_report(ep, &res, diag, &roots, system.cas.len())
        }
    });
    let endpoints: Vec<EndpointReport> = futures_util::future::join_all(probes).await;
    let first_ok = endpoints.iter().position(|e| e.ok);
    let (ok, reason, detail, next_step) = match first_ok {
        Some(i) => {
            for e in &endpoints[..i] {
                findings.push(Finding::new(
                    FindingKind::Degraded,
                    None,
                    format!(
                        "{} fails ({}: {}) and the runtime falls through to {}",
                        e.endpoint, e.reason, e.detail, endpoints[i].endpoint
                    ),
                ));
            }
            (
                true,
                Reason::Ok,
                format!("pulls via {}", endpoints[i].endpoint),
                String::new(),
            )
        }
        None => match endpoints.first() {
            Some(e) => (false, e.reason, e.detail.clone(), e.next_step.clone()),
            None => (
                false,
                Reason::ConfigError,
                "no endpoint to pull from".into(),
                "configure a pull-capable host".into(),
            ),
        },
    };
    RegistryReport {
        registry: rt.registry,
        runtime: rt.runtime,
        host_dir: rt.host_dir,
        ok,
        reason,
        detail,
        next_step,
        findings,
        endpoints,
    }
}

/// The endpoint's trust pool: system roots then configured CAs, deduplicated, with sources.
pub fn pool(system: &SystemRoots, ep: &trust::Endpoint) -> Vec<(Arc<Cert>, String)> {
    let mut seen = HashSet::new();
    system
        .cas
        .iter()
        .chain(&ep.cas)
        .filter(|ca| seen.insert(ca.cert.sha256.clone()))
        .map(|ca| (ca.cert.clone(), ca.source.clone()))
        .collect()
}

fn configured(ep: &trust::Endpoint) -> Vec<TrustedCaInfo> {
    ep.cas
        .iter()
        .map(|ca| ca_info(&ca.cert, &ca.source))
        .collect()
}

fn ca_info(c: &Cert, source: &str) -> TrustedCaInfo {
    TrustedCaInfo {
        sha256: c.sha256.clone(),
        subject: c.subject.clone(),
        source: source.to_string(),
        not_after: rfc3339(c.not_after),
        not_after_unix: c.not_after,
    }
}

/// The presented leaf's issuer, as precisely as the probe can tell.
pub fn presented_issuer(res: &probe::ProbeResult) -> Option<IssuerId> {
    let leaf = res.presented.first()?;
    let sent = res
        .presented
        .iter()
        .skip(1)
        .find(|c| c.raw_subject == leaf.raw_issuer)
        .map(|c| c.sha256.clone());
    let sha256 = res.verified_issuer_sha256.clone().or(sent);
    let key_id = leaf.akid.as_deref().map(crate::cert::hex);
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

fn endpoint_report(
    ep: &trust::Endpoint,
    res: &probe::ProbeResult,
    diag: Diagnosis,
    roots: &[(Arc<Cert>, String)],
    system_roots: usize,
) -> EndpointReport {
    let mut trusted = configured(ep);
    for (c, src) in roots {
        let relevant = res.presented.iter().any(|p| p.raw_issuer == c.raw_subject);
        if relevant && !trusted.iter().any(|t| t.sha256 == c.sha256) {
            trusted.push(ca_info(c, src));
        }
    }
    EndpointReport {
        endpoint: res.url.clone(),
        origin: ep.origin.clone(),
        ok: diag.reason == Reason::Ok,
        reason: diag.reason,
        detail: diag.detail,
        next_step: diag.next_step,
        http_status: res.http_status,
        presented_chain: res.presented.iter().map(|c| c.info()).collect(),
        presented_issuer: presented_issuer(res),
        presented_certs: res.presented.clone(),
        trusted_cas: trusted,
        system_roots,
        skip_verify: ep.skip_verify,
        proxy: res.via_proxy.clone(),
        key_mismatch: diag.key_mismatch,
        timings_ms: res.timings.clone(),
    }
}
