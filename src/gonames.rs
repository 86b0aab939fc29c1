//! Go's syntax for names in certificates, shared by parsing ([`crate::cert`]) and name
//! constraints ([`crate::verify::names`]): `domainToReverseLabels`, `parseRFC2821Mailbox` and
//! the `%q` quoting of Go's error texts.
//!
//! Never does: I/O.

/// Go's `%q` for the strings in these errors: printable text as is, `"` and `\` escaped,
/// control characters as Go escapes them.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `domainToReverseLabels`: `None` for an absolute name, an empty label or a byte outside
/// 33..=126.
pub fn reverse_labels(domain: &str) -> Option<Vec<&str>> {
    if domain.is_empty() {
        return Some(Vec::new());
    }
    let labels: Vec<&str> = domain.rsplit('.').collect();
    let printable = |l: &&str| !l.is_empty() && l.chars().all(|c| ('!'..='~').contains(&c));
    labels.iter().all(printable).then_some(labels)
}

/// Whether Go's `domainToReverseLabels` accepts `domain` (used for constraints at parse time).
pub fn valid_domain(domain: &str) -> bool {
    reverse_labels(domain).is_some()
}

/// Go's `parseRFC2821Mailbox`: the local part (quoted or dot-atom, unescaped) and the domain.
pub fn parse_mailbox(input: &str) -> Option<(String, String)> {
    let b = input.as_bytes();
    let mut local = Vec::new();
    let mut i = 0;
    if b.first() == Some(&b'"') {
        i = 1;
        loop {
            let c = *b.get(i)?;
            i += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    let q = *b.get(i)?;
                    if matches!(q, 1..=9 | 11 | 12 | 14..=127) {
                        local.push(q);
                        i += 1;
                    } else {
                        return None;
                    }
                }
                1..=8 | 11 | 12 | 14..=31 | 32 | 33 | 35..=91 | 93..=127 => local.push(c),
                _ => return None,
            }
        }
    } else {
        while let Some(&c) = b.get(i) {
            let c = if c == b'\\' {
                i += 1;
                *b.get(i)?
            } else if c.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~.".contains(&c) {
                c
            } else {
                break;
            };
            local.push(c);
            i += 1;
        }
        let bad_dots = local.first() == Some(&b'.')
            || local.last() == Some(&b'.')
            || local.windows(2).any(|w| w == b"..");
        if local.is_empty() || bad_dots {
            return None;
        }
    }
    if b.get(i) != Some(&b'@') {
        return None;
    }
    let domain = &input[i + 1..];
    reverse_labels(domain)?;
    Some((
        String::from_utf8_lossy(&local).into_owned(),
        domain.to_string(),
    ))
}
