//! Who may read the listener: a bearer token, or basic-auth users with bcrypt hashes (after
//! Prometheus' web configuration). bcrypt is slow on purpose; here it costs the client, not the
//! agent: it runs on a blocking thread, at most [`MAX_CONCURRENT_BCRYPT`] at once; an unknown user
//! costs the same verification as a known one (a dummy hash), so user names do not leak by
//! timing; a hash above [`MAX_BCRYPT_COST`] is refused at config load; accepted credentials are
//! remembered in a cache of at most [`MAX_CACHED_CREDENTIALS`] entries.
//!
//! Never does: bcrypt on the event loop, or remember a credential that failed.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

/// Highest bcrypt cost accepted in `basic_auth_users`: one check at cost 12 takes ~0.25 s of a
/// core; each step above doubles it.
pub const MAX_BCRYPT_COST: u32 = 12;
/// bcrypt verifications running at once (each on a blocking thread): at most one core, whatever
/// the clients send. Others wait their turn.
pub const MAX_CONCURRENT_BCRYPT: usize = 1;
/// Accepted `Authorization` headers remembered (as SHA-256); when full, the oldest is forgotten.
pub const MAX_CACHED_CREDENTIALS: usize = 64;
/// Shortest bearer token accepted.
pub const MIN_BEARER_TOKEN_CHARS: usize = 16;

/// Checks a `basic_auth_users` hash: a bcrypt hash whose cost is at most [`MAX_BCRYPT_COST`].
pub fn check_bcrypt_hash(hash: &str) -> Result<u32, String> {
    let parts: bcrypt::HashParts = hash.parse().map_err(|e| {
        format!("expected a bcrypt hash (\"$2y$...\", e.g. from htpasswd -nB): {e}")
    })?;
    let cost = parts.get_cost();
    if cost > MAX_BCRYPT_COST {
        return Err(format!(
            "bcrypt cost {cost} is above the cap of {MAX_BCRYPT_COST} (every check would cost the agent seconds of CPU): hash the password again, e.g. htpasswd -nB -C 10 USER"
        ));
    }
    Ok(cost)
}

type Key = [u8; 32];

/// The credentials in force, with the bcrypt bound and the cache of accepted headers.
pub struct Auth {
    /// SHA-256 of the bearer token: compared in constant time, whatever the given length.
    bearer: Option<Key>,
    users: Vec<(String, String)>,
    /// Verified for unknown users, at the highest cost among `users`.
    dummy_hash: String,
    bcrypt_slots: Arc<Semaphore>,
    accepted: Mutex<Cache>,
    verifications: AtomicU64,
}

#[derive(Default)]
struct Cache {
    keys: HashSet<Key>,
    order: VecDeque<Key>,
}

impl Cache {
    fn insert(&mut self, key: Key) {
        if !self.keys.insert(key) {
            return;
        }
        self.order.push_back(key);
        while self.order.len() > MAX_CACHED_CREDENTIALS {
            if let Some(old) = self.order.pop_front() {
                self.keys.remove(&old);
            }
        }
    }
}

fn sha256(data: &[u8]) -> Key {
    Sha256::digest(data).into()
}

impl Default for Auth {
    fn default() -> Self {
        Auth {
            bearer: None,
            users: Vec::new(),
            dummy_hash: String::new(),
            bcrypt_slots: Arc::new(Semaphore::new(MAX_CONCURRENT_BCRYPT)),
            accepted: Mutex::default(),
            verifications: AtomicU64::new(0),
        }
    }
}

impl Auth {
    /// A bearer token, or users with bcrypt hashes (each checked with [`check_bcrypt_hash`]; an
    /// error names the user).
    pub fn new(bearer: Option<&[u8]>, users: Vec<(String, String)>) -> Result<Auth, String> {
        if bearer.is_some_and(|t| t.len() < MIN_BEARER_TOKEN_CHARS) {
            return Err(format!(
                "a token needs at least {MIN_BEARER_TOKEN_CHARS} characters"
            ));
        }
        let mut cost = 0;
        for (user, hash) in &users {
            let c =
                check_bcrypt_hash(hash).map_err(|e| format!("web.basic_auth_users.{user}: {e}"))?;
            cost = cost.max(c);
        }
        let dummy_hash = if users.is_empty() {
            String::new()
        } else {
            let secret: [u8; 16] = rand::random();
            bcrypt::hash(secret, cost).map_err(|e| format!("web.basic_auth_users: {e}"))?
        };
        Ok(Auth {
            bearer: bearer.map(sha256),
            users,
            dummy_hash,
            ..Auth::default()
        })
    }

    /// Are credentials required at all?
    pub fn required(&self) -> bool {
        self.bearer.is_some() || !self.users.is_empty()
    }

    /// The `WWW-Authenticate` value of a 401.
    pub fn challenge(&self) -> &'static str {
        if self.bearer.is_some() {
            "Bearer"
        } else {
            "Basic realm=\"regtrust\""
        }
    }

    /// bcrypt verifications run so far (known and unknown users alike).
    pub fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }

    /// Does this `Authorization` header value carry valid credentials?
    pub async fn authorized(&self, header: Option<&[u8]>) -> bool {
        let Some(value) = header else {
            return false;
        };
        if let Some(token) = &self.bearer {
            let Some(given) = value.strip_prefix(b"Bearer ") else {
                return false;
            };
            return constant_time_eq(token, &sha256(given.trim_ascii()));
        }
        let key = sha256(value);
        if self.lock().keys.contains(&key) {
            return true;
        }
        let Some((user, pass)) = basic_credentials(value) else {
            return false;
        };
        let known = self.users.iter().find(|(u, _)| *u == user);
        let hash = known.map_or(&self.dummy_hash, |(_, h)| h).clone();
        let ok = self.verify(pass, hash).await && known.is_some();
        if ok {
            self.lock().insert(key);
        }
        ok
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.accepted.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One bcrypt verification on a blocking thread, after waiting for a bcrypt slot.
    async fn verify(&self, pass: String, hash: String) -> bool {
        let Ok(slot) = self.bcrypt_slots.clone().acquire_owned().await else {
            return false;
        };
        self.verifications.fetch_add(1, Ordering::Relaxed);
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            bcrypt::verify(pass, &hash).unwrap_or(false)
        })
        .await
        .unwrap_or(false)
    }
}

/// `Basic base64(user:pass)` → (user, pass).
fn basic_credentials(value: &[u8]) -> Option<(String, String)> {
    let b64 = value.strip_prefix(b"Basic ")?.trim_ascii();
    let raw = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    let pair = String::from_utf8(raw).ok()?;
    let (user, pass) = pair.split_once(':')?;
    Some((user.to_string(), pass.to_string()))
}

fn constant_time_eq(a: &Key, b: &Key) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user: &str, pass: &str) -> Vec<u8> {
        let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        format!("Basic {b64}").into_bytes()
    }

    fn users() -> Auth {
        let hash = bcrypt::hash("right-password", 4).unwrap();
        Auth::new(None, vec![("prometheus".into(), hash)]).unwrap()
    }

    #[tokio::test]
    async fn unknown_users_cost_one_bcrypt_like_known_ones() {
        let auth = users();
        assert!(
            !auth
                .authorized(Some(&basic("nobody", "right-password")))
                .await
        );
        assert_eq!(
            auth.verifications(),
            1,
            "an unknown user went through bcrypt"
        );
        assert!(!auth.authorized(Some(&basic("prometheus", "wrong"))).await);
        assert_eq!(auth.verifications(), 2);
        // No credentials, or ones that are not basic auth: nothing to verify.
        assert!(!auth.authorized(None).await);
        assert!(!auth.authorized(Some(b"Basic !!!")).await);
        assert!(!auth.authorized(Some(b"Bearer abc")).await);
        assert_eq!(auth.verifications(), 2);
        // The right password once through bcrypt, then from the cache.
        let good = basic("prometheus", "right-password");
        assert!(auth.authorized(Some(&good)).await);
        assert!(auth.authorized(Some(&good)).await);
        assert_eq!(auth.verifications(), 3);
    }

    #[tokio::test]
    async fn the_cache_is_bounded_even_for_passwords_cut_at_72_bytes() {
        let long = "p".repeat(72);
        let hash = bcrypt::hash(&long, 4).unwrap();
        let auth = Auth::new(None, vec![("u".into(), hash)]).unwrap();
        // bcrypt ignores everything past 72 bytes: every suffix is a new, valid header.
        for i in 0..MAX_CACHED_CREDENTIALS + 10 {
            assert!(
                auth.authorized(Some(&basic("u", &format!("{long}{i}"))))
                    .await
            );
        }
        let sizes = {
            let cache = auth.lock();
            (cache.keys.len(), cache.order.len())
        };
        assert_eq!(sizes, (MAX_CACHED_CREDENTIALS, MAX_CACHED_CREDENTIALS));
        // The newest is remembered, the oldest forgotten (verified again).
        let before = auth.verifications();
        let newest = basic("u", &format!("{long}{}", MAX_CACHED_CREDENTIALS + 9));
        assert!(auth.authorized(Some(&newest)).await);
        assert_eq!(auth.verifications(), before);
        assert!(
            auth.authorized(Some(&basic("u", &format!("{long}0"))))
                .await
        );
        assert_eq!(auth.verifications(), before + 1);
    }

    #[tokio::test]
    async fn bearer_tokens_compare_whole() {
        let auth = Auth::new(Some(b"s3cret-token-0123456789"), vec![]).unwrap();
        assert!(
            auth.authorized(Some(b"Bearer s3cret-token-0123456789 "))
                .await
        );
        assert!(
            !auth
                .authorized(Some(b"Bearer s3cret-token-012345678"))
                .await
        );
        assert!(
            !auth
                .authorized(Some(b"Basic s3cret-token-0123456789"))
                .await
        );
        assert!(Auth::new(Some(b"short"), vec![]).is_err());
        assert_eq!(auth.challenge(), "Bearer");
    }

    #[test]
    fn hashes_above_the_cost_cap_are_refused_naming_the_user() {
        let hash = bcrypt::hash("x", 4).unwrap();
        assert_eq!(check_bcrypt_hash(&hash), Ok(4));
        let too_costly = hash.replacen("$04$", &format!("${}$", MAX_BCRYPT_COST + 1), 1);
        let err = Auth::new(None, vec![("alice".into(), too_costly)])
            .err()
            .unwrap();
        assert!(
            err.contains("web.basic_auth_users.alice") && err.contains("cap"),
            "{err}"
        );
        assert!(check_bcrypt_hash("$2y$plaintext").is_err());
        // The same check at config load.
        let toml = format!(
            "[web.basic_auth_users]\nalice = \"{}\"\n",
            hash.replacen("$04$", "$13$", 1)
        );
        let errs: Vec<String> = crate::config::AgentConfig::from_toml(&toml)
            .unwrap_err()
            .iter()
            .map(|e| e.to_string())
            .collect();
        let errs = errs.join("\n");
        assert!(
            errs.contains("web.basic_auth_users.alice: bcrypt cost 13"),
            "{errs}"
        );
    }
}
