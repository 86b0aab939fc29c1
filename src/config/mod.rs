//! The agent's settings: every key, default and bound as a named constant; a TOML file validated
//! as a whole ([`file`]); command-line [`Overrides`] laid over it through the same validators
//! ([`value`]). Every bad key, value or flag is reported at once, as an [`Error`] that carries its
//! key (and the file it came from) as a value, so a person fixes all mistakes in one go and a
//! caller can branch on the key.
//!
//! Never does: network I/O. Reads only the config file it is given, and looks whether `host_root`
//! is a directory.

mod file;
mod overrides;
mod value;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::hostroot::HostRoot;
use crate::trust::{Runtime, TrustSettings, DEFAULT_CONTAINERD_CONFIG};

pub use overrides::Overrides;
pub use value::{
    go_version, godebug, normalize_sha256, parse_duration, runtime_version, timeout_from_secs,
};

// === defaults and bounds ===

/// `/`: the agent runs on the node itself (a DaemonSet mounts the node elsewhere, e.g. `/host`).
pub const DEFAULT_HOST_ROOT: &str = "/";
pub const DEFAULT_RUNTIME: Runtime = Runtime::Containerd;
/// Besides the configured registries, check every host directory found.
pub const DEFAULT_DISCOVER: bool = true;
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
/// ±20 % per registry, so a fleet of nodes does not probe a registry in lockstep.
pub const DEFAULT_JITTER: f64 = 0.2;
pub const DEFAULT_TIMEOUT: Duration = crate::probe::DEFAULT_TIMEOUT;
pub const DEFAULT_CONCURRENCY: usize = 16;
/// The port of [`DEFAULT_LISTEN`].
pub const DEFAULT_PORT: u16 = 9823;
/// All interfaces: Prometheus scrapes the node from elsewhere (the DaemonSet uses hostNetwork).
pub const DEFAULT_LISTEN: &str = "0.0.0.0:9823";
/// [`DEFAULT_LISTEN`] as an address.
pub const DEFAULT_LISTEN_ADDR: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, DEFAULT_PORT));
pub const DEFAULT_LOG_FORMAT: LogFormat = LogFormat::Text;
pub const DEFAULT_STATE_DIR: &str = "/var/lib/regtrust";
pub const DEFAULT_PROC_DIR: &str = "/proc";
/// At most one staging attempt per registry this often, so a flapping registry cannot make the
/// agent rewrite files in a loop.
pub const DEFAULT_STAGE_MIN_INTERVAL: Duration = Duration::from_secs(600);
/// Smallest interval accepted: below this the agent would be a load test.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// Largest interval accepted: a day between probes is already no monitoring (and bounds keep
/// every `now + interval` far from overflow).
pub const MAX_INTERVAL: Duration = Duration::from_secs(24 * 3600);
/// Largest per-probe timeout accepted.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(600);
/// Largest stage_min_interval accepted.
pub const MAX_STAGE_MIN_INTERVAL: Duration = Duration::from_secs(30 * 24 * 3600);
/// Largest jitter: ±50 % still probes each registry at least every 1.5 intervals.
pub const MAX_JITTER: f64 = 0.5;
pub const MIN_CONCURRENCY: usize = 1;
/// Most probes in flight: each holds a socket and a TLS session.
pub const MAX_CONCURRENCY: usize = 1024;

// === environment ===

/// The config file, as `--config`.
pub const ENV_CONFIG: &str = "REGTRUST_CONFIG";
/// The host root, as `--host-root` (check, stage and run).
pub const ENV_HOST_ROOT: &str = "REGTRUST_HOST_ROOT";
/// The agent's listen address, as `--listen`.
pub const ENV_LISTEN: &str = "REGTRUST_LISTEN";
/// The agent's log format, as `--log-format`.
pub const ENV_LOG_FORMAT: &str = "REGTRUST_LOG_FORMAT";
/// A `tracing` filter (`info`, `regtrust=debug`, …) replacing the default level.
pub const ENV_LOG: &str = "REGTRUST_LOG";

/// The keys of the config file. The flag that overrides a key is `--` and the key with dashes
/// ([`flag`]).
pub mod key {
    pub const HOST_ROOT: &str = "host_root";
    pub const RUNTIME: &str = "runtime";
    pub const HOSTS_DIR: &str = "hosts_dir";
    pub const CONTAINERD_CONFIG: &str = "containerd_config";
    pub const DISCOVER: &str = "discover";
    pub const INTERVAL: &str = "interval";
    pub const JITTER: &str = "jitter";
    pub const TIMEOUT: &str = "timeout";
    pub const CONCURRENCY: &str = "concurrency";
    pub const LISTEN: &str = "listen";
    pub const LOG_FORMAT: &str = "log_format";
    pub const STATE_DIR: &str = "state_dir";
    pub const PROC_DIR: &str = "proc_dir";
    pub const RUNTIME_VERSION: &str = "runtime_version";
    pub const GO_VERSION: &str = "go_version";
    pub const GODEBUG: &str = "godebug";
    pub const STAGE_MIN_INTERVAL: &str = "stage_min_interval";
    /// The `[web]` table ([`web`]).
    pub const WEB: &str = "web";
    /// The `[[registry]]` tables ([`registry`]).
    pub const REGISTRY: &str = "registry";

    /// Every top-level key, in the order `deploy/regtrust.toml` documents them.
    pub const ALL: &[&str] = &[
        HOST_ROOT,
        RUNTIME,
        HOSTS_DIR,
        CONTAINERD_CONFIG,
        DISCOVER,
        INTERVAL,
        JITTER,
        TIMEOUT,
        CONCURRENCY,
        LISTEN,
        LOG_FORMAT,
        STATE_DIR,
        PROC_DIR,
        RUNTIME_VERSION,
        GO_VERSION,
        GODEBUG,
        STAGE_MIN_INTERVAL,
        WEB,
        REGISTRY,
    ];

    /// Keys of one `[[registry]]` table.
    pub mod registry {
        pub const NAME: &str = "name";
        pub const EXPECTED_CA_FILE: &str = "expected_ca_file";
        pub const EXPECTED_CA_SHA256: &str = "expected_ca_sha256";
        /// An HTTPS URL where the PKI publishes the expected CA (PEM).
        pub const EXPECTED_CA_URL: &str = "expected_ca_url";
        /// The URL's own trust: SHA-256 of its server's leaf certificate …
        pub const EXPECTED_CA_URL_SHA256: &str = "expected_ca_url_sha256";
        /// … or a CA bundle that verifies its server (exactly one of the two).
        pub const EXPECTED_CA_URL_CA_FILE: &str = "expected_ca_url_ca_file";
        pub const STAGE: &str = "stage";
        pub const ALL: &[&str] = &[
            NAME,
            EXPECTED_CA_FILE,
            EXPECTED_CA_SHA256,
            EXPECTED_CA_URL,
            EXPECTED_CA_URL_SHA256,
            EXPECTED_CA_URL_CA_FILE,
            STAGE,
        ];
    }

    /// Keys of the `[web]` table.
    pub mod web {
        pub const TLS_CERT_FILE: &str = "tls_cert_file";
        pub const TLS_KEY_FILE: &str = "tls_key_file";
        pub const BEARER_TOKEN_FILE: &str = "bearer_token_file";
        pub const BASIC_AUTH_USERS: &str = "basic_auth_users";
        pub const ALL: &[&str] = &[
            TLS_CERT_FILE,
            TLS_KEY_FILE,
            BEARER_TOKEN_FILE,
            BASIC_AUTH_USERS,
        ];
    }
}

/// The command-line flag that overrides a config key: `host_root` → `--host-root`.
pub fn flag(key: &str) -> String {
    format!("--{}", key.replace('_', "-"))
}

// === errors ===

/// One mistake in the settings. Its [`Display`](std::fmt::Display) is the line a person reads;
/// its fields are what a caller branches on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// One setting's value (or name) is wrong. `key` is its path in the file
    /// (`registry[0].name`, `web.basic_auth_users.alice`) or the flag given (`--timeout`).
    #[error("{key}: {message}")]
    Key { key: String, message: String },
    /// Two settings that exclude each other were both given.
    #[error("{first} and {second}: give one, not both")]
    Exclusive {
        first: &'static str,
        second: &'static str,
    },
    /// The probe deadline is not shorter than the interval between probes.
    #[error("timeout ({timeout:?}) must be shorter than interval ({interval:?})")]
    TimeoutNotBelowInterval {
        timeout: Duration,
        interval: Duration,
    },
    /// The text is not TOML at all (nothing else could be checked).
    #[error("not valid TOML: {0}")]
    Syntax(String),
    /// The config file cannot be read (always inside [`Error::WithPath`]).
    #[error("cannot read: {0}")]
    Read(#[source] std::io::Error),
    /// A mistake in the named config file.
    #[error("{}: {err}", path.display())]
    WithPath { path: PathBuf, err: Box<Error> },
}

impl Error {
    pub(crate) fn key(key: impl Into<String>, message: impl Into<String>) -> Error {
        Error::Key {
            key: key.into(),
            message: message.into(),
        }
    }

    /// This mistake, found in the file `path`.
    pub fn with_path(self, path: &Path) -> Error {
        Error::WithPath {
            path: path.to_path_buf(),
            err: Box::new(self),
        }
    }

    /// The key or flag the mistake is about, if it is about one (the first of two exclusive
    /// ones); through [`Error::WithPath`].
    pub fn key_name(&self) -> Option<&str> {
        match self {
            Error::Key { key, .. } => Some(key),
            Error::Exclusive { first, .. } => Some(first),
            Error::TimeoutNotBelowInterval { .. } => Some(key::TIMEOUT),
            Error::Syntax(_) | Error::Read(_) => None,
            Error::WithPath { err, .. } => err.key_name(),
        }
    }

    /// The config file the mistake is in, if it came from one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Error::WithPath { path, .. } => Some(path),
            _ => None,
        }
    }
}

// === settings ===

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// One registry the agent watches.
#[derive(Debug, Clone, PartialEq)]
pub struct RegistryConfig {
    pub name: String,
    /// A PEM bundle in the agent's own filesystem (e.g. a mounted ConfigMap) — not a node path.
    pub expected_ca_file: Option<PathBuf>,
    /// Pinned SHA-256 fingerprints (lowercase hex) of expected CAs.
    pub expected_ca_sha256: Vec<String>,
    /// Where the PKI publishes the expected CA, fetched every interval.
    pub expected_ca_url: Option<CaUrl>,
    /// Stage a corrected CA when allowed (see `stage`).
    pub stage: bool,
}

impl RegistryConfig {
    /// A registry watched with no expected CA and no staging.
    pub fn named(name: impl Into<String>) -> RegistryConfig {
        RegistryConfig {
            name: name.into(),
            expected_ca_file: None,
            expected_ca_sha256: Vec::new(),
            expected_ca_url: None,
            stage: false,
        }
    }
}

/// An HTTPS URL where a PKI publishes a registry's expected CA (a Vault PKI's `/v1/pki/ca/pem`,
/// step-ca's `/roots.pem`), and the trust its server is checked with — its own, never the
/// registry's: whoever could forge the registry's certificate must not also pick the CA it is
/// compared with.
#[derive(Debug, Clone, PartialEq)]
pub struct CaUrl {
    pub url: reqwest::Url,
    pub trust: CaUrlTrust,
}

/// How the server behind an [`CaUrl`] is trusted.
#[derive(Debug, Clone, PartialEq)]
pub enum CaUrlTrust {
    /// The SHA-256 (lowercase hex) of the server's leaf certificate: that exact certificate, with
    /// its key proven in the handshake; no chain, name or date is checked.
    PinnedLeaf(String),
    /// A PEM bundle (the agent's own filesystem) whose CAs verify the server, name included.
    CaFile(PathBuf),
}

/// Protection of the metrics/status listener, after Prometheus' web configuration: TLS, and a
/// bearer token or basic-auth users with bcrypt hashes. `/healthz` and `/readyz` stay open (kubelet
/// probes carry no credentials); `/metrics` and `/` need them when any is set.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WebConfig {
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    pub bearer_token_file: Option<PathBuf>,
    /// user → bcrypt hash (`$2y$…`, as `htpasswd -B` makes).
    pub basic_auth_users: Vec<(String, String)>,
}

impl WebConfig {
    pub fn requires_auth(&self) -> bool {
        self.bearer_token_file.is_some() || !self.basic_auth_users.is_empty()
    }
}

/// Validated agent settings.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentConfig {
    pub host_root: PathBuf,
    pub runtime: Runtime,
    pub hosts_dir: Option<PathBuf>,
    pub containerd_config: PathBuf,
    /// Also check every host directory found (rescanned when the hosts dir changes).
    pub discover: bool,
    pub registries: Vec<RegistryConfig>,
    pub interval: Duration,
    pub jitter: f64,
    pub timeout: Duration,
    pub concurrency: usize,
    pub listen: SocketAddr,
    pub log_format: LogFormat,
    pub state_dir: PathBuf,
    /// Where the runtime's process is visible (the node's /proc: hostPID in a DaemonSet).
    pub proc_dir: PathBuf,
    /// The runtime's version, replacing what is read from its binary.
    pub runtime_version: Option<String>,
    /// The Go the runtime is built with, replacing what is read from its binary.
    pub go_version: Option<crate::verify::GoVersion>,
    /// The GODEBUG the runtime runs with, replacing what is read from its process's environment.
    pub godebug: Option<String>,
    /// Least time between two staging attempts for one registry.
    pub stage_min_interval: Duration,
    pub web: WebConfig,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            host_root: PathBuf::from(DEFAULT_HOST_ROOT),
            runtime: DEFAULT_RUNTIME,
            hosts_dir: None,
            containerd_config: PathBuf::from(DEFAULT_CONTAINERD_CONFIG),
            discover: DEFAULT_DISCOVER,
            registries: Vec::new(),
            interval: DEFAULT_INTERVAL,
            jitter: DEFAULT_JITTER,
            timeout: DEFAULT_TIMEOUT,
            concurrency: DEFAULT_CONCURRENCY,
            listen: DEFAULT_LISTEN_ADDR,
            log_format: DEFAULT_LOG_FORMAT,
            state_dir: PathBuf::from(DEFAULT_STATE_DIR),
            proc_dir: PathBuf::from(DEFAULT_PROC_DIR),
            runtime_version: None,
            go_version: None,
            godebug: None,
            stage_min_interval: DEFAULT_STAGE_MIN_INTERVAL,
            web: WebConfig::default(),
        }
    }
}

impl AgentConfig {
    pub fn trust_settings(&self) -> TrustSettings {
        TrustSettings {
            host_root: HostRoot::new(&self.host_root),
            runtime: self.runtime,
            hosts_dir: self.hosts_dir.clone(),
            containerd_config: self.containerd_config.clone(),
            runtime_version: self.runtime_version.clone(),
        }
    }

    /// The settings that replace runtime version detection.
    pub fn version_overrides(&self) -> crate::trust::runtime_version::Overrides {
        crate::trust::runtime_version::Overrides {
            runtime_version: self.runtime_version.clone(),
            go_version: self.go_version,
            godebug: self.godebug.clone(),
        }
    }

    /// The agent's settings as `regtrust run` assembles them: the file (if any), then each flag
    /// given, then the rules across settings, and `host_root` must be a directory. Every mistake
    /// at once.
    pub fn load(file: Option<&Path>, overrides: Overrides) -> Result<AgentConfig, Vec<Error>> {
        let host_root_flag = overrides.host_root.is_some();
        let (cfg, mut errs) = Self::assemble(file, overrides)?;
        if !cfg.host_root.is_dir() {
            let message = format!("{} is not a directory", cfg.host_root.display());
            errs.push(match file {
                _ if host_root_flag => Error::key(flag(key::HOST_ROOT), message),
                Some(path) => Error::key(key::HOST_ROOT, message).with_path(path),
                None => Error::key(key::HOST_ROOT, message),
            });
        }
        done(cfg, errs)
    }

    /// Reads and validates a config file; all problems at once, each naming the file.
    pub fn from_file(path: &Path) -> Result<AgentConfig, Vec<Error>> {
        let (cfg, errs) = Self::assemble(Some(path), Overrides::default())?;
        done(cfg, errs)
    }

    /// Parses and validates TOML text.
    pub fn from_toml(text: &str) -> Result<AgentConfig, Vec<Error>> {
        let (cfg, mut errs) = file::parse(text).map_err(|e| vec![e])?;
        errs.extend(cfg.check_timing());
        done(cfg, errs)
    }

    /// File, then flags, then the timing rule; the file's mistakes name the file. `Err` only when
    /// nothing could be read at all.
    fn assemble(
        file: Option<&Path>,
        overrides: Overrides,
    ) -> Result<(AgentConfig, Vec<Error>), Vec<Error>> {
        let (mut cfg, mut errs) = match file {
            Some(path) => {
                // Only a regular file, read with a bound: a FIFO or a device is an error naming it.
                let data = crate::hostroot::read_bounded(path)
                    .map_err(|e| vec![Error::Read(std::io::Error::other(e)).with_path(path)])?;
                let text = String::from_utf8(data).map_err(|e| {
                    let e = std::io::Error::new(std::io::ErrorKind::InvalidData, e);
                    vec![Error::Read(e).with_path(path)]
                })?;
                let (cfg, errs) = file::parse(&text).map_err(|e| vec![e.with_path(path)])?;
                (cfg, errs.into_iter().map(|e| e.with_path(path)).collect())
            }
            None => (AgentConfig::default(), Vec::new()),
        };
        // The timing rule is the file's mistake unless a flag set one of the two.
        let timing_from_file = overrides.timeout.is_none() && overrides.interval.is_none();
        overrides.apply(&mut cfg, &mut errs);
        if let Some(e) = cfg.check_timing() {
            errs.push(match file {
                Some(path) if timing_from_file => e.with_path(path),
                _ => e,
            });
        }
        Ok((cfg, errs))
    }

    /// A probe must end before the next one starts.
    fn check_timing(&self) -> Option<Error> {
        (self.timeout >= self.interval).then_some(Error::TimeoutNotBelowInterval {
            timeout: self.timeout,
            interval: self.interval,
        })
    }
}

fn done(cfg: AgentConfig, errs: Vec<Error>) -> Result<AgentConfig, Vec<Error>> {
    if errs.is_empty() {
        Ok(cfg)
    } else {
        Err(errs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_agree_with_each_other() {
        assert_eq!(DEFAULT_LISTEN_ADDR.to_string(), DEFAULT_LISTEN);
        assert_eq!(DEFAULT_LISTEN_ADDR.port(), DEFAULT_PORT);
        assert!(DEFAULT_TIMEOUT < DEFAULT_INTERVAL);
        assert!((MIN_INTERVAL..=MAX_INTERVAL).contains(&DEFAULT_INTERVAL));
        assert!((0.0..=MAX_JITTER).contains(&DEFAULT_JITTER));
        assert!((MIN_CONCURRENCY..=MAX_CONCURRENCY).contains(&DEFAULT_CONCURRENCY));
        assert_eq!(flag(key::HOST_ROOT), "--host-root");
        assert_eq!(flag(key::REGISTRY), "--registry");
    }

    #[test]
    fn host_root_must_be_a_directory_named_where_it_was_set() {
        let o = Overrides {
            host_root: Some("/nonexistent/regtrust-root".into()),
            ..Overrides::default()
        };
        let errs = AgentConfig::load(None, o).unwrap_err();
        assert_eq!(
            errs[0].to_string(),
            "--host-root: /nonexistent/regtrust-root is not a directory"
        );
        assert!(AgentConfig::load(None, Overrides::default()).is_ok());
    }

    #[test]
    fn a_file_names_itself_in_every_mistake() {
        let dir = std::env::temp_dir().join(format!("regtrust-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.toml");
        std::fs::write(&path, "interval = \"10s\"\ntimeout = \"20s\"\njitter = 3\n").unwrap();
        let errs = AgentConfig::from_file(&path).unwrap_err();
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(errs.iter().all(|e| e.path() == Some(path.as_path())));
        assert_eq!(errs[0].key_name(), Some(key::JITTER));
        assert_eq!(
            errs[1].to_string(),
            format!(
                "{}: timeout (20s) must be shorter than interval (10s)",
                path.display()
            )
        );
        // A flag that sets the interval makes the timing its own, not the file's.
        let o = Overrides {
            interval: Some("15s".into()),
            ..Overrides::default()
        };
        let errs = AgentConfig::load(Some(&path), o).unwrap_err();
        assert!(errs.iter().any(|e| e.path().is_none()
            && matches!(e, Error::TimeoutNotBelowInterval { interval, .. } if *interval == Duration::from_secs(15))));

        let missing = dir.join("missing.toml");
        let errs = AgentConfig::from_file(&missing).unwrap_err();
        assert!(
            matches!(&errs[..], [Error::WithPath { err, .. }] if matches!(**err, Error::Read(_)))
        );
        assert!(errs[0]
            .to_string()
            .starts_with(&format!("{}: cannot read: ", missing.display())));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
