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
) -> Result<Vec<Chain>, VerifyError> {
    let roots: Vec<_> = roots.iter().map(|m| c(m)).collect();
    let inters: Vec<_> = inters.iter().map(|m| c(m)).collect();
    verify(
        &c(leaf),
        &VerifyOptions {
            roots: &roots,
            intermediates: &inters,
            server_name: name,
            now: now(),
            go: GoVersion::OLDEST_MODELLED,
            rsa_min_bits: GoVersion::OLDEST_MODELLED.rsa_min_bits(None),
        },
    )
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
        VerifyError::UnknownAuthority { hint: Some(h), .. } => {
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
fn expired_root_fails_as_in_go() {
    let mut p = ca_params("Old");
    p.not_before = days(-10);
    p.not_after = days(-1);
    let old = self_signed(p);
    let err = run(&signed(leaf_params(), &old), &[], &[&old], "registry.test").unwrap_err();
    assert!(
        matches!(
            &err,
            VerifyError::UnknownAuthority {
                hint: Some(Hint {
                    problem: CandidateProblem::Time { .. },
                    ..
                }),
                ..
            }
        ),
        "{err:?}"
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
        Err(VerifyError::UnknownAuthority { hint: None, .. })
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
        Err(VerifyError::IncompatibleUsage)
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
        matches!(err, VerifyError::LeafTime { .. }),
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
        Err(VerifyError::TooManySignatureChecks)
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
            roots: &roots,
            intermediates: &[],
            server_name: "registry.test",
            now: now(),
            go,
            rsa_min_bits: go.rsa_min_bits(None),
        };
        assert!(verify(&c(&l), &opts).is_ok(), "{go}");
        let only_bad = [roots[0].clone()];
        let opts = VerifyOptions {
            roots: &only_bad,
            ..opts
        };
        assert!(
            matches!(verify(&c(&l), &opts), Err(VerifyError::NameConstraint(_))),
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
