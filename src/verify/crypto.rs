//! Signature checks with Go's acceptance rules, not webpki's.
//!
//! Go accepts RSA keys of any size before go1.24 and from 1024 bits after (webpki: 2048; see
//! [`verify_min`]), P-521 (webpki with ring: no), PKCS#1 v1.5 and
//! PSS with SHA-256/384/512, ECDSA with any of those hashes on P-256/384/521, and Ed25519; it
//! rejects SHA-1 and MD5 signatures on everything but the (unchecked) self-signature of a root.
//! RSA goes through the `rsa` crate (up to 8192 bits); EC and Ed25519 through
//! aws-lc-rs. The error texts copy Go's, because operators search for them.
//!
//! Never does: I/O.

use crate::cert::{Hash, PublicKey, SigAlg};
use aws_lc_rs::signature as ring_sig;
use rsa::signature::Verifier;

/// Smallest RSA modulus go1.24 and later accept by default (`rsa1024min`); older Go accepts any
/// size ([`crate::verify::GoVersion::rsa_min_bits`]).
pub const MIN_RSA_BITS: usize = 1024;
/// Largest RSA modulus checked (Go's TLS client limit).
pub const MAX_RSA_BITS: usize = 8192;

/// Why a signature check failed, worded as Go words it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigError {
    #[error("x509: cannot verify signature: insecure algorithm {0}")]
    Insecure(&'static str),
    #[error("x509: cannot verify signature: algorithm unimplemented ({0})")]
    Unsupported(String),
    #[error("crypto/rsa: verification error")]
    RsaVerification,
    #[error("x509: ECDSA verification failure")]
    EcdsaVerification,
    #[error("x509: Ed25519 verification failure")]
    Ed25519Verification,
    /// go1.24's `checkKeySize` (`crypto/rsa/rsa.go`).
    #[error("crypto/rsa: {0}-bit keys are insecure (see https://go.dev/pkg/crypto/rsa#hdr-Minimum_key_size)")]
    RsaTooSmall(usize),
    #[error("x509: signature algorithm does not match the public key type ({0})")]
    KeyMismatch(String),
}

/// Verifies `sig` over `msg` with `key` under `alg`, refusing RSA keys under 1024 bits as go1.24
/// does by default.
pub fn verify(alg: &SigAlg, key: &PublicKey, msg: &[u8], sig: &[u8]) -> Result<(), SigError> {
    verify_min(alg, key, msg, sig, MIN_RSA_BITS)
}

/// [`verify`] with the runtime's Go's smallest RSA modulus (0: any size, as before go1.24).
pub fn verify_min(
    alg: &SigAlg,
    key: &PublicKey,
    msg: &[u8],
    sig: &[u8],
    min_rsa_bits: usize,
) -> Result<(), SigError> {
    match (alg, key) {
        (SigAlg::Insecure(name), _) => Err(SigError::Insecure(name)),
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
        (alg, _) => Err(SigError::KeyMismatch(format!("{alg:?}"))),
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
    let n = BigUint::from_bytes_be(n);
    let bits = n.bits();
    if bits < min_bits {
        return Err(SigError::RsaTooSmall(bits));
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
    use crate::cert::testcert::{der, Spec};
    use crate::cert::Cert;
    use crate::verify::GoVersion;

    #[test]
    fn small_rsa_keys_verify_before_go1_24_and_fail_after_in_gos_words() {
        // crypto/rsa/rsa.go (go1.24), checkPublicKeySize; go1.19 has no minimum.
        let c = Cert::from_der(&der(&Spec {
            rsa_bits: Some(512),
            ..Spec::default()
        }))
        .unwrap();
        let check = |min| verify_min(&c.sig_alg, &c.public_key, &c.tbs, &c.signature, min);
        assert_eq!(check(GoVersion::new(19, 8).rsa_min_bits(None)), Ok(()));
        assert_eq!(check(GoVersion::new(24, 0).rsa_min_bits(Some("0"))), Ok(()));
        let err = check(GoVersion::new(24, 0).rsa_min_bits(None)).unwrap_err();
        assert_eq!(err, SigError::RsaTooSmall(512));
        assert_eq!(
            err.to_string(),
            "crypto/rsa: 512-bit keys are insecure (see https://go.dev/pkg/crypto/rsa#hdr-Minimum_key_size)"
        );
        // A wrong signature is still wrong at any size.
        let bad = verify_min(&c.sig_alg, &c.public_key, b"other", &c.signature, 0);
        assert_eq!(bad, Err(SigError::RsaVerification));
    }
}
