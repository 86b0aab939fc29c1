//! Dangerous configuration that should be audited and used with extreme care (named as rustls
//! names such things): a rustls certificate verifier that ACCEPTS ANY CHAIN and records it.
//!
//! The probe uses it so that the chain is known even when verification fails, and so that the
//! verification itself — Go's rules, [`crate::verify`], up to 100 signature checks — runs off the
//! event loop: when the chain arrives, [`AcceptAndRecord`] hands it to the blocking pool and lets
//! the handshake go on; the probe waits for that verdict before a single byte of HTTP is sent, and
//! drops the connection as soon as the verdict is a failure (as Go aborts its handshake). Only an
//! endpoint the runtime itself does not verify (`skip_verify`) is given no [`Judge`].
//!
//! Before anything else, the presented certificates are parsed as the runtime's Go parses them
//! ([`record`]): one Go cannot parse fails the handshake with Go's "tls: failed to parse
//! certificate from server: …", and so does an RSA key above Go's TLS limit — even for a
//! `skip_verify` endpoint, because Go's `verifyServerCertificate` parses (and size-checks)
//! before it looks at `InsecureSkipVerify`.
//!
//! Handshake signatures are checked here, with the same Go-compatible algorithms (RSA from 1024
//! bits, P-521), because a registry with such a key completes its handshake with Go; the schemes
//! offered are the runtime's Go's ([`super::go_tls::Offer::schemes`]), SHA-1 in TLS 1.2 included
//! where that Go accepts it.

use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, Error, SignatureScheme};

use super::go_tls::GoDebug;
use crate::cert::{Cert, PublicKey};
use crate::verify::{self, crypto, GoVersion, VerifyError, VerifyOptions};

/// The runtime's Go as parsing a presented chain needs it: its version and GODEBUG settings.
#[derive(Debug, Clone)]
pub(crate) struct GoParse {
    pub go: GoVersion,
    pub godebug: GoDebug,
}

impl Default for GoParse {
    /// The newest modelled Go with its own defaults: what a verdict assumes when the runtime's
    /// Go is not known.
    fn default() -> Self {
        GoParse {
            go: GoVersion::NEWEST,
            godebug: GoDebug::default(),
        }
    }
}

/// What the handshake showed.
#[derive(Debug, Default, Clone)]
pub(crate) struct Recorded {
    /// Leaf first, in the order sent; certificates that did not parse are counted, not kept.
    pub presented: Vec<Arc<Cert>>,
    pub unparsed: Vec<String>,
    /// Go's error for the first certificate its TLS client refuses before any verification
    /// (`tls: failed to parse certificate from server: …`): the handshake fails with it.
    pub rejected: Option<String>,
    /// The handshake's time, for verification.
    pub now: i64,
}

/// Go's verdict on a chain: the verified leaf issuer's SHA-256, or why it does not verify.
pub(crate) type Verdict = Result<Option<String>, VerifyError>;

/// What to verify a recorded chain against, and where to send the verdict.
#[derive(Debug)]
pub(crate) struct Judge {
    pub roots: crate::verify::Pool,
    pub server_name: String,
    pub tx: tokio::sync::oneshot::Sender<Verdict>,
}

/// Accepts any chain the server sends and records it; with a [`Judge`], starts Go's verification
/// of it on the blocking pool. See the module documentation.
#[derive(Debug, Default)]
pub(crate) struct AcceptAndRecord {
    pub record: Arc<Mutex<Recorded>>,
    judge: Mutex<Option<Judge>>,
    /// The handshake signature schemes offered (the runtime's Go's).
    schemes: Vec<SignatureScheme>,
    /// The runtime's Go, whose parsing and verification rules apply.
    go: GoParse,
}

impl AcceptAndRecord {
    /// A verifier that parses the chain as `go` does, judges it with `judge` (none: the runtime
    /// skips verification) and offers `schemes` for the server's handshake signature.
    pub(crate) fn new(
        judge: Option<Judge>,
        schemes: Vec<SignatureScheme>,
        go: GoParse,
    ) -> AcceptAndRecord {
        AcceptAndRecord {
            record: Default::default(),
            judge: Mutex::new(judge),
            schemes,
            go,
        }
    }

    /// The handshake is over: a chain that never came will not be judged (its verdict channel
    /// closes, so nobody waits for it).
    pub(crate) fn handshake_over(&self) {
        drop(self.judge.lock().unwrap_or_else(|p| p.into_inner()).take());
    }

    /// Hands the chain to the blocking pool (inline when there is no runtime).
    fn start_judging(&self, rec: Recorded) {
        let judge = self.judge.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(j) = judge else { return };
        let go = self.go.clone();
        let work = move || {
            let v = verify_recorded(&rec, &j.roots, &j.server_name, &go);
            let _ = j.tx.send(v);
        };
        match tokio::runtime::Handle::try_current() {
            Ok(h) => drop(h.spawn_blocking(work)),
            Err(_) => work(),
        }
    }

    fn store(&self, f: impl FnOnce(&mut Recorded)) {
        // A poisoned lock only means another thread panicked mid-write; the data is still usable.
        let mut g = self.record.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g);
    }
}

/// What a handshake recorded from the certificates the server sent (leaf first, DER), at `now`:
/// at most [`super::MAX_CHAIN_CERTS`], those that do not parse counted in `unparsed`, and the
/// first that `go`'s TLS client refuses before verification in `rejected` — Go's
/// `verifyServerCertificate` parses each in order, failing on a parse error
/// ("tls: failed to parse certificate from server: …") or, from go1.19.12/go1.20.7/go1.21, on an
/// RSA key above its limit ("tls: server sent certificate containing RSA key larger than 8192
/// bits").
pub(crate) fn record<'a>(ders: impl Iterator<Item = &'a [u8]>, now: i64, go: &GoParse) -> Recorded {
    let mut rec = Recorded {
        now,
        ..Recorded::default()
    };
    let max_rsa = go.go.tls_max_rsa_bits(go.godebug.get("tlsmaxrsasize"));
    for der in ders.take(super::MAX_CHAIN_CERTS) {
        let refused = match Cert::shared_go(der) {
            Ok(c) => {
                let refused = c
                    .go_parse_error(go.go, go.godebug.get("x509negativeserial"))
                    .map(|e| format!("tls: failed to parse certificate from server: {e}"))
                    .or_else(|| {
                        let max = max_rsa?;
                        let bits = rsa_bits(&c.public_key)?;
                        (bits > max).then(|| {
                            format!(
                            "tls: server sent certificate containing RSA key larger than {max} bits"
                        )
                        })
                    });
                rec.presented.push(c);
                refused
            }
            Err(e) => {
                let text = e.text(go.go);
                rec.unparsed.push(text.clone());
                Some(format!(
                    "tls: failed to parse certificate from server: {text}"
                ))
            }
        };
        if rec.rejected.is_none() {
            rec.rejected = refused;
        }
    }
    rec
}

/// An RSA key's modulus length in bits.
fn rsa_bits(key: &PublicKey) -> Option<usize> {
    let PublicKey::Rsa { n, .. } = key else {
        return None;
    };
    let n: &[u8] = {
        let zeros = n.iter().take_while(|&&b| b == 0).count();
        &n[zeros..]
    };
    let first = n.first()?;
    Some(n.len() * 8 - first.leading_zeros() as usize)
}

/// Go's verdict on a recorded chain, and the SHA-256 of the certificate that issued the leaf in the
/// verified chain (the leaf itself when it is trusted directly). CPU-bound: call it off the loop.
pub(crate) fn verify_recorded(
    rec: &Recorded,
    roots: &crate::verify::Pool,
    server_name: &str,
    go: &GoParse,
) -> Verdict {
    let Some(leaf) = rec.presented.first() else {
        return Ok(None);
    };
    let inters: Vec<Arc<Cert>> = rec.presented[1..].to_vec();
    // AppendCertsFromPEM skipped the CAs this Go cannot parse: they are not in its pool.
    let negative_serial = go.godebug.get("x509negativeserial");
    let usable = |r: &Cert| r.go_parse_error(go.go, negative_serial).is_none();
    let opts = VerifyOptions {
        roots: roots.roots(&usable),
        intermediates: &inters,
        server_name,
        now: rec.now,
        go: go.go,
        rsa_min_bits: go.go.rsa_min_bits(go.godebug.get("rsa1024min")),
        sha1_allowed: go.go.x509sha1_allowed(go.godebug.get("x509sha1")),
    };
    let chains = verify::verify(leaf, &opts)?;
    Ok(chains
        .first()
        .and_then(|chain| chain.get(1).or(chain.first()))
        .map(|c| c.sha256.clone()))
}

impl ServerCertVerifier for AcceptAndRecord {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let ders = std::iter::once(end_entity)
            .chain(intermediates)
            .map(|d| d.as_ref());
        let rec = record(ders, now.as_secs() as i64, &self.go);
        self.store(|r| *r = rec.clone());
        if rec.rejected.is_some() {
            // Go aborts here, skip_verify or not; the probe reports `rejected`.
            return Err(Error::InvalidCertificate(CertificateError::BadEncoding));
        }
        self.start_judging(rec);
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        check_handshake_signature(message, cert, dss, self.rsa_min_bits())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        check_handshake_signature(message, cert, dss, self.rsa_min_bits())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes.clone()
    }
}

impl AcceptAndRecord {
    fn rsa_min_bits(&self) -> usize {
        self.go.go.rsa_min_bits(self.go.godebug.get("rsa1024min"))
    }
}

fn check_handshake_signature(
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
    min_rsa_bits: usize,
) -> Result<HandshakeSignatureValid, Error> {
    let leaf = Cert::from_der(cert)
        .map_err(|_| Error::InvalidCertificate(CertificateError::BadEncoding))?;
    let ok = match dss.scheme {
        SignatureScheme::RSA_PKCS1_SHA1 | SignatureScheme::ECDSA_SHA1_Legacy => {
            verify_sha1(dss.scheme, &leaf.public_key, message, dss.signature())
        }
        scheme => {
            let alg = crypto::sig_alg_of_scheme(scheme);
            crypto::verify_as(
                &alg,
                &leaf.public_key,
                message,
                dss.signature(),
                GoVersion::NEWEST,
                min_rsa_bits,
            )
            .is_ok()
        }
    };
    ok.then(HandshakeSignatureValid::assertion)
        .ok_or(Error::InvalidCertificate(CertificateError::BadSignature))
}

/// A TLS 1.2 handshake signature with SHA-1 (offered only where the runtime's Go accepts it:
/// `rsa_pkcs1_sha1`, `ecdsa_sha1`). Certificates signed with SHA-1 are a different matter,
/// judged by [`crate::verify`].
fn verify_sha1(scheme: SignatureScheme, key: &PublicKey, message: &[u8], sig: &[u8]) -> bool {
    crypto::verify_sha1(scheme == SignatureScheme::RSA_PKCS1_SHA1, key, message, sig).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cert::testcert::{der, tlv, Spec};
    use openssl::{ec, hash::MessageDigest, nid::Nid, pkey::PKey, rsa::Rsa, sign::Signer};

    fn go(minor: u32, patch: u32, godebug: &str) -> GoParse {
        GoParse {
            go: GoVersion::new(minor, patch),
            godebug: GoDebug::parse(godebug),
        }
    }

    #[test]
    fn a_presented_certificate_go_cannot_parse_is_rejected_in_gos_words() {
        // crypto/tls handshake_client.go, verifyServerCertificate: ParseCertificate of each.
        let ku = tlv(0x03, &[0x07, 0x80]);
        let dup = der(&Spec {
            exts: vec![("2.5.29.15", true, ku.clone()), ("2.5.29.15", true, ku)],
            ..Spec::default()
        });
        let good = der(&Spec::default());
        let rec = record(
            [good.as_slice(), dup.as_slice()].into_iter(),
            0,
            &go(19, 8, ""),
        );
        assert_eq!(
            rec.rejected.as_deref(),
            Some("tls: failed to parse certificate from server: x509: certificate contains duplicate extensions")
        );
        assert_eq!(rec.presented.len(), 1);
        assert_eq!(rec.unparsed.len(), 1);
        let rec = record([good.as_slice()].into_iter(), 0, &go(19, 8, ""));
        assert_eq!(rec.rejected, None);
    }

    #[test]
    fn negative_serials_fail_the_handshake_and_leave_the_pool_from_go1_23() {
        let neg = der(&Spec {
            serial: "-7",
            ..Spec::default()
        });
        let rejected = |g: &GoParse| record([neg.as_slice()].into_iter(), 0, g).rejected;
        assert_eq!(rejected(&go(19, 8, "")), None);
        assert_eq!(
            rejected(&go(23, 0, "")).as_deref(),
            Some("tls: failed to parse certificate from server: x509: negative serial number")
        );
        assert_eq!(rejected(&go(24, 0, "x509negativeserial=1")), None);
        // As a CA: AppendCertsFromPEM skips it, so a leaf it would anchor is not trusted.
        let cert = Arc::new(Cert::from_der(&neg).unwrap());
        let rec = Recorded {
            presented: vec![cert.clone()],
            now: cert.not_before + 1,
            ..Recorded::default()
        };
        let roots = crate::verify::Pool::of(vec![cert]);
        assert!(verify_recorded(&rec, &roots, "", &go(19, 8, "")).is_ok());
        assert!(matches!(
            verify_recorded(&rec, &roots, "", &go(23, 0, "")),
            Err(VerifyError {
                kind: crate::verify::VerifyErrorKind::UnknownAuthority { .. },
                ..
            })
        ));
    }

    #[test]
    fn an_rsa_key_above_gos_tls_limit_fails_the_handshake_from_go1_19_12() {
        // crypto/tls handshake_client.go, verifyServerCertificate: maxRSAKeySize (8192), raised
        // by tlsmaxrsasize from go1.22; go1.19.8 has no limit.
        let big = der(&Spec {
            fake_rsa_public_bits: Some(8200),
            ..Spec::default()
        });
        let rejected = |g: &GoParse| record([big.as_slice()].into_iter(), 0, g).rejected;
        assert_eq!(rejected(&go(19, 8, "")), None);
        let words = "tls: server sent certificate containing RSA key larger than 8192 bits";
        assert_eq!(rejected(&go(19, 12, "")).as_deref(), Some(words));
        assert_eq!(rejected(&go(25, 5, "")).as_deref(), Some(words));
        assert_eq!(rejected(&go(22, 0, "tlsmaxrsasize=16384")), None);
    }

    #[test]
    fn rsa_modulus_length_in_bits() {
        let key = |n: Vec<u8>| PublicKey::Rsa {
            n,
            e: vec![1, 0, 1],
        };
        assert_eq!(rsa_bits(&key(vec![0x00, 0x80, 0x00])), Some(16));
        assert_eq!(rsa_bits(&key(vec![0x01, 0x00])), Some(9));
        assert_eq!(rsa_bits(&key(vec![0; 3])), None);
        assert_eq!(rsa_bits(&PublicKey::Ed25519(vec![])), None);
    }

    fn sign(key: &PKey<openssl::pkey::Private>, msg: &[u8]) -> Vec<u8> {
        let mut s = Signer::new(MessageDigest::sha1(), key).unwrap();
        s.update(msg).unwrap();
        s.sign_to_vec().unwrap()
    }

    #[test]
    fn sha1_handshake_signatures_verify_as_go_accepts_them() {
        let msg = b"server key exchange params";
        let rsa = Rsa::generate(2048).unwrap();
        let key = PublicKey::Rsa {
            n: rsa.n().to_vec(),
            e: rsa.e().to_vec(),
        };
        let sig = sign(&PKey::from_rsa(rsa).unwrap(), msg);
        assert!(verify_sha1(
            SignatureScheme::RSA_PKCS1_SHA1,
            &key,
            msg,
            &sig
        ));
        assert!(!verify_sha1(
            SignatureScheme::RSA_PKCS1_SHA1,
            &key,
            b"other",
            &sig
        ));
        assert!(!verify_sha1(
            SignatureScheme::ECDSA_SHA1_Legacy,
            &key,
            msg,
            &sig
        ));
        // P-384 with SHA-1: the case aws-lc-rs has no algorithm for.
        let group = ec::EcGroup::from_curve_name(Nid::SECP384R1).unwrap();
        let ec_key = ec::EcKey::generate(&group).unwrap();
        let mut ctx = openssl::bn::BigNumContext::new().unwrap();
        let point = ec_key
            .public_key()
            .to_bytes(&group, ec::PointConversionForm::UNCOMPRESSED, &mut ctx)
            .unwrap();
        let key = PublicKey::Ec {
            curve: "1.3.132.0.34".into(),
            point,
        };
        let sig = sign(&PKey::from_ec_key(ec_key).unwrap(), msg);
        assert!(verify_sha1(
            SignatureScheme::ECDSA_SHA1_Legacy,
            &key,
            msg,
            &sig
        ));
        assert!(!verify_sha1(
            SignatureScheme::ECDSA_SHA1_Legacy,
            &key,
            b"x",
            &sig
        ));
    }
}
