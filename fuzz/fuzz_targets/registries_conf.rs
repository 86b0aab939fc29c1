//! containers/image registries.conf (main file and drop-ins), as regtrust parses it (a file
//! someone else may write): parse, then find and expand the entry for a name from the input.
#![no_main]
use libfuzzer_sys::fuzz_target;
use regtrust::trust::registries_conf as rc;

fuzz_target!(|data: &[u8]| {
    let path = std::path::Path::new("/etc/containers/registries.conf");
    for drop_in in [false, true] {
        if let Ok(entries) = rc::parse_file(path, data, drop_in) {
            for e in &entries {
                let _ = rc::find(&entries, &e.prefix).map(|r| r.pull_sources(&e.prefix, false));
                let _ = e.pull_sources(&e.endpoint.location, true);
            }
        }
    }
});
