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
//! Never does: network I/O or writes.

use std::io;
use std::path::{Path, PathBuf};

use toml::{Table, Value};

use super::{
    read_ca_file, CaRead, ConfigError, Endpoint, Finding, RegistryTrust, Runtime, TrustSettings,
};
use crate::hostroot::HostRoot;

/// containerd's 2.x default when no config_path is set.
pub const DEFAULT_V3_CONFIG_PATH: &str = "/etc/containerd/certs.d:/etc/docker/certs.d";
/// What regtrust assumes when there is no containerd config file at all.
pub const DEFAULT_HOSTS_DIR: &str = "/etc/containerd/certs.d";

/// The deprecated 1.x CRI registry settings, used only when `config_path` is empty.
#[derive(Debug, Clone, Default)]
struct LegacyCri {
    /// registry host → mirror endpoints, in order.
    mirrors: Vec<(String, Vec<String>)>,
    /// endpoint host → (ca_file, insecure_skip_verify).
    configs: Vec<(String, Option<String>, bool)>,
}

/// Where containerd finds registry configuration on this node.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    /// Hosts directories in search order (node paths).
    pub hosts_dirs: Vec<PathBuf>,
    legacy: Option<LegacyCri>,
    pub findings: Vec<Finding>,
    /// Node path of the config file read, if any.
    pub config_file: Option<PathBuf>,
}

/// One `[host]` entry (or the root server) before its files are read.
#[derive(Debug, Clone, Default)]
struct HostConfig {
    scheme: String,
    /// Empty: "the registry itself" (filled in later).
    host: String,
    path: String,
    ca: Option<Vec<PathBuf>>,
    skip_verify: Option<bool>,
    /// Client pairs (certificate, key file or none: the key is in the certificate file).
    client: Vec<(PathBuf, Option<PathBuf>)>,
    pull_or_resolve: bool,
    origin: String,
}

fn get<'a>(t: &'a Table, path: &[&str]) -> Option<&'a Value> {
    let (last, parents) = path.split_last()?;
    let mut cur = t;
    for p in parents {
        cur = cur.get(*p)?.as_table()?;
    }
    cur.get(*last)
}

fn non_empty_str(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

impl Layout {
    /// Reads containerd's configuration (or takes `--hosts-dir`).
    pub fn load(settings: &TrustSettings) -> Result<Layout, ConfigError> {
        let mut layout = Layout::default();
        if let Some(dir) = &settings.hosts_dir {
            layout.hosts_dirs.push(dir.clone());
            return Ok(layout);
        }
        let cfg_path = &settings.containerd_config;
        let data = match settings.host_root.read(cfg_path) {
            Ok(d) => d,
            Err(e) if e.is_not_found() => {
                layout.hosts_dirs.push(PathBuf::from(DEFAULT_HOSTS_DIR));
                layout.findings.push(Finding::new(
                    "no_containerd_config",
                    Some(cfg_path),
                    format!("no containerd config file; assuming hosts dir {DEFAULT_HOSTS_DIR}"),
                ));
                return Ok(layout);
            }
            Err(e) => {
                return Err(ConfigError::ReadConfig {
                    path: cfg_path.display().to_string(),
                    err: e.to_string(),
                })
            }
        };
        layout.config_file = Some(cfg_path.clone());
        layout.apply_config(&data, cfg_path)?;
        Ok(layout)
    }

    /// Parses containerd's config.toml (`data`, read from `cfg_path`): where the hosts dirs are,
    /// or the deprecated CRI registry settings. Pure: the entry point the fuzzer uses too.
    pub fn from_config(data: &[u8], cfg_path: &Path) -> Result<Layout, ConfigError> {
        let mut layout = Layout {
            config_file: Some(cfg_path.to_path_buf()),
            ..Layout::default()
        };
        layout.apply_config(data, cfg_path)?;
        Ok(layout)
    }

    fn apply_config(&mut self, data: &[u8], cfg_path: &Path) -> Result<(), ConfigError> {
        let layout = self;
        let cfg_path = &cfg_path.to_path_buf();
        let text = String::from_utf8_lossy(data);
        let table: Table = text
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::ParseConfig {
                path: cfg_path.display().to_string(),
                err: e.to_string(),
            })?;
        let version = table
            .get("version")
            .and_then(Value::as_integer)
            .unwrap_or(1);
        let (cri_key, cri_plugin): (&[&str], &str) = match version {
            3 => (
                &["plugins", "io.containerd.cri.v1.images", "registry"],
                "io.containerd.cri.v1.images",
            ),
            2 => (
                &["plugins", "io.containerd.grpc.v1.cri", "registry"],
                "io.containerd.grpc.v1.cri",
            ),
            _ => (&["plugins", "cri", "registry"], "cri"),
        };
        let mut reg_path: Vec<&str> = cri_key.to_vec();
        reg_path.push("config_path");
        let cri_path = non_empty_str(get(&table, &reg_path));
        let transfer_path = non_empty_str(get(
            &table,
            &["plugins", "io.containerd.transfer.v1.local", "config_path"],
        ));
        if let (Some(a), Some(b)) = (&cri_path, &transfer_path) {
            if a != b {
                layout.findings.push(Finding::new(
                    "config_path_differs",
                    Some(cfg_path),
                    format!("CRI config_path {a:?} differs from the transfer service's {b:?}; image pulls through the transfer service (containerd 2.1+ CRI, ctr) use the latter — regtrust follows CRI's"),
                ));
            }
        }
        let chosen = match (cri_path, transfer_path, version) {
            (Some(p), _, _) => Some(p),
            (None, Some(p), _) => Some(p),
            (None, None, 3) => Some(DEFAULT_V3_CONFIG_PATH.to_string()),
            (None, None, _) => None,
        };
        match chosen {
            Some(p) => {
                if p.contains(':') {
                    layout.findings.push(Finding::new(
                        "config_path_list",
                        Some(cfg_path),
                        format!("config_path {p:?} is a ':' list: the CRI pull path splits it, but the transfer service (default CRI pull path since containerd 2.1) treats it as one directory that does not exist (containerd issues 12808, 12415)"),
                    ));
                }
                layout.hosts_dirs = p
                    .split(':')
                    .filter(|s| !s.is_empty())
                    .map(PathBuf::from)
                    .collect();
            }
            None => {
                let mut legacy = LegacyCri::default();
                let mut mpath: Vec<&str> = cri_key.to_vec();
                mpath.push("mirrors");
                if let Some(m) = get(&table, &mpath).and_then(Value::as_table) {
                    for (host, v) in m {
                        let eps = v
                            .get("endpoint")
                            .and_then(Value::as_array)
                            .map(|a| {
                                a.iter()
                                    .filter_map(Value::as_str)
                                    .map(str::to_string)
                                    .collect()
                            })
                            .unwrap_or_default();
                        legacy.mirrors.push((host.clone(), eps));
                    }
                }
                let mut cpath: Vec<&str> = cri_key.to_vec();
                cpath.push("configs");
                if let Some(c) = get(&table, &cpath).and_then(Value::as_table) {
                    for (host, v) in c {
                        let tls = v.get("tls");
                        let ca = non_empty_str(tls.and_then(|t| t.get("ca_file")));
                        let skip = tls
                            .and_then(|t| t.get("insecure_skip_verify"))
                            .and_then(Value::as_bool)
                            .unwrap_or(false);
                        legacy.configs.push((host.clone(), ca, skip));
                    }
                }
                if !legacy.mirrors.is_empty() || !legacy.configs.is_empty() {
                    layout.findings.push(Finding::new(
                        "deprecated_registry_config",
                        Some(cfg_path),
                        format!("[plugins.\"{cri_plugin}\".registry] mirrors/configs are deprecated (removed in containerd 2.0); move them to a hosts directory (config_path)"),
                    ));
                }
                layout.legacy = Some(legacy);
            }
        }
        Ok(())
    }

    /// Every registry configured: host directories (except `_default`) and legacy CRI entries.
    pub fn discover(&self, hr: &HostRoot) -> Vec<String> {
        let mut out = Vec::new();
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
                    out.push(registry_from_dir_name(&e.name));
                }
            }
        }
        if let Some(l) = &self.legacy {
            out.extend(l.mirrors.iter().map(|(h, _)| h.clone()));
            out.extend(l.configs.iter().map(|(h, _, _)| h.clone()));
        }
        out.sort();
        out.dedup();
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
        let mut hosts: Option<Vec<HostConfig>> = None;
        if let Some(legacy) = &self.legacy {
            hosts = legacy_cri_hosts(legacy, registry);
        } else {
            match self.find_host_dir(hr, registry) {
                Ok(Some(dir)) => {
                    rt.host_dir = Some(dir.display().to_string());
                    rt.watched.push(dir.clone());
                    match load_host_dir(hr, &dir, &mut rt.findings) {
                        Ok(h) => hosts = Some(h),
                        Err(e) => rt.config_error = Some(e),
                    }
                }
                Ok(None) => {}
                Err(e) => rt.config_error = Some(e),
            }
        }
        let mut hosts = hosts.unwrap_or_else(|| vec![HostConfig::default()]);
        if let Some(last) = hosts.last_mut() {
            if last.host.is_empty() {
                fill_default_host(last, registry, &mut rt.findings);
            }
        }
        for h in hosts {
            if !h.pull_or_resolve {
                rt.findings.push(Finding::new(
                    "endpoint_not_for_pull",
                    None,
                    format!("{}://{} has neither pull nor resolve capability; containerd does not pull from it", h.scheme, h.host),
                ));
                continue;
            }
            let mut ep = Endpoint::default_for(&h.scheme, &h.host, &h.origin);
            ep.path = h.path.clone();
            ep.skip_verify = h.skip_verify.unwrap_or(false);
            if ep.skip_verify {
                rt.findings.push(Finding::new(
                    "skip_verify",
                    None,
                    format!("{} is configured with skip_verify: the runtime accepts any certificate there", ep.url()),
                ));
            }
            if ep.scheme == "http" && (h.ca.is_some() || h.skip_verify.is_some()) && ep.port() != 80
            {
                // containerd: "host will try HTTPS first since it is configured for HTTP with a TLS configuration"
                ep.scheme = "https".into();
            }
            for ca in h.ca.iter().flatten() {
                rt.watched.push(ca.clone());
                ep.ca_files.push(ca.clone());
                match read_ca_file(hr, ca, &mut rt.findings) {
                    CaRead::Certs(cas) => ep.cas.extend(cas),
                    CaRead::Empty => {
                        let msg = format!(
                            "unable to load CA cert {:?}: the file holds no PEM certificate",
                            ca.display().to_string()
                        );
                        rt.findings
                            .push(Finding::new("ca_no_cert", Some(ca), msg.clone()));
                        rt.config_error.get_or_insert(msg);
                    }
                    CaRead::Failed(e) => {
                        let kind = if e.is_not_found() {
                            "ca_missing"
                        } else {
                            "ca_unreadable"
                        };
                        let msg =
                            format!("unable to read CA cert {:?}: {e}", ca.display().to_string());
                        rt.findings.push(Finding::new(kind, Some(ca), msg.clone()));
                        rt.config_error.get_or_insert(msg);
                    }
                }
            }
            // containerd loads every pair (any failure fails the pull) and presents the first.
            for (i, (cert, key)) in h.client.iter().enumerate() {
                rt.watched.push(cert.clone());
                match super::read_client_pair(hr, cert, key.as_deref()) {
                    Ok(id) if i == 0 => ep.client = Some(std::sync::Arc::new(id)),
                    Ok(_) => {}
                    Err(msg) => {
                        rt.findings.push(Finding::new(
                            "client_cert_unusable",
                            Some(cert),
                            msg.clone(),
                        ));
                        rt.config_error.get_or_insert(msg);
                    }
                }
            }
            rt.endpoints.push(ep);
        }
        rt
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

/// Inverse of containerd's `hostDirectory`: `reg_5000_` → `reg:5000`.
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

fn is_localhost(registry: &str) -> bool {
    let (h, _) = super::split_host_port(registry);
    h == "localhost"
        || h.parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

fn fill_default_host(h: &mut HostConfig, registry: &str, findings: &mut Vec<Finding>) {
    h.path = "/v2".into();
    h.pull_or_resolve = true;
    if h.origin.is_empty() {
        h.origin = "default".into();
    }
    if registry == "docker.io" {
        h.scheme = "https".into();
        h.host = "registry-1.docker.io".into();
    } else if is_localhost(registry) {
        h.host = registry.into();
        let port = super::split_host_port(registry).1;
        h.scheme = if matches!(port, None | Some(443)) {
            "https"
        } else {
            "http"
        }
        .into();
        if port != Some(80) {
            h.skip_verify = Some(true);
            findings.push(Finding::new(
                "loopback_insecure",
                None,
                format!("{registry} is a loopback host with no explicit https [host] entry: containerd skips TLS verification for it (and on a port other than 443 tries plain HTTP; 1.6 does only that). Give it a [host.\"https://{registry}\"] table to have it verified"),
            ));
        }
    } else {
        h.scheme = "https".into();
        h.host = registry.into();
    }
}

fn legacy_cri_hosts(legacy: &LegacyCri, registry: &str) -> Option<Vec<HostConfig>> {
    let tls_for = |host: &str| {
        legacy
            .configs
            .iter()
            .find(|(h, _, _)| h == host)
            .map(|(_, ca, skip)| (ca.clone(), *skip))
    };
    let mut out = Vec::new();
    if let Some((_, eps)) = legacy.mirrors.iter().find(|(h, _)| h == registry) {
        for e in eps {
            let Ok(mut hc) = parse_host_url(e, false) else {
                continue;
            };
            hc.origin = format!("registry.mirrors.{registry:?}.endpoint");
            if let Some((ca, skip)) = tls_for(&hc.host) {
                hc.ca = ca.map(|c| vec![PathBuf::from(c)]);
                hc.skip_verify = Some(skip);
            }
            out.push(hc);
        }
    }
    let mut def = HostConfig {
        origin: "default".into(),
        ..Default::default()
    };
    if let Some((ca, skip)) = tls_for(registry) {
        def.ca = ca.map(|c| vec![PathBuf::from(c)]);
        def.skip_verify = Some(skip);
        def.origin = format!("registry.configs.{registry:?}.tls");
    }
    out.push(def);
    Some(out)
}

/// `loadHostDir`: hosts.toml, or the legacy files when containerd would fall back to them.
fn load_host_dir(
    hr: &HostRoot,
    dir: &Path,
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
    match parse_hosts_file(dir, &data) {
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
                "ignored_pem",
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
                    "client_key_missing",
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
                "ca_file_unused",
                Some(&p),
                "a hosts.toml is in effect and no `ca` in it names this file, so containerd does not read it",
            ));
        }
    }
}

type ParseErr = (&'static str, String);

/// containerd's `parseHostsFile` with 1.6/1.7 semantics (no `[host]` table: ignored).
/// The endpoint URLs a hosts.toml yields (the registry itself shown as `<registry>`), or why
/// containerd would ignore the file. Pure: for tests, tooling and the fuzzer.
pub fn hosts_toml_endpoints(dir: &Path, data: &[u8]) -> Result<Vec<String>, String> {
    parse_hosts_file(dir, data)
        .map(|hosts| {
            hosts
                .iter()
                .map(|h| {
                    if h.host.is_empty() {
                        "<registry>".to_string()
                    } else {
                        format!("{}://{}{}/", h.scheme, h.host, h.path)
                    }
                })
                .collect()
        })
        .map_err(|(kind, why)| format!("{kind}: {why}"))
}

fn parse_hosts_file(dir: &Path, data: &[u8]) -> Result<Vec<HostConfig>, ParseErr> {
    let text = std::str::from_utf8(data).map_err(|e| ("bad_toml", format!("not UTF-8: {e}")))?;
    let table: Table = text
        .parse()
        .map_err(|e: toml::de::Error| ("bad_toml", e.message().to_string()))?;
    let Some(host_tree) = table.get("host").and_then(Value::as_table) else {
        return Err((
            "hosts_toml_ignored",
            "it has no [host.\"...\"] table — containerd 1.6/1.7 reject it as an \"invalid `host` tree\" (2.x would use its root keys)".into(),
        ));
    };
    let mut hosts = Vec::new();
    for (url, cfg) in host_tree {
        let cfg = cfg
            .as_table()
            .ok_or(("bad_toml", format!("host {url:?} is not a table")))?;
        let mut hc = parse_host_url(url, override_path(cfg)).map_err(|e| ("bad_toml", e))?;
        apply_host_fields(&mut hc, dir, cfg)
            .map_err(|e| ("bad_toml", format!("[host.{url:?}]: {e}")))?;
        hc.origin = format!("hosts.toml [host.{url:?}]");
        hosts.push(hc);
    }
    let server = table.get("server").and_then(Value::as_str).unwrap_or("");
    let mut root = if server.is_empty() {
        HostConfig {
            origin: "hosts.toml (registry itself, no server)".into(),
            ..Default::default()
        }
    } else {
        let mut h = parse_host_url(server, override_path(&table)).map_err(|e| ("bad_toml", e))?;
        h.origin = format!("hosts.toml server = {server:?}");
        h
    };
    apply_host_fields(&mut root, dir, &table).map_err(|e| ("bad_toml", e))?;
    hosts.push(root);
    Ok(hosts)
}

fn override_path(t: &Table) -> bool {
    t.get("override_path")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// `parseHostConfig`'s URL part: default scheme https, `/v2` appended unless `override_path`.
fn parse_host_url(server: &str, override_path: bool) -> Result<HostConfig, String> {
    let full = if server.starts_with("http") {
        server.to_string()
    } else {
        format!("https://{server}")
    };
    let (scheme, rest) = full
        .split_once("://")
        .ok_or_else(|| format!("unable to parse server {full}"))?;
    if scheme != "http" && scheme != "https" {
        return Err(format!(
            "unable to parse server {full}: unsupported scheme {scheme:?}"
        ));
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if authority.is_empty() || authority.chars().any(|c| c.is_whitespace()) {
        return Err(format!("unable to parse server {full}: no host"));
    }
    let mut p = clean_path(path);
    if !p.is_empty() {
        if !p.ends_with("/v2") && !override_path {
            p.push_str("/v2");
        }
    } else if !override_path {
        p = "/v2".into();
    }
    Ok(HostConfig {
        scheme: scheme.into(),
        host: authority.into(),
        path: p,
        pull_or_resolve: true,
        ..Default::default()
    })
}

fn clean_path(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    if parts.is_empty() {
        if p.is_empty() {
            String::new()
        } else {
            "/".into()
        }
    } else {
        format!("/{}", parts.join("/"))
    }
}

/// `capabilities`, `ca`, `skip_verify`, `dial_timeout` of one table.
fn apply_host_fields(h: &mut HostConfig, dir: &Path, t: &Table) -> Result<(), String> {
    if let Some(caps) = t.get("capabilities") {
        let caps = caps.as_array().ok_or("capabilities must be an array")?;
        if !caps.is_empty() {
            let mut pull_or_resolve = false;
            for c in caps {
                match c.as_str().map(str::to_ascii_lowercase).as_deref() {
                    Some("pull") | Some("resolve") => pull_or_resolve = true,
                    Some("push") => {}
                    _ => return Err(format!("unknown capability {c}")),
                }
            }
            h.pull_or_resolve = pull_or_resolve;
        }
    }
    if let Some(ca) = t.get("ca") {
        let abs = |p: &str| {
            if Path::new(p).is_absolute() {
                PathBuf::from(p)
            } else {
                dir.join(p)
            }
        };
        h.ca = Some(match ca {
            Value::String(s) => vec![abs(s)],
            Value::Array(a) => a
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(abs)
                        .ok_or_else(|| format!("unable to cast {v} to string"))
                })
                .collect::<Result<_, _>>()?,
            other => return Err(format!("invalid type {} for \"ca\"", other.type_str())),
        });
    }
    if let Some(sv) = t.get("skip_verify") {
        h.skip_verify = Some(sv.as_bool().ok_or("skip_verify must be a boolean")?);
    }
    if let Some(client) = t.get("client") {
        let abs = |p: &str| {
            if Path::new(p).is_absolute() {
                PathBuf::from(p)
            } else {
                dir.join(p)
            }
        };
        // A string, a list of strings, or a list of [cert, key] pairs.
        let items: Vec<&Value> = match client {
            Value::String(_) => vec![client],
            Value::Array(a) => a.iter().collect(),
            other => return Err(format!("invalid type {} for \"client\"", other.type_str())),
        };
        for item in items {
            match item {
                Value::String(s) => h.client.push((abs(s), None)),
                Value::Array(pair) => match (
                    pair.first().and_then(Value::as_str),
                    pair.get(1).and_then(Value::as_str),
                    pair.len(),
                ) {
                    (Some(c), Some(k), 2) => h.client.push((abs(c), Some(abs(k)))),
                    _ => return Err(format!("invalid pair {item} for \"client\"")),
                },
                other => return Err(format!("invalid type {} for \"client\"", other.type_str())),
            }
        }
    }
    if let Some(dt) = t.get("dial_timeout") {
        let s = dt.as_str().ok_or("dial_timeout must be a string")?;
        if !is_go_duration(s) {
            return Err(format!("time: invalid duration {s:?}"));
        }
    }
    Ok(())
}

/// Enough of Go's `time.ParseDuration` to tell a valid value from garbage.
fn is_go_duration(s: &str) -> bool {
    let s = s.strip_prefix(['-', '+']).unwrap_or(s);
    if s == "0" {
        return true;
    }
    let mut rest = s;
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return false;
        }
        rest = &rest[num_len..];
        let unit = ["ns", "us", "µs", "ms", "s", "m", "h"]
            .iter()
            .find(|u| rest.starts_with(**u));
        match unit {
            Some(u) => rest = &rest[u.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests;
