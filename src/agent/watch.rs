//! Change triggers: inotify watches (through `notify`) on every directory that feeds a registry's
//! trust — hosts dirs, host dirs, the directories of CA files, the system bundle, the expected CA
//! files (watched as directories, so a ConfigMap's symlink swap is seen). Events only say
//! "something changed here"; the agent debounces them and re-reads trust to see what.

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
        let inner = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
            if let Ok(ev) = ev {
                if !matches!(ev.kind, notify::EventKind::Access(_)) {
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
