//! Change triggers: inotify watches (through `notify`) on every directory that feeds a registry's
//! trust — hosts dirs, host dirs, the directories of CA files, the system bundle, the expected CA
//! files (watched as directories, so a ConfigMap's symlink swap is seen). Events only say
//! "something changed here"; the agent debounces them and re-reads trust to see what.
//!
//! The config file has a watcher of its own ([`Watcher::for_file`]), on its directory but
//! reporting only events about the file itself or a Kubernetes atomic-writer entry (`..data`,
//! `..2026_…`): a ConfigMap mount changes by swapping the `..data` symlink, never the file.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use notify::{RecursiveMode, Watcher as _};

/// Most directories watched at once (each costs one inotify watch).
pub const MAX_WATCHES: usize = 4096;

pub struct Watcher {
    inner: notify::RecommendedWatcher,
    watched: HashSet<PathBuf>,
}

impl Watcher {
    /// Events are reported as a unit message on `tx` (dropped when the channel is full: one pending
    /// notification is enough to trigger a re-read).
    pub fn new(tx: tokio::sync::mpsc::Sender<()>) -> notify::Result<Watcher> {
        Self::filtered(tx, |_| true)
    }

    /// Watches the directory of `file` (made absolute) and reports changes of the file only (see
    /// the module doc): other files in that directory — a log beside it — do not count.
    pub fn for_file(tx: tokio::sync::mpsc::Sender<()>, file: &Path) -> notify::Result<Watcher> {
        let file = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
        let name = file.file_name().map(|n| n.to_os_string());
        let mut w = Self::filtered(tx, move |p| about_file(p, name.as_deref()))?;
        let mut dirs = HashSet::new();
        dirs_for(&file, &mut dirs);
        w.set(dirs);
        Ok(w)
    }

    fn filtered(
        tx: tokio::sync::mpsc::Sender<()>,
        wanted: impl Fn(&Path) -> bool + Send + 'static,
    ) -> notify::Result<Watcher> {
        let inner = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
            if let Ok(ev) = ev {
                if !matches!(ev.kind, notify::EventKind::Access(_))
                    && (ev.paths.is_empty() || ev.paths.iter().any(|p| wanted(p)))
                {
                    let _ = tx.try_send(());
                }
            }
        })?;
        Ok(Watcher {
            inner,
            watched: HashSet::new(),
        })
    }

    /// Watches exactly `dirs` (real paths) from now on.
    pub fn set(&mut self, dirs: HashSet<PathBuf>) {
        let gone: Vec<PathBuf> = self.watched.difference(&dirs).cloned().collect();
        for d in gone {
            let _ = self.inner.unwatch(&d);
            self.watched.remove(&d);
        }
        for d in dirs {
            if self.watched.len() >= MAX_WATCHES {
                tracing::warn!(limit = MAX_WATCHES, "too many directories to watch; changes elsewhere are seen at the next interval");
                break;
            }
            if !self.watched.contains(&d) {
                match self.inner.watch(&d, RecursiveMode::NonRecursive) {
                    Ok(()) => {
                        self.watched.insert(d);
                    }
                    Err(e) => tracing::debug!(dir = %d.display(), error = %e, "cannot watch"),
                }
            }
        }
    }

    pub fn count(&self) -> usize {
        self.watched.len()
    }
}

/// Whether an event at `p` is about the file named `name` (or a ConfigMap's `..data` swap).
fn about_file(p: &Path, name: Option<&std::ffi::OsStr>) -> bool {
    match p.file_name() {
        Some(n) => Some(n) == name || n.as_encoded_bytes().starts_with(b".."),
        None => false,
    }
}

/// The directories to watch for a real path: itself if it is a directory, and its parent (to see it
/// created, replaced or removed); for a missing path, its nearest existing ancestor.
pub fn dirs_for(real: &Path, out: &mut HashSet<PathBuf>) {
    if real.is_dir() {
        out.insert(real.to_path_buf());
    }
    let mut p = real.parent();
    while let Some(dir) = p {
        if dir.is_dir() {
            out.insert(dir.to_path_buf());
            return;
        }
        p = dir.parent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_watch_reports_the_file_and_configmap_swaps_only() {
        let name = Some(std::ffi::OsStr::new("regtrust.toml"));
        for yes in [
            "/etc/regtrust/regtrust.toml",
            "/etc/regtrust/..data",
            "/etc/regtrust/..data_tmp",
            "/etc/regtrust/..2026_12_02_06_00_00.123",
        ] {
            assert!(about_file(Path::new(yes), name), "{yes}");
        }
        for no in [
            "/etc/regtrust/agent.log",
            "/etc/regtrust/regtrust.toml.swp",
            "/",
        ] {
            assert!(!about_file(Path::new(no), name), "{no}");
        }
    }
}
