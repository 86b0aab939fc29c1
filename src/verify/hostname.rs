//! Go's `VerifyHostname`: IP literals match only IP SANs; DNS names match DNS SANs (the Common
//! Name is never used); `*` matches exactly one leftmost label; case-insensitive; one trailing dot
//! ignored.
//!
//! Never does: I/O.

use std::net::IpAddr;

use crate::cert::Cert;

/// Go's `HostnameError`, with its exact wording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostnameError {
    pub host: String,
    pub dns_names: Vec<String>,
    pub ip_addrs: Vec<IpAddr>,
}

impl std::fmt::Display for HostnameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
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
                .map(|i| i.to_string())
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

pub fn verify_hostname(leaf: &Cert, host: &str) -> Result<(), HostnameError> {
    let candidate = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let err = || HostnameError {
        host: candidate.to_string(),
        dns_names: leaf.dns_names.clone(),
        ip_addrs: leaf.ip_addrs.clone(),
    };
    if let Ok(ip) = candidate.parse::<IpAddr>() {
        return if leaf.ip_addrs.contains(&ip) {
            Ok(())
        } else {
            Err(err())
        };
    }
    let name = candidate.to_ascii_lowercase();
    if leaf.dns_names.iter().any(|pattern| matches(pattern, &name)) {
        Ok(())
    } else {
        Err(err())
    }
}

fn matches(pattern: &str, host: &str) -> bool {
    let pattern = pattern.to_ascii_lowercase();
    let p = pattern.strip_suffix('.').unwrap_or(&pattern);
    let h = host.strip_suffix('.').unwrap_or(host);
    if p.is_empty() || h.is_empty() {
        return false;
    }
    let pl: Vec<&str> = p.split('.').collect();
    let hl: Vec<&str> = h.split('.').collect();
    if pl.len() != hl.len() {
        return false;
    }
    pl.iter()
        .zip(&hl)
        .enumerate()
        .all(|(i, (a, b))| (i == 0 && *a == "*" && !b.is_empty()) || a == b)
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn wildcards_cover_one_label_only() {
        assert!(matches("*.example.com", "reg.example.com"));
        assert!(!matches("*.example.com", "a.reg.example.com"));
        assert!(!matches("*.example.com", "example.com"));
        assert!(matches("Registry.Test.", "registry.test"));
        assert!(!matches("registry.test", "registry.tes"));
    }
}
