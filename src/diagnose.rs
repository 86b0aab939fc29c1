//! Outcome + trust → a stable `reason`, the runtime's own error text, and the next step.
//!
//! The reason strings are an interface (metrics labels, alerts, JSON consumers): add new ones,
//! never rename. Pure: no I/O.

use std::sync::Arc;

use serde::Serialize;

use crate::cert::{hex, Cert};
use crate::probe::{Failure, ProbeResult};
use crate::trust::TrustedCa;
use crate::verify::crypto::SigError;
use crate::verify::{CandidateProblem, VerifyError};

/// Every outcome regtrust distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    Ok,
    UnknownAuthority,
    CaKeyMismatch,
    Expired,
    NotYetValid,
    CaExpired,
    CaNotYetValid,
    NameMismatch,
    UntrustedSelfSigned,
    InvalidCertificate,
    HandshakeFailed,
    NotTls,
    ConnectionRefused,
    ConnectFailed,
    DnsFailure,
    Timeout,
    ProxyError,
    HttpError,
    HttpStatus,
    ConfigError,
    TokenRealmFailed,
}

impl Reason {
    pub const ALL: &'static [Reason] = &[
        Reason::Ok,
        Reason::UnknownAuthority,
        Reason::CaKeyMismatch,
        Reason::Expired,
        Reason::NotYetValid,
        Reason::CaExpired,
        Reason::CaNotYetValid,
        Reason::NameMismatch,
        Reason::UntrustedSelfSigned,
        Reason::InvalidCertificate,
        Reason::HandshakeFailed,
        Reason::NotTls,
        Reason::ConnectionRefused,
        Reason::ConnectFailed,
        Reason::DnsFailure,
        Reason::Timeout,
        Reason::ProxyError,
        Reason::HttpError,
        Reason::HttpStatus,
        Reason::ConfigError,
        Reason::TokenRealmFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Ok => "ok",
            Reason::UnknownAuthority => "unknown_authority",
            Reason::CaKeyMismatch => "ca_key_mismatch",
            Reason::Expired => "expired",
            Reason::NotYetValid => "not_yet_valid",
            Reason::CaExpired => "ca_expired",
            Reason::CaNotYetValid => "ca_not_yet_valid",
            Reason::NameMismatch => "name_mismatch",
            Reason::UntrustedSelfSigned => "untrusted_self_signed",
            Reason::InvalidCertificate => "invalid_certificate",
            Reason::HandshakeFailed => "handshake_failed",
            Reason::NotTls => "not_tls",
            Reason::ConnectionRefused => "connection_refused",
            Reason::ConnectFailed => "connect_failed",
            Reason::DnsFailure => "dns_failure",
            Reason::Timeout => "timeout",
            Reason::ProxyError => "proxy_error",
            Reason::HttpError => "http_error",
            Reason::HttpStatus => "http_status",
            Reason::ConfigError => "config_error",
            Reason::TokenRealmFailed => "token_realm_failed",
        }
    }
}

/// What each reason means, the runtime's (Go's) own words for it, and the general next step: the
/// one table behind `regtrust reasons`, README's reason table and the diagnoses below (a diagnosis
/// may name a more precise next step when it knows more, e.g. the issuer no trusted CA is named).
impl Reason {
    /// What went wrong, in a few words.
    pub fn meaning(self) -> &'static str {
        match self {
            Reason::Ok => "`/v2/` answered 200 or 401 over verified TLS",
            Reason::UnknownAuthority => "no trusted CA issued the chain (also: missing intermediate)",
            Reason::CaKeyMismatch => "a trusted CA has the issuer's name but not its key: the CA was rotated with the same subject",
            Reason::Expired => "the serving certificate has expired",
            Reason::NotYetValid => "the serving certificate is not valid yet",
            Reason::CaExpired => "the trusted CA itself has expired",
            Reason::CaNotYetValid => "the trusted CA itself is not valid yet",
            Reason::NameMismatch => "the certificate does not name the dialled host",
            Reason::UntrustedSelfSigned => "the registry serves a self-signed certificate the node does not trust",
            Reason::InvalidCertificate => "EKU without serverAuth, unhandled critical extension, pathological chain, a presented certificate the runtime's Go cannot parse",
            Reason::HandshakeFailed => "TLS could not be negotiated (versions, ciphers, client certificate demanded)",
            Reason::NotTls => "the port does not speak TLS",
            Reason::ConnectionRefused => "nothing listens there",
            Reason::ConnectFailed => "unreachable network or host",
            Reason::DnsFailure => "the name does not resolve",
            Reason::Timeout => "a phase did not finish within `--timeout` (the detail names it)",
            Reason::ProxyError => "the HTTPS proxy refused or failed the CONNECT",
            Reason::HttpError => "TLS worked, the answer was not HTTP",
            Reason::HttpStatus => "`/v2/` answered neither 200 nor 401",
            Reason::ConfigError => "the runtime fails before dialling (a `ca` file missing or without a certificate, a `.cert` without `.key`)",
            Reason::TokenRealmFailed => "the registry answers 401 with a token service (`Bearer realm`) on another host or port, and the runtime cannot reach it with the registry's trust",
        }
    }

    /// How the runtime (Go) words this failure: the alternatives, as people search for them.
    pub fn runtime_words(self) -> &'static [&'static str] {
        match self {
            Reason::Ok => &[],
            Reason::UnknownAuthority | Reason::UntrustedSelfSigned => &["x509: certificate signed by unknown authority"],
            Reason::CaKeyMismatch => &[
                "x509: certificate signed by unknown authority (possibly because of \"crypto/rsa: verification error\" while trying to verify candidate authority certificate \"NAME\")",
                "x509: certificate signed by unknown authority (possibly because of \"x509: ECDSA verification failure\" while trying to verify candidate authority certificate \"NAME\")",
            ],
            Reason::Expired => &["x509: certificate has expired or is not yet valid: current time T is after T'"],
            Reason::NotYetValid => &["x509: certificate has expired or is not yet valid: current time T is before T'"],
            Reason::CaExpired | Reason::CaNotYetValid => &["x509: certificate signed by unknown authority (possibly because of \"x509: certificate has expired or is not yet valid: …\" while trying to verify candidate authority certificate \"NAME\")"],
            Reason::NameMismatch => &[
                "x509: certificate is valid for A, B, not HOST",
                "x509: cannot validate certificate for IP because it doesn't contain any IP SANs",
            ],
            Reason::InvalidCertificate => &[
                "x509: certificate specifies an incompatible key usage",
                "x509: unhandled critical extension",
                "tls: failed to parse certificate from server: x509: …",
            ],
            Reason::HandshakeFailed => &["remote error: tls: …"],
            Reason::NotTls => &["http: server gave HTTP response to HTTPS client", "tls: first record does not look like a TLS handshake"],
            Reason::ConnectionRefused => &["dial tcp IP:PORT: connect: connection refused"],
            Reason::ConnectFailed => &["dial tcp IP:PORT: connect: no route to host"],
            Reason::DnsFailure => &["dial tcp: lookup HOST: no such host"],
            Reason::Timeout => &["net/http: TLS handshake timeout", "i/o timeout"],
            Reason::ProxyError => &["proxyconnect tcp: …"],
            Reason::HttpError => &["EOF", "malformed HTTP response"],
            Reason::HttpStatus => &["unexpected status code 404"],
            Reason::ConfigError => &["unable to read CA cert \"F\": …", "unable to load CA cert \"F\"", "missing key …"],
            Reason::TokenRealmFailed => &[
                "failed to authorize: failed to fetch anonymous token: Get \"REALM?scope=…\": x509: …",
                "Get \"REALM?scope=…&service=…\": x509: …",
            ],
        }
    }

    /// What a person should do next (empty for `ok`).
    pub fn next_step(self) -> &'static str {
        match self {
            Reason::Ok => "",
            Reason::UnknownAuthority => "install the CA that issued the registry's certificate where the runtime reads it",
            Reason::CaKeyMismatch => "the registry's CA was replaced by a new CA with the same name and a different key: install the new CA (keep the old one beside it until the rotation is over) where the runtime reads it",
            Reason::Expired => "the registry's serving certificate has expired: renew it on the registry",
            Reason::NotYetValid => "the registry's certificate is not valid yet: check the node's clock (timedatectl) and the certificate's notBefore",
            Reason::CaExpired => "the CA the node trusts for this registry has expired: distribute the renewed CA",
            Reason::CaNotYetValid => "the CA the node trusts is not valid yet: check the node's clock and the CA's notBefore",
            Reason::NameMismatch => "the certificate does not name the host the node dials: reissue it with this name as a SAN, or pull by a name it has",
            Reason::UntrustedSelfSigned => "the registry serves a self-signed certificate the node does not trust: install that certificate as the registry's CA, or serve one from a trusted CA",
            Reason::InvalidCertificate => "the certificate chain is malformed for TLS server use (see detail): reissue it",
            Reason::HandshakeFailed => "TLS could not be negotiated: compare TLS versions/ciphers, and whether the registry demands a client certificate",
            Reason::NotTls => "the port does not speak TLS: is it plain HTTP, or the wrong port? (an http registry must be configured as such for the runtime)",
            Reason::ConnectionRefused => "the registry is not listening on that address/port: check the registry service and the port in the image reference",
            Reason::ConnectFailed => "check routing and firewalls between the node and the registry",
            Reason::DnsFailure => "check the registry name and the node's resolver (/etc/resolv.conf, hostNetwork)",
            Reason::Timeout => "the registry or the network is not answering: check firewalls, load balancers and the registry's health",
            Reason::ProxyError => "check HTTPS_PROXY/NO_PROXY for the runtime and the proxy itself",
            Reason::HttpError => "TLS worked but the registry did not answer HTTP properly: check the registry or what sits in front of it",
            Reason::HttpStatus => "the endpoint is not a registry API root (wrong path, override_path, or a proxy page)",
            Reason::ConfigError => crate::outcome::CONFIG_ERROR_NEXT_STEP,
            Reason::TokenRealmFailed => "every pull asks the registry's token service first, with the registry's trust: install the CA of the realm's certificate where the runtime reads this registry's CAs, or fix the realm's certificate or address in the registry's auth configuration",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The incident's evidence: the trusted CA has the issuer's name but not its key.
#[derive(Debug, Clone, Serialize)]
pub struct KeyMismatch {
    /// Subject shared by the presented issuer and the trusted CA.
    pub subject: String,
    /// The certificate the registry presented whose signature failed.
    pub presented_cert_sha256: String,
    /// Key id of the CA that really signed it (AKID of the presented certificate), if present.
    pub presented_issuer_key_id: Option<String>,
    /// SHA-256 of the presented issuer certificate, when the registry sent it.
    pub presented_issuer_sha256: Option<String>,
    /// The trusted CA(s) with that subject: (sha256, key id, source).
    pub trusted: Vec<TrustedSameName>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TrustedSameName {
    pub sha256: String,
    pub key_id: Option<String>,
    pub source: String,
}

/// A diagnosis of one endpoint.
#[derive(Debug, Clone, Serialize)]
pub struct Diagnosis {
    pub reason: Reason,
    /// The error as the runtime (Go) words it.
    pub detail: String,
    /// What a person should do next.
    pub next_step: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_mismatch: Option<KeyMismatch>,
}

/// Diagnoses one probe. `trusted` maps a root certificate to its source for the evidence.
pub fn diagnose(probe: &ProbeResult, trusted: &[TrustedCa]) -> Diagnosis {
    let d = |reason, detail: String, next: &str| Diagnosis {
        reason,
        detail,
        next_step: next.into(),
        key_mismatch: None,
    };
    let failure = match &probe.result {
        Ok(()) => {
            return d(
                Reason::Ok,
                format!("{} answered {}", probe.url, probe.http_status.unwrap_or(0)),
                "",
            )
        }
        Err(f) => f,
    };
    match failure {
        Failure::Dns(e) => d(Reason::DnsFailure, e.clone(), Reason::DnsFailure.next_step()),
        Failure::Refused(e) => d(Reason::ConnectionRefused, e.clone(), Reason::ConnectionRefused.next_step()),
        Failure::Connect(e) => d(Reason::ConnectFailed, e.clone(), Reason::ConnectFailed.next_step()),
        Failure::Timeout(phase) => d(
            Reason::Timeout,
            format!("no answer within the timeout during {}", phase.as_str()),
            Reason::Timeout.next_step(),
        ),
        Failure::Proxy(e) => d(Reason::ProxyError, e.clone(), Reason::ProxyError.next_step()),
        Failure::NotTls(e) => d(Reason::NotTls, e.clone(), Reason::NotTls.next_step()),
        Failure::Handshake(e) => d(Reason::HandshakeFailed, e.clone(), Reason::HandshakeFailed.next_step()),
        Failure::BadCertificate(e) => d(
            Reason::InvalidCertificate,
            format!("Get \"{}\": {e}", probe.url),
            "the runtime's Go cannot use a certificate the registry sends, even with skip_verify (see detail): reissue it (the detail names what Go refuses)",
        ),
        Failure::Http(e) => d(Reason::HttpError, e.clone(), Reason::HttpError.next_step()),
        Failure::HttpStatus { code, location: Some(loc) } if (300..400).contains(code) => d(
            Reason::HttpStatus,
            format!("GET {} returned {code}, redirecting to {loc:?}; a registry answers /v2/ with 200 or 401 (Go's client does not follow a {code})", probe.url),
            "a proxy or load balancer redirects the API root: point the runtime (hosts.toml server or [host]) at the final registry URL",
        ),
        Failure::HttpStatus { code, .. } => d(
            Reason::HttpStatus,
            format!("GET {} returned {code}; a registry answers /v2/ with 200 or 401", probe.url),
            Reason::HttpStatus.next_step(),
        ),
        Failure::Redirect { chain, failure } => d(
            Reason::HttpStatus,
            format!(
                "{} (after following {}: {})",
                words_at(chain.last().map_or(probe.url.as_str(), String::as_str), failure, trusted),
                plural(chain.len() - 1, "redirect"),
                chain.join(" → ")
            ),
            "the API root redirects and the runtime follows with this registry's trust (see detail): fix or trust the redirect target where the runtime reads this registry's CAs, or point the runtime at the final URL",
        ),
        Failure::TokenRealm { realm, failure } => d(
            Reason::TokenRealmFailed,
            format!(
                "failed to authorize: failed to fetch anonymous token: {}",
                words_at(realm, failure, trusted)
            ),
            Reason::TokenRealmFailed.next_step(),
        ),
        Failure::Verify(v) => diagnose_verify(v, probe, trusted),
    }
}

/// How Go words `failure` of a request to `url` (a redirect hop, a token realm).
fn words_at(url: &str, failure: &Failure, trusted: &[TrustedCa]) -> String {
    let at = ProbeResult::new(url.to_string(), Err(failure.clone()));
    let detail = diagnose(&at, trusted).detail;
    if detail.starts_with("Get \"") {
        detail
    } else {
        format!("Get \"{url}\": {detail}")
    }
}

fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

fn tls_prefix(probe: &ProbeResult) -> String {
    format!("Get \"{}\": tls: failed to verify certificate: ", probe.url)
}

fn diagnose_verify(v: &VerifyError, probe: &ProbeResult, trusted: &[TrustedCa]) -> Diagnosis {
    let detail = format!("{}{v}", tls_prefix(probe));
    let mk = |reason, next: &str| Diagnosis {
        reason,
        detail: detail.clone(),
        next_step: next.into(),
        key_mismatch: None,
    };
    match v {
        VerifyError::LeafTime { now, not_after, .. } if now > not_after => {
            mk(Reason::Expired, Reason::Expired.next_step())
        }
        VerifyError::LeafTime { .. } => mk(Reason::NotYetValid, Reason::NotYetValid.next_step()),
        VerifyError::Hostname(_) => mk(Reason::NameMismatch, Reason::NameMismatch.next_step()),
        VerifyError::UnknownAuthority {
            cert,
            hint: Some(h),
        } => match &h.problem {
            // Not a rotated CA: its key is too small for this Go (go1.24's rsa1024min).
            CandidateProblem::Signature(SigError::RsaTooSmall(_)) => mk(
                Reason::InvalidCertificate,
                "the trusted CA's RSA key is under 1024 bits, which the runtime's Go (1.24 and later) refuses unless GODEBUG=rsa1024min=0: reissue the CA with a key of 2048 bits or more",
            ),
            CandidateProblem::Signature(_) => {
                let mut diag = mk(Reason::CaKeyMismatch, Reason::CaKeyMismatch.next_step());
                diag.key_mismatch = Some(key_mismatch(cert, probe, trusted));
                diag
            }
            CandidateProblem::Time { now, not_after, .. } if now > not_after => {
                mk(Reason::CaExpired, Reason::CaExpired.next_step())
            }
            CandidateProblem::Time { .. } => {
                mk(Reason::CaNotYetValid, Reason::CaNotYetValid.next_step())
            }
            _ => mk(
                Reason::UnknownAuthority,
                "a trusted CA has the issuer's name but cannot sign this certificate (see detail)",
            ),
        },
        VerifyError::UnknownAuthority { cert, hint: None } => {
            if cert.is_self_issued() && probe.presented.first().is_some_and(|l| l.der == cert.der) {
                mk(
                    Reason::UntrustedSelfSigned,
                    Reason::UntrustedSelfSigned.next_step(),
                )
            } else if !probe
                .presented
                .iter()
                .any(|p| p.raw_subject == cert.raw_issuer)
                && !cert.is_self_issued()
            {
                mk(
                    Reason::UnknownAuthority,
                    &format!(
                        "no trusted CA is named {:?}, and the registry did not send that certificate: install the CA that issued the registry's certificate, or have the registry send its intermediate",
                        cert.issuer
                    ),
                )
            } else {
                mk(
                    Reason::UnknownAuthority,
                    Reason::UnknownAuthority.next_step(),
                )
            }
        }
        VerifyError::NameConstraint(_) => mk(
            Reason::InvalidCertificate,
            "a trusted root or intermediate has name constraints that do not allow a name of the registry's certificate (see detail): reissue the certificate with names the CA may sign, or have the CA's constraints widened",
        ),
        VerifyError::IncompatibleUsage
        | VerifyError::UnhandledCritical
        | VerifyError::TooManySignatureChecks => mk(
            Reason::InvalidCertificate,
            Reason::InvalidCertificate.next_step(),
        ),
    }
}

fn key_mismatch(cert: &Arc<Cert>, probe: &ProbeResult, trusted: &[TrustedCa]) -> KeyMismatch {
    KeyMismatch {
        subject: cert.issuer.clone(),
        presented_cert_sha256: cert.sha256.clone(),
        presented_issuer_key_id: cert.akid.as_deref().map(hex),
        presented_issuer_sha256: probe
            .presented
            .iter()
            .find(|p| p.raw_subject == cert.raw_issuer && p.der != cert.der)
            .map(|p| p.sha256.clone()),
        trusted: trusted
            .iter()
            .filter(|ca| ca.cert.raw_subject == cert.raw_issuer)
            .map(|ca| TrustedSameName {
                sha256: ca.cert.sha256.clone(),
                key_id: ca.cert.skid.as_deref().map(hex),
                source: ca.source.clone(),
            })
            .collect(),
    }
}
