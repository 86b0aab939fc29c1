//! Go's `VerifyHostname` and `HostnameError`, rule for rule (crypto/x509 verify.go):
//! - an IP literal (optionally in `[ ]`) matches only IP SANs, by `net.IP.Equal` (an IPv4 and
//!   its IPv4-mapped IPv6 form are equal);
//! - a name is lower-cased (ASCII only); when it is a valid host name (`validHostnameInput`,
//!   one trailing dot allowed) and the SAN a valid pattern (`validHostnamePattern`: no trailing
//!   dot, no empty label, letters, digits, `-` not first, `_`, and `*` only as the whole first
//!   label — but not a bare `*` from go1.23, [`GoVersion::rejects_bare_wildcard`]), they match
//!   label by label with `*` standing for one label; otherwise only an exact (case-insensitive)
//!   match counts. So a SAN pattern Go considers invalid never matches as a pattern: a SAN `*`
//!   matches a single-label host (`localhost`) in go1.19 and nothing later;
//! - the Common Name is never used, but a certificate without SANs whose CN would match gets
//!   Go's "relies on legacy Common Name field" text.
//!
//! Never does: I/O.

use std::net::IpAddr;

use super::GoVersion;
use crate::cert::Cert;

/// Go's `HostnameError`, with its exact wording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostnameError {
    /// What Go keeps as `Host`: the IP without brackets, or the name as dialled.
    pub host: String,
    pub dns_names: Vec<String>,
    pub ip_addrs: Vec<IpAddr>,
    /// No SAN extension and the Common Name would have matched.
    pub legacy_cn: bool,
}

impl std::fmt::Display for HostnameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.legacy_cn {
            return f.write_str(
                "x509: certificate relies on legacy Common Name field, use SANs instead",
            );
        }
        let valid = if self.host.parse::<IpAddr>().is_ok() {
            if self.ip_addrs.is_empty() {
                return write!(
                    f,
                    "x509: cannot validate certificate for {} because it doesn't contain any IP SANs",
                    self.host
                );
            }
            self.ip_addrs
                .iter()
                .map(|i| i.to_canonical().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        } else {
            self.dns_names.join(", ")
        };
        if valid.is_empty() {
            write!(
                f,
                "x509: certificate is not valid for any names, but wanted to match {}",
                self.host
            )
        } else {
            write!(
                f,
                "x509: certificate is valid for {valid}, not {}",
                self.host
            )
        }
    }
}

pub fn verify_hostname(leaf: &Cert, host: &str, go: GoVersion) -> Result<(), HostnameError> {
    let candidate_ip = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(inner) if host.len() >= 3 => inner,
        _ => host,
    };
    let err = |h: &str| HostnameError {
        host: h.to_string(),
        dns_names: leaf.dns_names.clone(),
        ip_addrs: leaf.ip_addrs.clone(),
        legacy_cn: !leaf.has_san_ext && match_hostnames(&leaf.common_name, h),
    };
    if let Ok(ip) = candidate_ip.parse::<IpAddr>() {
        let ip = ip.to_canonical();
        return if leaf.ip_addrs.iter().any(|c| c.to_canonical() == ip) {
            Ok(())
        } else {
            Err(err(candidate_ip))
        };
    }
    let name = host.to_ascii_lowercase();
    let valid_name = valid_hostname(&name, false, go);
    let found = leaf.dns_names.iter().any(|pattern| {
        if valid_name && valid_hostname(pattern, true, go) {
            match_hostnames(pattern, &name)
        } else {
            match_exactly(pattern, &name)
        }
    });
    if found {
        Ok(())
    } else {
        Err(err(host))
    }
}

/// Go's `validHostname`: an input may end in one dot; a pattern may start with a `*` label, but
/// from go1.23 is not a bare `*`.
fn valid_hostname(host: &str, is_pattern: bool, go: GoVersion) -> bool {
    let host = if is_pattern {
        host
    } else {
        host.strip_suffix('.').unwrap_or(host)
    };
    if host.is_empty() || (host == "*" && go.rejects_bare_wildcard()) {
        return false;
    }
    host.split('.').enumerate().all(|(i, part)| {
        if part.is_empty() {
            return false;
        }
        if is_pattern && i == 0 && part == "*" {
            return true;
        }
        part.chars()
            .enumerate()
            .all(|(j, c)| c.is_ascii_alphanumeric() || (c == '-' && j != 0) || c == '_')
    })
}

/// Go's `matchExactly`: case-insensitive equality, never of an empty name or a lone dot.
fn match_exactly(a: &str, b: &str) -> bool {
    if a.is_empty() || a == "." || b.is_empty() || b == "." {
        return false;
    }
    a.eq_ignore_ascii_case(b)
}

/// Go's `matchHostnames`: the host loses one trailing dot (the pattern does not); equal label
/// counts; a first pattern label `*` matches any one label.
fn match_hostnames(pattern: &str, host: &str) -> bool {
    let pattern = pattern.to_ascii_lowercase();
    let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    if pattern.is_empty() || host.is_empty() {
        return false;
    }
    let pl: Vec<&str> = pattern.split('.').collect();
    let hl: Vec<&str> = host.split('.').collect();
    if pl.len() != hl.len() {
        return false;
    }
    pl.iter()
        .zip(&hl)
        .enumerate()
        .all(|(i, (a, b))| (i == 0 && *a == "*") || a == b)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How Go matches a SAN `pattern` against a dialled `host` (VerifyHostname's name branch).
    fn go_match(pattern: &str, host: &str) -> bool {
        go_match_at(GoVersion::NEWEST, pattern, host)
    }

    fn go_match_at(go: GoVersion, pattern: &str, host: &str) -> bool {
        let name = host.to_ascii_lowercase();
        if valid_hostname(&name, false, go) && valid_hostname(pattern, true, go) {
            match_hostnames(pattern, &name)
        } else {
            match_exactly(pattern, &name)
        }
    }

    #[test]
    fn wildcards_cover_one_label_only() {
        assert!(go_match("*.example.com", "reg.example.com"));
        assert!(!go_match("*.example.com", "a.reg.example.com"));
        assert!(!go_match("*.example.com", "example.com"));
        assert!(go_match("Registry.Test", "registry.test."));
        assert!(!go_match("registry.test", "registry.tes"));
    }

    #[test]
    fn patterns_go_refuses_never_match_as_patterns() {
        // A SAN with a trailing dot is not a valid pattern: only an exact match would do.
        assert!(!go_match("registry.test.", "registry.test"));
        assert!(go_match("registry.test.", "registry.test."));
        // `*` only as the whole first label; partial wildcards are literal characters.
        assert!(!go_match("reg*.example.com", "registry.example.com"));
        assert!(!go_match("a.*.example.com", "a.b.example.com"));
        // Underscores are tolerated, a leading hyphen is not (then only exact matches).
        assert!(go_match("*.my_corp.test", "r.my_corp.test"));
        assert!(!go_match("*.-bad.test", "r.-bad.test"));
        assert!(!go_match("", "") && !match_exactly(".", "."));
    }

    /// crypto/x509 verify.go `validHostname` per Go version: go1.19.8 (Debian's source) takes a
    /// bare `*` as a pattern, so it matches any single-label host (and only those: the label
    /// counts must be equal); from go1.23 (`host == "*"`, `TestVerifyBareWildcard`) it is an
    /// invalid pattern, compared exactly, so it matches nothing a client dials.
    #[test]
    fn bare_wildcard_per_go_version() {
        let v = GoVersion::new;
        for go in [v(19, 8), v(22, 12)] {
            assert!(go_match_at(go, "*", "localhost"), "{go}");
            assert!(go_match_at(go, "*", "Registry."), "{go}");
            assert!(!go_match_at(go, "*", "registry.test"), "{go}");
        }
        for go in [v(23, 0), v(24, 7), GoVersion::NEWEST] {
            assert!(!go_match_at(go, "*", "localhost"), "{go}");
            assert!(!go_match_at(go, "*", "registry.test"), "{go}");
            // Other patterns are unchanged.
            assert!(go_match_at(go, "*.test", "registry.test"), "{go}");
            assert!(go_match_at(go, "localhost", "localhost"), "{go}");
        }
        // An input `*` is never a valid host name, in any version.
        assert!(!valid_hostname("*", false, v(19, 8)));
        assert!(valid_hostname("*", true, v(19, 8)));
        assert!(!valid_hostname("*", true, v(23, 0)));
    }
}
