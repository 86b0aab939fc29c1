//! Go's `x509.ParseCertificate` rules, each test citing the function of go1.19's
//! `crypto/x509/parser.go` it follows (read at the tag), and the version table for the rest.

use super::*;
use crate::cert::testcert::{der, san, tlv, Spec};
use crate::cert::Cert;

const SAN: &str = "2.5.29.17";

fn v(minor: u32, patch: u32) -> GoVersion {
    GoVersion::new(minor, patch)
}

fn parse_error(spec: &Spec) -> String {
    match Cert::from_der_go(&der(spec)) {
        Ok(_) => "parses".into(),
        Err(e) => e.text(v(19, 8)),
    }
}

#[test]
fn a_plain_certificate_parses_with_no_facts() {
    let c = Cert::from_der_go(&der(&Spec::default())).unwrap();
    assert!(!c.negative_serial && c.unhandled_critical.is_empty() && c.critical_policy.is_empty());
    assert!(!c.has_unhandled_critical(v(19, 8)));
}

#[test]
fn trailing_data_is_refused() {
    // ParseCertificate: `len(der) != len(cert.Raw)`.
    let mut d = der(&Spec::default());
    d.push(0);
    assert_eq!(Cert::from_der(&d).unwrap_err(), "x509: trailing data");
    // Garbage that is not even a SEQUENCE.
    assert_eq!(
        Cert::from_der(&[0x04, 0x00]).unwrap_err(),
        "x509: malformed certificate"
    );
}

#[test]
fn negative_serials_parse_until_go1_23() {
    // parseCertificate: `serial.Sign() == -1` and x509negativeserial (go1.23).
    let c = Cert::from_der_go(&der(&Spec {
        serial: "-12345",
        ..Spec::default()
    }))
    .unwrap();
    assert!(c.negative_serial);
    assert_eq!(c.go_parse_error(v(19, 8), None), None);
    assert_eq!(c.go_parse_error(v(22, 12), None), None);
    assert_eq!(
        c.go_parse_error(v(23, 0), None).as_deref(),
        Some("x509: negative serial number")
    );
    // A go.mod older than 1.23 records x509negativeserial=1 in DefaultGODEBUG.
    assert_eq!(c.go_parse_error(v(25, 5), Some("1")), None);
    let positive = Cert::from_der_go(&der(&Spec::default())).unwrap();
    assert_eq!(positive.go_parse_error(v(25, 5), None), None);
}

#[test]
fn a_duplicate_extension_is_refused_in_the_versions_words() {
    // parseCertificate: `seenExts[oidStr]`.
    let ku = tlv(0x03, &[0x07, 0x80]);
    let spec = Spec {
        exts: vec![("2.5.29.15", true, ku.clone()), ("2.5.29.15", true, ku)],
        ..Spec::default()
    };
    let e = Cert::from_der_go(&der(&spec)).unwrap_err();
    assert_eq!(e, ParseError::DuplicateExtension("2.5.29.15".into()));
    assert_eq!(
        e.text(v(19, 8)),
        "x509: certificate contains duplicate extensions"
    );
    assert_eq!(
        e.text(v(25, 5)),
        "x509: certificate contains duplicate extension with OID \"2.5.29.15\""
    );
}

#[test]
fn malformed_sans_are_refused_with_gos_words() {
    // parseSANExtension and forEachSAN.
    let case = |names: Vec<Vec<u8>>| {
        parse_error(&Spec {
            exts: vec![(SAN, false, san(&names))],
            ..Spec::default()
        })
    };
    assert_eq!(
        case(vec![tlv(0x87, &[127, 0, 0, 1, 9])]),
        "x509: cannot parse IP address of length 5"
    );
    assert_eq!(
        case(vec![tlv(0x82, "r\u{e9}.test".as_bytes())]),
        "x509: SAN dNSName is malformed"
    );
    assert_eq!(
        case(vec![tlv(0x81, "\u{e9}@x.test".as_bytes())]),
        "x509: SAN rfc822Name is malformed"
    );
    assert_eq!(
        case(vec![tlv(0x86, "https://a..b/".as_bytes())]),
        "x509: cannot parse URI \"https://a..b/\": invalid domain"
    );
    assert_eq!(
        case(vec![tlv(0x86, b"https://a\x01b/")]),
        "x509: cannot parse URI \"https://a\\x01b/\": parse \"https://a\\x01b/\": net/url: invalid control character in URL"
    );
    // Not a SEQUENCE at all, and a name whose length runs past the end.
    assert_eq!(
        parse_error(&Spec {
            exts: vec![(SAN, false, tlv(0x04, b"x"))],
            ..Spec::default()
        }),
        "x509: invalid subject alternative names"
    );
    assert_eq!(
        case(vec![vec![0x82, 0x05, b'a']]),
        "x509: invalid subject alternative name"
    );
    // Well formed: DNS, IP, URI with a port, and a directoryName Go ignores.
    assert_eq!(
        case(vec![
            tlv(0x82, b"r.test"),
            tlv(0x87, &[127, 0, 0, 1]),
            tlv(0x86, b"spiffe://r.test:443/x"),
            tlv(0xa4, &tlv(0x30, &[]))
        ]),
        "parses"
    );
}

#[test]
fn a_critical_san_with_no_name_go_keeps_is_unhandled() {
    // processExtensions, case 17: nothing parsed, so the critical check applies.
    let dir_name = tlv(0xa4, &tlv(0x30, &[]));
    let c = Cert::from_der_go(&der(&Spec {
        exts: vec![(SAN, true, san(std::slice::from_ref(&dir_name)))],
        ..Spec::default()
    }))
    .unwrap();
    assert_eq!(c.unhandled_critical, vec![SAN.to_string()]);
    let not_critical = Cert::from_der_go(&der(&Spec {
        exts: vec![(SAN, false, san(&[dir_name]))],
        ..Spec::default()
    }))
    .unwrap();
    assert!(!not_critical.has_unhandled_critical(v(19, 8)));
}

#[test]
fn critical_policy_extensions_are_unhandled_before_go1_24() {
    // processExtensions: go1.19 has no case 33, 36 or 54; go1.24 parses them.
    let policy_constraints = tlv(0x30, &[0x80, 0x01, 0x00]);
    let inhibit_any = tlv(0x02, &[0x00]);
    let mappings = tlv(0x30, &[]);
    for (oid, value) in [
        ("2.5.29.36", policy_constraints),
        ("2.5.29.54", inhibit_any),
        ("2.5.29.33", mappings),
    ] {
        let c = Cert::from_der_go(&der(&Spec {
            exts: vec![(oid, true, value.clone())],
            ..Spec::default()
        }))
        .unwrap();
        assert_eq!(c.critical_policy, vec![oid.to_string()], "{oid}");
        assert!(c.has_unhandled_critical(v(19, 8)), "{oid}");
        assert!(c.has_unhandled_critical(v(23, 12)), "{oid}");
        assert!(!c.has_unhandled_critical(v(24, 0)), "{oid}");
        let not_critical = Cert::from_der_go(&der(&Spec {
            exts: vec![(oid, false, value)],
            ..Spec::default()
        }))
        .unwrap();
        assert!(!not_critical.has_unhandled_critical(v(19, 8)), "{oid}");
    }
    // An extension no Go knows, critical: unhandled in every version.
    let c = Cert::from_der_go(&der(&Spec {
        exts: vec![("1.2.3.4", true, tlv(0x05, &[]))],
        ..Spec::default()
    }))
    .unwrap();
    assert!(c.has_unhandled_critical(v(25, 5)));
}

#[test]
fn identifiers_marked_critical_parse_in_go1_19_and_fail_in_later_go() {
    // processExtensions, case 14 and the AIA branch (go1.19 parses them, later Go refuses).
    let skid = tlv(0x04, &[1, 2, 3]);
    let c = Cert::from_der_go(&der(&Spec {
        exts: vec![("2.5.29.14", true, skid.clone())],
        ..Spec::default()
    }))
    .unwrap();
    assert!(!c.has_unhandled_critical(v(19, 8)));
    assert_eq!(c.go_parse_error(v(19, 8), None), None);
    assert_eq!(
        c.go_parse_error(v(25, 5), None).as_deref(),
        Some("x509: subject key identifier incorrectly marked critical")
    );
    let aia = tlv(0x30, &[]);
    let c = Cert::from_der_go(&der(&Spec {
        exts: vec![("1.3.6.1.5.5.7.1.1", true, aia)],
        ..Spec::default()
    }))
    .unwrap();
    assert_eq!(
        c.go_parse_error(v(25, 0), None).as_deref(),
        Some("x509: authority info access incorrectly marked critical")
    );
    let not_critical = Cert::from_der_go(&der(&Spec {
        exts: vec![("2.5.29.14", false, skid)],
        ..Spec::default()
    }))
    .unwrap();
    assert_eq!(not_critical.go_parse_error(v(25, 5), None), None);
}

#[test]
fn a_malformed_extension_go_handles_is_refused_critical_or_not() {
    // processExtensions, case 19: parseBasicConstraintsExtension's error.
    assert_eq!(
        parse_error(&Spec {
            exts: vec![("2.5.29.19", false, tlv(0x04, b"x"))],
            ..Spec::default()
        }),
        "x509: invalid basic constraints"
    );
}

#[test]
fn the_version_is_checked_as_go1_19_checks_it() {
    // parseCertificate: `Version < 0` is malformed, `Version++ > 3` invalid.
    let d = der(&Spec::default());
    let at = d
        .windows(5)
        .position(|w| w == [0xa0, 0x03, 0x02, 0x01, 0x02])
        .unwrap();
    let with = |v: u8| {
        let mut m = d.clone();
        m[at + 4] = v;
        Cert::from_der(&m).err()
    };
    assert_eq!(with(3).as_deref(), Some("x509: invalid version"));
    assert_eq!(with(0x7f).as_deref(), Some("x509: invalid version"));
    assert_eq!(with(0xff).as_deref(), Some("x509: malformed version"));
    assert_eq!(with(0x02), None);
}

#[test]
fn the_der_reader_is_as_strict_as_cryptobyte() {
    // A long-form length that fits the short form, and a leading zero length octet.
    assert!(Input(&[0x30, 0x81, 0x01, 0x00]).any().is_none());
    assert!(Input(&[0x30, 0x82, 0x00, 0x81]).any().is_none());
    assert!(Input(&[0x1f, 0x01, 0x00]).any().is_none());
    assert_eq!(Input(&[0x30, 0x00]).any().map(|t| t.0), Some(0x30));
    // Integers: empty, non-minimal, negative.
    assert_eq!(integer(&[]), None);
    assert_eq!(integer(&[0x00, 0x01]), None);
    assert_eq!(integer(&[0xff, 0x80]), None);
    assert_eq!(integer(&[0x80]), Some(true));
    assert_eq!(integer(&[0x00, 0x80]), Some(false));
    assert_eq!(
        oid_string(&[0x55, 0x1d, 0x0f]).as_deref(),
        Some("2.5.29.15")
    );
    assert_eq!(oid_string(&[0x55, 0x80, 0x01]), None);
}

#[test]
fn mangled_certificates_never_panic() {
    let d = der(&Spec {
        exts: vec![(SAN, true, san(&[tlv(0x82, b"r.test")]))],
        ..Spec::default()
    });
    for i in 0..d.len() {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut m = d.clone();
            m[i] ^= flip;
            let _ = Cert::from_der_go(&m);
        }
        let _ = Cert::from_der_go(&d[..i]);
    }
}
