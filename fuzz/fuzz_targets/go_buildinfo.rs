//! A runtime's binary, as regtrust reads its ELF headers, Go build info and symbols (a file on
//! the node that anyone with root there may replace).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    use regtrust::trust::runtime_version::{buildinfo, elf};
    let _ = buildinfo::read(data);
    if let Ok(Some(e)) = elf::Elf::parse(data) {
        let _ = e.symbol("github.com/containerd/containerd/version.Version");
    }
});
