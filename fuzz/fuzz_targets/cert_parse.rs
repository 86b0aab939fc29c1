//! Go's `x509.ParseCertificate` rules over any DER ([`Cert::from_der_go`]): no panic, bounded
//! time, and the per-version judgements (negative serials, critical policy extensions, the
//! duplicate extension's wording) answer for every modelled Go.
#![no_main]
use libfuzzer_sys::fuzz_target;
use regtrust::cert::Cert;
use regtrust::verify::GoVersion;

fuzz_target!(|data: &[u8]| {
    let versions = [GoVersion::new(19, 8), GoVersion::new(23, 0), GoVersion::new(24, 0), GoVersion::NEWEST];
    match Cert::from_der_go(data) {
        Ok(c) => {
            for go in versions {
                let _ = c.has_unhandled_critical(go);
                let _ = c.go_parse_error(go, None);
                let _ = c.go_parse_error(go, Some("1"));
            }
            let _ = c.info();
        }
        Err(e) => {
            for go in versions {
                assert!(e.text(go).starts_with("x509: "));
            }
        }
    }
});
