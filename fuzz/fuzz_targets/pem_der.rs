//! PEM bundles and DER certificates (CA files, the system bundle, what a registry presents), and
//! Go-compatible verification of whatever parses, with itself as the only root.
#![no_main]
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use regtrust::cert::Cert;
use regtrust::verify::{verify, VerifyOptions};

fuzz_target!(|data: &[u8]| {
    let scan = regtrust::pem::scan_certs(data);
    let mut certs: Vec<Arc<Cert>> = scan.certs.iter().filter_map(|d| Cert::from_der(d).ok()).map(Arc::new).collect();
    if let Ok(c) = Cert::from_der(data) {
        let _ = c.info();
        certs.push(Arc::new(c));
    }
    if let Some(leaf) = certs.first() {
        let opts = VerifyOptions { roots: &certs, intermediates: &certs, server_name: "registry.test", now: 1_800_000_000, go: regtrust::verify::GoVersion::NEWEST, rsa_min_bits: 1024 };
        let _ = verify(leaf, &opts);
    }
});
