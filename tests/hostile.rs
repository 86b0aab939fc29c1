//! A hostile network: servers that never speak, trickle the handshake, send garbage, redirect,
//! stream endless or slow bodies, oversized headers, 100 certificates or a megabyte of chain. Every
//! probe ends within its deadline with its own reason, memory stays bounded, and the agent keeps
//! probing the other registries meanwhile.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use rcgen::{CustomExtension, KeyPair};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Clone)]
enum Behaviour {
    Silent,
    Trickle,
    Garbage,
    Respond(String),
    HugeBody,
    SlowBody,
}

/// The serving side: a runtime in its own thread, servers that live as long as it.
struct Hostile {
    rt: tokio::runtime::Runtime,
}

impl Hostile {
    fn new() -> Hostile {
        Hostile {
            rt: tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap(),
        }
    }

    /// Starts a server; `tls` is the chain (leaf first) and key, or `None` for raw TCP behaviours.
    fn serve(
        &self,
        behaviour: Behaviour,
        tls: Option<(Vec<&rcgen::Certificate>, &KeyPair)>,
    ) -> String {
        let acceptor = tls.map(|(chain, key)| {
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            let certs = chain.iter().map(|c| c.der().clone()).collect();
            let key = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
            let cfg = rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(certs, key)
                .unwrap();
            tokio_rustls::TlsAcceptor::from(Arc::new(cfg))
        });
        let listener = self.rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        self.rt.spawn(async move {
            // Bounded: at most 64 connections, each at most 30 s.
            for _ in 0..64 {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (b, acc) = (behaviour.clone(), acceptor.clone());
                tokio::spawn(async move {
                    let _ =
                        tokio::time::timeout(Duration::from_secs(30), handle(tcp, b, acc)).await;
                });
            }
        });
        addr
    }
}

async fn handle(mut tcp: TcpStream, b: Behaviour, acc: Option<tokio_rustls::TlsAcceptor>) {
    match (&b, acc) {
        (Behaviour::Silent, _) => tokio::time::sleep(Duration::from_secs(30)).await,
        (Behaviour::Trickle, _) => {
            // A TLS record header, one byte a second.
            for byte in [0x16u8, 0x03, 0x03, 0x00, 0x40].iter().cycle().take(30) {
                if tcp.write_all(&[*byte]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        (Behaviour::Garbage, _) => {
            let mut x: u32 = 0x1234_5678;
            let junk: Vec<u8> = (0..4096)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    (x % 251) as u8 | 0x80
                })
                .collect();
            let _ = tcp.write_all(&junk).await;
        }
        (Behaviour::Respond(head), None) => {
            // A plain HTTP server answering whatever arrives (here: a TLS ClientHello).
            let mut buf = [0u8; 4096];
            let _ = tcp.read(&mut buf).await;
            let _ = tcp.write_all(head.as_bytes()).await;
        }
        (_, Some(acc)) => {
            let Ok(mut tls) = acc.accept(tcp).await else {
                return;
            };
            let mut buf = [0u8; 4096];
            let _ = tls.read(&mut buf).await;
            match b {
                Behaviour::Respond(head) => {
                    let _ = tls.write_all(head.as_bytes()).await;
                }
                Behaviour::HugeBody => {
                    let _ = tls
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 104857600\r\n\r\n")
                        .await;
                    let chunk = vec![b'x'; 64 * 1024];
                    for _ in 0..1600 {
                        if tls.write_all(&chunk).await.is_err() {
                            return;
                        }
                    }
                }
                Behaviour::SlowBody => {
                    let _ = tls
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
                        .await;
                    for _ in 0..30 {
                        if tls.write_all(b"x").await.is_err() {
                            return;
                        }
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
                _ => {}
            }
            let _ = tls.shutdown().await;
        }
        _ => {}
    }
}

/// `regtrust check` (bounded by `timeout 60` so a hang fails the test) against `addr`.
/// `regtrust check` of `addr` on `node`, and the peak RSS (KiB) of this one regtrust process, as GNU time reads it from the
/// kernel (`wait4`'s maxrss) — not `RUSAGE_CHILDREN`, which also holds every other child the
/// test binary reaped (skopeo seeding a registry for a test running beside this one).
fn check_measured(node: &Node, addr: &str, timeout_secs: u32) -> (Run, u64) {
    let mut args = check_args(node.root.path(), timeout_secs);
    args.push(addr.to_string());
    let rss_file = tmp();
    let rss_path = rss_file.path().join("maxrss");
    let out = std::process::Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(&rss_path)
        .arg("timeout")
        .arg("60")
        .arg(env!("CARGO_BIN_EXE_regtrust"))
        .args(&args)
        .output()
        .expect("run regtrust under /usr/bin/time (Debian package time)");
    assert_ne!(out.status.code(), Some(124), "regtrust hung against {addr}");
    let rss = std::fs::read_to_string(&rss_path)
        .ok()
        .and_then(|t| t.lines().last().and_then(|l| l.trim().parse().ok()))
        .expect("GNU time wrote the peak RSS");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        json: serde_json::from_str(&stdout).unwrap_or_default(),
        stdout,
        stderr: String::from_utf8_lossy(&out.stderr).to_string(),
    };
    (run, rss)
}

#[test]
fn every_hostile_registry_ends_with_its_own_reason_in_bounded_memory() {
    let h = Hostile::new();
    let ca = ca("registry.test");
    let l = leaf(&ca);
    let node = Node::new();
    let tls = || Some((vec![&l.cert], &l.key));
    let respond = |s: &str| Behaviour::Respond(s.to_string());

    let mut cases: Vec<(&str, String, &str)> = vec![
        ("never speaks", h.serve(Behaviour::Silent, None), "timeout"),
        ("trickles the handshake", h.serve(Behaviour::Trickle, None), "timeout"),
        ("garbage instead of TLS", h.serve(Behaviour::Garbage, None), "not_tls"),
        ("plain HTTP", h.serve(respond("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"), None), "not_tls"),
        ("a 100 MB /v2/ body", h.serve(Behaviour::HugeBody, tls()), "ok"),
        ("a slow /v2/ body", h.serve(Behaviour::SlowBody, tls()), "ok"),
        ("64 KiB of headers", h.serve(respond(&format!("HTTP/1.1 200 OK\r\n{}\r\n", "X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n".repeat(2000))), tls()), "http_error"),
        ("redirect to http", h.serve(respond("HTTP/1.1 301 Moved\r\nLocation: http://127.0.0.1:1/v2/\r\nContent-Length: 0\r\n\r\n"), tls()), "http_status"),
        ("redirect to another host", h.serve(respond("HTTP/1.1 307 Temporary Redirect\r\nLocation: https://elsewhere.invalid/v2/\r\nContent-Length: 0\r\n\r\n"), tls()), "http_status"),
    ];
    // A redirect loop: to itself.
    let looping = h.serve(
        respond("HTTP/1.1 302 Found\r\nLocation: /v2/\r\nContent-Length: 0\r\n\r\n"),
        tls(),
    );
    cases.push(("redirect loop", looping, "http_status"));
    // 100 certificates after the leaf, and about a megabyte of chain.
    let extra: Vec<rcgen::Certificate> = (0..99)
        .map(|i| {
            ca_params(&format!("filler {i}"))
                .self_signed(&KeyPair::generate().unwrap())
                .unwrap()
        })
        .collect();
    let mut chain: Vec<&rcgen::Certificate> = vec![&l.cert];
    chain.extend(extra.iter());
    cases.push((
        "100 certificates",
        h.serve(
            respond("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"),
            Some((chain, &l.key)),
        ),
        "ok",
    ));
    let big: Vec<rcgen::Certificate> = (0..40)
        .map(|i| {
            let mut p = ca_params(&format!("big {i}"));
            p.custom_extensions.push(CustomExtension::from_oid_content(
                &[1, 3, 6, 1, 4, 1, 55555, 1],
                vec![0x04; 25_000],
            ));
            p.self_signed(&KeyPair::generate().unwrap()).unwrap()
        })
        .collect();
    let mut chain: Vec<&rcgen::Certificate> = vec![&l.cert];
    chain.extend(big.iter());
    cases.push((
        "a megabyte of chain",
        h.serve(
            respond("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"),
            Some((chain, &l.key)),
        ),
        "handshake_failed",
    ));

    for (_, addr, _) in &cases {
        node.trust(addr, &ca.pem());
    }
    let mut rss = 0;
    for (what, addr, reason) in &cases {
        let (run, peak) = check_measured(&node, addr, 3);
        println!("{what}: regtrust's peak RSS {peak} KiB");
        rss = rss.max(peak);
        assert_eq!(run.reason(), *reason, "{what}: {}", run.stdout);
        let ep = &run.registry(0)["endpoints"][0];
        match *what {
            "100 certificates" => assert!(
                ep["presented_chain"].as_array().unwrap().len() <= 16,
                "chain kept unbounded"
            ),
            "redirect to another host" => assert!(run.registry(0)["detail"]
                .as_str()
                .unwrap()
                .contains("elsewhere.invalid")),
            "64 KiB of headers" => assert!(run.registry(0)["detail"]
                .as_str()
                .unwrap()
                .contains("larger than")),
            "never speaks" | "trickles the handshake" => {
                assert!(run.registry(0)["detail"].as_str().unwrap().contains("tls"))
            }
            _ => {}
        }
    }
    println!("largest regtrust RSS over all hostile cases: {rss} KiB");
    assert!(rss < 64 * 1024, "memory not bounded: {rss} KiB");
}

#[test]
fn one_bad_registry_does_not_stall_the_others() {
    let h = Hostile::new();
    let ca = ca("registry.test");
    let l = leaf(&ca);
    let node = Node::new();
    let good = Registry::start(&[&l.cert], Some(&l.key));
    // An expensive chain: 14 intermediates named like the leaf's issuer, all with one RSA key, so
    // Go's path building spends its whole budget of signature checks on every probe (off the loop).
    let shared = KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let decoys: Vec<rcgen::Certificate> = (0..14)
        .map(|i| {
            let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
            p.distinguished_name
                .push(rcgen::DnType::CommonName, "registry.test");
            p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            p.serial_number = Some(rcgen::SerialNumber::from(i as u64 + 7));
            p.self_signed(&shared).unwrap()
        })
        .collect();
    let mut costly: Vec<&rcgen::Certificate> = vec![&l.cert];
    costly.extend(decoys.iter());
    let bad = [
        h.serve(Behaviour::Silent, None),
        h.serve(Behaviour::Trickle, None),
        h.serve(Behaviour::SlowBody, Some((vec![&l.cert], &l.key))),
        h.serve(
            Behaviour::Respond("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}".into()),
            Some((costly, &l.key)),
        ),
    ];
    node.trust(&good.addr(), &ca.pem());
    for b in &bad {
        node.trust(b, &ca.pem());
    }
    let cfg = format!(
        "host_root = \"{}\"\nhosts_dir = \"/etc/containerd/certs.d\"\nstate_dir = \"{}\"\ninterval = \"2s\"\ntimeout = \"1500ms\"\njitter = 0.0\n",
        node.root.path().display(),
        node.path("/state").display()
    );
    let mut agent = AgentProc::start(node.root.path(), &cfg);
    let probes = |a: &AgentProc, reg: &str| {
        a.metrics()
            .lines()
            .filter(|l| {
                l.starts_with("regtrust_probes_total{")
                    && l.contains(&format!("registry=\"{reg}\""))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    // The silent registry times out on every round; the good one keeps being probed and stays ok.
    agent.wait_until(
        "the good registry probed on many rounds while the bad ones hang",
        Duration::from_secs(60),
        |a| {
            probes(a, &good.addr()) >= 8.0
                && metric(
                    &a.metrics(),
                    "regtrust_probe_reason",
                    &[("registry", &bad[0]), ("reason", "timeout")],
                ) == Some(1.0)
        },
    );
    assert_eq!(
        metric(
            &agent.metrics(),
            "regtrust_probe_success",
            &[("registry", &good.addr())]
        ),
        Some(1.0)
    );
}
