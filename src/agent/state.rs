//! What the agent remembers across restarts: per endpoint, the issuing CA it last saw and how many
//! times that changed (and from what), so a restart neither forgets a rotation nor counts it twice.
//!
//! The file is JSON, written atomically (temp file in the same directory, fsync, rename). A corrupt
//! or unreadable file is logged and replaced — never fatal.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::hostroot::{read_regular, Follow, ReadError};

pub const STATE_FILE: &str = "state.json";
const VERSION: u32 = 1;
/// A state file bigger than this is not ours (or is damaged): start afresh.
const MAX_STATE_BYTES: u64 = 16 * 1024 * 1024;

/// The last issuer seen at one endpoint.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Seen {
    pub issuer_id: String,
    pub issuer_subject: String,
    pub seen_at: i64,
    /// Changes counted so far (the `regtrust_ca_changes_total` value).
    pub changes: u64,
    #[serde(default)]
    pub previous_issuer_id: Option<String>,
    #[serde(default)]
    pub changed_at: Option<i64>,
    #[serde(default)]
    pub issuer_sha256: Option<String>,
    #[serde(default)]
    pub issuer_key_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
pub struct State {
    pub version: u32,
    /// Key: `registry endpoint-url`.
    pub endpoints: BTreeMap<String, Seen>,
}

/// Parses a state file's bytes. Pure: the entry point the fuzzer uses too.
pub fn parse(data: &[u8]) -> Result<State, String> {
    serde_json::from_slice::<State>(data).map_err(|e| e.to_string())
}

pub fn key(registry: &str, endpoint: &str) -> String {
    format!("{registry} {endpoint}")
}

/// Loads and saves the state file.
#[derive(Debug)]
pub struct StateStore {
    path: PathBuf,
    /// The number of the newest state written: saves run on the blocking pool, possibly out of
    /// order, and an older one must not overwrite a newer one.
    written: std::sync::Mutex<u64>,
}

impl StateStore {
    pub fn new(dir: &Path) -> StateStore {
        StateStore {
            path: dir.join(STATE_FILE),
            written: std::sync::Mutex::new(0),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The saved state; a missing file is an empty state, a bad one is logged and ignored.
    pub fn load(&self) -> State {
        // Only a regular file, read with a bound on the descriptor: a FIFO or a device there must
        // not hang the agent or exhaust its memory.
        let data = match read_regular(&self.path, MAX_STATE_BYTES, Follow::Yes) {
            Err(e) if e.is_not_found() => {
                return State {
                    version: VERSION,
                    ..Default::default()
                }
            }
            Err(ReadError::TooLarge { size, .. }) => {
                tracing::warn!(path = %self.path.display(), size, "state file is too large; starting with an empty state");
                return State {
                    version: VERSION,
                    ..Default::default()
                };
            }
            other => other,
        };
        let parsed = data.map_err(|e| e.to_string()).and_then(|d| parse(&d));
        match parsed {
            Ok(s) if s.version == VERSION => s,
            Ok(s) => {
                tracing::warn!(path = %self.path.display(), version = s.version, "state file has an unknown version; it will be replaced");
                State {
                    version: VERSION,
                    ..Default::default()
                }
            }
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "state file is unreadable or corrupt; it will be replaced");
                State {
                    version: VERSION,
                    ..Default::default()
                }
            }
        }
    }

    /// Saves `state`, the `gen`-th state the caller produced, unless a newer one was written.
    /// Blocking (fsync): call it off the event loop.
    pub fn save_newer(&self, gen: u64, state: &State) -> std::io::Result<()> {
        let mut written = self.written.lock().unwrap_or_else(|p| p.into_inner());
        if gen <= *written {
            return Ok(());
        }
        self.save(state)?;
        *written = gen;
        Ok(())
    }

    /// Writes atomically; errors are returned for the caller to log. The temporary file is created
    /// exclusively and never through a symlink (one planted there is removed, not followed).
    pub fn save(&self, state: &State) -> std::io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        let tmp = dir.join(format!(".{STATE_FILE}.tmp-{}", std::process::id()));
        let data = serde_json::to_vec_pretty(state).map_err(std::io::Error::other)?;
        match std::fs::remove_file(&tmp) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(nix::libc::O_NOFOLLOW)
                .open(&tmp)?;
            f.write_all(&data)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &self.path)?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_garbage_is_survived() {
        let t = tempfile::tempdir().unwrap();
        let store = StateStore::new(t.path());
        assert!(store.load().endpoints.is_empty());
        let mut s = store.load();
        s.endpoints.insert(
            key("r", "https://r/v2/"),
            Seen {
                issuer_id: "sha256:a".into(),
                issuer_subject: "CN=A".into(),
                seen_at: 1,
                changes: 2,
                previous_issuer_id: None,
                changed_at: None,
                issuer_sha256: Some("a".into()),
                issuer_key_id: None,
            },
        );
        store.save(&s).unwrap();
        assert_eq!(store.load(), s);
        std::fs::write(store.path(), b"\x00{not json").unwrap();
        assert!(store.load().endpoints.is_empty());
        store.save(&s).unwrap();
        assert_eq!(store.load(), s);
    }

    #[test]
    fn a_device_or_fifo_as_state_file_is_an_empty_state_not_a_hang() {
        let t = tempfile::tempdir().unwrap();
        let store = StateStore::new(t.path());
        // /dev/zero would be read until memory runs out; its size (0) passes any size check.
        std::os::unix::fs::symlink("/dev/zero", store.path()).unwrap();
        assert!(store.load().endpoints.is_empty());
        std::fs::remove_file(store.path()).unwrap();
        nix::unistd::mkfifo(
            store.path(),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .unwrap();
        let path = t.path().to_path_buf();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(StateStore::new(&path).load());
        });
        let s = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("loading a FIFO state file blocked");
        assert!(s.endpoints.is_empty());
    }
}
