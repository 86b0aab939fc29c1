//! HTTPS_PROXY / NO_PROXY end to end: a CONNECT proxy on loopback in front of the real registry,
//! reached by name (loopback addresses are never proxied, as in Go).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;

/// A CONNECT proxy that tunnels to 127.0.0.1:<requested port>, or refuses with `refuse_status`.
/// Serves at most 20 connections, each bounded by a 10 s idle timeout.
fn start_proxy(refuse_status: Option<u16>) -> (u16, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    std::thread::spawn(move || {
        for conn in l.incoming().take(20) {
            let Ok(client) = conn else { break };
            let c = c.clone();
            std::thread::spawn(move || {
                let _ = client.set_read_timeout(Some(Duration::from_secs(10)));
                let mut reader = BufReader::new(client.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    return;
                }
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                }
                let mut client = client;
                let target = line
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or_default()
                    .to_string();
                if !line.starts_with("CONNECT ") || !target.starts_with("registry.test:") {
                    let _ = client.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n");
                    return;
                }
                c.fetch_add(1, Ordering::SeqCst);
                if let Some(code) = refuse_status {
                    let _ = client.write_all(
                        format!("HTTP/1.1 {code} Forbidden\r\nContent-Length: 0\r\n\r\n")
                            .as_bytes(),
                    );
                    return;
                }
                let port = target.rsplit(':').next().unwrap_or_default();
                let Ok(upstream) = TcpStream::connect(format!("127.0.0.1:{port}")) else {
                    return;
                };
                let _ = upstream.set_read_timeout(Some(Duration::from_secs(10)));
                let _ = client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n");
                pipe(client, upstream);
            });
        }
    });
    (port, count)
}

/// Copies both ways until each side closes.
fn pipe(client: TcpStream, upstream: TcpStream) {
    let (mut a, mut b) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
    let t = std::thread::spawn(move || {
        let _ = std::io::copy(&mut a, &mut b);
        let _ = b.shutdown(std::net::Shutdown::Write);
    });
    let (mut up, mut cl) = (upstream, client);
    let _ = std::io::copy(&mut up, &mut cl);
    let _ = cl.shutdown(std::net::Shutdown::Write);
    let _ = t.join();
}

/// A SOCKS5 proxy (no auth) that connects `registry.test:PORT` (sent as a name, as Go sends it)
/// to 127.0.0.1:PORT, or answers `refuse` (a SOCKS reply code). At most 20 connections, each
/// with a 10 s idle timeout.
fn start_socks5(refuse: Option<u8>) -> (u16, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    std::thread::spawn(move || {
        for conn in l.incoming().take(20) {
            let Ok(mut client) = conn else { break };
            let c = c.clone();
            std::thread::spawn(move || {
                let _ = client.set_read_timeout(Some(Duration::from_secs(10)));
                let mut head = [0u8; 2];
                let mut methods = [0u8; 255];
                if client.read_exact(&mut head).is_err()
                    || client.read_exact(&mut methods[..head[1] as usize]).is_err()
                    || client.write_all(&[5, 0]).is_err()
                {
                    return;
                }
                let mut req = [0u8; 5];
                if client.read_exact(&mut req).is_err() || req[..4] != [5, 1, 0, 3] {
                    return;
                }
                let mut name = vec![0u8; req[4] as usize + 2];
                if client.read_exact(&mut name).is_err() {
                    return;
                }
                let n = name.len() - 2;
                let target_port = u16::from_be_bytes([name[n], name[n + 1]]);
                if &name[..n] != b"registry.test" {
                    let _ = client.write_all(&[5, 4, 0, 1, 0, 0, 0, 0, 0, 0]);
                    return;
                }
                c.fetch_add(1, Ordering::SeqCst);
                let upstream = match refuse {
                    None => TcpStream::connect(("127.0.0.1", target_port)).ok(),
                    Some(_) => None,
                };
                let Some(upstream) = upstream else {
                    let _ = client.write_all(&[5, refuse.unwrap_or(5), 0, 1, 0, 0, 0, 0, 0, 0]);
                    return;
                };
                let _ = upstream.set_read_timeout(Some(Duration::from_secs(10)));
                let _ = client.write_all(&[5, 0, 0, 1, 127, 0, 0, 1, 0, 0]);
                pipe(client, upstream);
            });
        }
    });
    (port, count)
}

/// A CONNECT proxy behind TLS (an `https://` proxy) serving `served`, tunnelling `registry.test:PORT`
/// to 127.0.0.1:PORT. One thread per connection relays both ways by polling with short read
/// timeouts (the TLS stream cannot be split); at most 20 connections, each idle-bounded (10 s).
fn start_tls_proxy(served: &Issued) -> (u16, Arc<AtomicUsize>) {
    use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(served.cert.der().to_vec())],
            PrivatePkcs8KeyDer::from(served.key.serialize_der()).into(),
        )
        .unwrap();
    let config = Arc::new(config);
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    std::thread::spawn(move || {
        for conn in l.incoming().take(20) {
            let Ok(tcp) = conn else { break };
            let (c, config) = (c.clone(), config.clone());
            std::thread::spawn(move || {
                let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
                let Ok(server) = rustls::ServerConnection::new(config) else {
                    return;
                };
                let mut tls = rustls::StreamOwned::new(server, tcp);
                let mut head = Vec::new();
                let mut b = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
                    match tls.read(&mut b) {
                        Ok(1) => head.push(b[0]),
                        _ => return,
                    }
                }
                let line = String::from_utf8_lossy(&head).to_string();
                let target = line
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or_default()
                    .to_string();
                let Some(port) = target.strip_prefix("registry.test:") else {
                    return;
                };
                let Ok(mut up) = TcpStream::connect(format!("127.0.0.1:{port}")) else {
                    return;
                };
                c.fetch_add(1, Ordering::SeqCst);
                let _ = tls.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n");
                let poll = Some(Duration::from_millis(20));
                let _ = (tls.sock.set_read_timeout(poll), up.set_read_timeout(poll));
                let mut buf = [0u8; 16384];
                let start = std::time::Instant::now();
                while start.elapsed() < Duration::from_secs(10) {
                    match tls.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) if up.write_all(&buf[..n]).is_err() => break,
                        _ => {}
                    }
                    match up.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) if tls.write_all(&buf[..n]).is_err() => break,
                        _ => {}
                    }
                }
            });
        }
    });
    (port, count)
}

fn check_via(ns: &Ns, node: &Node, name: &str, env: &[(&str, String)]) -> serde_json::Value {
    let mut cmd = ns.cmd(env!("CARGO_BIN_EXE_regtrust"));
    cmd.args(check_args(node.root.path(), 5)).arg(name);
    for k in [
        "HTTPS_PROXY",
        "https_proxy",
        "NO_PROXY",
        "no_proxy",
        "HTTP_PROXY",
        "http_proxy",
    ] {
        cmd.env_remove(k);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn https_proxy_is_used_bypassed_by_no_proxy_and_its_refusal_is_reported() {
    let ns = Ns::new();
    let ca = ca("registry.test CA");
    let l = leaf(&ca);
    let reg = Registry::start(&[&l.cert], Some(&l.key));
    let name = format!("registry.test:{}", reg.port);
    let node = Node::new();
    node.trust(&name, &ca.pem());

    let (pport, count) = start_proxy(None);
    let proxy = format!("http://127.0.0.1:{pport}");
    let v = check_via(&ns, &node, &name, &[("HTTPS_PROXY", proxy.clone())]);
    assert_eq!(v["registries"][0]["reason"], "ok", "{v}");
    assert_eq!(
        v["registries"][0]["endpoints"][0]["proxy"],
        format!("127.0.0.1:{pport}")
    );
    let used = count.load(Ordering::SeqCst);
    assert!(used >= 1, "the proxy saw no CONNECT");

    let v = check_via(
        &ns,
        &node,
        &name,
        &[
            ("HTTPS_PROXY", proxy.clone()),
            ("NO_PROXY", "localhost,.test".into()),
        ],
    );
    assert_eq!(v["registries"][0]["reason"], "ok", "{v}");
    assert!(
        v["registries"][0]["endpoints"][0].get("proxy").is_none(),
        "{v}"
    );
    assert_eq!(
        count.load(Ordering::SeqCst),
        used,
        "NO_PROXY was not honoured"
    );

    let (rport, _) = start_proxy(Some(403));
    let v = check_via(
        &ns,
        &node,
        &name,
        &[("https_proxy", format!("127.0.0.1:{rport}"))],
    );
    assert_eq!(v["registries"][0]["reason"], "proxy_error", "{v}");
    assert!(v["registries"][0]["detail"]
        .as_str()
        .unwrap()
        .contains("403"));
}

/// `HTTPS_PROXY=socks5://…`: regtrust speaks SOCKS5 as Go's transport does (the name sent to
/// the proxy, not resolved locally), and its `ok` equals skopeo's through the same proxy; a
/// proxy that refuses fails both.
#[test]
fn socks5_proxy_as_go_dials_it_equals_skopeo() {
    let ca = ca("registry.test CA");
    let l = leaf(&ca);
    let reg = Registry::start(&[&l.cert], Some(&l.key));
    let name = format!("registry.test:{}", reg.port);
    let node = Node::new();
    write(
        &node
            .path("/root/.config/containers/certs.d")
            .join(&name)
            .join("ca.crt"),
        ca.pem(),
    );
    for (refuse, want) in [(None, true), (Some(5u8), false)] {
        let (sport, count) = start_socks5(refuse);
        let proxy = format!("socks5://127.0.0.1:{sport}");
        let ours = check_json_env(&node, &name, &proxy);
        let sk = Command::new("timeout")
            .arg("60")
            .arg("skopeo")
            .args(["inspect", "--no-tags", "--retry-times", "0"])
            .arg(format!("docker://{name}/{IMAGE}"))
            .env("HOME", node.path("/root"))
            .env("HTTPS_PROXY", &proxy)
            .env_remove("NO_PROXY")
            .env_remove("no_proxy")
            .envs(isolated_system_roots(node.root.path()))
            .output()
            .expect("run skopeo");
        let sk_err = String::from_utf8_lossy(&sk.stderr);
        let ok = ours["registries"][0]["ok"].as_bool().unwrap_or(false);
        assert_eq!(ok, sk.status.success(), "regtrust {ours} / skopeo {sk_err}");
        assert_eq!(ok, want, "regtrust {ours} / skopeo {sk_err}");
        assert!(
            count.load(Ordering::SeqCst) >= 2,
            "both went through the proxy"
        );
        if !want {
            let detail = ours["registries"][0]["detail"].as_str().unwrap_or_default();
            assert!(detail.contains("connection refused"), "{detail}");
        }
    }
}

/// regtrust with CRI-O rules and `HTTPS_PROXY` (nothing else from this machine's proxy env).
fn check_json_env(node: &Node, name: &str, proxy: &str) -> serde_json::Value {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_regtrust"));
    cmd.args(check_args(node.root.path(), 5))
        .args(["--runtime", "crio", name]);
    for k in [
        "https_proxy",
        "NO_PROXY",
        "no_proxy",
        "HTTP_PROXY",
        "http_proxy",
    ] {
        cmd.env_remove(k);
    }
    let out = cmd.env("HTTPS_PROXY", proxy).output().unwrap();
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stderr)))
}

/// `HTTPS_PROXY=https://…`: TLS to the proxy first, verified with the endpoint's trust (Go's
/// transport uses the same TLS client config), then CONNECT. A proxy certificate from the
/// registry's CA works for both regtrust and skopeo; one from an unknown CA fails both.
#[test]
fn https_proxy_gets_tls_and_equals_skopeo() {
    let reg_ca = ca("registry.test CA");
    let l = leaf(&reg_ca);
    let reg = Registry::start(&[&l.cert], Some(&l.key));
    let name = format!("registry.test:{}", reg.port);
    let node = Node::new();
    write(
        &node
            .path("/root/.config/containers/certs.d")
            .join(&name)
            .join("ca.crt"),
        reg_ca.pem(),
    );
    let stranger = ca("unknown proxy CA");
    for (served, want) in [(leaf(&reg_ca), true), (leaf(&stranger), false)] {
        let (pport, count) = start_tls_proxy(&served);
        let proxy = format!("https://localhost:{pport}");
        let ours = check_json_env(&node, &name, &proxy);
        let sk = Command::new("timeout")
            .arg("60")
            .arg("skopeo")
            .args(["inspect", "--no-tags", "--retry-times", "0"])
            .arg(format!("docker://{name}/{IMAGE}"))
            .env("HOME", node.path("/root"))
            .env("HTTPS_PROXY", &proxy)
            .env_remove("NO_PROXY")
            .env_remove("no_proxy")
            .envs(isolated_system_roots(node.root.path()))
            .output()
            .expect("run skopeo");
        let sk_err = String::from_utf8_lossy(&sk.stderr);
        let ok = ours["registries"][0]["ok"].as_bool().unwrap_or(false);
        assert_eq!(ok, sk.status.success(), "regtrust {ours} / skopeo {sk_err}");
        assert_eq!(ok, want, "regtrust {ours} / skopeo {sk_err}");
        if want {
            assert!(
                count.load(Ordering::SeqCst) >= 2,
                "both went through the proxy"
            );
        } else {
            let detail = ours["registries"][0]["detail"].as_str().unwrap_or_default();
            assert!(
                detail.starts_with("proxyconnect tcp: tls: failed to verify certificate: x509: "),
                "{detail}"
            );
        }
    }
}
