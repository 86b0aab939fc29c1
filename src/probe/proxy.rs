//! HTTPS_PROXY / HTTP_PROXY / NO_PROXY with Go's `httpproxy` semantics (what the runtimes use).
//!
//! - `https` endpoints use HTTPS_PROXY (or https_proxy), `http` ones HTTP_PROXY;
//! - `localhost` and loopback IPs are never proxied;
//! - NO_PROXY: `*`; comma-separated hosts, `.domain` or `domain` (both match subdomains),
//!   IPs and CIDRs, each optionally with `:port`.
//!
//! The agent's environment should carry the runtime's proxy settings (the DaemonSet/systemd unit
//! say so); regtrust cannot read containerd's environment from a container.

use std::net::IpAddr;

/// The proxy settings in effect.
#[derive(Debug, Clone, Default)]
pub struct ProxyEnv {
    pub https_proxy: Option<String>,
    pub http_proxy: Option<String>,
    pub no_proxy: String,
}

impl ProxyEnv {
    pub fn from_env() -> Self {
        let var = |a: &str, b: &str| {
            std::env::var(a)
                .ok()
                .or_else(|| std::env::var(b).ok())
                .filter(|v| !v.is_empty())
        };
        ProxyEnv {
            https_proxy: var("HTTPS_PROXY", "https_proxy"),
            http_proxy: var("HTTP_PROXY", "http_proxy"),
            no_proxy: var("NO_PROXY", "no_proxy").unwrap_or_default(),
        }
    }

    /// The proxy `host:port` to use for `scheme://host:port`, if any.
    pub fn proxy_for(&self, scheme: &str, host: &str, port: u16) -> Option<String> {
        let proxy = if scheme == "https" {
            self.https_proxy.as_ref()?
        } else {
            self.http_proxy.as_ref()?
        };
        if !self.use_proxy(host, port) {
            return None;
        }
        let without_scheme = proxy.split_once("://").map(|(_, r)| r).unwrap_or(proxy);
        let authority = without_scheme.split('/').next().unwrap_or_default();
        let authority = authority
            .rsplit_once('@')
            .map(|(_, h)| h)
            .unwrap_or(authority);
        if authority.is_empty() {
            return None;
        }
        Some(if crate::trust::split_host_port(authority).1.is_some() {
            authority.to_string()
        } else if proxy.starts_with("https://") {
            format!("{authority}:443")
        } else {
            format!("{authority}:80")
        })
    }

    fn use_proxy(&self, host: &str, port: u16) -> bool {
        let host = host.to_ascii_lowercase();
        if host == "localhost" {
            return false;
        }
        let ip = host.parse::<IpAddr>().ok();
        if ip.map(|i| i.is_loopback()).unwrap_or(false) {
            return false;
        }
        for entry in self
            .no_proxy
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
        {
            if entry == "*" {
                return false;
            }
            if let Some((net, bits)) = entry.split_once('/') {
                if let (Some(ip), Ok(net), Ok(bits)) =
                    (ip, net.parse::<IpAddr>(), bits.parse::<u32>())
                {
                    if cidr_contains(net, bits, ip) {
                        return false;
                    }
                }
                continue;
            }
            let (ehost, eport) = match crate::trust::split_host_port(entry) {
                (h, Some(p)) => (h.to_ascii_lowercase(), Some(p)),
                (h, None) => (h.to_ascii_lowercase(), None),
            };
            if eport.is_some_and(|p| p != port) {
                continue;
            }
            if let (Some(ip), Ok(eip)) = (ip, ehost.parse::<IpAddr>()) {
                if ip == eip {
                    return false;
                }
                continue;
            }
            let domain = ehost.trim_start_matches("*.").trim_start_matches('.');
            if host == domain || host.ends_with(&format!(".{domain}")) {
                return false;
            }
        }
        true
    }
}

pub(crate) fn cidr_contains(net: IpAddr, bits: u32, ip: IpAddr) -> bool {
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) if bits <= 32 => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            u32::from(n) & mask == u32::from(i) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(i)) if bits <= 128 => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            u128::from(n) & mask == u128::from(i) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(no_proxy: &str) -> ProxyEnv {
        ProxyEnv {
            https_proxy: Some("http://proxy.test:3128".into()),
            http_proxy: None,
            no_proxy: no_proxy.into(),
        }
    }

    #[test]
    fn go_no_proxy_rules() {
        assert_eq!(
            env("").proxy_for("https", "r.example.com", 443).as_deref(),
            Some("proxy.test:3128")
        );
        assert_eq!(env("").proxy_for("https", "127.0.0.1", 5000), None);
        assert_eq!(env("").proxy_for("https", "localhost", 5000), None);
        assert_eq!(env("").proxy_for("http", "r.example.com", 80), None);
        assert_eq!(
            env("example.com").proxy_for("https", "r.example.com", 443),
            None
        );
        assert_eq!(
            env(".example.com").proxy_for("https", "example.com", 443),
            None
        );
        assert_eq!(env("10.0.0.0/8").proxy_for("https", "10.1.2.3", 443), None);
        assert!(env("10.0.0.0/8")
            .proxy_for("https", "11.1.2.3", 443)
            .is_some());
        assert!(env("r.example.com:5000")
            .proxy_for("https", "r.example.com", 443)
            .is_some());
        assert_eq!(
            env("r.example.com:5000").proxy_for("https", "r.example.com", 5000),
            None
        );
        assert_eq!(env("*").proxy_for("https", "r.example.com", 443), None);
    }
}
