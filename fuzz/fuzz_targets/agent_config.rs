//! The agent's own TOML config (validated as a whole).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = regtrust::config::AgentConfig::from_toml(&String::from_utf8_lossy(data));
});
