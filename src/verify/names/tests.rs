//! Go's name-constraint rules one by one: each constraint type, permitted and excluded, the
//! leading-dot rule, IP ranges, mailboxes, URI hosts, the bound and the words.

use std::sync::Arc;

use super::*;
use crate::cert::{NameConstraints, San, Subtrees};

const LEGACY: GoVersion = GoVersion::new(19, 8);

fn leaf(sans: Vec<San>) -> Arc<Cert> {
    let mut c = plain();
    c.has_san_ext = true;
    c.sans = sans;
    Arc::new(c)
}

/// A certificate with nothing but what name constraints read.
fn plain() -> Cert {
    let key = rcgen::KeyPair::generate().unwrap();
    let p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    let der = p.self_signed(&key).unwrap().der().to_vec();
    let mut c = Cert::from_der(&der).unwrap();
    c.sans.clear();
    c.has_san_ext = false;
    c
}

fn ca(permitted: Subtrees, excluded: Subtrees) -> Cert {
    let mut c = plain();
    c.name_constraints = Some(NameConstraints {
        permitted,
        excluded,
        unhandled: false,
    });
    c
}

fn dns(names: &[&str]) -> Subtrees {
    Subtrees {
        dns: names.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

fn check(ca: &Cert, sans: Vec<San>, go: GoVersion) -> Result<(), String> {
    let chain = vec![leaf(sans)];
    let r = if go.checks_constraints_per_chain() {
        let mut full = chain.clone();
        full.push(Arc::new(ca.clone()));
        check_chain(&full, go)
    } else {
        check_candidate(ca, &chain, go)
    };
    r.map_err(|e| e.to_string())
}

fn d(s: &str) -> San {
    San::Dns(s.to_string())
}

const PREFIX: &str =
    "x509: a root or intermediate certificate is not authorized to sign for this name: ";

#[test]
fn dns_excluded_and_permitted_with_go_words() {
    let c = ca(Subtrees::default(), dns(&["registry.test"]));
    assert_eq!(
        check(&c, vec![d("registry.test")], LEGACY).unwrap_err(),
        format!("{PREFIX}DNS name \"registry.test\" is excluded by constraint \"registry.test\"")
    );
    // Subdomains are excluded too; a name that only ends the same way is not.
    assert!(check(&c, vec![d("a.Registry.TEST")], LEGACY).is_err());
    assert!(check(&c, vec![d("myregistry.test")], LEGACY).is_ok());

    let c = ca(dns(&["example.com"]), Subtrees::default());
    assert!(check(&c, vec![d("example.com"), d("r.example.com")], LEGACY).is_ok());
    assert_eq!(
        check(&c, vec![d("example.com"), d("registry.test")], LEGACY).unwrap_err(),
        format!("{PREFIX}DNS name \"registry.test\" is not permitted by any constraint")
    );
}

#[test]
fn leading_dot_means_subdomains_only() {
    let c = ca(dns(&[".example.com"]), Subtrees::default());
    assert!(check(&c, vec![d("r.example.com")], LEGACY).is_ok());
    assert!(check(&c, vec![d("example.com")], LEGACY).is_err());
    // An empty constraint matches everything (Go follows NSS).
    let c = ca(Subtrees::default(), dns(&[""]));
    assert!(check(&c, vec![d("anything.test")], LEGACY).is_err());
    // A SAN Go cannot parse fails whatever the constraints say.
    let c = ca(dns(&["example.com"]), Subtrees::default());
    assert_eq!(
        check(&c, vec![d("bad..example.com")], LEGACY).unwrap_err(),
        "x509: cannot parse dnsName \"bad..example.com\""
    );
}

#[test]
fn ip_ranges() {
    let net = |ip: [u8; 4], mask: [u8; 4]| (ip.to_vec(), mask.to_vec());
    let c = ca(
        Subtrees {
            ip: vec![net([10, 0, 0, 0], [255, 0, 0, 0])],
            ..Default::default()
        },
        Subtrees {
            ip: vec![net([10, 1, 0, 0], [255, 255, 0, 0])],
            ..Default::default()
        },
    );
    assert!(check(&c, vec![San::Ip(vec![10, 2, 3, 4])], LEGACY).is_ok());
    assert_eq!(
        check(&c, vec![San::Ip(vec![10, 1, 3, 4])], LEGACY).unwrap_err(),
        format!("{PREFIX}IP address \"10.1.3.4\" is excluded by constraint \"10.1.0.0/16\"")
    );
    assert_eq!(
        check(&c, vec![San::Ip(vec![127, 0, 0, 1])], LEGACY).unwrap_err(),
        format!("{PREFIX}IP address \"127.0.0.1\" is not permitted by any constraint")
    );
    // An IPv6 SAN never matches an IPv4 range (Go compares lengths): not permitted.
    let mut v6 = vec![0u8; 16];
    v6[15] = 1;
    assert!(check(&c, vec![San::Ip(v6)], LEGACY)
        .unwrap_err()
        .ends_with("IP address \"::1\" is not permitted by any constraint"));
    // A non-canonical mask is printed as hex, as net.IPNet does.
    assert_eq!(
        ipnet_string(&[10, 0, 0, 0], &[255, 0, 255, 0]),
        "10.0.0.0/ff00ff00"
    );
}

#[test]
fn email_local_and_domain() {
    let em = |l: &[&str]| Subtrees {
        email: l.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    let e = |s: &str| San::Email(s.to_string());
    // A full mailbox constraint: the local part exactly, the domain case-insensitively.
    let c = ca(em(&["ops@Example.com"]), Subtrees::default());
    assert!(check(&c, vec![e("ops@example.COM")], LEGACY).is_ok());
    assert!(check(&c, vec![e("Ops@example.com")], LEGACY).is_err());
    // A domain constraint: before the per-chain era it matches subdomains too; after it,
    // only the exact host (a leading dot for subdomains).
    let c = ca(em(&["example.com"]), Subtrees::default());
    assert!(check(&c, vec![e("a@mail.example.com")], LEGACY).is_ok());
    assert!(check(&c, vec![e("a@mail.example.com")], GoVersion::new(25, 5)).is_err());
    assert!(check(&c, vec![e("a@example.com")], GoVersion::new(25, 5)).is_ok());
    assert_eq!(
        check(&c, vec![e("not a mailbox")], LEGACY).unwrap_err(),
        "x509: cannot parse rfc822Name {\"\" \"\"}"
    );
    assert_eq!(
        parse_mailbox("\"a b\"@example.com"),
        Some(("a b".to_string(), "example.com".to_string()))
    );
    assert_eq!(parse_mailbox(".a@example.com"), None);
}

#[test]
fn uri_host() {
    let u = |s: &str| San::Uri(s.to_string());
    let c = ca(
        Subtrees::default(),
        Subtrees {
            uri: vec![".corp.test".to_string()],
            ..Default::default()
        },
    );
    assert!(check(&c, vec![u("https://registry.test:5000/v2/")], LEGACY).is_ok());
    assert_eq!(
        check(&c, vec![u("spiffe://a.corp.test/ns/x")], LEGACY).unwrap_err(),
        format!(
            "{PREFIX}URI \"spiffe://a.corp.test/ns/x\" is excluded by constraint \".corp.test\""
        )
    );
    assert_eq!(
        check(&c, vec![u("https://10.0.0.1/")], LEGACY).unwrap_err(),
        format!(
            "{PREFIX}URI with IP (\"https://10.0.0.1/\") cannot be matched against constraints"
        )
    );
    assert!(check(&c, vec![u("urn:x:y")], LEGACY)
        .unwrap_err()
        .contains("URI with empty host"));
}

#[test]
fn order_and_bound_follow_the_go_version() {
    // Both lists fail: isValid reports the exclusion, checkChainConstraints the permission.
    let c = ca(dns(&["other.test"]), dns(&["registry.test"]));
    assert!(check(&c, vec![d("registry.test")], LEGACY)
        .unwrap_err()
        .contains("is excluded by"));
    assert!(check(&c, vec![d("registry.test")], GoVersion::new(25, 2))
        .unwrap_err()
        .contains("is not permitted by any constraint"));
    // maxConstraintComparisons: 250000, and Go's Error() has no words for it.
    let many: Vec<String> = (0..600).map(|i| format!("n{i}.test")).collect();
    let c = ca(
        Subtrees::default(),
        Subtrees {
            dns: many,
            ..Default::default()
        },
    );
    let sans: Vec<San> = (0..500).map(|i| d(&format!("ok{i}.example"))).collect();
    assert_eq!(
        check(&c, sans.clone(), LEGACY).unwrap_err(),
        "x509: unknown error"
    );
    assert!(check(&c, sans, GoVersion::new(25, 2)).is_ok());
}

#[test]
fn wildcard_parent_exclusion_from_the_cve_fix() {
    let c = ca(Subtrees::default(), dns(&["secret.example.com"]));
    let w = vec![d("*.example.com")];
    assert!(check(&c, w.clone(), LEGACY).is_ok());
    assert!(check(&c, w.clone(), GoVersion::new(25, 4)).is_ok());
    assert_eq!(
        check(&c, w, GoVersion::new(25, 5)).unwrap_err(),
        format!(
            "{PREFIX}DNS name \"*.example.com\" is excluded by constraint \"secret.example.com\""
        )
    );
}

#[test]
fn which_certificates_are_constrained() {
    // Before go1.21 the candidate's own SANs are checked too; from go1.21 only the chain below.
    let mut c = ca(dns(&["example.com"]), Subtrees::default());
    c.has_san_ext = true;
    c.sans = vec![d("ca.other.test")];
    let chain = vec![leaf(vec![d("r.example.com")])];
    assert!(check_candidate(&c, &chain, LEGACY).is_err());
    assert!(check_candidate(&c, &chain, GoVersion::new(21, 0)).is_ok());
    // A leaf without a SAN extension has nothing to constrain.
    let mut bare = plain();
    bare.has_san_ext = false;
    let c = ca(dns(&["example.com"]), Subtrees::default());
    assert!(check_candidate(&c, &[Arc::new(bare)], LEGACY).is_ok());
}

#[test]
fn go_quote_escapes_as_go() {
    assert_eq!(go_quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
    assert_eq!(go_quote("x\u{1}"), "\"x\\x01\"");
}

/// DER of a NameConstraints value with the given `[0]` and `[1]` contents.
fn nc_der(permitted: &[u8], excluded: &[u8]) -> Vec<u8> {
    let mut inner = Vec::new();
    for (tag, body) in [(0xa0u8, permitted), (0xa1, excluded)] {
        if !body.is_empty() {
            inner.push(tag);
            inner.push(body.len() as u8);
            inner.extend_from_slice(body);
        }
    }
    let mut out = vec![0x30, inner.len() as u8];
    out.extend(inner);
    out
}

/// One GeneralSubtree holding a name with context tag `tag`.
fn subtree(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut name = vec![tag, value.len() as u8];
    name.extend_from_slice(value);
    let mut out = vec![0x30, name.len() as u8];
    out.extend(name);
    out
}

#[test]
fn the_extension_is_parsed_as_go_parses_it() {
    let nc = NameConstraints::parse(&nc_der(
        &subtree(0x82, b".corp.test"),
        &subtree(0x87, &[10, 0, 0, 0, 255, 0, 0, 0]),
    ))
    .unwrap();
    assert_eq!(nc.permitted.dns, vec![".corp.test".to_string()]);
    assert_eq!(
        nc.excluded.ip,
        vec![(vec![10, 0, 0, 0], vec![255, 0, 0, 0])]
    );
    assert!(!nc.unhandled);
    // A directoryName subtree: kept out, the extension marked unhandled.
    let dir = [0xa4u8, 2, 0x30, 0];
    let mut st = vec![0x30, dir.len() as u8];
    st.extend_from_slice(&dir);
    assert!(NameConstraints::parse(&nc_der(&st, &[])).unwrap().unhandled);
    // Go's parse errors (the certificate does not parse at all).
    let err = |d: Vec<u8>| NameConstraints::parse(&d).unwrap_err();
    assert_eq!(err(vec![0x30, 0]), "x509: empty name constraints extension");
    assert_eq!(
        err(vec![0x31, 0]),
        "x509: invalid NameConstraints extension"
    );
    assert_eq!(
        err(nc_der(&subtree(0x87, &[10, 0, 0, 0, 255, 0, 255, 0]), &[])),
        "x509: IP constraint contained invalid mask ff00ff00"
    );
    assert_eq!(
        err(nc_der(&subtree(0x87, &[10, 0, 0, 0]), &[])),
        "x509: IP constraint contained value of length 4"
    );
    assert_eq!(
        err(nc_der(&subtree(0x82, b"bad..test"), &[])),
        "x509: failed to parse dnsName constraint \"bad..test\""
    );
    assert_eq!(
        err(nc_der(&subtree(0x86, b"10.0.0.1"), &[])),
        "x509: failed to parse URI constraint \"10.0.0.1\": cannot be IP address"
    );
    assert_eq!(
        err(nc_der(&subtree(0x81, b"a..b@x.test"), &[])),
        "x509: failed to parse rfc822Name constraint \"a..b@x.test\""
    );
}
