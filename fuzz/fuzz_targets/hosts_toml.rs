//! containerd hosts.toml, as regtrust parses it (a file someone else may write).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = regtrust::trust::containerd::hosts_toml::endpoints(std::path::Path::new("/etc/containerd/certs.d/r.test:5000"), data);
});
