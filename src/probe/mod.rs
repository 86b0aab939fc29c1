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
//!
//! The TLS handshake is the one the runtime's Go would make ([`go_tls`]): rustls offers only
//! what that Go offers, and a handshake only Go's other suites, groups or versions complete
//! (CBC, RSA key exchange, P-521, TLS 1.0/1.1) is made again over the second stack
//! ([`second_stack`], OpenSSL) with Go's full offer. Either way the chain is judged by
//! [`crate::verify`], and the result says which stack negotiated what ([`TlsSession`]).

pub(crate) mod danger;
pub(crate) mod dial;
pub(crate) mod dns;
pub mod first_record;
pub mod follow;
pub mod go_tls;
pub mod http;
pub mod proxy;
pub(crate) mod second_stack;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout_at;

use crate::cert::Cert;
use crate::trust::{Endpoint, Runtime};
use crate::verify::VerifyError;
use go_tls::{GoDebug, Offer};
use http::{http_exchange, HttpError};
pub use proxy::{Proxy, ProxyEnv, ProxyScheme};

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
    /// The peer does not speak TLS (garbage, another protocol): Go's `tls.RecordHeaderError`.
    NotTls(String),
    /// The peer answered the TLS hello with HTTP (its first record header is `HTTP/`): Go's
    /// `http: server gave HTTP response to HTTPS client`, and containerd's fallback signal.
    HttpAnswer,
    /// The TLS handshake failed for a reason other than certificate verification.
    Handshake(String),
    /// The runtime's Go refuses a presented certificate before any verification, even with
    /// skip_verify: it cannot parse it, or its RSA key is above Go's limit (Go's words).
    BadCertificate(String),
    /// Certificate verification failed (Go's verdict).
    Verify(VerifyError),
    /// The connection broke or the answer was not HTTP.
    Http(String),
    /// `/v2/` answered with a status other than 200 or 401.
    HttpStatus {
        code: u16,
        location: Option<String>,
    },
    /// A redirect was followed ([`follow`]) and a later hop failed: the URLs requested, the
    /// endpoint's first and the failing one last, and that hop's failure.
    Redirect {
        chain: Vec<String>,
        failure: Box<Failure>,
    },
    /// The registry's 401 names a token service (`Bearer realm`) on another host or port that
    /// the runtime cannot reach with the registry's trust: every pull fails there.
    TokenRealm {
        realm: String,
        failure: Box<Failure>,
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

/// Which TLS implementation completed a handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stack {
    Rustls,
    /// The second stack, for what the runtime's Go offers and rustls does not implement.
    Openssl,
}

/// What a handshake negotiated, by Go's names (`tls.VersionName`, `tls.CipherSuiteName`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TlsSession {
    pub stack: Stack,
    pub version: String,
    pub cipher_suite: String,
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
    /// What the TLS handshake with the endpoint negotiated, when it completed.
    pub tls: Option<TlsSession>,
}

impl ProbeResult {
    /// A probe of `url` that has found nothing yet, and ends with `result`.
    pub fn new(url: String, result: Result<(), Failure>) -> Self {
        ProbeResult {
            url,
            presented: Vec::new(),
            unparsed_presented: Vec::new(),
            http_status: None,
            timings: Timings::default(),
            result,
            via_proxy: None,
            verified_issuer_sha256: None,
            tls: None,
        }
    }
}

/// Settings shared by all probes of a run.
#[derive(Debug, Clone)]
pub struct ProbeSettings {
    pub timeout: Duration,
    pub proxy: ProxyEnv,
    /// The runtime's Go: verification follows its rules.
    pub go: crate::verify::GoVersion,
    /// The runtime whose TLS client configuration the handshake follows ([`go_tls::offer`]).
    pub runtime: Runtime,
    /// The GODEBUG defaults the runtime's binary records (`DefaultGODEBUG`).
    pub godebug: GoDebug,
}

impl Default for ProbeSettings {
    fn default() -> Self {
        ProbeSettings {
            timeout: DEFAULT_TIMEOUT,
            proxy: ProxyEnv::default(),
            go: crate::verify::GoVersion::NEWEST,
            runtime: Runtime::Containerd,
            godebug: GoDebug::default(),
        }
    }
}

impl ProbeSettings {
    /// The settings for probing as `runtime` (its runtime and Go, as detected or set) does.
    pub fn for_runtime(
        timeout: Duration,
        proxy: ProxyEnv,
        runtime: &crate::trust::runtime_version::RuntimeInfo,
    ) -> ProbeSettings {
        ProbeSettings {
            timeout,
            proxy,
            go: runtime.go_version,
            runtime: runtime.runtime,
            // The environment's settings override the build's defaults (later entries win).
            godebug: GoDebug::parse(&format!(
                "{},{}",
                runtime.default_godebug.as_deref().unwrap_or_default(),
                runtime.env_godebug.as_deref().unwrap_or_default()
            )),
        }
    }

    /// What the runtime's Go client offers in its handshakes.
    pub fn offer(&self) -> Offer {
        go_tls::offer(self.runtime, self.go, &self.godebug)
    }
}

fn ms(since: Instant) -> f64 {
    (since.elapsed().as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0
}

pub(crate) trait Conn: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Conn for T {}

/// Probes one endpoint with `roots` (system + configured CAs) as its trust.
pub async fn probe(
    ep: &Endpoint,
    roots: crate::verify::Pool,
    settings: &ProbeSettings,
) -> ProbeResult {
    let start = Instant::now();
    let deadline = tokio::time::Instant::now() + settings.timeout;
    let proxy = settings.proxy.proxy(&ep.scheme, ep.host(), ep.port());
    let mut out = ProbeResult {
        via_proxy: proxy.as_ref().map(Proxy::display),
        ..ProbeResult::new(ep.url(), Ok(()))
    };
    let result = follow::follow(ep, roots, settings, deadline, &mut out).await;
    out.result = result;
    out.timings.total = ms(start);
    out
}

/// The runtime's Go: its verification rules and what its TLS client offers.
pub(super) struct Go {
    pub(super) version: crate::verify::GoVersion,
    pub(super) offer: Offer,
    /// The runtime's GODEBUG settings (parsing and key-size rules read them).
    pub(super) godebug: GoDebug,
}

impl Go {
    /// The runtime's Go as `settings` describe it.
    pub(super) fn of(settings: &ProbeSettings) -> Go {
        Go {
            version: settings.go,
            offer: settings.offer(),
            godebug: settings.godebug.clone(),
        }
    }

    /// What parsing a presented chain needs of it.
    pub(super) fn parse(&self) -> danger::GoParse {
        danger::GoParse {
            go: self.version,
            godebug: self.godebug.clone(),
        }
    }
}

/// One request for `target` to `ep`: dial, the proxy, TLS (with the second stack when only Go's
/// other suites, groups or versions would complete it), and the answer's head.
async fn run(
    ep: &Endpoint,
    target: &str,
    roots: crate::verify::Pool,
    proxy: Option<&Proxy>,
    go: &Go,
    deadline: tokio::time::Instant,
    out: &mut ProbeResult,
) -> Result<http::ResponseHead, Failure> {
    let mut conn = open(ep, roots.clone(), proxy, go, deadline, out).await?;
    if ep.scheme == "https" {
        let t = Instant::now();
        let (res, rec) = tls_connect(conn, ep.host(), ep, roots.clone(), go, deadline).await?;
        out.presented = rec.presented;
        out.unparsed_presented = rec.unparsed;
        if let Some(e) = rec.rejected {
            return Err(Failure::BadCertificate(e));
        }
        conn = match res {
            Handshake::Timeout => return Err(Failure::Timeout(Phase::Tls)),
            Handshake::Untrusted(v) => return Err(Failure::Verify(v)),
            Handshake::NotTls(header) => return Err(first_record::failure(&header)),
            Handshake::Failed(e) if second_stack_may_complete(&e, &go.offer) => {
                second(ep, roots, proxy, go, deadline, out).await?
            }
            Handshake::Failed(e) => return Err(classify_tls_error(&e)),
            Handshake::Done(s, issuer, session) => {
                out.verified_issuer_sha256 = issuer;
                out.tls = Some(session);
                s
            }
        };
        out.timings.tls = Some(ms(t));
    }
    // Through an HTTP(S) proxy, a plain-HTTP request names the whole URL.
    let forward = ep.scheme == "http"
        && proxy.is_some_and(|p| matches!(p.scheme, ProxyScheme::Http | ProxyScheme::Https));
    get_v2(conn, ep, target, forward, deadline, out).await
}

/// DNS, TCP and the proxy's tunnel, if any: a connection to the endpoint.
async fn open(
    ep: &Endpoint,
    roots: crate::verify::Pool,
    proxy: Option<&Proxy>,
    go: &Go,
    deadline: tokio::time::Instant,
    out: &mut ProbeResult,
) -> Result<Box<dyn Conn>, Failure> {
    let (dial_host, dial_port) = match proxy {
        Some(p) => (p.host.clone(), p.port),
        None => (ep.host().to_string(), ep.port()),
    };
    let tcp = dial(&dial_host, dial_port, deadline, out).await?;
    let conn: Box<dyn Conn> = Box::new(tcp);
    match proxy {
        Some(p) => tunnel(conn, p, ep, roots, go, deadline).await,
        None => Ok(conn),
    }
}

/// Whether the second stack may complete a handshake rustls could not: the server found nothing
/// in common with rustls's part of the offer, and the runtime's Go offers more than rustls does.
fn second_stack_may_complete(e: &std::io::Error, offer: &Offer) -> bool {
    use rustls::AlertDescription as A;
    let no_common = matches!(
        e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()),
        Some(
            rustls::Error::AlertReceived(
                A::HandshakeFailure | A::ProtocolVersion | A::InsufficientSecurity,
            ) | rustls::Error::PeerIncompatible(_)
        )
    );
    let rustls_has = rustls_provider(offer);
    let beyond = offer.min < go_tls::Version::Tls12
        || offer.groups.contains(&go_tls::Group::P521)
        || offer.suites.iter().any(|s| {
            !rustls_has
                .cipher_suites
                .iter()
                .any(|c| u16::from(c.suite()) == s.id)
        });
    no_common && beyond
}

/// The handshake again, on a new connection, over the second stack with Go's whole offer. The
/// phase timings are the second attempt's; the TLS timing covers both.
async fn second(
    ep: &Endpoint,
    roots: crate::verify::Pool,
    proxy: Option<&Proxy>,
    go: &Go,
    deadline: tokio::time::Instant,
    out: &mut ProbeResult,
) -> Result<Box<dyn Conn>, Failure> {
    let conn = open(ep, roots.clone(), proxy, go, deadline, out).await?;
    let trust = second_stack::Trust {
        roots,
        go: go.parse(),
    };
    let (res, rec) = second_stack::connect(conn, ep.host(), ep, trust, &go.offer, deadline).await;
    if !rec.presented.is_empty() || !rec.unparsed.is_empty() {
        out.presented = rec.presented;
        out.unparsed_presented = rec.unparsed;
    }
    let done = res?;
    out.verified_issuer_sha256 = done.issuer;
    out.tls = Some(done.session);
    Ok(done.stream)
}

/// DNS, then TCP as Go's dialer connects ([`dial`]): every address in order under its share of
/// the deadline, the other family after 300 ms.
async fn dial(
    host: &str,
    port: u16,
    deadline: tokio::time::Instant,
    out: &mut ProbeResult,
) -> Result<TcpStream, Failure> {
    let t = Instant::now();
    let addrs = dns::lookup(host, port, deadline).await?;
    out.timings.dns = Some(ms(t));
    let t = Instant::now();
    // Go's dial deadline: the earlier of the dialer's Timeout and the request's (our probe's).
    let dial_deadline = deadline.min(tokio::time::Instant::now() + dial::GO_DIAL_TIMEOUT);
    match dial::dial_addrs(&addrs, dial_deadline, dial::FALLBACK_DELAY).await {
        Ok(s) => {
            let _ = s.set_nodelay(true);
            out.timings.connect = Some(ms(t));
            Ok(s)
        }
        Err(dial::DialError::Timeout) => Err(Failure::Timeout(Phase::Connect)),
        Err(dial::DialError::Io(addr, e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            Err(Failure::Refused(format!(
                "dial tcp {addr}: connect: connection refused"
            )))
        }
        Err(dial::DialError::Io(addr, e)) => Err(Failure::Connect(format!("dial tcp {addr}: {e}"))),
        Err(dial::DialError::NoAddresses) => {
            Err(Failure::Dns(format!("lookup {host}: no addresses")))
        }
    }
}

/// Through the proxy to the endpoint, as Go's transport goes: TLS to an `https://` proxy (with
/// the endpoint's trust), SOCKS5 for `socks5://`, CONNECT for an https endpoint.
async fn tunnel(
    conn: Box<dyn Conn>,
    proxy: &Proxy,
    ep: &Endpoint,
    roots: crate::verify::Pool,
    go: &Go,
    deadline: tokio::time::Instant,
) -> Result<Box<dyn Conn>, Failure> {
    let mut conn = conn;
    let name = proxy.display();
    match proxy.scheme {
        ProxyScheme::Unsupported => {
            return Err(Failure::Proxy(format!(
            "proxy {name}: scheme {:?} is not one Go's HTTP transport speaks (http, https, socks5)",
            proxy.scheme_text
        )))
        }
        ProxyScheme::Socks5 => {
            return match timeout_at(
                deadline,
                proxy::socks5_connect(&mut conn, proxy, ep.host(), ep.port()),
            )
            .await
            {
                Err(_) => Err(Failure::Timeout(Phase::Proxy)),
                Ok(Err(e)) => Err(Failure::Proxy(e)),
                Ok(Ok(())) => Ok(conn),
            };
        }
        ProxyScheme::Https => {
            let (res, _) = tls_connect(conn, &proxy.host, ep, roots, go, deadline).await?;
            conn = match res {
                Handshake::Done(s, _, _) => s,
                Handshake::Timeout => return Err(Failure::Timeout(Phase::Proxy)),
                Handshake::Untrusted(v) => {
                    return Err(Failure::Proxy(format!(
                        "proxyconnect tcp: {} (the proxy {name})",
                        v.tls_text()
                    )))
                }
                Handshake::Failed(e) => {
                    return Err(Failure::Proxy(format!(
                        "proxyconnect tcp: TLS to proxy {name}: {e}"
                    )))
                }
                Handshake::NotTls(header) => {
                    return Err(Failure::Proxy(format!(
                        "proxyconnect tcp: {} (the proxy {name})",
                        first_record::failure_of(&header).1
                    )))
                }
            };
        }
        ProxyScheme::Http => {}
    }
    if ep.scheme != "https" {
        return Ok(conn);
    }
    let auth = proxy.userinfo.as_ref().map_or(String::new(), |u| {
        use base64::Engine;
        let basic = base64::engine::general_purpose::STANDARD.encode(u.as_bytes());
        format!("Proxy-Authorization: Basic {basic}\r\n")
    });
    let req = format!(
        "CONNECT {0} HTTP/1.1\r\nHost: {0}\r\n{auth}User-Agent: regtrust/{1}\r\n\r\n",
        ep.authority,
        env!("CARGO_PKG_VERSION")
    );
    match timeout_at(deadline, http_exchange(&mut conn, req.as_bytes())).await {
        Err(_) => Err(Failure::Timeout(Phase::Proxy)),
        Ok(Err(e)) => Err(Failure::Proxy(format!("proxy CONNECT: {e}"))),
        Ok(Ok(head)) if head.code == 200 => Ok(conn),
        Ok(Ok(head)) => Err(Failure::Proxy(format!(
            "proxy CONNECT {} answered {}",
            ep.authority, head.code
        ))),
    }
}

/// A TLS handshake with `server_name` over `conn`, with the endpoint's TLS settings (its client
/// certificate, skip_verify) and Go's verdict on the chain; returns what was presented.
async fn tls_connect(
    conn: Box<dyn Conn>,
    server_name: &str,
    ep: &Endpoint,
    roots: crate::verify::Pool,
    go: &Go,
    deadline: tokio::time::Instant,
) -> Result<(Handshake, danger::Recorded), Failure> {
    let (tx, verdict) = tokio::sync::oneshot::channel();
    let judge = (!ep.skip_verify).then(|| danger::Judge {
        roots,
        server_name: server_name.to_string(),
        tx,
    });
    let schemes = go.offer.schemes().iter().map(|s| s.rustls).collect();
    let verifier = Arc::new(danger::AcceptAndRecord::new(judge, schemes, go.parse()));
    let record = verifier.record.clone();
    let recorder = verifier.clone();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls_provider(&go.offer)))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| Failure::Handshake(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    // The runtime's client pairs, presented as Go picks one (the server's acceptable CAs).
    let mut config = if ep.clients.is_empty() {
        config.with_no_client_auth()
    } else {
        config.with_client_cert_resolver(Arc::new(crate::trust::client::GoClientCerts(
            ep.clients.clone(),
        )))
    };
    // Neither runtime gives its client a ClientSessionCache, so Go sends no session ticket
    // extension and resumes nothing (handshake_client.go `loadSession`); rustls's default would
    // offer tickets and allocate a session store per connection.
    config.resumption = rustls::client::Resumption::disabled();
    let name = rustls::pki_types::ServerName::try_from(server_name.to_string())
        .map_err(|e| Failure::Handshake(format!("invalid server name {server_name:?}: {e}")))?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let (conn, seen) = first_record::Recording::new(conn);
    let conn: Box<dyn Conn> = Box::new(conn);
    let res = match handshake(connector.connect(name, conn), &recorder, verdict, deadline).await {
        Handshake::Failed(e) if first_record::is_record_error(&e) => {
            Handshake::NotTls(seen.header())
        }
        res => res,
    };
    let rec = record.lock().unwrap_or_else(|p| p.into_inner()).clone();
    Ok((res, rec))
}

/// rustls's part of the runtime's offer: the TLS 1.3 suites (Go always offers all three), the
/// TLS 1.2 suites both offer, and the groups both implement — so a suite or group only rustls
/// offers (e.g. X25519MLKEM768 before go1.24) never completes a handshake Go would not.
fn rustls_provider(offer: &Offer) -> rustls::crypto::CryptoProvider {
    use rustls::crypto::aws_lc_rs::{self as aws, kx_group};
    use rustls::SupportedCipherSuite as S;
    let cipher_suites = aws::ALL_CIPHER_SUITES
        .iter()
        .filter(|s| match s {
            S::Tls13(_) => true,
            S::Tls12(_) => offer.offers_suite(u16::from(s.suite())),
        })
        .copied()
        .collect();
    let kx_groups = offer
        .groups
        .iter()
        .filter_map(|g| match g {
            go_tls::Group::X25519MlKem768 => Some(kx_group::X25519MLKEM768),
            go_tls::Group::X25519 => Some(kx_group::X25519),
            go_tls::Group::P256 => Some(kx_group::SECP256R1),
            go_tls::Group::P384 => Some(kx_group::SECP384R1),
            // Not in rustls: the second stack's.
            go_tls::Group::P521 => None,
        })
        .collect();
    rustls::crypto::CryptoProvider {
        cipher_suites,
        kx_groups,
        ..aws::default_provider()
    }
}

/// `GET target` (the API root `/v2/`, or a redirect's or realm's target) and the answer's head;
/// what the answer means is [`follow`]'s.
async fn get_v2(
    mut conn: Box<dyn Conn>,
    ep: &Endpoint,
    target: &str,
    forward: bool,
    deadline: tokio::time::Instant,
    out: &mut ProbeResult,
) -> Result<http::ResponseHead, Failure> {
    let t = Instant::now();
    // Through an HTTP proxy, a plain-HTTP request names the whole URL.
    let target = if forward {
        format!("{}://{}{target}", ep.scheme, ep.authority)
    } else {
        target.to_string()
    };
    let req = format!(
        "GET {target} HTTP/1.1\r\nHost: {}\r\nUser-Agent: regtrust/{}\r\nAccept: application/json\r\nConnection: close\r\n\r\n",
        ep.authority,
        env!("CARGO_PKG_VERSION")
    );
    let head = match timeout_at(deadline, http_exchange(&mut conn, req.as_bytes())).await {
        Err(_) => return Err(Failure::Timeout(Phase::Http)),
        // In TLS 1.3 a server's verdict on our client certificate (or its absence) arrives as an
        // alert on the first read: that is a handshake failure, not a broken HTTP answer.
        Ok(Err(HttpError::Io { err, .. }))
            if err.get_ref().is_some_and(|i| i.is::<rustls::Error>()) =>
        {
            return Err(classify_tls_error(&err))
        }
        // The same over the second stack.
        Ok(Err(HttpError::Io { err, .. }))
            if err.get_ref().is_some_and(|i| i.is::<openssl::ssl::Error>()) =>
        {
            return Err(second_stack::classify_io(&err))
        }
        Ok(Err(e)) => return Err(Failure::Http(e.to_string())),
        Ok(Ok(h)) => h,
    };
    out.timings.http = Some(ms(t));
    out.http_status = Some(head.code);
    let _ = timeout_at(deadline, conn.shutdown()).await;
    Ok(head)
}

/// How a handshake ended, with Go's verdict on the chain folded in.
enum Handshake {
    Timeout,
    /// The chain does not verify (as soon as that is known, as Go aborts its handshake).
    Untrusted(VerifyError),
    Failed(std::io::Error),
    /// The peer's first record is not TLS: its header ([`first_record`]).
    NotTls(Vec<u8>),
    /// Verified (or not to be verified); the verified leaf issuer's SHA-256 when known.
    Done(Box<dyn Conn>, Option<String>, TlsSession),
}

/// Drives the handshake and waits for the verdict that [`danger::AcceptAndRecord`] computes off
/// the event loop: a failed verdict wins over everything that happens later, as in Go, where
/// verification runs inside the handshake.
async fn handshake(
    connect: tokio_rustls::Connect<Box<dyn Conn>>,
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
        Ok(s) => {
            let c = s.get_ref().1;
            let session = TlsSession {
                stack: Stack::Rustls,
                version: c
                    .protocol_version()
                    .and_then(|v| go_tls::Version::from_wire(u16::from(v)))
                    .map_or("", go_tls::Version::go_name)
                    .to_string(),
                cipher_suite: c
                    .negotiated_cipher_suite()
                    .map(|cs| go_tls::suite_name(u16::from(cs.suite())))
                    .unwrap_or_default(),
            };
            Handshake::Done(Box::new(s), issuer, session)
        }
        Err(e) => Handshake::Failed(e),
    }
}

fn classify_tls_error(e: &std::io::Error) -> Failure {
    use rustls::InvalidMessage as M;
    let text = e.to_string();
    if let Some(inner) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        return match inner {
            rustls::Error::InvalidMessage(M::HandshakePayloadTooLarge) => Failure::Handshake(format!(
                "tls: the registry's handshake message is larger than a TLS client accepts (64 KiB): too many or too large certificates in its chain ({inner})"
            )),
            // A fatal alert from the server, in Go's words (`crypto/tls/alert.go`).
            rustls::Error::AlertReceived(a) => Failure::Handshake(go_tls::remote_alert(u8::from(*a))),
            other => Failure::Handshake(format!("tls: {other}")),
        };
    }
    Failure::Handshake(format!("tls handshake: {text}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// The extension types of the ClientHello the probe sends.
    async fn hello_extensions(go: crate::verify::GoVersion) -> Vec<u16> {
        let (ours, mut peer) = tokio::io::duplex(64 * 1024);
        let ep = Endpoint::default_for("https", "registry.test", "test");
        let settings = ProbeSettings {
            go,
            ..ProbeSettings::default()
        };
        let go = Go::of(&settings);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        let conn: Box<dyn Conn> = Box::new(ours);
        let client = tls_connect(
            conn,
            "registry.test",
            &ep,
            crate::verify::Pool::default(),
            &go,
            deadline,
        );
        let read = async {
            let mut head = [0u8; 5];
            peer.read_exact(&mut head).await.unwrap();
            let mut body = vec![0u8; usize::from(u16::from_be_bytes([head[3], head[4]]))];
            peer.read_exact(&mut body).await.unwrap();
            drop(peer);
            body
        };
        let (_, body) = tokio::join!(client, read);
        // handshake header (4), version (2), random (32), session id, suites, compression.
        let mut i = 4 + 2 + 32;
        i += 1 + usize::from(body[i]);
        i += 2 + usize::from(u16::from_be_bytes([body[i], body[i + 1]]));
        i += 1 + usize::from(body[i]);
        let end = i + 2 + usize::from(u16::from_be_bytes([body[i], body[i + 1]]));
        i += 2;
        let mut types = Vec::new();
        while i + 4 <= end {
            types.push(u16::from_be_bytes([body[i], body[i + 1]]));
            i += 4 + usize::from(u16::from_be_bytes([body[i + 2], body[i + 3]]));
        }
        types
    }

    /// Go without a ClientSessionCache (both runtimes) sends neither session_ticket (35) nor
    /// pre_shared_key (41). (It sends no psk_key_exchange_modes (45) either; rustls always does,
    /// which no server acts on without a PSK.)
    #[tokio::test]
    async fn the_hello_offers_no_resumption_as_go_without_a_session_cache() {
        for go in ["go1.19.8", "go1.25.0"] {
            let types = hello_extensions(crate::verify::GoVersion::parse(go).unwrap()).await;
            assert!(
                types.contains(&10) && types.contains(&43),
                "{go}: {types:?}"
            );
            for t in [35, 41] {
                assert!(!types.contains(&t), "{go}: extension {t} in {types:?}");
            }
        }
    }
}
