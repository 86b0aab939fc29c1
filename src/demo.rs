//! `regtrust demo`: the incident, replayed on loopback with no setup, through the same code as
//! `check`. A TLS `/v2/` endpoint serves a certificate from CA-A; a temporary host root whose
//! containerd hosts dir trusts CA-A checks ok; the endpoint rotates to CA-B — same subject, new
//! key — and the check reports `ca_key_mismatch` with both sides' fingerprints.
//!
//! [`TlsRegistry`] (a tiny in-process TLS server whose certificate can be swapped) is also used by
//! tests that need a server misbehaving in ways a real registry will not.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose, SanType};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::check::{self, Report};
use crate::diagnose::Reason;
use crate::hostroot::HostRoot;
use crate::probe::ProbeSettings;
use crate::trust::{Runtime, TrustSettings};

/// Errors setting up the demo (never expected; reported, not panicked).
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("generating certificates: {0}")]
    Cert(#[from] rcgen::Error),
    #[error("TLS setup: {0}")]
    Tls(#[from] rustls::Error),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Config(#[from] crate::trust::ConfigError),
}

/// A CA: its certificate and key.
pub struct Ca {
    pub cert: rcgen::Certificate,
    pub key: KeyPair,
}

impl Ca {
    /// A CA with subject `CN=cn` and a fresh key: two calls with the same `cn` reproduce the incident.
    pub fn new(cn: &str) -> Result<Ca, rcgen::Error> {
        let key = KeyPair::generate()?;
        let mut p = CertificateParams::new(Vec::<String>::new())?;
        p.distinguished_name.push(DnType::CommonName, cn);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = p.self_signed(&key)?;
        Ok(Ca { cert, key })
    }

    /// A serving certificate for 127.0.0.1 / localhost signed by this CA.
    pub fn issue_server(&self) -> Result<(rcgen::Certificate, KeyPair), rcgen::Error> {
        let key = KeyPair::generate()?;
        let mut p = CertificateParams::new(vec!["localhost".to_string()])?;
        p.subject_alt_names
            .push(SanType::IpAddress(std::net::IpAddr::from([127, 0, 0, 1])));
        p.distinguished_name.push(DnType::CommonName, "127.0.0.1");
        p.use_authority_key_identifier_extension = true;
        let cert = p.signed_by(&key, &self.cert, &self.key)?;
        Ok((cert, key))
    }
}

#[derive(Debug)]
struct Swappable(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Swappable {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.read().unwrap_or_else(|p| p.into_inner()).clone())
    }
}

/// An in-process TLS server answering `GET /v2/` with `200 {}`, whose certificate can be swapped.
pub struct TlsRegistry {
    pub addr: SocketAddr,
    current: Arc<Swappable>,
    task: tokio::task::JoinHandle<()>,
}

fn certified(
    chain: &[&rcgen::Certificate],
    key: &KeyPair,
) -> Result<Arc<CertifiedKey>, rustls::Error> {
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let der = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let signing = provider.key_provider.load_private_key(der)?;
    Ok(Arc::new(CertifiedKey::new(
        chain.iter().map(|c| c.der().clone()).collect(),
        signing,
    )))
}

impl TlsRegistry {
    /// Starts serving `chain` (leaf first) on 127.0.0.1 at an ephemeral port.
    pub async fn start(
        chain: &[&rcgen::Certificate],
        key: &KeyPair,
    ) -> Result<TlsRegistry, DemoError> {
        let current = Arc::new(Swappable(RwLock::new(certified(chain, key)?)));
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(current.clone());
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut buf = [0u8; 2048];
                    let _ =
                        tokio::time::timeout(std::time::Duration::from_secs(5), tls.read(&mut buf))
                            .await;
                    let body = "{}";
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nDocker-Distribution-Api-Version: registry/2.0\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = tls.write_all(resp.as_bytes()).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        Ok(TlsRegistry {
            addr,
            current,
            task,
        })
    }

    /// Serves `chain` from now on (new connections).
    pub fn rotate(&self, chain: &[&rcgen::Certificate], key: &KeyPair) -> Result<(), DemoError> {
        *self.current.0.write().unwrap_or_else(|p| p.into_inner()) = certified(chain, key)?;
        Ok(())
    }
}

impl Drop for TlsRegistry {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What the demo showed.
pub struct DemoOutcome {
    pub before: Report,
    pub after: Report,
    pub ca_a_sha256: String,
    pub ca_b_sha256: String,
}

impl DemoOutcome {
    /// The demo reproduced the incident and its diagnosis.
    pub fn as_expected(&self) -> bool {
        self.before.all_ok()
            && self.after.registries.first().map(|r| r.reason) == Some(Reason::CaKeyMismatch)
    }
}

/// Runs the demo in a temporary host root.
pub async fn run() -> Result<DemoOutcome, DemoError> {
    let subject = "registry.test";
    let ca_a = Ca::new(subject)?;
    let (leaf_a, key_a) = ca_a.issue_server()?;
    let server = TlsRegistry::start(&[&leaf_a], &key_a).await?;
    let registry = server.addr.to_string();

    let root = tempdir()?;
    let host_dir = root.path.join("etc/containerd/certs.d").join(&registry);
    std::fs::create_dir_all(&host_dir)?;
    std::fs::write(host_dir.join("ca.crt"), ca_a.cert.pem())?;
    std::fs::write(host_dir.join("hosts.toml"), format!("server = \"https://{registry}\"\nca = \"ca.crt\"\n\n[host.\"https://{registry}\"]\n  capabilities = [\"pull\", \"resolve\"]\n  ca = \"ca.crt\"\n"))?;
    let settings = TrustSettings {
        host_root: HostRoot::new(&root.path),
        runtime: Runtime::Containerd,
        hosts_dir: None,
        containerd_config: PathBuf::from(crate::trust::DEFAULT_CONTAINERD_CONFIG),
    };
    let ps = ProbeSettings::default();
    let regs = vec![registry.clone()];
    let before = check::run(&settings, &regs, &ps).await?;

    let ca_b = Ca::new(subject)?;
    let (leaf_b, key_b) = ca_b.issue_server()?;
    server.rotate(&[&leaf_b], &key_b)?;
    let after = check::run(&settings, &regs, &ps).await?;
    Ok(DemoOutcome {
        before,
        after,
        ca_a_sha256: crate::cert::sha256_hex(ca_a.cert.der()),
        ca_b_sha256: crate::cert::sha256_hex(ca_b.cert.der()),
    })
}

/// A temporary directory removed on drop (no extra crate for one use).
struct TempDir {
    path: PathBuf,
}

fn tempdir() -> std::io::Result<TempDir> {
    let base = std::env::temp_dir();
    for i in 0..100u32 {
        let p = base.join(format!("regtrust-demo-{}-{i}", std::process::id()));
        match std::fs::create_dir(&p) {
            Ok(()) => return Ok(TempDir { path: p }),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AlreadyExists,
        "no free temporary directory name",
    ))
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
