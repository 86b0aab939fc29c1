//! Staging a corrected CA where the runtime reads it — only from an authenticated source, only
//! after it verifies the registry's live chain, atomically, confirmed by a re-probe, rolled back
//! when the confirmation fails.
//!
//! The steps are separate so each can be shown and tested: [`plan`] (where to write what, before →
//! after fingerprints), [`Plan::verify`] (the candidate bundle must make the live presented chain
//! verify under the runtime's rules), [`Plan::apply`] (the write, see [`write`]), and
//! [`Applied::confirm`] (re-probe with the trust as the runtime now reads it; restore on failure).
//!
//! Where to write, by the runtime's own rules:
//! - containerd, hosts.toml in effect: the `ca` file of the registry's own endpoint, which must lie
//!   inside the hosts directory (outside: refused);
//! - containerd, legacy layout (no usable hosts.toml): `ca.crt` in the host directory;
//! - containerd, no host directory: a new `HOST:PORT/` with `ca.crt` and a hosts.toml that has a
//!   `[host."https://HOST:PORT"]` table (containerd 1.6/1.7 ignore a hosts.toml without one);
//! - CRI-O/podman/Docker: `regtrust-ca.crt`, the file regtrust owns, in the registry's certs.d dir.
//!
//! Bundle policy: `keep` (default) writes the file's current certificates and the new CA, so a
//! registry mid-rotation keeps working either way; `replace` writes the new CA alone.

pub mod write;

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use crate::cert::Cert;
use crate::check;
use crate::diagnose::Reason;
use crate::offload;
use crate::outcome::RegistryOutcome;
use crate::pem;
use crate::probe::ProbeSettings;
use crate::trust::{
    self, ConfigError, Endpoint, RegistryTrust, Runtime, SystemRoots, TrustLoader, TrustSettings,
    TrustedCa,
};
use write::{Dir, WriteError};

/// Longest wait for another stager's lock on the certificate root (its verify and confirm
/// probes take at most a few probe timeouts); beyond it staging is refused.
pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(60);
/// How often a waiting stager tries the lock again.
const LOCK_POLL: std::time::Duration = std::time::Duration::from_millis(50);

/// The file regtrust owns in a containers/image or Docker certs.d directory.
pub const OWNED_CRT: &str = "regtrust-ca.crt";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum, Default)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// Keep the file's current certificates beside the new CA.
    #[default]
    Keep,
    /// Write the new CA alone.
    Replace,
}

/// Where the candidate CA comes from. Both are authenticated by the operator; there is no
/// trust-on-first-use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A PEM bundle the operator supplied (a file in regtrust's own filesystem, e.g. a mounted
    /// ConfigMap or Secret — not a node path).
    File(PathBuf),
    /// A certificate from the registry's own presented chain whose SHA-256 equals this pin.
    Pin(Vec<String>),
}

/// The outcome, as counted in `regtrust_stage_total{result}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Applied,
    Refused,
    RolledBack,
    Failed,
    DryRun,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Refused => "refused",
            Outcome::RolledBack => "rolled_back",
            Outcome::Failed => "failed",
            Outcome::DryRun => "dry_run",
        }
    }
}

/// Why staging did not go ahead. Every variant changes nothing on disk.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("the candidate file {path} cannot be used: {why}")]
    BadCandidate { path: String, why: String },
    #[error("no certificate the registry presented has SHA-256 {pins}: refusing (regtrust never trusts on first use)")]
    PinNotPresented { pins: String },
    #[error("the candidate does not make the registry's live chain verify ({reason}: {detail}): refusing to install it")]
    DoesNotVerify { reason: Reason, detail: String },
    #[error("the registry already verifies with the node's trust: nothing to stage")]
    AlreadyOk,
    #[error("the hosts.toml `ca` for {registry} is {path}, outside the runtime's certificate directory {hosts_dir}: refusing to write there")]
    CaOutsideHostsDir {
        registry: String,
        path: String,
        hosts_dir: String,
    },
    #[error("the hosts.toml for {registry} configures no `ca` for the registry's own endpoint: add `ca = \"ca.crt\"` to it, or stage by hand")]
    NoCaConfigured { registry: String },
    #[error("{registry} is served by {dir}, shared by every registry: create a directory for it instead of changing the default")]
    DefaultDir { registry: String, dir: String },
    #[error("containerd uses the deprecated CRI registry configuration (no config_path): regtrust only writes to a hosts directory")]
    NoHostsDir,
    #[error("another staging has held {path} for more than {}s: try again when it has finished", LOCK_WAIT.as_secs())]
    Locked { path: String },
    #[error("where to write changed while waiting for the lock ({before} → {after}): run again")]
    TargetMoved { before: String, after: String },
    #[error("{0}")]
    Write(#[from] WriteError),
    #[error("{0}")]
    Cancelled(#[from] offload::Cancelled),
}

/// What a staging attempt did, for the CLI, the logs and the agent.
#[derive(Debug, Clone, Serialize)]
pub struct StageReport {
    pub registry: String,
    pub runtime: Runtime,
    pub outcome: Outcome,
    pub message: String,
    /// Node path of the file written (or to be written).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Files and directories that would be created.
    pub creates: Vec<String>,
    /// SHA-256 of the certificates in the target before and after.
    pub before: Vec<String>,
    pub after: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup: Option<String>,
    /// The verdict with the candidate (before writing) and after writing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified: Option<Reason>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirmed: Option<Reason>,
}

/// The write to make.
#[derive(Debug, Clone)]
pub struct Plan {
    pub registry: String,
    settings: TrustSettings,
    /// Node path of the certificate directory root (hosts dir or certs.d root).
    root_node: PathBuf,
    /// Directories below the root, then the file name.
    dirs: Vec<String>,
    pub file: String,
    /// Directories to create (a suffix of `dirs`).
    create_dirs: usize,
    /// A hosts.toml to create beside the file (new containerd host directory).
    hosts_toml: Option<String>,
    pub current: Vec<Arc<Cert>>,
    pub bundle: Vec<Arc<Cert>>,
    /// The registry's endpoints as they will be after the write.
    after_trust: RegistryTrust,
    system: Arc<trust::SystemRoots>,
}

fn report(registry: &str, runtime: Runtime, outcome: Outcome, message: String) -> StageReport {
    StageReport {
        registry: registry.to_string(),
        runtime,
        outcome,
        message,
        target: None,
        creates: Vec::new(),
        before: Vec::new(),
        after: Vec::new(),
        backup: None,
        verified: None,
        confirmed: None,
    }
}

impl Plan {
    pub fn target_node_path(&self) -> PathBuf {
        let mut p = self.root_node.clone();
        for d in &self.dirs {
            p.push(d);
        }
        p.join(&self.file)
    }

    fn creates(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut p = self.root_node.clone();
        for (i, d) in self.dirs.iter().enumerate() {
            p.push(d);
            if i >= self.dirs.len() - self.create_dirs {
                out.push(format!("{}/", p.display()));
            }
        }
        if self.hosts_toml.is_some() {
            out.push(p.join("hosts.toml").display().to_string());
        }
        out
    }

    /// The report for this plan with `outcome`.
    pub fn report(&self, outcome: Outcome, message: String) -> StageReport {
        StageReport {
            target: Some(self.target_node_path().display().to_string()),
            creates: self.creates(),
            before: self.current.iter().map(|c| c.sha256.clone()).collect(),
            after: self.bundle.iter().map(|c| c.sha256.clone()).collect(),
            ..report(&self.registry, self.settings.runtime, outcome, message)
        }
    }

    /// The candidate bundle must make the registry's live chain verify (a fresh probe).
    pub async fn verify(&self, ps: &ProbeSettings) -> Result<RegistryOutcome, Refusal> {
        let sem = tokio::sync::Semaphore::new(4);
        let r = check::check_registry(self.after_trust.clone(), &self.system, ps, &sem).await;
        if r.ok() {
            Ok(r)
        } else {
            Err(Refusal::DoesNotVerify {
                reason: r.verdict.reason,
                detail: r.verdict.detail,
            })
        }
    }

    /// The certificate root, opened (created first when the plan creates directories).
    fn open_root(&self) -> Result<Dir, WriteError> {
        let hr = &self.settings.host_root;
        let root_real = hr.resolve(&self.root_node).map_err(|e| WriteError::Io {
            op: "resolve",
            path: self.root_node.clone(),
            errno: nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc_eio())),
        })?;
        if self.create_dirs > 0 && !root_real.exists() {
            std::fs::create_dir_all(&root_real).map_err(|e| WriteError::Io {
                op: "create directory",
                path: self.root_node.clone(),
                errno: nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc_eio())),
            })?;
        }
        Dir::open_root(&root_real)
    }

    /// Tries the lock of the certificate root once (blocking I/O, no waiting): `None` while
    /// another stager holds it. One lock per root covers every host directory in it, so the two
    /// names containerd accepts for one host (`HOST:PORT`, `HOST_PORT_`) cannot take two locks.
    pub fn try_lock_root(&self) -> Result<Option<write::Lock>, Refusal> {
        Ok(self.open_root()?.try_lock()?)
    }

    /// Writes the bundle (and creates what must be created). Nothing is written when an error
    /// occurs before the final rename; what was created is removed again. Callers that may run
    /// concurrently hold [`Plan::try_lock_root`]'s lock from planning to confirmation.
    pub fn apply(&self) -> Result<Applied, Refusal> {
        let mut dir = self.open_root()?;
        let mut created: Vec<(PathBuf, String)> = Vec::new();
        let first_created = self.dirs.len() - self.create_dirs;
        for (i, d) in self.dirs.iter().enumerate() {
            let parent_path = dir.path().to_path_buf();
            let next = dir.child(d, i >= first_created)?;
            if i >= first_created {
                created.push((parent_path, d.clone()));
            }
            dir = next;
        }
        let data: String = self
            .bundle
            .iter()
            .map(|c| pem::encode_cert(&c.der))
            .collect();
        let existed = dir.read(&self.file)?.is_some();
        let result = (|| {
            let backup = dir.replace(&self.file, data.as_bytes(), true)?;
            let mut wrote_toml = false;
            if let Some(toml) = &self.hosts_toml {
                if dir.read("hosts.toml")?.is_none() {
                    dir.replace("hosts.toml", toml.as_bytes(), false)?;
                    wrote_toml = true;
                }
            }
            Ok::<_, WriteError>((backup, wrote_toml))
        })();
        match result {
            Ok((backup, wrote_toml)) => Ok(Applied {
                plan: self.clone(),
                dir,
                backup,
                existed,
                wrote_toml,
                created,
            }),
            Err(e) => {
                if !existed {
                    let _ = dir.remove(&self.file);
                }
                remove_created(&created);
                Err(e.into())
            }
        }
    }
}

fn libc_eio() -> i32 {
    nix::errno::Errno::EIO as i32
}

fn remove_created(created: &[(PathBuf, String)]) {
    for (parent, name) in created.iter().rev() {
        if let Ok(p) = Dir::open_root(parent) {
            let _ = p.remove_dir(name);
        }
    }
}

/// A write that happened, and how to undo it.
pub struct Applied {
    plan: Plan,
    dir: Dir,
    backup: Option<String>,
    existed: bool,
    wrote_toml: bool,
    created: Vec<(PathBuf, String)>,
}

impl Applied {
    pub fn backup(&self) -> Option<&str> {
        self.backup.as_deref()
    }

    /// Re-probes with the trust as the runtime now reads it; restores the previous state when the
    /// registry still does not verify.
    pub async fn confirm(self, ps: &ProbeSettings) -> StageReport {
        let reprobe = async {
            let (trust, system) = read_trust(&self.plan.settings, &self.plan.registry).await?;
            let sem = tokio::sync::Semaphore::new(4);
            Ok::<_, Refusal>(check::check_registry(trust, &system, ps, &sem).await)
        };
        let after = reprobe.await;
        let mut rep = self.plan.report(Outcome::Applied, String::new());
        rep.backup = self.backup.as_ref().map(|b| {
            self.plan
                .target_node_path()
                .with_file_name(b)
                .display()
                .to_string()
        });
        match after {
            Ok(r) if r.ok() => {
                rep.confirmed = Some(Reason::Ok);
                rep.message = format!(
                    "installed; the registry verifies with the runtime's trust ({})",
                    r.verdict.detail
                );
                rep
            }
            other => {
                let (reason, detail) = match other {
                    Ok(r) => (r.verdict.reason, r.verdict.detail),
                    Err(e) => (Reason::ConfigError, e.to_string()),
                };
                rep.confirmed = Some(reason);
                let rolled_back = offload::blocking(move || self.rollback())
                    .await
                    .map_err(|e| WriteError::Cancelled(e.to_string()))
                    .and_then(|r| r);
                match rolled_back {
                    Ok(()) => {
                        rep.outcome = Outcome::RolledBack;
                        rep.message = format!("written, but the re-probe still fails ({reason}: {detail}); the previous state was restored");
                    }
                    Err(e) => {
                        rep.outcome = Outcome::Failed;
                        rep.message = format!("the re-probe fails ({reason}: {detail}) and restoring the previous state failed too: {e}");
                    }
                }
                rep
            }
        }
    }

    fn rollback(&self) -> Result<(), WriteError> {
        match (&self.backup, self.existed) {
            (Some(b), _) => {
                // A vanished backup must not become an empty CA file: leave the current one.
                let Some(old) = self.dir.read(b)? else {
                    return Err(WriteError::BackupMissing {
                        path: self.dir.path().join(b),
                        target: self.dir.path().join(&self.plan.file),
                    });
                };
                self.dir.replace(&self.plan.file, &old, false)?;
            }
            (None, false) => self.dir.remove(&self.plan.file)?,
            (None, true) => {}
        }
        if self.wrote_toml {
            self.dir.remove("hosts.toml")?;
        }
        remove_created(&self.created);
        Ok(())
    }
}

/// Reads the candidate certificates.
pub fn candidates(source: &Source, current: &RegistryOutcome) -> Result<Vec<Arc<Cert>>, Refusal> {
    match source {
        Source::File(path) => {
            let data = crate::hostroot::read_bounded(path).map_err(|e| Refusal::BadCandidate {
                path: path.display().to_string(),
                why: e.to_string(),
            })?;
            let certs: Vec<Arc<Cert>> = pem::scan_certs(&data)
                .certs
                .iter()
                .filter_map(|d| Cert::from_der(d).ok())
                .map(Arc::new)
                .collect();
            if certs.is_empty() {
                return Err(Refusal::BadCandidate {
                    path: path.display().to_string(),
                    why: "it holds no PEM certificate".into(),
                });
            }
            Ok(certs)
        }
        Source::Pin(pins) => {
            let found: Vec<Arc<Cert>> = current
                .endpoints
                .iter()
                .flat_map(|e| e.presented().iter())
                .filter(|c| pins.contains(&c.sha256))
                .cloned()
                .collect();
            let mut seen = std::collections::HashSet::new();
            let found: Vec<_> = found
                .into_iter()
                .filter(|c| seen.insert(c.sha256.clone()))
                .collect();
            if found.is_empty() {
                Err(Refusal::PinNotPresented {
                    pins: pins.join(", "),
                })
            } else {
                Ok(found)
            }
        }
    }
}

/// Is `p` (a node path) inside `root` (a node path), lexically?
fn relative_inside(p: &Path, root: &Path) -> Option<Vec<String>> {
    let norm = |p: &Path| {
        let mut out: Vec<String> = Vec::new();
        for c in p.components() {
            match c {
                Component::Normal(s) => out.push(s.to_string_lossy().into_owned()),
                Component::ParentDir => {
                    out.pop();
                }
                _ => {}
            }
        }
        out
    };
    let (p, r) = (norm(p), norm(root));
    if p.len() > r.len() && p[..r.len()] == r[..] {
        Some(p[r.len()..].to_vec())
    } else {
        None
    }
}

/// The registry's own endpoints (mirrors have their own CAs).
fn own_endpoints<'a>(t: &'a RegistryTrust, registry: &str) -> Vec<&'a Endpoint> {
    let own: Vec<&Endpoint> = t
        .endpoints
        .iter()
        .filter(|e| e.authority == registry)
        .collect();
    if own.is_empty() {
        t.endpoints.iter().collect()
    } else {
        own
    }
}

/// Where the bundle goes: a directory path below a hosts/certs root, and what must be created.
struct Target {
    /// Node path of the hosts or certs.d root.
    root_node: PathBuf,
    /// Directories below it.
    dirs: Vec<String>,
    file: String,
    /// How many of `dirs` must be created.
    create_dirs: usize,
    /// A hosts.toml to create beside the file.
    hosts_toml: Option<String>,
}

impl Target {
    fn node_path(&self) -> PathBuf {
        let mut p = self.root_node.clone();
        p.extend(&self.dirs);
        p.join(&self.file)
    }
}

/// Plans staging `candidates` for `registry`: where, and the bundle before → after.
pub fn plan(
    settings: &TrustSettings,
    registry: &str,
    cands: Vec<Arc<Cert>>,
    policy: Policy,
) -> Result<Plan, Refusal> {
    let loader = TrustLoader::new(settings)?;
    let system = Arc::new(trust::system::load(&settings.host_root));
    let t = loader.registry(registry);
    let target = match settings.runtime {
        Runtime::Containerd => containerd_target(&loader, &t, registry)?,
        rt => certsd_target(rt, &t, registry),
    };
    let current = read_current(&settings.host_root, &target)?;
    let mut bundle: Vec<Arc<Cert>> = if policy == Policy::Keep {
        current.clone()
    } else {
        Vec::new()
    };
    for c in cands {
        if !bundle.iter().any(|b| b.sha256 == c.sha256) {
            bundle.push(c);
        }
    }
    let after_trust = trust_after(t, registry, &target.node_path(), &bundle);
    Ok(Plan {
        registry: registry.to_string(),
        settings: settings.clone(),
        root_node: target.root_node,
        dirs: target.dirs,
        file: target.file,
        create_dirs: target.create_dirs,
        hosts_toml: target.hosts_toml,
        current,
        bundle,
        after_trust,
        system,
    })
}

/// containerd: the `ca` of the registry's own endpoint when hosts.toml is in effect (inside the
/// hosts dir), else `ca.crt` in the host directory; a new `HOST:PORT/` with a hosts.toml when
/// there is none.
fn containerd_target(
    loader: &TrustLoader,
    t: &RegistryTrust,
    registry: &str,
) -> Result<Target, Refusal> {
    let layout = loader.containerd_layout().ok_or(Refusal::NoHostsDir)?;
    let Some(first_root) = layout.hosts_dirs.first().cloned() else {
        return Err(Refusal::NoHostsDir);
    };
    let target = |root_node, dirs, file: &str| Target {
        root_node,
        dirs,
        file: file.into(),
        create_dirs: 0,
        hosts_toml: None,
    };
    let Some(dir) = &t.host_dir else {
        let toml = format!(
            "# Written by regtrust stage.\nserver = \"https://{registry}\"\nca = \"ca.crt\"\n\n[host.\"https://{registry}\"]\n  capabilities = [\"pull\", \"resolve\"]\n  ca = \"ca.crt\"\n"
        );
        return Ok(Target {
            create_dirs: 1,
            hosts_toml: Some(toml),
            ..target(first_root, vec![registry.to_string()], "ca.crt")
        });
    };
    let dir = PathBuf::from(dir);
    if dir.file_name().is_some_and(|n| n == "_default") {
        return Err(Refusal::DefaultDir {
            registry: registry.into(),
            dir: dir.display().to_string(),
        });
    }
    let root = layout
        .hosts_dirs
        .iter()
        .find(|r| relative_inside(&dir, r).is_some())
        .cloned()
        .unwrap_or(first_root);
    let hosts_toml_in_effect = t
        .endpoints
        .iter()
        .any(|e| e.origin.starts_with("hosts.toml"));
    if !hosts_toml_in_effect {
        let rel = relative_inside(&dir, &root).unwrap_or_default();
        return Ok(target(root, rel, "ca.crt"));
    }
    let own = own_endpoints(t, registry);
    let Some(ca) = own.iter().flat_map(|e| e.ca_files.iter()).next().cloned() else {
        return Err(Refusal::NoCaConfigured {
            registry: registry.into(),
        });
    };
    let Some(mut rel) = relative_inside(&ca, &root) else {
        return Err(Refusal::CaOutsideHostsDir {
            registry: registry.into(),
            path: ca.display().to_string(),
            hosts_dir: root.display().to_string(),
        });
    };
    let file = rel.pop().unwrap_or_default();
    Ok(target(root, rel, &file))
}

/// CRI-O/podman/Docker: `regtrust-ca.crt` in the registry's certs.d directory (created if need be).
fn certsd_target(rt: Runtime, t: &RegistryTrust, registry: &str) -> Target {
    let base = if rt == Runtime::Docker {
        trust::certsd::DOCKER_CERT_DIRS[0]
    } else {
        "/etc/containers/certs.d"
    };
    let (root_node, name, create_dirs) = match &t.host_dir {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            let root = dir
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from(base));
            let name = dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            (root, name, 0)
        }
        None => (PathBuf::from(base), registry.to_string(), 1),
    };
    Target {
        root_node,
        dirs: vec![name],
        file: OWNED_CRT.into(),
        create_dirs,
        hosts_toml: None,
    }
}

/// The target's current certificates, read without following symlinks beneath the root; none when
/// it does not exist yet.
fn read_current(
    hr: &crate::hostroot::HostRoot,
    target: &Target,
) -> Result<Vec<Arc<Cert>>, Refusal> {
    let Ok(root_real) = hr.resolve(&target.root_node) else {
        return Ok(Vec::new());
    };
    let Ok(mut d) = Dir::open_root(&root_real) else {
        return Ok(Vec::new());
    };
    for name in &target.dirs {
        match d.child(name, false) {
            Ok(c) => d = c,
            Err(WriteError::Io {
                errno: nix::errno::Errno::ENOENT,
                ..
            }) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        }
    }
    let Some(data) = d.read(&target.file)? else {
        return Ok(Vec::new());
    };
    Ok(pem::scan_certs(&data)
        .certs
        .iter()
        .filter_map(|c| Cert::from_der(c).ok())
        .map(Arc::new)
        .collect())
}

/// The registry's own endpoints as they will be: other CA files unchanged, the target's bundle.
fn trust_after(
    t: RegistryTrust,
    registry: &str,
    target: &Path,
    bundle: &[Arc<Cert>],
) -> RegistryTrust {
    let target_s = target.display().to_string();
    let mut own: Vec<Endpoint> = own_endpoints(&t, registry).into_iter().cloned().collect();
    if own.is_empty() || t.host_dir.is_none() {
        own = vec![Endpoint {
            ca_files: vec![target.to_path_buf()],
            ..Endpoint::default_for("https", registry, "staged")
        }];
    }
    for ep in &mut own {
        ep.cas.retain(|c| *c.source != *target_s);
        ep.cas.extend(bundle.iter().map(|c| TrustedCa {
            cert: c.clone(),
            source: target_s.as_str().into(),
        }));
    }
    RegistryTrust {
        endpoints: own,
        config_error: None,
        findings: Vec::new(),
        ..t
    }
}

/// The registry's trust and the system roots as the runtime reads them now (file reads, so on the
/// blocking pool).
async fn read_trust(
    settings: &TrustSettings,
    registry: &str,
) -> Result<(RegistryTrust, SystemRoots), Refusal> {
    let (settings, registry) = (settings.clone(), registry.to_string());
    offload::blocking(move || {
        let loader = TrustLoader::new(&settings)?;
        Ok((
            loader.registry(&registry),
            trust::system::load(&settings.host_root),
        ))
    })
    .await?
}

/// The whole flow: probe, choose candidates, plan, verify, and with `apply` — under the lock of
/// the certificate root — plan again, verify, write and confirm.
pub async fn run(
    settings: &TrustSettings,
    registry: &str,
    source: &Source,
    policy: Policy,
    apply: bool,
    ps: &ProbeSettings,
) -> StageReport {
    let rt = settings.runtime;
    let refused = |e: Refusal| report(registry, rt, Outcome::Refused, e.to_string());
    let current = match read_trust(settings, registry).await {
        Ok((trust, system)) => {
            let sem = tokio::sync::Semaphore::new(4);
            check::check_registry(trust, &system, ps, &sem).await
        }
        Err(e) => return refused(e),
    };
    if current.ok() {
        return refused(Refusal::AlreadyOk);
    }
    // Reading the candidate file is a file read: off the event loop.
    let source2 = source.clone();
    let cands = match offload::blocking(move || candidates(&source2, &current)).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return refused(e),
        Err(e) => return refused(e.into()),
    };
    let plan = match plan_off_loop(settings, registry, cands.clone(), policy).await {
        Ok(p) => p,
        Err(e) => return refused(e),
    };
    // Verified before anything is written, even the lock file: a refusal changes no byte.
    let v = match verified(&plan, ps).await {
        Ok(v) => v,
        Err(rep) => return *rep,
    };
    if !apply {
        let mut rep = plan.report(
            Outcome::DryRun,
            format!(
                "the candidate verifies the live chain ({}); run again with --apply to write",
                v.verdict.detail
            ),
        );
        rep.verified = Some(Reason::Ok);
        return rep;
    }
    let _lock = match lock(&plan).await {
        Ok(l) => l,
        Err(e @ Refusal::Write(_)) => {
            let mut rep = plan.report(Outcome::Failed, e.to_string());
            rep.verified = Some(Reason::Ok);
            return rep;
        }
        Err(e) => return plan.report(Outcome::Refused, e.to_string()),
    };
    // Under the lock: the bundle as it is now, after any stager that held the lock before us.
    let again = match plan_off_loop(settings, registry, cands, policy).await {
        Ok(p) if p.target_node_path() == plan.target_node_path() => p,
        Ok(p) => {
            let moved = Refusal::TargetMoved {
                before: plan.target_node_path().display().to_string(),
                after: p.target_node_path().display().to_string(),
            };
            return p.report(Outcome::Refused, moved.to_string());
        }
        Err(e) => return refused(e),
    };
    if fingerprints(&again.bundle) != fingerprints(&plan.bundle) {
        if let Err(rep) = verified(&again, ps).await {
            return *rep;
        }
    }
    apply_and_confirm(&again, ps).await
}

fn fingerprints(certs: &[Arc<Cert>]) -> Vec<&str> {
    certs.iter().map(|c| c.sha256.as_str()).collect()
}

/// Plans on the blocking pool (it reads the node's files).
async fn plan_off_loop(
    settings: &TrustSettings,
    registry: &str,
    cands: Vec<Arc<Cert>>,
    policy: Policy,
) -> Result<Plan, Refusal> {
    let (settings, registry) = (settings.clone(), registry.to_string());
    offload::blocking(move || plan(&settings, &registry, cands, policy)).await?
}

/// The plan's verification, or the refusal's report.
async fn verified(plan: &Plan, ps: &ProbeSettings) -> Result<RegistryOutcome, Box<StageReport>> {
    plan.verify(ps).await.map_err(|e| {
        let mut rep = plan.report(Outcome::Refused, e.to_string());
        if let Refusal::DoesNotVerify { reason, .. } = e {
            rep.verified = Some(reason);
        }
        Box::new(rep)
    })
}

/// Takes the lock of the plan's certificate root (created if need be), waiting at most
/// [`LOCK_WAIT`] for another stager, without holding a thread while waiting.
async fn lock(plan: &Plan) -> Result<write::Lock, Refusal> {
    let waited = tokio::time::Instant::now();
    loop {
        let p = plan.clone();
        if let Some(l) = offload::blocking(move || p.try_lock_root()).await?? {
            return Ok(l);
        }
        if waited.elapsed() >= LOCK_WAIT {
            return Err(Refusal::Locked {
                path: plan.root_node.join(write::LOCK_FILE).display().to_string(),
            });
        }
        tokio::time::sleep(LOCK_POLL).await;
    }
}

/// Writes, then confirms (rolling back on failure); the caller holds the lock.
async fn apply_and_confirm(plan: &Plan, ps: &ProbeSettings) -> StageReport {
    let to_apply = plan.clone();
    let applied = match offload::blocking(move || to_apply.apply())
        .await
        .map_err(Refusal::from)
        .and_then(|r| r)
    {
        Ok(a) => a,
        Err(e @ Refusal::Write(_)) => {
            let mut rep = plan.report(Outcome::Failed, e.to_string());
            rep.verified = Some(Reason::Ok);
            return rep;
        }
        Err(e) => return plan.report(Outcome::Refused, e.to_string()),
    };
    let mut rep = applied.confirm(ps).await;
    rep.verified = Some(Reason::Ok);
    rep
}

#[cfg(test)]
mod tests {
    use super::relative_inside;
    use std::path::Path;

    #[test]
    fn inside_is_lexical_and_dotdot_aware() {
        let root = Path::new("/etc/containerd/certs.d");
        assert_eq!(
            relative_inside(Path::new("/etc/containerd/certs.d/r/ca.crt"), root),
            Some(vec!["r".into(), "ca.crt".into()])
        );
        assert_eq!(
            relative_inside(Path::new("/etc/containerd/certs.d/r/../../x.crt"), root),
            None
        );
        assert_eq!(relative_inside(Path::new("/opt/ca.crt"), root), None);
        assert_eq!(relative_inside(root, root), None);
    }
}
