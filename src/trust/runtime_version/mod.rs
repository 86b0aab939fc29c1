//! Which runtime, which Go: the runtime's own version and the Go it was built with, because Go's
//! verdicts and words change between releases ([`GoVersion`]).
//!
//! Detection, in order: the running runtime process (found by name under the proc dir — the
//! node's with hostPID — and read through `/proc/PID/exe`, which opens the binary the process
//! runs even after it was replaced on disk), then the binary under the host root (the path the
//! process runs, then the usual install paths). From the binary: the Go version from its build
//! info ([`buildinfo`]), the runtime version from the `-X …/version.Version=` the build passed
//! (recorded in the build info's `-ldflags`, or the variable's symbol when the binary keeps its
//! symbols, as Debian's containerd does), else the main module's version.
//!
//! The settings `runtime_version` and `go_version` replace what is detected. With no Go version
//! known, the newest modelled release is assumed and a finding says so. Every read goes through
//! [`crate::hostroot`], bounded; callers on the event loop run [`detect`] through
//! [`crate::offload::blocking`].

pub mod buildinfo;
pub mod elf;

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{Finding, FindingKind, Runtime};
use crate::hostroot::{self, Follow, HostRoot, RegularFile};
use crate::verify::GoVersion;

/// Where a version came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The `runtime_version` / `go_version` setting (or flag).
    Config,
    /// The running runtime process's binary (`/proc/PID/exe`).
    Process,
    /// The runtime's binary under the host root.
    Binary,
    /// Nothing known: the newest modelled Go release.
    Default,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Config => "config",
            Source::Process => "process",
            Source::Binary => "binary",
            Source::Default => "default",
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What was used for the verdicts, and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuntimeInfo {
    pub runtime: Runtime,
    /// The runtime's own version (`1.6.20~ds1`, `v2.1.3`), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_source: Option<Source>,
    /// The Go release whose rules the verdicts follow.
    #[serde(serialize_with = "as_string")]
    pub go_version: GoVersion,
    /// Where `go_version` came from.
    pub source: Source,
    /// The binary read (`/proc/PID/exe (/usr/bin/containerd)` or a node path), when one was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub binary: Option<String>,
    /// The GODEBUG defaults the binary's build recorded (`DefaultGODEBUG`, go1.21 and later:
    /// from its go.mod's `go` line and `godebug` directives), e.g. `tlsrsakex=1` — they change
    /// what its TLS client offers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_godebug: Option<String>,
    /// `GODEBUG` in the running process's environment (`/proc/PID/environ`), which overrides the
    /// defaults key by key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env_godebug: Option<String>,
}

fn as_string<S: serde::Serializer>(v: &GoVersion, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

/// The settings that replace detection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    pub runtime_version: Option<String>,
    pub go_version: Option<GoVersion>,
    /// The runtime's GODEBUG, replacing its process environment's (`env_godebug`).
    pub godebug: Option<String>,
}

/// Largest `/proc/PID/stat` read.
const MAX_STAT_BYTES: u64 = 4096;
/// Largest `/proc/PID/environ` read (Linux caps one argument or variable at 128 KiB).
const MAX_ENVIRON_BYTES: u64 = 256 * 1024;

/// Where each runtime's daemon is usually installed (node paths), after the path its process runs.
fn install_paths(rt: Runtime) -> &'static [&'static str] {
    match rt {
        Runtime::Containerd => &[
            "/usr/bin/containerd",
            "/usr/local/bin/containerd",
            "/bin/containerd",
            "/opt/bin/containerd",
        ],
        Runtime::Crio => &["/usr/bin/crio", "/usr/local/bin/crio", "/bin/crio"],
        Runtime::Docker => &["/usr/bin/dockerd", "/usr/local/bin/dockerd", "/bin/dockerd"],
    }
}

/// The variables a runtime's build sets with `-X` to its version.
fn version_vars(rt: Runtime) -> &'static [&'static str] {
    match rt {
        Runtime::Containerd => &[
            "github.com/containerd/containerd/v2/version.Version",
            "github.com/containerd/containerd/version.Version",
        ],
        Runtime::Crio => &["github.com/cri-o/cri-o/internal/version.Version"],
        Runtime::Docker => &["github.com/docker/docker/dockerversion.Version"],
    }
}

/// The daemon's process name (`comm`).
pub fn process_name(rt: Runtime) -> &'static str {
    match rt {
        Runtime::Containerd => "containerd",
        Runtime::Crio => "crio",
        Runtime::Docker => "dockerd",
    }
}

/// The lowest PID whose `comm` is `comm` under `proc_dir` (the daemon, not a later child).
pub fn find_pid(proc_dir: &Path, comm: &str) -> Option<u32> {
    let entries = std::fs::read_dir(proc_dir).ok()?;
    let mut pids: Vec<u32> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
        .collect();
    pids.sort_unstable();
    pids.into_iter().find(|pid| {
        let stat = hostroot::read_regular(
            &proc_dir.join(pid.to_string()).join("stat"),
            MAX_STAT_BYTES,
            Follow::Yes,
        );
        let Ok(stat) = stat else { return false };
        let stat = String::from_utf8_lossy(&stat);
        // "pid (comm) state …": comm may hold spaces and parentheses; cut at the last ')'.
        matches!((stat.find('('), stat.rfind(')')), (Some(o), Some(c)) if o < c && &stat[o + 1..c] == comm)
    })
}

/// `GODEBUG` from a process's environment (NUL-separated `K=V`), when it is readable and set.
/// Only that variable is kept: the rest of a runtime's environment is none of regtrust's business.
fn environ_godebug(path: &Path) -> Option<String> {
    let env = hostroot::read_regular(path, MAX_ENVIRON_BYTES, Follow::Yes).ok()?;
    // The first one, as Go's `syscall` environment keeps the first mention of a key.
    env.split(|b| *b == 0)
        .find_map(|kv| kv.strip_prefix(b"GODEBUG="))
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// What one binary said.
struct Read {
    go: Option<GoVersion>,
    go_raw: Option<String>,
    version: Option<String>,
    default_godebug: Option<String>,
    env_godebug: Option<String>,
}

fn read_binary(file: &RegularFile, rt: Runtime) -> Result<Read, String> {
    let Some(info) = buildinfo::read(file)? else {
        return Err("not a Go binary (no build info)".into());
    };
    let from_flags = version_vars(rt).iter().find_map(|v| info.ldflag_x(v));
    let version = match from_flags {
        Some(v) => Some(v),
        None => symbol_version(file, rt)?.or_else(|| info.main_version.clone()),
    };
    Ok(Read {
        go: GoVersion::parse(&info.go_version),
        default_godebug: info.setting("DefaultGODEBUG").map(str::to_string),
        env_godebug: None,
        go_raw: Some(info.go_version),
        version,
    })
}

/// The version string variable, read through its symbol when the binary keeps symbols.
fn symbol_version(file: &RegularFile, rt: Runtime) -> Result<Option<String>, String> {
    let Some(elf) = elf::Elf::parse(file)? else {
        return Ok(None);
    };
    for var in version_vars(rt) {
        if let Some(addr) = elf.symbol(var)? {
            let s = buildinfo::read_go_string(&elf, addr)?;
            let s = String::from_utf8_lossy(&s).trim().to_string();
            if !s.is_empty() && s.len() <= 128 {
                return Ok(Some(s));
            }
        }
    }
    Ok(None)
}

/// The process's binary, then the binary on disk. Returns the first that reads, with its
/// source and a description; the errors of those that did not, for a finding.
fn read_runtime(
    hr: &HostRoot,
    proc_dir: &Path,
    rt: Runtime,
) -> (Option<(Read, Source, String)>, Vec<String>) {
    let mut errors = Vec::new();
    let mut node_paths: Vec<PathBuf> = Vec::new();
    if let Some(pid) = find_pid(proc_dir, process_name(rt)) {
        let exe = proc_dir.join(pid.to_string()).join("exe");
        let target = std::fs::read_link(&exe).ok();
        let shown = match &target {
            Some(t) => format!("{} ({})", exe.display(), t.display()),
            None => exe.display().to_string(),
        };
        match RegularFile::open(&exe, Follow::Yes)
            .map_err(|e| e.to_string())
            .and_then(|f| read_binary(&f, rt))
        {
            Ok(r) => {
                let env_godebug = environ_godebug(&proc_dir.join(pid.to_string()).join("environ"));
                return (
                    Some((Read { env_godebug, ..r }, Source::Process, shown)),
                    errors,
                );
            }
            Err(e) => errors.push(format!("{shown}: {e}")),
        }
        if let Some(t) = target.filter(|t| !t.to_string_lossy().ends_with(" (deleted)")) {
            node_paths.push(t);
        }
    }
    node_paths.extend(install_paths(rt).iter().map(PathBuf::from));
    for p in node_paths {
        match hr.open_regular(&p) {
            Ok(f) => match read_binary(&f, rt) {
                Ok(r) => return (Some((r, Source::Binary, p.display().to_string())), errors),
                Err(e) => errors.push(format!("{}: {e}", p.display())),
            },
            Err(e) if e.is_not_found() => {}
            Err(e) => errors.push(format!("{}: {e}", p.display())),
        }
    }
    (None, errors)
}

/// Detects the runtime's version and Go version (see the module documentation). Blocking.
pub fn detect(
    hr: &HostRoot,
    proc_dir: &Path,
    rt: Runtime,
    overrides: &Overrides,
) -> (RuntimeInfo, Vec<Finding>) {
    let need_read = overrides.go_version.is_none() || overrides.runtime_version.is_none();
    let (read, errors) = if need_read {
        read_runtime(hr, proc_dir, rt)
    } else {
        (None, Vec::new())
    };
    decide(rt, overrides, read, errors)
}

/// What the settings alone give when nothing could be read (`why` says what failed).
pub fn undetected(rt: Runtime, overrides: &Overrides, why: String) -> (RuntimeInfo, Vec<Finding>) {
    decide(rt, overrides, None, vec![why])
}

fn decide(
    rt: Runtime,
    overrides: &Overrides,
    read: Option<(Read, Source, String)>,
    errors: Vec<String>,
) -> (RuntimeInfo, Vec<Finding>) {
    let mut findings = Vec::new();
    let (version, version_source) = match (&overrides.runtime_version, &read) {
        (Some(v), _) => (Some(v.clone()), Some(Source::Config)),
        (None, Some((r, src, _))) if r.version.is_some() => (r.version.clone(), Some(*src)),
        _ => (None, None),
    };
    let detected = read
        .as_ref()
        .and_then(|(r, src, _)| r.go.map(|g| (g, *src)));
    let (go, source) = match (overrides.go_version, detected) {
        (Some(g), _) => (g, Source::Config),
        (None, Some((g, src))) => (g, src),
        (None, None) => (GoVersion::NEWEST, Source::Default),
    };
    let binary = read.as_ref().map(|(_, _, shown)| shown.clone());
    let default_godebug = read
        .as_ref()
        .and_then(|(r, _, _)| r.default_godebug.clone());
    let env_godebug = overrides
        .godebug
        .clone()
        .or_else(|| read.as_ref().and_then(|(r, _, _)| r.env_godebug.clone()));
    if source == Source::Default {
        let why = match (&read, errors.is_empty()) {
            (Some((r, _, shown)), _) => format!(
                "{shown} records Go version {:?}, which regtrust cannot read",
                r.go_raw.clone().unwrap_or_default()
            ),
            (None, true) => format!(
                "no {} process under the proc dir and no {} binary under the host root",
                process_name(rt),
                process_name(rt)
            ),
            (None, false) => errors.join("; "),
        };
        findings.push(Finding::new(
            FindingKind::RuntimeGoUnknown,
            None,
            format!(
                "the Go version {} was built with is unknown ({why}): verdicts follow {go}, the newest release regtrust models; set go_version (or --go-version) to the runtime's Go",
                process_name(rt)
            ),
        ));
    } else if !go.is_modelled() {
        findings.push(Finding::new(
            FindingKind::RuntimeGoNotModelled,
            None,
            format!(
                "{} is built with {go}, outside the Go releases regtrust models ({} to {}): verdicts follow the nearest modelled release's rules",
                process_name(rt),
                GoVersion::OLDEST_MODELLED,
                GoVersion::NEWEST
            ),
        ));
    }
    let info = RuntimeInfo {
        runtime: rt,
        version,
        version_source,
        go_version: go,
        source,
        binary,
        default_godebug,
        env_godebug,
    };
    (info, findings)
}

#[cfg(test)]
mod tests;
