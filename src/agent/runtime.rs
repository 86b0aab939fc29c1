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

/// The runtime process last found: its pid and start time (Unix seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Found {
    pub pid: u32,
    pub start: i64,
}

/// The oldest process named `comm` under `proc_dir`. While `last` still runs (same pid, name and
/// start) it is still the oldest — anything started since is younger — so one `stat` file is
/// read instead of every process's: the agent asks every interval, and a node runs hundreds of
/// processes. Otherwise every pid's `comm` is read (cheaper for the kernel than `stat`), and
/// `stat` only for the pids with that name.
pub(crate) fn find_process(proc_dir: &Path, comm: &str, last: Option<Found>) -> Option<Found> {
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
    let started = |pid: u32| -> Option<i64> {
        let stat = std::fs::read_to_string(proc_dir.join(pid.to_string()).join("stat")).ok()?;
        // "pid (comm) state ppid ..." — comm may contain spaces and parentheses: split at the last ')'.
        let (open, close) = (stat.find('(')?, stat.rfind(')')?);
        if stat.get(open + 1..close)? != comm {
            return None;
        }
        // Fields after ')' start at field 3 (state); starttime is field 22.
        let start_ticks = stat[close + 1..]
            .split_whitespace()
            .nth(19)?
            .parse::<i64>()
            .ok()?;
        Some(btime + start_ticks / ticks)
    };
    if let Some(last) = last {
        if started(last.pid) == Some(last.start) {
            return Some(last);
        }
    }
    let mut oldest: Option<Found> = None;
    for entry in std::fs::read_dir(proc_dir).ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let named = std::fs::read(entry.path().join("comm"))
            .is_ok_and(|c| c.strip_suffix(b"\n").unwrap_or(&c) == comm.as_bytes());
        if !named {
            continue;
        }
        if let Some(start) = started(pid) {
            if oldest.is_none_or(|o| start < o.start) {
                oldest = Some(Found { pid, start });
            }
        }
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
///
/// `last` is the runtime process found the previous time ([`find_process`]); the one found now
/// is returned for the next call.
pub(crate) fn stale(
    hr: &HostRoot,
    files: &[PathBuf],
    proc_dir: &Path,
    rt: Runtime,
    last: Option<Found>,
) -> (Option<bool>, Option<Found>) {
    let found = find_process(proc_dir, process_name(rt), last);
    let stale = found
        .zip(bundle_mtime(hr, files))
        .map(|(p, changed)| changed > p.start);
    (stale, found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process_start(proc_dir: &Path, comm: &str) -> Option<i64> {
        find_process(proc_dir, comm, None).map(|f| f.start)
    }

    /// A /proc of our own: btime 1000, and each (pid, comm, starttime in ticks).
    fn fake_proc(procs: &[(u32, &str, i64)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("stat"), "cpu  1 2 3\nbtime 1000\n").unwrap();
        for (pid, comm, start) in procs {
            add(d.path(), *pid, comm, *start);
        }
        d
    }

    fn add(proc: &Path, pid: u32, comm: &str, start: i64) {
        let dir = proc.join(pid.to_string());
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("comm"), format!("{comm}\n")).unwrap();
        let fields = format!("{pid} ({comm}) S 1 {}{start} 0 0", "0 ".repeat(17));
        std::fs::write(dir.join("stat"), fields).unwrap();
    }

    #[test]
    fn the_oldest_runtime_process_is_found_then_followed_by_its_pid() {
        let tick = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .unwrap()
            .unwrap() as i64;
        let found = |pid, start| Some(Found { pid, start });
        let proc = fake_proc(&[
            (10, "containerd", 50 * tick),
            (20, "containerd", 30 * tick),
            (30, "sshd", 1),
        ]);
        let find = |last| find_process(proc.path(), "containerd", last);
        let first = find(None);
        assert_eq!(first, found(20, 1030));
        // While pid 20 runs with that start, it is the answer without a scan: a process that
        // claims to be older (impossible on a real node) is not looked at.
        add(proc.path(), 40, "containerd", 10 * tick);
        assert_eq!(find(first), first);
        assert_eq!(find(None), found(40, 1010));
        // Gone, or its pid reused by another program: a full scan again.
        std::fs::remove_dir_all(proc.path().join("20")).unwrap();
        assert_eq!(find(first), found(40, 1010));
        add(proc.path(), 20, "bash", 30 * tick);
        assert_eq!(find(first), found(40, 1010));
        // Restarted under the same pid: a new start time, so a scan (which finds the oldest).
        std::fs::remove_dir_all(proc.path().join("40")).unwrap();
        std::fs::remove_dir_all(proc.path().join("10")).unwrap();
        add(proc.path(), 20, "containerd", 90 * tick);
        assert_eq!(find(first), found(20, 1090));
    }

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
