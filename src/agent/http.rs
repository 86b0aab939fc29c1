//! The agent's listener: `GET /metrics`, `/healthz` (alive), `/readyz` (first round done) and `/`
//! (a status page for a person on the node). Only GET and HEAD, only these paths; request heads are
//! bounded in size and time, and so is the number of connections.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::check::RegistryReport;
use crate::metrics::Metrics;

/// Largest request head accepted.
pub const MAX_REQUEST_BYTES: usize = 8 * 1024;
/// Most connections served at once; more are closed at once.
pub const MAX_CONNECTIONS: usize = 64;
/// Time a client has to send its request head.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// What the listener shows.
pub struct AppState {
    pub metrics: Arc<Metrics>,
    pub ready: AtomicBool,
    /// Latest report per registry, with the expected-CA verdict.
    pub status: RwLock<Vec<(RegistryReport, Option<bool>)>>,
}

/// Serves until `shutdown` flips to true.
pub async fn serve(
    listener: TcpListener,
    app: Arc<AppState>,
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
                let app = app.clone();
                tokio::spawn(async move {
                    let _permit = permit;
                    let _ = tokio::time::timeout(REQUEST_TIMEOUT * 2, handle(stream, &app)).await;
                });
            }
        }
    }
}

async fn handle(mut s: TcpStream, app: &AppState) -> std::io::Result<()> {
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
        Ok(Ok(())) => route(&buf, app),
    };
    let head_only = buf.starts_with(b"HEAD ");
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
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
    resp.push_str("\r\n");
    if !head_only {
        resp.push_str(&body);
    }
    s.write_all(resp.as_bytes()).await?;
    s.shutdown().await
}

fn route(req: &[u8], app: &AppState) -> (u16, &'static str, String) {
    let line = req.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if method != "GET" && method != "HEAD" {
        return (405, "text/plain", "only GET and HEAD\n".into());
    }
    let path = target.split('?').next().unwrap_or("");
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
        _ => (
            404,
            "text/plain",
            "not found: try /, /metrics, /healthz, /readyz\n".into(),
        ),
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn short(sha: &str) -> String {
    sha.chars().take(16).collect()
}

fn status_page(app: &AppState) -> String {
    let status = app.status.read().unwrap_or_else(|p| p.into_inner());
    let mut h = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>regtrust</title><style>body{font-family:sans-serif;margin:1em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 6px;vertical-align:top;font-size:13px}.ok{background:#dfd}.bad{background:#fdd}code{font-size:12px}</style></head><body>",
    );
    let _ = write!(h, "<h1>regtrust {}</h1>", env!("CARGO_PKG_VERSION"));
    if status.is_empty() {
        h.push_str("<p>No registry probed yet.</p>");
    }
    h.push_str("<table><tr><th>registry</th><th>endpoint</th><th>verdict</th><th>presented (leaf / issuer)</th><th>node trusts</th><th>expected CA trusted</th><th>last error</th></tr>");
    for (r, expected) in status.iter() {
        let exp = match expected {
            Some(true) => "yes",
            Some(false) => "<b>NO</b>",
            None => "—",
        };
        for e in &r.endpoints {
            let class = if e.ok { "ok" } else { "bad" };
            let presented = match (e.presented_chain.first(), &e.presented_issuer) {
                (Some(l), Some(i)) => format!(
                    "<code>{}</code><br>{} <code>{}</code>",
                    short(&l.sha256),
                    esc(&i.subject),
                    esc(&short(&i.id))
                ),
                (Some(l), None) => format!("<code>{}</code>", short(&l.sha256)),
                _ => "—".into(),
            };
            let trusted: Vec<String> = e
                .trusted_cas
                .iter()
                .map(|t| {
                    format!(
                        "{} <code>{}</code><br><small>{}</small>",
                        esc(&t.subject),
                        short(&t.sha256),
                        esc(&t.source)
                    )
                })
                .collect();
            let err = if e.ok { String::new() } else { esc(&e.detail) };
            let _ = write!(
                h,
                "<tr class=\"{class}\"><td>{}</td><td>{}</td><td>{}</td><td>{presented}</td><td>{} <small>(+{} system roots)</small></td><td>{exp}</td><td>{err}</td></tr>",
                esc(&r.registry),
                esc(&e.endpoint),
                e.reason,
                trusted.join("<br>"),
                e.system_roots
            );
        }
    }
    h.push_str("</table><p><a href=\"/metrics\">/metrics</a> · <a href=\"/healthz\">/healthz</a> · <a href=\"/readyz\">/readyz</a></p></body></html>\n");
    h
}
