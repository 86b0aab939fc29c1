//! Go-vs-webpki cases, one by one, without the network.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};

use super::*;

struct Made {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn now() -> i64 {
    ::time::OffsetDateTime::now_utc().unix_timestamp()
}

fn days(n: i64) -> ::time::OffsetDateTime {
    ::time::OffsetDateTime::now_utc() + ::time::Duration::days(n)
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    p.not_before = days(-1);
    p.not_after = days(10);
    p
}

fn self_signed(p: CertificateParams) -> Made {
    let key = KeyPair::generate().unwrap();
    Made {
        cert: p.self_signed(&key).unwrap(),
        key,
    }
}

fn leaf_params() -> CertificateParams {
    let mut p = CertificateParams::new(vec!["registry.test".to_string()]).unwrap();
    p.subject_alt_names
        .push(SanType::IpAddress([127, 0, 0, 1].into()));
    p.use_authority_key_identifier_extension = true;
    p.not_before = days(-1);
    p.not_after = days(5);
    p
}

fn signed(p: CertificateParams, by: &Made) -> Made {
    let key = KeyPair::generate().unwrap();
    Made {
        cert: p.signed_by(&key, &by.cert, &by.key).unwrap(),
        key,
    }
}

fn c(m: &Made) -> Arc<Cert> {
    Arc::new(Cert::from_der(m.cert.der()).unwrap())
}

fn run(
    leaf: &Made,
    inters: &[&Made],
    roots: &[&Made],
    name: &str,
) -> Result<Vec<Chain>, VerifyErrorKind> {
    let roots: Vec<_> = roots.iter().map(|m| c(m)).collect();
    let inters: Vec<_> = inters.iter().map(|m| c(m)).collect();
    verify(
        &c(leaf),
        &VerifyOptions {
            roots: Roots::all(&roots),
            intermediates: &inters,
            server_name: name,
            now: now(),
            go: GoVersion::OLDEST_MODELLED,
            rsa_min_bits: GoVersion::OLDEST_MODELLED.rsa_min_bits(None),
            sha1_allowed: false,
        },
    )
    .map_err(|e| e.kind)
}

#[test]
fn ok_chain_and_mid_rotation_bundle() {
    let a = self_signed(ca_params("R"));
    let b = self_signed(ca_params("R"));
    let l = signed(leaf_params(), &b);
    assert!(run(&l, &[], &[&b], "registry.test").is_ok());
    // Both roots share the subject; Go tries each candidate: the bundle works.
    assert!(run(&l, &[], &[&a, &b], "registry.test").is_ok());
}

#[test]
fn same_subject_new_key_is_a_signature_hint() {
    let a = self_signed(ca_params("R"));
    let b = self_signed(ca_params("R"));
    let err = run(&signed(leaf_params(), &b), &[], &[&a], "registry.test").unwrap_err();
    match &err {
        VerifyErrorKind::UnknownAuthority { hint: Some(h), .. } => {
            assert!(matches!(h.problem, CandidateProblem::Signature(_)));
            assert_eq!(h.candidate.short_name, "R");
        }
        other => panic!("{other:?}"),
    }
    assert!(
        err.to_string()
            .contains("while trying to verify candidate authority certificate \"R\""),
        "{err}"
    );
}

#[test]
fn expired_root_is_returned_as_its_own_error_not_a_hint() {
    // verify.go buildChains: isValid's error is assigned to `err`, which Go returns itself when no
    // chain is found; only CheckSignatureFrom failures become the "possibly because of" hint.
    let mut p = ca_params("Old");
    p.not_before = days(-10);
    p.not_after = days(-1);
    let old = self_signed(p);
    let err = run(&signed(leaf_params(), &old), &[], &[&old], "registry.test").unwrap_err();
    assert!(
        matches!(
            &err,
            VerifyErrorKind::Candidate {
                kind: Kind::Root,
                problem: CandidateProblem::Time { .. },
                ..
            }
        ),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.starts_with("x509: certificate has expired or is not yet valid: current time ")
            && text.contains(" is after "),
        "{text}"
    );
    assert!(!text.contains("unknown authority"), "{text}");
}

#[test]
fn the_last_candidate_past_the_signature_check_decides_the_error() {
    // Two roots named "R": one with another key (a signature failure: a hint), one expired with
    // the right key. Go returns the expiry whatever the order, since the hint is only used when
    // no candidate set `err`.
    let mut p = ca_params("R");
    p.not_before = days(-10);
    p.not_after = days(-1);
    let expired = self_signed(p);
    let other_key = self_signed(ca_params("R"));
    let l = signed(leaf_params(), &expired);
    for roots in [[&expired, &other_key], [&other_key, &expired]] {
        let err = run(&l, &[], &roots, "registry.test").unwrap_err();
        assert!(matches!(err, VerifyErrorKind::Candidate { .. }), "{err:?}");
    }
    // An expired root beside a valid one with the same key: the valid one builds the chain.
    let mut renewed = ca_params("R");
    renewed.not_after = days(30);
    let renewed = Made {
        cert: renewed.self_signed(&expired.key).unwrap(),
        key: KeyPair::from_pem(&expired.key.serialize_pem()).unwrap(),
    };
    assert!(run(&l, &[], &[&expired, &renewed], "registry.test").is_ok());
    assert!(run(&l, &[], &[&renewed, &expired], "registry.test").is_ok());
}

#[test]
fn path_length_and_non_ca_intermediates_are_errors_not_hints() {
    let mut rp = ca_params("R");
    rp.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    let root = self_signed(rp);
    let mut ip = ca_params("I");
    ip.use_authority_key_identifier_extension = true;
    let inter = signed(ip, &root);
    let l = signed(leaf_params(), &inter);
    let err = run(&l, &[&inter], &[&root], "registry.test").unwrap_err();
    assert_eq!(
        err.to_string(),
        "x509: too many intermediates for path length constraint"
    );
    assert!(matches!(
        err,
        VerifyErrorKind::Candidate {
            problem: CandidateProblem::TooManyIntermediates,
            ..
        }
    ));
}

#[test]
fn already_in_chain_compares_subject_key_and_sans() {
    let k = KeyPair::generate().unwrap();
    let mut a = leaf_params();
    a.use_authority_key_identifier_extension = false;
    let a = c(&Made {
        cert: a.clone().self_signed(&k).unwrap(),
        key: KeyPair::from_pem(&k.serialize_pem()).unwrap(),
    });
    let mut b = leaf_params();
    b.use_authority_key_identifier_extension = false;
    b.not_after = days(7);
    let same_names = c(&Made {
        cert: b.clone().self_signed(&k).unwrap(),
        key: KeyPair::from_pem(&k.serialize_pem()).unwrap(),
    });
    b.subject_alt_names = vec![SanType::DnsName("other.test".try_into().unwrap())];
    let other_names = c(&Made {
        cert: b.self_signed(&k).unwrap(),
        key: KeyPair::from_pem(&k.serialize_pem()).unwrap(),
    });
    let chain = vec![a.clone()];
    assert!(already_in_chain(&a, &chain));
    assert!(
        already_in_chain(&same_names, &chain),
        "another DER, same subject, key and SANs"
    );
    assert!(
        !already_in_chain(&other_names, &chain),
        "same key, other SANs"
    );
}

#[test]
fn trusted_self_signed_leaf_passes() {
    let mut p = leaf_params();
    p.use_authority_key_identifier_extension = false;
    let leaf = self_signed(p);
    assert!(run(&leaf, &[], &[&leaf], "registry.test").is_ok());
    assert!(matches!(
        run(&leaf, &[], &[], "registry.test"),
        Err(VerifyErrorKind::UnknownAuthority { hint: None, .. })
    ));
}

#[test]
fn eku_any_is_accepted_and_the_roots_eku_is_checked() {
    let root = self_signed(ca_params("R"));
    let mut p = leaf_params();
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::Any];
    assert!(run(&signed(p, &root), &[], &[&root], "registry.test").is_ok());

    let mut rp = ca_params("ClientOnly");
    rp.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_root = self_signed(rp);
    let l = signed(leaf_params(), &client_root);
    assert!(matches!(
        run(&l, &[], &[&client_root], "registry.test"),
        Err(VerifyErrorKind::IncompatibleUsage)
    ));
}

#[test]
fn intermediate_must_be_a_ca_and_v3_root_needs_basic_constraints() {
    let root = self_signed(ca_params("R"));
    let mut ip = ca_params("NotCa");
    ip.is_ca = IsCa::ExplicitNoCa;
    ip.key_usages = vec![];
    ip.use_authority_key_identifier_extension = true;
    let inter = signed(ip, &root);
    let l = signed(leaf_params(), &inter);
    let err = run(&l, &[&inter], &[&root], "registry.test").unwrap_err();
    assert!(
        err.to_string().contains("parent certificate cannot sign"),
        "{err}"
    );

    let mut np = ca_params("NoBC");
    np.is_ca = IsCa::NoCa;
    np.key_usages = vec![];
    let no_bc = self_signed(np);
    let err = run(
        &signed(leaf_params(), &no_bc),
        &[],
        &[&no_bc],
        "registry.test",
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("parent certificate cannot sign"),
        "{err}"
    );
}

#[test]
fn leaf_time_and_hostname_are_checked_first_with_gos_words() {
    let root = self_signed(ca_params("R"));
    let mut p = leaf_params();
    p.not_before = days(-5);
    p.not_after = days(-2);
    let err = run(&signed(p, &root), &[], &[&root], "wrong.test").unwrap_err();
    assert!(
        matches!(err, VerifyErrorKind::LeafTime { .. }),
        "time is checked before the name: {err:?}"
    );
    let l = signed(leaf_params(), &root);
    assert_eq!(
        run(&l, &[], &[&root], "other.test")
            .unwrap_err()
            .to_string(),
        "x509: certificate is valid for registry.test, not other.test"
    );
    assert_eq!(
        run(&l, &[], &[&root], "10.1.2.3").unwrap_err().to_string(),
        "x509: certificate is valid for 127.0.0.1, not 10.1.2.3"
    );
    let mut no_ip = leaf_params();
    no_ip
        .subject_alt_names
        .retain(|s| !matches!(s, SanType::IpAddress(_)));
    assert_eq!(
        run(&signed(no_ip, &root), &[], &[&root], "127.0.0.1")
            .unwrap_err()
            .to_string(),
        "x509: cannot validate certificate for 127.0.0.1 because it doesn't contain any IP SANs"
    );
}

#[test]
fn signature_checks_are_bounded_like_go() {
    let real = self_signed(ca_params("Many"));
    let decoys: Vec<Made> = (0..MAX_SIGNATURE_CHECKS + 1)
        .map(|_| self_signed(ca_params("Many")))
        .collect();
    let refs: Vec<&Made> = decoys.iter().collect();
    let l = signed(leaf_params(), &real);
    assert!(matches!(
        run(&l, &[], &refs, "registry.test"),
        Err(VerifyErrorKind::TooManySignatureChecks)
    ));
}

fn constrained_root(
    permitted: Vec<rcgen::GeneralSubtree>,
    excluded: Vec<rcgen::GeneralSubtree>,
) -> Made {
    let mut p = ca_params("Constrained CA");
    p.name_constraints = Some(rcgen::NameConstraints {
        permitted_subtrees: permitted,
        excluded_subtrees: excluded,
    });
    self_signed(p)
}

#[test]
fn name_constraints_fail_the_candidate_with_gos_own_error() {
    let dns = |s: &str| rcgen::GeneralSubtree::DnsName(s.to_string());
    let root = constrained_root(vec![], vec![dns("registry.test")]);
    let l = signed(leaf_params(), &root);
    let err = run(&l, &[], &[&root], "registry.test").unwrap_err();
    assert_eq!(
        err.to_string(),
        "x509: a root or intermediate certificate is not authorized to sign for this name: DNS name \"registry.test\" is excluded by constraint \"registry.test\""
    );
    // Every SAN counts, not only the dialled name: the IP SAN 127.0.0.1 is excluded.
    let lo =
        rcgen::GeneralSubtree::IpAddress(rcgen::CidrSubnet::V4([127, 0, 0, 0], [255, 0, 0, 0]));
    let root = constrained_root(vec![], vec![lo.clone()]);
    let l = signed(leaf_params(), &root);
    let err = run(&l, &[], &[&root], "registry.test").unwrap_err();
    assert!(
        err.to_string()
            .ends_with("IP address \"127.0.0.1\" is excluded by constraint \"127.0.0.0/8\""),
        "{err}"
    );
    // A permitted list constrains only its own type: DNS-only leaves the IP SAN free.
    let root = constrained_root(vec![dns("registry.test")], vec![]);
    let l = signed(leaf_params(), &root);
    assert!(run(&l, &[], &[&root], "registry.test").is_ok());
    let root = constrained_root(vec![dns("other.test")], vec![]);
    let l = signed(leaf_params(), &root);
    assert!(run(&l, &[], &[&root], "registry.test")
        .unwrap_err()
        .to_string()
        .ends_with("DNS name \"registry.test\" is not permitted by any constraint"));
    let ip_too = vec![dns("registry.test"), lo];
    let root = constrained_root(ip_too, vec![]);
    let l = signed(leaf_params(), &root);
    assert!(run(&l, &[], &[&root], "registry.test").is_ok());
}

#[test]
fn per_chain_era_checks_built_chains_and_a_good_root_still_wins() {
    // Two roots with the same name: the constrained one fails, the other verifies (both eras).
    let dns = |s: &str| rcgen::GeneralSubtree::DnsName(s.to_string());
    let bad = constrained_root(vec![], vec![dns("registry.test")]);
    let mut p = ca_params("Constrained CA");
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let good = Made {
        cert: p.self_signed(&bad.key).unwrap(),
        key: KeyPair::from_pem(&bad.key.serialize_pem()).unwrap(),
    };
    let l = signed(leaf_params(), &bad);
    let roots: Vec<_> = [&bad, &good].iter().map(|m| c(m)).collect();
    for go in [GoVersion::new(19, 8), GoVersion::new(25, 5)] {
        let opts = VerifyOptions {
            roots: Roots::all(&roots),
            intermediates: &[],
            server_name: "registry.test",
            now: now(),
            go,
            rsa_min_bits: go.rsa_min_bits(None),
            sha1_allowed: false,
        };
        assert!(verify(&c(&l), &opts).is_ok(), "{go}");
        let only_bad = [roots[0].clone()];
        let opts = VerifyOptions {
            roots: Roots::all(&only_bad),
            ..opts
        };
        assert!(
            matches!(
                verify(&c(&l), &opts).map_err(|e| e.kind),
                Err(VerifyErrorKind::NameConstraint(_))
            ),
            "{go}"
        );
    }
}

#[test]
fn a_constraint_type_go_does_not_handle_makes_a_critical_extension_unhandled() {
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Corp");
    let root = constrained_root(vec![rcgen::GeneralSubtree::DirectoryName(dn)], vec![]);
    let parsed = c(&root);
    // rcgen marks name constraints critical, as RFC 5280 requires.
    assert_eq!(parsed.unhandled_critical, vec!["2.5.29.30".to_string()]);
    let l = signed(leaf_params(), &root);
    assert!(run(&l, &[], &[&root], "registry.test")
        .unwrap_err()
        .to_string()
        .contains("x509: unhandled critical extension"));
}

#[test]
fn hostname_errors_in_gos_words() {
    let root = self_signed(ca_params("R"));
    // No SAN at all, the CN names the host: Go's legacy Common Name text.
    let mut cn_only = CertificateParams::new(Vec::<String>::new()).unwrap();
    cn_only
        .distinguished_name
        .push(DnType::CommonName, "registry.test");
    cn_only.not_before = days(-1);
    cn_only.not_after = days(5);
    let l = signed(cn_only.clone(), &root);
    assert_eq!(
        run(&l, &[], &[&root], "Registry.Test")
            .unwrap_err()
            .to_string(),
        "x509: certificate relies on legacy Common Name field, use SANs instead"
    );
    // A CN that does not match is the plain error; the name is shown as dialled.
    assert_eq!(
        run(&l, &[], &[&root], "Other.Test")
            .unwrap_err()
            .to_string(),
        "x509: certificate is not valid for any names, but wanted to match Other.Test"
    );
    // An IPv4-mapped IPv6 SAN equals its IPv4 address (net.IP.Equal) and prints as IPv4.
    let mut mapped = leaf_params();
    mapped.subject_alt_names = vec![SanType::IpAddress("::ffff:10.0.0.7".parse().unwrap())];
    let l = signed(mapped, &root);
    assert!(run(&l, &[], &[&root], "10.0.0.7").is_ok());
    assert_eq!(
        run(&l, &[], &[&root], "[10.0.0.8]")
            .unwrap_err()
            .to_string(),
        "x509: certificate is valid for 10.0.0.7, not 10.0.0.8"
    );
    // A SAN pattern Go refuses (trailing dot) never matches the name without it.
    let mut dotted = leaf_params();
    dotted.subject_alt_names = vec![SanType::DnsName("registry.test.".try_into().unwrap())];
    let l = signed(dotted, &root);
    assert!(run(&l, &[], &[&root], "registry.test").is_err());
}

#[test]
fn crypto_tls_prefix_follows_the_go_version() {
    // crypto/tls handshake_client.go verifyServerCertificate: go1.19 returns Verify's error
    // itself; from go1.20 a CertificateVerificationError, "tls: failed to verify certificate: ".
    let root = self_signed(ca_params("R"));
    let l = signed(leaf_params(), &root);
    let roots = [c(&root)];
    let err_at = |go| {
        verify(
            &c(&l),
            &VerifyOptions {
                roots: Roots::all(&roots),
                intermediates: &[],
                server_name: "other.test",
                now: now(),
                go,
                rsa_min_bits: go.rsa_min_bits(None),
                sha1_allowed: false,
            },
        )
        .unwrap_err()
    };
    let x509 = "x509: certificate is valid for registry.test, not other.test";
    assert_eq!(err_at(GoVersion::new(19, 8)).tls_text(), x509);
    for minor in 20..=25 {
        let err = err_at(GoVersion::new(minor, 0));
        assert_eq!(err.to_string(), x509);
        assert_eq!(
            err.tls_text(),
            format!("tls: failed to verify certificate: {x509}"),
            "go1.{minor}"
        );
    }
}

#[test]
fn a_candidate_with_a_key_go_cannot_parse_is_a_hint_until_the_cve_2024_24783_fix() {
    // An Ed25519 CA whose SPKI algorithm is rewritten to Ed448 (1.3.101.113), which crypto/x509
    // does not parse: PublicKey nil. Go before go1.21.8/go1.22.1: CheckSignatureFrom fails with
    // ErrUnsupportedAlgorithm (the hint); after: considerCandidate skips it (no hint).
    let key = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let real = Made {
        cert: ca_params("Keyless").self_signed(&key).unwrap(),
        key,
    };
    let ed25519_oid = [0x06, 0x03, 0x2b, 0x65, 0x70];
    let mut der = real.cert.der().to_vec();
    let at: Vec<usize> = (0..der.len() - 4)
        .filter(|&i| der[i..i + 5] == ed25519_oid)
        .collect();
    // TBS signature algorithm, SPKI algorithm, outer signature algorithm.
    assert_eq!(at.len(), 3, "{at:?}");
    der[at[1] + 4] = 0x71;
    let keyless = Arc::new(Cert::from_der(&der).unwrap());
    assert!(matches!(
        keyless.public_key,
        crate::cert::PublicKey::Unsupported(_)
    ));
    let l = c(&signed(leaf_params(), &real));
    let roots = [keyless];
    let err_at = |go| {
        verify(
            &l,
            &VerifyOptions {
                roots: Roots::all(&roots),
                intermediates: &[],
                server_name: "registry.test",
                now: now(),
                go,
                rsa_min_bits: go.rsa_min_bits(None),
                sha1_allowed: false,
            },
        )
        .unwrap_err()
        .to_string()
    };
    let hinted = "x509: certificate signed by unknown authority (possibly because of \"x509: cannot verify signature: algorithm unimplemented\" while trying to verify candidate authority certificate \"Keyless\")";
    let plain = "x509: certificate signed by unknown authority";
    for (go, want) in [
        (GoVersion::new(19, 8), hinted),
        (GoVersion::new(21, 7), hinted),
        (GoVersion::new(21, 8), plain),
        (GoVersion::new(22, 0), hinted),
        (GoVersion::new(22, 1), plain),
        (GoVersion::new(25, 5), plain),
    ] {
        assert_eq!(err_at(go), want, "{go}");
    }
}

#[test]
fn already_in_chain_compares_key_values_not_their_encoding() {
    // Go's PublicKey.Equal: an RSA modulus written with a leading zero (and so another SPKI
    // encoding) is the same key; another modulus is not.
    let key = KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let a = c(&Made {
        cert: ca_params("R").self_signed(&key).unwrap(),
        key,
    });
    let crate::cert::PublicKey::Rsa { n, e } = a.public_key.clone() else {
        panic!("not RSA: {:?}", a.public_key);
    };
    let mut same = (*a).clone();
    same.der = Arc::from([&a.der[..], &[0u8][..]].concat()); // another certificate, same names
    same.public_key = crate::cert::PublicKey::Rsa {
        n: [vec![0], n.clone()].concat(),
        e: e.clone(),
    };
    assert!(already_in_chain(&same, std::slice::from_ref(&a)));
    let mut other = same.clone();
    let mut n2 = n;
    if let Some(last) = n2.last_mut() {
        *last ^= 2;
    }
    other.public_key = crate::cert::PublicKey::Rsa { n: n2, e };
    assert!(!already_in_chain(&other, std::slice::from_ref(&a)));
}

#[test]
fn the_hint_names_the_candidate_by_its_last_common_name_as_go_does() {
    // verify.go UnknownAuthorityError.Error: hintCert.Subject.CommonName, which pkix.Name fills
    // with the last CN of the subject.
    use openssl::{asn1::Asn1Time, bn::BigNum, hash::MessageDigest, pkey::PKey, x509};
    let mut name = x509::X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "first").unwrap();
    name.append_entry_by_text("CN", "last").unwrap();
    let name = name.build();
    let make = |subject: &x509::X509NameRef, issuer: &x509::X509NameRef, ca: bool| {
        let key = PKey::from_ec_key(
            openssl::ec::EcKey::generate(
                &openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1)
                    .unwrap(),
            )
            .unwrap(),
        )
        .unwrap();
        let mut b = x509::X509Builder::new().unwrap();
        b.set_version(2).unwrap();
        b.set_serial_number(&BigNum::from_u32(7).unwrap().to_asn1_integer().unwrap())
            .unwrap();
        b.set_subject_name(subject).unwrap();
        b.set_issuer_name(issuer).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::days_from_now(5).unwrap())
            .unwrap();
        if ca {
            let bc = x509::extension::BasicConstraints::new()
                .critical()
                .ca()
                .build();
            b.append_extension(bc.unwrap()).unwrap();
        }
        b.sign(&key, MessageDigest::sha256()).unwrap();
        Arc::new(Cert::from_der(&b.build().to_der().unwrap()).unwrap())
    };
    let root = make(&name, &name, true);
    let mut leaf_name = x509::X509NameBuilder::new().unwrap();
    leaf_name.append_entry_by_text("CN", "leaf").unwrap();
    // Signed by its own key, not the root's: the root fails the signature check.
    let leaf = make(&leaf_name.build(), &name, false);
    let err = verify(
        &leaf,
        &VerifyOptions {
            roots: Roots::all(&[root]),
            intermediates: &[],
            server_name: "",
            now: now(),
            go: GoVersion::OLDEST_MODELLED,
            rsa_min_bits: 0,
            sha1_allowed: false,
        },
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .ends_with("while trying to verify candidate authority certificate \"last\")"),
        "{err}"
    );
}
