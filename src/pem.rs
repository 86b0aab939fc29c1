//! PEM certificate extraction with Go's `CertPool.AppendCertsFromPEM` semantics.
//!
//! The runtimes decide "this file holds a CA" with that function: every `CERTIFICATE` block without
//! headers whose DER parses is added; anything else (other block types, garbage between blocks, a
//! block whose base64 is broken, a certificate that does not parse) is skipped silently. Whether a
//! file yielded *no* certificate matters: containerd fails the pull then, containers/image does not.
//!
//! Never does: file or network I/O.

use base64::Engine;

/// Result of scanning one PEM file.
#[derive(Debug, Default)]
pub struct PemScan {
    /// DER of each certificate the runtime would add, in file order.
    pub certs: Vec<Vec<u8>>,
    /// Blocks that looked like certificates but were skipped, with why (for findings).
    pub skipped: Vec<String>,
}

/// Scans `data` the way Go's `AppendCertsFromPEM` does.
pub fn scan_certs(data: &[u8]) -> PemScan {
    let text = String::from_utf8_lossy(data);
    let mut out = PemScan::default();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let line = line.trim_end();
        let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|r| r.strip_suffix("-----"))
        else {
            continue;
        };
        let end = format!("-----END {label}-----");
        let mut body = String::new();
        let mut has_headers = false;
        let mut closed = false;
        for l in lines.by_ref() {
            let l = l.trim_end();
            if l == end {
                closed = true;
                break;
            }
            if l.contains(':') {
                has_headers = true;
            }
            body.extend(l.chars().filter(|c| !c.is_whitespace()));
        }
        if !closed {
            if label == "CERTIFICATE" {
                out.skipped
                    .push("a CERTIFICATE block has no END line".into());
            }
            break;
        }
        if label != "CERTIFICATE" {
            continue;
        }
        if has_headers {
            out.skipped
                .push("a CERTIFICATE block has PEM headers (Go skips it)".into());
            continue;
        }
        match base64::engine::general_purpose::STANDARD.decode(body.as_bytes()) {
            Ok(der) => match x509_parser::parse_x509_certificate(&der) {
                Ok(_) => out.certs.push(der),
                Err(e) => out
                    .skipped
                    .push(format!("a CERTIFICATE block does not parse: {e}")),
            },
            Err(e) => out
                .skipped
                .push(format!("a CERTIFICATE block has broken base64: {e}")),
        }
    }
    out
}

/// Encodes DER as one PEM `CERTIFICATE` block.
pub fn encode_cert(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut s = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        s.push_str(&String::from_utf8_lossy(chunk));
        s.push('\n');
    }
    s.push_str("-----END CERTIFICATE-----\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert_pem() -> (Vec<u8>, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["a.test".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.der().to_vec(), cert.pem())
    }

    #[test]
    fn keeps_certs_and_skips_everything_else() {
        let (der, pem) = cert_pem();
        let data = format!(
            "junk\n-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n{pem}\n\
             -----BEGIN CERTIFICATE-----\n!!!notbase64\n-----END CERTIFICATE-----\n\
             -----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n{pem}"
        );
        let scan = scan_certs(data.as_bytes());
        assert_eq!(scan.certs, vec![der.clone(), der]);
        assert_eq!(scan.skipped.len(), 2, "{:?}", scan.skipped);
    }

    #[test]
    fn binary_garbage_yields_nothing_and_no_panic() {
        let garbage: Vec<u8> = (0..10_000u32).map(|i| (i * 7919 % 251) as u8).collect();
        assert!(scan_certs(&garbage).certs.is_empty());
        assert!(scan_certs(b"-----BEGIN CERTIFICATE-----\nAAAA")
            .certs
            .is_empty());
    }

    #[test]
    fn round_trips() {
        let (der, _) = cert_pem();
        assert_eq!(scan_certs(encode_cert(&der).as_bytes()).certs, vec![der]);
    }
}
