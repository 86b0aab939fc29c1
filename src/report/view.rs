//! The serializable view of an outcome: the `--output json` schema documented in README (and the
//! model the text and HTML views render). Built from [`crate::outcome`]; nothing reads it back.

use serde::Serialize;

use crate::cert::{rfc3339, CertInfo};
use crate::diagnose::{KeyMismatch, Reason};
use crate::outcome::{CheckOutcome, EndpointOutcome, IssuerId, RegistryOutcome};
use crate::probe::{Timings, TlsSession};
use crate::trust::runtime_version::RuntimeInfo;
use crate::trust::{Finding, PullKind, Runtime, TrustedCa};

/// A trusted CA as reported.
#[derive(Debug, Clone, Serialize)]
pub struct TrustedCaInfo {
    pub sha256: String,
    pub subject: String,
    pub source: String,
    pub not_after: String,
}

impl From<&TrustedCa> for TrustedCaInfo {
    fn from(ca: &TrustedCa) -> Self {
        TrustedCaInfo {
            sha256: ca.cert.sha256.clone(),
            subject: ca.cert.subject.clone(),
            source: ca.source.to_string(),
            not_after: rfc3339(ca.cert.not_after),
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
    /// Configured CAs, plus any system root named like an issuer in the presented chain.
    pub trusted_cas: Vec<TrustedCaInfo>,
    pub system_roots: usize,
    pub skip_verify: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_mismatch: Option<KeyMismatch>,
    pub timings_ms: Timings,
    /// What the TLS handshake negotiated and which stack completed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSession>,
}

impl From<&EndpointOutcome> for EndpointReport {
    fn from(e: &EndpointOutcome) -> Self {
        let probe = e.probe.as_ref();
        EndpointReport {
            endpoint: e.url(),
            origin: e.endpoint.origin.clone(),
            ok: e.ok(),
            reason: e.reason(),
            detail: e.diagnosis.detail.clone(),
            next_step: e.diagnosis.next_step.clone(),
            http_status: probe.and_then(|p| p.http_status),
            presented_chain: e.presented().iter().map(|c| c.info()).collect(),
            presented_issuer: e.presented_issuer(),
            trusted_cas: e.trusted.iter().map(TrustedCaInfo::from).collect(),
            system_roots: e.system_roots,
            skip_verify: e.endpoint.skip_verify,
            proxy: probe.and_then(|p| p.via_proxy.clone()),
            key_mismatch: e.diagnosis.key_mismatch.clone(),
            timings_ms: probe.map(|p| p.timings.clone()).unwrap_or_default(),
            tls: probe.and_then(|p| p.tls.clone()),
        }
    }
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

impl From<&RegistryOutcome> for RegistryReport {
    fn from(r: &RegistryOutcome) -> Self {
        RegistryReport {
            registry: r.trust.registry.clone(),
            runtime: r.trust.runtime,
            host_dir: r.trust.host_dir.clone(),
            ok: r.ok(),
            reason: r.verdict.reason,
            detail: r.verdict.detail.clone(),
            next_step: r.verdict.next_step.clone(),
            findings: r.findings.clone(),
            endpoints: r.endpoints.iter().map(EndpointReport::from).collect(),
        }
    }
}

/// The whole check.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub registries: Vec<RegistryReport>,
    /// Findings about the node as a whole (containerd config, system roots).
    pub findings: Vec<Finding>,
    /// The runtime version and Go version the verdicts follow, with their sources.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime: Option<RuntimeInfo>,
    /// The kind of pull modelled: `tag` (hosts with pull and resolve) or `digest`.
    pub pull: PullKind,
}

impl From<&CheckOutcome> for Report {
    fn from(c: &CheckOutcome) -> Self {
        Report {
            registries: c.registries.iter().map(RegistryReport::from).collect(),
            findings: c.findings.clone(),
            runtime: c.runtime.clone(),
            pull: c.pull,
        }
    }
}
