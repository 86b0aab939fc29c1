//! The probe: DNS ([`dns`]: on threads of its own), TCP connect, TLS handshake (recording the presented chain), `GET /v2/`.
//! The only module that touches the network.
//!
//! Every phase runs under one deadline ([`ProbeSettings::timeout`]); a timeout names its phase.
//! Responses are read only as far as the status line and headers, bounded by
//! [`MAX_HEADER_BYTES`]: a hostile registry cannot make a probe read without end.
//! The request is written here on purpose: the probe must expose the TLS phase on its own (timing,
//! the recorded chain after a failed verification) and speak through a CONNECT proxy exactly once,
//! which a general client such as reqwest hides. The response head is parsed by `httparse`
//! ([`http`]).

pub(crate) mod danger;
pub(crate) mod dns;
pub mod http;
pub mod proxy;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout_at;

use crate::cert::Cert;
use crate::trust::Endpoint;
use crate::verify::VerifyError;
use http::{http_exchange, HttpError};
pub use proxy::ProxyEnv;

/// Most certificates kept from one presented chain (real chains have 2–4).
pub const MAX_CHAIN_CERTS: usize = 16;
/// Most bytes of HTTP status line + headers read from a registry or proxy.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Default deadline for one endpoint probe, all phases together.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Probe phases, for timings and timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Dns,
    Connect,
    Proxy,
    Tls,
    Http,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Dns => "dns",
            Phase::Connect => "connect",
            Phase::Proxy => "proxy",
            Phase::Tls => "tls",
            Phase::Http => "http",
        }
    }
}

/// How a probe failed. Pure data: [`crate::diagnose`] turns it into a reason.
#[derive(Debug, Clone)]
pub enum Failure {
    Dns(String),
    Refused(String),
    Connect(String),
    Timeout(Phase),
    Proxy(String),
    /// The peer does not speak TLS (e.g. plain HTTP on the port).
    NotTls(String),
    /// The TLS handshake failed for a reason other than certificate verification.
    Handshake(String),
    /// Certificate verification failed (Go's verdict).
    Verify(VerifyError),
    /// The connection broke or the answer was not HTTP.
    Http(String),
    /// `/v2/` answered with a status other than 200 or 401.
    HttpStatus {
        code: u16,
        location: Option<String>,
    },
}

/// Milliseconds per phase; absent phases did not run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timings {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<f64>,
    pub total: f64,
}

/// What one probe of one endpoint found.
#[derive(Debug, Clone)]
pub struct ProbeResult {
    pub url: String,
    pub presented: Vec<Arc<Cert>>,
    pub unparsed_presented: Vec<String>,
    pub http_status: Option<u16>,
    pub timings: Timings,
    pub result: Result<(), Failure>,
    /// The proxy used, if any.
    pub via_proxy: Option<String>,
    /// SHA-256 of the leaf's issuer in the verified chain, when verification succeeded.
    pub verified_issuer_sha256: Option<String>,
}

/// Settings shared by all probes of a run.
#[derive(Debug, Clone)]
pub struct ProbeSettings {
    pub timeout: Duration,
    pub proxy: ProxyEnv,
    /// The runtime's Go: verification follows its rules.
    pub go: crate::verify::GoVersion,
}

impl Default for ProbeSettings {
    fn default() -> Self {
        ProbeSettings {
            timeout: DEFAULT_TIMEOUT,
            proxy: ProxyEnv::default(),
            go: crate::verify::GoVersion::NEWEST,
        }
    }
}

fn ms(since: Instant) -> f64 {
    (since.elapsed().as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0
}

trait Conn: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Conn for T {}

/// Probes one endpoint with `roots` (system + configured CAs) as its trust.
pub async fn probe(
    ep: &Endpoint,
    roots: Arc<Vec<Arc<Cert>>>,
    settings: &ProbeSettings,
) -> ProbeResult {
    let start = Instant::now();
    let deadline = tokio::time::Instant::now() + settings.timeout;
    let mut out = ProbeResult {
        url: ep.url(),
        presented: Vec::new(),
        unparsed_presented: Vec::new(),
        http_status: None,
        timings: Timings::default(),
        result: Ok(()),
        via_proxy: settings.proxy.proxy_for(&ep.scheme, ep.host(), ep.port()),
        verified_issuer_sha256: None,
    };
    let result = run(ep, roots, settings.go, deadline, &mut out).await;
    out.result = result;
    out.timings.total = ms(start);
    out
}

async fn run(
    ep: &Endpoint,
    roots: Arc<Vec<Arc<Cert>>>,
    go: crate::verify::GoVersion,
    deadline: tokio::time::Instant,
    out: &mut ProbeResult,
) -> Result<(), Failure> {
    let (dial_host, dial_port) = match &out.via_proxy {
        Some(p) => {
            let (h, port) = crate::trust::split_host_port(p);
            (h.to_string(), port.unwrap_or(80))
        }
        None => (ep.host().to_string(), ep.port()),
    };
    // DNS
    let t = Instant::now();
    let addrs = dns::lookup(&dial_host, dial_port, deadline).await?;
    out.timings.dns = Some(ms(t));
    // TCP: addresses in order, as Go's dialer does (without happy-eyeballs racing).
    let t = Instant::now();
    let mut last_err = None;
    let mut tcp = None;
    for addr in &addrs {
        match timeout_at(deadline, TcpStream::connect(addr)).await {
            Err(_) => return Err(Failure::Timeout(Phase::Connect)),
            Ok(Ok(s)) => {
                tcp = Some(s);
                break;
            }
            Ok(Err(e)) => last_err = Some((addr, e)),
        }
    }
    let mut tcp = match (tcp, last_err) {
        (Some(s), _) => s,
        (None, Some((addr, e))) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            return Err(Failure::Refused(format!(
                "dial tcp {addr}: connect: connection refused"
            )))
        }
        (None, Some((addr, e))) => return Err(Failure::Connect(format!("dial tcp {addr}: {e}"))),
        (None, None) => return Err(Failure::Dns(format!("lookup {dial_host}: no addresses"))),
    };
    let _ = tcp.set_nodelay(true);
    out.timings.connect = Some(ms(t));
    if out.via_proxy.is_some() && ep.scheme == "https" {
        let req = format!(
            "CONNECT {0} HTTP/1.1\r\nHost: {0}\r\nUser-Agent: regtrust/{1}\r\n\r\n",
            ep.authority,
            env!("CARGO_PKG_VERSION")
        );
        match timeout_at(deadline, http_exchange(&mut tcp, req.as_bytes())).await {
            Err(_) => return Err(Failure::Timeout(Phase::Proxy)),
            Ok(Err(e)) => return Err(Failure::Proxy(format!("proxy CONNECT: {e}"))),
            Ok(Ok((200, _))) => {}
            Ok(Ok((code, _))) => {
                return Err(Failure::Proxy(format!(
                    "proxy CONNECT {} answered {code}",
                    ep.authority
                )))
            }
        }
    }
    let conn: Box<dyn Conn> = if ep.scheme == "https" {
        Box::new(tls(ep, roots, go, tcp, deadline, out).await?)
    } else {
        Box::new(tcp)
    };
    get_v2(ep, conn, deadline, out).await
}

/// The TLS handshake, with the runtime's client certificate when it has one; Go's verdict on the
/// presented chain comes from the blocking pool (see [`danger`]).
async fn tls(
    ep: &Endpoint,
    roots: Arc<Vec<Arc<Cert>>>,
    go: crate::verify::GoVersion,
    tcp: TcpStream,
    deadline: tokio::time::Instant,
    out: &mut ProbeResult,
) -> Result<TlsStream, Failure> {
    let t = Instant::now();
    let (tx, verdict) = tokio::sync::oneshot::channel();
    let judge = (!ep.skip_verify).then(|| danger::Judge {
        roots,
        server_name: ep.host().to_string(),
        go,
        tx,
    });
    let verifier = Arc::new(danger::AcceptAndRecord::new(judge));
    let record = verifier.record.clone();
    let recorder = verifier.clone();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
    .map_err(|e| Failure::Handshake(e.to_string()))?
    .dangerous()
    .with_custom_certificate_verifier(verifier);
    // The runtime's client certificate, when its configuration has one.
    let config = match &ep.client {
        Some(id) => {
            let chain = id
                .chain
                .iter()
                .map(|c| rustls::pki_types::CertificateDer::from(c.clone()))
                .collect();
            config
                .with_client_auth_cert(chain, id.key.clone_key())
                .map_err(|e| Failure::Handshake(format!("client certificate {}: {e}", id.source)))?
        }
        None => config.with_no_client_auth(),
    };
    let name = rustls::pki_types::ServerName::try_from(ep.host().to_string())
        .map_err(|e| Failure::Handshake(format!("invalid server name {:?}: {e}", ep.host())))?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let res = handshake(connector.connect(name, tcp), &recorder, verdict, deadline).await;
    let rec = record.lock().unwrap_or_else(|p| p.into_inner()).clone();
    out.presented = rec.presented;
    out.unparsed_presented = rec.unparsed;
    let stream = match res {
        Handshake::Timeout => return Err(Failure::Timeout(Phase::Tls)),
        Handshake::Untrusted(v) => return Err(Failure::Verify(v)),
        Handshake::Failed(e) => return Err(classify_tls_error(&e)),
        Handshake::Done(s, issuer) => {
            out.verified_issuer_sha256 = issuer;
            s
        }
    };
    out.timings.tls = Some(ms(t));
    Ok(*stream)
}

/// `GET /v2/` (or the proxied URL for plain HTTP through a proxy): 200 and 401 mean a registry.
async fn get_v2(
    ep: &Endpoint,
    mut conn: Box<dyn Conn>,
    deadline: tokio::time::Instant,
    out: &mut ProbeResult,
) -> Result<(), Failure> {
    let t = Instant::now();
    let target = if out.via_proxy.is_some() && ep.scheme == "http" {
        ep.url()
    } else {
        format!("{}/", ep.path.trim_end_matches('/'))
    };
    let req = format!(
        "GET {target} HTTP/1.1\r\nHost: {}\r\nUser-Agent: regtrust/{}\r\nAccept: application/json\r\nConnection: close\r\n\r\n",
        ep.authority,
        env!("CARGO_PKG_VERSION")
    );
    let status = match timeout_at(deadline, http_exchange(&mut conn, req.as_bytes())).await {
        Err(_) => return Err(Failure::Timeout(Phase::Http)),
        // In TLS 1.3 a server's verdict on our client certificate (or its absence) arrives as an
        // alert on the first read: that is a handshake failure, not a broken HTTP answer.
        Ok(Err(HttpError::Io { err, .. }))
            if err.get_ref().is_some_and(|i| i.is::<rustls::Error>()) =>
        {
            return Err(classify_tls_error(&err))
        }
        Ok(Err(e)) => return Err(Failure::Http(e.to_string())),
        Ok(Ok(s)) => s,
    };
    let (status, location) = status;
    out.timings.http = Some(ms(t));
    out.http_status = Some(status);
    let _ = timeout_at(deadline, conn.shutdown()).await;
    match status {
        200 | 401 => Ok(()),
        code => Err(Failure::HttpStatus { code, location }),
    }
}

type TlsStream = tokio_rustls::client::TlsStream<TcpStream>;

/// How a handshake ended, with Go's verdict on the chain folded in.
enum Handshake {
    Timeout,
    /// The chain does not verify (as soon as that is known, as Go aborts its handshake).
    Untrusted(VerifyError),
    Failed(std::io::Error),
    /// Verified (or not to be verified); the verified leaf issuer's SHA-256 when known.
    Done(Box<TlsStream>, Option<String>),
}

/// Drives the handshake and waits for the verdict that [`danger::AcceptAndRecord`] computes off
/// the event loop: a failed verdict wins over everything that happens later, as in Go, where
/// verification runs inside the handshake.
async fn handshake(
    connect: tokio_rustls::Connect<TcpStream>,
    recorder: &danger::AcceptAndRecord,
    mut verdict: tokio::sync::oneshot::Receiver<danger::Verdict>,
    deadline: tokio::time::Instant,
) -> Handshake {
    tokio::pin!(connect);
    let mut judged: Option<Option<String>> = None;
    let res = loop {
        tokio::select! {
            res = &mut connect => break res,
            v = &mut verdict, if judged.is_none() => match v {
                Ok(Err(e)) => return Handshake::Untrusted(e),
                Ok(Ok(issuer)) => judged = Some(issuer),
                // No judge (skip_verify), or no chain was received.
                Err(_) => judged = Some(None),
            },
            _ = tokio::time::sleep_until(deadline) => return Handshake::Timeout,
        }
    };
    recorder.handshake_over();
    // The chain arrived: its verdict comes before the handshake's own result.
    let issuer = match judged {
        Some(i) => i,
        None => match timeout_at(deadline, &mut verdict).await {
            Err(_) => return Handshake::Timeout,
            Ok(Ok(Err(e))) => return Handshake::Untrusted(e),
            Ok(Ok(Ok(i))) => i,
            Ok(Err(_)) => None,
        },
    };
    match res {
        Ok(s) => Handshake::Done(Box::new(s), issuer),
        Err(e) => Handshake::Failed(e),
    }
}

fn classify_tls_error(e: &std::io::Error) -> Failure {
    use rustls::InvalidMessage as M;
    let text = e.to_string();
    if let Some(inner) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        return match inner {
            // Record-layer nonsense: the peer does not speak TLS at all (HTTP, garbage).
            rustls::Error::InvalidMessage(M::InvalidContentType | M::UnknownProtocolVersion | M::MessageTooLarge) => {
                Failure::NotTls(format!("tls: first record does not look like a TLS handshake ({inner})"))
            }
            rustls::Error::InvalidMessage(M::HandshakePayloadTooLarge) => Failure::Handshake(format!(
                "tls: the registry's handshake message is larger than a TLS client accepts (64 KiB): too many or too large certificates in its chain ({inner})"
            )),
            other => Failure::Handshake(format!("tls: {other}")),
        };
    }
    if text.contains("InvalidContentType") {
        return Failure::NotTls(format!(
            "tls: first record does not look like a TLS handshake ({text})"
        ));
    }
    Failure::Handshake(format!("tls handshake: {text}"))
}
