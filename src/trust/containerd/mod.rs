//! containerd's registry trust: config.toml → hosts directories → `hosts.toml` or legacy files.
//!
//! Mirrors `core/remotes/docker/config/hosts.go` and the CRI plugin's use of it:
//! - hosts dir: CRI `registry.config_path` (v3 `io.containerd.cri.v1.images`, v2
//!   `io.containerd.grpc.v1.cri`, v1 `cri`), else the transfer service's, else (v3) the 2.x default
//!   `/etc/containerd/certs.d:/etc/docker/certs.d`; `:` lists are searched in order. With no
//!   config_path on 1.x the deprecated `registry.mirrors` / `registry.configs.HOST.tls` are used.
//! - directory for `HOST:PORT`: `HOST_PORT_`, then `HOST:PORT`, then `_default`; a stat error
//!   other than not-found fails the pull.
//! - `hosts.toml`: `[host."URL"]` tables in file order, then the root `server` (or the registry
//!   itself). Missing, empty, unparseable, or (1.6/1.7) without any `[host]` table: containerd logs
//!   and falls back to the directory's `*.crt` / `*.cert` / `*.key` files.
//! - a `ca` (or legacy `*.crt`) that cannot be read or holds no certificate fails the pull.
//!
//! Layout: `config` (config.toml → [`Layout`]: where the hosts dirs are), [`hosts_toml`] (the pure
//! parser), and this module: find the host directory (`HostDirFromRoot`), load it (`loadHostDir`:
//! hosts.toml or the legacy files), configure the endpoints (`ConfigureHosts`).
//!
//! Never does: network I/O or writes.

mod config;
pub mod hosts_toml;
mod legacy;
pub mod version;

use std::io;
use std::path::{Path, PathBuf};

pub use config::{Layout, DEFAULT_HOSTS_DIR, DEFAULT_V3_CONFIG_PATH};
use hosts_toml::HostConfig;
use version::Upgrade;
pub use version::{Release, Rules};

use super::{
    check_host_dir_name, go_read_error, read_ca_file, split_host_port, CaRead, Discovery, Endpoint,
    Finding, FindingKind, HttpFallback, PullKind, RegistryTrust, Runtime,
    MAX_ENDPOINTS_PER_REGISTRY,
};
use crate::hostroot::HostRoot;

impl Layout {
    /// Every registry configured: host directories (except `_default`) and legacy CRI entries.
    pub fn discover(&self, hr: &HostRoot) -> Discovery {
        let mut out = Discovery::default();
        for dir in &self.hosts_dirs {
            let Ok(entries) = hr.read_dir(dir) else {
                continue;
            };
            for e in entries {
                if e.name == "_default" || e.name.starts_with('.') {
                    continue;
                }
                let is_dir = e.is_dir
                    || (e.is_symlink
                        && hr
                            .metadata(&dir.join(&e.name))
                            .map(|m| m.is_dir())
                            .unwrap_or(false));
                if is_dir {
                    let registry = registry_from_dir_name(&e.name);
                    match check_host_dir_name(dir, &e.name, &registry) {
                        Ok(()) => out.registries.push(registry),
                        Err(f) => out.findings.push(f),
                    }
                }
            }
        }
        if let Some(l) = &self.legacy {
            // `*` is every registry's mirror list, not a registry.
            out.registries.extend(
                l.mirrors
                    .iter()
                    .filter(|(h, _)| h != "*")
                    .map(|(h, _)| h.clone()),
            );
            out.registries
                .extend(l.configs.iter().map(|(h, _)| h.clone()));
        }
        out.registries.sort();
        out.registries.dedup();
        out
    }

    /// The endpoints and trust containerd would use for `registry`.
    pub fn registry(&self, hr: &HostRoot, registry: &str) -> RegistryTrust {
        let mut rt = RegistryTrust {
            registry: registry.to_string(),
            runtime: Runtime::Containerd,
            host_dir: None,
            endpoints: Vec::new(),
            findings: Vec::new(),
            config_error: None,
            watched: self.hosts_dirs.clone(),
        };
        rt.watched.extend(self.config_file.clone());
        rt.config_error.clone_from(&self.config_error);
        let release = self.rules.release;
        let hosts = match &self.legacy {
            Some(legacy) => match legacy::hosts(legacy, registry, release) {
                Ok(h) => Some(h),
                Err(e) => {
                    rt.config_error.get_or_insert(e);
                    None
                }
            },
            None => self.host_dir_hosts(hr, &mut rt),
        };
        let mut hosts = hosts.unwrap_or_else(|| vec![HostConfig::default()]);
        if let Some(last) = hosts.last_mut() {
            if last.host.is_empty() {
                fill_default_host(last, registry, release, &mut rt.findings);
            }
        }
        cap_endpoints(&mut hosts, &mut rt);
        for h in hosts {
            configure_endpoint(hr, h, self.pull, release, &mut rt);
        }
        rt
    }

    /// Finds and loads `rt.registry`'s host directory; `None` when there is none (or it fails:
    /// then `rt.config_error` says why).
    fn host_dir_hosts(&self, hr: &HostRoot, rt: &mut RegistryTrust) -> Option<Vec<HostConfig>> {
        match self.find_host_dir(hr, &rt.registry) {
            Ok(Some(dir)) => {
                rt.host_dir = Some(dir.display().to_string());
                rt.watched.push(dir.clone());
                match load_host_dir(hr, &dir, self.rules.release, &mut rt.findings) {
                    Ok(h) => Some(h),
                    Err(e) => {
                        rt.config_error = Some(e);
                        None
                    }
                }
            }
            Ok(None) => None,
            Err(e) => {
                rt.config_error = Some(e);
                None
            }
        }
    }

    /// containerd's `HostDirFromRoot` over each hosts dir in order.
    fn find_host_dir(&self, hr: &HostRoot, registry: &str) -> Result<Option<PathBuf>, String> {
        for root in &self.hosts_dirs {
            for p in host_paths(root, registry) {
                match hr.metadata(&p) {
                    Ok(_) => return Ok(Some(p)),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => {
                        return Err(format!("cannot stat host directory {}: {e}", p.display()))
                    }
                }
            }
        }
        Ok(None)
    }
}

/// `HOST_PORT_` (only with a port), `HOST:PORT`, `_default`.
fn host_paths(root: &Path, host: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(idx) = host.rfind(':').filter(|&i| i > 0) {
        out.push(root.join(format!("{}_{}_", &host[..idx], &host[idx + 1..])));
    }
    out.push(root.join(host));
    out.push(root.join("_default"));
    out
}

/// `ConfigureHosts` for one host: its endpoint, CAs and client certificate, appended to `rt`.
fn configure_endpoint(
    hr: &HostRoot,
    h: HostConfig,
    pull: PullKind,
    release: Release,
    rt: &mut RegistryTrust,
) {
    if !h.pull && !h.resolve {
        rt.findings.push(Finding::new(
            FindingKind::EndpointNotForPull,
            None,
            format!(
                "{}://{} has neither pull nor resolve capability; containerd does not pull from it",
                h.scheme, h.host
            ),
        ));
        return;
    }
    if let Some(why) = not_for(pull, &h) {
        rt.findings.push(Finding::new(
            FindingKind::EndpointNotForThisPull,
            None,
            format!("{}://{} {why}", h.scheme, h.host),
        ));
        return;
    }
    let mut ep = Endpoint::default_for(&h.scheme, &h.host, &h.origin);
    ep.path = h.path.clone();
    ep.skip_verify = h.skip_verify.unwrap_or(false);
    upgrade_http(&h, release, &mut ep);
    if ep.skip_verify && ep.scheme == "https" {
        rt.findings.push(Finding::new(
            FindingKind::SkipVerify,
            None,
            format!(
                "{} is configured with skip_verify: the runtime accepts any certificate there",
                ep.url()
            ),
        ));
    }
    for ca in h.ca.iter().flatten() {
        add_ca(hr, ca, h.legacy.as_deref(), &mut ep, rt);
    }
    // containerd loads every pair into tls.Config.Certificates (any failure fails the pull, as
    // tls.X509KeyPair's error); Go presents the first that fits the server's acceptable CAs.
    for (cert, key) in &h.client {
        rt.watched.push(cert.clone());
        if let Some(k) = key {
            rt.watched.push(k.clone());
        }
        match super::client::read_client_pair(hr, cert, key.as_deref()) {
            Ok(id) => ep.clients.push(std::sync::Arc::new(id)),
            Err(e) => {
                let msg = e.words(Runtime::Containerd);
                let msg = match &h.legacy {
                    Some(url) => format!(
                        "get TLSConfig for registry {url:?}: failed to load cert file: {msg}"
                    ),
                    None => msg,
                };
                rt.findings.push(Finding::new(
                    FindingKind::ClientCertUnusable,
                    Some(cert),
                    super::client::pair_finding(cert, key.as_deref(), &msg),
                ));
                rt.config_error.get_or_insert(msg);
            }
        }
    }
    rt.endpoints.push(ep);
}

/// `ConfigureHosts`: an `http://` host with TLS settings (`ca`, `client`, `skip_verify`) is tried
/// over https first, with plain HTTP as the fallback — as the release does it. The legacy CRI
/// path builds its own transports and never does.
fn upgrade_http(h: &HostConfig, release: Release, ep: &mut Endpoint) {
    let tls = h.ca.is_some() || !h.client.is_empty() || h.skip_verify.is_some();
    if ep.scheme != "http" || !tls || h.legacy.is_some() {
        return;
    }
    let port = split_host_port(&h.host).1;
    let upgrade = match release.upgrade() {
        Upgrade::Never => false,
        Upgrade::AnyPort => true,
        Upgrade::ExplicitPortNot80 => port.is_some_and(|p| p != 80),
        Upgrade::Not80 => port != Some(80),
    };
    if upgrade {
        // containerd: "host will try HTTPS first since it is configured for HTTP with a TLS configuration"
        ep.scheme = "https".into();
        ep.http_fallback = Some(HttpFallback {
            on_handshake_timeout: release.fallback_on_handshake_timeout(),
            on_port_error: release.fallback_on_port_error() && port.is_none(),
        });
    }
}

/// Reads one `ca` file into `ep`; one that cannot be read or holds no certificate fails the pull.
/// The legacy CRI `ca_file` (`legacy`: the endpoint's URL) ignores what `AppendCertsFromPEM`
/// says: a file without a certificate adds nothing and fails nothing.
fn add_ca(
    hr: &HostRoot,
    ca: &Path,
    legacy: Option<&str>,
    ep: &mut Endpoint,
    rt: &mut RegistryTrust,
) {
    rt.watched.push(ca.to_path_buf());
    ep.ca_files.push(ca.to_path_buf());
    ep.cas_must_load |= legacy.is_none();
    match read_ca_file(hr, ca, &mut rt.findings) {
        CaRead::Certs(cas) => ep.cas.extend(cas),
        CaRead::Empty if legacy.is_some() => rt.findings.push(Finding::new(
            FindingKind::CaNoCert,
            Some(ca),
            format!(
                "ca_file {:?} holds no PEM certificate: containerd's CRI ignores that and verifies {} against the system roots alone",
                ca.display().to_string(),
                ep.url()
            ),
        )),
        CaRead::Failed(e) if legacy.is_some() => {
            let kind = if e.is_not_found() {
                FindingKind::CaMissing
            } else {
                FindingKind::CaUnreadable
            };
            let msg = format!(
                "get TLSConfig for registry {:?}: failed to load CA file: {}",
                legacy.unwrap_or_default(),
                go_read_error(ca, &e)
            );
            rt.findings.push(Finding::new(kind, Some(ca), msg.clone()));
            rt.config_error.get_or_insert(msg);
        }
        CaRead::Empty => {
            // hosts.go: `unable to load CA cert %q` when AppendCertsFromPEM adds nothing.
            let msg = format!("unable to load CA cert {:?}", ca.display().to_string());
            rt.findings
                .push(Finding::new(FindingKind::CaNoCert, Some(ca), msg.clone()));
            rt.config_error.get_or_insert(msg);
        }
        CaRead::Failed(e) => {
            let kind = if e.is_not_found() {
                FindingKind::CaMissing
            } else {
                FindingKind::CaUnreadable
            };
            // hosts.go: `unable to read CA cert %q: %w` around os.ReadFile's *PathError.
            let msg = format!(
                "unable to read CA cert {:?}: {}",
                ca.display().to_string(),
                go_read_error(ca, &e)
            );
            rt.findings.push(Finding::new(kind, Some(ca), msg.clone()));
            rt.config_error.get_or_insert(msg);
        }
    }
}

/// Inverse of containerd's `hostDirectory`: `reg_5000_` → `reg:5000`.
/// Keeps the first [`MAX_ENDPOINTS_PER_REGISTRY`] hosts in containerd's order, with a finding
/// when there were more: probing (and the series of) thousands of `[host]` tables would cost the
/// agent more than any registry is worth.
fn cap_endpoints(hosts: &mut Vec<HostConfig>, rt: &mut RegistryTrust) {
    if hosts.len() <= MAX_ENDPOINTS_PER_REGISTRY {
        return;
    }
    let dir = rt
        .host_dir
        .as_ref()
        .map(|d| Path::new(d).join("hosts.toml"));
    rt.findings.push(Finding::new(
        FindingKind::TooManyEndpoints,
        dir.as_deref(),
        format!(
            "{} endpoints are configured for {}; regtrust probes only the first {MAX_ENDPOINTS_PER_REGISTRY} (containerd tries them in this order)",
            hosts.len(),
            rt.registry
        ),
    ));
    hosts.truncate(MAX_ENDPOINTS_PER_REGISTRY);
}

fn registry_from_dir_name(name: &str) -> String {
    if let Some(stem) = name.strip_suffix('_') {
        if let Some((h, port)) = stem.rsplit_once('_') {
            if !h.is_empty() && !port.is_empty() && port.chars().all(|c| c.is_ascii_digit()) {
                return format!("{h}:{port}");
            }
        }
    }
    name.to_string()
}

/// Why a host is not tried for this kind of pull (containerd's resolver.go `filterHosts`): resolving
/// a tag needs `pull` and `resolve`, fetching by digest needs `pull`.
fn not_for(pull: PullKind, h: &HostConfig) -> Option<&'static str> {
    match pull {
        PullKind::Tag if !(h.pull && h.resolve) => Some(
            "lacks the pull+resolve capabilities containerd needs to resolve a tag: a pull by tag skips it (only pulls by digest use it; regtrust models a pull by tag unless --by-digest)",
        ),
        PullKind::Digest if !h.pull => Some(
            "lacks the pull capability: a pull by digest skips it",
        ),
        _ => None,
    }
}

/// `docker.IsLocalhost`: `localhost` or a loopback IP, port aside.
pub(super) fn is_localhost(registry: &str) -> bool {
    let (h, _) = super::split_host_port(registry);
    h == "localhost"
        || h.parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

/// `ConfigureHosts`' default host (the last one, when it names no host), as `release` fills it.
fn fill_default_host(
    h: &mut HostConfig,
    registry: &str,
    release: Release,
    findings: &mut Vec<Finding>,
) {
    h.path = "/v2".into();
    (h.pull, h.resolve) = (true, true);
    if h.origin.is_empty() {
        h.origin = "default".into();
    }
    if registry == "docker.io" {
        h.scheme = "https".into();
        h.host = "registry-1.docker.io".into();
    } else if is_localhost(registry) {
        h.host = registry.into();
        fill_loopback(h, registry, release, findings);
    } else {
        h.scheme = "https".into();
        h.host = registry.into();
    }
}

/// The loopback default host: before 1.7.8 `http` with skip_verify on any port; from 1.7.8 by
/// port — none or 443: https, 80: http, else http — with skip_verify except on 80. An `http` one
/// with skip_verify is then tried over https first from 1.7.7 ([`upgrade_http`]).
fn fill_loopback(
    h: &mut HostConfig,
    registry: &str,
    release: Release,
    findings: &mut Vec<Finding>,
) {
    let port = split_host_port(registry).1;
    let by_port = release.loopback_by_port();
    h.scheme = match port {
        None | Some(443) if by_port => "https",
        _ => "http",
    }
    .into();
    if by_port && port == Some(80) {
        return;
    }
    h.skip_verify = Some(true);
    let how = match (release.upgrade(), h.scheme.as_str()) {
        (Upgrade::Never, _) => "dials it over plain HTTP only (no TLS at all)",
        (_, "https") => "dials it over https without verifying the certificate",
        _ => {
            "tries https without verifying the certificate, then plain HTTP when the answer is HTTP"
        }
    };
    findings.push(Finding::new(
        FindingKind::LoopbackInsecure,
        None,
        format!("{registry} is a loopback host with no explicit https [host] entry: containerd {release} {how}. Give it a [host.\"https://{registry}\"] table to have it verified"),
    ));
}

/// `loadHostDir`: hosts.toml, or the legacy files when containerd would fall back to them.
fn load_host_dir(
    hr: &HostRoot,
    dir: &Path,
    release: Release,
    findings: &mut Vec<Finding>,
) -> Result<Vec<HostConfig>, String> {
    let hosts_toml = dir.join("hosts.toml");
    let data = match hr.read(&hosts_toml) {
        Ok(d) => d,
        Err(e) if e.is_not_found() => Vec::new(),
        Err(e) => return Err(format!("cannot read {}: {e}", hosts_toml.display())),
    };
    if data.is_empty() {
        return load_cert_files(hr, dir, findings);
    }
    match hosts_toml::parse(dir, &data, release) {
        Ok(hosts) => {
            note_unused_files(hr, dir, &hosts, findings);
            Ok(hosts)
        }
        Err((kind, why)) => {
            findings.push(Finding::new(
                kind,
                Some(&hosts_toml),
                format!("containerd ignores this hosts.toml ({why}) and falls back to the *.crt files of {}", dir.display()),
            ));
            load_cert_files(hr, dir, findings)
        }
    }
}

/// Legacy Docker-style files: `*.crt` CAs, `*.cert` (+ `.key`) client pairs.
fn load_cert_files(
    hr: &HostRoot,
    dir: &Path,
    findings: &mut Vec<Finding>,
) -> Result<Vec<HostConfig>, String> {
    let entries = match hr.read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(format!("cannot list {}: {e}", dir.display())),
    };
    let mut h = HostConfig {
        origin: format!("{} (*.crt files)", dir.display()),
        ..Default::default()
    };
    for e in &entries {
        if e.is_dir {
            continue;
        }
        let path = dir.join(&e.name);
        if e.name.ends_with(".crt") {
            h.ca.get_or_insert_with(Vec::new).push(path);
        } else if e.name.ends_with(".pem") {
            findings.push(Finding::new(
                FindingKind::IgnoredPem,
                Some(&path),
                "containerd only reads *.crt files here: this .pem is ignored (rename it to .crt, or reference it as ca in hosts.toml)",
            ));
        } else if let Some(stem) = e.name.strip_suffix(".cert") {
            // containerd: the same-named .key if it exists, else the key must be in the .cert.
            let key = format!("{stem}.key");
            if entries.iter().any(|x| x.name == key) {
                h.client.push((path, Some(dir.join(key))));
            } else {
                findings.push(Finding::new(
                    FindingKind::ClientKeyMissing,
                    Some(&path),
                    "client certificate without a matching .key: containerd expects the key inside the .cert",
                ));
                h.client.push((path, None));
            }
        }
    }
    Ok(vec![h])
}

/// `.crt`/`.pem` files beside a valid hosts.toml that no `ca` references: not used.
fn note_unused_files(hr: &HostRoot, dir: &Path, hosts: &[HostConfig], findings: &mut Vec<Finding>) {
    let Ok(entries) = hr.read_dir(dir) else {
        return;
    };
    for e in entries
        .iter()
        .filter(|e| !e.is_dir && (e.name.ends_with(".crt") || e.name.ends_with(".pem")))
    {
        let p = dir.join(&e.name);
        if !hosts.iter().any(|h| h.ca.iter().flatten().any(|c| c == &p)) {
            findings.push(Finding::new(
                FindingKind::CaFileUnused,
                Some(&p),
                "a hosts.toml is in effect and no `ca` in it names this file, so containerd does not read it",
            ));
        }
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod version_tests;
