//! Which containerd release's rules apply: the release parsed from the detected (or configured)
//! runtime version, and every rule regtrust models that changes between releases, each citing the
//! upstream file, function and release it follows.
//!
//! The thresholds, as read at each tag of github.com/containerd/containerd:
//! - 1.7.7 (`remotes/docker/config/hosts.go` `ConfigureHosts`, commit 7779ce64e): an `http://`
//!   host with TLS settings (`ca`, `client`, `skip_verify`) is tried over https first, with
//!   `docker.HTTPFallback` retrying plain HTTP when the answer is HTTP (`resolver.go`). Before it
//!   (1.6 – 1.7.6) `http://` stays plain HTTP, and the loopback default host is `http` with
//!   skip_verify on any port.
//! - 1.7.8 (commit 35c7634e3, "Avoid TLS fallback when protocol is not ambiguous"): the loopback
//!   default host is `https` when the port is absent or 443, `http` without skip_verify on port 80;
//!   the upgrade needs an explicit port other than 80.
//! - 1.7.16 (`resolver.go` `isTLSError`, commit 51c649d9d): a TLS handshake timeout also falls back.
//! - 1.7.24 (commit 49c9f303b, "Allow fallback across default ports"): a port-less `http://` host
//!   with TLS settings is upgraded too (https on 443), and a refused or timed-out dial of a port-less
//!   host falls back to plain HTTP on 80 (`isPortError`). 2.0.0 has all of the above.
//! - 2.0 (`core/remotes/docker/config/hosts.go` `getSortedHosts`, go-toml v2): a hosts.toml with
//!   only root-level keys is used (its root `server` and `ca`); 1.x reject it ("invalid `host`
//!   tree"). The CRI legacy path no longer reads `registry.configs.*.tls`
//!   (`internal/cri/server/images/image_pull.go` `registryHosts`).
//! - 2.1 (`hosts.go` `parseHostConfig`): `dial_timeout` is read (a string, a Go duration); before,
//!   it is an unknown key, ignored. CRI pulls through the transfer service unless
//!   `use_local_image_pull` or a setting the transfer service lacks (`internal/cri/config/
//!   config.go` `CheckLocalImagePullConfigs`); the transfer service gets CRI's `config_path` as one
//!   directory (`core/transfer/registry/registry.go` `NewOCIRegistry`: `HostDirFromRoot`, unsplit).
//! - 2.2 (`hosts.go`): `referrers` is a capability. CRI's default `config_path` is
//!   `/etc/containerd/certs.d:/etc/docker/certs.d`: in 2.2.0 – 2.2.1 through
//!   `DefaultImageConfig` (`internal/cri/config/config_unix.go`) and the v1/v2 config migration
//!   (`plugins/cri/images/plugin.go` `migrateConfig`, an empty value replaced); from 2.2.2 set at
//!   plugin init only when `config_path` is empty and no `mirrors` are set (commit a20dead7c).
//!
//! Never does: I/O.

use std::fmt;

/// A containerd release `major.minor.patch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Release {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

/// How a port-less or explicit-port `http://` host with TLS settings is treated (`ConfigureHosts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upgrade {
    /// 1.6 – 1.7.6: it stays plain HTTP.
    Never,
    /// 1.7.7: https first on any port.
    AnyPort,
    /// 1.7.8 – 1.7.23: https first only with an explicit port other than 80.
    ExplicitPortNot80,
    /// 1.7.24+: https first unless the port is 80 (port-less included).
    Not80,
}

/// Where CRI's default `config_path` comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultConfigPath {
    /// 1.x – 2.1: empty (hosts directories unused unless configured).
    Empty,
    /// 2.2.0 – 2.2.1: the default list, unless a v3 config sets it (even to "").
    Always,
    /// 2.2.2+: the default list when config_path is empty and no mirrors are set.
    WhenNoMirrors,
}

impl Release {
    pub const fn new(major: u32, minor: u32, patch: u32) -> Release {
        Release {
            major,
            minor,
            patch,
        }
    }

    /// The oldest release regtrust models.
    pub const OLDEST_MODELLED: Release = Release::new(1, 6, 0);
    /// The newest modelled rules: what applies when the version is unknown.
    pub const NEWEST: Release = Release::new(2, 2, 2);

    /// `1.6.20~ds1`, `v2.1.3`, `2.0.0-rc.1`, `1.7` → the release; anything else → `None`.
    pub fn parse(s: &str) -> Option<Release> {
        let s = s.trim();
        let s = s.strip_prefix('v').unwrap_or(s);
        let end = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(s.len());
        let mut parts = s[..end].split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        let patch = match parts.next() {
            None | Some("") => 0,
            Some(p) => p.parse().ok()?,
        };
        Some(Release::new(major, minor, patch))
    }

    /// Within the releases whose rules are modelled (1.6 and later; later than 2.2 follows 2.2).
    pub fn is_modelled(self) -> bool {
        self >= Release::OLDEST_MODELLED && self < Release::new(2, 3, 0)
    }

    /// `http://` hosts with TLS settings: see [`Upgrade`].
    pub fn upgrade(self) -> Upgrade {
        if self < Release::new(1, 7, 7) {
            Upgrade::Never
        } else if self == Release::new(1, 7, 7) {
            Upgrade::AnyPort
        } else if self < Release::new(1, 7, 24) {
            Upgrade::ExplicitPortNot80
        } else {
            Upgrade::Not80
        }
    }

    /// The loopback default host decides its scheme by port (1.7.8+); before, it is always
    /// `http` with skip_verify.
    pub fn loopback_by_port(self) -> bool {
        self >= Release::new(1, 7, 8)
    }

    /// A TLS handshake timeout falls back to plain HTTP too (`isTLSError`, 1.7.16+).
    pub fn fallback_on_handshake_timeout(self) -> bool {
        self >= Release::new(1, 7, 16)
    }

    /// A refused or timed-out dial of a port-less host falls back to HTTP on 80 (`isPortError`).
    pub fn fallback_on_port_error(self) -> bool {
        self >= Release::new(1, 7, 24)
    }

    /// A hosts.toml without `[host]` tables is used (2.x), not rejected (1.x).
    pub fn root_only_hosts_toml(self) -> bool {
        self.major >= 2
    }

    /// `dial_timeout` is parsed (2.1+); before, it is an unknown key.
    pub fn reads_dial_timeout(self) -> bool {
        self >= Release::new(2, 1, 0)
    }

    /// `referrers` is a known capability (2.2+).
    pub fn knows_referrers(self) -> bool {
        self >= Release::new(2, 2, 0)
    }

    /// CRI's legacy path reads `registry.configs.HOST.tls` (1.x only).
    pub fn legacy_tls_configs(self) -> bool {
        self.major < 2
    }

    /// CRI pulls through the transfer service by default (2.1+).
    pub fn transfer_pull(self) -> bool {
        self >= Release::new(2, 1, 0)
    }

    /// Where CRI's default `config_path` comes from.
    pub fn default_config_path(self) -> DefaultConfigPath {
        if self < Release::new(2, 2, 0) {
            DefaultConfigPath::Empty
        } else if self < Release::new(2, 2, 2) {
            DefaultConfigPath::Always
        } else {
            DefaultConfigPath::WhenNoMirrors
        }
    }
}

impl fmt::Display for Release {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// The release whose rules apply, and whether it was known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    pub release: Release,
    /// The version string given or detected, when there was one.
    pub version: Option<String>,
}

impl Rules {
    /// The rules for a detected (or configured) version; unknown or unreadable: the newest.
    pub fn for_version(version: Option<&str>) -> Rules {
        let release = version.and_then(Release::parse).unwrap_or(Release::NEWEST);
        Rules {
            release,
            version: version.map(str::to_string),
        }
    }

    /// What a person should know about the choice: nothing when the version is modelled.
    pub fn note(&self) -> Option<String> {
        match (&self.version, Release::parse(self.version.as_deref().unwrap_or(""))) {
            (None, _) => Some(format!(
                "containerd's version is unknown: endpoint rules follow containerd {} (the newest regtrust models); set runtime_version (or --runtime-version) to the node's containerd",
                self.release
            )),
            (Some(v), None) => Some(format!(
                "containerd version {v:?} cannot be read as a release: endpoint rules follow containerd {} (the newest regtrust models)",
                self.release
            )),
            (Some(v), Some(r)) if !r.is_modelled() => Some(format!(
                "containerd {v} is outside the releases regtrust models (1.6 to 2.2): endpoint rules follow the nearest modelled release's"
            )),
            _ => None,
        }
    }
}

impl Default for Rules {
    fn default() -> Rules {
        Rules::for_version(None)
    }
}
