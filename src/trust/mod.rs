//! The node's trust, exactly as the container runtime would assemble it — pure file reading.
//!
//! For each registry this answers: which endpoints would the runtime try, in which order, and with
//! which CAs (system roots + configured CAs, each with the node path it came from). Every problem
//! found on the way becomes a [`Finding`] that names its path, and loading goes on with what the
//! runtime itself would use. A problem that makes the runtime fail the pull outright (an unreadable
//! `ca` file, a `.cert` without its `.key` for containers/image, …) is a `config_error` on the
//! registry, because the runtime never gets as far as dialling.
//!
//! Layout: [`containerd`] (config.toml, hosts dir, hosts.toml, legacy files), [`certsd`]
//! (containers/image and Docker), [`system`] (the node's root pool as Go loads it).
//!
//! Never does: network I/O, writes, or reading anything outside the host root.

pub mod certsd;
pub mod client;
pub mod containerd;
pub mod distro;
mod finding;
pub mod registries_conf;
pub mod runtime_version;
pub mod system;

pub use client::ClientIdentity;
pub use finding::{Finding, FindingKind};

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use crate::cert::Cert;
use crate::hostroot::{HostRoot, ReadError};
use crate::pem;

/// Which runtime's rules to apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Runtime {
    Containerd,
    Crio,
    Docker,
}

impl Runtime {
    pub fn as_str(self) -> &'static str {
        match self {
            Runtime::Containerd => "containerd",
            Runtime::Crio => "crio",
            Runtime::Docker => "docker",
        }
    }
}

/// A CA the runtime would trust for an endpoint, and where it came from.
#[derive(Debug, Clone)]
pub struct TrustedCa {
    pub cert: Arc<Cert>,
    /// Node path of the file (or `system:<path>` for the system pool). Shared: every copy of
    /// an endpoint's trust (its outcome, the evidence of a failure) points at one string.
    pub source: Arc<str>,
}

/// The node's system root pool.
#[derive(Debug, Clone, Default)]
pub struct SystemRoots {
    pub cas: Vec<TrustedCa>,
    pub findings: Vec<Finding>,
    /// Node paths that were read, for change detection.
    pub files: Vec<PathBuf>,
    /// `cas`' certificates as one shared slice, made on first use ([`SystemRoots::certs`]).
    shared: std::sync::OnceLock<Arc<[Arc<Cert>]>>,
}

impl RegistryTrust {
    /// Gives back what the vectors grew past their contents: an agent keeps every registry's
    /// trust for its lifetime, and a registry with one endpoint built by pushes held room for
    /// four (heaptrack at 1,000 registries: 0.8 KiB per registry).
    pub fn shrink(&mut self) {
        self.endpoints.shrink_to_fit();
        self.findings.shrink_to_fit();
        for e in &mut self.endpoints {
            e.cas.shrink_to_fit();
            e.ca_files.shrink_to_fit();
            e.clients.shrink_to_fit();
        }
    }
}

impl SystemRoots {
    /// The system roots' certificates as one slice that every endpoint's pool shares (see
    /// [`crate::verify::Pool`]); `cas` is complete when the pool is loaded and never changes after.
    pub fn certs(&self) -> Arc<[Arc<Cert>]> {
        self.shared
            .get_or_init(|| self.cas.iter().map(|ca| ca.cert.clone()).collect())
            .clone()
    }

    /// Whether a certificate with this SHA-256 is among the system roots.
    pub fn contains(&self, sha256: &str) -> bool {
        self.cas.iter().any(|ca| ca.cert.sha256 == sha256)
    }
}

/// One endpoint the runtime would try for a registry.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// `https` or `http`.
    pub scheme: String,
    /// `host[:port]` to dial.
    pub authority: String,
    /// API root path, e.g. `/v2`.
    pub path: String,
    /// CAs configured for this endpoint (added to the system pool).
    pub cas: Vec<TrustedCa>,
    pub skip_verify: bool,
    /// Where the endpoint was configured (hosts.toml table, `server`, default, …).
    pub origin: String,
    /// The CA files configured for this endpoint (node paths), whether or not they could be read.
    pub ca_files: Vec<PathBuf>,
    /// containerd fails the pull when one of `ca_files` gives Go's `AppendCertsFromPEM` no
    /// certificate (`unable to load CA cert`; not so the legacy CRI `ca_file`, nor
    /// containers/image). Which certificates count depends on the runtime's Go, so the check
    /// judges the files again with it ([`crate::check`]).
    pub cas_must_load: bool,
    /// The client pairs the runtime would offer, in its order; the handshake presents the first
    /// that fits the server's acceptable CAs ([`client::GoClientCerts`]).
    pub clients: Vec<Arc<ClientIdentity>>,
    /// The runtime fails this endpoint before dialling (a blocked registry, a certs.d problem of
    /// one mirror); it goes on to the next endpoint.
    pub config_error: Option<String>,
    /// containerd tries this https endpoint first and retries it over plain HTTP on some failures
    /// (an `http://` host with TLS settings, the loopback default host; 1.7.7+).
    pub http_fallback: Option<HttpFallback>,
}

/// When containerd retries an https endpoint over plain HTTP (`resolver.go` `httpFallback`):
/// always when the answer is HTTP (`isTLSError`: a record header `HTTP/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HttpFallback {
    /// Also after a TLS handshake timeout (1.7.16+).
    pub on_handshake_timeout: bool,
    /// Also after a refused or timed-out dial (1.7.24+, `isPortError`: a host without a port,
    /// retried on port 80).
    pub on_port_error: bool,
}

impl Endpoint {
    pub fn url(&self) -> String {
        format!(
            "{}://{}{}/",
            self.scheme,
            self.authority,
            self.path.trim_end_matches('/')
        )
    }

    /// Host without port (IPv6 brackets removed): the TLS server name.
    pub fn host(&self) -> &str {
        split_host_port(&self.authority).0
    }

    pub fn port(&self) -> u16 {
        match split_host_port(&self.authority).1 {
            Some(p) => p,
            None if self.scheme == "http" => 80,
            None => 443,
        }
    }

    /// An endpoint with the runtime's defaults: path `/v2`, no CAs of its own, verified.
    pub(crate) fn default_for(scheme: &str, authority: &str, origin: &str) -> Endpoint {
        Endpoint {
            scheme: scheme.into(),
            authority: authority.into(),
            path: "/v2".into(),
            cas: Vec::new(),
            skip_verify: false,
            origin: origin.into(),
            ca_files: Vec::new(),
            cas_must_load: false,
            clients: Vec::new(),
            config_error: None,
            http_fallback: None,
        }
    }

    /// The plain-HTTP request containerd's fallback sends instead: same host and port (port 80
    /// when none is given), no TLS settings.
    pub fn plain_http(&self) -> Endpoint {
        let mut http = Endpoint::default_for(
            "http",
            &self.authority,
            &format!(
                "{} — plain HTTP, containerd's fallback after {} failed",
                self.origin,
                self.url()
            ),
        );
        http.path = self.path.clone();
        http
    }
}

/// Everything the runtime would use to pull from one registry.
#[derive(Debug, Clone)]
pub struct RegistryTrust {
    /// As given: `host[:port]`.
    pub registry: String,
    pub runtime: Runtime,
    /// Node path of the directory that configures it, if any.
    pub host_dir: Option<String>,
    pub endpoints: Vec<Endpoint>,
    pub findings: Vec<Finding>,
    /// The runtime fails before dialling, with this error.
    pub config_error: Option<String>,
    /// Node paths that feed this registry's trust (for change detection).
    pub watched: Vec<PathBuf>,
}

/// The kind of pull a check models, as containerd's resolver filters hosts for it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PullKind {
    /// `image:tag`, what the kubelet does for most pods: the tag is resolved by hosts with both
    /// `pull` and `resolve`.
    #[default]
    Tag,
    /// `image@sha256:…`: fetched from hosts with `pull`.
    Digest,
}
/// Endpoints probed per registry, in the runtime's order; beyond it a `too_many_endpoints`
/// finding (containerd itself would try every one).
pub const MAX_ENDPOINTS_PER_REGISTRY: usize = 64;

/// Where to look, as given on the command line or in the agent config.
#[derive(Debug, Clone)]
pub struct TrustSettings {
    pub host_root: HostRoot,
    pub runtime: Runtime,
    /// Explicit containerd hosts dir (node path), overriding the config file.
    pub hosts_dir: Option<PathBuf>,
    /// containerd config file (node path).
    pub containerd_config: PathBuf,
    /// The runtime's version as detected or configured (`1.6.20~ds1`, `v2.1.3`): containerd's
    /// endpoint rules follow it ([`containerd::Rules`]); `None`: the newest modelled release.
    pub runtime_version: Option<String>,
}

pub const DEFAULT_CONTAINERD_CONFIG: &str = "/etc/containerd/config.toml";

/// Splits `host[:port]` (IPv6 in brackets) into host and port.
pub fn split_host_port(authority: &str) -> (&str, Option<u16>) {
    if let Some(rest) = authority.strip_prefix('[') {
        if let Some((h, after)) = rest.split_once(']') {
            return (h, after.strip_prefix(':').and_then(|p| p.parse().ok()));
        }
    }
    match authority.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => match p.parse() {
            Ok(port) => (h, Some(port)),
            Err(_) => (authority, None),
        },
        _ => (authority, None),
    }
}

/// Validates a registry name (`host[:port]`, as in an image reference): no scheme, no `/`, no
/// whitespace or control characters, no empty (`a..b`, `.`, `..`, trailing-dot) labels, a valid
/// port. The same rule skips host directories whose names are not registry names, so that `..`
/// can never make regtrust read or write outside the hosts directory.
pub fn validate_registry(r: &str) -> Result<(), String> {
    match name_problem(r) {
        None => Ok(()),
        Some(why) => Err(format!(
            "\"{}\" is not a registry host[:port]: {why} (give e.g. registry.example.com:5000)",
            escape_control(r)
        )),
    }
}

/// Why `r` is not a registry name, if it is not.
fn name_problem(r: &str) -> Option<String> {
    if r.is_empty() {
        return Some("it is empty".into());
    }
    if r.contains('/') {
        return Some("it contains '/' (give the host, without scheme or path)".into());
    }
    if r.chars().any(char::is_whitespace) {
        return Some("it contains whitespace".into());
    }
    if r.chars().any(char::is_control) {
        return Some("it contains control characters".into());
    }
    if let Some((_, p)) = r.rsplit_once(':') {
        if !r.starts_with('[') && !p.is_empty() && p.parse::<u16>().is_err() {
            return Some(format!(
                "the port \"{}\" is not a number up to 65535",
                escape_control(p)
            ));
        }
    }
    let (host, _) = split_host_port(r);
    if !r.starts_with('[') && host.split('.').any(str::is_empty) {
        return Some("it has an empty label, or a '.' or '..' label".into());
    }
    None
}

/// `s` with control characters shown as escapes (`\x1b`, `\r`, `\n`, `\t`, `\u{85}`), so a
/// name chosen by someone else cannot rewrite a terminal line or forge a log line.
pub fn escape_control(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() && (c as u32) < 0x80 => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// A discovered host directory whose name is not a registry name: the finding that skips it.
/// `registry` is the name the directory stands for (containerd's `HOST_PORT_` → `HOST:PORT`).
pub(crate) fn check_host_dir_name(dir: &Path, name: &str, registry: &str) -> Result<(), Finding> {
    match name_problem(registry) {
        None => Ok(()),
        Some(why) => Err(Finding::new(
            FindingKind::InvalidHostDir,
            Some(&dir.join(name)),
            format!(
                "host directory \"{}\" in {} is skipped: as a registry name {why}",
                escape_control(name),
                dir.display()
            ),
        )),
    }
}

/// Registries found on the node, and the directories skipped on the way.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Discovery {
    /// Registry names, sorted, each valid for [`validate_registry`].
    pub registries: Vec<String>,
    /// One [`FindingKind::InvalidHostDir`] per directory skipped.
    pub findings: Vec<Finding>,
}

/// Outcome of reading one CA file.
pub(crate) enum CaRead {
    Certs(Vec<TrustedCa>),
    /// Read, but no certificate the runtime would add.
    Empty,
    Failed(ReadError),
}

/// Go's text for an errno, as `syscall.Errno.Error` gives it: glibc's `strerror`, lower-cased
/// at its first letter (Go's `syscall` `errors` table), e.g. `no such file or directory`.
pub(crate) fn go_errno(e: &std::io::Error) -> String {
    let Some(code) = e.raw_os_error() else {
        return e.to_string();
    };
    let text = std::io::Error::from_raw_os_error(code).to_string();
    let text = text
        .strip_suffix(&format!(" (os error {code})"))
        .unwrap_or(&text);
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Go's `*PathError` text: `OP PATH: ERRNO` (`os` `PathError.Error`).
pub(crate) fn go_path_error(op: &str, path: &Path, e: &std::io::Error) -> String {
    format!("{op} {}: {}", path.display(), go_errno(e))
}

/// How Go's `os.ReadFile(path)` words `err`: a `*PathError` such as `open /etc/x/ca.pem: no such
/// file or directory` (see [`go_errno`]), `read PATH: is a directory`, or for a socket the
/// `open PATH: no such device or address` (ENXIO) its open fails with. regtrust's own limits (size,
/// other file types) keep their words: Go's open of a FIFO blocks until a writer comes (the pull
/// hangs), a device is read until it ends.
pub(crate) fn go_read_error(path: &Path, err: &ReadError) -> String {
    match err {
        ReadError::Io(e) => go_path_error("open", path, e),
        ReadError::IsDir => format!("read {}: is a directory", path.display()),
        ReadError::NotRegular { kind: "socket" } => {
            format!("open {}: no such device or address", path.display())
        }
        ReadError::NotRegular { kind: "FIFO" } => format!(
            "{}: is a FIFO: the runtime's os.ReadFile blocks opening it until a writer comes, so \
             the pull hangs (regtrust does not open it)",
            path.display()
        ),
        other => format!("{}: {other}", path.display()),
    }
}

/// Reads a CA file the way the runtimes do (Go `AppendCertsFromPEM`), adding a finding for blocks
/// that are skipped.
pub(crate) fn read_ca_file(hr: &HostRoot, node_path: &Path, findings: &mut Vec<Finding>) -> CaRead {
    let data = match hr.read(node_path) {
        Ok(d) => d,
        Err(e) => return CaRead::Failed(e),
    };
    let scan = pem::scan_certs(&data);
    for why in &scan.skipped {
        findings.push(Finding::new(
            FindingKind::PemBlockSkipped,
            Some(node_path),
            why.clone(),
        ));
    }
    let mut cas = Vec::new();
    let source: Arc<str> = node_path.display().to_string().into();
    for der in scan.certs {
        if let Ok(cert) = Cert::shared(&der) {
            cas.push(TrustedCa {
                cert,
                source: source.clone(),
            });
        }
    }
    if cas.is_empty() {
        CaRead::Empty
    } else {
        CaRead::Certs(cas)
    }
}

/// The runtime's configuration, read once; answers per registry.
#[derive(Debug, Clone)]
pub struct TrustLoader {
    host_root: HostRoot,
    runtime: Runtime,
    /// containerd's layout (config.toml read once); `None` for the certs.d runtimes.
    containerd: Option<containerd::Layout>,
    /// registries.conf (CRI-O) or daemon.json (Docker), read once; `None` for containerd.
    certsd: Option<certsd::NodeConfig>,
    /// Findings about the node as a whole: its distribution, the runtime's configuration.
    findings: Vec<Finding>,
}

impl TrustLoader {
    /// Reads the runtime's configuration; a config the runtime could not start with is an error.
    /// On k3s and RKE2 with no `/etc/containerd/config.toml`, the distribution's own containerd
    /// config is read instead (see [`distro`]).
    pub fn new(settings: &TrustSettings) -> Result<TrustLoader, ConfigError> {
        let profile = distro::detect(
            &settings.host_root,
            settings.runtime,
            &settings.containerd_config,
        );
        let mut findings = profile.findings;
        let containerd = match settings.runtime {
            Runtime::Containerd => {
                let mut s = settings.clone();
                if let (Some(cfg), None) = (profile.containerd_config, &settings.hosts_dir) {
                    s.containerd_config = cfg;
                }
                let layout = containerd::Layout::load(&s)?;
                if let Some(note) = layout.rules.note() {
                    findings.push(Finding::new(
                        FindingKind::RuntimeVersionUnmodelled,
                        None,
                        note,
                    ));
                }
                findings.extend(layout.findings.iter().cloned());
                Some(layout)
            }
            _ => None,
        };
        let certsd = containerd
            .is_none()
            .then(|| certsd::NodeConfig::load(&settings.host_root, settings.runtime));
        Ok(TrustLoader {
            host_root: settings.host_root.clone(),
            runtime: settings.runtime,
            containerd,
            certsd,
            findings,
        })
    }

    /// Models `kind` of pull (default: by tag).
    pub fn with_pull(mut self, kind: PullKind) -> TrustLoader {
        if let Some(l) = self.containerd.as_mut() {
            l.pull = kind;
        }
        self
    }

    /// containerd's layout, when the runtime is containerd.
    pub fn containerd_layout(&self) -> Option<&containerd::Layout> {
        self.containerd.as_ref()
    }

    /// Findings about the runtime's configuration as a whole.
    pub fn findings(&self) -> &[Finding] {
        &self.findings
    }

    /// Every registry configured on the node (host directories, except `_default`), sorted;
    /// directories whose names are not registry names are skipped with a finding.
    pub fn discover(&self) -> Discovery {
        match &self.containerd {
            Some(layout) => layout.discover(&self.host_root),
            None => match &self.certsd {
                Some(conf) => certsd::discover_with(&self.host_root, self.runtime, conf),
                None => certsd::discover(&self.host_root, self.runtime),
            },
        }
    }

    /// The endpoints and trust the runtime would use for `registry` (system roots apart).
    pub fn registry(&self, registry: &str) -> RegistryTrust {
        let mut rt = match &self.containerd {
            Some(layout) => layout.registry(&self.host_root, registry),
            None => match &self.certsd {
                Some(conf) => certsd::registry_with(&self.host_root, self.runtime, conf, registry),
                None => certsd::registry(&self.host_root, self.runtime, registry),
            },
        };
        rt.shrink();
        rt
    }
}

/// A configuration the runtime itself could not start with: exit code 2. The file is a value
/// (ripgrep's `Error::WithPath` shape), so a caller can name or watch it without parsing text.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}", describe(path, err))]
    WithPath {
        /// Node path of the runtime's config file.
        path: PathBuf,
        err: ConfigFileError,
    },
}

/// What is wrong with the runtime's config file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    /// It exists but cannot be read (permissions, not a regular file, too large, …).
    #[error("{0}")]
    Read(#[source] ReadError),
    /// It is not valid TOML (the runtime would not start); the parser's message.
    #[error("{0}")]
    Parse(String),
}

fn describe(path: &Path, err: &ConfigFileError) -> String {
    match err {
        ConfigFileError::Read(e) => {
            format!("cannot read containerd config {}: {e}", path.display())
        }
        ConfigFileError::Parse(e) => format!(
            "containerd config {} is not valid TOML (containerd would not start): {e}",
            path.display()
        ),
    }
}

impl ConfigError {
    /// The file concerned.
    pub fn path(&self) -> &Path {
        match self {
            ConfigError::WithPath { path, .. } => path,
        }
    }
}

#[cfg(test)]
pub(crate) mod testutil {
    use std::fs;
    use std::path::Path;

    /// A CA certificate PEM with the given CN (fresh key each call).
    pub(crate) fn ca_pem(cn: &str) -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.self_signed(&key).unwrap().pem()
    }

    pub(crate) fn write(root: &Path, node_path: &str, data: impl AsRef<[u8]>) {
        let p = root.join(node_path.trim_start_matches('/'));
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, data).unwrap();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_splitting() {
        assert_eq!(split_host_port("r.test:5000"), ("r.test", Some(5000)));
        assert_eq!(split_host_port("r.test"), ("r.test", None));
        assert_eq!(split_host_port("[::1]:5000"), ("::1", Some(5000)));
        assert_eq!(split_host_port("::1"), ("::1", None));
        assert!(validate_registry("https://r.test").is_err());
        assert!(validate_registry("r.test:99999").is_err());
        assert!(validate_registry("r.test:5000").is_ok());
    }

    #[test]
    fn registry_names_without_dot_labels_slashes_spaces_or_controls() {
        for ok in [
            "r.test",
            "r.test:5000",
            "localhost",
            "[::1]:5000",
            "10.0.0.1:443",
            "docker.io",
        ] {
            assert_eq!(validate_registry(ok), Ok(()), "{ok}");
        }
        for (bad, why) in [
            (".", "empty label"),
            ("..", "empty label"),
            ("..:5000", "empty label"),
            ("a..b", "empty label"),
            (".a", "empty label"),
            ("a.", "empty label"),
            ("", "empty"),
            ("a/b", "'/'"),
            ("https://r.test", "'/'"),
            ("r test", "whitespace"),
            ("r\u{7f}test", "control"),
            ("r.test:99999", "port"),
        ] {
            let e = validate_registry(bad).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
        let e = validate_registry("r\x1b[2K.test").unwrap_err();
        assert!(e.starts_with("\"r\\x1b[2K.test\" is not a registry"), "{e}");
        assert_eq!(
            escape_control("a\r\n\t\x1b\u{85}b"),
            "a\\r\\n\\t\\x1b\\u{85}b"
        );
    }
}
