//! The agent's state file (it may be corrupt after a crash or an edit).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = regtrust::agent::state::parse(data);
});
