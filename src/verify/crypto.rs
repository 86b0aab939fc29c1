//! Signature checks with Go's acceptance rules, not webpki's.
//!
//! Go accepts RSA keys of any size before go1.24 and from 1024 bits since (webpki: 2048), P-521
//! (webpki with ring: no), PKCS#1 v1.5 and PSS with SHA-256/384/512, ECDSA with any of those hashes
//! on P-256/384/521, and Ed25519; it rejects SHA-1 and MD5 signatures on everything but the
//! (unchecked) self-signature of a root. RSA goes through the `rsa` crate (up to 8192 bits); EC
//! and Ed25519 through aws-lc-rs. The error texts are Go's, for the runtime's Go version, because
//! operators search for them (`crypto/x509/x509.go`: `checkSignature`, `InsecureAlgorithmError`,
//! `ErrUnsupportedAlgorithm`, `signaturePublicKeyAlgoMismatchError`; `crypto/rsa`: `checkKeySize`).
//!
//! Never does: I/O.

use super::GoVersion;
use crate::cert::{Hash, PublicKey, SigAlg};
use aws_lc_rs::signature as ring_sig;
use rsa::signature::Verifier;

/// Smallest RSA modulus Go accepts from go1.24 (`crypto/rsa`, `checkKeySize`) unless
/// `GODEBUG=rsa1024min=0`; older Go accepts any size ([`GoVersion::rsa_min_bits`]).
pub const MIN_RSA_BITS: usize = 1024;
/// Largest RSA modulus checked (Go's TLS client limit).
pub const MAX_RSA_BITS: usize = 8192;

/// Why a signature check failed, worded as the runtime's Go words it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigError {
    /// Go's `InsecureAlgorithmError` (MD5, SHA-1). `x509sha1_hint`: that Go still has the
    /// `x509sha1` GODEBUG and names it in the text of a SHA-1 algorithm.
    #[error("x509: cannot verify signature: insecure algorithm {alg}{}", sha1_hint(alg, *x509sha1_hint))]
    Insecure {
        alg: &'static str,
        x509sha1_hint: bool,
    },
    /// Go's `ErrUnsupportedAlgorithm`; the field says what (for regtrust's own notes, not in
    /// Go's text).
    #[error("x509: cannot verify signature: algorithm unimplemented")]
    Unsupported(String),
    #[error("crypto/rsa: verification error")]
    RsaVerification,
    #[error("x509: ECDSA verification failure")]
    EcdsaVerification,
    #[error("x509: Ed25519 verification failure")]
    Ed25519Verification,
    /// go1.24+: `crypto/rsa`'s `checkKeySize`.
    #[error("crypto/rsa: {0}-bit keys are insecure (see https://go.dev/pkg/crypto/rsa#hdr-Minimum_key_size)")]
    RsaTooSmall(usize),
    /// Go's `signaturePublicKeyAlgoMismatchError`: the algorithm's key type, and the Go type of
    /// the key the parent has.
    #[error("x509: signature algorithm specifies an {expected} public key, but have public key of type {have}")]
    KeyMismatch {
        expected: &'static str,
        have: &'static str,
    },
}

impl SigError {
    /// The parent's key is not the one that signed: the check a CA with another key (or another
    /// key type) fails, as opposed to an algorithm or key size Go refuses.
    pub fn is_wrong_key(&self) -> bool {
        matches!(
            self,
            SigError::RsaVerification
                | SigError::EcdsaVerification
                | SigError::Ed25519Verification
                | SigError::KeyMismatch { .. }
        )
    }
}

fn sha1_hint(alg: &str, hint: bool) -> &'static str {
    if hint && (alg == "SHA1-RSA" || alg == "ECDSA-SHA1") {
        " (temporarily override with GODEBUG=x509sha1=1)"
    } else {
        ""
    }
}

/// Verifies `sig` over `msg` with `key` under `alg`, with the newest modelled Go's rules and
/// defaults.
pub fn verify(alg: &SigAlg, key: &PublicKey, msg: &[u8], sig: &[u8]) -> Result<(), SigError> {
    verify_as(alg, key, msg, sig, GoVersion::NEWEST, MIN_RSA_BITS)
}

/// Verifies `sig` over `msg` with `key` under `alg`, as `go` does (`checkSignature`: the
/// algorithm's hash first, then the key's type, then the signature), refusing RSA moduli under
/// `min_rsa_bits` (that Go's [`GoVersion::rsa_min_bits`] with the runtime's GODEBUG; 0: any).
pub fn verify_as(
    alg: &SigAlg,
    key: &PublicKey,
    msg: &[u8],
    sig: &[u8],
    go: GoVersion,
    min_rsa_bits: usize,
) -> Result<(), SigError> {
    match (alg, key) {
        (SigAlg::Insecure(name), _) => Err(SigError::Insecure {
            alg: name,
            x509sha1_hint: go.has_x509sha1_godebug(),
        }),
        (SigAlg::Unknown(what), _) => Err(SigError::Unsupported(what.clone())),
        (_, PublicKey::Unsupported(what)) => {
            Err(SigError::Unsupported(format!("public key {what}")))
        }
        (SigAlg::RsaPkcs1(h), PublicKey::Rsa { n, e }) => {
            verify_rsa(n, e, (*h, false), min_rsa_bits, msg, sig)
        }
        (SigAlg::RsaPss(h), PublicKey::Rsa { n, e }) => {
            verify_rsa(n, e, (*h, true), min_rsa_bits, msg, sig)
        }
        (SigAlg::Ecdsa(h), PublicKey::Ec { curve, point }) => {
            verify_ecdsa(curve, *h, point, msg, sig)
        }
        (SigAlg::Ed25519, PublicKey::Ed25519(k)) => {
            ring_sig::UnparsedPublicKey::new(&ring_sig::ED25519, k)
                .verify(msg, sig)
                .map_err(|_| SigError::Ed25519Verification)
        }
        (alg, key) => Err(SigError::KeyMismatch {
            expected: match alg {
                SigAlg::RsaPkcs1(_) | SigAlg::RsaPss(_) => "RSA",
                SigAlg::Ecdsa(_) => "ECDSA",
                _ => "Ed25519",
            },
            have: match key {
                PublicKey::Rsa { .. } => "*rsa.PublicKey",
                PublicKey::Ec { .. } => "*ecdsa.PublicKey",
                _ => "ed25519.PublicKey",
            },
        }),
    }
}

fn verify_rsa(
    n: &[u8],
    e: &[u8],
    (h, pss): (Hash, bool),
    min_bits: usize,
    msg: &[u8],
    sig: &[u8],
) -> Result<(), SigError> {
    use rsa::BigUint;
    let n_bytes = n;
    let n = BigUint::from_bytes_be(n);
    let bits = n.bits();
    if bits < min_bits {
        return Err(SigError::RsaTooSmall(bits));
    }
    if bits <= MAX_RSA_BITS && rsa_fast(n_bytes, e, (h, pss), bits, msg, sig) {
        return Ok(());
    }
    let key = rsa::RsaPublicKey::new_with_max_size(n, BigUint::from_bytes_be(e), MAX_RSA_BITS)
        .map_err(|err| SigError::Unsupported(format!("RSA key: {err}")))?;
    let bad = |_| SigError::RsaVerification;
    macro_rules! check {
        ($hash:ty) => {{
            if pss {
                let s = rsa::pss::Signature::try_from(sig).map_err(bad)?;
                let len = <$hash as sha2::Digest>::output_size();
                rsa::pss::VerifyingKey::<$hash>::new_with_salt_len(key, len)
                    .verify(msg, &s)
                    .map_err(bad)
            } else {
                let s = rsa::pkcs1v15::Signature::try_from(sig).map_err(bad)?;
                rsa::pkcs1v15::VerifyingKey::<$hash>::new(key)
                    .verify(msg, &s)
                    .map_err(bad)
            }
        }};
    }
    match h {
        Hash::Sha256 => check!(sha2::Sha256),
        Hash::Sha384 => check!(sha2::Sha384),
        Hash::Sha512 => check!(sha2::Sha512),
    }
}

/// aws-lc-rs's RSA verification, for the keys it takes (1024–8192 bits; PSS from 2048, with the
/// salt as long as the hash, as Go's x509 asks). Only a success is final: a key it refuses or a
/// signature it rejects goes to the `rsa` crate, whose errors say why (the pure-Rust modpow
/// cost a fifth of the agent's CPU when it ran for every signature).
fn rsa_fast(
    n: &[u8],
    e: &[u8],
    (h, pss): (Hash, bool),
    bits: usize,
    msg: &[u8],
    sig: &[u8],
) -> bool {
    let alg: &'static ring_sig::RsaParameters = match (pss, h, bits >= 2048) {
        (false, Hash::Sha256, _) => &ring_sig::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY,
        (false, Hash::Sha384, true) => &ring_sig::RSA_PKCS1_2048_8192_SHA384,
        (false, Hash::Sha512, _) => &ring_sig::RSA_PKCS1_1024_8192_SHA512_FOR_LEGACY_USE_ONLY,
        (true, Hash::Sha256, true) => &ring_sig::RSA_PSS_2048_8192_SHA256,
        (true, Hash::Sha384, true) => &ring_sig::RSA_PSS_2048_8192_SHA384,
        (true, Hash::Sha512, true) => &ring_sig::RSA_PSS_2048_8192_SHA512,
        _ => return false,
    };
    fn unpadded(b: &[u8]) -> &[u8] {
        let at = b.iter().position(|x| *x != 0).unwrap_or(b.len());
        &b[at..]
    }
    let key = ring_sig::RsaPublicKeyComponents {
        n: unpadded(n),
        e: unpadded(e),
    };
    bits >= 1024 && key.verify(alg, msg, sig).is_ok()
}

fn verify_ecdsa(
    curve: &str,
    h: Hash,
    point: &[u8],
    msg: &[u8],
    sig: &[u8],
) -> Result<(), SigError> {
    let alg: &'static ring_sig::EcdsaVerificationAlgorithm = match (curve, h) {
        ("1.2.840.10045.3.1.7", Hash::Sha256) => &ring_sig::ECDSA_P256_SHA256_ASN1,
        ("1.2.840.10045.3.1.7", Hash::Sha384) => &ring_sig::ECDSA_P256_SHA384_ASN1,
        ("1.2.840.10045.3.1.7", Hash::Sha512) => &ring_sig::ECDSA_P256_SHA512_ASN1,
        ("1.3.132.0.34", Hash::Sha256) => &ring_sig::ECDSA_P384_SHA256_ASN1,
        ("1.3.132.0.34", Hash::Sha384) => &ring_sig::ECDSA_P384_SHA384_ASN1,
        ("1.3.132.0.34", Hash::Sha512) => &ring_sig::ECDSA_P384_SHA512_ASN1,
        ("1.3.132.0.35", Hash::Sha256) => &ring_sig::ECDSA_P521_SHA256_ASN1,
        ("1.3.132.0.35", Hash::Sha384) => &ring_sig::ECDSA_P521_SHA384_ASN1,
        ("1.3.132.0.35", Hash::Sha512) => &ring_sig::ECDSA_P521_SHA512_ASN1,
        (c, _) => return Err(SigError::Unsupported(format!("elliptic curve {c}"))),
    };
    ring_sig::UnparsedPublicKey::new(alg, point)
        .verify(msg, sig)
        .map_err(|_| SigError::EcdsaVerification)
}

/// A SHA-1 signature (`rsa`: PKCS #1 v1.5, else ECDSA), checked by OpenSSL (neither the `rsa`
/// crate setup here nor aws-lc-rs covers all of them: no P-384 with SHA-1): TLS 1.2 handshake
/// signatures where the runtime's Go offers them, and certificates where `x509sha1=1` lets it.
pub fn verify_sha1(rsa: bool, key: &PublicKey, msg: &[u8], sig: &[u8]) -> Result<(), SigError> {
    let mismatch = || SigError::KeyMismatch {
        expected: if rsa { "RSA" } else { "ECDSA" },
        have: match key {
            PublicKey::Rsa { .. } => "*rsa.PublicKey",
            PublicKey::Ec { .. } => "*ecdsa.PublicKey",
            _ => "ed25519.PublicKey",
        },
    };
    let wrong = || {
        if rsa {
            SigError::RsaVerification
        } else {
            SigError::EcdsaVerification
        }
    };
    let pkey = match (rsa, key) {
        (true, PublicKey::Rsa { .. }) | (false, PublicKey::Ec { .. }) => openssl_key(key),
        _ => return Err(mismatch()),
    }
    .map_err(|e| SigError::Unsupported(format!("public key: {e}")))?;
    use openssl::{hash::MessageDigest, sign::Verifier};
    let ok = Verifier::new(MessageDigest::sha1(), &pkey)
        .and_then(|mut v| {
            v.update(msg)?;
            v.verify(sig)
        })
        .unwrap_or(false);
    ok.then_some(()).ok_or_else(wrong)
}

/// An RSA or EC public key as OpenSSL holds it.
fn openssl_key(
    key: &PublicKey,
) -> Result<openssl::pkey::PKey<openssl::pkey::Public>, openssl::error::ErrorStack> {
    use openssl::{bn::BigNum, bn::BigNumContext, ec, nid::Nid, pkey::PKey, rsa::Rsa};
    match key {
        PublicKey::Rsa { n, e } => {
            let rsa = Rsa::from_public_components(BigNum::from_slice(n)?, BigNum::from_slice(e)?)?;
            PKey::from_rsa(rsa)
        }
        PublicKey::Ec { curve, point } => {
            let nid = match curve.as_str() {
                "1.2.840.10045.3.1.7" => Nid::X9_62_PRIME256V1,
                "1.3.132.0.34" => Nid::SECP384R1,
                "1.3.132.0.35" => Nid::SECP521R1,
                _ => return Err(openssl::error::ErrorStack::get()),
            };
            let group = ec::EcGroup::from_curve_name(nid)?;
            let mut ctx = BigNumContext::new()?;
            let point = ec::EcPoint::from_bytes(&group, point, &mut ctx)?;
            PKey::from_ec_key(ec::EcKey::from_public_key(&group, &point)?)
        }
        _ => Err(openssl::error::ErrorStack::get()),
    }
}

/// Maps a TLS handshake signature scheme to a [`SigAlg`].
pub fn sig_alg_of_scheme(s: rustls::SignatureScheme) -> SigAlg {
    use rustls::SignatureScheme as S;
    match s {
        S::ECDSA_NISTP256_SHA256 => SigAlg::Ecdsa(Hash::Sha256),
        S::ECDSA_NISTP384_SHA384 => SigAlg::Ecdsa(Hash::Sha384),
        S::ECDSA_NISTP521_SHA512 => SigAlg::Ecdsa(Hash::Sha512),
        S::ED25519 => SigAlg::Ed25519,
        S::RSA_PSS_SHA256 => SigAlg::RsaPss(Hash::Sha256),
        S::RSA_PSS_SHA384 => SigAlg::RsaPss(Hash::Sha384),
        S::RSA_PSS_SHA512 => SigAlg::RsaPss(Hash::Sha512),
        S::RSA_PKCS1_SHA256 => SigAlg::RsaPkcs1(Hash::Sha256),
        S::RSA_PKCS1_SHA384 => SigAlg::RsaPkcs1(Hash::Sha384),
        S::RSA_PKCS1_SHA512 => SigAlg::RsaPkcs1(Hash::Sha512),
        other => SigAlg::Unknown(format!("{other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rsa_key_and_signature(bits: u32, msg: &[u8]) -> (PublicKey, Vec<u8>) {
        let rsa = openssl::rsa::Rsa::generate(bits).unwrap();
        let pkey = openssl::pkey::PKey::from_rsa(rsa.clone()).unwrap();
        let mut signer =
            openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &pkey).unwrap();
        signer.update(msg).unwrap();
        let key = PublicKey::Rsa {
            n: rsa.n().to_vec(),
            e: rsa.e().to_vec(),
        };
        (key, signer.sign_to_vec().unwrap())
    }

    /// The aws-lc-rs path decides only successes: for every size, hash and padding, a good
    /// signature verifies (fast where aws-lc takes the key, by the `rsa` crate elsewhere) and a
    /// bad one is the `rsa` crate's `RsaVerification`; a modulus with DER's leading zero byte
    /// verifies the same.
    #[test]
    fn the_fast_rsa_path_agrees_with_the_rsa_crate() {
        use openssl::hash::MessageDigest;
        let msg = b"to be signed";
        for bits in [768u32, 1024, 1536, 2048, 3072] {
            let rsa = openssl::rsa::Rsa::generate(bits).unwrap();
            let pkey = openssl::pkey::PKey::from_rsa(rsa.clone()).unwrap();
            let mut n = vec![0u8];
            n.extend(rsa.n().to_vec());
            let e = rsa.e().to_vec();
            for (hash, md) in [
                (Hash::Sha256, MessageDigest::sha256()),
                (Hash::Sha384, MessageDigest::sha384()),
                (Hash::Sha512, MessageDigest::sha512()),
            ] {
                for pss in [false, true] {
                    let hash_len = md.size() as u32;
                    if pss && 2 * hash_len + 2 > bits / 8 {
                        continue; // salt and hash as long as the hash do not fit the modulus
                    }
                    let mut signer = openssl::sign::Signer::new(md, &pkey).unwrap();
                    if pss {
                        signer
                            .set_rsa_padding(openssl::rsa::Padding::PKCS1_PSS)
                            .unwrap();
                        signer
                            .set_rsa_pss_saltlen(openssl::sign::RsaPssSaltlen::DIGEST_LENGTH)
                            .unwrap();
                    }
                    signer.update(msg).unwrap();
                    let sig = signer.sign_to_vec().unwrap();
                    let case = format!("{bits} bits, {hash:?}, pss {pss}");
                    let fast = rsa_fast(&n, &e, (hash, pss), bits as usize, msg, &sig);
                    let expect_fast =
                        bits >= 2048 || (bits >= 1024 && !pss && hash != Hash::Sha384);
                    assert_eq!(fast, expect_fast, "{case}");
                    for key in [&n[..], &n[1..]] {
                        assert_eq!(
                            verify_rsa(key, &e, (hash, pss), 0, msg, &sig),
                            Ok(()),
                            "{case}"
                        );
                    }
                    let mut bad = sig.clone();
                    bad[5] ^= 1;
                    assert!(
                        !rsa_fast(&n, &e, (hash, pss), bits as usize, msg, &bad),
                        "{case}"
                    );
                    assert_eq!(
                        verify_rsa(&n, &e, (hash, pss), 0, msg, &bad),
                        Err(SigError::RsaVerification),
                        "{case}"
                    );
                }
            }
        }
    }

    #[test]
    fn small_rsa_keys_verify_until_go1_24_and_then_fail_with_crypto_rsas_words() {
        // crypto/rsa checkKeySize (go1.24): "N-bit keys are insecure"; go1.19–1.23 verify any size.
        let msg = b"tbs";
        let (key, sig) = rsa_key_and_signature(512, msg);
        let alg = SigAlg::RsaPkcs1(Hash::Sha256);
        for minor in 19..=23 {
            assert_eq!(
                verify_as(
                    &alg,
                    &key,
                    msg,
                    &sig,
                    GoVersion::new(minor, 0),
                    GoVersion::new(minor, 0).rsa_min_bits(None)
                ),
                Ok(()),
                "go1.{minor}"
            );
        }
        for minor in [24, 25] {
            let err = verify_as(
                &alg,
                &key,
                msg,
                &sig,
                GoVersion::new(minor, 0),
                GoVersion::new(minor, 0).rsa_min_bits(None),
            )
            .unwrap_err();
            assert_eq!(
                err.to_string(),
                "crypto/rsa: 512-bit keys are insecure (see https://go.dev/pkg/crypto/rsa#hdr-Minimum_key_size)"
            );
            assert!(!err.is_wrong_key());
        }
        assert_eq!(
            verify_as(&alg, &key, b"other", &sig, GoVersion::new(19, 8), 0),
            Err(SigError::RsaVerification)
        );
    }

    #[test]
    fn sha1_text_names_the_x509sha1_godebug_only_while_go_has_it() {
        // crypto/x509 x509.go InsecureAlgorithmError.Error: the hint until go1.23 (x509sha1
        // removed in go1.24); MD5 never has it.
        let key = PublicKey::Ed25519(vec![0; 32]);
        let words = |alg: &'static str, minor| {
            verify_as(
                &SigAlg::Insecure(alg),
                &key,
                b"",
                b"",
                GoVersion::new(minor, 0),
                0,
            )
            .unwrap_err()
            .to_string()
        };
        for minor in 19..=23 {
            assert_eq!(
                words("SHA1-RSA", minor),
                "x509: cannot verify signature: insecure algorithm SHA1-RSA (temporarily override with GODEBUG=x509sha1=1)"
            );
            assert_eq!(
                words("MD5-RSA", minor),
                "x509: cannot verify signature: insecure algorithm MD5-RSA"
            );
        }
        for minor in [24, 25] {
            assert_eq!(
                words("ECDSA-SHA1", minor),
                "x509: cannot verify signature: insecure algorithm ECDSA-SHA1"
            );
        }
    }

    #[test]
    fn unimplemented_algorithms_and_key_type_mismatches_in_gos_words() {
        // x509.go: ErrUnsupportedAlgorithm, signaturePublicKeyAlgoMismatchError.
        let rsa = PublicKey::Rsa {
            n: vec![0xff; 256],
            e: vec![1, 0, 1],
        };
        let go = GoVersion::new(19, 8);
        let err = verify_as(&SigAlg::Unknown("1.2.3".into()), &rsa, b"", b"", go, 0).unwrap_err();
        assert_eq!(
            err.to_string(),
            "x509: cannot verify signature: algorithm unimplemented"
        );
        let err = verify_as(&SigAlg::Ecdsa(Hash::Sha256), &rsa, b"", b"", go, 0).unwrap_err();
        assert_eq!(
            err.to_string(),
            "x509: signature algorithm specifies an ECDSA public key, but have public key of type *rsa.PublicKey"
        );
        assert!(err.is_wrong_key(), "a CA rotated to another key type");
    }

    #[test]
    fn rsa1024min_godebug_lifts_go1_24s_minimum() {
        use crate::cert::testcert::{der, Spec};
        use crate::cert::Cert;
        // crypto/rsa/rsa.go (go1.24), checkPublicKeySize; go1.19 has no minimum.
        let c = Cert::from_der(&der(&Spec {
            rsa_bits: Some(512),
            ..Spec::default()
        }))
        .unwrap();
        let go = GoVersion::new(24, 0);
        let check = |min| verify_as(&c.sig_alg, &c.public_key, c.tbs(), c.signature(), go, min);
        assert_eq!(check(GoVersion::new(19, 8).rsa_min_bits(None)), Ok(()));
        assert_eq!(check(GoVersion::new(24, 0).rsa_min_bits(Some("0"))), Ok(()));
        let err = check(GoVersion::new(24, 0).rsa_min_bits(None)).unwrap_err();
        assert_eq!(err, SigError::RsaTooSmall(512));
        assert_eq!(
            err.to_string(),
            "crypto/rsa: 512-bit keys are insecure (see https://go.dev/pkg/crypto/rsa#hdr-Minimum_key_size)"
        );
        // A wrong signature is still wrong at any size.
        let bad = verify_as(&c.sig_alg, &c.public_key, b"other", c.signature(), go, 0);
        assert_eq!(bad, Err(SigError::RsaVerification));
    }
}
