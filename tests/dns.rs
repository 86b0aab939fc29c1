//! DNS isolation: names that never resolve cost their own registries their deadline and nothing
//! else. The agent runs in a private mount namespace whose /etc/resolv.conf points at a UDP
//! listener on loopback that reads every query and never answers (but one name, answered NXDOMAIN:
//! a `dns_failure` in Go's words), and whose /etc/hosts names the one healthy registry. Needs root
//! (unshare/mount), as CI has.

mod common;

use std::net::UdpSocket;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

/// The one name the DNS server answers: "no such name".
const NX_NAME: &str = "nx.test";

/// The answer "no such name" to `query`, or `None` when it is not a plain query for `name`.
fn nxdomain(query: &[u8], name: &str) -> Option<Vec<u8>> {
    let mut labels = Vec::new();
    let mut i = 12;
    while *query.get(i)? != 0 {
        let len = usize::from(query[i]);
        labels.push(String::from_utf8_lossy(query.get(i + 1..i + 1 + len)?).to_lowercase());
        i += 1 + len;
    }
    let question_end = i + 5;
    if labels.join(".") != name || query.len() < question_end {
        return None;
    }
    // Same id, QR + RD + RA, RCODE 3 (NXDOMAIN); one question, no records.
    let mut r = vec![query[0], query[1], 0x81, 0x83, 0, 1, 0, 0, 0, 0, 0, 0];
    r.extend_from_slice(&query[12..question_end]);
    Some(r)
}

/// A DNS server that swallows every query (but answers NXDOMAIN for [`NX_NAME`]), on
/// 127.0.x.53:53, until dropped.
struct SilentDns {
    ip: String,
    stop: Arc<AtomicBool>,
    queries: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SilentDns {
    fn start() -> SilentDns {
        let ip = format!("127.0.{}.53", 100 + std::process::id() % 100);
        let sock = UdpSocket::bind((ip.as_str(), 53)).expect("bind a UDP port 53 on loopback");
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let queries = Arc::new(AtomicUsize::new(0));
        let (s, q) = (stop.clone(), queries.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            // Bounded: at most 10 minutes, however the test ends.
            let start = Instant::now();
            while !s.load(Ordering::Relaxed) && start.elapsed() < Duration::from_secs(600) {
                if let Ok((n, peer)) = sock.recv_from(&mut buf) {
                    q.fetch_add(1, Ordering::Relaxed);
                    if let Some(answer) = nxdomain(&buf[..n], NX_NAME) {
                        let _ = sock.send_to(&answer, peer);
                    }
                }
            }
        });
        SilentDns {
            ip,
            stop,
            queries,
            thread: Some(thread),
        }
    }
}

impl Drop for SilentDns {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Probes of `reg` so far, by reason.
fn probes(metrics: &str, reg: &str) -> (f64, f64) {
    let mut all = 0.0;
    let mut ok = 0.0;
    for l in metrics.lines().filter(|l| {
        l.starts_with("regtrust_probes_total{") && l.contains(&format!("registry=\"{reg}\""))
    }) {
        let v: f64 = l
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        all += v;
        if l.contains("reason=\"ok\"") {
            ok += v;
        }
    }
    (all, ok)
}

#[test]
fn names_that_never_resolve_do_not_starve_a_healthy_registry() {
    require("unshare");
    let dns = SilentDns::start();
    let ca = ca("registry.test");
    let l = leaf(&ca);
    let reg = Registry::start(&[&l.cert], Some(&l.key));
    let port = reg.addr().rsplit(':').next().unwrap().to_string();
    let healthy = format!("registry.test:{port}");
    let node = Node::new();
    node.trust(&healthy, &ca.pem());
    let dead: Vec<String> = (1..=6).map(|i| format!("dead{i}.test:{port}")).collect();
    for d in &dead {
        node.trust(d, &ca.pem());
    }
    let nx = format!("{NX_NAME}:{port}");
    node.trust(&nx, &ca.pem());
    let etc = tmp();
    write(
        &etc.path().join("hosts"),
        "127.0.0.1 localhost registry.test\n",
    );
    // glibc's largest timeout and attempts: each lookup of a dead name hangs for minutes.
    write(
        &etc.path().join("resolv.conf"),
        format!("nameserver {}\noptions timeout:30 attempts:5\n", dns.ip),
    );
    let mut cmd = Command::new("unshare");
    cmd.args([
        "-m",
        "--propagation",
        "private",
        "sh",
        "-c",
        "mount --bind \"$0/hosts\" /etc/hosts && mount --bind \"$0/resolv.conf\" /etc/resolv.conf && exec \"$@\"",
    ])
    .arg(etc.path())
    .arg(env!("CARGO_BIN_EXE_regtrust"));
    let cfg = format!(
        "host_root = \"{}\"\nhosts_dir = \"/etc/containerd/certs.d\"\nstate_dir = \"{}\"\ninterval = \"2s\"\ntimeout = \"1500ms\"\njitter = 0.0\n",
        node.root.path().display(),
        node.path("/state").display()
    );
    let mut agent = AgentProc::start_with(node.root.path(), &cfg, "127.0.0.1", cmd);
    agent.wait_until(
        "the healthy registry probed on many rounds while six names hang in DNS",
        Duration::from_secs(60),
        |a| probes(&a.metrics(), &healthy).0 >= 12.0,
    );
    let text = agent.metrics();
    let (all, ok) = probes(&text, &healthy);
    assert_eq!(all, ok, "a probe of the healthy registry failed:\n{text}");
    for d in &dead {
        let (all, ok) = probes(&text, d);
        assert!(
            all >= 1.0 && ok == 0.0,
            "{d}: {all} probes, {ok} ok:\n{text}"
        );
        assert!(
            metric(
                &text,
                "regtrust_probe_reason",
                &[("registry", d), ("reason", "timeout")]
            ) == Some(1.0),
            "{d} is not a timeout:\n{text}"
        );
    }
    // A name the resolver says does not exist: dns_failure, in Go's words.
    assert_eq!(
        metric(
            &text,
            "regtrust_probe_reason",
            &[("registry", &nx), ("reason", "dns_failure")]
        ),
        Some(1.0),
        "{text}"
    );
    let log = std::fs::read_to_string(&agent.log).unwrap();
    assert!(log.contains(&format!("lookup {NX_NAME}: ")), "{log}");
    assert!(
        dns.queries.load(Ordering::Relaxed) > 0,
        "the dead names never reached the silent DNS server"
    );
    assert_eq!(agent.get("/healthz").map(|(c, _)| c), Some(200));
}
