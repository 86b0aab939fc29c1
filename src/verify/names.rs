//! Name constraints as Go's crypto/x509 enforces them: DNS, IP, email and URI subtrees,
//! permitted and excluded, against every SAN of the certificates they constrain.
//!
//! Two eras (see [`GoVersion`]):
//! - up to go1.24.7 / go1.25.1, `isValid` checks a candidate parent's constraints while the chain
//!   is built (`checkNameConstraints`): SANs in extension order, excluded before permitted, at
//!   most [`MAX_CONSTRAINT_COMPARISONS`] comparisons per candidate. Before go1.21 the names
//!   checked are the leaf's and the candidate's own; from go1.21 every certificate already in
//!   the chain;
//! - from go1.24.8 / go1.25.2 (`constraints.go`, `checkChainConstraints`) each finished chain is
//!   checked: every constrained CA against the certificates below it, names by type (IP, DNS,
//!   URI, email), permitted before excluded, no comparison bound.
//!
//! The words are Go's: `CertificateInvalidError` with reason `CANotAuthorizedForThisName`
//! ("x509: a root or intermediate certificate is not authorized to sign for this name: DNS name
//! "x" is excluded by constraint "y""). A subtree type Go does not handle is flagged by
//! [`crate::cert`] and makes a critical extension unhandled.
//!
//! Never does: I/O.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::goversion::GoVersion;
use crate::cert::{Cert, NameConstraints, San, Subtrees};
use crate::gonames::reverse_labels;
pub use crate::gonames::{go_quote, parse_mailbox};

/// Go's default `VerifyOptions.MaxConstraintComparisions` (`isValid`, before the per-chain era).
pub const MAX_CONSTRAINT_COMPARISONS: usize = 250_000;

/// Why a name is not allowed, in Go's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameError {
    /// `CANotAuthorizedForThisName` with its detail ("DNS name "x" is excluded by …").
    NotAuthorized(String),
    /// `TooManyConstraints`: Go's `CertificateInvalidError.Error` has no case for it, so it
    /// prints "x509: unknown error" (verify.go, go1.19 to go1.25.1).
    TooMany,
    /// A SAN Go cannot match (not a `CertificateInvalidError`: printed as is).
    Unparseable(String),
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::NotAuthorized(d) => write!(
                f,
                "x509: a root or intermediate certificate is not authorized to sign for this name: {d}"
            ),
            NameError::TooMany => f.write_str("x509: unknown error"),
            NameError::Unparseable(e) => f.write_str(e),
        }
    }
}

// === names ===

/// The host of a URI SAN as Go's `url.Parse` gives `uri.Host` (the authority minus userinfo);
/// `None` when Go's parser would refuse the URI.
fn uri_host(uri: &str) -> Option<String> {
    if uri.bytes().any(|c| c < 0x20 || c == 0x7f || c == b' ') {
        return None;
    }
    let colon = uri.find(':')?;
    let scheme = &uri[..colon];
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    if !scheme_ok {
        return None;
    }
    let rest = &uri[colon + 1..];
    let Some(auth) = rest.strip_prefix("//") else {
        return Some(String::new());
    };
    let end = auth.find(['/', '?', '#']).unwrap_or(auth.len());
    let authority = &auth[..end];
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    Some(host.to_string())
}

/// Go's `matchDomainConstraint` (also the DNS matching of `constraints.go`'s `dnsHasSuffix`):
/// an empty constraint matches everything; `example.com` matches it and its subdomains,
/// `.example.com` only subdomains; labels compare case-insensitively.
fn match_domain(domain: &str, constraint: &str) -> Result<bool, String> {
    if constraint.is_empty() {
        return Ok(true);
    }
    let d = reverse_labels(domain).ok_or_else(|| {
        format!(
            "x509: internal error: cannot parse domain {}",
            go_quote(domain)
        )
    })?;
    let (sub_only, c) = match constraint.strip_prefix('.') {
        Some(rest) => (true, rest),
        None => (false, constraint),
    };
    let cl = reverse_labels(c)
        .ok_or_else(|| format!("x509: internal error: cannot parse domain {}", go_quote(c)))?;
    if d.len() < cl.len() || (sub_only && d.len() == cl.len()) {
        return Ok(false);
    }
    Ok(cl.iter().zip(&d).all(|(a, b)| a.eq_ignore_ascii_case(b)))
}

/// A host constraint for email domains in the per-chain era (`hostMatchesConstraint`): a
/// leading period matches subdomains, anything else the exact host.
fn match_host_exact(host: &str, constraint: &str) -> Result<bool, String> {
    if constraint.is_empty() || constraint.starts_with('.') {
        return match_domain(host, constraint);
    }
    Ok(host.eq_ignore_ascii_case(constraint))
}

fn ip_string(b: &[u8]) -> String {
    match b.len() {
        4 => Ipv4Addr::new(b[0], b[1], b[2], b[3]).to_string(),
        16 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(b);
            let v6 = Ipv6Addr::from(a);
            // Go prints an IPv4-mapped address as IPv4.
            match v6.to_ipv4_mapped() {
                Some(v4) => v4.to_string(),
                None => IpAddr::V6(v6).to_string(),
            }
        }
        _ => crate::cert::hex(b),
    }
}

/// `*net.IPNet.String()`: `ip/prefix` for a canonical mask, else `ip/hexmask`.
fn ipnet_string(ip: &[u8], mask: &[u8]) -> String {
    let ones: u32 = mask.iter().map(|b| b.count_ones()).sum();
    let canonical = mask
        .iter()
        .flat_map(|b| (0..8).rev().map(move |i| b >> i & 1))
        .skip_while(|&bit| bit == 1)
        .all(|bit| bit == 0);
    let ip = if ip.len() == 16 && ip[..12] == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff] {
        &ip[12..]
    } else {
        ip
    };
    if canonical {
        format!("{}/{ones}", ip_string(ip))
    } else {
        format!("{}/{}", ip_string(ip), crate::cert::hex(mask))
    }
}

fn match_ip(ip: &[u8], net: &(Vec<u8>, Vec<u8>)) -> bool {
    let (nip, mask) = net;
    ip.len() == nip.len()
        && mask.len() == ip.len()
        && ip
            .iter()
            .zip(nip)
            .zip(mask)
            .all(|((a, b), m)| a & m == b & m)
}

// === the check of one constrained CA against one certificate's names ===

/// Which list of a name constraints extension.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Permitted,
    Excluded,
}

/// One name and the constraints of its type, as Go's match functions answer.
struct Kind<'a> {
    /// "DNS name", "IP address", "email address", "URI".
    word: &'static str,
    /// The name as Go prints it.
    shown: String,
    /// The constraints as Go prints them (`%q`).
    permitted: Vec<String>,
    excluded: Vec<String>,
    /// Does constraint `i` of `side` match the name?
    matcher: Box<dyn Fn(Side, usize) -> Result<bool, String> + 'a>,
    /// An excluded constraint that excludes this wildcard name by its parent (CVE-2025-61727).
    wildcard_excluded_by: Option<String>,
}

fn bump(count: &mut Option<usize>, n: usize) -> Result<(), NameError> {
    if let Some(c) = count {
        *c += n;
        if *c > MAX_CONSTRAINT_COMPARISONS {
            return Err(NameError::TooMany);
        }
    }
    Ok(())
}

impl Kind<'_> {
    fn excluded_ok(&self, count: &mut Option<usize>) -> Result<(), NameError> {
        bump(count, self.excluded.len())?;
        let hit = |c: &String| {
            NameError::NotAuthorized(format!(
                "{} {} is excluded by constraint {}",
                self.word,
                go_quote(&self.shown),
                go_quote(c)
            ))
        };
        for (i, c) in self.excluded.iter().enumerate() {
            if (self.matcher)(Side::Excluded, i).map_err(NameError::NotAuthorized)? {
                return Err(hit(c));
            }
        }
        match &self.wildcard_excluded_by {
            Some(c) => Err(hit(c)),
            None => Ok(()),
        }
    }

    fn permitted_ok(&self, count: &mut Option<usize>) -> Result<(), NameError> {
        bump(count, self.permitted.len())?;
        if self.permitted.is_empty() {
            return Ok(());
        }
        for i in 0..self.permitted.len() {
            if (self.matcher)(Side::Permitted, i).map_err(NameError::NotAuthorized)? {
                return Ok(());
            }
        }
        Err(NameError::NotAuthorized(format!(
            "{} {} is not permitted by any constraint",
            self.word,
            go_quote(&self.shown)
        )))
    }

    /// Go's `checkNameConstraints` for one name: the count grows by each list's length;
    /// excluded are tried first in the `isValid` era, permitted first after it.
    fn check(&self, count: &mut Option<usize>, permitted_first: bool) -> Result<(), NameError> {
        if permitted_first {
            self.permitted_ok(count)?;
            self.excluded_ok(count)
        } else {
            self.excluded_ok(count)?;
            self.permitted_ok(count)
        }
    }
}

/// How to match, per Go version.
#[derive(Clone, Copy)]
struct Rules {
    per_chain: bool,
    wildcard_parents: bool,
}

fn side(nc: &NameConstraints, s: Side) -> &Subtrees {
    match s {
        Side::Permitted => &nc.permitted,
        Side::Excluded => &nc.excluded,
    }
}

/// `*.example.com` is excluded by an excluded `foo.example.com`: same parent (go1.24.11,
/// go1.25.5: `dnsConstraints.query` with `parentConstraints`).
fn wildcard_excluder(name: &str, excluded: &[String]) -> Option<String> {
    let parent = |s: &str| s.find('.').map(|i| s[i..].to_ascii_lowercase());
    let np = parent(name)?;
    excluded
        .iter()
        .find(|c| !c.is_empty() && parent(c).as_deref() == Some(np.as_str()))
        .cloned()
}

fn dns_kind<'a>(
    nc: &'a NameConstraints,
    name: &'a str,
    rules: Rules,
) -> Result<Kind<'a>, NameError> {
    if reverse_labels(name).is_none() {
        return Err(NameError::Unparseable(format!(
            "x509: cannot parse dnsName {}",
            go_quote(name)
        )));
    }
    let wildcard_excluded_by = (rules.wildcard_parents && name.starts_with('*'))
        .then(|| wildcard_excluder(name, &nc.excluded.dns))
        .flatten();
    Ok(Kind {
        word: "DNS name",
        shown: name.to_string(),
        permitted: nc.permitted.dns.clone(),
        excluded: nc.excluded.dns.clone(),
        matcher: Box::new(move |s, i| match_domain(name, &side(nc, s).dns[i])),
        wildcard_excluded_by,
    })
}

fn ip_kind<'a>(nc: &'a NameConstraints, ip: &'a [u8]) -> Result<Kind<'a>, NameError> {
    if ip.len() != 4 && ip.len() != 16 {
        return Err(NameError::Unparseable(format!(
            "x509: internal error: IP SAN {} failed to parse",
            crate::cert::hex(ip)
        )));
    }
    let show = |n: &(Vec<u8>, Vec<u8>)| ipnet_string(&n.0, &n.1);
    Ok(Kind {
        word: "IP address",
        shown: ip_string(ip),
        permitted: nc.permitted.ip.iter().map(show).collect(),
        excluded: nc.excluded.ip.iter().map(show).collect(),
        matcher: Box::new(move |s, i| Ok(match_ip(ip, &side(nc, s).ip[i]))),
        wildcard_excluded_by: None,
    })
}

fn email_kind<'a>(
    nc: &'a NameConstraints,
    addr: &'a str,
    rules: Rules,
) -> Result<Kind<'a>, NameError> {
    let Some((local, domain)) = parse_mailbox(addr) else {
        // Go formats the zero mailbox it failed to fill: `{"" ""}`.
        return Err(NameError::Unparseable(
            "x509: cannot parse rfc822Name {\"\" \"\"}".to_string(),
        ));
    };
    let per_chain = rules.per_chain;
    Ok(Kind {
        word: "email address",
        shown: addr.to_string(),
        permitted: nc.permitted.email.clone(),
        excluded: nc.excluded.email.clone(),
        matcher: Box::new(move |s, i| {
            let c = &side(nc, s).email[i];
            if c.contains('@') {
                let Some((cl, cd)) = parse_mailbox(c) else {
                    return Err(format!(
                        "x509: internal error: cannot parse constraint {}",
                        go_quote(c)
                    ));
                };
                return Ok(cl == local && cd.eq_ignore_ascii_case(&domain));
            }
            if per_chain {
                match_host_exact(&domain, c)
            } else {
                match_domain(&domain, c)
            }
        }),
        wildcard_excluded_by: None,
    })
}

fn uri_kind<'a>(nc: &'a NameConstraints, uri: &'a str) -> Result<Kind<'a>, NameError> {
    let host = uri_host(uri).ok_or_else(|| {
        NameError::Unparseable(format!(
            "x509: internal error: URI SAN {} failed to parse",
            go_quote(uri)
        ))
    })?;
    let host = checked_uri_host(uri, &host);
    Ok(Kind {
        word: "URI",
        shown: uri.to_string(),
        permitted: nc.permitted.uri.clone(),
        excluded: nc.excluded.uri.clone(),
        // Go reports the URI's unusable host only when a constraint is compared with it.
        matcher: Box::new(move |s, i| {
            match_domain(host.as_ref().map_err(Clone::clone)?, &side(nc, s).uri[i])
        }),
        wildcard_excluded_by: None,
    })
}

fn san_kind<'a>(
    nc: &'a NameConstraints,
    san: &'a San,
    rules: Rules,
) -> Result<Option<Kind<'a>>, NameError> {
    match san {
        San::Dns(name) => dns_kind(nc, name, rules).map(Some),
        San::Ip(b) => ip_kind(nc, b).map(Some),
        San::Email(addr) => email_kind(nc, addr, rules).map(Some),
        San::Uri(uri) => uri_kind(nc, uri).map(Some),
        San::Other => Ok(None),
    }
}

/// Go's `matchURIConstraint` preamble: a URI needs a host name, not an IP.
fn checked_uri_host(uri: &str, host: &str) -> Result<String, String> {
    if host.is_empty() {
        return Err(format!(
            "URI with empty host ({}) cannot be matched against constraints",
            go_quote(uri)
        ));
    }
    let mut h = host.to_string();
    if h.contains(':') && !h.ends_with(']') {
        match h.rsplit_once(':') {
            Some((hh, _)) if !hh.contains(':') || hh.starts_with('[') => {
                h = hh.trim_start_matches('[').trim_end_matches(']').to_string()
            }
            _ => return Err(format!("address {host}: too many colons in address")),
        }
    }
    if (h.starts_with('[') && h.ends_with(']')) || h.parse::<IpAddr>().is_ok() {
        return Err(format!(
            "URI with IP ({}) cannot be matched against constraints",
            go_quote(uri)
        ));
    }
    Ok(h)
}

/// Every SAN of `names_of` against the constraints of `ca`, in extension order.
fn check_cert_names(
    ca: &NameConstraints,
    names_of: &Cert,
    count: &mut Option<usize>,
    rules: Rules,
) -> Result<(), NameError> {
    let mut sans: Vec<&San> = names_of.sans.iter().collect();
    if rules.per_chain {
        // checkChainConstraints goes by type: IP, DNS, URI, email.
        let rank = |s: &San| match s {
            San::Ip(_) => 0,
            San::Dns(_) => 1,
            San::Uri(_) => 2,
            San::Email(_) => 3,
            San::Other => 4,
        };
        sans.sort_by_key(|s| rank(s));
    }
    for san in sans {
        if let Some(kind) = san_kind(ca, san, rules)? {
            kind.check(count, rules.per_chain)?;
        }
    }
    Ok(())
}

/// The `isValid`-era check of candidate parent `ca` (about to be appended to `chain`, leaf
/// first). `Ok` when it has no constraints or Go checks constraints per chain instead.
pub fn check_candidate(
    ca: &Cert,
    chain: &[std::sync::Arc<Cert>],
    go: GoVersion,
) -> Result<(), NameError> {
    let Some(nc) = &ca.name_constraints else {
        return Ok(());
    };
    if go.checks_constraints_per_chain() {
        return Ok(());
    }
    let rules = Rules {
        per_chain: false,
        wildcard_parents: false,
    };
    let mut count = Some(0usize);
    let constrained: Vec<&Cert> = if go.constrains_whole_chain() {
        chain.iter().map(|c| c.as_ref()).collect()
    } else {
        chain
            .first()
            .map(|l| l.as_ref())
            .into_iter()
            .chain([ca])
            .collect()
    };
    for c in constrained.into_iter().filter(|c| c.has_san_ext) {
        check_cert_names(nc, c, &mut count, rules)?;
    }
    Ok(())
}

/// The per-chain era's `checkChainConstraints` for one built chain (leaf first): each
/// constrained CA against every certificate below it.
pub fn check_chain(chain: &[std::sync::Arc<Cert>], go: GoVersion) -> Result<(), NameError> {
    let rules = Rules {
        per_chain: true,
        wildcard_parents: go.excludes_wildcard_parents(),
    };
    for (i, ca) in chain.iter().enumerate() {
        let Some(nc) = &ca.name_constraints else {
            continue;
        };
        for below in chain[..i].iter().filter(|c| c.has_san_ext) {
            check_cert_names(nc, below, &mut None, rules)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
