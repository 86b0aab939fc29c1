//! containers/image (CRI-O, podman, skopeo) and Docker per-host certificate directories.
//!
//! containers/image (`pkg/tlsclientconfig`, `docker/docker_client.go`): the first of
//! `$HOME/.config/containers/certs.d/HOST:PORT` (HOME of a root runtime: `/root`),
//! `/etc/containers/certs.d/HOST:PORT`, `/etc/docker/certs.d/HOST:PORT` that exists wins — they are
//! not merged. `*.crt` are CAs appended to the system pool; a `.crt` without a certificate is skipped
//! silently (`AppendCertsFromPEM`'s result is ignored), one that vanished between listing and
//! reading is skipped, any other read error (a directory named `x.crt`, a socket) fails the pull.
//! A `.cert` needs its `.key` and vice versa; a pair loads as `tls.LoadX509KeyPair` loads it. Files
//! are taken in name order and the first error fails the pull, in the runtime's words:
//! `SetupCertificates` returns Go's own error unwrapped (`read P: is a directory`, `open P:
//! permission denied`, `tls: failed to find any PEM data in certificate input`), skopeo and CRI-O
//! print it after their own prefix.
//! Docker (moby registry/registry.go `loadTLSConfig`) reads only `/etc/docker/certs.d/HOST:PORT`,
//! with the same file rules, except that it fails on any read error (a dangling `.crt`, a
//! directory it may not list) and words a `.cert` without `.key` "CA certificates must use the
//! extension .crt".
//!
//! Never does: network I/O or writes.

use std::io;
use std::path::{Path, PathBuf};

use super::registries_conf::{self as rc, RegistryEntry};
use super::{
    check_host_dir_name, go_path_error, go_read_error, read_ca_file, CaRead, Discovery, Endpoint,
    Finding, FindingKind, RegistryTrust, Runtime,
};
use crate::hostroot::HostRoot;

/// containers/image search order for a root runtime.
pub const CONTAINERS_CERT_DIRS: &[&str] = &[
    "/root/.config/containers/certs.d",
    "/etc/containers/certs.d",
    "/etc/docker/certs.d",
];
/// Docker's only per-host directory root.
pub const DOCKER_CERT_DIRS: &[&str] = &["/etc/docker/certs.d"];

fn bases(rt: Runtime) -> &'static [&'static str] {
    match rt {
        Runtime::Docker => DOCKER_CERT_DIRS,
        _ => CONTAINERS_CERT_DIRS,
    }
}

/// Registries with a directory under any of the runtime's roots.
pub fn discover(hr: &HostRoot, rt: Runtime) -> Discovery {
    let mut out = Discovery::default();
    for base in bases(rt) {
        let dir = Path::new(base);
        let Ok(entries) = hr.read_dir(dir) else {
            continue;
        };
        for e in entries.into_iter().filter(|e| e.is_dir || e.is_symlink) {
            match check_host_dir_name(dir, &e.name, &e.name) {
                Ok(()) => out.registries.push(e.name),
                Err(f) => out.findings.push(f),
            }
        }
    }
    out.registries.sort();
    out.registries.dedup();
    out
}

/// containers/image's registries.conf files for a root runtime (HOME `/root`), as
/// `newConfigWrapperWithHomeDir` picks them: a user file replaces the system file and its
/// drop-in directory; otherwise the system file, then both drop-in directories.
pub const REGISTRIES_CONF: &str = "/etc/containers/registries.conf";
pub const REGISTRIES_CONF_D: &str = "/etc/containers/registries.conf.d";
pub const USER_REGISTRIES_CONF: &str = "/root/.config/containers/registries.conf";
pub const USER_REGISTRIES_CONF_D: &str = "/root/.config/containers/registries.conf.d";
/// Docker's daemon configuration (`insecure-registries`).
pub const DOCKER_DAEMON_JSON: &str = "/etc/docker/daemon.json";
/// What dockerd always adds to `insecure-registries` (moby `loadInsecureRegistries`).
pub const DOCKER_DEFAULT_INSECURE_CIDRS: &[&str] = &["127.0.0.0/8"];

/// The node's registry configuration for the certs.d runtimes, read once per check.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// containers/image: the merged `[[registry]]` entries, or the error that fails every pull.
    pub registries: Result<Vec<RegistryEntry>, String>,
    /// `registries.conf` and `registries.conf.d` as an error message names them.
    pub conf_sources: String,
    /// Docker: `insecure-registries` (host[:port] names and CIDRs, with the default).
    pub docker_insecure: Vec<String>,
    /// Files read (node paths), for change detection.
    pub files: Vec<PathBuf>,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            registries: Ok(Vec::new()),
            conf_sources: String::new(),
            docker_insecure: Vec::new(),
            files: Vec::new(),
        }
    }
}

impl NodeConfig {
    /// Reads registries.conf (CRI-O) or daemon.json (Docker) under the host root.
    pub fn load(hr: &HostRoot, rt: Runtime) -> NodeConfig {
        match rt {
            Runtime::Docker => load_daemon_json(hr),
            _ => load_registries_conf(hr),
        }
    }
}

fn load_registries_conf(hr: &HostRoot) -> NodeConfig {
    let user = Path::new(USER_REGISTRIES_CONF);
    let (main, dirs): (&Path, Vec<&Path>) = if hr.metadata(user).is_ok() {
        (user, vec![Path::new(USER_REGISTRIES_CONF_D)])
    } else {
        (
            Path::new(REGISTRIES_CONF),
            vec![
                Path::new(REGISTRIES_CONF_D),
                Path::new(USER_REGISTRIES_CONF_D),
            ],
        )
    };
    let mut out = NodeConfig {
        conf_sources: std::iter::once(main)
            .chain(dirs.iter().copied())
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(" or "),
        files: std::iter::once(main)
            .chain(dirs.iter().copied())
            .map(Path::to_path_buf)
            .collect(),
        ..NodeConfig::default()
    };
    out.registries = read_registries_conf(hr, main, &dirs, &mut out.files);
    out
}

/// `tryUpdatingCache`: the main file (absent: empty), then every `*.conf` of each drop-in
/// directory in name order, each merged over the result.
fn read_registries_conf(
    hr: &HostRoot,
    main: &Path,
    dirs: &[&Path],
    files: &mut Vec<PathBuf>,
) -> Result<Vec<RegistryEntry>, String> {
    let mut entries = match hr.read(main) {
        Ok(data) => rc::parse_file(main, &data, false).map_err(|e| e.to_string())?,
        Err(e) if e.is_not_found() => Vec::new(),
        Err(e) => {
            return Err(format!(
                "loading registries configuration \"{}\": {e}",
                main.display()
            ))
        }
    };
    for dir in dirs {
        let list = match hr.read_dir(dir) {
            Ok(l) => l,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("reading registries.conf.d: {}: {e}", dir.display())),
        };
        for e in list
            .iter()
            .filter(|e| !e.is_dir && e.name.ends_with(".conf"))
        {
            let path = dir.join(&e.name);
            files.push(path.clone());
            let data = hr.read(&path).map_err(|err| {
                format!(
                    "loading drop-in registries configuration \"{}\": {err}",
                    path.display()
                )
            })?;
            rc::merge(
                &mut entries,
                rc::parse_file(&path, &data, true).map_err(|e| e.to_string())?,
            );
        }
    }
    Ok(entries)
}

fn load_daemon_json(hr: &HostRoot) -> NodeConfig {
    let path = Path::new(DOCKER_DAEMON_JSON);
    let mut out = NodeConfig {
        registries: Ok(Vec::new()),
        files: vec![path.to_path_buf()],
        docker_insecure: DOCKER_DEFAULT_INSECURE_CIDRS
            .iter()
            .map(|s| s.to_string())
            .collect(),
        ..NodeConfig::default()
    };
    let data = match hr.read(path) {
        Ok(d) => d,
        Err(e) if e.is_not_found() => return out,
        Err(e) => {
            out.registries = Err(format!("cannot read {}: {e}", path.display()));
            return out;
        }
    };
    let parsed: Result<serde_json::Value, _> = serde_json::from_slice(&data);
    match parsed.as_ref().map(|v| v.get("insecure-registries")) {
        Err(e) => {
            out.registries = Err(format!(
                "{} is not valid JSON (dockerd would not start): {e}",
                path.display()
            ))
        }
        Ok(None) => {}
        Ok(Some(serde_json::Value::Array(items))) => {
            for i in items {
                match i.as_str() {
                    Some(s) => out.docker_insecure.push(docker_index_name(s)),
                    None => {
                        out.registries = Err(format!(
                            "{}: insecure-registries holds a non-string {i}",
                            path.display()
                        ))
                    }
                }
            }
        }
        Ok(Some(other)) => {
            out.registries = Err(format!(
                "{}: insecure-registries must be an array of strings, not {other}",
                path.display()
            ))
        }
    }
    out
}

/// moby `loadInsecureRegistries`: an `http://` or `https://` prefix is dropped.
fn docker_index_name(s: &str) -> String {
    let lower = s.to_ascii_lowercase();
    for scheme in ["http://", "https://"] {
        if lower.starts_with(scheme) {
            return s[scheme.len()..].to_string();
        }
    }
    s.to_string()
}

/// moby `isSecureIndex` for names regtrust can decide without DNS: a listed `host[:port]`, or an
/// IP literal (or `localhost`, which the node resolves to loopback) inside a listed CIDR.
pub fn docker_is_insecure(insecure: &[String], registry: &str) -> bool {
    if insecure.iter().any(|i| i == registry) {
        return true;
    }
    let (host, _) = super::split_host_port(registry);
    let ip: Option<std::net::IpAddr> = if host == "localhost" {
        Some(std::net::Ipv4Addr::LOCALHOST.into())
    } else {
        host.parse().ok()
    };
    let Some(ip) = ip else {
        return false;
    };
    insecure.iter().any(|c| {
        c.split_once('/')
            .and_then(|(net, bits)| Some((net.parse().ok()?, bits.parse().ok()?)))
            .is_some_and(|(net, bits)| crate::probe::proxy::cidr_contains(net, bits, ip))
    })
}

/// [`discover`], plus every registries.conf entry whose prefix is a registry name (not a
/// namespace, not a wildcard): a configured mirror or rewrite is a configured registry.
pub fn discover_with(hr: &HostRoot, rt: Runtime, conf: &NodeConfig) -> Discovery {
    let mut out = discover(hr, rt);
    if let Ok(entries) = &conf.registries {
        out.registries.extend(
            entries
                .iter()
                .map(|e| e.prefix.clone())
                .filter(|p| super::validate_registry(p).is_ok() && !p.starts_with('*')),
        );
        out.registries.sort();
        out.registries.dedup();
    }
    out
}

/// The endpoint and trust the runtime would use for `registry`, reading the node's registry
/// configuration first (see [`NodeConfig`]).
pub fn registry(hr: &HostRoot, rt: Runtime, registry: &str) -> RegistryTrust {
    registry_with(hr, rt, &NodeConfig::load(hr, rt), registry)
}

/// The endpoints the runtime would try for `registry`, in its order, with their trust.
pub fn registry_with(
    hr: &HostRoot,
    rt: Runtime,
    conf: &NodeConfig,
    registry: &str,
) -> RegistryTrust {
    let mut out = RegistryTrust {
        registry: registry.to_string(),
        runtime: rt,
        host_dir: None,
        endpoints: Vec::new(),
        findings: Vec::new(),
        config_error: None,
        watched: conf.files.clone(),
    };
    match rt {
        Runtime::Docker => docker_endpoints(hr, conf, registry, &mut out),
        _ => containers_endpoints(hr, conf, registry, &mut out),
    }
    // Every attempt fails before dialling: the pull fails with the last one's error (the
    // registry's own location, as containers/image reports it).
    if out.config_error.is_none() && out.endpoints.iter().all(|e| e.config_error.is_some()) {
        out.config_error = out.endpoints.last().and_then(|e| e.config_error.clone());
    }
    out
}

/// One https endpoint for `name` with its certs.d directory read (`newDockerClient`); a
/// directory problem that fails the attempt is the endpoint's `config_error`.
fn certsd_endpoint(
    hr: &HostRoot,
    rt: Runtime,
    name: &str,
    dial: &str,
    out: &mut RegistryTrust,
) -> (Endpoint, Option<PathBuf>) {
    let mut ep = Endpoint::default_for("https", dial, "default");
    out.watched
        .extend(bases(rt).iter().map(|b| PathBuf::from(b).join(name)));
    let mut found = None;
    match find_dir(hr, rt, name, &mut out.findings) {
        Ok(Some(dir)) => {
            ep.origin = format!("{} (*.crt files)", dir.display());
            if let Err(e) = load_dir(hr, rt, &dir, &mut ep, &mut out.findings) {
                ep.config_error = Some(e);
            }
            found = Some(dir);
        }
        Ok(None) => {}
        Err(e) => ep.config_error = Some(e),
    }
    (ep, found)
}

/// containers/image: the pull sources of the registry's entry (mirrors first), each with its own
/// certs.d directory, `insecure` (skip verification, then plain HTTP) and `blocked` check.
fn containers_endpoints(hr: &HostRoot, conf: &NodeConfig, registry: &str, out: &mut RegistryTrust) {
    let entries = match &conf.registries {
        Ok(e) => e,
        Err(e) => {
            out.config_error = Some(e.clone());
            return;
        }
    };
    let entry = rc::find(entries, registry);
    let sources = match entry.map(|e| e.pull_sources(registry, false)) {
        None => vec![rc::PullSource {
            location: rc::Location {
                location: registry.to_string(),
                insecure: false,
                pull_from_mirror: String::new(),
            },
            name: registry.to_string(),
            mirror: false,
        }],
        Some(Ok(s)) => s,
        Some(Err(e)) => {
            out.config_error = Some(e);
            return;
        }
    };
    if let Some(e) = entry {
        note_entry(e, out);
    }
    note_namespaced(entries, registry, out);
    for src in &sources {
        let domain = src.domain();
        // Docker Hub is dialled as registry-1.docker.io; its certs.d directory is docker.io.
        let dial = if domain == "docker.io" {
            "registry-1.docker.io"
        } else {
            domain
        };
        let (mut ep, dir) = certsd_endpoint(hr, Runtime::Crio, domain, dial, out);
        let what = if src.mirror { "mirror" } else { "location" };
        ep.origin = format!("{what} {} ({})", src.location.location, ep.origin);
        if !src.mirror {
            out.host_dir = dir.map(|d| d.display().to_string());
        }
        if let Some(b) = rc::find(entries, &src.name).filter(|b| b.blocked) {
            let msg = format!("registry {} is blocked in {}", b.prefix, conf.conf_sources);
            out.findings.push(Finding::new(
                FindingKind::RegistryBlocked,
                Some(&b.file),
                msg.clone(),
            ));
            ep.config_error.get_or_insert(msg);
        }
        push_with_insecure(
            ep,
            src.location.insecure,
            "registries.conf insecure = true",
            out,
        );
    }
}

/// An endpoint, and when the runtime treats it as insecure: verification off, then the same
/// host over plain HTTP after an https failure (`detectPropertiesHelper`, moby
/// `lookupV2Endpoints`).
fn push_with_insecure(mut ep: Endpoint, insecure: bool, why: &str, out: &mut RegistryTrust) {
    if !insecure {
        out.endpoints.push(ep);
        return;
    }
    ep.skip_verify = true;
    out.findings.push(Finding::new(
        FindingKind::SkipVerify,
        None,
        format!(
            "{} is not verified ({why}); plain HTTP is tried after an https failure",
            ep.authority
        ),
    ));
    let mut http = ep.clone();
    http.scheme = "http".into();
    http.cas.clear();
    http.clients.clear();
    http.origin = format!("plain HTTP after https fails ({why})");
    out.endpoints.push(ep);
    out.endpoints.push(http);
}

/// Findings for what the entry does that a registry-level check should say.
fn note_entry(e: &RegistryEntry, out: &mut RegistryTrust) {
    for m in &e.mirrors {
        let digest_only =
            e.mirror_by_digest_only || m.pull_from_mirror == rc::MIRROR_BY_DIGEST_ONLY;
        if digest_only {
            out.findings.push(Finding::new(
                FindingKind::RegistriesConf,
                Some(&e.file),
                format!(
                    "mirror {} is used only for pulls by digest; regtrust models a pull by tag",
                    m.location
                ),
            ));
        }
    }
}

/// Entries whose prefix has a namespace under this registry: they apply only to those images.
fn note_namespaced(entries: &[RegistryEntry], registry: &str, out: &mut RegistryTrust) {
    for e in entries {
        let under = e
            .prefix
            .split_once('/')
            .is_some_and(|(host, _)| host == registry);
        if under {
            out.findings.push(Finding::new(
                FindingKind::RegistriesConf,
                Some(&e.file),
                format!("entry \"{}\" applies only to images under that namespace; regtrust checks {registry} as a whole", e.prefix),
            ));
        }
    }
}

/// Docker: `/etc/docker/certs.d/HOST:PORT` for a secure registry; an insecure one (daemon.json
/// `insecure-registries`, default 127.0.0.0/8) reads no certs.d and is tried over https without
/// verification, then plain HTTP. Docker Hub (`docker.io`) reads no certs.d either.
fn docker_endpoints(hr: &HostRoot, conf: &NodeConfig, registry: &str, out: &mut RegistryTrust) {
    if let Err(e) = &conf.registries {
        out.config_error = Some(e.clone());
        return;
    }
    if registry == "docker.io" || registry == "index.docker.io" {
        let ep = Endpoint::default_for("https", "registry-1.docker.io", "Docker Hub (no certs.d)");
        out.endpoints.push(ep);
        return;
    }
    if docker_is_insecure(&conf.docker_insecure, registry) {
        let ep = Endpoint::default_for("https", registry, "insecure registry (no certs.d read)");
        push_with_insecure(ep, true, "dockerd insecure-registries", out);
        return;
    }
    let (mut ep, dir) = certsd_endpoint(hr, Runtime::Docker, registry, registry, out);
    out.host_dir = dir.map(|d| d.display().to_string());
    if let Some(e) = ep.config_error.take() {
        out.config_error = Some(e);
    }
    out.endpoints.push(ep);
}

fn find_dir(
    hr: &HostRoot,
    rt: Runtime,
    name: &str,
    findings: &mut Vec<Finding>,
) -> Result<Option<PathBuf>, String> {
    for base in bases(rt) {
        let p = Path::new(base).join(name);
        match hr.metadata(&p) {
            Ok(_) => return Ok(Some(p)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied && rt == Runtime::Crio => {
                findings.push(Finding::new(
                    FindingKind::CertDirUnreadable,
                    Some(&p),
                    format!("skipped by containers/image: {e}"),
                ));
                continue;
            }
            // containers/image `dockerCertDir` returns os.Stat's error; moby does not stat, and
            // its os.ReadDir fails opening the directory with the same errno.
            Err(e) if rt == Runtime::Docker => return Err(go_path_error("open", &p, &e)),
            Err(e) => return Err(go_path_error("stat", &p, &e)),
        }
    }
    Ok(None)
}

/// One `*.crt` of a certs.d directory: its CAs, or why the runtime skips it or fails the pull.
fn add_ca(
    hr: &HostRoot,
    rt: Runtime,
    path: &Path,
    ep: &mut Endpoint,
    findings: &mut Vec<Finding>,
) -> Result<(), String> {
    ep.ca_files.push(path.to_path_buf());
    match read_ca_file(hr, path, findings) {
        CaRead::Certs(cas) => ep.cas.extend(cas),
        CaRead::Empty => findings.push(Finding::new(
            FindingKind::CaNoCert,
            Some(path),
            "holds no PEM certificate; the runtime skips it silently",
        )),
        CaRead::Failed(err) if err.is_not_found() && rt == Runtime::Crio => {
            findings.push(Finding::new(
                FindingKind::CaMissing,
                Some(path),
                format!(
                    "cannot be read ({}); containers/image skips it",
                    go_read_error(path, &err)
                ),
            ))
        }
        CaRead::Failed(err) => {
            // SetupCertificates and moby's loadTLSConfig return os.ReadFile's error unwrapped.
            let words = go_read_error(path, &err);
            findings.push(Finding::new(
                FindingKind::CaUnreadable,
                Some(path),
                words.clone(),
            ));
            return Err(words);
        }
    }
    Ok(())
}

fn load_dir(
    hr: &HostRoot,
    rt: Runtime,
    dir: &Path,
    ep: &mut Endpoint,
    findings: &mut Vec<Finding>,
) -> Result<(), String> {
    let entries = match hr.read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied && rt == Runtime::Crio => {
            findings.push(Finding::new(
                FindingKind::CertDirUnreadable,
                Some(dir),
                format!("skipped by containers/image: {e}"),
            ));
            return Ok(());
        }
        Err(e) => return Err(go_read_dir_error(hr, dir, &e)),
    };
    let has = |n: &str| entries.iter().any(|e| e.name == n);
    for e in &entries {
        let path = dir.join(&e.name);
        if e.name.ends_with(".crt") {
            add_ca(hr, rt, &path, ep, findings)?;
        } else if let Some(stem) = e.name.strip_suffix(".cert") {
            if has(&format!("{stem}.key")) {
                // tls.LoadX509KeyPair: a pair that does not load fails the pull.
                // Every pair goes into tls.Config.Certificates, in directory order.
                let key = dir.join(format!("{stem}.key"));
                match super::client::read_client_pair(hr, &path, Some(&key)) {
                    Ok(id) => ep.clients.push(std::sync::Arc::new(id)),
                    Err(e) => {
                        let msg = e.words(rt);
                        findings.push(Finding::new(
                            FindingKind::ClientCertUnusable,
                            Some(&path),
                            super::client::pair_finding(&path, Some(&key), &msg),
                        ));
                        return Err(msg);
                    }
                }
            }
            if !has(&format!("{stem}.key")) {
                findings.push(Finding::new(
                    FindingKind::ClientKeyMissing,
                    Some(&path),
                    "client certificate without its .key",
                ));
                return Err(missing_key_words(rt, stem, &e.name));
            }
        } else if let Some(stem) = e.name.strip_suffix(".key") {
            if !has(&format!("{stem}.cert")) {
                findings.push(Finding::new(
                    FindingKind::ClientCertMissing,
                    Some(&path),
                    "key without its client .cert",
                ));
                return Err(format!(
                    "missing client certificate {stem}.cert for key {}",
                    e.name
                ));
            }
        } else if e.name.ends_with(".pem") {
            findings.push(Finding::new(
                FindingKind::IgnoredPem,
                Some(&path),
                "the runtime only reads *.crt files here: this .pem is ignored (rename it to .crt)",
            ));
        }
    }
    Ok(())
}

/// Go's `os.ReadDir(dir)` error: its open fails with the errno (`open DIR: permission denied`),
/// or, for a path that is not a directory, the open succeeds and `getdents` fails
/// (`readdirent DIR: not a directory`, os/dir_unix.go `readdir`).
fn go_read_dir_error(hr: &HostRoot, dir: &Path, e: &io::Error) -> String {
    let not_a_dir = hr.metadata(dir).is_ok_and(|m| !m.is_dir());
    if not_a_dir {
        go_path_error("readdirent", dir, e)
    } else {
        go_path_error("open", dir, e)
    }
}

/// A `.cert` whose `.key` is not in the directory: containers/image `SetupCertificates` says
/// "Note that CA certificates should use", moby registry/registry.go `loadTLSConfig` "CA
/// certificates must use".
fn missing_key_words(rt: Runtime, stem: &str, cert: &str) -> String {
    let note = match rt {
        Runtime::Docker => "CA certificates must use the extension .crt",
        _ => "Note that CA certificates should use the extension .crt",
    };
    format!("missing key {stem}.key for client certificate {cert}. {note}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trust::testutil::{ca_pem, write};
    use std::fs;

    #[test]
    fn first_existing_dir_wins_not_merged() {
        let t = tempfile::tempdir().unwrap();
        write(
            t.path(),
            "/etc/containers/certs.d/r.test:5000/a.crt",
            ca_pem("A"),
        );
        write(
            t.path(),
            "/etc/docker/certs.d/r.test:5000/b.crt",
            ca_pem("B"),
        );
        let hr = HostRoot::new(t.path());
        let rt = registry(&hr, Runtime::Crio, "r.test:5000");
        assert_eq!(
            rt.host_dir.as_deref(),
            Some("/etc/containers/certs.d/r.test:5000")
        );
        let subjects: Vec<_> = rt.endpoints[0]
            .cas
            .iter()
            .map(|c| c.cert.subject.clone())
            .collect();
        assert_eq!(subjects, vec!["CN=A"]);
        let docker = registry(&hr, Runtime::Docker, "r.test:5000");
        assert_eq!(docker.endpoints[0].cas[0].cert.subject, "CN=B");
        assert_eq!(docker.endpoints[0].url(), "https://r.test:5000/v2/");
    }

    #[test]
    fn bad_crt_is_skipped_by_containers_image() {
        let t = tempfile::tempdir().unwrap();
        write(
            t.path(),
            "/etc/containers/certs.d/r.test/bad.crt",
            b"\x00\x01garbage",
        );
        write(
            t.path(),
            "/etc/containers/certs.d/r.test/good.crt",
            ca_pem("G"),
        );
        write(
            t.path(),
            "/etc/containers/certs.d/r.test/x.pem",
            ca_pem("P"),
        );
        std::os::unix::fs::symlink(
            "/nowhere",
            t.path().join("etc/containers/certs.d/r.test/dangling.crt"),
        )
        .unwrap();
        let rt = registry(&HostRoot::new(t.path()), Runtime::Crio, "r.test");
        assert!(rt.config_error.is_none(), "{:?}", rt.config_error);
        assert_eq!(rt.endpoints[0].cas.len(), 1);
        let kinds: Vec<_> = rt
            .findings
            .iter()
            .map(|f| (f.kind.as_str(), f.path.clone().unwrap_or_default()))
            .collect();
        assert!(
            kinds.contains(&(
                "ca_no_cert",
                "/etc/containers/certs.d/r.test/bad.crt".into()
            )),
            "{kinds:?}"
        );
        assert!(
            kinds.contains(&("ignored_pem", "/etc/containers/certs.d/r.test/x.pem".into())),
            "{kinds:?}"
        );
        assert!(
            kinds.contains(&(
                "ca_missing",
                "/etc/containers/certs.d/r.test/dangling.crt".into()
            )),
            "{kinds:?}"
        );
    }

    /// The pull's error for one certs.d directory `dir` (node path) holding what `setup` made.
    fn words(rt: Runtime, dir: &str, setup: impl Fn(&Path)) -> Option<String> {
        let t = tempfile::tempdir().unwrap();
        let real = t.path().join(dir.trim_start_matches('/'));
        fs::create_dir_all(&real).unwrap();
        setup(&real);
        let reg = Path::new(dir)
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        registry(&HostRoot::new(t.path()), rt, &reg).config_error
    }

    /// containers/image v5.23.1 pkg/tlsclientconfig/tlsclientconfig.go `SetupCertificates`:
    /// os.ReadFile's *PathError unwrapped for a `.crt` it cannot read (a directory: `read`; a
    /// socket: ENXIO at `open`), the two lonely-file errors, `tls.LoadX509KeyPair`'s error
    /// unwrapped (its own os.ReadFile's for a `.cert` that is a directory), and the first error
    /// in name order wins. The same texts skopeo prints (tests/certsd_errors.rs).
    #[test]
    fn containers_image_errors_in_its_words() {
        let d = "/etc/containers/certs.d/r.test";
        let crio = |setup: &dyn Fn(&Path)| words(Runtime::Crio, d, setup);
        assert_eq!(
            crio(&|p| fs::create_dir(p.join("ca.crt")).unwrap()).as_deref(),
            Some("read /etc/containers/certs.d/r.test/ca.crt: is a directory")
        );
        assert_eq!(
            crio(&|p| {
                std::os::unix::net::UnixListener::bind(p.join("ca.crt")).unwrap();
            })
            .as_deref(),
            Some("open /etc/containers/certs.d/r.test/ca.crt: no such device or address")
        );
        assert_eq!(
            crio(&|p| fs::write(p.join("c.cert"), "x").unwrap()).as_deref(),
            Some("missing key c.key for client certificate c.cert. Note that CA certificates should use the extension .crt")
        );
        assert_eq!(
            crio(&|p| fs::write(p.join("c.key"), "x").unwrap()).as_deref(),
            Some("missing client certificate c.cert for key c.key")
        );
        assert_eq!(
            crio(&|p| {
                fs::write(p.join("c.cert"), "garbage").unwrap();
                fs::write(p.join("c.key"), "garbage").unwrap();
            })
            .as_deref(),
            Some("tls: failed to find any PEM data in certificate input")
        );
        assert_eq!(
            crio(&|p| {
                fs::create_dir(p.join("c.cert")).unwrap();
                fs::write(p.join("c.key"), "x").unwrap();
            })
            .as_deref(),
            Some("read /etc/containers/certs.d/r.test/c.cert: is a directory")
        );
        // Name order: a.key's error comes before b.crt's.
        assert_eq!(
            crio(&|p| {
                fs::write(p.join("a.key"), "x").unwrap();
                fs::create_dir(p.join("b.crt")).unwrap();
            })
            .as_deref(),
            Some("missing client certificate a.cert for key a.key")
        );
        // AppendCertsFromPEM's false is ignored; a dangling link is skipped (IsNotExist).
        assert_eq!(
            crio(&|p| {
                fs::write(p.join("empty.crt"), "no certificate\n").unwrap();
                std::os::unix::fs::symlink("/nowhere", p.join("gone.crt")).unwrap();
            }),
            None
        );
    }

    /// A FIFO is never opened (Go's open would block and the pull hang); a directory path that
    /// is a file fails os.ReadDir at getdents, as Go words it.
    #[test]
    fn fifo_and_a_file_for_a_directory() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("etc/containers/certs.d/r.test");
        fs::create_dir_all(&dir).unwrap();
        nix::unistd::mkfifo(&dir.join("ca.crt"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        let err = registry(&HostRoot::new(t.path()), Runtime::Crio, "r.test")
            .config_error
            .unwrap_or_default();
        assert!(
            err.starts_with("/etc/containers/certs.d/r.test/ca.crt: is a FIFO")
                && err.contains("the pull hangs"),
            "{err}"
        );
        let t = tempfile::tempdir().unwrap();
        write(t.path(), "/etc/containers/certs.d/r.test", "a file");
        assert_eq!(
            registry(&HostRoot::new(t.path()), Runtime::Crio, "r.test")
                .config_error
                .as_deref(),
            Some("readdirent /etc/containers/certs.d/r.test: not a directory")
        );
    }

    /// moby registry/registry.go `loadTLSConfig`: "CA certificates must use the extension .crt"
    /// for a `.cert` without `.key`; a dangling `.crt` fails (os.ReadFile's error returned, no
    /// IsNotExist exception); the other texts are containers/image's.
    #[test]
    fn docker_errors_where_moby_differs() {
        let d = "/etc/docker/certs.d/r.test";
        let docker = |setup: &dyn Fn(&Path)| words(Runtime::Docker, d, setup);
        assert_eq!(
            docker(&|p| fs::write(p.join("client.cert"), "x").unwrap()).as_deref(),
            Some("missing key client.key for client certificate client.cert. CA certificates must use the extension .crt")
        );
        assert_eq!(
            docker(&|p| std::os::unix::fs::symlink("/nowhere", p.join("gone.crt")).unwrap())
                .as_deref(),
            Some("open /etc/docker/certs.d/r.test/gone.crt: no such file or directory")
        );
        assert_eq!(
            docker(&|p| fs::write(p.join("c.key"), "x").unwrap()).as_deref(),
            Some("missing client certificate c.cert for key c.key")
        );
        assert_eq!(
            docker(&|p| fs::create_dir(p.join("ca.crt")).unwrap()).as_deref(),
            Some("read /etc/docker/certs.d/r.test/ca.crt: is a directory")
        );
        // A symlink loop: ELOOP at open, in both runtimes.
        assert_eq!(
            docker(&|p| std::os::unix::fs::symlink("loop.crt", p.join("loop.crt")).unwrap())
                .as_deref(),
            Some("open /etc/docker/certs.d/r.test/loop.crt: too many levels of symbolic links")
        );
        // moby does not stat the directory: os.ReadDir of a file fails at getdents.
        let t = tempfile::tempdir().unwrap();
        write(t.path(), "/etc/docker/certs.d/r.test", "a file");
        assert_eq!(
            registry(&HostRoot::new(t.path()), Runtime::Docker, "r.test")
                .config_error
                .as_deref(),
            Some("readdirent /etc/docker/certs.d/r.test: not a directory")
        );
    }

    /// Go's errno words (syscall table) for the permission error root never meets in a test:
    /// `open P: permission denied`, and os.Stat's for containers/image's directory lookup.
    #[test]
    fn permission_errors_in_gos_words() {
        let e = io::Error::from_raw_os_error(13);
        let p = Path::new("/etc/containers/certs.d/r.test/ca.crt");
        assert_eq!(
            go_read_error(p, &crate::hostroot::ReadError::Io(e)),
            "open /etc/containers/certs.d/r.test/ca.crt: permission denied"
        );
        let e = io::Error::from_raw_os_error(20);
        assert_eq!(
            go_path_error("stat", Path::new("/etc/containers/certs.d/r.test"), &e),
            "stat /etc/containers/certs.d/r.test: not a directory"
        );
    }

    #[test]
    fn discover_skips_directories_that_are_not_registry_names() {
        let t = tempfile::tempdir().unwrap();
        for d in ["r.test:5000", "a..b", "tab\there"] {
            fs::create_dir_all(t.path().join("etc/containers/certs.d").join(d)).unwrap();
        }
        let d = discover(&HostRoot::new(t.path()), Runtime::Crio);
        assert_eq!(d.registries, ["r.test:5000"]);
        let paths: Vec<_> = d
            .findings
            .iter()
            .map(|f| (f.kind, f.path.clone().unwrap()))
            .collect();
        assert_eq!(
            paths,
            [
                (
                    FindingKind::InvalidHostDir,
                    "/etc/containers/certs.d/a..b".to_string()
                ),
                (
                    FindingKind::InvalidHostDir,
                    "/etc/containers/certs.d/tab\there".to_string()
                ),
            ]
        );
        assert!(
            d.findings[1].message.contains("\"tab\\there\""),
            "{}",
            d.findings[1].message
        );
    }

    fn urls(rt: &RegistryTrust) -> Vec<(String, bool, Option<String>)> {
        rt.endpoints
            .iter()
            .map(|e| (e.url(), e.skip_verify, e.config_error.clone()))
            .collect()
    }

    /// sysregistriesv2 `PullSourcesFromReference` + docker_image_src.go `newImageSourceAttempt`:
    /// mirrors first, each with its own certs.d; `insecure` is the source's own (skip verify, then
    /// plain HTTP, `detectPropertiesHelper`); a location rewrite changes the host and its certs.d.
    #[test]
    fn registries_conf_mirrors_rewrite_insecure() {
        let t = tempfile::tempdir().unwrap();
        write(
            t.path(),
            REGISTRIES_CONF,
            "[[registry]]\nprefix = \"r.test\"\nlocation = \"real.test:5000\"\n[[registry.mirror]]\nlocation = \"m.test\"\ninsecure = true\n",
        );
        write(
            t.path(),
            "/etc/containers/certs.d/m.test/m.crt",
            ca_pem("M"),
        );
        write(
            t.path(),
            "/etc/docker/certs.d/real.test:5000/r.crt",
            ca_pem("R"),
        );
        let rt = registry(&HostRoot::new(t.path()), Runtime::Crio, "r.test");
        assert_eq!(
            urls(&rt),
            [
                ("https://m.test/v2/".to_string(), true, None),
                ("http://m.test/v2/".to_string(), true, None),
                ("https://real.test:5000/v2/".to_string(), false, None),
            ]
        );
        assert_eq!(rt.endpoints[0].cas[0].cert.subject, "CN=M");
        assert!(rt.endpoints[1].cas.is_empty());
        assert_eq!(rt.endpoints[2].cas[0].cert.subject, "CN=R");
        assert_eq!(
            rt.host_dir.as_deref(),
            Some("/etc/docker/certs.d/real.test:5000")
        );
        assert!(rt.watched.contains(&PathBuf::from(REGISTRIES_CONF)));
    }

    /// docker_client.go `newDockerClient`: a source whose name matches a blocked entry fails
    /// before dialling; a blocked registry's mirror is still tried (and works).
    #[test]
    fn blocked_fails_that_attempt() {
        let t = tempfile::tempdir().unwrap();
        write(
            t.path(),
            REGISTRIES_CONF,
            "[[registry]]\nlocation = \"b.test\"\nblocked = true\n[[registry]]\nlocation = \"bm.test\"\nblocked = true\n[[registry.mirror]]\nlocation = \"m.test\"\n",
        );
        let hr = HostRoot::new(t.path());
        let rt = registry(&hr, Runtime::Crio, "b.test");
        let err = rt.config_error.clone().unwrap_or_default();
        assert!(
            err.starts_with("registry b.test is blocked in /etc/containers/registries.conf"),
            "{err}"
        );
        assert!(rt
            .findings
            .iter()
            .any(|f| f.kind == FindingKind::RegistryBlocked));
        let rt = registry(&hr, Runtime::Crio, "bm.test");
        assert!(rt.config_error.is_none());
        assert_eq!(rt.endpoints[0].config_error, None);
        assert!(rt.endpoints[1]
            .config_error
            .as_deref()
            .unwrap_or("")
            .contains("blocked"));
    }

    /// `newConfigWrapperWithHomeDir` + `dropInConfigs` + `updateWithConfigurationFrom`: drop-ins
    /// in name order, system dir then user dir, each replacing entries by prefix; a user
    /// registries.conf replaces the system file and dir; a bad file fails every pull, naming it.
    #[test]
    fn drop_ins_merge_in_order_and_user_file_overrides() {
        let t = tempfile::tempdir().unwrap();
        write(
            t.path(),
            REGISTRIES_CONF,
            "[[registry]]\nlocation = \"r.test\"\nblocked = true\n",
        );
        write(
            t.path(),
            "/etc/containers/registries.conf.d/10-a.conf",
            "[[registry]]\nlocation = \"r.test\"\ninsecure = true\n",
        );
        write(
            t.path(),
            "/etc/containers/registries.conf.d/20-b.conf",
            "[[registry]]\nlocation = \"r.test\"\n",
        );
        write(
            t.path(),
            "/etc/containers/registries.conf.d/30-c.txt",
            "not toml [",
        );
        let hr = HostRoot::new(t.path());
        assert_eq!(
            urls(&registry(&hr, Runtime::Crio, "r.test")),
            [("https://r.test/v2/".to_string(), false, None)]
        );
        write(
            t.path(),
            "/root/.config/containers/registries.conf.d/05-u.conf",
            "[[registry]]\nlocation = \"r.test\"\ninsecure = true\n",
        );
        assert_eq!(
            registry(&hr, Runtime::Crio, "r.test").endpoints.len(),
            2,
            "the user dir comes last"
        );
        write(
            t.path(),
            USER_REGISTRIES_CONF,
            "[[registry]]\nlocation = \"r.test\"\nblocked = true\n",
        );
        fs::remove_file(
            t.path()
                .join("root/.config/containers/registries.conf.d/05-u.conf"),
        )
        .unwrap();
        let rt = registry(&hr, Runtime::Crio, "r.test");
        assert!(
            rt.config_error.unwrap_or_default().contains("blocked"),
            "system dir ignored"
        );
        write(
            t.path(),
            "/root/.config/containers/registries.conf.d/06-bad.conf",
            "[[registry]]\nlocation = 5\n",
        );
        let err = registry(&hr, Runtime::Crio, "other.test")
            .config_error
            .unwrap_or_default();
        assert!(err.contains("loading drop-in registries configuration \"/root/.config/containers/registries.conf.d/06-bad.conf\""), "{err}");
    }

    /// docker_client.go `newDockerClient`: Docker Hub's certs.d directory is `docker.io`, the
    /// host dialled registry-1.docker.io. Docker itself reads no certs.d for Docker Hub.
    #[test]
    fn docker_hub_cert_dir_is_docker_io() {
        let t = tempfile::tempdir().unwrap();
        write(
            t.path(),
            "/etc/containers/certs.d/docker.io/h.crt",
            ca_pem("H"),
        );
        let hr = HostRoot::new(t.path());
        let rt = registry(&hr, Runtime::Crio, "docker.io");
        assert_eq!(rt.endpoints[0].url(), "https://registry-1.docker.io/v2/");
        assert_eq!(rt.endpoints[0].cas[0].cert.subject, "CN=H");
        let d = registry(&hr, Runtime::Docker, "docker.io");
        assert_eq!(d.endpoints[0].url(), "https://registry-1.docker.io/v2/");
        assert!(d.endpoints[0].cas.is_empty());
    }

    /// moby registry/config.go `loadInsecureRegistries` (127.0.0.0/8 always added),
    /// `isSecureIndex`, service_v2.go `lookupV2Endpoints`: an insecure registry is https without
    /// verification (no certs.d read), then http.
    #[test]
    fn docker_insecure_registries() {
        let t = tempfile::tempdir().unwrap();
        write(
            t.path(),
            DOCKER_DAEMON_JSON,
            r#"{"insecure-registries": ["http://i.test:5000", "10.0.0.0/8"]}"#,
        );
        write(
            t.path(),
            "/etc/docker/certs.d/127.0.0.1:5000/c.crt",
            ca_pem("C"),
        );
        let hr = HostRoot::new(t.path());
        for reg in [
            "i.test:5000",
            "127.0.0.1:5000",
            "10.1.2.3",
            "localhost:5000",
        ] {
            let rt = registry(&hr, Runtime::Docker, reg);
            assert_eq!(rt.endpoints.len(), 2, "{reg}");
            assert!(
                rt.endpoints[0].skip_verify && rt.endpoints[0].cas.is_empty(),
                "{reg}"
            );
            assert_eq!(rt.endpoints[1].scheme, "http", "{reg}");
        }
        assert_eq!(registry(&hr, Runtime::Docker, "i.test").endpoints.len(), 1);
        write(t.path(), DOCKER_DAEMON_JSON, "{");
        let err = registry(&hr, Runtime::Docker, "r.test")
            .config_error
            .unwrap_or_default();
        assert!(
            err.contains("/etc/docker/daemon.json is not valid JSON"),
            "{err}"
        );
    }

    /// A registries.conf entry is a configured registry for discovery; namespaces and
    /// wildcards are not registry names.
    #[test]
    fn discover_includes_registries_conf_entries() {
        let t = tempfile::tempdir().unwrap();
        write(
            t.path(),
            REGISTRIES_CONF,
            "[[registry]]\nlocation = \"m.test:5000\"\n[[registry]]\nprefix = \"r.test/team\"\nlocation = \"x.test\"\n[[registry]]\nprefix = \"*.w.test\"\nlocation = \"\"\n",
        );
        fs::create_dir_all(t.path().join("etc/containers/certs.d/c.test")).unwrap();
        let hr = HostRoot::new(t.path());
        let d = discover_with(&hr, Runtime::Crio, &NodeConfig::load(&hr, Runtime::Crio));
        assert_eq!(d.registries, ["c.test", "m.test:5000"]);
    }
}
