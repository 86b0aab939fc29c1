//! Writes that cannot be torn or redirected.
//!
//! Every path component beneath the hosts directory is opened with `openat(O_NOFOLLOW)`, so a
//! symlink planted in certs.d cannot send a write elsewhere; a file is replaced by writing a
//! temporary file in the same directory (a name no runtime loads), fsync, `renameat` over the
//! target, fsync of the directory. The previous content is first *copied* to a backup whose name no
//! runtime loads either — the target itself never disappears, not even for an instant, because
//! containerd fails a pull when a configured CA file is missing. The new file and the backup keep
//! the replaced file's mode and owner.
//!
//! Concurrent stagers (the agent, a person following the runbook) are serialised by [`Dir::lock`]:
//! an `flock` on [`LOCK_FILE`] in the certificate root, a name no runtime loads.
//!
//! Uses nix's safe wrappers; no `unsafe`.

use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat, renameat, OFlag};
use nix::sys::stat::{fchmod, mkdirat, Mode};
use nix::unistd::{fsync, unlinkat, UnlinkatFlags};

use crate::hostroot::{read_open_regular, ReadError, MAX_TRUST_FILE_BYTES};

/// Prefix of temporary files: no runtime loads a name without a `.crt`/`.cert`/`.key`/`.pem` suffix.
pub const TMP_PREFIX: &str = ".regtrust-tmp-";
/// Infix of backups: `ca.crt.regtrust-bak-<unix time>` ends in neither of the loaded suffixes.
pub const BACKUP_INFIX: &str = ".regtrust-bak-";
/// Backups kept per file.
pub const KEEP_BACKUPS: usize = 5;

/// The lock file regtrust owns in a certificate root (hosts directory, certs.d): not a directory,
/// so no runtime or discovery takes it for a host; no loaded suffix.
pub const LOCK_FILE: &str = ".regtrust.lock";

/// Suffixes some runtime loads from a certificate directory.
pub const LOADED_SUFFIXES: &[&str] = &[".crt", ".cert", ".key", ".pem"];

/// A failed file operation, with the path and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{path} is a symlink (or not a directory): refusing to follow it — a symlink in the certificate directory could redirect the write")]
    Symlink { path: PathBuf },
    #[error("{path} is on a read-only file system: staging needs the hosts directory writable (the DaemonSet's staging overlay, or ReadWritePaths= in the systemd unit)")]
    ReadOnly { path: PathBuf },
    #[error("permission denied on {path}: staging needs write access to the hosts directory")]
    Permission { path: PathBuf },
    #[error("{path} is larger than {MAX_TRUST_FILE_BYTES} bytes")]
    TooLarge { path: PathBuf },
    /// A directory, FIFO, socket or device where a certificate file should be.
    #[error("{path} {why}: refusing to read or replace it")]
    NotRegular { path: PathBuf, why: ReadError },
    #[error("cannot {op} {path}: {errno}")]
    Io {
        op: &'static str,
        path: PathBuf,
        errno: Errno,
    },
    #[error("the write did not finish: {0}")]
    Cancelled(String),
    #[error("the backup {path} has vanished: {target} was left as it is (not restored)")]
    BackupMissing { path: PathBuf, target: PathBuf },
}

/// A file's mode and owner, kept when regtrust replaces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Perm {
    /// Permission bits (`0o7777` at most).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// Mode of files regtrust creates where none existed.
const NEW_FILE_MODE: u32 = 0o644;

/// An exclusive lock on a certificate root, released when dropped.
#[derive(Debug)]
pub struct Lock {
    _flock: nix::fcntl::Flock<std::fs::File>,
    pub path: PathBuf,
}

fn err(op: &'static str, path: &Path, e: Errno) -> WriteError {
    let path = path.to_path_buf();
    match e {
        Errno::ELOOP | Errno::ENOTDIR => WriteError::Symlink { path },
        Errno::EROFS => WriteError::ReadOnly { path },
        Errno::EACCES | Errno::EPERM => WriteError::Permission { path },
        errno => WriteError::Io { op, path, errno },
    }
}

/// A directory opened without following symlinks beneath its root.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

const DIR_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_CLOEXEC);

impl Dir {
    /// Opens the hosts directory itself (its location is trusted configuration).
    pub fn open_root(path: &Path) -> Result<Dir, WriteError> {
        let fd = nix::fcntl::open(path, DIR_FLAGS, Mode::empty()).map_err(|e| match e {
            Errno::ENOTDIR => WriteError::Io {
                op: "open directory",
                path: path.to_path_buf(),
                errno: e,
            },
            e => err("open directory", path, e),
        })?;
        Ok(Dir {
            fd,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens (or, with `create`, creates with mode 0755) the child directory `name`; a symlink is refused.
    pub fn child(&self, name: &str, create: bool) -> Result<Dir, WriteError> {
        check_name(name, &self.path)?;
        let path = self.path.join(name);
        match openat(&self.fd, name, DIR_FLAGS | OFlag::O_NOFOLLOW, Mode::empty()) {
            Ok(fd) => Ok(Dir { fd, path }),
            Err(Errno::ENOENT) if create => {
                mkdirat(&self.fd, name, Mode::from_bits_truncate(0o755))
                    .map_err(|e| err("create directory", &path, e))?;
                fsync(&self.fd).map_err(|e| err("fsync", &self.path, e))?;
                let fd = openat(&self.fd, name, DIR_FLAGS | OFlag::O_NOFOLLOW, Mode::empty())
                    .map_err(|e| err("open directory", &path, e))?;
                Ok(Dir { fd, path })
            }
            Err(e) => Err(err("open directory", &path, e)),
        }
    }

    /// The file's content, `None` when it does not exist; a symlink is refused.
    pub fn read(&self, name: &str) -> Result<Option<Vec<u8>>, WriteError> {
        check_name(name, &self.path)?;
        let path = self.path.join(name);
        let fd = match openat(
            &self.fd,
            name,
            // O_NONBLOCK: a FIFO planted under this name must not hang the open.
            OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Ok(None),
            Err(e) => return Err(err("open", &path, e)),
        };
        match read_open_regular(std::fs::File::from(fd), MAX_TRUST_FILE_BYTES) {
            Ok(buf) => Ok(Some(buf)),
            Err(ReadError::TooLarge { .. }) => Err(WriteError::TooLarge { path }),
            Err(ReadError::Io(e)) => Err(io_err("read", &path, e)),
            Err(why) => Err(WriteError::NotRegular { path, why }),
        }
    }

    /// Atomically makes `name` hold `data`, with the mode and owner of the file it replaces (a new
    /// file: mode 0644, regtrust's owner). When the file existed and `backup` is set,
    /// its previous content is kept as `name.regtrust-bak-<time>` first. Returns the backup's name.
    pub fn replace(
        &self,
        name: &str,
        data: &[u8],
        backup: bool,
    ) -> Result<Option<String>, WriteError> {
        check_name(name, &self.path)?;
        self.remove_stale_temporaries();
        let perm = self.perm(name)?;
        let mut backup_name = None;
        if backup {
            if let Some(old) = self.read(name)? {
                let b = format!("{name}{BACKUP_INFIX}{}", unique_suffix());
                self.write_new(&b, &old, perm)?;
                backup_name = Some(b);
            }
        }
        self.write_new(name, data, perm)?;
        if backup_name.is_some() {
            self.prune_backups(name);
        }
        Ok(backup_name)
    }

    /// The mode and owner of `name` (not followed), `None` when it does not exist.
    pub fn perm(&self, name: &str) -> Result<Option<Perm>, WriteError> {
        check_name(name, &self.path)?;
        match nix::sys::stat::fstatat(&self.fd, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(Perm {
                mode: st.st_mode & 0o7777,
                uid: st.st_uid,
                gid: st.st_gid,
            })),
            Err(Errno::ENOENT) => Ok(None),
            Err(e) => Err(err("stat", &self.path.join(name), e)),
        }
    }

    /// Takes the exclusive lock on this directory's [`LOCK_FILE`] (created if need be, never
    /// through a symlink); `None` while another process holds it.
    pub fn try_lock(&self) -> Result<Option<Lock>, WriteError> {
        use nix::fcntl::{Flock, FlockArg};
        let path = self.path.join(LOCK_FILE);
        let flags = OFlag::O_RDWR
            | OFlag::O_CREAT
            | OFlag::O_NOFOLLOW
            | OFlag::O_NONBLOCK
            | OFlag::O_CLOEXEC;
        let fd = openat(&self.fd, LOCK_FILE, flags, Mode::from_bits_truncate(0o600))
            .map_err(|e| err("open lock file", &path, e))?;
        let file = std::fs::File::from(fd);
        match file.metadata() {
            Ok(m) if m.file_type().is_file() => {}
            Ok(_) => {
                return Err(WriteError::NotRegular {
                    path,
                    why: ReadError::NotRegular {
                        kind: "not a regular file",
                    },
                })
            }
            Err(e) => return Err(io_err("stat", &path, e)),
        }
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(flock) => Ok(Some(Lock {
                _flock: flock,
                path,
            })),
            Err((_, Errno::EWOULDBLOCK)) => Ok(None),
            Err((_, e)) => Err(err("lock", &path, e)),
        }
    }

    /// Writes via a temporary file (with `perm`, when given) and renames it over `name`.
    fn write_new(&self, name: &str, data: &[u8], perm: Option<Perm>) -> Result<(), WriteError> {
        let tmp = format!("{TMP_PREFIX}{}", unique_suffix());
        let tmp_path = self.path.join(&tmp);
        let flags =
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = openat(
            &self.fd,
            tmp.as_str(),
            flags,
            // Private until its mode is set: the replaced file may be 0600.
            Mode::from_bits_truncate(0o600),
        )
        .map_err(|e| err("create", &tmp_path, e))?;
        let result = (|| {
            let mode = perm.map_or(NEW_FILE_MODE, |p| p.mode);
            if let Some(p) = perm {
                keep_owner(&fd, p, &tmp_path)?;
            }
            fchmod(&fd, Mode::from_bits_truncate(mode)).map_err(|e| err("chmod", &tmp_path, e))?;
            let mut f = std::fs::File::from(fd);
            f.write_all(data)
                .map_err(|e| io_err("write", &tmp_path, e))?;
            f.sync_all().map_err(|e| io_err("fsync", &tmp_path, e))?;
            drop(f);
            renameat(&self.fd, tmp.as_str(), &self.fd, name)
                .map_err(|e| err("rename into place", &self.path.join(name), e))?;
            fsync(&self.fd).map_err(|e| err("fsync", &self.path, e))
        })();
        if result.is_err() {
            let _ = unlinkat(&self.fd, tmp.as_str(), UnlinkatFlags::NoRemoveDir);
        }
        result
    }

    /// Removes `name` (a file regtrust created; used by rollback).
    pub fn remove(&self, name: &str) -> Result<(), WriteError> {
        check_name(name, &self.path)?;
        match unlinkat(&self.fd, name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => fsync(&self.fd).map_err(|e| err("fsync", &self.path, e)),
            Err(e) => Err(err("remove", &self.path.join(name), e)),
        }
    }

    /// Removes the empty child directory `name` (one regtrust created; used by rollback).
    pub fn remove_dir(&self, name: &str) -> Result<(), WriteError> {
        check_name(name, &self.path)?;
        unlinkat(&self.fd, name, UnlinkatFlags::RemoveDir)
            .map_err(|e| err("remove directory", &self.path.join(name), e))
    }

    /// Names in this directory (listing only; nothing is followed).
    pub fn names(&self) -> Vec<String> {
        std::fs::read_dir(&self.path)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Backups of `name`, oldest first.
    pub fn backups(&self, name: &str) -> Vec<String> {
        let prefix = format!("{name}{BACKUP_INFIX}");
        let mut b: Vec<String> = self
            .names()
            .into_iter()
            .filter(|n| n.starts_with(&prefix))
            .collect();
        b.sort();
        b
    }

    fn prune_backups(&self, name: &str) {
        let b = self.backups(name);
        for old in b.iter().take(b.len().saturating_sub(KEEP_BACKUPS)) {
            let _ = unlinkat(&self.fd, old.as_str(), UnlinkatFlags::NoRemoveDir);
        }
    }

    /// Temporaries left by a writer that was killed mid-write.
    fn remove_stale_temporaries(&self) {
        for n in self
            .names()
            .into_iter()
            .filter(|n| n.starts_with(TMP_PREFIX))
        {
            let _ = unlinkat(&self.fd, n.as_str(), UnlinkatFlags::NoRemoveDir);
        }
    }
}

/// Gives the new file `p`'s owner (before its mode: chown clears set-id bits). Skipped when the
/// new file has that owner already, so an unprivileged stager replacing its own files needs no
/// capability.
fn keep_owner(fd: &OwnedFd, p: Perm, path: &Path) -> Result<(), WriteError> {
    let st = nix::sys::stat::fstat(fd).map_err(|e| err("stat", path, e))?;
    if (st.st_uid, st.st_gid) == (p.uid, p.gid) {
        return Ok(());
    }
    std::os::unix::fs::fchown(fd, Some(p.uid), Some(p.gid)).map_err(|e| io_err("chown", path, e))
}

fn io_err(op: &'static str, path: &Path, e: std::io::Error) -> WriteError {
    err(
        op,
        path,
        e.raw_os_error().map(Errno::from_raw).unwrap_or(Errno::EIO),
    )
}

/// Only plain names below the directory: no separators, no `.`/`..`.
fn check_name(name: &str, dir: &Path) -> Result<(), WriteError> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(WriteError::Io {
            op: "use name",
            path: dir.join(name),
            errno: Errno::EINVAL,
        });
    }
    Ok(())
}

/// Sortable, unique within and across processes: `<unix nanos>-<pid>-<counter>`.
fn unique_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{nanos:020}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    #[test]
    fn replace_keeps_a_backup_and_mode_0644() {
        let t = tempfile::tempdir().unwrap();
        let d = Dir::open_root(t.path()).unwrap();
        let h = d.child("r.test:5000", true).unwrap();
        assert_eq!(h.replace("ca.crt", b"one", true).unwrap(), None);
        let b = h.replace("ca.crt", b"two", true).unwrap().unwrap();
        assert_eq!(h.read("ca.crt").unwrap().unwrap(), b"two");
        assert_eq!(h.read(&b).unwrap().unwrap(), b"one");
        assert!(!LOADED_SUFFIXES.iter().any(|s| b.ends_with(s)), "{b}");
        let mode = std::fs::metadata(t.path().join("r.test:5000/ca.crt"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o644);
        for i in 0..10 {
            h.replace("ca.crt", format!("v{i}").as_bytes(), true)
                .unwrap();
        }
        assert_eq!(h.backups("ca.crt").len(), KEEP_BACKUPS);
        assert!(!h.names().iter().any(|n| n.starts_with(TMP_PREFIX)));
    }

    #[test]
    fn replace_keeps_the_mode_and_owner_of_the_replaced_file() {
        use std::os::unix::fs::MetadataExt;
        let t = tempfile::tempdir().unwrap();
        let d = Dir::open_root(t.path()).unwrap();
        let p = t.path().join("ca.crt");
        std::fs::write(&p, b"old").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        // As root (CI), also a foreign owner; otherwise only the mode can be checked.
        let root = nix::sys::stat::stat("/proc/self")
            .map(|s| s.st_uid == 0)
            .unwrap_or(false);
        let owner = if root { (4321, 4322) } else { (0, 0) };
        if root {
            std::os::unix::fs::chown(&p, Some(owner.0), Some(owner.1)).unwrap();
        }
        let b = d.replace("ca.crt", b"new", true).unwrap().unwrap();
        for f in [p.clone(), t.path().join(&b)] {
            let m = std::fs::metadata(&f).unwrap();
            assert_eq!(m.permissions().mode() & 0o777, 0o600, "{}", f.display());
            if root {
                assert_eq!((m.uid(), m.gid()), owner, "{}", f.display());
            }
        }
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
    }

    #[test]
    fn the_lock_is_exclusive_until_dropped() {
        let t = tempfile::tempdir().unwrap();
        let d = Dir::open_root(t.path()).unwrap();
        let held = d.try_lock().unwrap().expect("a free lock is taken");
        // flock conflicts between open file descriptions, even within one process.
        assert!(Dir::open_root(t.path())
            .unwrap()
            .try_lock()
            .unwrap()
            .is_none());
        drop(held);
        assert!(d.try_lock().unwrap().is_some());
        assert!(!LOADED_SUFFIXES.iter().any(|s| LOCK_FILE.ends_with(s)));
        std::fs::remove_file(t.path().join(LOCK_FILE)).unwrap();
        symlink("/etc/passwd", t.path().join(LOCK_FILE)).unwrap();
        assert!(d.try_lock().is_err(), "a symlinked lock file was followed");
    }

    #[test]
    fn symlinks_beneath_the_root_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        symlink(outside.path(), t.path().join("evil")).unwrap();
        let d = Dir::open_root(t.path()).unwrap();
        assert!(matches!(
            d.child("evil", true),
            Err(WriteError::Symlink { .. })
        ));
        std::fs::create_dir(t.path().join("ok")).unwrap();
        symlink(
            outside.path().join("target.crt"),
            t.path().join("ok/ca.crt"),
        )
        .unwrap();
        let h = d.child("ok", false).unwrap();
        assert!(matches!(
            h.replace("ca.crt", b"x", true),
            Err(WriteError::Symlink { .. })
        ));
        assert!(
            !outside.path().join("target.crt").exists(),
            "the write went through the symlink"
        );
        assert!(d.child("../x", true).is_err());
    }
}
