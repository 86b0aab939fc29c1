//! The node's system root pool, as Go on Linux loads it, read under the host root.
//!
//! Go reads the first bundle file that can be read (list below), then every file of
//! `/etc/ssl/certs` and `/etc/pki/tls/certs`, skipping symlinks that point within the same
//! directory (Debian's hash links). The agent's own `SSL_CERT_FILE`/`SSL_CERT_DIR` describe its
//! container, not the node, and are deliberately ignored. The bundle and every directory entry
//! are read as Go reads them — [`crate::pem::scan_certs`], Go's `pem.Decode` and
//! `AppendCertsFromPEM`, through [`read_ca_file`] — so a block Go skips is not trusted here
//! either; the walk is our own because symlinks must resolve under the host root.
//!
//! Never does: network I/O or writes.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::{read_ca_file, CaRead, Finding, FindingKind, SystemRoots, TrustedCa};
use crate::hostroot::{HostRoot, MAX_TRUST_FILE_BYTES};

/// Go's `certFiles` for Linux, in order.
pub const CERT_FILES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/tls/cacert.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/cert.pem",
];
/// Go's `certDirectories` for Linux.
pub const CERT_DIRS: &[&str] = &["/etc/ssl/certs", "/etc/pki/tls/certs"];

/// Loads the system pool from the host root.
pub fn load(hr: &HostRoot) -> SystemRoots {
    let mut out = SystemRoots::default();
    let mut seen = HashSet::new();
    let mut add = |out: &mut SystemRoots, cas: Vec<TrustedCa>| {
        for ca in cas {
            if seen.insert(ca.cert.sha256.clone()) {
                out.cas.push(ca);
            }
        }
    };
    for f in CERT_FILES {
        let node = Path::new(f);
        let Ok(real) = hr.resolve(node) else { continue };
        match std::fs::metadata(&real) {
            Ok(m) if m.is_file() && m.len() <= MAX_TRUST_FILE_BYTES => {}
            Ok(m) if m.is_file() => {
                out.findings.push(Finding::new(
                    FindingKind::SystemBundleTooLarge,
                    Some(node),
                    format!("{} bytes; not read", m.len()),
                ));
                continue;
            }
            _ => continue,
        }
        let source: std::sync::Arc<str> = format!("system:{f}").into();
        match read_ca_file(hr, node, &mut out.findings) {
            CaRead::Certs(cas) => {
                let cas = cas.into_iter().map(|c| TrustedCa {
                    source: source.clone(),
                    ..c
                });
                add(&mut out, cas.collect());
            }
            CaRead::Empty => {}
            CaRead::Failed(e) => {
                // Go goes on to the next file when one cannot be read.
                out.findings.push(Finding::new(
                    FindingKind::SystemBundleError,
                    Some(node),
                    e.to_string(),
                ));
                continue;
            }
        }
        out.files.push(node.to_path_buf());
        break; // Go stops at the first bundle it can read.
    }
    for d in CERT_DIRS {
        let dir = Path::new(d);
        let Ok(entries) = hr.read_dir(dir) else {
            continue;
        };
        out.files.push(dir.to_path_buf());
        for e in entries {
            if e.is_dir {
                continue;
            }
            let path: PathBuf = dir.join(&e.name);
            if e.is_symlink {
                // Go's isSameDirSymlink: a target without '/' stays in this directory; skip it.
                if let Ok(real) = hr.resolve(dir).map(|r| r.join(&e.name)) {
                    if std::fs::read_link(real)
                        .map(|t| !t.to_string_lossy().contains('/'))
                        .unwrap_or(false)
                    {
                        continue;
                    }
                }
            }
            let mut ignored = Vec::new();
            if let CaRead::Certs(cas) = read_ca_file(hr, &path, &mut ignored) {
                let source: std::sync::Arc<str> = format!("system:{}", path.display()).into();
                let cas = cas.into_iter().map(|mut c| {
                    c.source = source.clone();
                    c
                });
                add(&mut out, cas.collect());
            }
        }
    }
    if out.cas.is_empty() {
        out.findings.push(Finding::new(
            FindingKind::NoSystemRoots,
            None,
            format!(
                "no system root certificates found under host root {}",
                hr.root().display()
            ),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trust::testutil::{ca_pem, write};

    #[test]
    fn reads_first_bundle_and_dir_under_host_root_only() {
        let t = tempfile::tempdir().unwrap();
        write(
            t.path(),
            "/etc/pki/tls/certs/ca-bundle.crt",
            ca_pem("Second"),
        );
        write(t.path(), "/etc/ssl/cert.pem", ca_pem("Third"));
        write(t.path(), "/usr/share/ca/extra.crt", ca_pem("Extra"));
        std::os::unix::fs::symlink(
            "/usr/share/ca/extra.crt",
            t.path().join("etc/pki/tls/certs/extra.pem"),
        )
        .unwrap();
        // A same-directory link (Debian's hash link) is skipped: no duplicate source.
        std::os::unix::fs::symlink("extra.pem", t.path().join("etc/pki/tls/certs/abcd.0")).unwrap();
        let roots = load(&HostRoot::new(t.path()));
        let mut subjects: Vec<_> = roots.cas.iter().map(|c| c.cert.subject.clone()).collect();
        subjects.sort();
        assert_eq!(subjects, vec!["CN=Extra", "CN=Second"]);
        let extra = roots
            .cas
            .iter()
            .find(|c| c.cert.subject == "CN=Extra")
            .unwrap();
        assert_eq!(&*extra.source, "system:/etc/pki/tls/certs/extra.pem");
    }

    #[test]
    fn the_bundle_is_read_as_go_reads_pem() {
        // A block with headers, one whose DER has trailing data, and a block without its END
        // line before a good one: Go's AppendCertsFromPEM keeps only the good one.
        let t = tempfile::tempdir().unwrap();
        let good = ca_pem("Good");
        let body = |pem: &str| pem.split_once('\n').unwrap().1.to_string();
        let headers = format!(
            "-----BEGIN CERTIFICATE-----\nX-Note: 1\n{}",
            body(&ca_pem("Headers"))
        );
        let der = crate::pem::scan_certs(ca_pem("Trailing").as_bytes())
            .certs
            .remove(0);
        let trailing = crate::pem::encode_cert(&[der, vec![0]].concat());
        let unclosed = "-----BEGIN CERTIFICATE-----\nMIIB\n";
        let bundle = format!("{headers}{trailing}{unclosed}{good}");
        write(t.path(), "/etc/ssl/certs/ca-certificates.crt", bundle);
        let roots = load(&HostRoot::new(t.path()));
        let subjects: Vec<_> = roots.cas.iter().map(|c| c.cert.subject.clone()).collect();
        assert_eq!(subjects, vec!["CN=Good"]);
        assert_eq!(
            &*roots.cas[0].source,
            "system:/etc/ssl/certs/ca-certificates.crt"
        );
        let skipped = roots
            .findings
            .iter()
            .filter(|f| f.kind == FindingKind::PemBlockSkipped)
            .count();
        assert!(skipped >= 2, "{:?}", roots.findings);
    }

    #[test]
    fn empty_host_root_has_no_roots_even_with_ssl_cert_file_set() {
        // This machine sets SSL_CERT_FILE globally; it must not leak into the node's trust.
        let t = tempfile::tempdir().unwrap();
        let roots = load(&HostRoot::new(t.path()));
        assert!(roots.cas.is_empty());
        assert_eq!(roots.findings[0].kind, FindingKind::NoSystemRoots);
    }
}
