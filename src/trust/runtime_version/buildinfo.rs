//! A Go binary's build info, read as Go's `debug/buildinfo` reads it (`readRawBuildInfo`): the
//! 32-byte header starting with `"\xff Go buildinf:"` at a 16-byte boundary in the first 64 KiB
//! of the data start, then either the inline strings (flags bit 2, Go 1.18+: two uvarint-length
//! strings after the header) or, in older binaries, two pointers to Go string headers
//! (`runtime.buildVersion`, `runtime.modinfo`) in the pointer size and byte order the header
//! gives. The module info is framed by 16-byte sentinels, stripped as Go strips them.
//!
//! Never does: I/O other than through [`ReadAt`].

use super::elf::{Elf, ReadAt};

const MAGIC: &[u8] = b"\xff Go buildinf:";
const ALIGN: usize = 16;
const HEADER: usize = 32;
/// How much of the data start Go searches for the header.
const SEARCH: u64 = 64 * 1024;
/// Go's `readString` refuses strings longer than this.
const MAX_STRING: u64 = 1 << 20;

/// What a Go binary says about its build.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildInfo {
    /// `runtime.Version()` of the toolchain, e.g. `go1.19.8`.
    pub go_version: String,
    /// The main package path (`path` line), e.g. `github.com/containerd/containerd/cmd/containerd`.
    pub path: Option<String>,
    /// The main module's version (`mod` line), unless `(devel)`.
    pub main_version: Option<String>,
    /// `build` settings in order (`-ldflags`, `CGO_ENABLED`, `vcs.revision`, …).
    pub settings: Vec<(String, String)>,
}

impl BuildInfo {
    pub fn setting(&self, key: &str) -> Option<&str> {
        self.settings
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The value an `-X var=value` in the recorded `-ldflags` gives `var` (Go records
    /// `-ldflags` only for builds without `-trimpath`).
    pub fn ldflag_x(&self, var: &str) -> Option<String> {
        let flags = self.setting("-ldflags")?;
        let words: Vec<&str> = flags.split_whitespace().collect();
        let prefix = format!("{var}=");
        let mut i = 0;
        while i < words.len() {
            let w = words[i];
            let arg = if w == "-X" || w == "--X" {
                i += 1;
                words.get(i).copied()
            } else {
                w.strip_prefix("-X=").or_else(|| w.strip_prefix("--X="))
            };
            if let Some(v) = arg.and_then(|a| a.strip_prefix(prefix.as_str())) {
                return Some(v.trim_matches(|c| c == '\'' || c == '"').to_string());
            }
            i += 1;
        }
        None
    }
}

/// Go's `decodeString`: a uvarint length, then that many bytes.
fn decode_string(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut len = 0u64;
    let mut shift = 0;
    for (i, &byte) in b.iter().enumerate().take(10) {
        len |= ((byte & 0x7f) as u64) << shift;
        if byte & 0x80 == 0 {
            let rest = &b[i + 1..];
            let len = usize::try_from(len).ok().filter(|l| *l <= rest.len())?;
            return Some(rest.split_at(len));
        }
        shift += 7;
    }
    None
}

/// Reads the build info of an ELF binary; `Ok(None)` when it is not a Go binary (or not ELF).
pub fn read<R: ReadAt + ?Sized>(r: &R) -> Result<Option<BuildInfo>, String> {
    let Some(elf) = Elf::parse(r)? else {
        return Ok(None);
    };
    let Some(start) = elf.data_start() else {
        return Ok(None);
    };
    let data = elf.read_data(start, SEARCH)?;
    let Some(at) = find_header(&data) else {
        return Ok(None);
    };
    let h = &data[at..];
    let flags = h[15];
    let (vers, modinfo) = if flags & 2 != 0 {
        let Some((vers, rest)) = decode_string(&h[HEADER..]) else {
            return Ok(None);
        };
        let modinfo = decode_string(rest).map(|(m, _)| m).unwrap_or_default();
        (vers.to_vec(), modinfo.to_vec())
    } else {
        let ptr_size = h[14] as usize;
        if ptr_size != elf.ptr_size() as usize {
            return Ok(None);
        }
        let vers_at = elf.ptr(h, 16).unwrap_or_default();
        let mod_at = elf.ptr(h, 16 + ptr_size).unwrap_or_default();
        (
            read_go_string(&elf, vers_at)?,
            read_go_string(&elf, mod_at)?,
        )
    };
    if vers.is_empty() {
        return Ok(None);
    }
    Ok(Some(parse_modinfo(
        String::from_utf8_lossy(&vers).into_owned(),
        &modinfo,
    )))
}

/// The first `MAGIC` at a 16-byte boundary with a whole header after it.
fn find_header(data: &[u8]) -> Option<usize> {
    (0..data.len())
        .step_by(ALIGN)
        .find(|&i| data.len() - i >= HEADER && data[i..].starts_with(MAGIC))
}

/// Go's `readString`: a string header (pointer, length) at `addr`, then its bytes.
pub fn read_go_string<R: ReadAt + ?Sized>(elf: &Elf<'_, R>, addr: u64) -> Result<Vec<u8>, String> {
    let ps = elf.ptr_size();
    let Ok(hdr) = elf.read_data(addr, 2 * ps) else {
        return Ok(Vec::new());
    };
    let (Some(data_at), Some(len)) = (elf.ptr(&hdr, 0), elf.ptr(&hdr, ps as usize)) else {
        return Ok(Vec::new());
    };
    if len == 0 || len > MAX_STRING {
        return Ok(Vec::new());
    }
    Ok(elf.read_data(data_at, len).unwrap_or_default())
}

/// Strips the sentinels (`len >= 33` and a newline 17 bytes from the end, as Go checks) and
/// reads the `path`, `mod` and `build` lines.
fn parse_modinfo(go_version: String, modinfo: &[u8]) -> BuildInfo {
    let mut info = BuildInfo {
        go_version,
        ..Default::default()
    };
    let n = modinfo.len();
    if n < 33 || modinfo[n - 17] != b'\n' {
        return info;
    }
    let text = String::from_utf8_lossy(&modinfo[16..n - 16]).into_owned();
    for line in text.lines() {
        let mut f = line.split('\t');
        match (f.next(), f.next(), f.next()) {
            (Some("path"), Some(p), _) => info.path = Some(p.to_string()),
            (Some("mod"), Some(_), Some(v)) if v != "(devel)" => {
                info.main_version = Some(v.to_string())
            }
            (Some("build"), Some(kv), _) => {
                if let Some((k, v)) = kv.split_once('=') {
                    info.settings.push((k.to_string(), unquote(v)));
                }
            }
            _ => {}
        }
    }
    info
}

/// Go quotes a build setting value (`strconv.Quote`) when it has spaces, quotes or `=`.
fn unquote(v: &str) -> String {
    let Some(inner) = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) else {
        return v.to_string();
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

#[cfg(test)]
mod tests;
