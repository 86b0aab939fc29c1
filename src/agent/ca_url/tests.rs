//! `expected_ca_url` against an in-process HTTPS server on 127.0.0.1 with generated certificates.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

const TIMEOUT: Duration = Duration::from_secs(3);

struct Pki {
    ca: rcgen::Certificate,
    leaf: rcgen::Certificate,
    leaf_key: KeyPair,
    /// The CA the server publishes (what the registry is expected to move to).
    published: rcgen::Certificate,
}

fn new_ca(cn: &str) -> (rcgen::Certificate, KeyPair) {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    (p.self_signed(&key).unwrap(), key)
}

fn pki() -> Pki {
    let (ca, ca_key) = new_ca("pki server CA");
    let leaf_key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    p.subject_alt_names
        .push(SanType::IpAddress([127, 0, 0, 1].into()));
    let leaf = p.signed_by(&leaf_key, &ca, &ca_key).unwrap();
    Pki {
        ca,
        leaf,
        leaf_key,
        published: new_ca("registry CA, next").0,
    }
}

/// What the server answers after the request head.
#[derive(Clone)]
enum Answer {
    /// 200 with this body and its Content-Length.
    Body(Vec<u8>),
    /// 200, no Content-Length, this many bytes, then close.
    Endless(usize),
    /// A status line such as "302 Found".
    Status(&'static str),
    /// Nothing, ever (the connection stays open).
    Silent,
}

/// Serves `answer` over TLS with the PKI's leaf on 127.0.0.1 (the task ends with the test).
async fn serve(p: &Pki, answer: Answer) -> SocketAddr {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let key = rustls::pki_types::PrivateKeyDer::try_from(p.leaf_key.serialize_der()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![p.leaf.der().clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, answer) = (acceptor.clone(), answer.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = [0u8; 4096];
                let _ = tls.read(&mut buf).await;
                let out = match answer {
                    Answer::Body(b) => {
                        let mut out =
                            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", b.len())
                                .into_bytes();
                        out.extend(b);
                        out
                    }
                    Answer::Endless(n) => {
                        let mut out = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".to_vec();
                        out.extend(std::iter::repeat_n(b'A', n));
                        out
                    }
                    Answer::Status(s) => format!(
                        "HTTP/1.1 {s}\r\nLocation: https://elsewhere.test/\r\nContent-Length: 0\r\n\r\n"
                    )
                    .into_bytes(),
                    Answer::Silent => {
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        return;
                    }
                };
                let _ = tls.write_all(&out).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    addr
}

fn url(addr: SocketAddr, trust: CaUrlTrust) -> CaUrl {
    CaUrl {
        url: reqwest::Url::parse(&format!("https://{addr}/v1/pki/ca/pem")).unwrap(),
        trust,
    }
}

fn pin(p: &Pki) -> CaUrlTrust {
    CaUrlTrust::PinnedLeaf(crate::cert::sha256_hex(p.leaf.der()))
}

fn ca_file(dir: &tempfile::TempDir, pem: &str) -> CaUrlTrust {
    let path: PathBuf = dir.path().join("pki-ca.pem");
    std::fs::write(&path, pem).unwrap();
    CaUrlTrust::CaFile(path)
}

#[tokio::test]
async fn a_pinned_server_is_read_and_a_wrong_pin_is_an_error() {
    let p = pki();
    let addr = serve(&p, Answer::Body(p.published.pem().into_bytes())).await;
    let shas = fetch(&url(addr, pin(&p)), TIMEOUT).await.unwrap();
    assert_eq!(shas, [crate::cert::sha256_hex(p.published.der())]);

    let wrong = CaUrlTrust::PinnedLeaf("ab".repeat(32));
    let err = fetch(&url(addr, wrong), TIMEOUT).await.unwrap_err();
    assert!(
        err.starts_with(&format!("https://{addr}/v1/pki/ca/pem: "))
            && err.contains(&format!("not the pinned {}", "ab".repeat(32))),
        "{err}"
    );
}

#[tokio::test]
async fn a_ca_file_verifies_the_server_and_the_registry_trust_is_not_used() {
    let p = pki();
    let addr = serve(&p, Answer::Body(p.published.pem().into_bytes())).await;
    let dir = tempfile::tempdir().unwrap();
    let shas = fetch(&url(addr, ca_file(&dir, &p.ca.pem())), TIMEOUT)
        .await
        .unwrap();
    assert_eq!(shas, [crate::cert::sha256_hex(p.published.der())]);
    // Another CA (here the one being published) does not verify the server.
    let err = fetch(&url(addr, ca_file(&dir, &p.published.pem())), TIMEOUT)
        .await
        .unwrap_err();
    assert!(
        err.contains("UnknownIssuer") || err.contains("unknown issuer"),
        "{err}"
    );
    let err = fetch(&url(addr, ca_file(&dir, "not a pem")), TIMEOUT)
        .await
        .unwrap_err();
    assert!(err.contains("holds no usable CA certificate"), "{err}");
    let missing = CaUrlTrust::CaFile(dir.path().join("missing.pem"));
    let err = fetch(&url(addr, missing), TIMEOUT).await.unwrap_err();
    assert!(err.contains("missing.pem"), "{err}");
}

#[tokio::test]
async fn oversized_redirected_empty_and_silent_answers_are_errors() {
    let p = pki();
    let big = serve(&p, Answer::Endless(MAX_BODY_BYTES + 1)).await;
    let err = fetch(&url(big, pin(&p)), TIMEOUT).await.unwrap_err();
    assert!(err.contains("larger than 1048576 bytes"), "{err}");
    let declared = serve(&p, Answer::Body(vec![b'-'; MAX_BODY_BYTES + 1])).await;
    let err = fetch(&url(declared, pin(&p)), TIMEOUT).await.unwrap_err();
    assert!(err.contains("larger than"), "{err}");
    // Exactly the limit is fine (and yields what PEM it holds).
    let mut at_limit = p.published.pem().into_bytes();
    at_limit.resize(MAX_BODY_BYTES, b'\n');
    let at = serve(&p, Answer::Body(at_limit)).await;
    assert!(fetch(&url(at, pin(&p)), TIMEOUT).await.is_ok());

    let moved = serve(&p, Answer::Status("302 Found")).await;
    let err = fetch(&url(moved, pin(&p)), TIMEOUT).await.unwrap_err();
    assert!(
        err.contains("HTTP 302") && err.contains("not followed"),
        "{err}"
    );
    let gone = serve(&p, Answer::Status("404 Not Found")).await;
    let err = fetch(&url(gone, pin(&p)), TIMEOUT).await.unwrap_err();
    assert!(err.contains("HTTP 404"), "{err}");
    let empty = serve(&p, Answer::Body(b"{}".to_vec())).await;
    let err = fetch(&url(empty, pin(&p)), TIMEOUT).await.unwrap_err();
    assert!(err.contains("no PEM certificate"), "{err}");

    let silent = serve(&p, Answer::Silent).await;
    let start = Instant::now();
    let err = fetch(&url(silent, pin(&p)), Duration::from_millis(500))
        .await
        .unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(3), "{err}");
}

#[test]
fn fetched_cas_join_the_expected_set_and_a_failure_is_its_error() {
    let base = Expected {
        shas: vec!["bb".into()],
        error: None,
        ..Default::default()
    };
    let ok: Result<Vec<String>, String> = Ok(vec!["cc".into(), "aa".into(), "bb".into()]);
    let joined = join(Some(&base), Some(&ok)).unwrap();
    assert_eq!(joined.shas, ["aa", "bb", "cc"]);
    assert_eq!(joined.error, None);
    assert_eq!(join(None, Some(&ok)).unwrap().shas, ["aa", "bb", "cc"]);
    assert_eq!(join(Some(&base), None), Some(base.clone()));
    assert_eq!(join(None, None), None);
    let failed: Result<Vec<String>, String> = Err("https://ca.test/: HTTP 500".into());
    let joined = join(Some(&base), Some(&failed)).unwrap();
    assert_eq!(joined.error.as_deref(), Some("https://ca.test/: HTTP 500"));
    let file_too = Expected {
        error: Some("/e.pem: no such file".into()),
        ..base
    };
    assert_eq!(
        join(Some(&file_too), Some(&failed))
            .unwrap()
            .error
            .as_deref(),
        Some("/e.pem: no such file; https://ca.test/: HTTP 500")
    );
}
