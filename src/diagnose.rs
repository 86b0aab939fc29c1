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
use crate::verify::{
    hint_name, CandidateProblem, CannotSign, Hint, Kind, VerifyError, VerifyErrorKind,
};

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
    InsecureSignature,
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
        Reason::InsecureSignature,
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
            Reason::InsecureSignature => "insecure_signature",
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
            Reason::CaKeyMismatch => "a trusted CA has the issuer's name but its key does not verify the signature: the CA was rotated with the same subject",
            Reason::Expired => "the serving certificate has expired",
            Reason::NotYetValid => "the serving certificate is not valid yet",
            Reason::CaExpired => "the trusted CA itself has expired (Go returns the CA's expiry error, not unknown authority)",
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
            Reason::InsecureSignature => "a certificate of the chain is signed with an algorithm or key the runtime's Go refuses (SHA-1, MD5, an unimplemented algorithm, RSA under 1024 bits from go1.24)",
        }
    }

    /// How the runtime (Go) words this failure: the alternatives, as people search for them.
    pub fn runtime_words(self) -> &'static [&'static str] {
        match self {
            Reason::Ok => &[],
            Reason::UnknownAuthority => &[
                "x509: certificate signed by unknown authority",
                "x509: certificate signed by unknown authority (possibly because of \"x509: invalid signature: parent certificate cannot sign this kind of certificate\" while trying to verify candidate authority certificate \"NAME\")",
            ],
            Reason::UntrustedSelfSigned => &["x509: certificate signed by unknown authority"],
            Reason::CaKeyMismatch => &[
                "x509: certificate signed by unknown authority (possibly because of \"crypto/rsa: verification error\" while trying to verify candidate authority certificate \"NAME\")",
                "x509: certificate signed by unknown authority (possibly because of \"x509: ECDSA verification failure\" while trying to verify candidate authority certificate \"NAME\")",
                "x509: certificate signed by unknown authority (possibly because of \"x509: signature algorithm specifies an ECDSA public key, but have public key of type *rsa.PublicKey\" while trying to verify candidate authority certificate \"NAME\")",
            ],
            Reason::Expired => &["x509: certificate has expired or is not yet valid: current time T is after T'"],
            Reason::NotYetValid => &["x509: certificate has expired or is not yet valid: current time T is before T'"],
            Reason::CaExpired => &["x509: certificate has expired or is not yet valid: current time T is after T'"],
            Reason::CaNotYetValid => &["x509: certificate has expired or is not yet valid: current time T is before T'"],
            Reason::NameMismatch => &[
                "x509: certificate is valid for A, B, not HOST",
                "x509: cannot validate certificate for IP because it doesn't contain any IP SANs",
            ],
            Reason::InvalidCertificate => &[
                "x509: certificate specifies an incompatible key usage",
                "x509: unhandled critical extension",
                "x509: too many intermediates for path length constraint",
                "x509: certificate is not authorized to sign other certificates",
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
            Reason::InsecureSignature => &[
                "x509: certificate signed by unknown authority (possibly because of \"x509: cannot verify signature: insecure algorithm SHA1-RSA (temporarily override with GODEBUG=x509sha1=1)\" while trying to verify candidate authority certificate \"NAME\")",
                "x509: certificate signed by unknown authority (possibly because of \"x509: cannot verify signature: algorithm unimplemented\" while trying to verify candidate authority certificate \"NAME\")",
                "x509: certificate signed by unknown authority (possibly because of \"crypto/rsa: 512-bit keys are insecure (see https://go.dev/pkg/crypto/rsa#hdr-Minimum_key_size)\" while trying to verify candidate authority certificate \"NAME\")",
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
            Reason::InsecureSignature => "reissue the certificate named in the detail with a SHA-256 (or stronger) signature, by a CA with an RSA key of at least 2048 bits or an ECDSA key; installing another CA does not help",
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
        Failure::HttpAnswer => d(Reason::NotTls, crate::probe::first_record::HTTP_ANSWER.into(), Reason::NotTls.next_step()),
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

fn diagnose_verify(v: &VerifyError, probe: &ProbeResult, trusted: &[TrustedCa]) -> Diagnosis {
    // net/http's `Get "URL": ` and crypto/tls's words for the runtime's Go.
    let detail = format!("Get \"{}\": {}", probe.url, v.tls_text());
    let mk = |reason: Reason, next: &str| Diagnosis {
        reason,
        detail: detail.clone(),
        next_step: next.into(),
        key_mismatch: None,
    };
    match &v.kind {
        VerifyErrorKind::LeafTime { now, not_after, .. } if now > not_after => {
            mk(Reason::Expired, Reason::Expired.next_step())
        }
        VerifyErrorKind::LeafTime { .. } => {
            mk(Reason::NotYetValid, Reason::NotYetValid.next_step())
        }
        VerifyErrorKind::Hostname(_) => mk(Reason::NameMismatch, Reason::NameMismatch.next_step()),
        VerifyErrorKind::UnknownAuthority {
            cert,
            hint: Some(h),
        } => diagnose_hint(cert, h, probe, trusted, mk),
        VerifyErrorKind::UnknownAuthority { cert, hint: None } => {
            if cert.is_self_issued() && probe.presented.first().is_some_and(|l| l.der == cert.der) {
                mk(
                    Reason::UntrustedSelfSigned,
                    Reason::UntrustedSelfSigned.next_step(),
                )
            } else if !probe
                .presented
                .iter()
                .any(|p| p.raw_subject() == cert.raw_issuer())
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
        VerifyErrorKind::Candidate {
            cert,
            kind,
            problem,
        } => diagnose_candidate(cert, *kind, problem, mk),
        VerifyErrorKind::NameConstraint(_) => mk(
            Reason::InvalidCertificate,
            "a trusted root or intermediate has name constraints that do not allow a name of the registry's certificate (see detail): reissue the certificate with names the CA may sign, or have the CA's constraints widened",
        ),
        VerifyErrorKind::IncompatibleUsage
        | VerifyErrorKind::UnhandledCritical
        | VerifyErrorKind::TooManySignatureChecks => mk(
            Reason::InvalidCertificate,
            Reason::InvalidCertificate.next_step(),
        ),
    }
}

/// Unknown authority with Go's hint: the candidate's signature check failed, and why decides
/// the reason (a trusted CA's wrong key is the incident; an algorithm Go refuses is not).
fn diagnose_hint(
    cert: &Arc<Cert>,
    h: &Hint,
    probe: &ProbeResult,
    trusted: &[TrustedCa],
    mk: impl Fn(Reason, &str) -> Diagnosis,
) -> Diagnosis {
    let is_trusted = |c: &Cert| trusted.iter().any(|ca| ca.cert.der == c.der);
    match &h.problem {
        CandidateProblem::Signature(e) if e.is_wrong_key() && is_trusted(&h.candidate) => {
            let mut diag = mk(Reason::CaKeyMismatch, Reason::CaKeyMismatch.next_step());
            diag.key_mismatch = Some(key_mismatch(cert, probe, trusted));
            diag
        }
        CandidateProblem::Signature(e) if e.is_wrong_key() => mk(
            Reason::UnknownAuthority,
            &format!(
                "the registry sends an intermediate {:?} that did not sign {:?} (its key does not verify the signature): serve the intermediate that issued the certificate",
                hint_name(&h.candidate),
                cert.short_name
            ),
        ),
        CandidateProblem::Signature(e) => mk(
            Reason::InsecureSignature,
            &insecure_next_step(e, cert, &h.candidate),
        ),
        CandidateProblem::CannotSign(why) => {
            let who = if is_trusted(&h.candidate) {
                "the trusted CA"
            } else {
                "the intermediate the registry sends,"
            };
            let what = match why {
                CannotSign::NoBasicConstraints => "is a v3 certificate without basicConstraints",
                CannotSign::NotCa => "has basicConstraints CA:FALSE",
                CannotSign::NoKeyCertSign => "has a keyUsage without keyCertSign",
            };
            mk(
                Reason::UnknownAuthority,
                &format!(
                    "{who} {:?} has the issuer's name but may not sign certificates: it {what}. Reissue that CA with basicConstraints CA:TRUE and keyUsage keyCertSign (and install the reissued CA where the runtime reads it)",
                    hint_name(&h.candidate)
                ),
            )
        }
        // Not produced (isValid errors are returned as themselves), kept for completeness.
        _ => mk(Reason::UnknownAuthority, Reason::UnknownAuthority.next_step()),
    }
}

/// The next step for a signature Go refuses: what to reissue depends on whose fault it is.
fn insecure_next_step(e: &SigError, child: &Cert, parent: &Cert) -> String {
    match e {
        SigError::Insecure { alg, .. } => format!(
            "{:?} is signed with {alg}, which the runtime's Go refuses whatever CA is trusted: reissue it with a SHA-256 (or stronger) signature",
            child.short_name
        ),
        SigError::RsaTooSmall(bits) => format!(
            "the CA {:?} has a {bits}-bit RSA key, which the runtime's Go (1.24 and later) refuses: reissue that CA with an RSA key of at least 2048 bits or an ECDSA key, and the certificates it issued",
            parent.short_name
        ),
        _ => format!(
            "{:?} is signed with an algorithm, or by a CA {:?} with a key type, the runtime's Go does not implement: reissue them with RSA (2048 bits or more), ECDSA or Ed25519, and SHA-256 or stronger",
            child.short_name, parent.short_name
        ),
    }
}

/// A parent candidate that passed the signature check and failed Go's `isValid`.
fn diagnose_candidate(
    cert: &Cert,
    kind: Kind,
    problem: &CandidateProblem,
    mk: impl Fn(Reason, &str) -> Diagnosis,
) -> Diagnosis {
    let name = &cert.short_name;
    match (kind, problem) {
        (Kind::Root, CandidateProblem::Time { now, not_after, .. }) if now > not_after => mk(
            Reason::CaExpired,
            &format!("the trusted CA {name:?} has expired: distribute the renewed CA (same key, new validity) where the runtime reads it"),
        ),
        (Kind::Root, CandidateProblem::Time { .. }) => mk(
            Reason::CaNotYetValid,
            &format!("the trusted CA {name:?} is not valid yet: check the node's clock and the CA's notBefore"),
        ),
        (Kind::Intermediate, CandidateProblem::Time { now, not_after, .. }) if now > not_after => mk(
            Reason::Expired,
            &format!("the intermediate {name:?} the registry sends has expired: renew it and serve the new chain"),
        ),
        (Kind::Intermediate, CandidateProblem::Time { .. }) => mk(
            Reason::NotYetValid,
            &format!("the intermediate {name:?} the registry sends is not valid yet: check the node's clock and its notBefore"),
        ),
        (_, CandidateProblem::TooManyIntermediates) => mk(
            Reason::InvalidCertificate,
            &format!("the CA {name:?} has a path length constraint (pathlen) that allows fewer intermediates below it than the chain has: reissue that CA with a larger pathlen, or issue the registry's certificate closer to it"),
        ),
        (_, CandidateProblem::NotAuthorizedToSign) => mk(
            Reason::InvalidCertificate,
            &format!("the intermediate {name:?} the registry sends is not a CA (no basicConstraints CA:TRUE): serve a chain whose intermediates are CA certificates"),
        ),
        _ => mk(
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
            .find(|p| p.raw_subject() == cert.raw_issuer() && p.der != cert.der)
            .map(|p| p.sha256.clone()),
        trusted: trusted
            .iter()
            .filter(|ca| ca.cert.raw_subject() == cert.raw_issuer())
            .map(|ca| TrustedSameName {
                sha256: ca.cert.sha256.clone(),
                key_id: ca.cert.skid.as_deref().map(hex),
                source: ca.source.to_string(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::crypto::SigError;
    use crate::verify::{GoVersion, Hint};

    fn cert(cn: &str) -> Arc<Cert> {
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        let key = rcgen::KeyPair::generate().unwrap();
        Arc::new(Cert::from_der(p.self_signed(&key).unwrap().der()).unwrap())
    }

    fn diag(kind: VerifyErrorKind, go: GoVersion, trusted: &[Arc<Cert>]) -> Diagnosis {
        let probe = ProbeResult::new(
            "https://r.test/v2/".into(),
            Err(Failure::Verify(VerifyError { kind, go })),
        );
        let trusted: Vec<TrustedCa> = trusted
            .iter()
            .map(|c| TrustedCa {
                cert: c.clone(),
                source: "/etc/containerd/certs.d/r.test/ca.crt".into(),
            })
            .collect();
        diagnose(&probe, &trusted)
    }

    fn hinted(
        leaf: &Arc<Cert>,
        candidate: &Arc<Cert>,
        problem: CandidateProblem,
    ) -> VerifyErrorKind {
        VerifyErrorKind::UnknownAuthority {
            cert: leaf.clone(),
            hint: Some(Hint {
                candidate: candidate.clone(),
                problem,
            }),
        }
    }

    const GO119: GoVersion = GoVersion::new(19, 8);

    #[test]
    fn the_detail_carries_crypto_tls_prefix_only_from_go1_20() {
        let d = |go| diag(VerifyErrorKind::UnhandledCritical, go, &[]).detail;
        assert_eq!(
            d(GO119),
            "Get \"https://r.test/v2/\": x509: unhandled critical extension"
        );
        assert_eq!(
            d(GoVersion::new(20, 0)),
            "Get \"https://r.test/v2/\": tls: failed to verify certificate: x509: unhandled critical extension"
        );
    }

    #[test]
    fn ca_key_mismatch_only_when_a_trusted_cas_key_fails_the_signature() {
        let (leaf, ca) = (cert("leaf"), cert("CA"));
        let wrong_key = || CandidateProblem::Signature(SigError::RsaVerification);
        let d = diag(
            hinted(&leaf, &ca, wrong_key()),
            GO119,
            std::slice::from_ref(&ca),
        );
        assert_eq!(d.reason, Reason::CaKeyMismatch);
        assert!(d.key_mismatch.is_some());
        // The same failure by an intermediate the registry sent: not a replaced CA.
        let d = diag(hinted(&leaf, &ca, wrong_key()), GO119, &[]);
        assert_eq!(d.reason, Reason::UnknownAuthority);
        assert!(
            d.next_step.contains("intermediate \"CA\""),
            "{}",
            d.next_step
        );
        // A SHA-1 signature by the right, trusted CA: the motivating defect.
        let sha1 = CandidateProblem::Signature(SigError::Insecure {
            alg: "SHA1-RSA",
            x509sha1_hint: true,
        });
        let d = diag(hinted(&leaf, &ca, sha1), GO119, std::slice::from_ref(&ca));
        assert_eq!(d.reason, Reason::InsecureSignature);
        assert!(d.key_mismatch.is_none());
        assert!(d.next_step.contains("SHA1-RSA"), "{}", d.next_step);
        let small = CandidateProblem::Signature(SigError::RsaTooSmall(512));
        let d = diag(
            hinted(&leaf, &ca, small),
            GoVersion::new(24, 0),
            std::slice::from_ref(&ca),
        );
        assert_eq!(d.reason, Reason::InsecureSignature);
        assert!(
            d.next_step.contains("the CA \"CA\" has a 512-bit RSA key"),
            "{}",
            d.next_step
        );
    }

    #[test]
    fn a_ca_that_may_not_sign_is_named_with_what_forbids_it() {
        let (leaf, ca) = (cert("leaf"), cert("CA"));
        for (why, words) in [
            (CannotSign::NotCa, "CA:FALSE"),
            (CannotSign::NoKeyCertSign, "without keyCertSign"),
            (CannotSign::NoBasicConstraints, "without basicConstraints"),
        ] {
            let kind = hinted(&leaf, &ca, CandidateProblem::CannotSign(why));
            let d = diag(kind, GO119, std::slice::from_ref(&ca));
            assert_eq!(d.reason, Reason::UnknownAuthority);
            assert!(
                d.next_step.starts_with("the trusted CA \"CA\"") && d.next_step.contains(words),
                "{}",
                d.next_step
            );
        }
    }

    #[test]
    fn a_candidates_own_error_gets_the_candidates_reason() {
        let ca = cert("CA");
        let time = |now: i64| CandidateProblem::Time {
            now,
            not_before: 100,
            not_after: 200,
        };
        let at = |kind, problem| VerifyErrorKind::Candidate {
            cert: ca.clone(),
            kind,
            problem,
        };
        let reason = |k| diag(k, GO119, &[]).reason;
        assert_eq!(reason(at(Kind::Root, time(300))), Reason::CaExpired);
        assert_eq!(reason(at(Kind::Root, time(50))), Reason::CaNotYetValid);
        assert_eq!(reason(at(Kind::Intermediate, time(300))), Reason::Expired);
        assert_eq!(
            reason(at(Kind::Intermediate, time(50))),
            Reason::NotYetValid
        );
        let d = diag(
            at(Kind::Root, CandidateProblem::TooManyIntermediates),
            GO119,
            &[],
        );
        assert_eq!(d.reason, Reason::InvalidCertificate);
        assert_eq!(
            d.detail,
            "Get \"https://r.test/v2/\": x509: too many intermediates for path length constraint"
        );
        assert!(d.next_step.contains("\"CA\""), "{}", d.next_step);
    }
}
