//! The agent's listener: `GET /metrics`, `/healthz` (alive), `/readyz` (first round done) and `/`
//! (a status page for a person on the node). Only GET and HEAD, only these paths; request heads are
//! bounded in size and time, and so is the number of connections. `/api/v1/status` is the latest
//! round as `check --output json` prints it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::metrics::Metrics;

/// Largest request head accepted.
pub const MAX_REQUEST_BYTES: usize = 8 * 1024;
/// Most connections served at once; more are closed at once.
pub const MAX_CONNECTIONS: usize = 64;
/// Time a client has to send its request head.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// TLS and credentials for the listener, loaded once at start.
#[derive(Default)]
pub struct Web {
    tls: Option<tokio_rustls::TlsAcceptor>,
    bearer: Option<Vec<u8>>,
    users: Vec<(String, String)>,
    /// SHA-256 of credentials bcrypt accepted: bcrypt is slow on purpose, and must not become a
    /// way to load the agent.
    verified: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl Web {
    /// Reads the certificate, key and token files named in `cfg`; an error names the file.
    pub fn load(cfg: &crate::config::WebConfig) -> Result<Web, String> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let tls = match (&cfg.tls_cert_file, &cfg.tls_key_file) {
            (Some(c), Some(k)) => {
                let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(c)
                    .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| format!("web.tls_cert_file {}: {e}", c.display()))?;
                if certs.is_empty() {
                    return Err(format!("web.tls_cert_file {}: no certificate", c.display()));
                }
                let key = PrivateKeyDer::from_pem_file(k)
                    .map_err(|e| format!("web.tls_key_file {}: {e}", k.display()))?;
                let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
                let config = rustls::ServerConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
                    .map_err(|e| format!("web TLS: {e}"))?;
                Some(tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config)))
            }
            _ => None,
        };
        let bearer = match &cfg.bearer_token_file {
            Some(f) => {
                let t = std::fs::read_to_string(f)
                    .map_err(|e| format!("web.bearer_token_file {}: {e}", f.display()))?;
                let t = t.trim().as_bytes().to_vec();
                if t.len() < 16 {
                    return Err(format!(
                        "web.bearer_token_file {}: a token needs at least 16 characters",
                        f.display()
                    ));
                }
                Some(t)
            }
            None => None,
        };
        Ok(Web {
            tls,
            bearer,
            users: cfg.basic_auth_users.clone(),
            verified: Default::default(),
        })
    }

    fn requires_auth(&self) -> bool {
        self.bearer.is_some() || !self.users.is_empty()
    }

    /// Does the request head carry valid credentials?
    fn authorized(&self, head: &[u8]) -> bool {
        use base64::Engine;
        let Some(auth) = crate::httphead::header(head, "authorization") else {
            return false;
        };
        if let (Some(token), Some(given)) = (&self.bearer, auth.strip_prefix("Bearer ")) {
            return constant_time_eq(token, given.trim().as_bytes());
        }
        let Some(b64) = auth.strip_prefix("Basic ") else {
            return false;
        };
        let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b64.trim()) else {
            return false;
        };
        let Ok(pair) = String::from_utf8(raw) else {
            return false;
        };
        let Some((user, pass)) = pair.split_once(':') else {
            return false;
        };
        let Some((_, hash)) = self.users.iter().find(|(u, _)| u == user) else {
            return false;
        };
        let key = crate::cert::sha256_hex(format!("{user}\0{pass}\0{hash}").as_bytes());
        if self
            .verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&key)
        {
            return true;
        }
        let ok = bcrypt::verify(pass, hash).unwrap_or(false);
        if ok {
            self.verified
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key);
        }
        ok
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let Ok(permit) = slots.clone().try_acquire_owned() else {
                    drop(stream); // over the connection limit
                    continue;
                };
                let (app, web) = (app.clone(), web.clone());
                tokio::spawn(async move {
                    let _permit = permit;
                    let _ = tokio::time::timeout(REQUEST_TIMEOUT * 2, async {
                        match &web.tls {
                            Some(acc) => {
                                if let Ok(Ok(tls)) = tokio::time::timeout(REQUEST_TIMEOUT, acc.accept(stream)).await {
                                    let _ = handle(tls, &app, &web).await;
                                }
                            }
                            None => {
                                let _ = handle(stream, &app, &web).await;
                            }
                        }
                    })
                    .await;
                });
            }
        }
    }
}

async fn handle<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut s: S,
    app: &AppState,
    web: &Web,
) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let head_done =
        |b: &[u8]| b.windows(4).any(|w| w == b"\r\n\r\n") || b.windows(2).any(|w| w == b"\n\n");
    let read = tokio::time::timeout(REQUEST_TIMEOUT, async {
        while !head_done(&buf) {
            if buf.len() > MAX_REQUEST_BYTES {
                return Err(431u16);
            }
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return Err(400),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        Ok(())
    })
    .await;
    let (status, ctype, body) = match read {
        Err(_) => (408, "text/plain", "request timeout\n".to_string()),
        Ok(Err(code)) => (code, "text/plain", "bad request\n".to_string()),
        Ok(Ok(())) => route(&buf, app, web),
    };
    let head_only = buf.starts_with(b"HEAD ");
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        401 => "Unauthorized",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Bad Request",
    };
    let mut resp = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if status == 405 {
        resp.push_str("Allow: GET, HEAD\r\n");
    }
    if status == 401 {
        resp.push_str(if web.bearer.is_some() {
            "WWW-Authenticate: Bearer\r\n"
        } else {
            "WWW-Authenticate: Basic realm=\"regtrust\"\r\n"
        });
    }
    resp.push_str("\r\n");
    if !head_only {
        resp.push_str(&body);
    }
    s.write_all(resp.as_bytes()).await?;
    s.shutdown().await
}

fn route(req: &[u8], app: &AppState, web: &Web) -> (u16, &'static str, String) {
    let line = req.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if method != "GET" && method != "HEAD" {
        return (405, "text/plain", "only GET and HEAD\n".into());
    }
    let path = target.split('?').next().unwrap_or("");
    // Probes stay open (kubelet sends no credentials); everything else needs them when configured.
    if web.requires_auth() && !matches!(path, "/healthz" | "/readyz") && !web.authorized(req) {
        return (401, "text/plain", "credentials required\n".into());
    }
    match path {
        "/metrics" => (
            200,
            "text/plain; version=0.0.4; charset=utf-8",
            app.metrics.render(),
        ),
        "/healthz" => (200, "text/plain", "ok\n".into()),
        "/readyz" if app.ready.load(Ordering::SeqCst) => (200, "text/plain", "ready\n".into()),
        "/readyz" => (503, "text/plain", "first probe round not finished\n".into()),
        "/" => (200, "text/html; charset=utf-8", status_page(app)),
        "/api/v1/status" => (200, "application/json", status_api(app)),
        _ => (
            404,
            "text/plain",
            "not found: try /, /api/v1/status, /metrics, /healthz, /readyz\n".into(),
        ),
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
