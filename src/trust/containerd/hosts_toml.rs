//! containerd's `parseHostsFile`, per release: one hosts.toml's bytes → the `[host]` entries in
//! file order, then the root `server` (or the registry itself), or why containerd ignores the file.
//! 1.x (go-toml v1) rejects a file without `[host]` tables ("invalid `host` tree"); 2.x (go-toml v2)
//! uses its root keys. Both decode every known key with its Go type, so a wrong-typed `server`,
//! `override_path`, `skip_verify`, `header`, `capabilities` (or, from 2.1, `dial_timeout`) makes
//! the whole file ignored; unknown keys (`dial_timeout` before 2.1) are ignored. Pure: the fuzz
//! target `hosts_toml` calls [`endpoints`].
//!
//! Never does: file reads (CA and client paths are only resolved against the directory), network I/O.

use std::path::{Path, PathBuf};

use toml::{Table, Value};

use super::version::Release;
use crate::trust::FindingKind;

/// One `[host]` entry (or the root server) before its files are read.
#[derive(Debug, Clone, Default)]
pub(super) struct HostConfig {
    pub(super) scheme: String,
    /// Empty: "the registry itself" (filled in later).
    pub(super) host: String,
    pub(super) path: String,
    pub(super) ca: Option<Vec<PathBuf>>,
    pub(super) skip_verify: Option<bool>,
    /// Client pairs (certificate, key file or none: the key is in the certificate file).
    pub(super) client: Vec<(PathBuf, Option<PathBuf>)>,
    /// The `pull` and `resolve` capabilities (containerd's default for a `[host]`: both).
    pub(super) pull: bool,
    pub(super) resolve: bool,
    pub(super) origin: String,
    /// From the legacy CRI `registry.mirrors` (the endpoint's URL, for containerd's error words):
    /// its own transport, never upgraded to https, `ca_file` read leniently.
    pub(super) legacy: Option<String>,
}

/// Why containerd ignores a hosts.toml: a finding kind and the reason.
pub(super) type ParseErr = (FindingKind, String);

/// The endpoint URLs a hosts.toml yields for the newest modelled release (the registry itself
/// shown as `<registry>`), or why containerd would ignore the file. Pure: for the fuzzer.
pub fn endpoints(dir: &Path, data: &[u8]) -> Result<Vec<String>, String> {
    endpoints_as(dir, data, Release::NEWEST)
}

/// [`endpoints`] as `release` parses the file.
pub fn endpoints_as(dir: &Path, data: &[u8], release: Release) -> Result<Vec<String>, String> {
    parse(dir, data, release)
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

/// containerd's `parseHostsFile` as `release` runs it.
pub(super) fn parse(
    dir: &Path,
    data: &[u8],
    release: Release,
) -> Result<Vec<HostConfig>, ParseErr> {
    let text =
        std::str::from_utf8(data).map_err(|e| (FindingKind::BadToml, format!("not UTF-8: {e}")))?;
    let table: Table = text
        .parse()
        .map_err(|e: toml::de::Error| (FindingKind::BadToml, e.message().to_string()))?;
    let empty = Table::new();
    let host_tree = match table.get("host") {
        Some(Value::Table(t)) => t,
        // 2.x: getSortedHosts finds no `[host.X]` table; Unmarshal then fails on the type.
        Some(other) if release.root_only_hosts_toml() => {
            return Err((
                FindingKind::BadToml,
                format!("host must be a table of [host.\"URL\"] tables, not a {}", other.type_str()),
            ))
        }
        None if release.root_only_hosts_toml() => &empty,
        _ => {
            return Err((
                FindingKind::HostsTomlIgnored,
                format!("it has no [host.\"...\"] table — containerd {release} rejects it as an \"invalid `host` tree\" (2.x would use its root keys)"),
            ))
        }
    };
    let mut hosts = Vec::new();
    for (url, cfg) in host_tree {
        let cfg = cfg
            .as_table()
            .ok_or((FindingKind::BadToml, format!("host {url:?} is not a table")))?;
        let wrap = |e: String| (FindingKind::BadToml, format!("[host.{url:?}]: {e}"));
        let mut hc = parse_host_url(url, override_path(cfg).map_err(wrap)?)
            .map_err(|e| (FindingKind::BadToml, e))?;
        apply_host_fields(&mut hc, dir, cfg, release).map_err(wrap)?;
        hc.origin = format!("hosts.toml [host.{url:?}]");
        hosts.push(hc);
    }
    let bad = |e: String| (FindingKind::BadToml, e);
    let server = match table.get("server") {
        None => "",
        Some(Value::String(s)) => s.as_str(),
        Some(other) => {
            return Err(bad(format!(
                "server must be a string, not a {}",
                other.type_str()
            )))
        }
    };
    let mut root = if server.is_empty() {
        HostConfig {
            origin: "hosts.toml (registry itself, no server)".into(),
            ..Default::default()
        }
    } else {
        let mut h = parse_host_url(server, override_path(&table).map_err(bad)?).map_err(bad)?;
        h.origin = format!("hosts.toml server = {server:?}");
        h
    };
    apply_host_fields(&mut root, dir, &table, release).map_err(bad)?;
    hosts.push(root);
    Ok(hosts)
}

/// `override_path`: a boolean (go-toml refuses any other type).
fn override_path(t: &Table) -> Result<bool, String> {
    match t.get("override_path") {
        None => Ok(false),
        Some(Value::Boolean(b)) => Ok(*b),
        Some(other) => Err(format!(
            "override_path must be a boolean, not a {}",
            other.type_str()
        )),
    }
}

/// `parseHostConfig`'s URL part: default scheme https, `/v2` appended unless `override_path`.
pub(super) fn parse_host_url(server: &str, override_path: bool) -> Result<HostConfig, String> {
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
        pull: true,
        resolve: true,
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

/// A `ca` or `client` path: relative ones are relative to the host directory.
fn resolve(dir: &Path, p: &str) -> PathBuf {
    if Path::new(p).is_absolute() {
        PathBuf::from(p)
    } else {
        dir.join(p)
    }
}

/// `capabilities`, `ca`, `skip_verify`, `client`, `header`, `dial_timeout` of one table.
fn apply_host_fields(
    h: &mut HostConfig,
    dir: &Path,
    t: &Table,
    release: Release,
) -> Result<(), String> {
    if let Some(caps) = t.get("capabilities") {
        let caps = caps.as_array().ok_or("capabilities must be an array")?;
        if !caps.is_empty() {
            let (mut pull, mut resolve) = (false, false);
            for c in caps {
                match c.as_str().map(str::to_ascii_lowercase).as_deref() {
                    Some("pull") => pull = true,
                    Some("resolve") => resolve = true,
                    Some("push") => {}
                    Some("referrers") if release.knows_referrers() => {}
                    _ => return Err(format!("unknown capability {c}")),
                }
            }
            (h.pull, h.resolve) = (pull, resolve);
        }
    }
    check_header(t)?;
    if let Some(ca) = t.get("ca") {
        let abs = |p: &str| resolve(dir, p);
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
        let abs = |p: &str| resolve(dir, p);
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
    // Before 2.1 `dial_timeout` is not a field: go-toml ignores it, whatever its type.
    if let Some(dt) = t
        .get("dial_timeout")
        .filter(|_| release.reads_dial_timeout())
    {
        let s = dt.as_str().ok_or("dial_timeout must be a string")?;
        if !s.is_empty() && !is_go_duration(s) {
            return Err(format!("time: invalid duration {s:?}"));
        }
    }
    Ok(())
}

/// `header`: a table whose values are strings or arrays of strings (`parseHostConfig`).
fn check_header(t: &Table) -> Result<(), String> {
    let Some(header) = t.get("header") else {
        return Ok(());
    };
    let header = header
        .as_table()
        .ok_or_else(|| format!("header must be a table, not a {}", header.type_str()))?;
    for (key, v) in header {
        match v {
            Value::String(_) => {}
            Value::Array(a) => {
                if let Some(x) = a.iter().find(|x| !x.is_str()) {
                    return Err(format!("unable to cast {x} to string"));
                }
            }
            other => return Err(format!("invalid type {other} for header {key:?}")),
        }
    }
    Ok(())
}

/// Enough of Go's `time.ParseDuration` to tell a valid value from garbage.
pub(super) fn is_go_duration(s: &str) -> bool {
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
