//! The build-info reader on synthetic ELF files in both of Go's layouts, and on the real
//! binaries of this machine (Debian's containerd and skopeo, built with go1.19.8).

use super::*;

/// Go's module-info framing: 16-byte sentinels around the text, a newline 17 bytes from the end.
fn framed(text: &str) -> Vec<u8> {
    let mut m = vec![0x30u8; 16];
    m.extend_from_slice(text.as_bytes());
    if !text.ends_with('\n') {
        m.push(b'\n');
    }
    m.extend_from_slice(&[0xf9u8; 16]);
    m
}

fn uvarint(mut n: usize, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// A minimal little-endian ELF64 with one writable PT_LOAD segment at `VADDR` holding `data`
/// at file offset `DATA_OFF` (no sections: `DataStart` falls back to the segment).
const VADDR: u64 = 0x40_0000;
const DATA_OFF: u64 = 0x100;

fn elf64(data: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; DATA_OFF as usize];
    f[..4].copy_from_slice(b"\x7fELF");
    f[4] = 2; // 64-bit
    f[5] = 1; // little endian
    f[6] = 1;
    f[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
    f[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
    f[56..58].copy_from_slice(&1u16.to_le_bytes()); // e_phnum
    let ph = &mut f[64..120];
    ph[0..4].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    ph[4..8].copy_from_slice(&6u32.to_le_bytes()); // PF_W | PF_R
    ph[8..16].copy_from_slice(&DATA_OFF.to_le_bytes());
    ph[16..24].copy_from_slice(&VADDR.to_le_bytes());
    ph[32..40].copy_from_slice(&(data.len() as u64).to_le_bytes());
    f.extend_from_slice(data);
    f
}

fn header(flags: u8) -> Vec<u8> {
    let mut h = MAGIC.to_vec();
    h.push(8);
    h.push(flags);
    h.resize(HEADER, 0);
    h
}

const MODINFO: &str = "path\tgithub.com/containerd/containerd/cmd/containerd\nmod\tgithub.com/containerd/containerd\tv1.7.13\t\nbuild\t-ldflags=\"-X github.com/containerd/containerd/version.Version=v1.7.13 -s -w\"\nbuild\tCGO_ENABLED=1\n";

#[test]
fn inline_strings_format_of_go_1_18_and_later() {
    // Some junk first, and a misaligned magic Go must skip.
    let mut data = vec![0u8; 48];
    data[3..3 + MAGIC.len()].copy_from_slice(MAGIC);
    let mut blob = header(2);
    let (v, m) = (b"go1.22.5".to_vec(), framed(MODINFO));
    uvarint(v.len(), &mut blob);
    blob.extend_from_slice(&v);
    uvarint(m.len(), &mut blob);
    blob.extend_from_slice(&m);
    data.extend_from_slice(&blob);
    let info = read(elf64(&data).as_slice()).unwrap().expect("a Go binary");
    assert_eq!(info.go_version, "go1.22.5");
    assert_eq!(
        info.path.as_deref(),
        Some("github.com/containerd/containerd/cmd/containerd")
    );
    assert_eq!(info.main_version.as_deref(), Some("v1.7.13"));
    assert_eq!(info.setting("CGO_ENABLED"), Some("1"));
    assert_eq!(
        info.ldflag_x("github.com/containerd/containerd/version.Version")
            .as_deref(),
        Some("v1.7.13")
    );
    assert_eq!(info.ldflag_x("github.com/other/version.Version"), None);
}

#[test]
fn pointer_format_of_older_go() {
    // Header with two pointers to Go string headers; the strings live further on.
    let mut data = header(0);
    let vers = b"go1.17.13".to_vec();
    let m =
        framed("path\tgithub.com/cri-o/cri-o/cmd/crio\nmod\tgithub.com/cri-o/cri-o\t(devel)\t\n");
    let hdr_at = 64u64; // two string headers (ptr, len) at offsets 64 and 80
    let vers_at = 96u64;
    let mod_at = vers_at + vers.len() as u64;
    data[16..24].copy_from_slice(&(VADDR + hdr_at).to_le_bytes());
    data[24..32].copy_from_slice(&(VADDR + hdr_at + 16).to_le_bytes());
    data.resize(hdr_at as usize, 0);
    for (at, len) in [(vers_at, vers.len()), (mod_at, m.len())] {
        data.extend_from_slice(&(VADDR + at).to_le_bytes());
        data.extend_from_slice(&(len as u64).to_le_bytes());
    }
    data.extend_from_slice(&vers);
    data.extend_from_slice(&m);
    let info = read(elf64(&data).as_slice()).unwrap().expect("a Go binary");
    assert_eq!(info.go_version, "go1.17.13");
    assert_eq!(
        info.path.as_deref(),
        Some("github.com/cri-o/cri-o/cmd/crio")
    );
    // `(devel)` is no version.
    assert_eq!(info.main_version, None);
}

#[test]
fn not_go_not_elf_and_broken_headers() {
    assert_eq!(read(b"#!/bin/sh\necho hi\n".as_slice()).unwrap(), None);
    assert_eq!(read(elf64(&[0u8; 256]).as_slice()).unwrap(), None);
    // A magic too close to the end has no whole header: not Go.
    let mut short = vec![0u8; 16];
    short.extend_from_slice(MAGIC);
    assert_eq!(read(elf64(&short).as_slice()).unwrap(), None);
    // A string length past the data: not decoded, not a panic.
    let mut blob = header(2);
    blob.extend_from_slice(&[0xff, 0x7f]);
    assert_eq!(read(elf64(&blob).as_slice()).unwrap(), None);
    let mut bad = elf64(&[]);
    bad[4] = 9;
    assert!(read(bad.as_slice()).is_err());
}

/// The oracle: Debian's package metadata (`Built-Using: golang-1.19 (= 1.19.8-2)`) names the
/// toolchain each binary was built with.
fn debian_built_with(package: &str) -> String {
    let out = std::process::Command::new("dpkg")
        .args(["-s", package])
        .output()
        .expect("dpkg runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let built = text
        .lines()
        .find_map(|l| l.strip_prefix("Built-Using:"))
        .expect("Built-Using in the package metadata");
    let golang = built
        .split(',')
        .find_map(|dep| dep.trim().strip_prefix("golang-1."))
        .expect("a golang toolchain in Built-Using");
    // "19 (= 1.19.8-2)" -> "go1.19.8"
    let version = golang
        .split("(= ")
        .nth(1)
        .and_then(|v| v.split(['-', ')']).next())
        .expect("a version");
    format!("go{version}")
}

#[test]
fn reads_this_machines_containerd_and_skopeo() {
    for (bin, package) in [
        ("/usr/bin/containerd", "containerd"),
        ("/usr/bin/skopeo", "skopeo"),
    ] {
        let f = crate::hostroot::RegularFile::open(
            std::path::Path::new(bin),
            crate::hostroot::Follow::Yes,
        )
        .unwrap_or_else(|e| panic!("{bin} is installed by the test setup: {e}"));
        let info = read(&f).unwrap().expect("a Go binary");
        assert_eq!(info.go_version, debian_built_with(package), "{bin}");
        assert!(info.path.is_some(), "{bin}");
    }
}
