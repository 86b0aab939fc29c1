//! The HTTP answer of a registry (to `GET /v2/`) or of a proxy (to `CONNECT`): send the request,
//! read the response head, bounded by [`MAX_HEADER_BYTES`], and parse it with `httparse` (the
//! parser hyper uses). Only the status code, a redirect's `Location` and a `Bearer` challenge's
//! `realm` are kept (following them is [`super::follow`]'s).
//!
//! Never does: read a body, or read past [`MAX_HEADER_BYTES`] (+ one chunk).

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::MAX_HEADER_BYTES;

/// Most characters of a redirect's `Location` kept for the report.
pub const MAX_LOCATION_CHARS: usize = 4096;

/// What a response head says that the probe uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    /// Bytes of the head, up to and including the blank line.
    pub len: usize,
    pub code: u16,
    pub location: Option<String>,
    /// The `realm` of the first `Bearer` challenge in `WWW-Authenticate` (bounded as `Location`).
    pub bearer_realm: Option<String>,
}

/// Parses the response head at the start of `buf`: `Ok(None)` while it is incomplete, an error
/// (for a person) when it is not an HTTP/1.x response head.
pub fn parse_response_head(buf: &[u8]) -> Result<Option<ResponseHead>, String> {
    // A header line needs at least 3 bytes ("a:\n"): this many slots hold every header a head
    // inside `buf` can have, so the only limit on headers is the byte bound.
    let mut headers = vec![httparse::EMPTY_HEADER; buf.len() / 3 + 1];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Partial) => return Ok(None),
        Ok(httparse::Status::Complete(len)) => len,
        Err(e) => {
            let line = buf.split(|&b| b == b'\n').next().unwrap_or_default();
            let line: String = String::from_utf8_lossy(line).chars().take(80).collect();
            return Err(format!("malformed HTTP response ({e}): {line:?}"));
        }
    };
    let code = resp
        .code
        .ok_or_else(|| "malformed HTTP response: no status code".to_string())?;
    let location = resp
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("location"))
        .map(|h| {
            String::from_utf8_lossy(h.value)
                .trim()
                .chars()
                .take(MAX_LOCATION_CHARS)
                .collect()
        });
    let bearer_realm = resp
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("www-authenticate"))
        .find_map(|h| bearer_realm(&String::from_utf8_lossy(h.value)))
        .map(|r| r.chars().take(MAX_LOCATION_CHARS).collect());
    Ok(Some(ResponseHead {
        len,
        code,
        location,
        bearer_realm,
    }))
}

/// The `realm` parameter of a `Bearer` challenge (RFC 6750 §3, as the runtimes' challenge parsers
/// read it: scheme case-insensitive, `key=value` or `key="quoted \"value\""` pairs).
pub fn bearer_realm(value: &str) -> Option<String> {
    let v = value.trim_start();
    let (scheme, rest) = v.split_once(|c: char| c.is_ascii_whitespace())?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut rest = rest.trim_start();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let (val, after) = param_value(after.trim_start())?;
        if key.trim().eq_ignore_ascii_case("realm") {
            return Some(val);
        }
        rest = after.trim_start().trim_start_matches(',').trim_start();
    }
    None
}

/// One parameter value (quoted or a token) and what follows it.
fn param_value(s: &str) -> Option<(String, &str)> {
    if let Some(q) = s.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = q.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => out.push(chars.next()?.1),
                '"' => return Some((out, &q[i + 1..])),
                c => out.push(c),
            }
        }
        return None;
    }
    let end = s.find(',').unwrap_or(s.len());
    Some((s[..end].trim().to_string(), &s[end..]))
}

/// Why an HTTP exchange failed.
#[derive(Debug)]
pub(super) enum HttpError {
    Io {
        op: &'static str,
        err: std::io::Error,
    },
    Protocol(String),
}

impl From<String> for HttpError {
    fn from(s: String) -> Self {
        HttpError::Protocol(s)
    }
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::Io { op, err } => write!(f, "{op}: {err}"),
            HttpError::Protocol(s) => f.write_str(s),
        }
    }
}

/// Sends `req`, reads the response head (bounded) and returns it.
pub(super) async fn http_exchange<S: AsyncRead + AsyncWrite + Unpin + ?Sized>(
    s: &mut S,
    req: &[u8],
) -> Result<ResponseHead, HttpError> {
    let io = |op: &'static str| move |err: std::io::Error| HttpError::Io { op, err };
    s.write_all(req).await.map_err(io("write"))?;
    s.flush().await.map_err(io("write"))?;
    let too_large = || format!("response headers larger than {MAX_HEADER_BYTES} bytes");
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(head) = parse_response_head(&buf)? {
            if head.len > MAX_HEADER_BYTES {
                return Err(too_large().into());
            }
            return Ok(head);
        }
        if buf.len() > MAX_HEADER_BYTES {
            return Err(too_large().into());
        }
        let n = s.read(&mut chunk).await.map_err(io("read"))?;
        if n == 0 {
            return Err(if buf.is_empty() {
                "connection closed before any response (EOF)"
                    .to_string()
                    .into()
            } else {
                format!(
                    "connection closed inside the response head (EOF after {} bytes)",
                    buf.len()
                )
                .into()
            });
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_complete_head_gives_code_and_location_and_only_from_the_head() {
        let head = b"HTTP/1.1 302 Found\r\nlocation:  /v2/  \r\nX-A: b\r\n\r\nLocation: body";
        let h = parse_response_head(head).unwrap().unwrap();
        assert_eq!((h.code, h.location.as_deref()), (302, Some("/v2/")));
        assert_eq!(h.len, head.len() - "Location: body".len());
        let h = parse_response_head(b"HTTP/1.0 200 OK\n\n")
            .unwrap()
            .unwrap();
        assert_eq!((h.code, h.location), (200, None));
        // No reason phrase, as Go's net/http also accepts.
        let h = parse_response_head(b"HTTP/1.1 401\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.code, 401);
    }

    #[test]
    fn partial_heads_ask_for_more_and_garbage_is_an_error() {
        assert_eq!(parse_response_head(b"").unwrap(), None);
        assert_eq!(
            parse_response_head(b"HTTP/1.1 200 OK\r\nX-A:").unwrap(),
            None
        );
        let err = parse_response_head(b"<html>\r\n\r\n").unwrap_err();
        assert!(err.contains("malformed HTTP response"), "{err}");
        assert!(parse_response_head(b"HTTP/1.1 abc OK\r\n\r\n").is_err());
    }

    #[test]
    fn many_small_headers_are_not_a_limit_of_their_own() {
        let mut head = b"HTTP/1.1 200 OK\n".to_vec();
        head.extend(b"a:\n".repeat(3000));
        head.extend(b"\n");
        assert_eq!(parse_response_head(&head).unwrap().unwrap().code, 200);
    }

    #[test]
    fn a_bearer_challenges_realm_is_kept_and_other_schemes_are_not() {
        let head = b"HTTP/1.1 401 Unauthorized\r\nWww-Authenticate: Basic realm=\"b\"\r\nWWW-Authenticate: bearer service=\"r\", realm=\"https://auth.test:5001/token?a=\\\"1\\\"\",scope=x\r\n\r\n";
        let h = parse_response_head(head).unwrap().unwrap();
        assert_eq!(
            h.bearer_realm.as_deref(),
            Some("https://auth.test:5001/token?a=\"1\"")
        );
        assert_eq!(
            bearer_realm("Bearer realm=https://a.test/t,service=s").as_deref(),
            Some("https://a.test/t")
        );
        assert_eq!(bearer_realm("Basic realm=\"x\""), None);
        assert_eq!(bearer_realm("Bearer service=\"s\""), None);
        assert_eq!(bearer_realm("Bearer realm=\"unterminated"), None);
        assert_eq!(bearer_realm("Bearer"), None);
    }

    #[test]
    fn a_long_location_is_cut_to_its_bound() {
        let head = format!("HTTP/1.1 301 M\r\nLocation: /{}\r\n\r\n", "a".repeat(9000));
        let h = parse_response_head(head.as_bytes()).unwrap().unwrap();
        assert_eq!(h.location.unwrap().chars().count(), MAX_LOCATION_CHARS);
    }

    #[tokio::test]
    async fn exchange_is_bounded_and_says_how_it_ended() {
        let (mut a, mut b) = tokio::io::duplex(64 * 1024);
        let server = tokio::spawn(async move {
            let mut req = [0u8; 64];
            let _ = b.read(&mut req).await;
            let pad = "X-Pad: aaaaaaaaaaaaaaaaaaaaaaaa\r\n".repeat(1000);
            let _ = b
                .write_all(format!("HTTP/1.1 200 OK\r\n{pad}").as_bytes())
                .await;
            b
        });
        let err = http_exchange(&mut a, b"GET / HTTP/1.1\r\n\r\n")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("larger than"), "{err}");
        drop(server.await);

        let (mut a, b) = tokio::io::duplex(1024);
        drop(b);
        let err = http_exchange(&mut a, b"x").await.unwrap_err();
        assert!(
            err.to_string().contains("write") || err.to_string().contains("EOF"),
            "{err}"
        );
    }
}
