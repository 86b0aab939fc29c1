//! Runtime staleness: Go loads the system root pool once per process, so a system bundle changed
//! after containerd (or CRI-O, dockerd) started is invisible to it until it restarts. This compares
//! the runtime process's start time (from /proc — the node's, which a DaemonSet sees with hostPID)
//! with the bundle's modification time (under the host root).

use std::path::{Path, PathBuf};

use crate::hostroot::HostRoot;
use crate::trust::runtime_version::{self, RuntimeInfo};
use crate::trust::Runtime;

/// The process name (`comm`) of each runtime's daemon.
pub(crate) fn process_name(rt: Runtime) -> &'static str {
    match rt {
        Runtime::Containerd => "containerd",
        Runtime::Crio => "crio",
        Runtime::Docker => "dockerd",
    }
}

/// Start time (Unix seconds) of the oldest process named `comm` under `proc_dir`.
pub(crate) fn process_start(proc_dir: &Path, comm: &str) -> Option<i64> {
    let btime = std::fs::read_to_string(proc_dir.join("stat"))
        .ok()?
        .lines()
        .find_map(|l| {
            l.strip_prefix("btime ")
                .and_then(|v| v.trim().parse::<i64>().ok())
        })?;
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|t| *t > 0)? as i64;
    let mut oldest: Option<i64> = None;
    for entry in std::fs::read_dir(proc_dir).ok()?.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid ..." — comm may contain spaces and parentheses: split at the last ')'.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        if &stat[open + 1..close] != comm {
            continue;
        }
        // Fields after ')' start at field 3 (state); starttime is field 22.
        let Some(start_ticks) = stat[close + 1..]
            .split_whitespace()
            .nth(19)
            .and_then(|v| v.parse::<i64>().ok())
        else {
            continue;
        };
        let start = btime + start_ticks / ticks;
        oldest = Some(oldest.map_or(start, |o: i64| o.min(start)));
    }
    oldest
}

/// The runtime's version and Go version (detected, or from the settings), on the blocking pool;
/// findings are logged. The agent detects once at start.
pub(crate) async fn detect_version(cfg: &crate::config::AgentConfig) -> RuntimeInfo {
    let (hr, proc_dir, rt, o) = (
        HostRoot::new(&cfg.host_root),
        cfg.proc_dir.clone(),
        cfg.runtime,
        cfg.version_overrides(),
    );
    let detect = move || runtime_version::detect(&hr, &proc_dir, rt, &o);
    let (info, findings) = match crate::offload::blocking(detect).await {
        Ok(found) => found,
        Err(e) => runtime_version::undetected(cfg.runtime, &cfg.version_overrides(), e.to_string()),
    };
    for f in &findings {
        tracing::warn!(kind = f.kind.as_str(), "{}", f.message);
    }
    tracing::info!(
        runtime = info.runtime.as_str(),
        version = info.version.as_deref().unwrap_or("unknown"),
        go_version = %info.go_version,
        source = info.source.as_str(),
        "verdicts follow this runtime's Go"
    );
    info
}

/// Latest modification time (Unix seconds) of the system trust files and directories.
pub(crate) fn bundle_mtime(hr: &HostRoot, files: &[PathBuf]) -> Option<i64> {
    files
        .iter()
        .filter_map(|f| hr.metadata(f).ok())
        .filter_map(|m| m.modified().ok())
        .filter_map(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs() as i64)
        .max()
}

/// `Some(true)` when the bundle changed after the runtime started; `None` when either is unknown.
pub(crate) fn stale(
    hr: &HostRoot,
    files: &[PathBuf],
    proc_dir: &Path,
    rt: Runtime,
) -> Option<bool> {
    let started = process_start(proc_dir, process_name(rt))?;
    let changed = bundle_mtime(hr, files)?;
    Some(changed > started)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_this_test_process_start() {
        let comm = std::fs::read_to_string("/proc/self/comm").unwrap();
        let start = process_start(Path::new("/proc"), comm.trim()).expect("own process found");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        assert!(
            start <= now && start > now - 24 * 3600,
            "start {start} vs now {now}"
        );
        assert_eq!(
            process_start(Path::new("/proc"), "no-such-process-name"),
            None
        );
    }
}
