//! Go's `x509.ParseCertificate`, as far as its verdict differs from x509-parser's: a walk of the
//! DER with cryptobyte's strictness and Go's error texts (go1.19 `crypto/x509/parser.go`,
//! `parseCertificate`, `parseExtension`, `processExtensions`, `parseSANExtension`,
//! `ParseCertificate`).
//!
//! It answers what the walk finds for every Go version at once ([`Walked`]): the errors all
//! modelled versions share are an `Err`; the facts whose verdict depends on the version (a
//! negative serial number, the policy extensions marked critical, a duplicate extension's
//! wording) are recorded for [`super::Cert`] to judge with a [`GoVersion`].
//!
//! What is not walked here (names, validity, the key, the algorithm identifiers' contents) is
//! left to x509-parser, whose refusals are reported as `x509: malformed certificate (…)`.
//!
//! Never does: I/O.

use crate::verify::GoVersion;

/// What Go's parse found, for every version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Walked {
    /// The serial number is negative: refused from go1.23 unless `x509negativeserial=1`.
    pub negative_serial: bool,
    /// Critical extensions go1.19 does not handle (its `UnhandledCriticalExtensions`), except
    /// the policy extensions, which are in `critical_policy`.
    pub unhandled_critical: Vec<String>,
    /// Critical policy mappings, policy constraints and inhibitAnyPolicy extensions: unhandled
    /// before go1.24, parsed from go1.24 ([`GoVersion::handles_policy_extensions`]).
    pub critical_policy: Vec<String>,
    /// The error of the first subject key id, authority key id or authority info access
    /// extension marked critical, which later Go refuses to parse
    /// ([`GoVersion::refuses_critical_identifiers`]); go1.19 parses them.
    pub marked_critical: Option<&'static str>,
}

/// Why Go refuses to parse a certificate, in every modelled version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// The same extension twice; Go's words changed ([`GoVersion::names_duplicate_extension`]).
    DuplicateExtension(String),
    /// Any other refusal, in Go's words.
    Other(String),
}

impl ParseError {
    /// The error as `go` words it.
    pub fn text(&self, go: GoVersion) -> String {
        match self {
            ParseError::DuplicateExtension(oid) if go.names_duplicate_extension() => format!(
                "x509: certificate contains duplicate extension with OID {}",
                crate::gonames::go_quote(oid)
            ),
            ParseError::DuplicateExtension(_) => {
                "x509: certificate contains duplicate extensions".into()
            }
            ParseError::Other(e) => e.clone(),
        }
    }
}

fn err<T>(s: &str) -> Result<T, ParseError> {
    Err(ParseError::Other(s.to_string()))
}

/// cryptobyte's DER reader: definite minimal lengths, low tag numbers only.
#[derive(Clone, Copy)]
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    /// The next element: (tag, whole element, contents).
    fn any(&mut self) -> Option<(u8, &'a [u8], &'a [u8])> {
        let s = self.0;
        let (&tag, rest) = s.split_first()?;
        if tag & 0x1f == 0x1f {
            return None;
        }
        let (&l0, rest) = rest.split_first()?;
        let (len, hdr) = if l0 & 0x80 == 0 {
            (l0 as usize, 2)
        } else {
            let n = (l0 & 0x7f) as usize;
            if n == 0 || n > 4 || rest.len() < n {
                return None;
            }
            let len = rest[..n].iter().fold(0usize, |a, &b| (a << 8) | b as usize);
            // Short form would do, or a leading zero octet: not DER.
            if len < 128 || rest[0] == 0 {
                return None;
            }
            (len, 2 + n)
        };
        let total = hdr.checked_add(len)?;
        if s.len() < total {
            return None;
        }
        self.0 = &s[total..];
        Some((tag, &s[..total], &s[hdr..total]))
    }

    /// The next element if it has `tag`: (whole element, contents).
    fn read(&mut self, tag: u8) -> Option<(&'a [u8], &'a [u8])> {
        let mut probe = *self;
        let (t, whole, body) = probe.any()?;
        if t != tag {
            return None;
        }
        *self = probe;
        Some((whole, body))
    }

    fn peek(&self, tag: u8) -> bool {
        self.0.first() == Some(&tag)
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

const SEQUENCE: u8 = 0x30;

/// cryptobyte's `ReadASN1Integer` validity: non-empty, minimally encoded. `Some(negative)`.
fn integer(body: &[u8]) -> Option<bool> {
    match body {
        [] => None,
        [0x00, b, ..] if b & 0x80 == 0 => None,
        [0xff, b, ..] if b & 0x80 != 0 => None,
        [first, ..] => Some(first & 0x80 != 0),
    }
}

/// An OID's dotted form, as Go's `ObjectIdentifier.String`; `None` when malformed.
fn oid_string(body: &[u8]) -> Option<String> {
    if body.is_empty() || body.last().is_some_and(|b| b & 0x80 != 0) {
        return None;
    }
    let mut arcs: Vec<u64> = Vec::new();
    let mut v: u64 = 0;
    let mut start = true;
    for &b in body {
        if start && b == 0x80 {
            return None; // non-minimal
        }
        start = b & 0x80 == 0;
        v = v.checked_mul(128)? | u64::from(b & 0x7f);
        if v > i32::MAX as u64 {
            return None; // Go's parseObjectIdentifier keeps arcs in an int (31 bits in cryptobyte)
        }
        if b & 0x80 == 0 {
            arcs.push(v);
            v = 0;
        }
    }
    let first = arcs[0];
    let (a, b) = if first < 80 {
        (first / 40, first % 40)
    } else {
        (2, first - 80)
    };
    let mut s = format!("{a}.{b}");
    for arc in &arcs[1..] {
        s.push_str(&format!(".{arc}"));
    }
    Some(s)
}

/// Go's walk of `der`, to the end of its extensions and the trailing-data check.
pub fn walk(der: &[u8]) -> Result<Walked, ParseError> {
    let mut input = Input(der);
    let Some((raw, body)) = input.read(SEQUENCE) else {
        return err("x509: malformed certificate");
    };
    let mut cert = Input(body);
    let Some((_, tbs_body)) = cert.read(SEQUENCE) else {
        return err("x509: malformed tbs certificate");
    };
    let mut tbs = Input(tbs_body);
    let mut version = 0u8;
    if tbs.peek(0xa0) {
        // ReadOptionalASN1Integer into an int: well formed, fits, not negative; then
        // `Version++ > 3` is "invalid".
        let v = tbs.read(0xa0).and_then(|(_, b)| Input(b).read(0x02));
        let body = v.map(|(_, b)| b).filter(|b| b.len() <= 8);
        match body.map(|b| (integer(b), b)) {
            Some((Some(false), [v])) if *v <= 2 => version = *v,
            Some((Some(false), _)) => return err("x509: invalid version"),
            _ => return err("x509: malformed version"),
        }
    }
    let version = version + 1;
    let Some(negative_serial) = tbs.read(0x02).and_then(|(_, b)| integer(b)) else {
        return err("x509: malformed serial number");
    };
    let Some((_, inner_alg)) = tbs.read(SEQUENCE) else {
        return err("x509: malformed signature algorithm identifier");
    };
    let Some((_, outer_alg)) = cert.read(SEQUENCE) else {
        return err("x509: malformed algorithm identifier");
    };
    if inner_alg != outer_alg {
        return err("x509: inner and outer signature algorithm identifiers don't match");
    }
    if tbs.read(SEQUENCE).is_none() {
        return err("x509: malformed issuer");
    }
    if tbs.read(SEQUENCE).is_none() {
        return err("x509: malformed validity");
    }
    if tbs.read(SEQUENCE).is_none() {
        return err("x509: malformed issuer"); // sic: Go's text for the subject
    }
    if tbs.read(SEQUENCE).is_none() {
        return err("x509: malformed spki");
    }
    let mut out = Walked {
        negative_serial,
        ..Walked::default()
    };
    if version > 1 {
        if tbs.peek(0x81) && tbs.read(0x81).is_none() {
            return err("x509: malformed issuerUniqueID");
        }
        if tbs.peek(0x82) && tbs.read(0x82).is_none() {
            return err("x509: malformed subjectUniqueID");
        }
        if version == 3 && tbs.peek(0xa3) {
            let exts = tbs.read(0xa3).and_then(|(_, b)| Input(b).read(SEQUENCE));
            let Some((_, exts)) = exts else {
                return err("x509: malformed extensions");
            };
            extensions(exts, &mut out)?;
        }
    }
    if cert.read(0x03).is_none_or(|(_, b)| b.is_empty()) {
        return err("x509: malformed signature");
    }
    if raw.len() != der.len() {
        return err("x509: trailing data");
    }
    Ok(out)
}

/// The extensions: each well formed, none twice; the handled ones parsed, the critical
/// unhandled ones recorded.
fn extensions(body: &[u8], out: &mut Walked) -> Result<(), ParseError> {
    let mut exts = Input(body);
    let mut seen: Vec<String> = Vec::new();
    let mut parsed = Vec::new();
    while !exts.is_empty() {
        let Some((_, ext)) = exts.read(SEQUENCE) else {
            return err("x509: malformed extension");
        };
        let mut ext = Input(ext);
        let Some(oid) = ext.read(0x06).and_then(|(_, b)| oid_string(b)) else {
            return err("x509: malformed extension OID field");
        };
        let mut critical = false;
        if ext.peek(0x01) {
            match ext.read(0x01).map(|(_, b)| b) {
                Some([0x00]) => critical = false,
                Some([0xff]) => critical = true,
                _ => return err("x509: malformed extension critical field"),
            }
        }
        let Some((_, value)) = ext.read(0x04) else {
            return err("x509: malformed extension value field");
        };
        if seen.contains(&oid) {
            return Err(ParseError::DuplicateExtension(oid));
        }
        seen.push(oid.clone());
        parsed.push((oid, critical, value));
    }
    // processExtensions runs after all of them were read: a duplicate wins over a malformed SAN.
    for (oid, critical, value) in parsed {
        let unhandled = match oid.as_str() {
            "2.5.29.17" => !san_extension(value)?,
            // Policy mappings, policy constraints, inhibitAnyPolicy: go1.24 and later.
            "2.5.29.33" | "2.5.29.36" | "2.5.29.54" => {
                if critical {
                    out.critical_policy.push(oid.clone());
                }
                false
            }
            // Name constraints: `NameConstraints::parse` in `Cert::from_der` decides.
            "2.5.29.30" => false,
            "2.5.29.14" | "2.5.29.15" | "2.5.29.19" | "2.5.29.31" | "2.5.29.32" | "2.5.29.35"
            | "2.5.29.37" | "1.3.6.1.5.5.7.1.1" => false,
            _ => true,
        };
        let marked = match oid.as_str() {
            "2.5.29.14" => Some("x509: subject key identifier incorrectly marked critical"),
            "2.5.29.35" => Some("x509: authority key identifier incorrectly marked critical"),
            "1.3.6.1.5.5.7.1.1" => Some("x509: authority info access incorrectly marked critical"),
            _ => None,
        };
        if critical && out.marked_critical.is_none() {
            out.marked_critical = marked;
        }
        if critical && unhandled {
            out.unhandled_critical.push(oid);
        }
    }
    Ok(())
}

/// Go's `parseSANExtension`: `Ok(true)` when it found a name of a type Go keeps (DNS, email,
/// IP, URI) — otherwise the extension counts as unhandled.
fn san_extension(value: &[u8]) -> Result<bool, ParseError> {
    let Some((_, names)) = Input(value).read(SEQUENCE) else {
        return err("x509: invalid subject alternative names");
    };
    let mut names = Input(names);
    let mut kept = false;
    while !names.is_empty() {
        let Some((tag, _, data)) = names.any() else {
            return err("x509: invalid subject alternative name");
        };
        let ia5 = data.is_ascii();
        match tag ^ 0x80 {
            1 if !ia5 => return err("x509: SAN rfc822Name is malformed"),
            2 if !ia5 => return err("x509: SAN dNSName is malformed"),
            6 if !ia5 => return err("x509: SAN uniformResourceIdentifier is malformed"),
            6 => uri_san(data)?,
            7 if data.len() != 4 && data.len() != 16 => {
                return err(&format!(
                    "x509: cannot parse IP address of length {}",
                    data.len()
                ))
            }
            1 | 2 | 7 => {}
            _ => continue,
        }
        kept = true;
    }
    Ok(kept)
}

/// A URI SAN: what Go's `url.Parse` refuses for certain (control characters, a bad escape),
/// then `domainToReverseLabels` on the host (port included, as `url.URL.Host` has it).
fn uri_san(data: &[u8]) -> Result<(), ParseError> {
    let s = String::from_utf8_lossy(data);
    let q = crate::gonames::go_quote;
    if s.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return err(&format!(
            "x509: cannot parse URI {}: parse {}: net/url: invalid control character in URL",
            q(&s),
            q(&s)
        ));
    }
    let Some((_, after)) = s
        .split_once("//")
        .filter(|(scheme, _)| scheme.ends_with(':') || scheme.is_empty())
    else {
        return Ok(());
    };
    let authority = after.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if !host.is_empty() && crate::gonames::reverse_labels(host).is_none() {
        return err(&format!("x509: cannot parse URI {}: invalid domain", q(&s)));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
