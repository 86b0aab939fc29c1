//! One parsed X.509 certificate: every field verification and reporting need, owned, parsed once,
//! and only when Go's `x509.ParseCertificate` would parse it too ([`go_parse`]); what Go refuses
//! in some releases only (a negative serial number, critical policy extensions) is kept as a fact
//! and judged per [`crate::verify::GoVersion`] ([`Cert::go_parse_error`],
//! [`Cert::has_unhandled_critical`]).
//!
//! Also owns the types verification needs from a certificate: [`PublicKey`], [`SigAlg`] and its
//! [`Hash`] (`verify::crypto` checks signatures with them; this module imports nothing from `verify`
//! but the pure `GoVersion`).
//!
//! Never does: I/O, or any trust decision (that is `verify`).

use std::net::IpAddr;
use std::sync::Arc;

use serde::Serialize;
use sha2::{Digest, Sha256};
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::*;
use x509_parser::signature_algorithm::SignatureAlgorithm;

pub mod go_parse;
#[cfg(test)]
pub(crate) mod testcert;

pub use go_parse::ParseError;

/// What Go's `x509.ParseCertificate` says of `der` in every modelled Go: `None` when it parses
/// (a certificate only some versions refuse, such as one with a negative serial number, parses
/// here; [`Cert::go_parse_error`] judges it per version). The text is the newest modelled Go's.
pub fn go_parse_error(der: &[u8]) -> Option<String> {
    Cert::from_der_go(der)
        .err()
        .map(|e| e.text(crate::verify::GoVersion::NEWEST))
}

/// Go's error for a handled extension it cannot parse (`processExtensions` and the
/// `parse…Extension` functions of `crypto/x509/parser.go`), for those whose contents are left
/// to x509-parser.
fn go_extension_error(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.29.14" => "x509: invalid subject key identifier",
        "2.5.29.15" => "x509: invalid key usage",
        "2.5.29.19" => "x509: invalid basic constraints",
        "2.5.29.31" => "x509: invalid CRL distribution points",
        "2.5.29.32" => "x509: invalid certificate policies",
        "2.5.29.35" => "x509: invalid authority key identifier",
        "2.5.29.37" => "x509: invalid extended key usages",
        "1.3.6.1.5.5.7.1.1" => "x509: invalid authority info access",
        _ => return None,
    })
}

/// The subject public key, as far as signature checks need it.
#[derive(Debug, Clone)]
pub enum PublicKey {
    Rsa { n: Vec<u8>, e: Vec<u8> },
    Ec { curve: String, point: Vec<u8> },
    Ed25519(Vec<u8>),
    Unsupported(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
/// The hash of a signature algorithm.
pub enum Hash {
    Sha256,
    Sha384,
    Sha512,
}

/// A certificate's or a handshake's signature algorithm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SigAlg {
    RsaPkcs1(Hash),
    RsaPss(Hash),
    Ecdsa(Hash),
    Ed25519,
    /// Go refuses these (`x509: cannot verify signature: insecure algorithm SHA1-RSA`).
    Insecure(&'static str),
    Unknown(String),
}

fn hash_from_oid(oid: &str) -> Option<Hash> {
    match oid {
        "2.16.840.1.101.3.4.2.1" => Some(Hash::Sha256),
        "2.16.840.1.101.3.4.2.2" => Some(Hash::Sha384),
        "2.16.840.1.101.3.4.2.3" => Some(Hash::Sha512),
        _ => None,
    }
}

/// Classifies a certificate's signatureAlgorithm.
pub fn sig_alg_of(alg: &AlgorithmIdentifier<'_>) -> SigAlg {
    let oid = alg.algorithm.to_id_string();
    match oid.as_str() {
        "1.2.840.113549.1.1.11" => SigAlg::RsaPkcs1(Hash::Sha256),
        "1.2.840.113549.1.1.12" => SigAlg::RsaPkcs1(Hash::Sha384),
        "1.2.840.113549.1.1.13" => SigAlg::RsaPkcs1(Hash::Sha512),
        "1.2.840.113549.1.1.5" => SigAlg::Insecure("SHA1-RSA"),
        "1.2.840.113549.1.1.4" => SigAlg::Insecure("MD5-RSA"),
        "1.2.840.10045.4.1" => SigAlg::Insecure("ECDSA-SHA1"),
        "1.2.840.10045.4.3.2" => SigAlg::Ecdsa(Hash::Sha256),
        "1.2.840.10045.4.3.3" => SigAlg::Ecdsa(Hash::Sha384),
        "1.2.840.10045.4.3.4" => SigAlg::Ecdsa(Hash::Sha512),
        "1.3.101.112" => SigAlg::Ed25519,
        "1.2.840.113549.1.1.10" => match SignatureAlgorithm::try_from(alg) {
            Ok(SignatureAlgorithm::RSASSA_PSS(params)) => {
                match hash_from_oid(&params.hash_algorithm_oid().to_id_string()) {
                    Some(h) => SigAlg::RsaPss(h),
                    None => SigAlg::Unknown("RSASSA-PSS with an unsupported hash".into()),
                }
            }
            _ => SigAlg::Unknown("RSASSA-PSS with malformed parameters".into()),
        },
        other => SigAlg::Unknown(other.to_string()),
    }
}

/// Extended key usage, Go's view.
#[derive(Debug, Clone, Default)]
pub struct Eku {
    pub any: bool,
    pub server_auth: bool,
}

/// One subject alternative name, in the order of the extension (Go's `forEachSAN` order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum San {
    Email(String),
    Dns(String),
    Uri(String),
    /// As encoded: 4 or 16 bytes (anything else Go refuses to parse).
    Ip(Vec<u8>),
    /// A type name constraints ignore (otherName, directoryName, …).
    Other,
}

/// The subtrees of one side (permitted or excluded) of a name constraints extension, as Go's
/// `parseNameConstraintsExtension` keeps them: DNS, IP ranges (address + mask, 4+4 or 16+16
/// bytes), email and URI domains.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subtrees {
    pub dns: Vec<String>,
    pub ip: Vec<(Vec<u8>, Vec<u8>)>,
    pub email: Vec<String>,
    pub uri: Vec<String>,
}

/// A name constraints extension (2.5.29.30).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NameConstraints {
    pub permitted: Subtrees,
    pub excluded: Subtrees,
    /// A subtree of a type Go does not handle (directoryName, otherName, …): Go marks the
    /// extension unhandled, which is fatal when it is critical.
    pub unhandled: bool,
}

impl NameConstraints {
    /// Go's `parseNameConstraintsExtension` over the extension's DER value (read here, not by
    /// x509-parser, whose reading of the IMPLICIT `[0]`/`[1]` subtrees loses them). `Err` is
    /// Go's parse error: Go then refuses the whole certificate.
    pub fn parse(value: &[u8]) -> Result<NameConstraints, String> {
        const INVALID: &str = "x509: invalid NameConstraints extension";
        let mut outer = Der(value);
        let (tag, top) = outer.next().ok_or(INVALID)?;
        if tag != 0x30 || !outer.0.is_empty() {
            return Err(INVALID.into());
        }
        let mut top = Der(top);
        let mut out = NameConstraints::default();
        let (mut have_p, mut have_e) = (None, None);
        if top.0.first() == Some(&0xa0) {
            have_p = top.next().map(|t| t.1);
        }
        if top.0.first() == Some(&0xa1) {
            have_e = top.next().map(|t| t.1);
        }
        if !top.0.is_empty() {
            return Err(INVALID.into());
        }
        let empty = |s: Option<&[u8]>| s.is_none_or(|s| s.is_empty());
        if empty(have_p) && empty(have_e) {
            return Err("x509: empty name constraints extension".into());
        }
        out.unhandled |= subtrees(have_p.unwrap_or_default(), &mut out.permitted)?;
        out.unhandled |= subtrees(have_e.unwrap_or_default(), &mut out.excluded)?;
        Ok(out)
    }
}

/// A minimal DER reader: tag byte and contents of the next element (definite lengths only).
struct Der<'a>(&'a [u8]);

impl<'a> Der<'a> {
    fn next(&mut self) -> Option<(u8, &'a [u8])> {
        let (&tag, rest) = self.0.split_first()?;
        let (&l0, rest) = rest.split_first()?;
        let (len, rest) = if l0 < 0x80 {
            (l0 as usize, rest)
        } else {
            let n = (l0 & 0x7f) as usize;
            if n == 0 || n > 4 || rest.len() < n {
                return None;
            }
            let len = rest[..n].iter().fold(0usize, |a, &b| (a << 8) | b as usize);
            (len, &rest[n..])
        };
        if tag & 0x1f == 0x1f || rest.len() < len {
            return None;
        }
        let (content, rest) = rest.split_at(len);
        self.0 = rest;
        Some((tag, content))
    }
}

/// One `GeneralSubtrees` list into `side`; `Ok(true)` when it holds a type Go does not handle.
fn subtrees(list: &[u8], side: &mut Subtrees) -> Result<bool, String> {
    const INVALID: &str = "x509: invalid NameConstraints extension";
    let mut list = Der(list);
    let mut unhandled = false;
    while !list.0.is_empty() {
        let (tag, seq) = list.next().ok_or(INVALID)?;
        let (name_tag, value) = Der(seq).next().filter(|_| tag == 0x30).ok_or(INVALID)?;
        let text = || -> Result<String, String> {
            match value.iter().find(|b| !b.is_ascii()) {
                None => Ok(String::from_utf8_lossy(value).into_owned()),
                Some(_) => Err(format!(
                    "x509: invalid constraint value: {} is not a valid IA5String",
                    crate::gonames::go_quote(&String::from_utf8_lossy(value))
                )),
            }
        };
        let q = |s: &str| crate::gonames::go_quote(s);
        let domain_ok = |d: &str| crate::gonames::valid_domain(d.strip_prefix('.').unwrap_or(d));
        match name_tag {
            0x82 => {
                let d = text()?;
                if !domain_ok(&d) {
                    return Err(format!(
                        "x509: failed to parse dnsName constraint {}",
                        q(&d)
                    ));
                }
                side.dns.push(d);
            }
            0x87 => {
                if value.len() != 8 && value.len() != 32 {
                    return Err(format!(
                        "x509: IP constraint contained value of length {}",
                        value.len()
                    ));
                }
                let (ip, mask) = value.split_at(value.len() / 2);
                let ones: u32 = mask.iter().map(|b| b.count_ones()).sum();
                let canonical = mask.iter().enumerate().all(|(i, &b)| {
                    let want = ones.saturating_sub(8 * i as u32).min(8);
                    b == (0xffu16 << (8 - want)) as u8
                });
                if !canonical {
                    return Err(format!(
                        "x509: IP constraint contained invalid mask {}",
                        hex(mask)
                    ));
                }
                side.ip.push((ip.to_vec(), mask.to_vec()));
            }
            0x81 => {
                let e = text()?;
                let ok = if e.contains('@') {
                    crate::gonames::parse_mailbox(&e).is_some()
                } else {
                    domain_ok(&e)
                };
                if !ok {
                    return Err(format!(
                        "x509: failed to parse rfc822Name constraint {}",
                        q(&e)
                    ));
                }
                side.email.push(e);
            }
            0x86 => {
                let u = text()?;
                if u.parse::<IpAddr>().is_ok() {
                    return Err(format!(
                        "x509: failed to parse URI constraint {}: cannot be IP address",
                        q(&u)
                    ));
                }
                if !domain_ok(&u) {
                    return Err(format!("x509: failed to parse URI constraint {}", q(&u)));
                }
                side.uri.push(u);
            }
            _ => unhandled = true,
        }
    }
    Ok(unhandled)
}

/// A parsed certificate.
#[derive(Debug, Clone)]
pub struct Cert {
    pub der: Arc<[u8]>,
    pub sha256: String,
    pub subject: String,
    pub issuer: String,
    /// Go's short name for error hints: CN, else first O, else `serial:...`.
    pub short_name: String,
    /// The subject's Common Name (Go's `Subject.CommonName`: the last CN), empty when none.
    pub common_name: String,
    /// Where the DER subject and issuer names are in `der` (see [`Cert::raw_subject`]).
    raw_subject: Span,
    raw_issuer: Span,
    pub not_before: i64,
    pub not_after: i64,
    /// 1, 2 or 3.
    pub version: u32,
    /// `Some((is_ca, max_path_len))` when the extension is present.
    pub basic_constraints: Option<(bool, Option<u32>)>,
    /// `Some(may_sign_certs)` when a key usage extension is present.
    pub key_usage_cert_sign: Option<bool>,
    /// `None` when there is no EKU extension (Go: any usage).
    pub eku: Option<Eku>,
    pub skid: Option<Vec<u8>>,
    pub akid: Option<Vec<u8>>,
    pub dns_names: Vec<String>,
    pub ip_addrs: Vec<IpAddr>,
    /// Every SAN in extension order (name constraints check them all).
    pub sans: Vec<San>,
    /// Whether a SAN extension is present at all (Go's `hasSANExtension`).
    pub has_san_ext: bool,
    pub name_constraints: Option<NameConstraints>,
    /// Critical extensions go1.19 leaves unhandled (Go's `UnhandledCriticalExtensions`), the
    /// policy extensions apart: see [`Cert::has_unhandled_critical`].
    pub unhandled_critical: Vec<String>,
    /// Critical policy extensions, unhandled before go1.24.
    pub critical_policy: Vec<String>,
    /// A negative serial number, which go1.23 and later refuse to parse.
    pub negative_serial: bool,
    /// Go's error for a critical SKID, AKID or AIA extension, which later Go refuses to parse.
    pub marked_critical: Option<&'static str>,
    /// Where the signed part, the signature and the subject public key info are in `der`.
    tbs: Span,
    pub sig_alg: SigAlg,
    signature: Span,
    pub public_key: PublicKey,
    spki_der: Span,
}

/// A part of a certificate's DER, by position: every parsed certificate the agent keeps (the
/// system roots, each registry's CAs, the presented chains) would otherwise hold its signed part,
/// signature, key and names twice (heaptrack, one endpoint: 250 KiB of the 1 MiB heap were these
/// copies of the system roots).
#[derive(Debug, Clone, Copy, Default)]
struct Span {
    start: u32,
    len: u32,
}

impl Span {
    /// Where `part` lies in `whole`: x509-parser's fields borrow from the DER they parse; a part
    /// that does not (an owned copy) is found by its bytes.
    fn of(whole: &[u8], part: &[u8]) -> Option<Span> {
        if part.is_empty() {
            return Some(Span::default()); // an empty signature is Go's to refuse, in verification
        }
        let offset = (part.as_ptr() as usize).checked_sub(whole.as_ptr() as usize);
        let start = offset
            .filter(|o| {
                o.checked_add(part.len())
                    .is_some_and(|end| end <= whole.len())
            })
            .or_else(|| whole.windows(part.len()).position(|w| w == part))?;
        Some(Span {
            start: u32::try_from(start).ok()?,
            len: u32::try_from(part.len()).ok()?,
        })
    }

    fn get(self, whole: &[u8]) -> &[u8] {
        let start = self.start as usize;
        start
            .checked_add(self.len as usize)
            .and_then(|end| whole.get(start..end))
            .unwrap_or_default()
    }
}

/// A certificate's identity for reports and metrics.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CertInfo {
    pub sha256: String,
    pub subject: String,
    pub issuer: String,
    pub not_before: String,
    pub not_after: String,
    #[serde(skip)]
    pub not_after_unix: i64,
}

/// Parsed certificates by the SHA-256 of their DER, held weakly: an entry lives as long as some
/// trust pool holds the certificate. Dead entries are swept when the table has doubled since the
/// last sweep, so it stays within twice the certificates alive.
pub struct Interned {
    table: std::sync::Mutex<Table>,
}

/// The entries, and the size at which dead ones are swept next.
#[derive(Default)]
struct Table {
    by_sha256: std::collections::HashMap<[u8; 32], std::sync::Weak<Cert>>,
    sweep_at: usize,
}

const FIRST_SWEEP: usize = 64;

static INTERNED: std::sync::LazyLock<Interned> = std::sync::LazyLock::new(Interned::new);

impl Interned {
    fn new() -> Interned {
        Interned {
            table: std::sync::Mutex::new(Table {
                sweep_at: FIRST_SWEEP,
                ..Table::default()
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The live certificate with this DER, or `parse`'s, which is then shared. Parsing happens
    /// outside the lock (the event loop asks too, for presented chains); two threads parsing the
    /// same new DER at once both parse, and the first one in is kept.
    fn get<E>(&self, der: &[u8], parse: impl FnOnce() -> Result<Cert, E>) -> Result<Arc<Cert>, E> {
        let key: [u8; 32] = Sha256::digest(der).into();
        if let Some(c) = self
            .lock()
            .by_sha256
            .get(&key)
            .and_then(std::sync::Weak::upgrade)
        {
            return Ok(c);
        }
        let parsed = Arc::new(parse()?);
        let mut t = self.lock();
        if let Some(c) = t.by_sha256.get(&key).and_then(std::sync::Weak::upgrade) {
            return Ok(c);
        }
        t.by_sha256.insert(key, Arc::downgrade(&parsed));
        if t.by_sha256.len() >= t.sweep_at {
            t.by_sha256.retain(|_, w| w.strong_count() > 0);
            t.sweep_at = (t.by_sha256.len() * 2).max(FIRST_SWEEP);
        }
        Ok(parsed)
    }
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// RFC 3339 UTC for a unix timestamp (out-of-range values are shown raw, never panic).
pub fn rfc3339(ts: i64) -> String {
    match ::time::OffsetDateTime::from_unix_timestamp(ts) {
        Ok(t) => t
            .format(&::time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|_| ts.to_string()),
        Err(_) => ts.to_string(),
    }
}

impl Cert {
    /// The DER of the subject name (Go's `RawSubject`).
    pub fn raw_subject(&self) -> &[u8] {
        self.raw_subject.get(&self.der)
    }

    /// The DER of the issuer name (Go's `RawIssuer`).
    pub fn raw_issuer(&self) -> &[u8] {
        self.raw_issuer.get(&self.der)
    }

    /// The signed part (Go's `RawTBSCertificate`).
    pub fn tbs(&self) -> &[u8] {
        self.tbs.get(&self.der)
    }

    /// The signature's bits.
    pub fn signature(&self) -> &[u8] {
        self.signature.get(&self.der)
    }

    /// The DER of the subject public key info (Go's `RawSubjectPublicKeyInfo`).
    pub fn spki_der(&self) -> &[u8] {
        self.spki_der.get(&self.der)
    }

    /// Parses DER as every modelled Go does; the error is Go's, in the newest modelled Go's
    /// words, for a finding.
    pub fn from_der(der: &[u8]) -> Result<Cert, String> {
        Cert::from_der_go(der).map_err(|e| e.text(crate::verify::GoVersion::NEWEST))
    }

    /// [`Cert::from_der`], shared: while any holder keeps it, the same DER yields the same
    /// `Arc` — the same CA file in a thousand registries' directories is one parse and one copy
    /// in memory ([`Interned`]).
    pub fn shared(der: &[u8]) -> Result<Arc<Cert>, String> {
        INTERNED.get(der, || Cert::from_der(der))
    }

    /// [`Cert::from_der_go`], shared like [`Cert::shared`]: a registry presents the same chain
    /// probe after probe, and many registries behind one certificate present the same leaf, so
    /// the chain the agent still holds from the last round is not parsed again (perf at 200
    /// endpoints: parsing presented chains was 7% of the agent's CPU; each kept its own copy).
    pub fn shared_go(der: &[u8]) -> Result<Arc<Cert>, ParseError> {
        INTERNED.get(der, || Cert::from_der_go(der))
    }

    /// Parses DER; the error is what every modelled Go's `x509.ParseCertificate` refuses.
    pub fn from_der_go(der: &[u8]) -> Result<Cert, ParseError> {
        let walked = go_parse::walk(der)?;
        let (_, x) = X509Certificate::from_der(der)
            .map_err(|e| ParseError::Other(format!("x509: malformed certificate ({e})")))?;
        let span = |part: &[u8]| {
            Span::of(der, part).ok_or_else(|| {
                ParseError::Other("x509: malformed certificate (field outside the DER)".into())
            })
        };
        let mut c = Cert {
            der: Arc::from(der),
            sha256: sha256_hex(der),
            subject: x.subject().to_string(),
            issuer: x.issuer().to_string(),
            short_name: short_name(&x),
            common_name: x
                .subject()
                .iter_common_name()
                .last()
                .and_then(|a| a.as_str().ok())
                .unwrap_or_default()
                .to_string(),
            raw_subject: span(x.subject().as_raw())?,
            raw_issuer: span(x.issuer().as_raw())?,
            not_before: x.validity().not_before.timestamp(),
            not_after: x.validity().not_after.timestamp(),
            version: x.version().0 + 1,
            basic_constraints: None,
            key_usage_cert_sign: None,
            eku: None,
            skid: None,
            akid: None,
            dns_names: Vec::new(),
            ip_addrs: Vec::new(),
            sans: Vec::new(),
            has_san_ext: false,
            name_constraints: None,
            unhandled_critical: walked.unhandled_critical,
            critical_policy: walked.critical_policy,
            negative_serial: walked.negative_serial,
            marked_critical: walked.marked_critical,
            tbs: span(x.tbs_certificate.as_ref())?,
            sig_alg: sig_alg_of(&x.signature_algorithm),
            signature: span(&x.signature_value.data)?,
            public_key: public_key(x.public_key()),
            spki_der: span(x.public_key().raw)?,
        };
        for ext in x.extensions() {
            let oid = ext.oid.to_id_string();
            if oid == "2.5.29.30" {
                let nc = NameConstraints::parse(ext.value).map_err(ParseError::Other)?;
                if nc.unhandled && ext.critical {
                    c.unhandled_critical.push(oid.clone());
                }
                c.name_constraints = Some(nc);
                continue;
            }
            match ext.parsed_extension() {
                ParsedExtension::BasicConstraints(bc) => {
                    c.basic_constraints = Some((bc.ca, bc.path_len_constraint));
                }
                ParsedExtension::KeyUsage(ku) => c.key_usage_cert_sign = Some(ku.key_cert_sign()),
                ParsedExtension::ExtendedKeyUsage(eku) => {
                    c.eku = Some(Eku {
                        any: eku.any,
                        server_auth: eku.server_auth,
                    })
                }
                ParsedExtension::SubjectKeyIdentifier(k) => c.skid = Some(k.0.to_vec()),
                ParsedExtension::AuthorityKeyIdentifier(a) => {
                    c.akid = a.key_identifier.as_ref().map(|k| k.0.to_vec())
                }
                ParsedExtension::SubjectAlternativeName(san) => {
                    c.has_san_ext = true;
                    for name in &san.general_names {
                        c.sans.push(san_of(name));
                        match name {
                            GeneralName::DNSName(d) => c.dns_names.push(d.to_string()),
                            GeneralName::IPAddress(b) => {
                                if let Some(ip) = ip_from_bytes(b) {
                                    c.ip_addrs.push(ip)
                                }
                            }
                            _ => {}
                        }
                    }
                }

                ParsedExtension::ParseError { .. } => {
                    // Go fails to parse a malformed extension it handles, critical or not.
                    if let Some(e) = go_extension_error(&oid) {
                        return Err(ParseError::Other(e.into()));
                    }
                }
                _ => {}
            }
        }
        Ok(c)
    }

    pub fn info(&self) -> CertInfo {
        CertInfo {
            sha256: self.sha256.clone(),
            subject: self.subject.clone(),
            issuer: self.issuer.clone(),
            not_before: rfc3339(self.not_before),
            not_after: rfc3339(self.not_after),
            not_after_unix: self.not_after,
        }
    }

    /// Self-issued: subject equals issuer (a root, or a self-signed leaf).
    pub fn is_self_issued(&self) -> bool {
        self.raw_subject() == self.raw_issuer()
    }

    /// Whether `go` leaves a critical extension of this certificate unhandled, which fails its
    /// verification ("x509: unhandled critical extension").
    pub fn has_unhandled_critical(&self, go: crate::verify::GoVersion) -> bool {
        !self.unhandled_critical.is_empty()
            || (!go.handles_policy_extensions() && !self.critical_policy.is_empty())
    }

    /// Go's `x509.ParseCertificate` error for this certificate in `go` with the runtime's
    /// `x509negativeserial` setting, for the refusals that depend on the version (a negative
    /// serial number, an identifier extension marked critical; the others kept it from being
    /// parsed at all).
    pub fn go_parse_error(
        &self,
        go: crate::verify::GoVersion,
        x509negativeserial: Option<&str>,
    ) -> Option<String> {
        if self.negative_serial && go.rejects_negative_serial(x509negativeserial) {
            return Some("x509: negative serial number".into());
        }
        self.marked_critical
            .filter(|_| go.refuses_critical_identifiers())
            .map(str::to_string)
    }

    pub fn is_ca(&self) -> bool {
        matches!(self.basic_constraints, Some((true, _)))
    }
}

fn short_name(x: &X509Certificate<'_>) -> String {
    let subj = x.subject();
    if let Some(cn) = subj.iter_common_name().next().and_then(|a| a.as_str().ok()) {
        if !cn.is_empty() {
            return cn.to_string();
        }
    }
    if let Some(o) = subj
        .iter_organization()
        .next()
        .and_then(|a| a.as_str().ok())
    {
        return o.to_string();
    }
    format!("serial:{}", x.raw_serial_as_string().replace(':', ""))
}

fn san_of(name: &GeneralName<'_>) -> San {
    match name {
        GeneralName::RFC822Name(e) => San::Email(e.to_string()),
        GeneralName::DNSName(d) => San::Dns(d.to_string()),
        GeneralName::URI(u) => San::Uri(u.to_string()),
        GeneralName::IPAddress(b) => San::Ip(b.to_vec()),
        _ => San::Other,
    }
}

fn ip_from_bytes(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => <[u8; 4]>::try_from(b).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(b).ok().map(IpAddr::from),
        _ => None,
    }
}

fn public_key(spki: &SubjectPublicKeyInfo<'_>) -> PublicKey {
    let alg = spki.algorithm.algorithm.to_id_string();
    let bits = spki.subject_public_key.data.to_vec();
    match alg.as_str() {
        "1.2.840.113549.1.1.1" => match spki.parsed() {
            Ok(x509_parser::public_key::PublicKey::RSA(rsa)) => PublicKey::Rsa {
                n: rsa.modulus.to_vec(),
                e: rsa.exponent.to_vec(),
            },
            _ => PublicKey::Unsupported("malformed RSA key".into()),
        },
        "1.2.840.10045.2.1" => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|o| o.to_id_string())
                .unwrap_or_default();
            PublicKey::Ec { curve, point: bits }
        }
        "1.3.101.112" => PublicKey::Ed25519(bits),
        other => PublicKey::Unsupported(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cert::testcert::{der, Spec};

    #[test]
    fn the_same_der_is_one_parse_while_held_and_dead_entries_are_swept() {
        let a = der(&Spec::default());
        let first = Cert::shared(&a).unwrap();
        let again = Cert::shared(&a).unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        let other = Cert::shared(&der(&Spec::default())).unwrap();
        assert!(!Arc::ptr_eq(&first, &other));
        assert!(Cert::shared(b"not a certificate").is_err());
        // A local table: 200 certificates parsed and dropped leave at most the sweep bound.
        let t = Interned::new();
        let ders: Vec<Vec<u8>> = (0..200).map(|_| der(&Spec::default())).collect();
        for d in &ders {
            drop(t.get(d, || Cert::from_der(d)).unwrap());
        }
        let (len, bound) = {
            let g = t.table.lock().unwrap();
            (g.by_sha256.len(), g.sweep_at)
        };
        assert!(
            len <= FIRST_SWEEP && bound >= FIRST_SWEEP,
            "{len} entries, sweep at {bound}"
        );
    }

    #[test]
    fn the_parts_read_from_the_der_are_the_parsers_and_a_stranger_der_reads_empty() {
        let d = der(&Spec::default());
        let c = Cert::from_der(&d).unwrap();
        let (_, x) = X509Certificate::from_der(&d).unwrap();
        assert_eq!(c.raw_subject(), x.subject().as_raw());
        assert_eq!(c.raw_issuer(), x.issuer().as_raw());
        assert_eq!(c.tbs(), x.tbs_certificate.as_ref());
        assert_eq!(c.signature(), &x.signature_value.data[..]);
        assert_eq!(c.spki_der(), x.public_key().raw);
        assert!(!c.tbs().is_empty() && !c.signature().is_empty());
        // A part that is a copy, not a borrow, is found by its bytes; one that is not there at
        // all is no span.
        let copy = x.public_key().raw.to_vec();
        assert_eq!(
            Span::of(&d, &copy).map(|s| s.get(&d)),
            Some(x.public_key().raw)
        );
        assert!(Span::of(&d, b"\xff\xfe\xfd\xfc not in it").is_none());
        assert_eq!(Span::of(&d, &[]).map(|s| s.get(&d).len()), Some(0));
        // Spans of another certificate's DER never read outside it.
        let mut cut = c.clone();
        cut.der = Arc::from(&d[..10]);
        assert!(cut.tbs().is_empty() && cut.spki_der().is_empty());
    }
}
