//! HTTPS_PROXY / NO_PROXY end to end: a CONNECT proxy on loopback in front of the real registry,
//! reached by name (loopback addresses are never proxied, as in Go).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
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
                let (mut a, mut b) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
                let t = std::thread::spawn(move || {
                    let _ = std::io::copy(&mut a, &mut b);
                    let _ = b.shutdown(std::net::Shutdown::Write);
                });
                let (mut up, mut cl) = (upstream, client);
                let _ = std::io::copy(&mut up, &mut cl);
                let _ = cl.shutdown(std::net::Shutdown::Write);
                let _ = t.join();
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
