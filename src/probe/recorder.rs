//! A rustls certificate verifier that records what the registry presented and decides with
//! [`crate::verify`] (Go's rules), so the chain is known even when verification fails.
//!
//! Handshake signatures are checked with the same Go-compatible algorithms (RSA from 1024 bits,
//! P-521), because a registry with such a key completes its handshake with Go.

use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, Error, SignatureScheme};

use crate::cert::Cert;
use crate::verify::{self, crypto, VerifyError, VerifyOptions};

/// What the handshake showed.
#[derive(Debug, Default, Clone)]
pub struct Recorded {
    /// Leaf first, in the order sent; certificates that did not parse are counted, not kept.
    pub presented: Vec<Arc<Cert>>,
    pub unparsed: Vec<String>,
    /// `Some` once verification ran.
    pub verdict: Option<Result<(), VerifyError>>,
    /// SHA-256 of the certificate that issued the leaf in the verified chain (the leaf itself when
    /// it is trusted directly).
    pub verified_issuer_sha256: Option<String>,
}

#[derive(Debug)]
pub struct RecordingVerifier {
    roots: Arc<Vec<Arc<Cert>>>,
    server_name: String,
    skip_verify: bool,
    pub record: Arc<Mutex<Recorded>>,
}

impl RecordingVerifier {
    pub fn new(roots: Arc<Vec<Arc<Cert>>>, server_name: &str, skip_verify: bool) -> Self {
        RecordingVerifier {
            roots,
            server_name: server_name.to_string(),
            skip_verify,
            record: Arc::new(Mutex::new(Recorded::default())),
        }
    }

    fn store(&self, f: impl FnOnce(&mut Recorded)) {
        // A poisoned lock only means another thread panicked mid-write; the data is still usable.
        let mut g = self.record.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g);
    }
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let mut parsed = Vec::new();
        let mut unparsed = Vec::new();
        for der in std::iter::once(end_entity)
            .chain(intermediates)
            .take(super::MAX_CHAIN_CERTS)
        {
            match Cert::from_der(der) {
                Ok(c) => parsed.push(Arc::new(c)),
                Err(e) => unparsed.push(e),
            }
        }
        let leaf_ok = Cert::from_der(end_entity).is_ok();
        self.store(|r| {
            r.presented = parsed.clone();
            r.unparsed = unparsed;
        });
        if !leaf_ok {
            return Err(Error::InvalidCertificate(CertificateError::BadEncoding));
        }
        if self.skip_verify {
            self.store(|r| r.verdict = Some(Ok(())));
            return Ok(ServerCertVerified::assertion());
        }
        let leaf = parsed[0].clone();
        let inters: Vec<Arc<Cert>> = parsed[1..].to_vec();
        let opts = VerifyOptions {
            roots: &self.roots,
            intermediates: &inters,
            server_name: &self.server_name,
            now: now.as_secs() as i64,
        };
        let verdict = verify::verify(&leaf, &opts);
        let issuer = verdict
            .as_ref()
            .ok()
            .and_then(|chains| chains.first())
            .and_then(|chain| chain.get(1).or(chain.first()))
            .map(|c| c.sha256.clone());
        let verdict = verdict.map(|_| ());
        let ok = verdict.is_ok();
        let msg = verdict.as_ref().err().map(|e| e.to_string());
        self.store(|r| {
            r.verdict = Some(verdict);
            r.verified_issuer_sha256 = issuer;
        });
        if ok {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(Error::InvalidCertificate(CertificateError::Other(
                rustls::OtherError(Arc::new(std::io::Error::other(msg.unwrap_or_default()))),
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        check_handshake_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        check_handshake_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        crypto::tls_schemes()
    }
}

fn check_handshake_signature(
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
) -> Result<HandshakeSignatureValid, Error> {
    let leaf = Cert::from_der(cert)
        .map_err(|_| Error::InvalidCertificate(CertificateError::BadEncoding))?;
    let alg = crypto::sig_alg_of_scheme(dss.scheme);
    crypto::verify(&alg, &leaf.public_key, message, dss.signature())
        .map(|()| HandshakeSignatureValid::assertion())
        .map_err(|_| Error::InvalidCertificate(CertificateError::BadSignature))
}
