//! A registry's (or proxy's) HTTP response head, as the probe parses it.
#![no_main]
use libfuzzer_sys::fuzz_target;
use regtrust::probe::http::{parse_response_head, MAX_LOCATION_CHARS};

fuzz_target!(|data: &[u8]| {
    if let Ok(Some(head)) = parse_response_head(data) {
        assert!(head.len <= data.len(), "a head longer than its input");
        let location = head.location.map_or(0, |l| l.chars().count());
        assert!(location <= MAX_LOCATION_CHARS, "Location kept unbounded");
        let realm = head.bearer_realm.map_or(0, |r| r.chars().count());
        assert!(realm <= MAX_LOCATION_CHARS, "realm kept unbounded");
    }
});
