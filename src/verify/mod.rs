//! Certificate verification that answers as Go's crypto/x509 does, because the runtimes are Go.
//!
//! The order of checks, the candidate-parent search and the errors follow Go's `Certificate.Verify`
//! and `buildChains`: leaf validity, then the host name, then "is the leaf itself a root" (a trusted
//! self-signed registry certificate passes), then chains built through parents whose subject equals
//! the child's issuer (AKID-matching candidates first). A candidate whose `CheckSignatureFrom`
//! fails (wrong key, insecure algorithm, a parent that may not sign) becomes, if it is the first,
//! the hint of `UnknownAuthority` — exactly how Go produces "x509: certificate signed by unknown
//! authority (possibly because of "crypto/rsa: verification error" while trying to verify candidate
//! authority certificate "X")", the incident's error. A candidate that passes the signature check
//! and fails `isValid` (expired, path length, not a CA, name constraints) is no hint: Go's
//! `buildChains` assigns that error to its result, and returns it as the error itself when no
//! chain is found ([`VerifyErrorKind::Candidate`]) — the last such assignment wins, as in Go.
//!
//! Where webpki differs, Go wins (see runtime-trust.md):
//! - an expired or not-yet-valid root fails here (webpki ignores anchor validity);
//! - a leaf that is itself in the pool passes (webpki rejects it);
//! - RSA 1024–2047 bits and P-521 pass ([`crypto`]);
//! - EKU: `anyExtendedKeyUsage` is accepted and every certificate of the chain, root included, is
//!   checked for serverAuth (webpki ignores the anchor's EKU);
//! - a v1 certificate can be a root, but not an intermediate (Go only demands CA basic
//!   constraints from intermediates; a v3 root still needs them, in `CheckSignatureFrom`).
//!
//! Name constraints are enforced as Go enforces them, per Go version ([`names`]): while the
//! chain is built, a candidate that violates them is a failed candidate whose error Go returns
//! (not a hint); from go1.24.8/go1.25.2 each built chain is checked afterwards.
//!
//! Never does: I/O.

pub mod crypto;
pub mod goversion;
pub mod hostname;
pub mod names;

use std::sync::Arc;

use crate::cert::{rfc3339, Cert};
use crypto::SigError;
pub use goversion::GoVersion;
pub use hostname::HostnameError;
pub use names::NameError;

/// Go's `maxChainSignatureChecks`: bounds the work a hostile chain can cause.
pub const MAX_SIGNATURE_CHECKS: usize = 100;

/// Why a candidate parent was not accepted. The first two are `CheckSignatureFrom`'s errors
/// (which become the hint of `UnknownAuthority`); the others are `isValid`'s (which Go returns
/// as the error itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CandidateProblem {
    Signature(SigError),
    /// Go's `ConstraintViolationError`: the parent is not a CA or its key usage forbids signing.
    CannotSign(CannotSign),
    /// Not valid at `now`.
    Time {
        now: i64,
        not_before: i64,
        not_after: i64,
    },
    NotAuthorizedToSign,
    TooManyIntermediates,
    UnhandledCritical,
    /// Its name constraints do not allow a name of the chain (Go returns this error itself).
    Names(NameError),
}

/// Why a parent may not sign (all are Go's one `ConstraintViolationError`; regtrust tells them
/// apart for the next step).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CannotSign {
    /// A v3 certificate without basic constraints.
    NoBasicConstraints,
    /// Basic constraints with `CA:FALSE`.
    NotCa,
    /// A key usage extension without `keyCertSign`.
    NoKeyCertSign,
}

impl CandidateProblem {
    /// Whether this is a `CheckSignatureFrom` error (Go's hint), not an `isValid` one.
    pub fn is_signature_check(&self) -> bool {
        matches!(
            self,
            CandidateProblem::Signature(_) | CandidateProblem::CannotSign(_)
        )
    }
}

impl std::fmt::Display for CandidateProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CandidateProblem::Signature(e) => write!(f, "{e}"),
            CandidateProblem::CannotSign(_) => f.write_str(
                "x509: invalid signature: parent certificate cannot sign this kind of certificate",
            ),
            CandidateProblem::Time {
                now,
                not_before,
                not_after,
            } => f.write_str(&time_error(*now, *not_before, *not_after)),
            CandidateProblem::NotAuthorizedToSign => {
                f.write_str("x509: certificate is not authorized to sign other certificates")
            }
            CandidateProblem::TooManyIntermediates => {
                f.write_str("x509: too many intermediates for path length constraint")
            }
            CandidateProblem::UnhandledCritical => {
                f.write_str("x509: unhandled critical extension")
            }
            CandidateProblem::Names(e) => write!(f, "{e}"),
        }
    }
}

/// The first rejected candidate authority, as Go reports it.
#[derive(Debug, Clone)]
pub struct Hint {
    pub candidate: Arc<Cert>,
    pub problem: CandidateProblem,
}

/// Go's verification error, as the runtime's Go words it.
#[derive(Debug, Clone)]
pub struct VerifyError {
    pub kind: VerifyErrorKind,
    /// The Go whose words these are.
    pub go: GoVersion,
}

/// Whether a rejected candidate was a trusted root or a presented intermediate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Intermediate,
    Root,
}

/// Go's verification errors.
#[derive(Debug, Clone)]
pub enum VerifyErrorKind {
    /// The leaf itself is outside its validity window.
    LeafTime {
        now: i64,
        not_before: i64,
        not_after: i64,
    },
    UnhandledCritical,
    Hostname(HostnameError),
    /// No chain to a trusted root. `cert` is the certificate whose issuer was not found.
    UnknownAuthority {
        cert: Arc<Cert>,
        hint: Option<Hint>,
    },
    IncompatibleUsage,
    TooManySignatureChecks,
    /// A root or intermediate whose name constraints do not allow a name below it.
    NameConstraint(NameError),
    /// A parent candidate that passed the signature check and failed `isValid` (expired, not a
    /// CA, path length, unhandled critical extension): Go returns that error itself.
    Candidate {
        cert: Arc<Cert>,
        kind: Kind,
        problem: CandidateProblem,
    },
}

fn time_error(now: i64, not_before: i64, not_after: i64) -> String {
    if now < not_before {
        format!(
            "x509: certificate has expired or is not yet valid: current time {} is before {}",
            rfc3339(now),
            rfc3339(not_before)
        )
    } else {
        format!(
            "x509: certificate has expired or is not yet valid: current time {} is after {}",
            rfc3339(now),
            rfc3339(not_after)
        )
    }
}

impl VerifyError {
    /// What crypto/tls returns for this error under the runtime's Go (see
    /// [`GoVersion::wraps_tls_verify_error`]).
    pub fn tls_text(&self) -> String {
        if self.go.wraps_tls_verify_error() {
            format!("tls: failed to verify certificate: {self}")
        } else {
            self.to_string()
        }
    }
}

impl std::fmt::Display for VerifyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.kind)
    }
}

impl std::fmt::Display for VerifyErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use VerifyErrorKind as VerifyError;
        match self {
            VerifyError::LeafTime { now, not_before, not_after } => f.write_str(&time_error(*now, *not_before, *not_after)),
            VerifyError::UnhandledCritical => f.write_str("x509: unhandled critical extension"),
            VerifyError::Hostname(h) => write!(f, "{h}"),
            VerifyError::UnknownAuthority { hint: None, .. } => f.write_str("x509: certificate signed by unknown authority"),
            VerifyError::UnknownAuthority { hint: Some(h), .. } => write!(
                f,
                "x509: certificate signed by unknown authority (possibly because of {:?} while trying to verify candidate authority certificate {:?})",
                h.problem.to_string(),
                hint_name(&h.candidate)
            ),
            VerifyError::IncompatibleUsage => f.write_str("x509: certificate specifies an incompatible key usage"),
            VerifyError::TooManySignatureChecks => {
                f.write_str("x509: signature check attempts limit reached while verifying certificate chain")
            }
            VerifyError::NameConstraint(e) => write!(f, "{e}"),
            VerifyError::Candidate { problem, .. } => write!(f, "{problem}"),
        }
    }
}

/// The name `UnknownAuthorityError` gives a candidate: `Subject.CommonName` (the last CN, as
/// `pkix.Name` keeps it), else the first organization, else `serial:N` ([`Cert::short_name`]).
pub fn hint_name(c: &Cert) -> &str {
    if c.common_name.is_empty() {
        &c.short_name
    } else {
        &c.common_name
    }
}

/// An endpoint's trust pool as the probe carries it: the system roots, one slice shared by every
/// endpoint, and the endpoint's own CAs (those not already among the system roots). Cloning it
/// costs two reference counts, so a probe never copies the system pool (perf at 200 endpoints:
/// building a merged pool per probe was 10% of the agent's CPU).
#[derive(Clone, Default)]
pub struct Pool {
    pub system: Arc<[Arc<Cert>]>,
    pub own: Arc<[Arc<Cert>]>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("system", &self.system.len())
            .field("own", &self.own.len())
            .finish()
    }
}

impl Pool {
    /// A pool of `certs` alone (no system roots).
    #[cfg(test)]
    pub fn of(certs: Vec<Arc<Cert>>) -> Pool {
        Pool {
            system: Arc::from(Vec::new()),
            own: certs.into(),
        }
    }

    /// The pool as the runtime's Go holds it: only the certificates `usable` says it parsed.
    pub fn roots<'a>(&'a self, usable: &'a dyn Fn(&Cert) -> bool) -> Roots<'a> {
        Roots {
            system: &self.system,
            own: &self.own,
            usable,
        }
    }
}

/// The roots one verification searches: a [`Pool`]'s two slices and which of their certificates
/// the runtime's Go would have in its `CertPool` (`AppendCertsFromPEM` skips those it cannot
/// parse), applied as candidates are found rather than by copying the pool.
#[derive(Clone, Copy)]
pub struct Roots<'a> {
    pub system: &'a [Arc<Cert>],
    pub own: &'a [Arc<Cert>],
    pub usable: &'a dyn Fn(&Cert) -> bool,
}

impl<'a> Roots<'a> {
    /// Every certificate of `certs` is usable.
    pub fn all(certs: &'a [Arc<Cert>]) -> Roots<'a> {
        Roots {
            system: &[],
            own: certs,
            usable: &|_| true,
        }
    }

    /// The usable roots, system first.
    pub fn iter(self) -> impl Iterator<Item = &'a Arc<Cert>> {
        self.system
            .iter()
            .chain(self.own)
            .filter(move |c| (self.usable)(c))
    }
}

/// What to verify against.
pub struct VerifyOptions<'a> {
    /// The trust pool (system roots + configured CAs), deduplicated.
    pub roots: Roots<'a>,
    /// The presented intermediates (everything the server sent after the leaf).
    pub intermediates: &'a [Arc<Cert>],
    /// Host name or IP literal the client dialled (no port).
    pub server_name: &'a str,
    /// Unix time to verify at.
    pub now: i64,
    /// The runtime's Go: the rules that changed between releases follow it.
    pub go: GoVersion,
    /// The smallest RSA key a signature check accepts: [`GoVersion::rsa_min_bits`] with the
    /// runtime's `rsa1024min`.
    pub rsa_min_bits: usize,
    /// SHA-1 certificate signatures verify ([`GoVersion::x509sha1_allowed`] with the runtime's
    /// `x509sha1`).
    pub sha1_allowed: bool,
}

/// A verified chain, leaf first, root last.
pub type Chain = Vec<Arc<Cert>>;

/// Verifies `leaf` as Go's `x509.Certificate.Verify` would for a TLS client.
pub fn verify(leaf: &Arc<Cert>, opts: &VerifyOptions<'_>) -> Result<Vec<Chain>, VerifyError> {
    verify_kind(leaf, opts).map_err(|kind| VerifyError { kind, go: opts.go })
}

fn verify_kind(leaf: &Arc<Cert>, opts: &VerifyOptions<'_>) -> Result<Vec<Chain>, VerifyErrorKind> {
    use VerifyErrorKind as VerifyError;
    if leaf.has_unhandled_critical(opts.go) {
        return Err(VerifyError::UnhandledCritical);
    }
    if opts.now < leaf.not_before || opts.now > leaf.not_after {
        return Err(VerifyError::LeafTime {
            now: opts.now,
            not_before: leaf.not_before,
            not_after: leaf.not_after,
        });
    }
    if !opts.server_name.is_empty() {
        hostname::verify_hostname(leaf, opts.server_name, opts.go)
            .map_err(VerifyError::Hostname)?;
    }
    let candidates: Vec<Chain> = if opts.roots.iter().any(|r| r.der == leaf.der) {
        vec![vec![leaf.clone()]]
    } else {
        let mut sig_checks = 0usize;
        build_chains(vec![leaf.clone()], &mut sig_checks, opts)?
    };
    let mut constraint_err = None;
    let chains: Vec<Chain> = candidates
        .into_iter()
        .filter(|c| chain_allows_server_auth(c))
        .filter(|c| {
            if !opts.go.checks_constraints_per_chain() {
                return true;
            }
            let res = names::check_chain(c, opts.go);
            if let Err(e) = res {
                constraint_err.get_or_insert(VerifyError::NameConstraint(e));
                return false;
            }
            true
        })
        .collect();
    if chains.is_empty() {
        return Err(constraint_err.unwrap_or(VerifyError::IncompatibleUsage));
    }
    Ok(chains)
}

/// Go's `findPotentialParents`: same subject bytes; AKID/SKID match first, then one-sided, then
/// mismatched.
fn potential_parents<'a>(
    pool: impl Iterator<Item = &'a Arc<Cert>>,
    child: &Cert,
) -> Vec<&'a Arc<Cert>> {
    let mut matching = Vec::new();
    let mut one_sided = Vec::new();
    let mut mismatched = Vec::new();
    for c in pool.filter(|c| c.raw_subject() == child.raw_issuer()) {
        let skid = c.skid.as_deref().unwrap_or_default();
        let akid = child.akid.as_deref().unwrap_or_default();
        if skid == akid {
            matching.push(c);
        } else if skid.is_empty() != akid.is_empty() {
            one_sided.push(c);
        } else {
            mismatched.push(c);
        }
    }
    matching
        .into_iter()
        .chain(one_sided)
        .chain(mismatched)
        .collect()
}

/// Go's `alreadyInChain`: a certificate of the chain with the candidate's subject and public key,
/// and the same SAN extension (both without one, or equal bytes) — so a cross-signed copy of a
/// certificate already in the chain is not tried again, while a same-key certificate with other
/// names is.
fn already_in_chain(candidate: &Cert, chain: &[Arc<Cert>]) -> bool {
    let candidate_san = san_extension(candidate);
    chain.iter().any(|c| {
        c.raw_subject() == candidate.raw_subject()
            && same_public_key(c, candidate)
            && san_extension(c) == candidate_san
    })
}

/// Go's `PublicKey.Equal`: the key's values, not its encoding (an RSA key whose algorithm
/// parameters are written another way is the same key).
fn same_public_key(a: &Cert, b: &Cert) -> bool {
    use crate::cert::PublicKey as K;
    let int = |v: &[u8]| -> Vec<u8> { v.iter().copied().skip_while(|&x| x == 0).collect() };
    match (&a.public_key, &b.public_key) {
        (K::Rsa { n, e }, K::Rsa { n: n2, e: e2 }) => int(n) == int(n2) && int(e) == int(e2),
        (
            K::Ec { curve, point },
            K::Ec {
                curve: c2,
                point: p2,
            },
        ) => curve == c2 && point == p2,
        (K::Ed25519(k), K::Ed25519(k2)) => k == k2,
        _ => a.spki_der() == b.spki_der(),
    }
}

/// The value of the first subjectAltName extension, as Go's `alreadyInChain` compares it.
fn san_extension(c: &Cert) -> Option<Vec<u8>> {
    if !c.has_san_ext {
        return None;
    }
    let (_, parsed) = x509_parser::parse_x509_certificate(&c.der).ok()?;
    parsed
        .extensions()
        .iter()
        .find(|e| e.oid == x509_parser::oid_registry::OID_X509_EXT_SUBJECT_ALT_NAME)
        .map(|e| e.value.to_vec())
}

/// Whether Go's parser leaves `c.PublicKey` nil: a key algorithm crypto/x509 does not know
/// (`parsePublicKey` knows RSA, ECDSA, Ed25519, DSA, and X25519 from go1.20; a malformed key of
/// those fails the whole certificate instead).
fn has_no_go_key(c: &Cert, go: GoVersion) -> bool {
    const DSA: &str = "1.2.840.10040.4.1";
    const X25519: &str = "1.3.101.110";
    match &c.public_key {
        crate::cert::PublicKey::Unsupported(oid) => {
            !(oid == DSA || oid == "malformed RSA key" || (oid == X25519 && go.minor >= 20))
        }
        _ => false,
    }
}

/// Go's `CheckSignatureFrom`.
fn check_signature_from(
    child: &Cert,
    parent: &Cert,
    go: GoVersion,
    min_rsa_bits: usize,
    sha1_allowed: bool,
) -> Result<(), CandidateProblem> {
    let cannot = |why| Err(CandidateProblem::CannotSign(why));
    if parent.version == 3 && parent.basic_constraints.is_none() {
        return cannot(CannotSign::NoBasicConstraints);
    }
    if matches!(parent.basic_constraints, Some((false, _))) {
        return cannot(CannotSign::NotCa);
    }
    if parent.key_usage_cert_sign == Some(false) {
        return cannot(CannotSign::NoKeyCertSign);
    }
    if let (true, crate::cert::SigAlg::Insecure(alg @ ("SHA1-RSA" | "ECDSA-SHA1"))) =
        (sha1_allowed, &child.sig_alg)
    {
        return crypto::verify_sha1(
            *alg == "SHA1-RSA",
            &parent.public_key,
            child.tbs(),
            child.signature(),
        )
        .map_err(CandidateProblem::Signature);
    }
    crypto::verify_as(
        &child.sig_alg,
        &parent.public_key,
        child.tbs(),
        child.signature(),
        go,
        min_rsa_bits,
    )
    .map_err(CandidateProblem::Signature)
}

/// Go's `isValid` for a parent candidate.
fn candidate_valid(
    c: &Cert,
    kind: Kind,
    chain: &[Arc<Cert>],
    now: i64,
    go: GoVersion,
) -> Result<(), CandidateProblem> {
    if c.has_unhandled_critical(go) {
        return Err(CandidateProblem::UnhandledCritical);
    }
    if now < c.not_before || now > c.not_after {
        return Err(CandidateProblem::Time {
            now,
            not_before: c.not_before,
            not_after: c.not_after,
        });
    }
    names::check_candidate(c, chain, go).map_err(CandidateProblem::Names)?;
    if kind == Kind::Intermediate && !c.is_ca() {
        return Err(CandidateProblem::NotAuthorizedToSign);
    }
    if let Some((_, Some(max))) = c.basic_constraints {
        let intermediates = chain.len().saturating_sub(1);
        if intermediates > max as usize {
            return Err(CandidateProblem::TooManyIntermediates);
        }
    }
    Ok(())
}

/// Go's `buildChains`. Its `err` is assigned by every candidate that passes the signature check
/// (`isValid`'s error, nil, or the error of the chains built through an intermediate) and by the
/// signature-check limit; it is the result when no chain is found, and only when it is nil does
/// Go answer `UnknownAuthorityError` with the first signature failure as its hint.
fn build_chains(
    chain: Chain,
    sig_checks: &mut usize,
    opts: &VerifyOptions<'_>,
) -> Result<Vec<Chain>, VerifyErrorKind> {
    let Some(current) = chain.last().cloned() else {
        return Ok(Vec::new());
    };
    let mut hint: Option<Hint> = None;
    let mut chains = Vec::new();
    let mut err: Option<VerifyErrorKind> = None;
    let roots = potential_parents(opts.roots.iter(), &current)
        .into_iter()
        .map(|c| (Kind::Root, c));
    let inters = potential_parents(opts.intermediates.iter(), &current)
        .into_iter()
        .map(|c| (Kind::Intermediate, c));
    for (kind, cand) in roots.chain(inters).collect::<Vec<_>>() {
        if (opts.go.skips_keyless_candidates() && has_no_go_key(cand, opts.go))
            || already_in_chain(cand, &chain)
        {
            continue;
        }
        *sig_checks += 1;
        if *sig_checks > MAX_SIGNATURE_CHECKS {
            // Go keeps looking (every later candidate hits the limit too): chains already
            // found still win.
            err = Some(VerifyErrorKind::TooManySignatureChecks);
            continue;
        }
        if let Err(problem) = check_signature_from(
            &current,
            cand,
            opts.go,
            opts.rsa_min_bits,
            opts.sha1_allowed,
        ) {
            hint.get_or_insert(Hint {
                candidate: cand.clone(),
                problem,
            });
            continue;
        }
        if let Err(problem) = candidate_valid(cand, kind, &chain, opts.now, opts.go) {
            err = Some(match problem {
                CandidateProblem::Names(e) => VerifyErrorKind::NameConstraint(e),
                problem => VerifyErrorKind::Candidate {
                    cert: cand.clone(),
                    kind,
                    problem,
                },
            });
            continue;
        }
        let mut next = chain.clone();
        next.push(cand.clone());
        err = None;
        match kind {
            Kind::Root => chains.push(next),
            Kind::Intermediate => match build_chains(next, sig_checks, opts) {
                Ok(found) => chains.extend(found),
                Err(e) => err = Some(e),
            },
        }
    }
    if !chains.is_empty() {
        return Ok(chains);
    }
    Err(err.unwrap_or(VerifyErrorKind::UnknownAuthority {
        cert: current,
        hint,
    }))
}

/// Go's `checkChainForKeyUsage` for the single usage serverAuth.
fn chain_allows_server_auth(chain: &[Arc<Cert>]) -> bool {
    chain.iter().all(|c| match &c.eku {
        None => true,
        Some(e) => e.any || e.server_auth,
    })
}

#[cfg(test)]
mod tests;
