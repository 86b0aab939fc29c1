//! The second TLS stack: OpenSSL (through the `openssl` crate), for the handshakes the runtime's
//! Go completes and rustls cannot — CBC suites, RSA key exchange, 3DES where that Go still
//! offers them, P-521 key exchange, TLS 1.0 and 1.1 where the runtime allows them.
//!
//! It offers exactly the runtime's Go offer ([`super::go_tls::Offer`]: versions, suites, groups,
//! signature schemes), so the server picks from what Go would send. OpenSSL only negotiates:
//! its own certificate verification is off, and the chain it received is judged by regtrust's
//! Go verifier ([`super::danger::verify_recorded`], on the blocking pool) before a byte of HTTP
//! is sent — the verdict is the runtime's, never OpenSSL's. A chain that does not verify wins
//! over a handshake that failed later (a client certificate refused), as in Go, which verifies
//! before it sends its own certificate.
//!
//! Failures are worded as Go words them: a fatal alert from the server is `remote error: tls:
//! handshake failure` (`crypto/tls/alert.go`).

use std::pin::Pin;

use openssl::pkey::PKey;
use openssl::ssl::{Ssl, SslContext, SslMethod, SslVerifyMode, SslVersion};
use openssl::x509::X509;
use tokio::time::timeout_at;
use tokio_openssl::SslStream;

use super::danger::{self, Recorded};
use super::go_tls::{self, Offer, Version};
use super::{Conn, Failure, Phase, Stack, TlsSession};
use crate::trust::{ClientIdentity, Endpoint};

/// OpenSSL reports a fatal alert received from the peer as reason `1000 + alert`
/// (`SSL_AD_REASON_OFFSET`).
const ALERT_REASON_OFFSET: i32 = 1000;

/// A handshake over the second stack that succeeded and whose chain the runtime trusts (or does
/// not verify).
pub(crate) struct Done {
    pub stream: Box<dyn Conn>,
    /// The SHA-256 of the verified leaf's issuer, when verified.
    pub issuer: Option<String>,
    pub session: TlsSession,
}

/// What the verdict needs besides the chain.
pub(crate) struct Trust {
    pub roots: crate::verify::Pool,
    pub go: danger::GoParse,
}

/// The runtime's handshake with `server_name` over `conn`, on OpenSSL, judged by Go's rules.
pub(crate) async fn connect(
    conn: Box<dyn Conn>,
    server_name: &str,
    ep: &Endpoint,
    trust: Trust,
    offer: &Offer,
    deadline: tokio::time::Instant,
) -> (Result<Done, Failure>, Recorded) {
    let mut stream = match ssl(offer, ep.clients.first().map(|c| &**c), server_name)
        .and_then(|ssl| SslStream::new(ssl, conn))
    {
        Ok(s) => s,
        Err(e) => {
            let msg = format!("the second TLS stack (OpenSSL) cannot offer what the runtime's Go offers ({}): {e}", offer.origin);
            return (Err(Failure::Handshake(msg)), Recorded::default());
        }
    };
    let shaken = timeout_at(deadline, Pin::new(&mut stream).connect()).await;
    let rec = recorded(stream.ssl(), &trust.go);
    // The chain's verdict comes first, as Go verifies inside the handshake.
    let verdict = match judge(&rec, ep, server_name, trust).await {
        Ok(issuer) => issuer,
        Err(f) => return (Err(f), rec),
    };
    let result = match shaken {
        Err(_) => Err(Failure::Timeout(Phase::Tls)),
        Ok(Err(e)) => Err(Failure::Handshake(go_words(&e))),
        Ok(Ok(())) => Ok(Done {
            session: session(stream.ssl()),
            stream: Box::new(stream),
            issuer: verdict,
        }),
    };
    (result, rec)
}

/// One connection's OpenSSL state, configured with the runtime's offer.
fn ssl(
    offer: &Offer,
    client: Option<&ClientIdentity>,
    server_name: &str,
) -> Result<Ssl, openssl::error::ErrorStack> {
    let mut b = SslContext::builder(SslMethod::tls_client())?;
    // Verification is Go's, on the recorded chain; OpenSSL only negotiates.
    b.set_verify(SslVerifyMode::NONE);
    b.set_min_proto_version(Some(ssl_version(offer.min)))?;
    b.set_max_proto_version(Some(SslVersion::TLS1_3))?;
    // Security level 0: Go has no such levels; TLS 1.0 with SHA-1 MACs, SHA-1 handshake
    // signatures and 1024-bit RSA keys are what Go accepts where it accepts them.
    let suites: Vec<&str> = offer.suites.iter().map(|s| s.openssl).collect();
    b.set_cipher_list(&format!("{}:@SECLEVEL=0", suites.join(":")))?;
    let tls13: Vec<&str> = go_tls::TLS13_SUITES.iter().map(|(_, n)| *n).collect();
    b.set_ciphersuites(&tls13.join(":"))?;
    let groups: Vec<&str> = offer.groups.iter().map(|g| g.openssl()).collect();
    if b.set_groups_list(&groups.join(":")).is_err() {
        // An OpenSSL without the hybrid post-quantum group (before 3.5): the classic ones.
        let classic: Vec<&str> = groups
            .into_iter()
            .filter(|g| !g.contains("MLKEM"))
            .collect();
        b.set_groups_list(&classic.join(":"))?;
    }
    let schemes: Vec<&str> = offer.schemes().iter().map(|s| s.openssl).collect();
    b.set_sigalgs_list(&schemes.join(":"))?;
    if let Some(id) = client {
        let mut certs = id.chain.iter();
        if let Some(leaf) = certs.next() {
            let leaf = X509::from_der(leaf)?;
            b.set_certificate(&leaf)?;
        }
        for c in certs {
            b.add_extra_chain_cert(X509::from_der(c)?)?;
        }
        let key = PKey::private_key_from_der(&id.key_der.0)?;
        b.set_private_key(&key)?;
    }
    let mut ssl = Ssl::new(&b.build())?;
    // Go sends SNI for host names only, never for an IP literal (`hostnameInSNI`).
    let sni = server_name.trim_end_matches('.');
    if sni.parse::<std::net::IpAddr>().is_err() && !sni.is_empty() {
        ssl.set_hostname(sni)?;
    }
    Ok(ssl)
}

fn ssl_version(v: Version) -> SslVersion {
    match v {
        Version::Tls10 => SslVersion::TLS1,
        Version::Tls11 => SslVersion::TLS1_1,
        Version::Tls12 => SslVersion::TLS1_2,
        Version::Tls13 => SslVersion::TLS1_3,
    }
}

/// The chain as the server sent it (on the client side OpenSSL's peer chain starts with the leaf).
fn recorded(ssl: &openssl::ssl::SslRef, go: &danger::GoParse) -> Recorded {
    let ders: Vec<Vec<u8>> = ssl
        .peer_cert_chain()
        .map(|chain| chain.iter().filter_map(|c| c.to_der().ok()).collect())
        .unwrap_or_default();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    danger::record(ders.iter().map(Vec::as_slice), now, go)
}

/// Go's verdict on the recorded chain (none to give when the runtime skips verification or no
/// chain arrived).
async fn judge(
    rec: &Recorded,
    ep: &Endpoint,
    server_name: &str,
    trust: Trust,
) -> Result<Option<String>, Failure> {
    // Go refuses these before it looks at InsecureSkipVerify.
    if let Some(e) = &rec.rejected {
        return Err(Failure::BadCertificate(e.clone()));
    }
    if ep.skip_verify || rec.presented.is_empty() {
        return Ok(None);
    }
    let rec = rec.clone();
    let name = server_name.to_string();
    let verdict = crate::offload::blocking(move || {
        danger::verify_recorded(&rec, &trust.roots, &name, &trust.go)
    })
    .await
    .map_err(|e| Failure::Handshake(format!("verifying the chain from {server_name}: {e}")))?;
    verdict.map_err(Failure::Verify)
}

/// What was negotiated, by Go's names.
fn session(ssl: &openssl::ssl::SslRef) -> TlsSession {
    let version = match ssl.version2() {
        Some(v) if v == SslVersion::TLS1 => Version::Tls10.go_name(),
        Some(v) if v == SslVersion::TLS1_1 => Version::Tls11.go_name(),
        Some(v) if v == SslVersion::TLS1_2 => Version::Tls12.go_name(),
        Some(v) if v == SslVersion::TLS1_3 => Version::Tls13.go_name(),
        _ => ssl.version_str(),
    };
    let suite = ssl
        .current_cipher()
        .map(|c| go_tls::suite_name(u16::from_be_bytes(c.protocol_id())))
        .unwrap_or_default();
    TlsSession {
        stack: Stack::Openssl,
        version: version.to_string(),
        cipher_suite: suite,
    }
}

/// A read or write error of an established second-stack connection that carries an OpenSSL
/// error (a TLS 1.3 server's alert on the first read): a handshake failure in Go's words.
pub(crate) fn classify_io(err: &std::io::Error) -> Failure {
    match err
        .get_ref()
        .and_then(|i| i.downcast_ref::<openssl::ssl::Error>())
    {
        Some(e) => Failure::Handshake(go_words(e)),
        None => Failure::Http(err.to_string()),
    }
}

/// An OpenSSL handshake error in Go's words where Go has words for it.
fn go_words(e: &openssl::ssl::Error) -> String {
    let alert = e.ssl_error().and_then(|stack| {
        stack.errors().iter().find_map(|err| {
            let alert = err.reason_code() - ALERT_REASON_OFFSET;
            u8::try_from(alert).ok()
        })
    });
    if let Some(code) = alert {
        return go_tls::remote_alert(code);
    }
    match e.io_error() {
        Some(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => "EOF".to_string(),
        Some(io) => format!("tls handshake: {io}"),
        // The peer closed the connection without an alert.
        None if e.ssl_error().is_none() => "EOF".to_string(),
        None => {
            format!("tls: handshake failed (OpenSSL, offering what the runtime's Go offers): {e}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trust::Runtime;
    use crate::verify::GoVersion;

    #[test]
    fn openssl_takes_every_runtimes_offer() {
        // The system (or vendored) OpenSSL must accept every name the tables use.
        for rt in [Runtime::Containerd, Runtime::Crio, Runtime::Docker] {
            for go in [GoVersion::new(19, 8), GoVersion::new(25, 5)] {
                let offer = go_tls::offer(rt, go, &go_tls::GoDebug::parse("tls3des=1"));
                assert!(ssl(&offer, None, "registry.test").is_ok(), "{rt:?} {go}");
            }
        }
    }
}
