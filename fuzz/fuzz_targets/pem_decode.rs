//! Go's `pem.Decode` and `AppendCertsFromPEM` over any bytes: no panic, bounded time (the
//! decoder finds END lines from a precomputed list, not by Go's quadratic search), and every
//! block it returns re-encodes to something it decodes again to the same DER.
#![no_main]
use libfuzzer_sys::fuzz_target;
use regtrust::pem;

fuzz_target!(|data: &[u8]| {
    let blocks = pem::decode_all(data);
    let scan = pem::scan_certs(data);
    assert!(scan.certs.len() <= blocks.len());
    for b in blocks.iter().filter(|b| b.kind == b"CERTIFICATE" && b.headers.is_empty()) {
        let again = pem::decode_all(pem::encode_cert(&b.bytes).as_bytes());
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].bytes, b.bytes);
    }
});
