//! The agent's listener: `GET /metrics`, `/healthz` (alive), `/readyz` (first round done) and `/`
//! (a status page for a person on the node), `/api/v1/status` (the latest round as `check --output
//! json` prints it). Only GET and HEAD, only these paths. hyper's HTTP/1
//! server parses the requests; this module decides how connections are let in and answered:
//!
//! - backpressure: at most [`MAX_CONNECTIONS`] open; past that the listener stops accepting (clients
//!   wait in the kernel's backlog) instead of accepting and dropping; accept errors (EMFILE) back
//!   off up to [`MAX_ACCEPT_BACKOFF`] instead of spinning;
//! - one client address holds at most [`MAX_CONNECTIONS_PER_PEER`]; more are closed at once;
//! - the TLS handshake and the request head share one deadline, [`HEAD_TIMEOUT`]; a connection
//!   lives at most [`CONNECTION_TIMEOUT`]; one request per connection (no keep-alive);
//! - `/healthz` and `/readyz` are answered at once; everything else (credentials, rendering) holds
//!   one of [`MAX_REQUESTS`] request slots, taken only after the head arrived; none free → 503.
//!
//! Credentials: [`auth`].

pub mod auth;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{
    HeaderValue, ALLOW, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE,
};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::metrics::Metrics;
use crate::offload;

/// Largest request head accepted (hyper's smallest buffer); larger → 431.
pub const MAX_REQUEST_BYTES: usize = 8 * 1024;
/// Most request headers accepted; more → 431.
pub const MAX_REQUEST_HEADERS: usize = 64;
/// Most connections open at once; past it, new ones wait in the kernel's backlog.
pub const MAX_CONNECTIONS: usize = 256;
/// Most connections open at once from one client address; more are closed unanswered.
pub const MAX_CONNECTIONS_PER_PEER: usize = 16;
/// Requests past their head being answered at once (all but `/healthz` and `/readyz`); more → 503.
pub const MAX_REQUESTS: usize = 16;
/// Time a client has for the TLS handshake and its request head together; then it is closed.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest life of one connection, answer included.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest pause after failed accepts (EMFILE …); the pause starts at 10 ms and doubles.
pub const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// TLS and credentials for the listener, loaded once at start.
#[derive(Default)]
pub struct Web {
    tls: Option<tokio_rustls::TlsAcceptor>,
    auth: auth::Auth,
}

impl Web {
    /// Reads the certificate, key and token files named in `cfg`; an error names the file.
    pub fn load(cfg: &crate::config::WebConfig) -> Result<Web, String> {
        let tls = match (&cfg.tls_cert_file, &cfg.tls_key_file) {
            (Some(c), Some(k)) => Some(tls_acceptor(c, k)?),
            _ => None,
        };
        let bearer = match &cfg.bearer_token_file {
            Some(f) => Some(
                String::from_utf8_lossy(
                    &crate::hostroot::read_bounded(f)
                        .map_err(|e| format!("web.bearer_token_file {}: {e}", f.display()))?,
                )
                .trim()
                .as_bytes()
                .to_vec(),
            ),
            None => None,
        };
        let auth = auth::Auth::new(bearer.as_deref(), cfg.basic_auth_users.clone()).map_err(
            |e| match &cfg.bearer_token_file {
                Some(f) => format!("web.bearer_token_file {}: {e}", f.display()),
                None => e,
            },
        )?;
        Ok(Web { tls, auth })
    }

    /// The credentials in force.
    pub fn auth(&self) -> &auth::Auth {
        &self.auth
    }
}

fn tls_acceptor(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<tokio_rustls::TlsAcceptor, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("web.tls_cert_file {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "web.tls_cert_file {}: no certificate",
            cert.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("web.tls_key_file {}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
        .map_err(|e| format!("web TLS: {e}"))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// What the listener shows.
pub struct AppState {
    pub metrics: Arc<Metrics>,
    pub ready: AtomicBool,
    /// Latest outcome per registry, its expected CAs and a bounded history.
    pub status: RwLock<super::history::Status>,
}

/// Serves until `shutdown` flips to true.
pub async fn serve(
    listener: TcpListener,
    app: Arc<AppState>,
    web: Arc<Web>,
    shutdown: tokio::sync::watch::Receiver<bool>,
) {
    Server::new(app, web).serve(listener, shutdown).await
}

/// The listener's shared state: what it shows, its credentials, its slots.
pub struct Server {
    app: Arc<AppState>,
    web: Arc<Web>,
    requests: Semaphore,
    /// One `/metrics` render at a time: renders run on the blocking pool (4 threads), which chain
    /// verification needs too, and one at 10,000 endpoints takes ~150 ms; 16 scrapes at once must
    /// not hold every thread of it.
    renders: Semaphore,
    peers: Mutex<HashMap<IpAddr, usize>>,
}

/// One of a peer's connections; given back on drop.
struct PeerSlot {
    server: Arc<Server>,
    ip: IpAddr,
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut peers = self.server.peers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = peers.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                peers.remove(&self.ip);
            }
        }
    }
}

impl Server {
    pub fn new(app: Arc<AppState>, web: Arc<Web>) -> Arc<Server> {
        Arc::new(Server {
            app,
            web,
            requests: Semaphore::new(MAX_REQUESTS),
            renders: Semaphore::new(1),
            peers: Mutex::default(),
        })
    }

    /// Accepts connections until `shutdown` flips to true; each is served on its own task.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let connections = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let mut backoff = Duration::ZERO;
        loop {
            // Backpressure: without a free connection slot nothing is accepted.
            let permit = tokio::select! {
                _ = shutdown.changed() => return,
                p = connections.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => return,
                },
            };
            let accepted = tokio::select! {
                _ = shutdown.changed() => return,
                a = listener.accept() => a,
            };
            let (stream, peer) = match accepted {
                Ok(a) => {
                    backoff = Duration::ZERO;
                    a
                }
                Err(e) => {
                    backoff = (backoff * 2).clamp(Duration::from_millis(10), MAX_ACCEPT_BACKOFF);
                    tracing::warn!(error = %e, pause_ms = backoff.as_millis() as u64, "listener: accept failed; pausing before the next accept");
                    tokio::select! {
                        _ = shutdown.changed() => return,
                        _ = tokio::time::sleep(backoff) => continue,
                    }
                }
            };
            let Some(slot) = self.peer_slot(peer.ip()) else {
                tracing::debug!(peer = %peer, "listener: too many connections from one address; closed");
                continue;
            };
            tokio::spawn(self.clone().connection(stream, permit, slot));
        }
    }

    /// A connection slot for `ip`, unless it holds [`MAX_CONNECTIONS_PER_PEER`] already.
    fn peer_slot(self: &Arc<Self>, ip: IpAddr) -> Option<PeerSlot> {
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        let n = peers.entry(ip).or_insert(0);
        if *n >= MAX_CONNECTIONS_PER_PEER {
            return None;
        }
        *n += 1;
        Some(PeerSlot {
            server: self.clone(),
            ip,
        })
    }

    async fn connection(
        self: Arc<Self>,
        stream: TcpStream,
        _conn: OwnedSemaphorePermit,
        _peer: PeerSlot,
    ) {
        let _ = stream.set_nodelay(true);
        let head_deadline = Instant::now() + HEAD_TIMEOUT;
        let _ = tokio::time::timeout(CONNECTION_TIMEOUT, async {
            match &self.web.tls {
                Some(acc) => {
                    if let Ok(Ok(tls)) =
                        tokio::time::timeout_at(head_deadline, acc.accept(stream)).await
                    {
                        self.serve_io(tls, head_deadline).await;
                    }
                }
                None => self.serve_io(stream, head_deadline).await,
            }
        })
        .await;
    }

    /// Serves one request on `io` (plain: TLS, if any, is done), whose head must have arrived by
    /// `head_deadline`.
    pub async fn serve_io<S>(self: &Arc<Self>, io: S, head_deadline: Instant)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let left = head_deadline.saturating_duration_since(Instant::now());
        let server = self.clone();
        let service = hyper::service::service_fn(move |req| {
            let server = server.clone();
            async move { Ok::<_, Infallible>(server.respond(req).await) }
        });
        let _ = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(left.max(Duration::from_millis(1)))
            .keep_alive(false)
            .max_buf_size(MAX_REQUEST_BYTES)
            .max_headers(MAX_REQUEST_HEADERS)
            .serve_connection(TokioIo::new(io), service)
            .await;
    }

    async fn respond<B>(&self, req: Request<B>) -> Response<Full<Bytes>> {
        let (status, ctype, body) = self.route(&req).await;
        let mut resp = Response::new(Full::new(Bytes::from(body)));
        *resp.status_mut() = status;
        let h = resp.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static(ctype));
        match status {
            StatusCode::METHOD_NOT_ALLOWED => {
                h.insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            }
            StatusCode::UNAUTHORIZED => {
                h.insert(
                    WWW_AUTHENTICATE,
                    HeaderValue::from_static(self.web.auth.challenge()),
                );
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                h.insert(RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        resp
    }

    async fn route<B>(&self, req: &Request<B>) -> (StatusCode, &'static str, String) {
        const TEXT: &str = "text/plain";
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return (
                StatusCode::METHOD_NOT_ALLOWED,
                TEXT,
                "only GET and HEAD\n".into(),
            );
        }
        let path = req.uri().path();
        // Probes stay open (kubelet sends no credentials) and need no request slot.
        match path {
            "/healthz" => return (StatusCode::OK, TEXT, "ok\n".into()),
            "/readyz" if self.app.ready.load(Ordering::SeqCst) => {
                return (StatusCode::OK, TEXT, "ready\n".into())
            }
            "/readyz" => {
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    TEXT,
                    "first probe round not finished\n".into(),
                )
            }
            _ => {}
        }
        let Ok(_slot) = self.requests.try_acquire() else {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                TEXT,
                "busy: too many requests at once; retry\n".into(),
            );
        };
        let auth = &self.web.auth;
        if auth.required()
            && !auth
                .authorized(req.headers().get(AUTHORIZATION).map(|v| v.as_bytes()))
                .await
        {
            return (
                StatusCode::UNAUTHORIZED,
                TEXT,
                "credentials required\n".into(),
            );
        }
        match path {
            // Rendering is CPU work (15 ms at 1,000 endpoints): off the loop's thread.
            "/metrics" => {
                // Never closed: the error case cannot happen; rendering without it would too.
                let _render = self.renders.acquire().await.ok();
                let metrics = self.app.metrics.clone();
                match offload::blocking(move || metrics.render()).await {
                    Ok(text) => (
                        StatusCode::OK,
                        "text/plain; version=0.0.4; charset=utf-8",
                        text,
                    ),
                    Err(e) => (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        TEXT,
                        format!("cannot render the metrics: {e}\n"),
                    ),
                }
            }
            "/" => (
                StatusCode::OK,
                "text/html; charset=utf-8",
                status_page(&self.app),
            ),
            "/api/v1/status" => (StatusCode::OK, "application/json", status_api(&self.app)),
            _ => (
                StatusCode::NOT_FOUND,
                TEXT,
                "not found: try /, /api/v1/status, /metrics, /healthz, /readyz\n".into(),
            ),
        }
    }
}

fn status_page(app: &AppState) -> String {
    let status = app.status.read().unwrap_or_else(|p| p.into_inner());
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    crate::report::status::page(&status, now)
}

/// The latest round as `check --output json` prints it.
fn status_api(app: &AppState) -> String {
    let status = app.status.read().unwrap_or_else(|p| p.into_inner());
    crate::report::status::api_json(&status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn server(users: Vec<(String, String)>) -> Arc<Server> {
        let app = Arc::new(AppState {
            metrics: Arc::new(Metrics::new().unwrap()),
            ready: AtomicBool::new(false),
            status: RwLock::new(Default::default()),
        });
        let cfg = crate::config::WebConfig {
            basic_auth_users: users,
            ..Default::default()
        };
        Server::new(app, Arc::new(Web::load(&cfg).unwrap()))
    }

    /// The raw answer to raw request bytes, over an in-memory connection.
    async fn answer(s: &Arc<Server>, req: &[u8]) -> String {
        let (mut client, conn) = tokio::io::duplex(64 * 1024);
        let s = s.clone();
        let task =
            tokio::spawn(async move { s.serve_io(conn, Instant::now() + HEAD_TIMEOUT).await });
        client.write_all(req).await.unwrap();
        let mut out = Vec::new();
        let _ = client.read_to_end(&mut out).await;
        task.await.unwrap();
        String::from_utf8_lossy(&out).to_lowercase()
    }

    #[tokio::test]
    async fn methods_paths_and_sizes_get_their_status() {
        let s = server(vec![]);
        let ok = answer(&s, b"GET /healthz?x HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(ok.starts_with("http/1.1 200 ok\r\n"), "{ok}");
        assert!(
            ok.contains("connection: close") && ok.ends_with("\r\n\r\nok\n"),
            "{ok}"
        );
        let head = answer(&s, b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(
            head.starts_with("http/1.1 200") && head.ends_with("\r\n\r\n"),
            "{head}"
        );
        let post = answer(&s, b"POST /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(
            post.starts_with("http/1.1 405") && post.contains("allow: get, head"),
            "{post}"
        );
        let nope = answer(&s, b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(nope.starts_with("http/1.1 404"), "{nope}");
        let not_ready = answer(&s, b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(not_ready.starts_with("http/1.1 503"), "{not_ready}");
        let big = format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(10_000));
        let big = answer(&s, big.as_bytes()).await;
        assert!(big.starts_with("http/1.1 431"), "{big}");
        let many = format!(
            "GET / HTTP/1.1\r\n{}\r\n",
            "A: b\r\n".repeat(MAX_REQUEST_HEADERS + 1)
        );
        let many = answer(&s, many.as_bytes()).await;
        assert!(many.starts_with("http/1.1 431"), "{many}");
        let junk = answer(&s, b"\x16\x03\x01\x02\x00garbage\r\n\r\n").await;
        assert!(
            junk.starts_with("http/1.1 400") || junk.is_empty(),
            "{junk}"
        );
    }

    #[tokio::test]
    async fn credentials_are_asked_for_except_by_the_probes() {
        let hash = bcrypt::hash("p", 4).unwrap();
        let s = server(vec![("u".into(), hash)]);
        let denied = answer(&s, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(denied.starts_with("http/1.1 401"), "{denied}");
        assert!(
            denied.contains("www-authenticate: basic realm=\"regtrust\""),
            "{denied}"
        );
        // base64("u:p")
        let ok = answer(
            &s,
            b"GET /metrics HTTP/1.1\r\nAuthorization: Basic dTpw\r\n\r\n",
        )
        .await;
        assert!(ok.starts_with("http/1.1 200"), "{ok}");
        let open = answer(&s, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(open.starts_with("http/1.1 200"), "{open}");
    }

    #[tokio::test]
    async fn healthz_is_answered_while_every_request_slot_is_held() {
        let s = server(vec![]);
        let held = s.requests.try_acquire_many(MAX_REQUESTS as u32).unwrap();
        let busy = answer(&s, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(
            busy.starts_with("http/1.1 503") && busy.contains("retry-after: 1"),
            "{busy}"
        );
        let ok = answer(&s, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(ok.starts_with("http/1.1 200"), "{ok}");
        drop(held);
        let metrics = answer(&s, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(metrics.starts_with("http/1.1 200"), "{metrics}");
    }

    #[tokio::test]
    async fn metrics_renders_one_at_a_time() {
        let s = server(vec![]);
        let render = s.renders.try_acquire().unwrap();
        let waiting = {
            let s = s.clone();
            tokio::spawn(
                async move { answer(&s, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await },
            )
        };
        // While a render runs, the next scrape waits for it (and holds no blocking thread).
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            !waiting.is_finished(),
            "a second render ran beside the first"
        );
        drop(render);
        let metrics = waiting.await.unwrap();
        assert!(metrics.starts_with("http/1.1 200"), "{metrics}");
    }

    #[test]
    fn one_peer_holds_at_most_its_share_and_gives_it_back() {
        let s = server(vec![]);
        let ip: IpAddr = [127, 0, 0, 2].into();
        let slots: Vec<_> = (0..MAX_CONNECTIONS_PER_PEER)
            .map(|_| s.peer_slot(ip).unwrap())
            .collect();
        assert!(s.peer_slot(ip).is_none(), "a peer went past its limit");
        assert!(
            s.peer_slot([127, 0, 0, 1].into()).is_some(),
            "another peer was refused"
        );
        drop(slots);
        assert!(s.peers.lock().unwrap().is_empty(), "slots not given back");
        assert!(s.peer_slot(ip).is_some());
    }
}
