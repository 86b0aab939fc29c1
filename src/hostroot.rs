//! The one place node paths are re-rooted under the mounted host root.
//!
//! In a DaemonSet the node's `/etc` is mounted at, say, `/host/etc`. A hosts.toml that says
//! `ca = "/etc/containerd/certs.d/r/ca.crt"` means the *node's* file, and a Debian
//! `/etc/ssl/certs/X.pem` is a symlink to `/usr/share/ca-certificates/...` — an absolute target that
//! must also resolve under the host root, not in the agent's container. [`HostRoot::resolve`] walks a
//! node path component by component, following symlinks as a `chroot` would, so nothing read here can
//! escape the host root by an absolute or `..` symlink.
//!
//! Never does: network I/O, or any write.

use std::fs;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

use nix::fcntl::OFlag;

/// Most symlinks followed while resolving one path (Linux's own limit is 40).
pub const MAX_SYMLINK_HOPS: usize = 40;

/// Largest single file read from the trust directories. A CA bundle is a few hundred KiB at most
/// (Debian's full system bundle is ~220 KiB); anything bigger is a mistake or an attack and is
/// reported instead of read.
pub const MAX_TRUST_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// The node's filesystem, seen from where regtrust runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRoot {
    root: PathBuf,
}

/// Why a node file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("file is {size} bytes, larger than the {max}-byte limit for trust files")]
    TooLarge { size: u64, max: u64 },
    #[error("is a directory")]
    IsDir,
    /// A FIFO, socket or device: never read (a FIFO would block, a device never ends).
    #[error("is a {kind}, not a regular file; regtrust reads only regular files")]
    NotRegular { kind: &'static str },
}

impl ReadError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, ReadError::Io(e) if e.kind() == io::ErrorKind::NotFound)
    }
}

impl HostRoot {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        HostRoot { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn is_identity(&self) -> bool {
        self.root == Path::new("/")
    }

    /// Maps a node path to the path to open here, following symlinks inside the host root.
    /// A missing component is not an error: the rest is appended and the caller's open reports it.
    pub fn resolve(&self, node_path: &Path) -> io::Result<PathBuf> {
        if self.is_identity() {
            return Ok(absolute_node_path(node_path));
        }
        let mut pending: Vec<std::ffi::OsString> = components_of(node_path);
        pending.reverse(); // a stack: last element is the next component
        let mut current: Vec<std::ffi::OsString> = Vec::new();
        let mut hops = 0usize;
        while let Some(comp) = pending.pop() {
            if comp == ".." {
                current.pop();
                continue;
            }
            current.push(comp);
            let here = self.join(&current);
            let meta = match fs::symlink_metadata(&here) {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    // Nothing more to resolve: append the rest verbatim (minus `..` games).
                    while let Some(rest) = pending.pop() {
                        if rest == ".." {
                            current.pop();
                        } else {
                            current.push(rest);
                        }
                    }
                    return Ok(self.join(&current));
                }
                Err(e) => return Err(e),
            };
            if meta.file_type().is_symlink() {
                hops += 1;
                if hops > MAX_SYMLINK_HOPS {
                    // ELOOP, as the kernel's open (same limit) fails in the runtime: Go words it
                    // `open P: too many levels of symbolic links`.
                    return Err(io::Error::from_raw_os_error(nix::libc::ELOOP));
                }
                let target = fs::read_link(&here)?;
                current.pop();
                if target.is_absolute() {
                    current.clear();
                }
                let mut parts = components_of(&target);
                parts.reverse();
                pending.extend(parts);
            }
        }
        Ok(self.join(&current))
    }

    fn join(&self, parts: &[std::ffi::OsString]) -> PathBuf {
        let mut p = self.root.clone();
        for c in parts {
            p.push(c);
        }
        p
    }

    /// Reads a node file whole: only a regular file, at most [`MAX_TRUST_FILE_BYTES`]. Symlinks
    /// were followed by [`HostRoot::resolve`]; one appearing after that is refused, not followed
    /// out of the root.
    pub fn read(&self, node_path: &Path) -> Result<Vec<u8>, ReadError> {
        let follow = if self.is_identity() {
            Follow::Yes
        } else {
            Follow::No
        };
        read_regular(&self.resolve(node_path)?, MAX_TRUST_FILE_BYTES, follow)
    }

    /// `stat` of a node path (following symlinks under the root).
    pub fn metadata(&self, node_path: &Path) -> io::Result<fs::Metadata> {
        fs::metadata(self.resolve(node_path)?)
    }

    /// Entries of a node directory, sorted by name (Go's `os.ReadDir` order), with the entry's own
    /// type (a symlink is reported as a symlink, as Go's `DirEntry.IsDir` sees it).
    pub fn read_dir(&self, node_dir: &Path) -> io::Result<Vec<DirEntry>> {
        let real = self.resolve(node_dir)?;
        let mut out = Vec::new();
        for entry in fs::read_dir(&real)? {
            let entry = entry?;
            let ft = entry.file_type()?;
            out.push(DirEntry {
                name: entry.file_name().to_string_lossy().into_owned(),
                is_dir: ft.is_dir(),
                is_symlink: ft.is_symlink(),
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
}

/// Whether the last component of a path may be a symlink the kernel follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Follow {
    /// The path was resolved already (or must not be a link): a symlink there is refused.
    No,
    /// A local path given by a person (`--ca`, `expected_ca_file`): follow as `open` does.
    Yes,
}

/// Reads a local file whole, refusing directories and anything over [`MAX_TRUST_FILE_BYTES`],
/// without reading more than that, even from a file that grows meanwhile. Only regular files are
/// read (see [`read_regular`]).
pub fn read_bounded(path: &Path) -> Result<Vec<u8>, ReadError> {
    read_regular(path, MAX_TRUST_FILE_BYTES, Follow::Yes)
}

/// Opens `path` non-blocking (so a FIFO without a writer cannot hang the open), checks with
/// `fstat` on the open descriptor that it is a regular file, and reads at most `max` bytes from
/// that descriptor. What is checked is what is read: no stat-then-open race.
pub fn read_regular(path: &Path, max: u64, follow: Follow) -> Result<Vec<u8>, ReadError> {
    read_open_regular(open_nonblocking(path, follow)?, max)
}

fn open_nonblocking(path: &Path, follow: Follow) -> io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut flags = OFlag::O_NONBLOCK | OFlag::O_NOCTTY | OFlag::O_CLOEXEC;
    if follow == Follow::No {
        flags |= OFlag::O_NOFOLLOW;
    }
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits())
        .open(path)
}

/// An open regular file read piece by piece (a runtime's binary: tens of MiB, of which a few
/// headers and tables are read), each read bounded by the caller's cap.
#[derive(Debug)]
pub struct RegularFile {
    file: fs::File,
    len: u64,
}

impl RegularFile {
    /// Opens `path` as [`read_regular`] does (non-blocking, `fstat` says regular file).
    pub fn open(path: &Path, follow: Follow) -> Result<RegularFile, ReadError> {
        let file = open_nonblocking(path, follow)?;
        let meta = file.metadata()?;
        let ft = meta.file_type();
        if ft.is_dir() {
            return Err(ReadError::IsDir);
        }
        if !ft.is_file() {
            return Err(ReadError::NotRegular {
                kind: file_kind(&ft),
            });
        }
        Ok(RegularFile {
            file,
            len: meta.len(),
        })
    }

    /// The file's size when opened.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Up to `len` bytes at `offset` (fewer at the end of the file); `len` above `max` is
    /// refused, not truncated.
    pub fn read_at(&self, offset: u64, len: u64, max: u64) -> Result<Vec<u8>, ReadError> {
        use std::os::unix::fs::FileExt;
        if len > max {
            return Err(ReadError::TooLarge { size: len, max });
        }
        let want = len.min(self.len.saturating_sub(offset)) as usize;
        let mut buf = vec![0u8; want];
        let mut done = 0;
        while done < want {
            match self.file.read_at(&mut buf[done..], offset + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        buf.truncate(done);
        Ok(buf)
    }
}

impl HostRoot {
    /// Opens a node file for bounded piecewise reads (see [`RegularFile`]).
    pub fn open_regular(&self, node_path: &Path) -> Result<RegularFile, ReadError> {
        let follow = if self.is_identity() {
            Follow::Yes
        } else {
            Follow::No
        };
        RegularFile::open(&self.resolve(node_path)?, follow)
    }
}

/// The second half of [`read_regular`], for a descriptor the caller opened itself (with
/// `O_NONBLOCK`, e.g. by `openat`): `fstat` says regular file, then at most `max` bytes are read.
pub fn read_open_regular(file: fs::File, max: u64) -> Result<Vec<u8>, ReadError> {
    let meta = file.metadata()?; // fstat(2) on the descriptor
    let ft = meta.file_type();
    if ft.is_dir() {
        return Err(ReadError::IsDir);
    }
    if !ft.is_file() {
        return Err(ReadError::NotRegular {
            kind: file_kind(&ft),
        });
    }
    if meta.len() > max {
        return Err(ReadError::TooLarge {
            size: meta.len(),
            max,
        });
    }
    let mut buf = Vec::with_capacity(meta.len() as usize);
    // take() bounds the read on the descriptor, even if the file grows under us.
    file.take(max + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > max {
        return Err(ReadError::TooLarge {
            size: buf.len() as u64,
            max,
        });
    }
    Ok(buf)
}

fn file_kind(ft: &fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_fifo() {
        "FIFO"
    } else if ft.is_socket() {
        "socket"
    } else if ft.is_char_device() {
        "character device"
    } else if ft.is_block_device() {
        "block device"
    } else if ft.is_symlink() {
        "symbolic link"
    } else {
        "special file"
    }
}

/// One directory entry as the runtimes see it.
#[derive(Debug, Clone)]
pub struct DirEntry {
    pub name: String,
    pub is_dir: bool,
    pub is_symlink: bool,
}

fn absolute_node_path(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        Path::new("/").join(p)
    }
}

fn components_of(p: &Path) -> Vec<std::ffi::OsString> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn absolute_symlink_resolves_under_root() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        fs::create_dir_all(root.join("usr/share/ca")).unwrap();
        fs::create_dir_all(root.join("etc/ssl/certs")).unwrap();
        fs::write(root.join("usr/share/ca/x.crt"), b"node file").unwrap();
        symlink("/usr/share/ca/x.crt", root.join("etc/ssl/certs/x.pem")).unwrap();
        let hr = HostRoot::new(root);
        assert_eq!(
            hr.read(Path::new("/etc/ssl/certs/x.pem")).unwrap(),
            b"node file"
        );
    }

    #[test]
    fn dotdot_cannot_escape_root() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        fs::create_dir_all(root.join("etc")).unwrap();
        fs::write(t.path().join("outside"), b"secret").unwrap();
        symlink("../../../../outside", root.join("etc/link")).unwrap();
        let hr = HostRoot::new(&root);
        let resolved = hr.resolve(Path::new("/etc/link")).unwrap();
        assert!(resolved.starts_with(&root), "{resolved:?} escaped {root:?}");
        assert!(hr.read(Path::new("/etc/link")).unwrap_err().is_not_found());
    }

    #[test]
    fn symlink_loop_is_an_error_not_a_hang() {
        let t = tempfile::tempdir().unwrap();
        symlink("/b", t.path().join("a")).unwrap();
        symlink("/a", t.path().join("b")).unwrap();
        let hr = HostRoot::new(t.path());
        assert!(hr.read(Path::new("/a")).is_err());
    }

    #[test]
    fn refuses_large_files_and_directories() {
        let t = tempfile::tempdir().unwrap();
        fs::write(
            t.path().join("big"),
            vec![b'x'; (MAX_TRUST_FILE_BYTES + 1) as usize],
        )
        .unwrap();
        fs::create_dir(t.path().join("d.crt")).unwrap();
        let hr = HostRoot::new(t.path());
        assert!(matches!(
            hr.read(Path::new("/big")),
            Err(ReadError::TooLarge { .. })
        ));
        assert!(matches!(
            hr.read(Path::new("/d.crt")),
            Err(ReadError::IsDir)
        ));
    }

    #[test]
    fn only_regular_files_are_read_never_devices_or_fifos() {
        // A device: /dev/zero never ends and its size is 0; refused on fstat, before any read.
        let e = read_bounded(Path::new("/dev/zero")).unwrap_err();
        assert!(
            matches!(
                e,
                ReadError::NotRegular {
                    kind: "character device"
                }
            ),
            "{e}"
        );
        let e = HostRoot::new("/").read(Path::new("/dev/zero")).unwrap_err();
        assert!(matches!(e, ReadError::NotRegular { .. }), "{e}");
        // A FIFO with no writer: the non-blocking open returns and fstat refuses it.
        let t = tempfile::tempdir().unwrap();
        nix::unistd::mkfifo(
            &t.path().join("ca.crt"),
            nix::sys::stat::Mode::from_bits_truncate(0o644),
        )
        .unwrap();
        let hr = HostRoot::new(t.path());
        let e = hr.read(Path::new("/ca.crt")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "is a FIFO, not a regular file; regtrust reads only regular files"
        );
        // The bound is on the descriptor, with the caller's limit.
        fs::write(t.path().join("f"), b"12345").unwrap();
        assert!(matches!(
            read_regular(&t.path().join("f"), 4, Follow::Yes),
            Err(ReadError::TooLarge { max: 4, .. })
        ));
        assert_eq!(
            read_regular(&t.path().join("f"), 5, Follow::No).unwrap(),
            b"12345"
        );
        // Follow::No refuses a symlink at the last component (ELOOP), Follow::Yes follows it.
        symlink("f", t.path().join("l")).unwrap();
        assert!(read_regular(&t.path().join("l"), 5, Follow::No).is_err());
        assert_eq!(
            read_regular(&t.path().join("l"), 5, Follow::Yes).unwrap(),
            b"12345"
        );
    }
}
