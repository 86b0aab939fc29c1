//! containerd's config.toml: where the hosts dirs are, or the deprecated CRI registry settings.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = regtrust::trust::containerd::Layout::from_config(data, std::path::Path::new("/etc/containerd/config.toml"));
});
