//! Unit tests of [`super`]: NO_PROXY and proxy URLs per `golang.org/x/net/http/httpproxy`
//! `proxy.go` (`config.init`, `useProxy`, `domainMatch.match`, `parseProxy`, `canonicalAddr`), and
//! SOCKS5 per Go's `internal/socks` `Dialer.connect`.

use super::*;

fn env(no_proxy: &str) -> ProxyEnv {
    ProxyEnv {
        https_proxy: Some("http://proxy.test:3128".into()),
        http_proxy: None,
        no_proxy: no_proxy.into(),
    }
}

fn proxied(no_proxy: &str, host: &str, port: u16) -> bool {
    env(no_proxy).proxy_for("https", host, port).is_some()
}

/// proxy.go `useProxy`: localhost and loopback IPs are never proxied; the scheme picks the
/// variable (`proxyForURL`).
#[test]
fn loopback_and_scheme() {
    assert_eq!(
        env("").proxy_for("https", "r.example.com", 443).as_deref(),
        Some("proxy.test:3128")
    );
    assert!(!proxied("", "127.0.0.1", 5000));
    assert!(!proxied("", "127.9.9.9", 5000));
    assert!(!proxied("", "::1", 5000));
    assert!(!proxied("", "localhost", 5000));
    assert_eq!(env("").proxy_for("http", "r.example.com", 80), None);
}

/// proxy.go `config.init` + `domainMatch.match`: `.corp` and `*.corp` match subdomains only;
/// `corp` matches corp and its subdomains; case-insensitive; never a longer name that merely ends
/// in the same letters.
#[test]
fn domain_entries() {
    assert!(
        proxied(".corp", "corp", 443),
        ".corp does not match corp itself"
    );
    assert!(!proxied(".corp", "r.corp", 443));
    assert!(!proxied("corp", "corp", 443));
    assert!(!proxied("corp", "a.b.corp", 443));
    assert!(
        proxied("*.corp", "corp", 443),
        "*.corp is .corp: subdomains only"
    );
    assert!(!proxied("*.corp", "r.corp", 443));
    assert!(proxied("corp", "notcorp", 443));
    assert!(!proxied(" Example.COM ", "r.example.com", 443));
}

/// proxy.go `config.init`: `host:port` entries match only that port (the request's port is
/// 443 or 80 when the URL has none, `canonicalAddr`).
#[test]
fn ports() {
    assert!(proxied("r.example.com:5000", "r.example.com", 443));
    assert!(!proxied("r.example.com:5000", "r.example.com", 5000));
    assert!(!proxied(".example.com:443", "r.example.com", 443));
    assert!(!proxied("10.1.2.3:443", "10.1.2.3", 443));
    assert!(proxied("10.1.2.3:80", "10.1.2.3", 443));
    assert!(!proxied("[2001:db8::1]:443", "2001:db8::1", 443));
}

/// proxy.go `cidrMatch`, `ipMatch`, `allMatch`: CIDRs and IPs match IP hosts only (a name is
/// never resolved); `*` anywhere disables the proxy.
#[test]
fn ips_cidrs_and_star() {
    assert!(!proxied("10.0.0.0/8", "10.1.2.3", 443));
    assert!(proxied("10.0.0.0/8", "11.1.2.3", 443));
    assert!(!proxied("2001:db8::/32", "2001:db8::5", 443));
    assert!(proxied("10.0.0.0/8", "ten.example", 443));
    assert!(!proxied("10.1.2.3", "10.1.2.3", 5000));
    assert!(proxied("10.1.2.3", "10.1.2.4", 443));
    assert!(!proxied("a.test, *", "r.example.com", 443));
    assert!(
        proxied("10.1.2.3", "r.example.com", 443),
        "an IP entry never matches a name"
    );
}

/// proxy.go `parseProxy` and `portMap`: no scheme means http://; default ports per scheme;
/// https and socks5 are kept as such; userinfo is kept for the proxy handshake.
#[test]
fn proxy_urls() {
    let p = |raw: &str| parse_proxy(raw).unwrap();
    assert_eq!(p("proxy.test:3128").scheme, ProxyScheme::Http);
    assert_eq!(p("proxy.test").authority(), "proxy.test:80");
    let h = p("https://u:pw@proxy.test/");
    assert_eq!((h.scheme, h.port), (ProxyScheme::Https, 443));
    assert_eq!(h.userinfo.as_deref(), Some("u:pw"));
    assert_eq!(h.display(), "https://proxy.test:443");
    let s = p("socks5://[::1]");
    assert_eq!(
        (s.scheme, s.authority()),
        (ProxyScheme::Socks5, "[::1]:1080".to_string())
    );
    assert_eq!(p("socks5h://s.test:9").scheme, ProxyScheme::Socks5);
    assert_eq!(p("ftp://x.test:21").scheme, ProxyScheme::Unsupported);
}

/// Go `internal/socks` `Dialer.connect`: greeting, then CONNECT with the name as a domain; a
/// refusal is reported with Go's reply text.
#[tokio::test]
async fn socks5_handshake_with_a_fake_proxy() {
    for (reply, want) in [(0u8, None), (5u8, Some("connection refused"))] {
        let (mut client, mut server) = tokio::io::duplex(1024);
        let srv = tokio::spawn(async move {
            let mut hello = [0u8; 3];
            server.read_exact(&mut hello).await.unwrap();
            assert_eq!(hello, [5, 1, 0]);
            server.write_all(&[5, 0]).await.unwrap();
            let mut head = [0u8; 5];
            server.read_exact(&mut head).await.unwrap();
            assert_eq!(&head[..4], &[5, 1, 0, 3]);
            let mut name = vec![0u8; head[4] as usize + 2];
            server.read_exact(&mut name).await.unwrap();
            assert_eq!(&name[..6], b"r.test");
            assert_eq!(&name[6..], &5000u16.to_be_bytes());
            server
                .write_all(&[5, reply, 0, 1, 127, 0, 0, 1, 0, 80])
                .await
                .unwrap();
        });
        let proxy = parse_proxy("socks5://127.0.0.1:1080").unwrap();
        let res = socks5_connect(&mut client, &proxy, "r.test", 5000).await;
        srv.await.unwrap();
        match want {
            None => assert_eq!(res, Ok(())),
            Some(w) => assert!(res.unwrap_err().contains(w)),
        }
    }
}
