//! Certificate verification that answers as Go's crypto/x509 does, because the runtimes are Go.
//!
//! The order of checks, the candidate-parent search and the errors follow Go's `Certificate.Verify`
//! and `buildChains`: leaf validity, then the host name, then "is the leaf itself a root" (a trusted
//! self-signed registry certificate passes), then chains built through parents whose subject equals
//! the child's issuer (AKID-matching candidates first). The first candidate that fails becomes the
//! hint of `UnknownAuthority` — exactly how Go produces "x509: certificate signed by unknown
//! authority (possibly because of "crypto/rsa: verification error" while trying to verify candidate
//! authority certificate "X")", the incident's error.
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

/// Why a candidate parent was not accepted (becomes the hint of `UnknownAuthority`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CandidateProblem {
    Signature(SigError),
    /// Go's `ConstraintViolationError`: the parent is not a CA or its key usage forbids signing.
    CannotSign,
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

impl std::fmt::Display for CandidateProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CandidateProblem::Signature(e) => write!(f, "{e}"),
            CandidateProblem::CannotSign => f.write_str(
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

/// Go's verification errors.
#[derive(Debug, Clone)]
pub enum VerifyError {
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

impl std::fmt::Display for VerifyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VerifyError::LeafTime { now, not_before, not_after } => f.write_str(&time_error(*now, *not_before, *not_after)),
            VerifyError::UnhandledCritical => f.write_str("x509: unhandled critical extension"),
            VerifyError::Hostname(h) => write!(f, "{h}"),
            VerifyError::UnknownAuthority { hint: None, .. } => f.write_str("x509: certificate signed by unknown authority"),
            VerifyError::UnknownAuthority { hint: Some(h), .. } => write!(
                f,
                "x509: certificate signed by unknown authority (possibly because of {:?} while trying to verify candidate authority certificate {:?})",
                h.problem.to_string(),
                h.candidate.short_name
            ),
            VerifyError::IncompatibleUsage => f.write_str("x509: certificate specifies an incompatible key usage"),
            VerifyError::TooManySignatureChecks => {
                f.write_str("x509: signature check attempts limit reached while verifying certificate chain")
            }
            VerifyError::NameConstraint(e) => write!(f, "{e}"),
        }
    }
}

/// What to verify against.
pub struct VerifyOptions<'a> {
    /// The trust pool (system roots + configured CAs), deduplicated.
    pub roots: &'a [Arc<Cert>],
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
}

/// A verified chain, leaf first, root last.
pub type Chain = Vec<Arc<Cert>>;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Intermediate,
    Root,
}

/// Verifies `leaf` as Go's `x509.Certificate.Verify` would for a TLS client.
pub fn verify(leaf: &Arc<Cert>, opts: &VerifyOptions<'_>) -> Result<Vec<Chain>, VerifyError> {
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
        hostname::verify_hostname(leaf, opts.server_name).map_err(VerifyError::Hostname)?;
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
fn potential_parents<'a>(pool: &'a [Arc<Cert>], child: &Cert) -> Vec<&'a Arc<Cert>> {
    let mut matching = Vec::new();
    let mut one_sided = Vec::new();
    let mut mismatched = Vec::new();
    for c in pool.iter().filter(|c| c.raw_subject == child.raw_issuer) {
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

fn already_in_chain(candidate: &Cert, chain: &[Arc<Cert>]) -> bool {
    chain.iter().any(|c| {
        c.der == candidate.der
            || (c.raw_subject == candidate.raw_subject && c.spki_der == candidate.spki_der)
    })
}

/// Go's `CheckSignatureFrom`.
fn check_signature_from(
    child: &Cert,
    parent: &Cert,
    min_rsa_bits: usize,
) -> Result<(), CandidateProblem> {
    let v3_without_bc = parent.version == 3 && parent.basic_constraints.is_none();
    let bc_not_ca = matches!(parent.basic_constraints, Some((false, _)));
    if v3_without_bc || bc_not_ca || parent.key_usage_cert_sign == Some(false) {
        return Err(CandidateProblem::CannotSign);
    }
    crypto::verify_min(
        &child.sig_alg,
        &parent.public_key,
        &child.tbs,
        &child.signature,
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

fn build_chains(
    chain: Chain,
    sig_checks: &mut usize,
    opts: &VerifyOptions<'_>,
) -> Result<Vec<Chain>, VerifyError> {
    let Some(current) = chain.last().cloned() else {
        return Ok(Vec::new());
    };
    let mut hint: Option<Hint> = None;
    let mut chains = Vec::new();
    let mut err: Option<VerifyError> = None;
    let roots = potential_parents(opts.roots, &current)
        .into_iter()
        .map(|c| (Kind::Root, c));
    let inters = potential_parents(opts.intermediates, &current)
        .into_iter()
        .map(|c| (Kind::Intermediate, c));
    for (kind, cand) in roots.chain(inters).collect::<Vec<_>>() {
        if already_in_chain(cand, &chain) {
            continue;
        }
        *sig_checks += 1;
        if *sig_checks > MAX_SIGNATURE_CHECKS {
            return Err(VerifyError::TooManySignatureChecks);
        }
        let problem = check_signature_from(&current, cand, opts.rsa_min_bits)
            .and_then(|()| candidate_valid(cand, kind, &chain, opts.now, opts.go));
        if let Err(CandidateProblem::Names(e)) = problem {
            // Go's buildChains keeps an isValid error as its own error, not as a hint.
            err = Some(VerifyError::NameConstraint(e));
            continue;
        }
        if let Err(problem) = problem {
            hint.get_or_insert(Hint {
                candidate: cand.clone(),
                problem,
            });
            continue;
        }
        let mut next = chain.clone();
        next.push(cand.clone());
        match kind {
            Kind::Root => chains.push(next),
            Kind::Intermediate => match build_chains(next, sig_checks, opts) {
                Ok(found) => chains.extend(found),
                Err(e @ VerifyError::TooManySignatureChecks) => return Err(e),
                // Go keeps the deepest error when nothing else works.
                Err(e) => err = Some(e),
            },
        }
    }
    if !chains.is_empty() {
        return Ok(chains);
    }
    Err(err.unwrap_or(VerifyError::UnknownAuthority {
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
