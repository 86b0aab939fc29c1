//! Minimal HTTP/1.1 head parsing, shared by the probe (registry responses) and the agent's
//! listener (requests). Both read a bounded head themselves; this only looks inside it.
//!
//! Never does: I/O.

/// Most characters of a header value kept (a redirect's Location, an Authorization header).
pub const MAX_HEADER_VALUE_CHARS: usize = 4096;

/// The first value of header `name` (case-insensitive) in a head: the lines after the first, up
/// to the blank line.
pub fn header(head: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(head);
    text.lines()
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().chars().take(MAX_HEADER_VALUE_CHARS).collect())
        })
}

#[cfg(test)]
mod tests {
    use super::header;

    #[test]
    fn finds_headers_case_insensitively_and_only_in_the_head() {
        let head = b"HTTP/1.1 302 Found\r\nlocation:  /v2/  \r\nX-A: b\r\n\r\nLocation: body";
        assert_eq!(header(head, "Location").as_deref(), Some("/v2/"));
        assert_eq!(header(head, "x-a").as_deref(), Some("b"));
        assert_eq!(
            header(b"GET / HTTP/1.1\r\n\r\nAuthorization: x", "authorization"),
            None
        );
    }
}
