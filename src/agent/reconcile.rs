//! Reading what feeds each registry's trust — the runtime's configuration, the system roots, the
//! expected CAs — as one job for the blocking pool (it reads files), and the digest that tells the
//! loop whether a registry's trust changed and must be probed at once.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use crate::config::RegistryConfig;
use crate::trust::{
    self, ConfigError, Finding, RegistryTrust, SystemRoots, TrustLoader, TrustSettings,
};

use super::drift::{Expected, ExpectedCa};
use super::watch;

/// One registry's trust, as read.
pub(crate) struct RegistryRead {
    pub name: String,
    pub trust: RegistryTrust,
    pub expected: Option<Expected>,
    /// What, in its trust, would change a probe's outcome.
    pub digest: String,
}

/// Everything one re-read found.
pub(crate) struct Reading {
    pub system: Arc<SystemRoots>,
    pub registries: Vec<RegistryRead>,
    /// Directories to watch for changes (real paths).
    pub watch_dirs: HashSet<PathBuf>,
    /// Host directories discovery skipped (names that are not registries).
    pub skipped: Vec<Finding>,
    /// Findings about the node as a whole, in `check`'s order: system roots, the runtime's
    /// configuration, skipped host directories.
    pub node_findings: Vec<Finding>,
}

/// Reads the trust of the configured registries (and, with `discover`, of every host directory).
/// Blocking: file reads.
pub(crate) fn read(
    settings: &TrustSettings,
    configured: &[RegistryConfig],
    discover: bool,
) -> Result<Reading, ConfigError> {
    let loader = TrustLoader::new(settings)?;
    let system = Arc::new(trust::system::load(&settings.host_root));
    let mut names: Vec<String> = configured.iter().map(|r| r.name.clone()).collect();
    let mut skipped = Vec::new();
    if discover {
        let discovery = loader.discover();
        names.extend(discovery.registries);
        skipped = discovery.findings;
    }
    names.sort();
    names.dedup();
    let sys_digest: Vec<&str> = system.cas.iter().map(|c| c.cert.sha256.as_str()).collect();
    let sys_digest = crate::cert::sha256_hex(sys_digest.join(",").as_bytes());
    let mut watch_dirs = HashSet::new();
    let mut watch = |p: &std::path::Path| {
        if let Ok(real) = settings.host_root.resolve(p) {
            watch::dirs_for(&real, &mut watch_dirs);
        }
    };
    for f in &system.files {
        watch(f);
    }
    let mut registries = Vec::new();
    for name in names {
        let trust = loader.registry(&name);
        let rc = configured.iter().find(|r| r.name == name);
        let expected = rc.and_then(load_expected);
        for p in &trust.watched {
            watch(p);
        }
        let digest = digest(&trust, &expected, &sys_digest);
        registries.push(RegistryRead {
            name,
            trust,
            expected,
            digest,
        });
    }
    for f in configured
        .iter()
        .filter_map(|r| r.expected_ca_file.as_ref())
    {
        watch::dirs_for(f, &mut watch_dirs);
    }
    let mut node_findings = system.findings.clone();
    node_findings.extend_from_slice(loader.findings());
    node_findings.extend(skipped.iter().cloned());
    Ok(Reading {
        system,
        registries,
        watch_dirs,
        skipped,
        node_findings,
    })
}

/// The expected CAs of a registry: pinned fingerprints and the certificates of its file.
fn load_expected(rc: &RegistryConfig) -> Option<Expected> {
    if rc.expected_ca_file.is_none() && rc.expected_ca_sha256.is_empty() {
        return None;
    }
    let mut e = Expected {
        shas: rc.expected_ca_sha256.clone(),
        error: None,
        cas: rc
            .expected_ca_sha256
            .iter()
            .map(|sha| ExpectedCa {
                sha256: sha.clone(),
                subject: None,
                key_id: None,
                source: "expected_ca_sha256 (pinned in the config)".into(),
            })
            .collect(),
    };
    if let Some(f) = &rc.expected_ca_file {
        match crate::hostroot::read_bounded(f) {
            Ok(data) => {
                let scan = crate::pem::scan_certs(&data);
                if scan.certs.is_empty() {
                    e.error = Some(format!("{}: holds no PEM certificate", f.display()));
                }
                for der in &scan.certs {
                    let sha256 = crate::cert::sha256_hex(der);
                    let cert = crate::cert::Cert::from_der(der).ok();
                    e.shas.push(sha256.clone());
                    e.cas.push(ExpectedCa {
                        sha256,
                        subject: cert.as_ref().map(|c| c.subject.clone()),
                        key_id: cert.and_then(|c| c.skid.as_deref().map(crate::cert::hex)),
                        source: f.display().to_string(),
                    });
                }
            }
            Err(err) => e.error = Some(format!("{}: {err}", f.display())),
        }
    }
    e.shas.sort();
    e.shas.dedup();
    Some(e)
}

/// What, in a registry's trust, would change a probe's outcome.
fn digest(t: &RegistryTrust, expected: &Option<Expected>, system: &str) -> String {
    let mut s = format!("{system}|{:?}|{:?}|", t.config_error, t.host_dir);
    for e in &t.endpoints {
        let cas: Vec<&str> = e.cas.iter().map(|c| c.cert.sha256.as_str()).collect();
        let client: Vec<String> = e
            .clients
            .iter()
            .filter_map(|c| c.chain.first())
            .map(|d| crate::cert::sha256_hex(d))
            .collect();
        let client = client.join(",");
        s.push_str(&format!(
            "{}:{}:{}:{client};",
            e.url(),
            e.skip_verify,
            cas.join(",")
        ));
    }
    for f in &t.findings {
        s.push_str(&format!("{}:{:?};", f.kind, f.path));
    }
    if let Some(e) = expected {
        s.push_str(&format!("exp:{:?}:{:?}", e.shas, e.error));
    }
    crate::cert::sha256_hex(s.as_bytes())
}
