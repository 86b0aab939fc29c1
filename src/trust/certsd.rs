//! containers/image (CRI-O, podman, skopeo) and Docker per-host certificate directories.
//!
//! containers/image (`pkg/tlsclientconfig`, `docker/docker_client.go`): the first of
//! `$HOME/.config/containers/certs.d/HOST:PORT` (HOME of a root runtime: `/root`),
//! `/etc/containers/certs.d/HOST:PORT`, `/etc/docker/certs.d/HOST:PORT` that exists wins — they are
//! not merged. `*.crt` are CAs appended to the system pool; a `.crt` without a certificate is skipped
//! silently, one that vanished between listing and reading is skipped, any other read error (a
//! directory named `x.crt`) fails the pull. A `.cert` needs its `.key` and vice versa.
//! Docker reads only `/etc/docker/certs.d/HOST:PORT`, with the same file rules, and fails on any
//! read error.
//!
//! Never does: network I/O or writes.

use std::io;
use std::path::{Path, PathBuf};

use super::{
    check_host_dir_name, read_ca_file, CaRead, Discovery, Endpoint, Finding, FindingKind,
    RegistryTrust, Runtime,
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

/// The endpoint and trust the runtime would use for `registry`.
pub fn registry(hr: &HostRoot, rt: Runtime, registry: &str) -> RegistryTrust {
    // containers/image talks to Docker Hub as registry-1.docker.io and looks up certs under that name.
    let name = if rt == Runtime::Crio && registry == "docker.io" {
        "registry-1.docker.io"
    } else {
        registry
    };
    let mut out = RegistryTrust {
        registry: registry.to_string(),
        runtime: rt,
        host_dir: None,
        endpoints: Vec::new(),
        findings: Vec::new(),
        config_error: None,
        watched: bases(rt)
            .iter()
            .map(|b| PathBuf::from(b).join(name))
            .collect(),
    };
    let mut ep = Endpoint::default_for("https", name, "default");
    match find_dir(hr, rt, name, &mut out.findings) {
        Ok(Some(dir)) => {
            ep.origin = format!("{} (*.crt files)", dir.display());
            out.host_dir = Some(dir.display().to_string());
            if let Err(e) = load_dir(hr, rt, &dir, &mut ep, &mut out.findings) {
                out.config_error = Some(e);
            }
        }
        Ok(None) => {}
        Err(e) => out.config_error = Some(e),
    }
    out.endpoints.push(ep);
    out
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
            Err(e) => return Err(format!("cannot stat {}: {e}", p.display())),
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
                format!("cannot be read ({err}); containers/image skips it"),
            ))
        }
        CaRead::Failed(err) => {
            findings.push(Finding::new(
                FindingKind::CaUnreadable,
                Some(path),
                err.to_string(),
            ));
            return Err(format!("cannot read CA file {}: {err}", path.display()));
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
        Err(e) => return Err(format!("cannot list {}: {e}", dir.display())),
    };
    let has = |n: &str| entries.iter().any(|e| e.name == n);
    for e in &entries {
        let path = dir.join(&e.name);
        if e.name.ends_with(".crt") {
            add_ca(hr, rt, &path, ep, findings)?;
        } else if let Some(stem) = e.name.strip_suffix(".cert") {
            if has(&format!("{stem}.key")) {
                // tls.LoadX509KeyPair: a pair that does not load fails the pull.
                match super::read_client_pair(hr, &path, Some(&dir.join(format!("{stem}.key")))) {
                    Ok(id) => {
                        ep.client.get_or_insert_with(|| std::sync::Arc::new(id));
                    }
                    Err(msg) => {
                        findings.push(Finding::new(
                            FindingKind::ClientCertUnusable,
                            Some(&path),
                            msg.clone(),
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
                return Err(format!(
                    "missing key {stem}.key for client certificate {}. Note that CA certificates should use the extension .crt",
                    e.name
                ));
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

    #[test]
    fn directory_named_crt_and_lonely_cert_fail_the_pull() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir_all(t.path().join("etc/containers/certs.d/r.test/ca.crt")).unwrap();
        let rt = registry(&HostRoot::new(t.path()), Runtime::Crio, "r.test");
        assert!(
            rt.config_error.as_deref().unwrap_or("").contains("ca.crt"),
            "{:?}",
            rt.config_error
        );

        let t = tempfile::tempdir().unwrap();
        write(t.path(), "/etc/docker/certs.d/r.test/client.cert", b"x");
        let rt = registry(&HostRoot::new(t.path()), Runtime::Docker, "r.test");
        assert!(
            rt.config_error
                .as_deref()
                .unwrap_or("")
                .contains("missing key client.key"),
            "{:?}",
            rt.config_error
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
}
