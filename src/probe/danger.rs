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
//! Handshake signatures are checked here, with the same Go-compatible algorithms (RSA from 1024
//! bits, P-521), because a registry with such a key completes its handshake with Go.

use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, Error, SignatureScheme};

use crate::cert::Cert;
use crate::verify::{self, crypto, GoVersion, VerifyError, VerifyOptions};

/// What the handshake showed.
#[derive(Debug, Default, Clone)]
pub(crate) struct Recorded {
    /// Leaf first, in the order sent; certificates that did not parse are counted, not kept.
    pub presented: Vec<Arc<Cert>>,
    pub unparsed: Vec<String>,
    /// The handshake's time, for verification.
    pub now: i64,
}

/// Go's verdict on a chain: the verified leaf issuer's SHA-256, or why it does not verify.
pub(crate) type Verdict = Result<Option<String>, VerifyError>;

/// What to verify a recorded chain against, and where to send the verdict.
#[derive(Debug)]
pub(crate) struct Judge {
    pub roots: Arc<Vec<Arc<Cert>>>,
    pub server_name: String,
    /// The runtime's Go, whose rules the verdict follows.
    pub go: GoVersion,
    pub tx: tokio::sync::oneshot::Sender<Verdict>,
}

/// Accepts any chain the server sends and records it; with a [`Judge`], starts Go's verification
/// of it on the blocking pool. See the module documentation.
#[derive(Debug, Default)]
pub(crate) struct AcceptAndRecord {
    pub record: Arc<Mutex<Recorded>>,
    judge: Mutex<Option<Judge>>,
}

impl AcceptAndRecord {
    /// A verifier that judges the chain with `judge` (none: the runtime skips verification).
    pub(crate) fn new(judge: Option<Judge>) -> AcceptAndRecord {
        AcceptAndRecord {
            record: Default::default(),
            judge: Mutex::new(judge),
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
        let work = move || {
            let v = verify_recorded(&rec, &j.roots, &j.server_name, j.go);
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

/// Go's verdict on a recorded chain, and the SHA-256 of the certificate that issued the leaf in the
/// verified chain (the leaf itself when it is trusted directly). CPU-bound: call it off the loop.
pub(crate) fn verify_recorded(
    rec: &Recorded,
    roots: &[Arc<Cert>],
    server_name: &str,
    go: GoVersion,
) -> Verdict {
    let Some(leaf) = rec.presented.first() else {
        return Ok(None);
    };
    let inters: Vec<Arc<Cert>> = rec.presented[1..].to_vec();
    let opts = VerifyOptions {
        roots,
        intermediates: &inters,
        server_name,
        now: rec.now,
        go,
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
        let rec = Recorded {
            presented: parsed,
            unparsed,
            now: now.as_secs() as i64,
        };
        self.store(|r| *r = rec.clone());
        if !leaf_ok {
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
