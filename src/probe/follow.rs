//! After the registry's first answer to `GET /v2/`: what the runtime's Go HTTP client does next.
//!
//! - **Redirects**, as `net/http.Client` follows them (client.go `redirectBehavior`,
//!   `defaultCheckRedirect`): 301, 302, 303, 307 and 308 with a `Location`, at most
//!   [`MAX_REDIRECTS`] requests (`stopped after 10 redirects`), each hop a new request through the same
//!   `http.Transport` — so with the same TLS configuration: containerd's per-host client
//!   (hosts.go `ConfigureHosts`; its resolver's `CheckRedirect` keeps the 10-hop limit) and
//!   containers/image's per-registry client (docker_client.go `newDockerClient`: the registry's
//!   certs.d on top of the system pool) both verify every hop with the *registry's* trust and
//!   the hop's own host name. The proxy is chosen per hop, as the transport does.
//! - **The token realm**: a 401 whose `WWW-Authenticate: Bearer realm=…` names another host or
//!   port sends every pull to that token service first, again through the registry's client
//!   (containerd docker/auth `FetchToken` with the host's `http.Client`; containers/image
//!   `getBearerToken` with `c.client`). Its TLS must verify with the same trust, or every pull
//!   fails: the realm is dialled and its handshake judged; its HTTP answer does not matter.
//!
//! A failure at a hop is the registry's failure ([`Failure::Redirect`], [`Failure::TokenRealm`]),
//! worded as Go words the failing request.

use super::http::ResponseHead;
use super::{run, Failure, ProbeResult, ProbeSettings};
use crate::trust::Endpoint;

/// `defaultCheckRedirect`'s limit (net/http client.go, `len(via) >= 10`): ten requests at most,
/// the tenth redirect fails with `stopped after 10 redirects`.
pub const MAX_REDIRECTS: usize = 10;

/// Probes `ep` and follows its answer as Go's client would, until a final answer.
pub(super) async fn follow(
    ep: &Endpoint,
    roots: crate::verify::Pool,
    settings: &ProbeSettings,
    deadline: tokio::time::Instant,
    out: &mut ProbeResult,
) -> Result<(), Failure> {
    let first = request(ep, &ep_target(ep), roots.clone(), settings, deadline, out).await?;
    let mut head = first;
    let mut hop = ep.clone();
    let mut chain = vec![ep.url()];
    while is_redirect(head.code) {
        let Some(loc) = head.location.clone() else {
            break;
        };
        let Some((next, target)) = resolve(&hop, &loc) else {
            return Err(redirect(
                chain,
                Failure::Http(format!("failed to parse Location header {loc:?}")),
            ));
        };
        chain.push(format!("{}://{}{target}", next.scheme, next.authority));
        // `len(via) >= 10` before the 11th request: ten requests at most.
        if chain.len() > MAX_REDIRECTS {
            return Err(redirect(
                chain,
                Failure::Http("stopped after 10 redirects".into()),
            ));
        }
        let mut scratch = scratch_of(out);
        head = match request(
            &next,
            &target,
            roots.clone(),
            settings,
            deadline,
            &mut scratch,
        )
        .await
        {
            Ok(h) => h,
            Err(f) => return Err(redirect(chain, f)),
        };
        hop = next;
    }
    out.http_status = Some(head.code);
    match head.code {
        200 => Ok(()),
        401 => {
            check_realm(
                &hop,
                head.bearer_realm.as_deref(),
                roots,
                settings,
                deadline,
                out,
            )
            .await
        }
        code => Err(match chain.len() {
            1 => Failure::HttpStatus {
                code,
                location: head.location,
            },
            _ => redirect(
                chain,
                Failure::HttpStatus {
                    code,
                    location: head.location,
                },
            ),
        }),
    }
}

fn redirect(chain: Vec<String>, failure: Failure) -> Failure {
    Failure::Redirect {
        chain,
        failure: Box::new(failure),
    }
}

/// The registry's own request target: `{path}/`.
fn ep_target(ep: &Endpoint) -> String {
    format!("{}/", ep.path.trim_end_matches('/'))
}

fn is_redirect(code: u16) -> bool {
    matches!(code, 301 | 302 | 303 | 307 | 308)
}

/// A ProbeResult for a later hop: its chain and timings are not the endpoint's.
fn scratch_of(out: &ProbeResult) -> ProbeResult {
    ProbeResult::new(out.url.clone(), Ok(()))
}

/// One request to `hop` for `target`, through the proxy Go's transport picks for it.
async fn request(
    hop: &Endpoint,
    target: &str,
    roots: crate::verify::Pool,
    settings: &ProbeSettings,
    deadline: tokio::time::Instant,
    out: &mut ProbeResult,
) -> Result<ResponseHead, Failure> {
    let proxy = settings.proxy.proxy(&hop.scheme, hop.host(), hop.port());
    run(
        hop,
        target,
        roots,
        proxy.as_ref(),
        &super::Go::of(settings),
        deadline,
        out,
    )
    .await
}

/// A 401's Bearer realm on another scheme, host or port: its TLS judged with the same trust.
async fn check_realm(
    hop: &Endpoint,
    realm: Option<&str>,
    roots: crate::verify::Pool,
    settings: &ProbeSettings,
    deadline: tokio::time::Instant,
    out: &ProbeResult,
) -> Result<(), Failure> {
    let Some(realm) = realm else {
        return Ok(());
    };
    let Some((service, target)) = absolute(hop, realm) else {
        return Err(Failure::TokenRealm {
            realm: realm.to_string(),
            failure: Box::new(Failure::Http(format!(
                "parse {realm:?}: not an absolute http(s) URL"
            ))),
        });
    };
    if service.scheme == hop.scheme && service.authority_with_port() == hop.authority_with_port() {
        return Ok(());
    }
    let mut scratch = scratch_of(out);
    match request(&service, &target, roots, settings, deadline, &mut scratch).await {
        Ok(_) => Ok(()),
        Err(f) => Err(Failure::TokenRealm {
            realm: realm.to_string(),
            failure: Box::new(f),
        }),
    }
}

/// `hop` aimed at an absolute `http(s)://authority/path?query` URL, and the request target.
fn absolute(hop: &Endpoint, url: &str) -> Option<(Endpoint, String)> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    // userinfo is not sent as part of the authority.
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    if authority.is_empty() {
        return None;
    }
    let tail = tail.split('#').next().unwrap_or_default();
    let target = match tail {
        "" => "/".to_string(),
        t if t.starts_with('?') => format!("/{t}"),
        t => t.to_string(),
    };
    let mut next = hop.clone();
    next.scheme = scheme;
    next.authority = authority.to_string();
    next.path = target.split('?').next().unwrap_or("/").to_string();
    next.origin = format!("{} (followed from {})", url, hop.url());
    Some((next, target))
}

/// A `Location` resolved against the current hop (`url.ResolveReference`): absolute URLs,
/// `//authority/…`, `/path` and relative paths.
fn resolve(hop: &Endpoint, loc: &str) -> Option<(Endpoint, String)> {
    if loc.contains("://") {
        return absolute(hop, loc);
    }
    if let Some(rest) = loc.strip_prefix("//") {
        return absolute(hop, &format!("{}://{rest}", hop.scheme));
    }
    let base = format!("{}://{}", hop.scheme, hop.authority);
    if loc.starts_with('/') {
        return absolute(hop, &format!("{base}{loc}"));
    }
    let dir = match hop.path.rfind('/') {
        Some(i) => &hop.path[..=i],
        None => "/",
    };
    absolute(hop, &format!("{base}{dir}{loc}"))
}

impl Endpoint {
    /// `host:port` with the scheme's default port made explicit, for comparing origins.
    fn authority_with_port(&self) -> String {
        format!("{}:{}", self.host().to_ascii_lowercase(), self.port())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn ep(url_scheme: &str, authority: &str, path: &str) -> Endpoint {
        let mut e = Endpoint::default_for(url_scheme, authority, "test");
        e.path = path.into();
        e
    }

    #[test]
    fn locations_resolve_as_url_resolve_reference_does() {
        let hop = ep("https", "r.test:5000", "/v2/");
        let r = |l: &str| {
            resolve(&hop, l).map(|(e, t)| format!("{}://{}|{}|{t}", e.scheme, e.authority, e.path))
        };
        assert_eq!(
            r("https://o.test/v2/").as_deref(),
            Some("https://o.test|/v2/|/v2/")
        );
        assert_eq!(
            r("HTTP://o.test:80/x?y=1#f").as_deref(),
            Some("http://o.test:80|/x|/x?y=1")
        );
        assert_eq!(
            r("//o.test:1/v2/").as_deref(),
            Some("https://o.test:1|/v2/|/v2/")
        );
        assert_eq!(r("/v2/").as_deref(), Some("https://r.test:5000|/v2/|/v2/"));
        assert_eq!(
            r("other/").as_deref(),
            Some("https://r.test:5000|/v2/other/|/v2/other/")
        );
        assert_eq!(
            r("https://u:p@o.test/").as_deref(),
            Some("https://o.test|/|/")
        );
        assert_eq!(r("ftp://o.test/"), None);
        assert_eq!(r("https:///x"), None);
    }

    /// A plain-HTTP server answering every request with `answer(its address)`, counting requests.
    async fn serve(
        answer: impl FnOnce(&str) -> String,
    ) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let answer = answer(&addr);
        let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let c = count.clone();
        tokio::spawn(async move {
            for _ in 0..50 {
                let Ok((mut s, _)) = l.accept().await else {
                    return;
                };
                c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut buf = [0u8; 2048];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(answer.as_bytes()).await;
            }
        });
        (addr, count)
    }

    async fn probe_http(addr: &str) -> Result<(), Failure> {
        let ep = Endpoint::default_for("http", addr, "test");
        let settings = ProbeSettings::default();
        crate::probe::probe(&ep, crate::verify::Pool::default(), &settings)
            .await
            .result
    }

    const SEQ: std::sync::atomic::Ordering = std::sync::atomic::Ordering::SeqCst;

    #[tokio::test]
    async fn ten_requests_at_most_then_stopped_after_10_redirects() {
        let loop_302 = "HTTP/1.1 302 Found\r\nLocation: /v2/\r\nContent-Length: 0\r\n\r\n";
        let (addr, count) = serve(|_| loop_302.into()).await;
        match probe_http(&addr).await {
            Err(Failure::Redirect { chain, failure }) => {
                assert_eq!(chain.len(), 11, "{chain:?}");
                assert!(
                    matches!(*failure, Failure::Http(ref e) if e == "stopped after 10 redirects"),
                    "{failure:?}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(count.load(SEQ), MAX_REDIRECTS);
    }

    #[tokio::test]
    async fn a_realm_on_another_port_is_dialled_and_the_same_origin_is_not() {
        let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dead_addr = dead.local_addr().unwrap();
        drop(dead);
        let challenge = |realm: &str| {
            format!("HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm=\"{realm}\",service=\"r\"\r\nContent-Length: 0\r\n\r\n")
        };
        let realm = format!("http://{dead_addr}/token");
        let (addr, _) = serve(|_| challenge(&realm)).await;
        match probe_http(&addr).await {
            Err(Failure::TokenRealm { realm: r, failure }) => {
                assert_eq!(r, realm);
                assert!(matches!(*failure, Failure::Refused(_)), "{failure:?}");
            }
            other => panic!("{other:?}"),
        }
        // The registry's own origin: nothing more to dial.
        let (addr, count) = serve(|own| challenge(&format!("http://{own}/token"))).await;
        assert!(probe_http(&addr).await.is_ok());
        assert_eq!(count.load(SEQ), 1);
        // A relative realm is no URL the runtimes can fetch a token from.
        let (addr, _) = serve(|_| challenge("/token")).await;
        assert!(matches!(
            probe_http(&addr).await,
            Err(Failure::TokenRealm { .. })
        ));
    }

    #[test]
    fn the_api_root_is_requested_where_containerd_joins_its_paths() {
        // containerd resolver.go `dockerBase.request`: path.Join("/", host.Path, repository, …);
        // an override_path host's path is taken as is (hosts.go), so its root is `{path}/`.
        for (path, target) in [
            ("/v2", "/v2/"),
            ("", "/"),
            ("/v2/proxy/docker.io", "/v2/proxy/docker.io/"),
            ("/mirror/v2/", "/mirror/v2/"),
        ] {
            assert_eq!(ep_target(&ep("https", "m.test", path)), target, "{path:?}");
        }
    }

    #[test]
    fn origins_compare_with_default_ports() {
        let a = ep("https", "R.test", "/v2");
        let b = ep("https", "r.test:443", "/token");
        assert_eq!(a.authority_with_port(), b.authority_with_port());
        assert_ne!(
            ep("http", "r.test", "/").authority_with_port(),
            a.authority_with_port()
        );
        assert!(is_redirect(308) && is_redirect(301) && !is_redirect(304) && !is_redirect(300));
    }
}
