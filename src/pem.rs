//! PEM as Go reads it: [`decode`] is Go's `encoding/pem.Decode`, [`scan_certs`] is
//! `CertPool.AppendCertsFromPEM` on top of it. Every PEM file a runtime reads as CAs — the system
//! bundle and directories, `ca` files, `*.crt` files — goes through these two functions, so a
//! block Go skips is skipped here too.
//!
//! `AppendCertsFromPEM` adds every `CERTIFICATE` block without headers whose DER Go's
//! `x509.ParseCertificate` accepts; anything else (other block types, junk between blocks, a
//! block whose base64 is broken, a certificate Go cannot parse) is skipped silently, and the
//! first `BEGIN` line with nothing after it ends the scan. Whether a file yielded *no*
//! certificate matters: containerd fails the pull then, containers/image does not.
//!
//! Rules of `pem.Decode` (go1.19 `encoding/pem/pem.go`, `Decode` and `getLine`), each with a
//! unit test below:
//! - a block starts at `-----BEGIN ` at the start of the input or of a line, and its type line
//!   must end with `-----` (trailing spaces and tabs ignored); otherwise scanning goes on after it;
//! - lines with a `:` right after the type line are headers; input that ends there ends the scan;
//! - the END line is the first `\n-----END ` after them: it must name the same type and have
//!   nothing but spaces or tabs after its `-----`; when it is not right (or missing, or the base64
//!   between does not decode) the block is skipped and scanning resumes after its BEGIN line (and
//!   headers) — so a block without its END line can swallow the next block's END, and is skipped;
//! - lines end with `\n` or `\r\n`; spaces, tabs, `\r` and `\n` inside the base64 are ignored,
//!   padding is required, non-zero trailing bits are accepted (Go's non-strict `StdEncoding`).
//!
//! Finding the END line is done with a precomputed list of `\n-----END ` positions, so a hostile
//! file costs O(n log n), not Go's O(n²) — with the same answer.
//!
//! Never does: file or network I/O.

use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;

const BEGIN: &[u8] = b"\n-----BEGIN ";
const END: &[u8] = b"\n-----END ";
const DASHES: &[u8] = b"-----";

/// Go's `base64.StdEncoding` as `Decode` uses it: padding required, trailing bits ignored.
const GO_STD: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical),
);

/// One PEM block, as Go's `pem.Block`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// The type from the BEGIN line (`CERTIFICATE`), as bytes: Go does not require UTF-8.
    pub kind: Vec<u8>,
    /// Header lines (`Proc-Type: 4,ENCRYPTED`), trimmed, in file order.
    pub headers: Vec<(String, String)>,
    pub bytes: Vec<u8>,
}

/// A PEM input with the positions of its `\n-----END ` markers, for repeated [`Pem::decode`].
pub struct Pem<'a> {
    data: &'a [u8],
    ends: Vec<usize>,
}

impl<'a> Pem<'a> {
    pub fn new(data: &'a [u8]) -> Pem<'a> {
        let ends = memchr::memmem::find_iter(data, END).collect();
        Pem { data, ends }
    }

    /// Go's `pem.Decode` of the input from byte `from`: the next block and the offset of the
    /// rest, or `None` when no block follows (Go's `nil, data`).
    pub fn decode(&self, from: usize) -> Option<(Block, usize)> {
        let data = self.data;
        let mut rest = from.min(data.len());
        loop {
            // The start: `-----BEGIN ` at the very start of what is left, else after a newline.
            if data[rest..].starts_with(&BEGIN[1..]) {
                rest += BEGIN.len() - 1;
            } else {
                rest += memchr::memmem::find(&data[rest..], BEGIN)? + BEGIN.len();
            }
            let (type_line, after) = get_line(data, rest);
            rest = after;
            let Some(kind) = type_line.strip_suffix(DASHES) else {
                continue;
            };
            let mut headers = Vec::new();
            loop {
                if rest == data.len() {
                    return None;
                }
                let (line, next) = get_line(data, rest);
                let Some(colon) = line.iter().position(|&b| b == b':') else {
                    break;
                };
                let trim = |s: &[u8]| String::from_utf8_lossy(s.trim_ascii()).into_owned();
                headers.push((trim(&line[..colon]), trim(&line[colon + 1..])));
                rest = next;
            }
            let end = if headers.is_empty() && data[rest..].starts_with(&END[1..]) {
                // An END line right away: the body is empty (Go's `endIndex = 0`).
                Some((rest, rest + END.len() - 1))
            } else {
                self.next_end(rest).map(|e| (e, e + END.len()))
            };
            let Some((end_index, trailer)) = end else {
                continue;
            };
            let trailer_len = kind.len() + DASHES.len();
            let Some(end_trailer) = data.get(trailer..trailer + trailer_len) else {
                continue;
            };
            if !end_trailer.starts_with(kind) || !end_trailer.ends_with(DASHES) {
                continue;
            }
            if !get_line(data, trailer + trailer_len).0.is_empty() {
                continue;
            }
            let Some(bytes) = go_base64(&data[rest..end_index]) else {
                continue;
            };
            let block = Block {
                kind: kind.to_vec(),
                headers,
                bytes,
            };
            return Some((block, get_line(data, trailer).1));
        }
    }

    /// The first `\n-----END ` at or after `at`.
    fn next_end(&self, at: usize) -> Option<usize> {
        let i = self.ends.partition_point(|&e| e < at);
        self.ends.get(i).copied()
    }
}

/// Go's `getLine` at `at`: the line without its `\n` or `\r\n` and trailing spaces and tabs,
/// and the offset after it.
fn get_line(data: &[u8], at: usize) -> (&[u8], usize) {
    let rest = &data[at..];
    let (mut line, next) = match memchr::memchr(b'\n', rest) {
        Some(i) => (&rest[..i], at + i + 1),
        None => (rest, data.len()),
    };
    if rest.len() > line.len() {
        line = line.strip_suffix(b"\r").unwrap_or(line);
    }
    while let Some((&last, init)) = line.split_last() {
        if last != b' ' && last != b'\t' {
            break;
        }
        line = init;
    }
    (line, next)
}

/// The base64 body as Go decodes it (spaces, tabs, `\r`, `\n` ignored). Stops at the first
/// byte outside the alphabet, so a body that runs into the next block costs only its length.
fn go_base64(body: &[u8]) -> Option<Vec<u8>> {
    let mut clean = Vec::with_capacity(body.len());
    for &b in body {
        match b {
            b' ' | b'\t' | b'\r' | b'\n' => {}
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'+' | b'/' | b'=' => clean.push(b),
            _ => return None,
        }
    }
    GO_STD.decode(&clean).ok()
}

/// Every block of `data`, as repeated calls of Go's `pem.Decode` find them.
pub fn decode_all(data: &[u8]) -> Vec<Block> {
    let pem = Pem::new(data);
    let mut out = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let Some((block, next)) = pem.decode(at) else {
            break;
        };
        out.push(block);
        at = next;
    }
    out
}

/// Result of scanning one PEM file.
#[derive(Debug, Default)]
pub struct PemScan {
    /// DER of each certificate the runtime would add, in file order.
    pub certs: Vec<Vec<u8>>,
    /// Blocks that looked like certificates but were skipped, with why (for findings).
    pub skipped: Vec<String>,
}

/// Scans `data` the way Go's `AppendCertsFromPEM` does. A certificate is kept when
/// [`crate::cert::go_parse_error`] finds nothing wrong with it in any modelled Go; one that only
/// some Go versions refuse (a negative serial number) is kept here and left out of the pool by
/// verification for those versions.
pub fn scan_certs(data: &[u8]) -> PemScan {
    let mut out = PemScan::default();
    let mut cert_blocks = 0;
    for block in decode_all(data) {
        if block.kind != b"CERTIFICATE" {
            continue;
        }
        cert_blocks += 1;
        if !block.headers.is_empty() {
            out.skipped
                .push("a CERTIFICATE block has PEM headers (Go skips it)".into());
            continue;
        }
        match crate::cert::go_parse_error(&block.bytes) {
            None => out.certs.push(block.bytes),
            Some(e) => out.skipped.push(format!(
                "a CERTIFICATE block does not parse as Go parses it ({e}); Go skips it"
            )),
        }
    }
    // What Go skips without a trace, named for the findings: BEGIN lines that gave no block.
    let begins = count_begins(data, b"CERTIFICATE");
    if begins > cert_blocks {
        out.skipped.push(format!(
            "{} CERTIFICATE block(s) without a matching END line or with broken base64 (Go skips them)",
            begins - cert_blocks
        ));
    }
    out
}

/// How many `-----BEGIN KIND-----` lines `data` has (at the start of a line).
fn count_begins(data: &[u8], kind: &[u8]) -> usize {
    let mut line = BEGIN[1..].to_vec();
    line.extend_from_slice(kind);
    line.extend_from_slice(DASHES);
    memchr::memmem::find_iter(data, &line)
        .filter(|&i| i == 0 || data[i - 1] == b'\n')
        .count()
}

/// Encodes DER as one PEM `CERTIFICATE` block.
pub fn encode_cert(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut s = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        s.push_str(&String::from_utf8_lossy(chunk));
        s.push('\n');
    }
    s.push_str("-----END CERTIFICATE-----\n");
    s
}

#[cfg(test)]
mod tests;
