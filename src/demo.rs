//! `regtrust demo`: the incident, replayed on loopback with no setup, through the same code as
//! `check`. A TLS `/v2/` endpoint serves a certificate from CA-A; a temporary host root whose
//! containerd hosts dir trusts CA-A checks ok; the endpoint rotates to CA-B — same subject, new
//! key — and the check reports `ca_key_mismatch` with both sides' fingerprints. The agent runs
//! beside it and serves its metrics while the incident replays: first the new CA is published as the
//! expected CA (`regtrust_expected_ca_trusted` 0 while pulls still work), then the rotation.
//!
//! [`TlsRegistry`] (a tiny in-process TLS server whose certificate can be swapped) is also used by
//! tests that need a server misbehaving in ways a real registry will not.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose, SanType};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::agent::{Agent, Command};
use crate::check;
use crate::config::{AgentConfig, RegistryConfig};
use crate::diagnose::Reason;
use crate::hostroot::HostRoot;
use crate::outcome::CheckOutcome;
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
    #[error("agent: {0}")]
    Agent(String),
    #[error("HTTP client: {0}")]
    Http(#[from] reqwest::Error),
}

/// A CA: its certificate and key.
pub struct Ca {
    pub cert: rcgen::Certificate,
    pub key: KeyPair,
}

impl Ca {
    /// A CA with subject `CN=cn` and a fresh RSA key (as in the incident, so the runtime's words
    /// are the ones people search for: `crypto/rsa: verification error`): two calls with the same
    /// `cn` reproduce the incident.
    pub fn new(cn: &str) -> Result<Ca, rcgen::Error> {
        let key = KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256)?;
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
    pub before: CheckOutcome,
    pub after: CheckOutcome,
    /// The check after the agent staged CA-B.
    pub remedied: CheckOutcome,
    pub ca_a_sha256: String,
    pub ca_b_sha256: String,
    /// The agent's /metrics at each phase: ok; CA-B published as expected; rotated to CA-B.
    pub metrics: Vec<(String, String)>,
    pub metrics_url: String,
}

impl DemoOutcome {
    /// The demo reproduced the incident and its diagnosis, in the check and in the agent's metrics.
    pub fn as_expected(&self) -> bool {
        let m =
            |i: usize, needle: &str| self.metrics.get(i).is_some_and(|(_, t)| t.contains(needle));
        self.before.all_ok()
            && self.after.registries.first().map(|r| r.verdict.reason)
                == Some(Reason::CaKeyMismatch)
            && m(0, "regtrust_probe_success{")
            && m(1, "regtrust_expected_ca_trusted{")
            && m(2, "reason=\"ca_key_mismatch\"")
            && m(3, "result=\"applied\"")
            && self.remedied.all_ok()
    }
}

/// Largest /metrics body the demo reads.
const MAX_SCRAPE: usize = 16 * 1024 * 1024;
/// Deadline of one scrape of the demo agent.
const SCRAPE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The demo's HTTP client: loopback only, so no proxy from the environment applies. Plain HTTP,
/// but reqwest has a rustls backend (for `expected_ca_url`): a TLS config of its own, with no
/// roots, keeps it from needing a process-wide crypto provider.
fn scrape_client() -> Result<reqwest::Client, DemoError> {
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(rustls::RootCertStore::empty())
    .with_no_client_auth();
    Ok(reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .no_proxy()
        .timeout(SCRAPE_TIMEOUT)
        .build()?)
}

/// The body of `url`, at most [`MAX_SCRAPE`] bytes of it.
async fn scrape(client: &reqwest::Client, url: &str) -> Result<String, reqwest::Error> {
    let mut resp = client.get(url).send().await?.error_for_status()?;
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        let room = MAX_SCRAPE - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() == MAX_SCRAPE {
            break;
        }
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// Asks the agent to probe now, then polls /metrics until `until` holds (at most ~5 s).
async fn probe_and_wait(agent: &AgentHandle, until: impl Fn(&str) -> bool) -> String {
    let _ = agent.cmds.send(Command::ProbeAll).await;
    let mut last = String::new();
    let url = format!("http://{}/metrics", agent.addr);
    for _ in 0..250 {
        last = scrape(&agent.client, &url).await.unwrap_or_default();
        if until(&last) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    last
}

struct AgentHandle {
    addr: SocketAddr,
    cmds: tokio::sync::mpsc::Sender<Command>,
    client: reqwest::Client,
}

/// Runs the demo in a temporary host root; the agent listens on `listen` and keeps serving for
/// `hold` after the incident has replayed.
pub async fn run(listen: SocketAddr, hold: std::time::Duration) -> Result<DemoOutcome, DemoError> {
    let subject = "registry.test";
    let ca_a = Ca::new(subject)?;
    let (leaf_a, key_a) = ca_a.issue_server()?;
    let server = TlsRegistry::start(&[&leaf_a], &key_a).await?;
    let registry = server.addr.to_string();

    let root = tempdir()?;
    let expected = node_trusting(&root.path, &registry, &ca_a)?;
    let settings = TrustSettings {
        host_root: HostRoot::new(&root.path),
        runtime: Runtime::Containerd,
        hosts_dir: None,
        containerd_config: PathBuf::from(crate::trust::DEFAULT_CONTAINERD_CONFIG),
        runtime_version: None,
    };
    let ps = ProbeSettings::default();
    let regs = vec![registry.clone()];
    let before = check::run(&settings, &regs, &ps).await?;

    let cfg = AgentConfig {
        host_root: root.path.clone(),
        listen,
        interval: std::time::Duration::from_secs(3600),
        state_dir: root.path.join("state"),
        registries: vec![RegistryConfig {
            expected_ca_file: Some(expected.clone()),
            ..RegistryConfig::named(registry.clone())
        }],
        ..AgentConfig::default()
    };
    let running = RunningAgent::start(cfg.clone()).await?;
    let handle = &running.handle;
    let mut metrics = Vec::new();
    let m0 = probe_and_wait(handle, |t| {
        t.contains("regtrust_probe_success{") && t.contains("regtrust_expected_ca_trusted{")
    })
    .await;
    metrics.push((
        "registry serves CA-A; the node trusts CA-A; expected CA: CA-A".to_string(),
        m0,
    ));

    let ca_b = Ca::new(subject)?;
    std::fs::write(&expected, ca_b.cert.pem())?;
    let m1 = probe_and_wait(handle, |t| {
        t.lines()
            .any(|l| l.starts_with("regtrust_expected_ca_trusted{") && l.ends_with(" 0"))
    })
    .await;
    metrics.push(("CA-B is published as the expected CA before the rotation: pulls still work, the rotation is not safe yet".to_string(), m1));

    let (leaf_b, key_b) = ca_b.issue_server()?;
    server.rotate(&[&leaf_b], &key_b)?;
    let after = check::run(&settings, &regs, &ps).await?;
    let m2 = probe_and_wait(handle, |t| t.contains("reason=\"ca_key_mismatch\"")).await;
    metrics.push((
        "the registry rotates to CA-B (same subject, new key); the node still trusts CA-A"
            .to_string(),
        m2,
    ));

    // The remedy: the agent restarts (same state dir) with staging on for the registry; it installs
    // CA-B from the expected CA file where containerd reads it, and the re-probe is ok.
    running.stop().await;
    let mut staging_cfg = cfg;
    staging_cfg.registries[0].stage = true;
    let running = RunningAgent::start(staging_cfg).await?;
    let m3 = probe_and_wait(&running.handle, |t| {
        t.contains("result=\"applied\"")
            && t.lines()
                .any(|l| l.starts_with("regtrust_probe_success{") && l.ends_with(" 1"))
    })
    .await;
    metrics.push((
        "the agent stages the expected CA-B (keeping CA-A beside it) into the hosts dir; the re-probe is ok".to_string(),
        m3,
    ));
    let remedied = check::run(&settings, &regs, &ps).await?;
    let metrics_url = format!("http://{}/metrics", running.handle.addr);
    tokio::time::sleep(hold).await;
    running.stop().await;
    Ok(DemoOutcome {
        before,
        after,
        remedied,
        ca_a_sha256: crate::cert::sha256_hex(ca_a.cert.der()),
        ca_b_sha256: crate::cert::sha256_hex(ca_b.cert.der()),
        metrics,
        metrics_url,
    })
}

/// A node under `root` whose containerd hosts dir for `registry` trusts `ca`, and whose expected
/// CA file (returned) holds `ca` too.
fn node_trusting(root: &Path, registry: &str, ca: &Ca) -> std::io::Result<PathBuf> {
    let host_dir = root.join("etc/containerd/certs.d").join(registry);
    std::fs::create_dir_all(&host_dir)?;
    std::fs::write(host_dir.join("ca.crt"), ca.cert.pem())?;
    std::fs::write(host_dir.join("hosts.toml"), format!("server = \"https://{registry}\"\nca = \"ca.crt\"\n\n[host.\"https://{registry}\"]\n  capabilities = [\"pull\", \"resolve\"]\n  ca = \"ca.crt\"\n"))?;
    let expected = root.join("expected-ca.pem");
    std::fs::write(&expected, ca.cert.pem())?;
    Ok(expected)
}

/// An agent running in this process, stopped on request.
struct RunningAgent {
    handle: AgentHandle,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), crate::agent::AgentError>>,
}

impl RunningAgent {
    async fn start(cfg: AgentConfig) -> Result<RunningAgent, DemoError> {
        let agent = Agent::bind(cfg)
            .await
            .map_err(|e| DemoError::Agent(e.to_string()))?;
        let handle = AgentHandle {
            addr: agent.local_addr()?,
            cmds: agent.commands(),
            client: scrape_client()?,
        };
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(agent.run(async move {
            let _ = rx.await;
        }));
        Ok(RunningAgent { handle, stop, task })
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
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
