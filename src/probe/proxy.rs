//! HTTPS_PROXY / HTTP_PROXY / NO_PROXY as Go's `golang.org/x/net/http/httpproxy` reads them
//! (`FromEnvironment`, `parseProxy`, `config.init`, `useProxy`, `canonicalAddr`) — what the
//! runtimes' `http.ProxyFromEnvironment` uses — and the SOCKS5 handshake Go's transport speaks
//! (`net/internal/socks`, `golang.org/x/net/internal/socks`):
//!
//! - `https` requests use HTTPS_PROXY (else https_proxy), `http` ones HTTP_PROXY; the first
//!   non-empty variable wins; a proxy without a scheme is `http://`;
//! - `localhost` and loopback IPs are never proxied;
//! - NO_PROXY, comma-separated, lower-cased: `*` disables the proxy; a CIDR matches IPs in it;
//!   an IP (optionally `:port`) matches that IP; `.corp` and `*.corp` match subdomains of corp
//!   only; `corp` matches corp itself and its subdomains; a `:port` must equal the request's
//!   port (443/80 when the URL has none). IPs are never matched by name entries.
//! - proxy schemes: `http` (CONNECT), `https` (TLS to the proxy with the endpoint's trust, then
//!   CONNECT), `socks5`/`socks5h` (SOCKS5, no auth or username/password); others fail the dial.
//!
//! The agent's environment should carry the runtime's proxy settings (the DaemonSet/systemd unit
//! say so); regtrust cannot read containerd's environment from a container.

use std::net::IpAddr;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The proxy settings in effect.
#[derive(Debug, Clone, Default)]
pub struct ProxyEnv {
    pub https_proxy: Option<String>,
    pub http_proxy: Option<String>,
    pub no_proxy: String,
}

/// How a proxy is spoken to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyScheme {
    Http,
    Https,
    Socks5,
    /// A scheme Go's transport refuses (`proxyconnect: unknown scheme`).
    Unsupported,
}

/// One proxy to use for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proxy {
    pub scheme: ProxyScheme,
    /// The URL's scheme as written (for messages).
    pub scheme_text: String,
    /// Host (IPv6 without brackets).
    pub host: String,
    pub port: u16,
    /// `user:password` from the URL, percent-encoding kept as written.
    pub userinfo: Option<String>,
}

impl Proxy {
    /// `host:port` (IPv6 in brackets).
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// How reports name it: `host:port` for an HTTP proxy, else `scheme://host:port`.
    pub fn display(&self) -> String {
        match self.scheme {
            ProxyScheme::Http => self.authority(),
            _ => format!("{}://{}", self.scheme_text, self.authority()),
        }
    }
}

impl ProxyEnv {
    pub fn from_env() -> Self {
        // httpproxy `getEnvAny`: the first variable that is set and not empty.
        let var = |a: &str, b: &str| {
            [a, b]
                .iter()
                .filter_map(|n| std::env::var(n).ok())
                .find(|v| !v.is_empty())
        };
        ProxyEnv {
            https_proxy: var("HTTPS_PROXY", "https_proxy"),
            http_proxy: var("HTTP_PROXY", "http_proxy"),
            no_proxy: var("NO_PROXY", "no_proxy").unwrap_or_default(),
        }
    }

    /// The proxy `host:port` (or `scheme://host:port`) for `scheme://host:port`, if any.
    pub fn proxy_for(&self, scheme: &str, host: &str, port: u16) -> Option<String> {
        self.proxy(scheme, host, port).map(|p| p.display())
    }

    /// The proxy for a request to `scheme://host:port`, if any (`proxyForURL`).
    pub fn proxy(&self, scheme: &str, host: &str, port: u16) -> Option<Proxy> {
        let raw = match scheme {
            "https" => self.https_proxy.as_ref()?,
            "http" => self.http_proxy.as_ref()?,
            _ => return None,
        };
        let proxy = parse_proxy(raw)?;
        self.use_proxy(host, port).then_some(proxy)
    }

    /// `useProxy`: false when NO_PROXY (or loopback) exempts `host:port`.
    fn use_proxy(&self, host: &str, port: u16) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host == "localhost" {
            return false;
        }
        let ip = host.parse::<IpAddr>().ok();
        if ip.is_some_and(|i| i.is_loopback()) {
            return false;
        }
        let host = host.trim().to_ascii_lowercase();
        let port = port.to_string();
        !no_proxy_matchers(&self.no_proxy)
            .iter()
            .any(|m| m.matches(&host, &port, ip))
    }
}

/// `parseProxy`: a URL; without a scheme or host, `http://` is prepended.
fn parse_proxy(raw: &str) -> Option<Proxy> {
    let (scheme, rest) = match raw.split_once("://") {
        Some((s, r)) if !s.is_empty() && !r.is_empty() => (s.to_ascii_lowercase(), r),
        _ => ("http".to_string(), raw),
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u.to_string()), h),
        None => (None, authority),
    };
    let (host, port) = crate::trust::split_host_port(hostport);
    if host.is_empty() {
        return None;
    }
    let (kind, default_port) = match scheme.as_str() {
        "http" => (ProxyScheme::Http, 80),
        "https" => (ProxyScheme::Https, 443),
        "socks5" | "socks5h" => (ProxyScheme::Socks5, 1080),
        _ => (ProxyScheme::Unsupported, 0),
    };
    Some(Proxy {
        scheme: kind,
        scheme_text: scheme,
        host: host.to_string(),
        port: port.unwrap_or(default_port),
        userinfo,
    })
}

/// One NO_PROXY entry, as `config.init` classifies it.
#[derive(Debug, Clone, PartialEq)]
enum Matcher {
    All,
    Cidr(IpAddr, u32),
    Ip(IpAddr, String),
    /// `.suffix`, port, and whether the suffix without its dot also matches (`corp`, `*.corp`).
    Domain(String, String, bool),
}

impl Matcher {
    fn matches(&self, host: &str, port: &str, ip: Option<IpAddr>) -> bool {
        let port_ok = |p: &str| p.is_empty() || p == port;
        match self {
            Matcher::All => true,
            Matcher::Cidr(net, bits) => ip.is_some_and(|i| cidr_contains(*net, *bits, i)),
            Matcher::Ip(want, p) => ip == Some(*want) && port_ok(p),
            Matcher::Domain(suffix, p, match_host) => {
                ip.is_none()
                    && (host.ends_with(suffix.as_str()) || (*match_host && host == &suffix[1..]))
                    && port_ok(p)
            }
        }
    }
}

/// `config.init`: the NO_PROXY entries in order; `*` anywhere replaces them all.
fn no_proxy_matchers(no_proxy: &str) -> Vec<Matcher> {
    let mut out = Vec::new();
    for p in no_proxy.split(',') {
        let p = p.trim().to_ascii_lowercase();
        if p.is_empty() {
            continue;
        }
        if p == "*" {
            return vec![Matcher::All];
        }
        if let Some((net, bits)) = p.split_once('/') {
            if let (Ok(net), Ok(bits)) = (net.parse::<IpAddr>(), bits.parse::<u32>()) {
                let max = if net.is_ipv4() { 32 } else { 128 };
                if bits <= max {
                    out.push(Matcher::Cidr(net, bits));
                    continue;
                }
            }
        }
        let (mut phost, pport) = split_entry(&p);
        if phost.starts_with('[') && phost.ends_with(']') && phost.len() >= 2 {
            phost = phost[1..phost.len() - 1].to_string();
        }
        if let Ok(ip) = phost.parse::<IpAddr>() {
            out.push(Matcher::Ip(ip, pport));
            continue;
        }
        if phost.is_empty() {
            continue;
        }
        if let Some(rest) = phost.strip_prefix("*.") {
            phost = format!(".{rest}");
        }
        let match_host = !phost.starts_with('.');
        if match_host {
            phost = format!(".{phost}");
        }
        out.push(Matcher::Domain(phost, pport, match_host));
    }
    out
}

/// `net.SplitHostPort` for a NO_PROXY entry: `host:port` or `[v6]:port`; anything else is a host.
fn split_entry(p: &str) -> (String, String) {
    if let Some(rest) = p.strip_prefix('[') {
        if let Some((h, port)) = rest.split_once("]:") {
            return (format!("[{h}]"), port.to_string());
        }
        return (p.to_string(), String::new());
    }
    match p.rsplit_once(':') {
        Some((h, port)) if !h.contains(':') => (h.to_string(), port.to_string()),
        _ => (p.to_string(), String::new()),
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

/// SOCKS5 `CONNECT host:port` over `s` as Go's socks dialer does: no authentication, or
/// username/password (RFC 1929) when the proxy URL has userinfo; the target name is sent as a
/// domain name unless it is an IP. Errors use Go's words.
pub async fn socks5_connect<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    proxy: &Proxy,
    host: &str,
    port: u16,
) -> Result<(), String> {
    let io = |e: std::io::Error| format!("socks connect {}: {e}", proxy.authority());
    let methods: &[u8] = if proxy.userinfo.is_some() {
        &[0, 2]
    } else {
        &[0]
    };
    let mut hello = vec![5, methods.len() as u8];
    hello.extend_from_slice(methods);
    s.write_all(&hello).await.map_err(io)?;
    let mut reply = [0u8; 2];
    s.read_exact(&mut reply).await.map_err(io)?;
    match (reply, &proxy.userinfo) {
        ([5, 0], _) => {}
        ([5, 2], Some(ui)) => socks5_auth(s, ui).await.map_err(io)?,
        ([5, m], _) => {
            return Err(format!(
                "socks connect {}: unsupported authentication method {m}",
                proxy.authority()
            ))
        }
        (r, _) => {
            return Err(format!(
                "socks connect {}: unexpected protocol version {}",
                proxy.authority(),
                r[0]
            ))
        }
    }
    let mut req = vec![5, 1, 0];
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(a)) => {
            req.push(1);
            req.extend_from_slice(&a.octets());
        }
        Ok(IpAddr::V6(a)) => {
            req.push(4);
            req.extend_from_slice(&a.octets());
        }
        Err(_) if host.len() <= 255 => {
            req.extend_from_slice(&[3, host.len() as u8]);
            req.extend_from_slice(host.as_bytes());
        }
        Err(_) => return Err(format!("socks connect {host}: FQDN too long")),
    }
    req.extend_from_slice(&port.to_be_bytes());
    s.write_all(&req).await.map_err(io)?;
    let mut head = [0u8; 4];
    s.read_exact(&mut head).await.map_err(io)?;
    if head[1] != 0 {
        return Err(format!(
            "socks connect tcp {}->{host}:{port}: unknown error {}",
            proxy.authority(),
            socks_reply(head[1])
        ));
    }
    let skip = match head[3] {
        1 => 4,
        4 => 16,
        3 => {
            let mut n = [0u8; 1];
            s.read_exact(&mut n).await.map_err(io)?;
            n[0] as usize
        }
        t => {
            return Err(format!(
                "socks connect {}: unknown address type {t}",
                proxy.authority()
            ))
        }
    };
    let mut rest = vec![0u8; skip + 2];
    s.read_exact(&mut rest).await.map_err(io)?;
    Ok(())
}

async fn socks5_auth<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    userinfo: &str,
) -> std::io::Result<()> {
    let (user, pass) = userinfo.split_once(':').unwrap_or((userinfo, ""));
    if user.len() > 255 || pass.len() > 255 {
        return Err(std::io::Error::other("invalid username/password"));
    }
    let mut req = vec![1, user.len() as u8];
    req.extend_from_slice(user.as_bytes());
    req.push(pass.len() as u8);
    req.extend_from_slice(pass.as_bytes());
    s.write_all(&req).await?;
    let mut reply = [0u8; 2];
    s.read_exact(&mut reply).await?;
    if reply[1] != 0 {
        return Err(std::io::Error::other(
            "username/password authentication failed",
        ));
    }
    Ok(())
}

/// Go's names for SOCKS5 reply codes (`socks.Reply.String`).
fn socks_reply(code: u8) -> String {
    match code {
        1 => "general SOCKS server failure".into(),
        2 => "connection not allowed by ruleset".into(),
        3 => "network unreachable".into(),
        4 => "host unreachable".into(),
        5 => "connection refused".into(),
        6 => "TTL expired".into(),
        7 => "command not supported".into(),
        8 => "address type not supported".into(),
        c => format!("unknown code: {c}"),
    }
}

#[cfg(test)]
#[path = "proxy_tests.rs"]
mod tests;
