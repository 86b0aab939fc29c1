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
