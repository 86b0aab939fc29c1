//! containers/image's `registries.conf` (CRI-O, podman, skopeo), as `pkg/sysregistriesv2`
//! (v5.23.1, what Debian 12's skopeo 1.9.3 is built with) reads it: one file's bytes → its
//! `[[registry]]` entries, post-processed and checked (`loadConfigFile`, `postProcessRegistries`);
//! drop-ins merged by prefix (`updateWithConfigurationFrom`); the entry for a name found by the
//! longest matching prefix (`FindRegistry`, `refMatchingPrefix`); and the pull sources it yields,
//! mirrors first, the (rewritten) location last (`PullSourcesFromReference`).
//!
//! Pure: no file reads (the fuzz target `registries_conf` calls [`parse_file`]). Finding and
//! reading the files is [`super::certsd`]'s.

use std::fmt;
use std::path::{Path, PathBuf};

use toml::{Table, Value};

/// `pull-from-mirror` values (sysregistriesv2 `MirrorAll`, `MirrorByDigestOnly`, `MirrorByTagOnly`).
pub const MIRROR_ALL: &str = "all";
pub const MIRROR_BY_DIGEST_ONLY: &str = "digest-only";
pub const MIRROR_BY_TAG_ONLY: &str = "tag-only";

/// One remote location: a registry's own or one of its mirrors (sysregistriesv2 `Endpoint`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// `host[:port][/namespace]`; empty only for a `*.example.com` prefix.
    pub location: String,
    /// Skip verification, and try plain HTTP after an https failure.
    pub insecure: bool,
    /// `pull-from-mirror` (mirrors only): empty, `all`, `digest-only` or `tag-only`.
    pub pull_from_mirror: String,
}

/// One `[[registry]]` entry after post-processing (sysregistriesv2 `Registry`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryEntry {
    /// What it matches: a `host[:port][/namespace]` or `*.example.com`.
    pub prefix: String,
    pub endpoint: Location,
    pub mirrors: Vec<Location>,
    pub blocked: bool,
    pub mirror_by_digest_only: bool,
    /// The file this entry came from (node path).
    pub file: PathBuf,
}

/// A file containers/image refuses: every pull fails with this error (it names the file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfError {
    pub file: PathBuf,
    pub message: String,
    /// A drop-in (`registries.conf.d/*.conf`) rather than the main file.
    pub drop_in: bool,
}

impl fmt::Display for ConfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = if self.drop_in { "drop-in " } else { "" };
        write!(
            f,
            "loading {what}registries configuration \"{}\": {}",
            self.file.display(),
            self.message
        )
    }
}

/// Where a pull goes: one location and the name the image has there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullSource {
    pub location: Location,
    /// The reference rewritten to this location (`location` + what follows the prefix).
    pub name: String,
    /// A `[[registry.mirror]]` (false: the registry's own location, tried last).
    pub mirror: bool,
}

impl PullSource {
    /// The registry host this source dials: the rewritten name's domain (`reference.Domain`).
    pub fn domain(&self) -> &str {
        self.name.split('/').next().unwrap_or_default()
    }
}

/// A TOML value's key the way BurntSushi/toml matches struct fields: exactly, else ignoring case.
fn field<'a>(t: &'a Table, name: &str) -> Option<&'a Value> {
    t.get(name).or_else(|| {
        t.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

fn string_field(t: &Table, name: &str, at: &str) -> Result<String, String> {
    match field(t, name) {
        None => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(v) => Err(format!(
            "{at}{name}: expected a string, found {}",
            v.type_str()
        )),
    }
}

fn bool_field(t: &Table, name: &str, at: &str) -> Result<bool, String> {
    match field(t, name) {
        None => Ok(false),
        Some(Value::Boolean(b)) => Ok(*b),
        Some(v) => Err(format!(
            "{at}{name}: expected a boolean, found {}",
            v.type_str()
        )),
    }
}

fn string_list(t: &Table, name: &str, at: &str) -> Result<Option<Vec<String>>, String> {
    let Some(v) = field(t, name) else {
        return Ok(None);
    };
    let Value::Array(items) = v else {
        return Err(format!(
            "{at}{name}: expected an array of strings, found {}",
            v.type_str()
        ));
    };
    items
        .iter()
        .map(|i| match i {
            Value::String(s) => Ok(s.clone()),
            other => Err(format!(
                "{at}{name}: expected strings, found {}",
                other.type_str()
            )),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn table_list<'a>(t: &'a Table, name: &str, at: &str) -> Result<Vec<&'a Table>, String> {
    match field(t, name) {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_table()
                    .ok_or_else(|| format!("{at}{name}: expected tables ([[{name}]])"))
            })
            .collect(),
        Some(v) => Err(format!(
            "{at}{name}: expected an array of tables ([[{name}]]), found {}",
            v.type_str()
        )),
    }
}

fn location(t: &Table, at: &str) -> Result<Location, String> {
    Ok(Location {
        location: string_field(t, "location", at)?,
        insecure: bool_field(t, "insecure", at)?,
        pull_from_mirror: string_field(t, "pull-from-mirror", at)?,
    })
}

fn registry_entry(t: &Table, i: usize, file: &Path) -> Result<RegistryEntry, String> {
    let at = format!("registry[{i}].");
    let mirrors = table_list(t, "mirror", &at)?
        .into_iter()
        .enumerate()
        .map(|(j, m)| location(m, &format!("{at}mirror[{j}].")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RegistryEntry {
        prefix: string_field(t, "prefix", &at)?,
        endpoint: location(t, &at)?,
        mirrors,
        blocked: bool_field(t, "blocked", &at)?,
        mirror_by_digest_only: bool_field(t, "mirror-by-digest-only", &at)?,
        file: file.to_path_buf(),
    })
}

/// sysregistriesv2 `parseLocation`: trailing `/` trimmed, no URI scheme.
fn parse_location(input: &str) -> Result<String, String> {
    let trimmed = input.trim_end_matches('/');
    if trimmed.starts_with("http://") || trimmed.starts_with("https://") {
        return Err(format!(
            "invalid location '{input}': URI schemes are not supported"
        ));
    }
    Ok(trimmed.to_string())
}

/// `reference.DomainRegexp` (v5.23): dot-separated alphanumeric components (inner `-` allowed),
/// an optional `:port`.
pub fn is_domain(s: &str) -> bool {
    let (host, port) = match s.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (s, None),
    };
    let component_ok = |c: &str| {
        !c.is_empty()
            && c.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-')
            && !c.starts_with('-')
            && !c.ends_with('-')
    };
    host.split('.').all(component_ok)
        && port.is_none_or(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

/// The v1 format's three lists (`[registries.search|insecure|block] registries = [...]`),
/// converted as `ConvertToV2` does: one entry per location, blocked ones first in the order seen.
fn convert_v1(v1: &Table, file: &Path) -> Result<Vec<RegistryEntry>, String> {
    let list = |section: &str| -> Result<Vec<String>, String> {
        match field(v1, section) {
            None => Ok(Vec::new()),
            Some(Value::Table(t)) => {
                Ok(
                    string_list(t, "registries", &format!("registries.{section}."))?
                        .unwrap_or_default(),
                )
            }
            Some(v) => Err(format!(
                "registries.{section}: expected a table, found {}",
                v.type_str()
            )),
        }
    };
    let mut out: Vec<RegistryEntry> = Vec::new();
    let mut entry = |loc: &str| -> Result<usize, String> {
        let loc = parse_location(loc)?;
        if let Some(i) = out.iter().position(|r| r.endpoint.location == loc) {
            return Ok(i);
        }
        out.push(RegistryEntry {
            prefix: loc.clone(),
            endpoint: Location {
                location: loc,
                insecure: false,
                pull_from_mirror: String::new(),
            },
            mirrors: Vec::new(),
            blocked: false,
            mirror_by_digest_only: false,
            file: file.to_path_buf(),
        });
        Ok(out.len() - 1)
    };
    let (blocked, insecure) = (list("block")?, list("insecure")?);
    let mut flags = Vec::new();
    for b in &blocked {
        flags.push((entry(b)?, true));
    }
    for i in &insecure {
        flags.push((entry(i)?, false));
    }
    for (i, is_block) in flags {
        if is_block {
            out[i].blocked = true;
        } else {
            out[i].endpoint.insecure = true;
        }
    }
    Ok(out)
}

/// Keys of the v2 format that make a file "v2" (`V2RegistriesConf.Nonempty`).
const V2_KEYS: &[&str] = &[
    "registry",
    "unqualified-search-registries",
    "credential-helpers",
    "short-name-mode",
    "aliases",
];

fn nonempty(v: &Value) -> bool {
    match v {
        Value::Array(a) => !a.is_empty(),
        Value::Table(t) => !t.is_empty(),
        Value::String(s) => !s.is_empty(),
        _ => true,
    }
}

/// True when the v1 `[registries]` table holds any non-empty list (`V1RegistriesConf.Nonempty`).
fn v1_nonempty(v1: &Table) -> bool {
    ["search", "insecure", "block"].iter().any(|s| {
        field(v1, s)
            .and_then(Value::as_table)
            .and_then(|t| field(t, "registries"))
            .is_some_and(nonempty)
    })
}

/// One registries.conf file, as `loadConfigFile` reads it: v1 converted (refused in drop-ins),
/// entries post-processed, deduplicated by prefix (the first wins) and sorted by prefix.
pub fn parse_file(
    file: &Path,
    data: &[u8],
    drop_in: bool,
) -> Result<Vec<RegistryEntry>, ConfError> {
    parse_inner(file, data, drop_in).map_err(|message| ConfError {
        file: file.to_path_buf(),
        message,
        drop_in,
    })
}

fn parse_inner(file: &Path, data: &[u8], drop_in: bool) -> Result<Vec<RegistryEntry>, String> {
    let text = std::str::from_utf8(data).map_err(|e| format!("not UTF-8: {e}"))?;
    let table: Table = text
        .parse()
        .map_err(|e: toml::de::Error| format!("not valid TOML: {}", e.message().trim()))?;
    let v2 = V2_KEYS
        .iter()
        .any(|k| field(&table, k).is_some_and(nonempty));
    let v1 = match field(&table, "registries") {
        Some(Value::Table(t)) => v1_nonempty(t).then_some(t),
        Some(v) => {
            return Err(format!(
                "registries: expected a table, found {}",
                v.type_str()
            ))
        }
        None => None,
    };
    let mut entries = match v1 {
        Some(_) if drop_in => return Err("registry must be in v2 format but is in v1".into()),
        Some(_) if v2 => return Err("mixing sysregistry v1/v2 is not supported".into()),
        Some(t) => convert_v1(t, file)?,
        None => table_list(&table, "registry", "")?
            .into_iter()
            .enumerate()
            .map(|(i, t)| registry_entry(t, i, file))
            .collect::<Result<Vec<_>, _>>()?,
    };
    check_top_level(&table)?;
    post_process(&mut entries)?;
    for r in &entries {
        if r.prefix.starts_with("*.") && r.prefix.contains(['/', '@', ':']) {
            return Err(format!("Wildcarded prefix should be in the format: *.example.com. Current prefix \"{}\" is incorrectly formatted", r.prefix));
        }
    }
    Ok(entries)
}

/// The top-level settings that make a file fail to load: wrong types, an unknown short-name
/// mode, an invalid unqualified-search registry (`postProcessRegistries`, `parseShortNameMode`).
fn check_top_level(table: &Table) -> Result<(), String> {
    for r in string_list(table, "unqualified-search-registries", "")?.unwrap_or_default() {
        let r = parse_location(&r)?;
        if !is_domain(&r) {
            return Err(format!(
                "Invalid unqualified-search-registries entry \"{r}\""
            ));
        }
    }
    string_list(table, "credential-helpers", "")?;
    match string_field(table, "short-name-mode", "")?.as_str() {
        "" | "disabled" | "enforcing" | "permissive" => {}
        other => return Err(format!("invalid short-name mode: \"{other}\"")),
    }
    if let Some(v) = field(table, "aliases") {
        let ok = v.as_table().is_some_and(|t| t.values().all(Value::is_str));
        if !ok {
            return Err("aliases: expected a table of strings".into());
        }
    }
    Ok(())
}

/// `postProcessRegistries`: locations and prefixes checked and normalised, conflicting
/// `insecure`/`blocked` settings for one location refused, then one entry per prefix (the first
/// in the file wins) sorted by prefix.
fn post_process(entries: &mut Vec<RegistryEntry>) -> Result<(), String> {
    for r in entries.iter_mut() {
        r.endpoint.location = parse_location(&r.endpoint.location)?;
        if r.prefix.is_empty() {
            if r.endpoint.location.is_empty() {
                return Err("invalid condition: both location and prefix are unset".into());
            }
            r.prefix = r.endpoint.location.clone();
        } else {
            r.prefix = parse_location(&r.prefix)?;
            if !r.prefix.starts_with("*.") && r.endpoint.location.is_empty() {
                return Err("invalid condition: location is unset and prefix is not in the format: *.example.com".into());
            }
        }
        if !r.endpoint.pull_from_mirror.is_empty() {
            return Err(format!(
                "pull-from-mirror must not be set for a non-mirror registry \"{}\"",
                r.prefix
            ));
        }
        check_mirrors(r)?;
    }
    let key = |r: &RegistryEntry| {
        if r.endpoint.location.is_empty() {
            r.prefix.clone()
        } else {
            r.endpoint.location.clone()
        }
    };
    for (i, a) in entries.iter().enumerate() {
        for b in entries[..i].iter().filter(|b| key(b) == key(a)) {
            let what = if a.endpoint.insecure != b.endpoint.insecure {
                "insecure"
            } else if a.blocked != b.blocked {
                "blocked"
            } else {
                continue;
            };
            return Err(format!(
                "registry '{}' is defined multiple times with conflicting '{what}' setting",
                a.endpoint.location
            ));
        }
    }
    let mut unique: Vec<RegistryEntry> = Vec::new();
    for r in entries.drain(..) {
        if !unique.iter().any(|u| u.prefix == r.prefix) {
            unique.push(r);
        }
    }
    unique.sort_by(|a, b| a.prefix.cmp(&b.prefix));
    *entries = unique;
    Ok(())
}

/// The mirror checks of `postProcessRegistries`. As there (a loop over copies), a mirror's
/// trailing `/` is checked but not trimmed from the stored location.
fn check_mirrors(r: &RegistryEntry) -> Result<(), String> {
    for m in &r.mirrors {
        if parse_location(&m.location)?.is_empty() {
            return Err("invalid condition: mirror location is unset".into());
        }
        if r.mirror_by_digest_only && !m.pull_from_mirror.is_empty() {
            return Err(format!("cannot set mirror usage mirror-by-digest-only for the registry (\"{}\") and pull-from-mirror for per-mirror (\"{}\") at the same time", r.prefix, m.location));
        }
        if !["", MIRROR_ALL, MIRROR_BY_DIGEST_ONLY, MIRROR_BY_TAG_ONLY]
            .contains(&m.pull_from_mirror.as_str())
        {
            return Err(format!(
                "unsupported pull-from-mirror value \"{}\" for mirror \"{}\"",
                m.pull_from_mirror, m.location
            ));
        }
    }
    Ok(())
}

/// `updateWithConfigurationFrom`: a drop-in's entries replace the same prefixes, the rest stay;
/// the result sorted by prefix.
pub fn merge(base: &mut Vec<RegistryEntry>, drop_in: Vec<RegistryEntry>) {
    for r in drop_in {
        match base.iter_mut().find(|b| b.prefix == r.prefix) {
            Some(b) => *b = r,
            None => base.push(r),
        }
    }
    base.sort_by(|a, b| a.prefix.cmp(&b.prefix));
}

/// `refMatchingPrefix`: the length of the match when `reference` (a registry, repository or
/// image name) matches `prefix`, else `None`. As upstream, `example.com` also matches
/// `example.com:5000` (a documented bug containers/image keeps).
pub fn ref_matching_prefix(reference: &str, prefix: &str) -> Option<usize> {
    if prefix.starts_with("*.") {
        let domain = &prefix[1..];
        // refMatchingSubdomainPrefix: ".example.com" found before any '/', then an end or ':/@'.
        let index = reference.find(domain)?;
        if reference[..index].contains('/') {
            return None;
        }
        let end = index + domain.len();
        return match reference.as_bytes().get(end) {
            None | Some(b':' | b'/' | b'@') => Some(end),
            _ => None,
        };
    }
    let rest = reference.strip_prefix(prefix)?;
    match rest.as_bytes().first() {
        None | Some(b':' | b'/' | b'@') => Some(prefix.len()),
        _ => None,
    }
}

/// `FindRegistry`: the entry with the longest matching prefix (the first of equal length, in
/// prefix order).
pub fn find<'a>(entries: &'a [RegistryEntry], reference: &str) -> Option<&'a RegistryEntry> {
    let mut best: Option<&RegistryEntry> = None;
    for r in entries {
        if ref_matching_prefix(reference, &r.prefix).is_some()
            && r.prefix.len() > best.map_or(0, |b| b.prefix.len())
        {
            best = Some(r);
        }
    }
    best
}

impl RegistryEntry {
    /// `PullSourcesFromReference`: the mirrors that apply to this kind of pull (by tag unless
    /// `digested`), then the registry's own location, each with `reference` rewritten to it.
    /// An error fails the whole pull (a rewritten name that is not a canonical reference).
    pub fn pull_sources(&self, reference: &str, digested: bool) -> Result<Vec<PullSource>, String> {
        let mirrors = self.mirrors.iter().filter(|m| {
            if self.mirror_by_digest_only {
                return digested;
            }
            match m.pull_from_mirror.as_str() {
                MIRROR_BY_DIGEST_ONLY => digested,
                MIRROR_BY_TAG_ONLY => !digested,
                _ => true,
            }
        });
        let mut out = Vec::new();
        for (loc, mirror) in mirrors
            .map(|m| (m, true))
            .chain(std::iter::once((&self.endpoint, false)))
        {
            out.push(PullSource {
                location: loc.clone(),
                name: self.rewrite(loc, reference)?,
                mirror,
            });
        }
        Ok(out)
    }

    /// `rewriteReference`: `location` + what follows the prefix in `reference`.
    fn rewrite(&self, loc: &Location, reference: &str) -> Result<String, String> {
        let Some(n) = ref_matching_prefix(reference, &self.prefix) else {
            return Err(format!(
                "invalid prefix '{}' for reference '{reference}'",
                self.prefix
            ));
        };
        if loc.location.is_empty() {
            return Ok(reference.to_string());
        }
        let name = format!("{}{}", loc.location, &reference[n..]);
        canonical_problem(&name).map_or(Ok(name.clone()), |why| {
            Err(format!(
                "rewriting reference \"{name}\" (from {}): {why}",
                self.file.display()
            ))
        })
    }
}

/// Why `name` (a registry or repository name) is not a canonical reference to
/// `reference.ParseNamed`, if it is not: a first component that is not a domain makes Docker
/// Hub's name of it.
fn canonical_problem(name: &str) -> Option<&'static str> {
    let (domain, path) = match name.split_once('/') {
        Some((d, p)) => (d, Some(p)),
        None => (name, None),
    };
    let looks_like_domain = domain.contains(['.', ':']) || domain == "localhost";
    if !looks_like_domain || !is_domain(domain) {
        return Some("repository name must be canonical");
    }
    let component_ok = |c: &str| {
        !c.is_empty()
            && c.starts_with(|ch: char| ch.is_ascii_lowercase() || ch.is_ascii_digit())
            && c.ends_with(|ch: char| ch.is_ascii_lowercase() || ch.is_ascii_digit())
            && c.chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || "._-".contains(ch))
    };
    match path {
        Some(p) if !p.split('/').all(component_ok) => Some("invalid reference format"),
        _ => None,
    }
}

#[cfg(test)]
#[path = "registries_conf_tests.rs"]
mod tests;
