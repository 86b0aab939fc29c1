//! Client certificates as Go loads and presents them.
//!
//! Loading is Go's `tls.X509KeyPair` (crypto/tls/tls.go): the first `CERTIFICATE` block(s) of the
//! certificate input, the first `PRIVATE KEY` block of the key input, and the key must be the
//! certificate's — otherwise the pair fails *before any dial* with Go's words ("tls: private key
//! does not match public key"), which the runtime wraps: containerd's hosts.go `ConfigureHosts`
//! as `failed to load X509 key pair: …`, containers/image's `tlsclientconfig.SetupCertificates`
//! not at all.
//!
//! Presenting is Go's `Config.getClientCertificate` (crypto/tls/handshake_client.go, go1.14 and
//! later): of the configured pairs, in order, the first that `CertificateRequestInfo.
//! SupportsCertificate` accepts — its key can sign with a scheme the server offers, and the server
//! named no CAs or one of them is the issuer of a certificate in the pair's chain. When none fits,
//! Go sends no certificate at all (not the first).
//!
//! Never does: file I/O (the caller reads the files under the host root) or network I/O.

use std::path::Path;
use std::sync::Arc;

use rustls::client::ResolvesClientCert;
use rustls::sign::CertifiedKey;
use rustls::{SignatureAlgorithm, SignatureScheme};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::hostroot::HostRoot;

use super::Runtime;

/// A loaded client pair, ready to present.
#[derive(Debug)]
pub struct ClientIdentity {
    /// DER of the certificate chain, leaf first.
    pub chain: Vec<Vec<u8>>,
    /// The chain with its signing key (checked to be the leaf's).
    pub certified: Arc<CertifiedKey>,
    /// Each chain certificate's raw issuer Name (DER), for the server's acceptable CAs.
    pub issuers: Vec<Vec<u8>>,
    /// Node path of the certificate file.
    pub source: String,
    /// The key's DER as the key file holds it (PKCS #1, PKCS #8 or SEC 1), for the second TLS
    /// stack, which loads keys its own way.
    pub key_der: KeyDer,
}

/// A private key's DER; `Debug` never prints it.
#[derive(Clone)]
pub struct KeyDer(pub Vec<u8>);

impl std::fmt::Debug for KeyDer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyDer({} bytes)", self.0.len())
    }
}

/// Why a pair did not load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PairError {
    /// A file could not be read: its node path and `os.ReadFile`'s error in Go's words
    /// ([`super::go_read_error`]), which `tls.LoadX509KeyPair` returns unwrapped.
    Read(String, String),
    /// `tls.X509KeyPair`'s error, in Go's words.
    KeyPair(String),
}

impl PairError {
    /// The error as `runtime` reports it.
    pub fn words(&self, runtime: Runtime) -> String {
        match (self, runtime) {
            (PairError::Read(path, go), Runtime::Containerd) => {
                format!("unable to read CERT file {path:?}: {go}")
            }
            (PairError::Read(_, go), _) => go.clone(),
            (PairError::KeyPair(e), Runtime::Containerd) => {
                format!("failed to load X509 key pair: {e}")
            }
            (PairError::KeyPair(e), _) => e.clone(),
        }
    }
}

/// Reads a client pair under the host root: certificates from `cert`, the key from `key` (or from
/// `cert` itself when there is no key file, as containerd's legacy `.cert` without `.key`).
pub(crate) fn read_client_pair(
    hr: &HostRoot,
    cert: &Path,
    key: Option<&Path>,
) -> Result<ClientIdentity, PairError> {
    let read = |p: &Path| {
        hr.read(p)
            .map_err(|e| PairError::Read(p.display().to_string(), super::go_read_error(p, &e)))
    };
    let cert_data = read(cert)?;
    let key_data = match key {
        Some(k) => read(k)?,
        None => cert_data.clone(),
    };
    x509_key_pair(&cert_data, &key_data, &cert.display().to_string()).map_err(PairError::KeyPair)
}

/// A finding's words for a pair that did not load: both files, then the runtime's error.
pub(crate) fn pair_finding(cert: &Path, key: Option<&Path>, runtime_words: &str) -> String {
    let files = match key {
        Some(k) => format!("{} with {}", cert.display(), k.display()),
        None => format!("{} (key inside it)", cert.display()),
    };
    format!("client pair {files} does not load, so the pull fails before dialling: {runtime_words}")
}

/// One PEM block: its type and its DER (`None` when the base64 is broken).
struct Block {
    label: String,
    der: Vec<u8>,
}

/// PEM blocks as Go's `pem.Decode` finds them, in order ([`crate::pem::decode_all`], the one
/// decoder).
fn pem_blocks(data: &[u8]) -> Vec<Block> {
    crate::pem::decode_all(data)
        .into_iter()
        .map(|b| Block {
            label: String::from_utf8_lossy(&b.kind).into_owned(),
            der: b.bytes,
        })
        .collect()
}

/// Go's `tls.X509KeyPair`, with its error words; `source` names the pair in the identity.
pub(crate) fn x509_key_pair(
    cert_pem: &[u8],
    key_pem: &[u8],
    source: &str,
) -> Result<ClientIdentity, String> {
    let blocks = pem_blocks(cert_pem);
    let chain: Vec<Vec<u8>> = blocks
        .iter()
        .filter(|b| b.label == "CERTIFICATE")
        .map(|b| b.der.clone())
        .collect();
    if chain.is_empty() {
        return Err(no_certificate(&blocks));
    }
    let keys = pem_blocks(key_pem);
    let Some(key_der) = keys
        .iter()
        .find(|b| b.label == "PRIVATE KEY" || b.label.ends_with(" PRIVATE KEY"))
        .map(|b| b.der.clone())
    else {
        return Err(no_key(&keys));
    };
    // X509KeyPair parses the leaf with x509.ParseCertificate.
    if let Some(e) = crate::cert::go_parse_error(&chain[0]) {
        return Err(e);
    }
    let (_, leaf) = x509_parser::parse_x509_certificate(&chain[0])
        .map_err(|e| format!("x509: malformed certificate ({e})"))?;
    let signer = load_key(key_der.clone()).ok_or("tls: failed to parse private key")?;
    if leaf_algorithm(&leaf) != Some(signer.algorithm()) {
        return Err("tls: private key type does not match public key type".into());
    }
    let certified = CertifiedKey::new(
        chain
            .iter()
            .map(|c| CertificateDer::from(c.clone()))
            .collect(),
        signer,
    );
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(_) => return Err("tls: private key does not match public key".into()),
    }
    let issuers = chain
        .iter()
        .filter_map(|c| x509_parser::parse_x509_certificate(c).ok())
        .map(|(_, c)| c.tbs_certificate.issuer.as_raw().to_vec())
        .collect();
    Ok(ClientIdentity {
        chain,
        certified: Arc::new(certified),
        issuers,
        source: source.to_string(),
        key_der: KeyDer(key_der),
    })
}

/// Go's `parsePrivateKey`: PKCS #1, then PKCS #8, then SEC 1, whatever the block's type.
fn load_key(der: Vec<u8>) -> Option<Arc<dyn rustls::sign::SigningKey>> {
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    [
        PrivateKeyDer::Pkcs1(der.clone().into()),
        PrivateKeyDer::Pkcs8(der.clone().into()),
        PrivateKeyDer::Sec1(der.into()),
    ]
    .into_iter()
    .find_map(|k| provider.key_provider.load_private_key(k).ok())
}

/// The key algorithm of the leaf's public key, as rustls names signing keys.
fn leaf_algorithm(
    leaf: &x509_parser::certificate::X509Certificate<'_>,
) -> Option<SignatureAlgorithm> {
    use x509_parser::oid_registry as oids;
    let alg = &leaf.tbs_certificate.subject_pki.algorithm.algorithm;
    if *alg == oids::OID_PKCS1_RSAENCRYPTION {
        Some(SignatureAlgorithm::RSA)
    } else if *alg == oids::OID_KEY_TYPE_EC_PUBLIC_KEY {
        Some(SignatureAlgorithm::ECDSA)
    } else if *alg == oids::OID_SIG_ED25519 {
        Some(SignatureAlgorithm::ED25519)
    } else {
        None
    }
}

/// Types of the blocks skipped, as Go lists them (`[A B]`).
fn skipped(blocks: &[Block]) -> String {
    let labels: Vec<&str> = blocks.iter().map(|b| b.label.as_str()).collect();
    format!("[{}]", labels.join(" "))
}

fn no_certificate(blocks: &[Block]) -> String {
    if blocks.is_empty() {
        "tls: failed to find any PEM data in certificate input".into()
    } else if blocks.len() == 1 && blocks[0].label.ends_with("PRIVATE KEY") {
        "tls: failed to find certificate PEM data in certificate input, but did find a private key; PEM inputs may have been switched".into()
    } else {
        format!(
            "tls: failed to find \"CERTIFICATE\" PEM block in certificate input after skipping PEM blocks of the following types: {}",
            skipped(blocks)
        )
    }
}

fn no_key(blocks: &[Block]) -> String {
    if blocks.is_empty() {
        "tls: failed to find any PEM data in key input".into()
    } else if blocks.len() == 1 && blocks[0].label == "CERTIFICATE" {
        "tls: found a certificate rather than a key in the PEM for the private key".into()
    } else {
        format!(
            "tls: failed to find PEM block with type ending in \"PRIVATE KEY\" in key input after skipping PEM blocks of the following types: {}",
            skipped(blocks)
        )
    }
}

impl ClientIdentity {
    /// Go's `CertificateRequestInfo.SupportsCertificate`: a scheme the server offers for this
    /// key, and no CA list or an issuer in it.
    pub fn supports(&self, acceptable_cas: &[&[u8]], schemes: &[SignatureScheme]) -> bool {
        if self.certified.key.choose_scheme(schemes).is_none() {
            return false;
        }
        acceptable_cas.is_empty()
            || self
                .issuers
                .iter()
                .any(|iss| acceptable_cas.contains(&iss.as_slice()))
    }
}

/// The runtime's configured pairs, presented as Go's `getClientCertificate` picks one.
#[derive(Debug)]
pub struct GoClientCerts(pub Vec<Arc<ClientIdentity>>);

impl ResolvesClientCert for GoClientCerts {
    fn resolve(
        &self,
        root_hint_subjects: &[&[u8]],
        sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.0
            .iter()
            .find(|id| id.supports(root_hint_subjects, sigschemes))
            .map(|id| id.certified.clone())
    }

    fn has_certs(&self) -> bool {
        !self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(issuer: Option<(&rcgen::Certificate, &rcgen::KeyPair)>) -> (String, rcgen::KeyPair) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(rcgen::DnType::CommonName, "node");
        let cert = match issuer {
            Some((c, k)) => p.signed_by(&key, c, k).unwrap(),
            None => p.self_signed(&key).unwrap(),
        };
        (cert.pem(), key)
    }

    fn ca(cn: &str) -> (rcgen::Certificate, rcgen::KeyPair) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        (p.self_signed(&key).unwrap(), key)
    }

    #[test]
    fn a_matching_pair_loads_and_a_foreign_key_fails_in_gos_words() {
        let (cert, key) = pair(None);
        let id = x509_key_pair(cert.as_bytes(), key.serialize_pem().as_bytes(), "c").unwrap();
        assert_eq!(id.chain.len(), 1);
        let other = rcgen::KeyPair::generate().unwrap();
        let e = x509_key_pair(cert.as_bytes(), other.serialize_pem().as_bytes(), "c").unwrap_err();
        assert_eq!(e, "tls: private key does not match public key");
        let ed = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let e2 = x509_key_pair(cert.as_bytes(), ed.serialize_pem().as_bytes(), "c").unwrap_err();
        assert_eq!(e2, "tls: private key type does not match public key type");
        let err = PairError::KeyPair(e);
        assert!(err
            .words(Runtime::Containerd)
            .starts_with("failed to load X509 key pair: tls: "));
        assert!(err.words(Runtime::Crio).starts_with("tls: "));
    }

    #[test]
    fn pairs_are_read_with_gos_pem_decode() {
        // A block without its END line before the certificate, headers on it, CRLF: Go's
        // pem.Decode still finds the certificate (X509KeyPair ignores headers).
        let (cert, key) = pair(None);
        let key = key.serialize_pem();
        let with_headers = cert.replacen("-----\n", "-----\nX-Note: 1\n", 1);
        let odd =
            format!("-----BEGIN CERTIFICATE-----\nAAAA\n{with_headers}").replace('\n', "\r\n");
        let id = x509_key_pair(odd.as_bytes(), key.as_bytes(), "c").unwrap();
        assert_eq!(id.chain.len(), 1);
    }

    #[test]
    fn missing_blocks_are_named_as_go_names_them() {
        let (cert, key) = pair(None);
        let key = key.serialize_pem();
        let e = |c: &str, k: &str| x509_key_pair(c.as_bytes(), k.as_bytes(), "c").unwrap_err();
        assert_eq!(
            e("", &key),
            "tls: failed to find any PEM data in certificate input"
        );
        assert!(e(&key, &key).contains("PEM inputs may have been switched"));
        assert_eq!(
            e(&cert, "not a key"),
            "tls: failed to find any PEM data in key input"
        );
        assert_eq!(
            e(&cert, &cert),
            "tls: found a certificate rather than a key in the PEM for the private key"
        );
        let junk = "-----BEGIN FOO-----\nAAAA\n-----END FOO-----\n";
        assert!(
            e(junk, &key).ends_with("the following types: [FOO]"),
            "{}",
            e(junk, &key)
        );
        // A key inside the .cert itself (containerd's legacy .cert without .key).
        let both = format!("{cert}{key}");
        assert!(x509_key_pair(both.as_bytes(), both.as_bytes(), "c").is_ok());
    }

    #[test]
    fn the_first_pair_an_acceptable_ca_issued_is_presented_else_none() {
        let (ca_a, ka) = ca("CA A");
        let (ca_b, kb) = ca("CA B");
        let load = |(c, k): (String, rcgen::KeyPair)| {
            Arc::new(x509_key_pair(c.as_bytes(), k.serialize_pem().as_bytes(), "c").unwrap())
        };
        let by_a = load(pair(Some((&ca_a, &ka))));
        let by_b = load(pair(Some((&ca_b, &kb))));
        let certs = GoClientCerts(vec![by_a.clone(), by_b.clone()]);
        let schemes = [SignatureScheme::ECDSA_NISTP256_SHA256];
        let name_b = x509_parser::parse_x509_certificate(ca_b.der())
            .unwrap()
            .1
            .tbs_certificate
            .subject
            .as_raw()
            .to_vec();
        let chosen = certs.resolve(&[&name_b], &schemes).unwrap();
        assert!(Arc::ptr_eq(&chosen, &by_b.certified));
        // No CA list: the first.
        let chosen = certs.resolve(&[], &schemes).unwrap();
        assert!(Arc::ptr_eq(&chosen, &by_a.certified));
        // A list naming neither: no certificate at all, as Go.
        assert!(certs.resolve(&[b"\x30\x00"], &schemes).is_none());
        // A scheme the key cannot sign with: skipped.
        assert!(certs
            .resolve(&[], &[SignatureScheme::RSA_PSS_SHA256])
            .is_none());
        assert!(certs.has_certs());
        assert!(!GoClientCerts(vec![]).has_certs());
    }
}
