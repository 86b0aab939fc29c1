//! The expected CA from where the PKI publishes it (`expected_ca_url`: a Vault PKI's
//! `/v1/pki/ca/pem`, step-ca's `/roots.pem`): one HTTPS GET per probe round under the URL's own
//! trust — a pinned leaf certificate or a CA bundle, never the registry's — bounded in time (the
//! probe timeout) and size ([`MAX_BODY_BYTES`]), redirects not followed. The PEM certificates of
//! the answer join the registry's expected set ([`join`]) exactly as `expected_ca_file`'s do; a
//! failure becomes the expected CA's error (the `expected_ca_unreadable` finding).
//!
//! Besides `probe`, the only code of the agent that talks to the network. reqwest is always handed
//! a rustls `ClientConfig` built here on aws-lc-rs, so it never needs a default crypto provider.

use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::drift::Expected;
use crate::config::{CaUrl, CaUrlTrust};
use crate::offload;

/// Largest answer accepted: a CA bundle is a few KiB; a server that sends more is not sending one.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The SHA-256s of the CAs published at `u`, fetched within `timeout` (connect, TLS, answer and
/// body together), or what went wrong, naming the URL.
pub async fn fetch(u: &CaUrl, timeout: Duration) -> Result<Vec<String>, String> {
    let at = |e: String| format!("{}: {e}", u.url);
    let tls = client_config(&u.trust).await.map_err(at)?;
    let body = match tokio::time::timeout(timeout, get(&u.url, tls, timeout)).await {
        Ok(got) => got.map_err(at)?,
        Err(_) => return Err(at(format!("no complete answer within {timeout:?}"))),
    };
    let scan = crate::pem::scan_certs(&body);
    if scan.certs.is_empty() {
        return Err(at("the answer holds no PEM certificate".into()));
    }
    let mut shas: Vec<String> = scan
        .certs
        .iter()
        .map(|d| crate::cert::sha256_hex(d))
        .collect();
    shas.sort();
    shas.dedup();
    Ok(shas)
}

/// A registry's expected CAs (pins and file, as [`super::reconcile`] read them) joined with those
/// fetched this round: fingerprints sorted and deduplicated; a fetch failure is the error (beside
/// the file's, when both fail). `None` when nothing is expected at all.
pub fn join(
    base: Option<&Expected>,
    fetched: Option<&Result<Vec<String>, String>>,
) -> Option<Expected> {
    let Some(fetched) = fetched else {
        return base.cloned();
    };
    let mut e = base.cloned().unwrap_or_default();
    match fetched {
        Ok(shas) => e.shas.extend(shas.iter().cloned()),
        Err(err) => {
            e.error = Some(match e.error.take() {
                Some(first) => format!("{first}; {err}"),
                None => err.clone(),
            })
        }
    }
    e.shas.sort();
    e.shas.dedup();
    Some(e)
}

/// The body of `url`, at most [`MAX_BODY_BYTES`], from a 2xx answer.
async fn get(
    url: &reqwest::Url,
    tls: rustls::ClientConfig,
    timeout: Duration,
) -> Result<Vec<u8>, String> {
    let too_big = || format!("the answer is larger than {MAX_BODY_BYTES} bytes");
    let client = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .build()
        .map_err(causes)?;
    let mut resp = client.get(url.clone()).send().await.map_err(causes)?;
    let status = resp.status();
    if status.is_redirection() {
        return Err(format!(
            "HTTP {status}: redirects are not followed, give the final URL"
        ));
    }
    if !status.is_success() {
        return Err(format!("HTTP {status}"));
    }
    if resp
        .content_length()
        .is_some_and(|n| n > MAX_BODY_BYTES as u64)
    {
        return Err(too_big());
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(causes)? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(too_big());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A reqwest error with its causes (the rustls or I/O error a person can act on is deep inside).
fn causes(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut out = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        src = s.source();
    }
    out
}

/// The TLS client settings for the URL's own trust.
async fn client_config(trust: &CaUrlTrust) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    Ok(match trust {
        CaUrlTrust::PinnedLeaf(sha256) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedLeaf {
                sha256: sha256.clone(),
                provider,
            }))
            .with_no_client_auth(),
        CaUrlTrust::CaFile(path) => {
            let path = path.clone();
            let roots = offload::blocking(move || roots(&path))
                .await
                .map_err(|e| e.to_string())??;
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    })
}

/// The CAs of a PEM bundle in the agent's filesystem. Blocking: reads the file.
fn roots(path: &std::path::Path) -> Result<RootCertStore, String> {
    let data =
        crate::hostroot::read_bounded(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut store = RootCertStore::empty();
    for der in crate::pem::scan_certs(&data).certs {
        let _ = store.add(CertificateDer::from(der));
    }
    if store.is_empty() {
        return Err(format!(
            "{}: holds no usable CA certificate to verify the server with",
            path.display()
        ));
    }
    Ok(store)
}

/// Trusts exactly one leaf certificate, by its SHA-256: the operator pinned it, so no chain, name
/// or validity period is checked — but the handshake signatures are, so only the holder of that
/// certificate's key gets through.
#[derive(Debug)]
struct PinnedLeaf {
    sha256: String,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedLeaf {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got = crate::cert::sha256_hex(end_entity);
        if got == self.sha256 {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "the server's certificate has SHA-256 {got}, not the pinned {}",
                self.sha256
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests;
