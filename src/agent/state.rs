//! What the agent remembers across restarts: per endpoint, the issuing CA it last saw and how many
//! times that changed (and from what), so a restart neither forgets a rotation nor counts it twice.
//!
//! The file is JSON, written atomically (temp file in the same directory, fsync, rename). A corrupt
//! or unreadable file is logged and replaced — never fatal.
//!
//! Bounded: the file is read up to [`MAX_STATE_BYTES`]; at most [`MAX_STATE_ENTRIES`] entries are
//! kept, parsed one at a time (the rest are skipped, never held); subjects are cut to
//! [`MAX_STATE_STRING_BYTES`], and an entry whose key or ids are longer than that is dropped (ids
//! are compared, so they are never cut). Entries of endpoints unseen for [`STATE_RETENTION_SECS`]
//! are pruned on load and on save: gone endpoints do not return as series after a restart.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::hostroot::{read_regular, Follow, ReadError};

pub const STATE_FILE: &str = "state.json";
const VERSION: u32 = 1;
/// A state file bigger than this is not ours (or is damaged): start afresh. A real one holds a
/// few hundred bytes per endpoint.
pub const MAX_STATE_BYTES: u64 = 4 * 1024 * 1024;
/// Most entries kept (endpoints over all registries); later ones in the file are skipped.
pub const MAX_STATE_ENTRIES: usize = 4096;
/// Longest subject kept (cut with [`crate::metrics::CUT_MARKER`]); longest key or id accepted.
pub const MAX_STATE_STRING_BYTES: usize = 1024;
/// Entries of endpoints not seen for this long (7 days) are pruned.
pub const STATE_RETENTION_SECS: i64 = 7 * 24 * 60 * 60;

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

impl Seen {
    /// The entry within the bounds: the subject cut, `None` when an id is too long to keep.
    pub fn bounded(mut self) -> Option<Seen> {
        let ids = [
            Some(&self.issuer_id),
            self.previous_issuer_id.as_ref(),
            self.issuer_sha256.as_ref(),
            self.issuer_key_id.as_ref(),
        ];
        if ids
            .into_iter()
            .flatten()
            .any(|s| s.len() > MAX_STATE_STRING_BYTES)
        {
            return None;
        }
        if self.issuer_subject.len() > MAX_STATE_STRING_BYTES {
            self.issuer_subject = cut(&self.issuer_subject);
        }
        Some(self)
    }
}

/// `s` cut at a character boundary to at most [`MAX_STATE_STRING_BYTES`], marked.
fn cut(s: &str) -> String {
    let marker = crate::metrics::CUT_MARKER;
    let mut end = MAX_STATE_STRING_BYTES - marker.len();
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{marker}", &s[..end])
}

#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
pub struct State {
    pub version: u32,
    /// Key: `registry endpoint-url`.
    #[serde(deserialize_with = "bounded_entries")]
    pub endpoints: BTreeMap<String, Seen>,
}

impl State {
    /// Records `seen` for `key`, within the bounds (an entry that does not fit is not kept).
    pub fn insert(&mut self, key: String, seen: Seen) {
        let room = self.endpoints.len() < MAX_STATE_ENTRIES || self.endpoints.contains_key(&key);
        match seen.bounded() {
            Some(seen) if room && key.len() <= MAX_STATE_STRING_BYTES => {
                self.endpoints.insert(key, seen);
            }
            _ => {}
        }
    }

    /// Drops the entries of endpoints not seen since `now - STATE_RETENTION_SECS`.
    pub fn prune(&mut self, now: i64) {
        self.endpoints
            .retain(|_, seen| seen.seen_at >= now.saturating_sub(STATE_RETENTION_SECS));
    }
}

/// What [`StateStore::save`] writes: the entries within the retention, borrowed (no copy).
#[derive(Serialize)]
struct Retained<'a> {
    version: u32,
    endpoints: BTreeMap<&'a str, &'a Seen>,
}

impl State {
    fn retained(&self, now: i64) -> Retained<'_> {
        let oldest = now.saturating_sub(STATE_RETENTION_SECS);
        Retained {
            version: self.version,
            endpoints: self
                .endpoints
                .iter()
                .filter(|(_, s)| s.seen_at >= oldest)
                .map(|(k, s)| (k.as_str(), s))
                .collect(),
        }
    }
}

/// Seconds since the epoch.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The endpoints map, one entry at a time, within the bounds: entries past
/// [`MAX_STATE_ENTRIES`] are skipped without being kept.
fn bounded_entries<'de, D>(de: D) -> Result<BTreeMap<String, Seen>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    struct Entries;
    impl<'de> serde::de::Visitor<'de> for Entries {
        type Value = BTreeMap<String, Seen>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a map of endpoint keys to last-seen issuers")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut st = State::default();
            while let Some(key) = map.next_key::<String>()? {
                if st.endpoints.len() >= MAX_STATE_ENTRIES {
                    map.next_value::<serde::de::IgnoredAny>()?;
                    continue;
                }
                let seen: Seen = map.next_value()?;
                st.insert(key, seen);
            }
            Ok(st.endpoints)
        }
    }
    de.deserialize_map(Entries)
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
            Ok(mut s) if s.version == VERSION => {
                s.prune(now_unix());
                s
            }
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

    /// Writes atomically, without entries older than the retention; errors are returned for the
    /// caller to log. The temporary file is created
    /// exclusively and never through a symlink (one planted there is removed, not followed).
    pub fn save(&self, state: &State) -> std::io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        let tmp = dir.join(format!(".{STATE_FILE}.tmp-{}", std::process::id()));
        let data = serde_json::to_vec_pretty(&state.retained(now_unix()))
            .map_err(std::io::Error::other)?;
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
                seen_at: now_unix(),
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

    fn seen(at: i64) -> Seen {
        Seen {
            issuer_id: "sha256:a".into(),
            issuer_subject: "CN=A".into(),
            seen_at: at,
            changes: 0,
            previous_issuer_id: None,
            changed_at: None,
            issuer_sha256: None,
            issuer_key_id: None,
        }
    }

    #[test]
    fn entries_unseen_for_a_week_are_pruned_on_load_and_save() {
        let t = tempfile::tempdir().unwrap();
        let store = StateStore::new(t.path());
        let now = now_unix();
        let mut s = State {
            version: VERSION,
            ..Default::default()
        };
        s.insert("r old".into(), seen(now - STATE_RETENTION_SECS - 60));
        s.insert("r fresh".into(), seen(now - STATE_RETENTION_SECS + 3600));
        store.save(&s).unwrap();
        let text = std::fs::read_to_string(store.path()).unwrap();
        assert!(
            !text.contains("r old") && text.contains("r fresh"),
            "{text}"
        );
        // A file written by someone else with an old entry: pruned on load.
        std::fs::write(store.path(), serde_json::to_vec(&s).unwrap()).unwrap();
        let loaded = store.load();
        assert_eq!(loaded.endpoints.keys().collect::<Vec<_>>(), ["r fresh"]);
        s.prune(now);
        assert_eq!(s.endpoints.len(), 1);
    }

    #[test]
    fn entries_and_strings_are_bounded_while_parsing() {
        let now = now_unix();
        let mut big = serde_json::Map::new();
        for i in 0..MAX_STATE_ENTRIES + 100 {
            big.insert(format!("r e{i}"), serde_json::to_value(seen(now)).unwrap());
        }
        let mut long_subject = seen(now);
        long_subject.issuer_subject = "é".repeat(MAX_STATE_STRING_BYTES);
        let mut long_id = seen(now);
        long_id.issuer_key_id = Some("a".repeat(MAX_STATE_STRING_BYTES + 1));
        let small = serde_json::json!({
            "version": VERSION,
            "endpoints": {"r subject": long_subject, "r id": long_id},
        });
        let s = parse(small.to_string().as_bytes()).unwrap();
        let subject = &s.endpoints["r subject"].issuer_subject;
        assert!(subject.len() <= MAX_STATE_STRING_BYTES, "{}", subject.len());
        assert!(subject.ends_with(crate::metrics::CUT_MARKER));
        assert!(!s.endpoints.contains_key("r id"), "an overlong id was kept");
        let data = serde_json::json!({"version": VERSION, "endpoints": big}).to_string();
        assert_eq!(
            parse(data.as_bytes()).unwrap().endpoints.len(),
            MAX_STATE_ENTRIES
        );
        let mut st = State::default();
        st.insert("k".repeat(MAX_STATE_STRING_BYTES + 1), seen(now));
        assert!(st.endpoints.is_empty(), "an overlong key was kept");
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

    #[test]
    fn a_symlink_planted_at_the_temp_name_is_not_followed() {
        let t = tempfile::tempdir().unwrap();
        let victim = t.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let tmp = t
            .path()
            .join(format!(".{STATE_FILE}.tmp-{}", std::process::id()));
        std::os::unix::fs::symlink(&victim, &tmp).unwrap();
        let store = StateStore::new(t.path());
        store.save(&State::default()).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        assert!(
            std::fs::symlink_metadata(&tmp).is_err(),
            "temp name left behind"
        );
        assert!(store.load().endpoints.is_empty());
    }

    #[test]
    fn an_older_save_never_overwrites_a_newer_one() {
        let t = tempfile::tempdir().unwrap();
        let store = StateStore::new(t.path());
        let mut newer = store.load();
        newer.endpoints.insert(
            key("r", "https://r/v2/"),
            Seen {
                issuer_id: "sha256:new".into(),
                issuer_subject: "CN=new".into(),
                seen_at: now_unix(),
                changes: 1,
                previous_issuer_id: None,
                changed_at: None,
                issuer_sha256: None,
                issuer_key_id: None,
            },
        );
        store.save_newer(2, &newer).unwrap();
        store
            .save_newer(
                1,
                &State {
                    endpoints: Default::default(),
                    ..newer.clone()
                },
            )
            .unwrap();
        assert_eq!(store.load().endpoints.len(), 1);
    }
}
