//! Just enough ELF to find what a Go binary records about itself: section and program headers,
//! reading the bytes at a virtual address (as Go's `debug/buildinfo` `elfExe.ReadData` does), and
//! looking up one symbol by name in `.symtab` or `.dynsym`.
//!
//! Everything is read through [`ReadAt`] in bounded pieces ([`MAX_PIECE`]); a malformed header
//! is an error, never a panic.
//!
//! Never does: I/O other than through [`ReadAt`].

use crate::hostroot::{ReadError, RegularFile};

/// The largest single piece read from a binary: a string table of a runtime is a few MiB
/// (Debian's containerd exports 117 000 dynamic symbols, 5 MiB of names).
pub const MAX_PIECE: u64 = 16 * 1024 * 1024;
/// The piece size for scanning symbol and string tables.
const SCAN_CHUNK: u64 = 64 * 1024;
/// Most section or program headers read (a Go binary has about 35 sections).
const MAX_HEADERS: u64 = 4096;

/// Bounded positional reads: a binary on disk, or bytes in a test.
pub trait ReadAt {
    /// Up to `len` bytes at `offset` (fewer at the end); `len` over [`MAX_PIECE`] is an error.
    fn read_at(&self, offset: u64, len: u64) -> Result<Vec<u8>, String>;
}

impl ReadAt for RegularFile {
    fn read_at(&self, offset: u64, len: u64) -> Result<Vec<u8>, String> {
        RegularFile::read_at(self, offset, len, MAX_PIECE).map_err(|e: ReadError| e.to_string())
    }
}

impl ReadAt for [u8] {
    fn read_at(&self, offset: u64, len: u64) -> Result<Vec<u8>, String> {
        if len > MAX_PIECE {
            return Err(format!(
                "a read of {len} bytes is over the {MAX_PIECE}-byte limit"
            ));
        }
        let start = (offset.min(self.len() as u64)) as usize;
        let end = (offset.saturating_add(len).min(self.len() as u64)) as usize;
        Ok(self[start..end].to_vec())
    }
}

#[derive(Debug, Clone)]
pub struct Section {
    pub name: String,
    pub kind: u32,
    pub addr: u64,
    pub offset: u64,
    pub size: u64,
    pub link: u32,
}

#[derive(Debug, Clone)]
pub struct Prog {
    pub kind: u32,
    pub flags: u32,
    pub offset: u64,
    pub vaddr: u64,
    pub filesz: u64,
}

pub const PT_LOAD: u32 = 1;
pub const PF_X: u32 = 1;
pub const PF_W: u32 = 2;
const SHT_SYMTAB: u32 = 2;
const SHT_DYNSYM: u32 = 11;

/// A parsed ELF file's headers.
pub struct Elf<'r, R: ReadAt + ?Sized> {
    r: &'r R,
    pub is64: bool,
    pub big_endian: bool,
    pub sections: Vec<Section>,
    pub progs: Vec<Prog>,
}

/// Reads an unsigned field of `n` bytes at `at` in the file's byte order.
fn uint(b: &[u8], at: usize, n: usize, big: bool) -> Option<u64> {
    let f = b.get(at..at + n)?;
    let mut v = 0u64;
    for i in 0..n {
        let byte = if big { f[i] } else { f[n - 1 - i] };
        v = (v << 8) | byte as u64;
    }
    Some(v)
}

impl<'r, R: ReadAt + ?Sized> Elf<'r, R> {
    /// `Ok(None)` when the file is not ELF at all.
    pub fn parse(r: &'r R) -> Result<Option<Elf<'r, R>>, String> {
        let h = r.read_at(0, 64)?;
        if !h.starts_with(b"\x7fELF") {
            return Ok(None);
        }
        let bad = || "malformed ELF header".to_string();
        let is64 = match h.get(4) {
            Some(1) => false,
            Some(2) => true,
            _ => return Err(bad()),
        };
        let big = h.get(5) == Some(&2);
        let w = if is64 { 8 } else { 4 };
        let u = |at: usize, n: usize| uint(&h, at, n, big).ok_or_else(bad);
        let (phoff, shoff) = (u(24 + w, w)?, u(24 + 2 * w, w)?);
        let base = 24 + 3 * w + 4;
        let (phentsize, phnum) = (u(base + 2, 2)?, u(base + 4, 2)?);
        let (shentsize, shnum, shstrndx) = (u(base + 6, 2)?, u(base + 8, 2)?, u(base + 10, 2)?);
        let mut elf = Elf {
            r,
            is64,
            big_endian: big,
            sections: Vec::new(),
            progs: Vec::new(),
        };
        elf.progs = elf.table(phoff, phentsize, phnum, |b| elf.prog(b))?;
        let raw = elf.table(shoff, shentsize, shnum, |b| elf.section(b))?;
        let names = match raw.get(shstrndx as usize) {
            Some((_, s)) => r.read_at(s.offset, s.size)?,
            None => Vec::new(),
        };
        elf.sections = raw
            .into_iter()
            .map(|(name_off, mut s)| {
                s.name = cstr(&names, name_off as usize);
                s
            })
            .collect();
        Ok(Some(elf))
    }

    fn table<T>(
        &self,
        off: u64,
        entsize: u64,
        num: u64,
        f: impl Fn(&[u8]) -> Option<T>,
    ) -> Result<Vec<T>, String> {
        if num == 0 || off == 0 {
            return Ok(Vec::new());
        }
        if num > MAX_HEADERS || entsize == 0 || entsize > 128 {
            return Err(format!(
                "ELF header table of {num} entries of {entsize} bytes"
            ));
        }
        let b = self.r.read_at(off, entsize * num)?;
        b.chunks(entsize as usize)
            .map(|c| f(c).ok_or_else(|| "truncated ELF header table".to_string()))
            .collect()
    }

    fn u(&self, b: &[u8], at: usize, n: usize) -> Option<u64> {
        uint(b, at, n, self.big_endian)
    }

    fn prog(&self, b: &[u8]) -> Option<Prog> {
        if self.is64 {
            Some(Prog {
                kind: self.u(b, 0, 4)? as u32,
                flags: self.u(b, 4, 4)? as u32,
                offset: self.u(b, 8, 8)?,
                vaddr: self.u(b, 16, 8)?,
                filesz: self.u(b, 32, 8)?,
            })
        } else {
            Some(Prog {
                kind: self.u(b, 0, 4)? as u32,
                offset: self.u(b, 4, 4)?,
                vaddr: self.u(b, 8, 4)?,
                filesz: self.u(b, 16, 4)?,
                flags: self.u(b, 24, 4)? as u32,
            })
        }
    }

    fn section(&self, b: &[u8]) -> Option<(u64, Section)> {
        let w = if self.is64 { 8 } else { 4 };
        let name_off = self.u(b, 0, 4)?;
        Some((
            name_off,
            Section {
                name: String::new(),
                kind: self.u(b, 4, 4)? as u32,
                addr: self.u(b, 8 + w, w)?,
                offset: self.u(b, 8 + 2 * w, w)?,
                size: self.u(b, 8 + 3 * w, w)?,
                link: self.u(b, 8 + 4 * w, 4)? as u32,
            },
        ))
    }

    /// Go's `elfExe.ReadData`: the bytes at virtual address `addr` from the program segment
    /// holding it, at most `size` and never past the segment's file data.
    pub fn read_data(&self, addr: u64, size: u64) -> Result<Vec<u8>, String> {
        for p in &self.progs {
            if p.filesz > 0 && p.vaddr <= addr && addr <= p.vaddr + (p.filesz - 1) {
                let n = (p.vaddr + p.filesz - addr).min(size);
                return self.r.read_at(p.offset + (addr - p.vaddr), n);
            }
        }
        Err(format!("address {addr:#x} is not in any segment"))
    }

    /// Go's `elfExe.DataStart`: the `.go.buildinfo` section, else the first writable,
    /// non-executable PT_LOAD segment.
    pub fn data_start(&self) -> Option<u64> {
        if let Some(s) = self.sections.iter().find(|s| s.name == ".go.buildinfo") {
            return Some(s.addr);
        }
        self.progs
            .iter()
            .find(|p| p.kind == PT_LOAD && p.flags & (PF_X | PF_W) == PF_W)
            .map(|p| p.vaddr)
    }

    pub fn ptr_size(&self) -> u64 {
        if self.is64 {
            8
        } else {
            4
        }
    }

    /// Decodes a pointer-sized value from `b` at `at`.
    pub fn ptr(&self, b: &[u8], at: usize) -> Option<u64> {
        self.u(b, at, self.ptr_size() as usize)
    }

    /// The value (address) of the symbol named `name`, from `.symtab` or else `.dynsym`. Both
    /// tables are scanned in [`SCAN_CHUNK`] pieces: a runtime's tables are megabytes, and the
    /// agent must not keep them (glibc keeps a freed multi-MiB buffer in its arena).
    pub fn symbol(&self, name: &str) -> Result<Option<u64>, String> {
        let needle: Vec<u8> = [b"\0", name.as_bytes(), b"\0"].concat();
        for kind in [SHT_SYMTAB, SHT_DYNSYM] {
            let Some(tab) = self.sections.iter().find(|s| s.kind == kind) else {
                continue;
            };
            let Some(strtab) = self.sections.get(tab.link as usize) else {
                continue;
            };
            let Some(pos) = self.find_bytes(strtab.offset, strtab.size, &needle)? else {
                continue;
            };
            if let Some(found) = self.find_symbol(tab, pos + 1)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// Offset of the first `needle` in the `size` bytes at `offset`, read piece by piece (pieces
    /// overlap by the needle's length, so a match across a boundary is found).
    fn find_bytes(&self, offset: u64, size: u64, needle: &[u8]) -> Result<Option<u64>, String> {
        let overlap = needle.len() as u64 - 1;
        let mut at = 0u64;
        while at < size {
            let len = (size - at).min(SCAN_CHUNK + overlap);
            let piece = self.r.read_at(offset + at, len)?;
            if let Some(p) = piece.windows(needle.len()).position(|w| w == needle) {
                return Ok(Some(at + p as u64));
            }
            if (piece.len() as u64) < len {
                break;
            }
            at += SCAN_CHUNK;
        }
        Ok(None)
    }

    /// The value of the first entry of symbol table `tab` whose name is at `name_off`.
    fn find_symbol(&self, tab: &Section, name_off: u64) -> Result<Option<u64>, String> {
        let (entsize, value_at) = if self.is64 { (24u64, 8) } else { (16u64, 4) };
        let step = SCAN_CHUNK / entsize * entsize;
        let mut at = 0u64;
        while at < tab.size {
            let piece = self.r.read_at(tab.offset + at, (tab.size - at).min(step))?;
            let found = piece.chunks_exact(entsize as usize).find_map(|e| {
                (self.u(e, 0, 4)? == name_off)
                    .then(|| self.ptr(e, value_at))
                    .flatten()
            });
            if found.is_some() || (piece.len() as u64) < step {
                return Ok(found);
            }
            at += step;
        }
        Ok(None)
    }
}

fn cstr(b: &[u8], at: usize) -> String {
    let tail = b.get(at..).unwrap_or_default();
    let end = tail.iter().position(|&c| c == 0).unwrap_or(tail.len());
    String::from_utf8_lossy(&tail[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A symbol whose name straddles a scan piece boundary and whose entry lies in a later
    /// piece of the symbol table is still found, with the value of its own entry.
    #[test]
    fn symbol_found_across_scan_pieces() {
        let name = b"github.com/containerd/containerd/version.Version";
        let mut file = vec![0u8; 256 * 1024];
        let str_off = 1024u64;
        let name_at = SCAN_CHUNK - 7; // inside the string table; crosses the first piece's end
        file[(str_off + name_at) as usize] = 0;
        file[(str_off + name_at + 1) as usize..][..name.len()].copy_from_slice(name);
        let str_size = 100 * 1024u64;
        let sym_off = str_off + str_size;
        let entries = 5000u64; // 24-byte entries: about 2 700 per piece
        let hit = entries - 2;
        for i in 0..entries {
            let e = (sym_off + i * 24) as usize;
            let name_off = if i == hit { name_at + 1 } else { 3 };
            file[e..e + 4].copy_from_slice(&(name_off as u32).to_le_bytes());
            file[e + 8..e + 16].copy_from_slice(&(0x4000 + i).to_le_bytes());
        }
        let section = |kind, offset, size, link| Section {
            name: String::new(),
            kind,
            addr: 0,
            offset,
            size,
            link,
        };
        let elf = Elf {
            r: &file[..],
            is64: true,
            big_endian: false,
            sections: vec![
                section(3, str_off, str_size, 0),
                section(SHT_SYMTAB, sym_off, entries * 24, 0),
            ],
            progs: Vec::new(),
        };
        let s = std::str::from_utf8(name).unwrap();
        assert_eq!(elf.symbol(s).unwrap(), Some(0x4000 + hit));
        assert_eq!(elf.symbol("runtime.absent").unwrap(), None);
    }
}
