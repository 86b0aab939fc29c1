//! The first five bytes a peer sends in answer to the TLS hello: Go's `tls.RecordHeaderError`
//! carries them (`RecordHeader`), and two decisions hang on whether they are `HTTP/`:
//! net/http's client words the failure `http: server gave HTTP response to HTTPS client`
//! (client.go `send`), and containerd's `HTTPFallback` retries over plain HTTP only then
//! (resolver.go `isTLSError`). Any other record that is not TLS is `tls: first record does not
//! look like a TLS handshake`, with no fallback.
//!
//! Never does: anything but copy the bytes as they are read.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::Failure;

/// net/http's words for an `HTTP/` answer to a TLS hello (`ErrSchemeMismatch` from go1.21; the
/// same text before).
pub const HTTP_ANSWER: &str = "http: server gave HTTP response to HTTPS client";

/// Length of a TLS record header.
const HEADER: usize = 5;

/// The bytes seen so far (at most [`HEADER`]).
#[derive(Clone, Default)]
pub(crate) struct Seen(Arc<Mutex<Vec<u8>>>);

impl Seen {
    /// The bytes seen: the first record's header, or less when the peer sent less.
    pub(crate) fn header(&self) -> Vec<u8> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Whether rustls failed on the record layer of the peer's first answer (its header), where Go
/// returns a `RecordHeaderError`.
pub(crate) fn is_record_error(e: &std::io::Error) -> bool {
    use rustls::InvalidMessage as M;
    matches!(
        e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()),
        Some(rustls::Error::InvalidMessage(
            M::InvalidContentType | M::UnknownProtocolVersion | M::MessageTooLarge
        ))
    )
}

/// Go's `maxCiphertext` (crypto/tls common.go): the largest record before the version is agreed.
const MAX_CIPHERTEXT: usize = 16384 + 2048;

/// Go's failure for a first record with `header` (conn.go `readRecordOrCCS`, then net/http's
/// client.go `send` for an `HTTP/` header).
pub(crate) fn failure(header: &[u8]) -> Failure {
    failure_of(header).0
}

/// [`failure`] with Go's text.
pub(crate) fn failure_of(header: &[u8]) -> (Failure, String) {
    if header == b"HTTP/" {
        return (Failure::HttpAnswer, HTTP_ANSWER.into());
    }
    // A handshake or alert record with a TLS version, but longer than Go reads.
    if let [typ @ (0x15 | 0x16), major, _, hi, lo] = header {
        let len = usize::from(*hi) << 8 | usize::from(*lo);
        if *major < 0x10 && len > MAX_CIPHERTEXT {
            let _ = typ;
            let text = format!("tls: oversized record received with length {len}");
            return (Failure::Handshake(text.clone()), text);
        }
    }
    let text = "tls: first record does not look like a TLS handshake".to_string();
    (Failure::NotTls(text.clone()), text)
}

/// A connection that keeps the first [`HEADER`] bytes it reads in a [`Seen`].
pub(crate) struct Recording<C> {
    inner: C,
    seen: Seen,
    full: bool,
}

impl<C> Recording<C> {
    pub(crate) fn new(inner: C) -> (Self, Seen) {
        let seen = Seen::default();
        let r = Recording {
            inner,
            seen: seen.clone(),
            full: false,
        };
        (r, seen)
    }
}

impl<C: AsyncRead + Unpin> AsyncRead for Recording<C> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        if !self.full && res.is_ready() {
            let new = &buf.filled()[before..];
            let mut seen = self.seen.0.lock().unwrap_or_else(|p| p.into_inner());
            let take = (HEADER - seen.len()).min(new.len());
            seen.extend_from_slice(&new[..take]);
            let full = seen.len() == HEADER;
            drop(seen);
            self.full = full;
        }
        res
    }
}

impl<C: AsyncWrite + Unpin> AsyncWrite for Recording<C> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn seen_after(peer_sends: &'static [u8], read_sizes: &[usize]) -> Seen {
        let (mut a, b) = tokio::io::duplex(64);
        a.write_all(peer_sends).await.unwrap();
        drop(a);
        let (mut r, seen) = Recording::new(b);
        for &n in read_sizes {
            let mut buf = vec![0; n];
            let _ = r.read(&mut buf).await.unwrap();
        }
        seen
    }

    fn is_http(seen: &Seen) -> bool {
        matches!(failure(&seen.header()), Failure::HttpAnswer)
    }

    #[tokio::test]
    async fn an_http_answer_is_seen_across_small_reads() {
        assert!(is_http(
            &seen_after(b"HTTP/1.1 400 Bad Request\r\n", &[2, 1, 10]).await
        ));
        assert!(is_http(&seen_after(b"HTTP/1.0 200 OK\r\n", &[64]).await));
    }

    #[tokio::test]
    async fn other_records_are_not_http() {
        // An SSH banner, lowercase, a peer that closes after four bytes, and later bytes (only
        // the first record header counts).
        for sent in [
            &b"SSH-2.0-OpenSSH_9.2\r\n"[..],
            b"http/1.1 200 OK\r\n",
            b"HTTP",
            b"xxxxxHTTP/",
        ] {
            let seen = seen_after(sent, &[64, 64]).await;
            assert!(
                matches!(failure(&seen.header()), Failure::NotTls(ref t) if t == "tls: first record does not look like a TLS handshake"),
                "{sent:?}"
            );
        }
    }

    /// conn.go `readRecordOrCCS`: a handshake record longer than `maxCiphertext` is
    /// `tls: oversized record received with length N`; one byte less is not.
    #[test]
    fn an_oversized_first_record_is_named_with_its_length() {
        let f = failure(&[0x16, 0x03, 0x03, 0x48, 0x01]);
        assert!(
            matches!(f, Failure::Handshake(ref t) if t == "tls: oversized record received with length 18433"),
            "{f:?}"
        );
        assert!(matches!(
            failure(&[0x16, 0x03, 0x03, 0x48, 0x00]),
            Failure::NotTls(_)
        ));
        // A version Go calls implausible (>= 0x1000) is not a TLS record at all.
        assert!(matches!(
            failure(&[0x16, 0x10, 0x03, 0x48, 0x01]),
            Failure::NotTls(_)
        ));
    }
}
