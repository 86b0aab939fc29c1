//! One test for each rule of Go's `pem.Decode` (go1.19 `encoding/pem/pem.go`, `Decode`,
//! `getLine`, `removeSpacesAndTabs`) and of `CertPool.AppendCertsFromPEM`
//! (`crypto/x509/cert_pool.go`).

use super::*;

fn cert_pem() -> (Vec<u8>, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["a.test".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    (cert.der().to_vec(), cert.pem())
}

fn kinds(data: &str) -> Vec<String> {
    decode_all(data.as_bytes())
        .iter()
        .map(|b| String::from_utf8_lossy(&b.kind).into_owned())
        .collect()
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
fn a_block_without_its_end_line_is_skipped_and_scanning_resumes_after_its_begin() {
    let (der, pem) = cert_pem();
    // The first block's END search finds the second block's END; its base64 then runs into
    // the second BEGIN line and fails, so Go resumes after the first BEGIN line.
    let data = format!("-----BEGIN CERTIFICATE-----\nAAAA\n{pem}");
    assert_eq!(scan_certs(data.as_bytes()).certs, vec![der.clone()]);
    // The same when the unclosed block is of another type.
    let data = format!("-----BEGIN PRIVATE KEY-----\nAAAA\n{pem}");
    assert_eq!(kinds(&data), vec!["CERTIFICATE"]);
    // An unclosed block at the end: nothing, no panic.
    let data = format!("{pem}-----BEGIN CERTIFICATE-----\nAAAA\n");
    assert_eq!(scan_certs(data.as_bytes()).certs, vec![der]);
}

#[test]
fn header_lines_are_kept_and_a_certificate_with_headers_is_skipped() {
    let (_, pem) = cert_pem();
    let body = pem.split_once('\n').unwrap().1;
    let data =
        format!("-----BEGIN CERTIFICATE-----\nProc-Type: 4,ENCRYPTED\n DEK-Info :  x \n{body}");
    let blocks = decode_all(data.as_bytes());
    assert_eq!(blocks.len(), 1);
    assert_eq!(
        blocks[0].headers,
        vec![
            ("Proc-Type".to_string(), "4,ENCRYPTED".to_string()),
            ("DEK-Info".to_string(), "x".to_string())
        ]
    );
    let scan = scan_certs(data.as_bytes());
    assert!(scan.certs.is_empty());
    assert!(scan.skipped[0].contains("headers"), "{:?}", scan.skipped);
}

#[test]
fn input_ending_inside_the_headers_ends_the_scan() {
    // Go's `if len(rest) == 0 { return nil, data }` in the header loop: nothing is returned,
    // even though a later search could have found something.
    assert!(decode_all(b"-----BEGIN CERTIFICATE-----\nProc-Type: 4").is_empty());
    assert!(decode_all(b"-----BEGIN CERTIFICATE-----\n").is_empty());
}

#[test]
fn junk_between_and_around_blocks_is_ignored() {
    let (der, pem) = cert_pem();
    let data = format!("subject=CN = a.test\nissuer=x\n\n{pem}\n# comment\n\t\n{pem}trailing");
    assert_eq!(scan_certs(data.as_bytes()).certs, vec![der.clone(), der]);
}

#[test]
fn crlf_line_endings_decode() {
    let (der, pem) = cert_pem();
    let crlf = pem.replace('\n', "\r\n");
    assert_eq!(scan_certs(crlf.as_bytes()).certs, vec![der.clone()]);
    // Spaces and tabs at line ends and inside the base64 are ignored too.
    let spaced = pem
        .replace("-----\n", "-----  \t\n")
        .replacen("MI", "M \tI", 1);
    assert_eq!(scan_certs(spaced.as_bytes()).certs, vec![der]);
}

#[test]
fn begin_must_start_a_line_and_the_type_line_end_with_dashes() {
    let (der, pem) = cert_pem();
    assert!(scan_certs(format!("x{pem}").as_bytes()).certs.is_empty());
    let no_dashes = pem.replacen("CERTIFICATE-----", "CERTIFICATE----", 1);
    assert!(scan_certs(no_dashes.as_bytes()).certs.is_empty());
    assert_eq!(scan_certs(format!("x\n{pem}").as_bytes()).certs, vec![der]);
}

#[test]
fn the_end_line_must_name_the_same_type_and_end_there() {
    let (der, pem) = cert_pem();
    let wrong_type = pem.replace("END CERTIFICATE", "END PRIVATE KEY");
    assert!(decode_all(wrong_type.as_bytes()).is_empty());
    let junk_after = pem.replace("END CERTIFICATE-----", "END CERTIFICATE----- x");
    assert!(decode_all(junk_after.as_bytes()).is_empty());
    // A longer type on the END line still starts with the BEGIN type, but its dashes are
    // not where Go looks for them.
    let longer = pem.replace("END CERTIFICATE-----", "END CERTIFICATEX-----");
    assert!(decode_all(longer.as_bytes()).is_empty());
    let spaces_after = pem.replace("END CERTIFICATE-----", "END CERTIFICATE----- \t");
    assert_eq!(scan_certs(spaces_after.as_bytes()).certs, vec![der]);
}

#[test]
fn base64_needs_padding_and_ignores_trailing_bits() {
    // "QQ==" is "A"; "QR==" has non-zero trailing bits, which Go's StdEncoding accepts.
    for (body, want) in [
        ("QQ==", Some(b"A".to_vec())),
        ("QR==", Some(b"A".to_vec())),
        ("QQ", None),
        ("Q Q = =", Some(b"A".to_vec())),
    ] {
        let data = format!("-----BEGIN X-----\n{body}\n-----END X-----\n");
        let got = decode_all(data.as_bytes()).pop().map(|b| b.bytes);
        assert_eq!(got, want, "{body}");
    }
    // An empty body right before the END line is an empty block.
    let empty = decode_all(b"-----BEGIN X-----\n-----END X-----\n");
    assert_eq!(empty.len(), 1);
    assert!(empty[0].bytes.is_empty());
}

#[test]
fn a_certificate_go_does_not_parse_is_skipped() {
    let (der, pem) = cert_pem();
    // Trailing data after the certificate's DER: Go's ParseCertificate refuses it.
    let mut longer = der.clone();
    longer.push(0);
    let data = format!("{}{pem}", encode_cert(&longer));
    let scan = scan_certs(data.as_bytes());
    assert_eq!(scan.certs, vec![der]);
    assert!(
        scan.skipped[0].contains("x509: trailing data"),
        "{:?}",
        scan.skipped
    );
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
fn hostile_input_is_decoded_in_bounded_time() {
    // Go's Decode searches the END line from every BEGIN: quadratic. Ours is not.
    let unit = "-----BEGIN X-----\nAAAA\n";
    let mut data = unit.repeat(100_000);
    data.push_str("\n-----END Y-----\n");
    let t = std::time::Instant::now();
    assert!(decode_all(data.as_bytes()).is_empty());
    assert!(
        t.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        t.elapsed()
    );
}

#[test]
fn round_trips() {
    let (der, _) = cert_pem();
    assert_eq!(scan_certs(encode_cert(&der).as_bytes()).certs, vec![der]);
}
