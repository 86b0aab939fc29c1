//! The listener survives its clients: the real `regtrust run`, attacked over loopback while the
//! kubelet's liveness probe (`/healthz`, 5 s timeout) keeps asking. Every loop is bounded in
//! count and time; the only wall-clock bound asserted is the kubelet's 5 s.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

/// The kubelet's default liveness-probe timeout.
const KUBELET_TIMEOUT: Duration = Duration::from_secs(5);
/// Sequential `/healthz` requests asked during an attack, spaced so the attack lasts longer than
/// the listener's head timeout (idle connections are dropped and reopened meanwhile).
const HEALTHZ_REQUESTS: usize = 20;
const HEALTHZ_SPACING: Duration = Duration::from_millis(250);

fn agent_cfg(node: &Node, extra: &str) -> String {
    format!(
        "host_root = \"{}\"\nhosts_dir = \"/etc/containerd/certs.d\"\nstate_dir = \"{}\"\nproc_dir = \"{}\"\njitter = 0.0\ntimeout = \"1s\"\ninterval = \"1h\"\n{extra}",
        node.root.path().display(),
        node.path("/var/lib/regtrust").display(),
        node.path("/proc-none").display(),
    )
}

/// Asks `/healthz` [`HEALTHZ_REQUESTS`] times, each with the kubelet's timeout; the failures.
fn healthz_failures(agent: &AgentProc) -> Vec<String> {
    let client = reqwest::blocking::Client::builder()
        .timeout(KUBELET_TIMEOUT)
        .build()
        .unwrap();
    let mut failures = Vec::new();
    for i in 0..HEALTHZ_REQUESTS {
        let start = Instant::now();
        match client.get(format!("http://{}/healthz", agent.addr)).send() {
            Ok(r) if r.status() == 200 => {}
            Ok(r) => failures.push(format!("request {i}: status {}", r.status())),
            Err(e) => failures.push(format!("request {i} after {:?}: {e}", start.elapsed())),
        }
        std::thread::sleep(HEALTHZ_SPACING);
    }
    failures
}

/// One client (127.0.0.2) holding `n` idle TCP connections to `addr`: each is reopened as soon as
/// the agent drops it. Runs until `stop`, at most 60 s and 2,000 reopenings per connection.
fn hold_idle_connections(addr: String, n: usize, stop: Arc<AtomicBool>, opened: Arc<AtomicUsize>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let target: std::net::SocketAddr = addr.parse().unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let (stop, opened) = (stop.clone(), opened.clone());
                tokio::spawn(async move {
                    for _ in 0..2_000 {
                        if stop.load(Ordering::Relaxed) || tokio::time::Instant::now() > deadline {
                            return;
                        }
                        let sock = tokio::net::TcpSocket::new_v4().unwrap();
                        sock.bind("127.0.0.2:0".parse().unwrap()).unwrap();
                        let Ok(Ok(mut conn)) =
                            tokio::time::timeout(Duration::from_secs(2), sock.connect(target))
                                .await
                        else {
                            continue;
                        };
                        opened.fetch_add(1, Ordering::Relaxed);
                        // Idle: send nothing, wait (bounded) for the agent to drop it.
                        let mut buf = [0u8; 64];
                        while !stop.load(Ordering::Relaxed)
                            && tokio::time::Instant::now() < deadline
                        {
                            let read = tokio::io::AsyncReadExt::read(&mut conn, &mut buf);
                            match tokio::time::timeout(Duration::from_millis(100), read).await {
                                Err(_) => continue,
                                Ok(_) => break,
                            }
                        }
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                })
            })
            .collect();
        for t in tasks {
            let _ = t.await;
        }
    });
}

#[test]
fn sixty_four_idle_connections_from_one_client_do_not_blind_healthz() {
    let node = Node::new();
    let agent = AgentProc::start(node.root.path(), &agent_cfg(&node, ""));
    let stop = Arc::new(AtomicBool::new(false));
    let opened = Arc::new(AtomicUsize::new(0));
    let attacker = {
        let (addr, stop, opened) = (agent.addr.clone(), stop.clone(), opened.clone());
        std::thread::spawn(move || hold_idle_connections(addr, 64, stop, opened))
    };
    // The attack is under way: all 64 connections opened at least once.
    let start = Instant::now();
    while opened.load(Ordering::Relaxed) < 64 && start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        opened.load(Ordering::Relaxed) >= 64,
        "the attacker could not connect"
    );
    let failures = healthz_failures(&agent);
    stop.store(true, Ordering::Relaxed);
    attacker.join().unwrap();
    assert!(
        failures.is_empty(),
        "/healthz failed while one client held 64 idle connections ({} opened):\n{}",
        opened.load(Ordering::Relaxed),
        failures.join("\n")
    );
}

#[test]
fn eight_clients_guessing_passwords_do_not_slow_healthz() {
    let node = Node::new();
    // Cost 11: ~0.1 s a check in a release build, near a second in this debug one; eight
    // guessers' checks on the event loop would hold /healthz past 5 s.
    let hash = bcrypt::hash("right-password", 11).unwrap();
    let cfg = agent_cfg(
        &node,
        &format!("[web.basic_auth_users]\nprometheus = \"{hash}\"\n"),
    );
    let agent = AgentProc::start(node.root.path(), &cfg);
    let stop = Arc::new(AtomicBool::new(false));
    let refused = Arc::new(AtomicUsize::new(0));
    // Half guess passwords of the known user, half of users that do not exist.
    let guessers: Vec<_> = (0..8)
        .map(|i| {
            let (addr, stop, refused) = (agent.addr.clone(), stop.clone(), refused.clone());
            std::thread::spawn(move || {
                let client = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(15))
                    .build()
                    .unwrap();
                let user = if i % 2 == 0 {
                    "prometheus".to_string()
                } else {
                    format!("nobody{i}")
                };
                for n in 0..500 {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let r = client
                        .get(format!("http://{addr}/metrics"))
                        .basic_auth(&user, Some(format!("guess-{n}")))
                        .send();
                    if r.map(|r| r.status() == 401).unwrap_or(false) {
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    let failures = healthz_failures(&agent);
    stop.store(true, Ordering::Relaxed);
    for g in guessers {
        g.join().unwrap();
    }
    assert!(
        refused.load(Ordering::Relaxed) >= 1,
        "no guess was answered 401: bcrypt never ran"
    );
    assert!(
        failures.is_empty(),
        "/healthz failed while 8 clients guessed passwords:\n{}",
        failures.join("\n")
    );
    // The right password still works once the guessers are gone.
    let ok = reqwest::blocking::Client::new()
        .get(format!("http://{}/metrics", agent.addr))
        .basic_auth("prometheus", Some("right-password"))
        .timeout(Duration::from_secs(15))
        .send()
        .map(|r| r.status().as_u16());
    assert_eq!(ok.ok(), Some(200));
}

#[test]
fn running_out_of_descriptors_pauses_accepting_instead_of_spinning() {
    require("prlimit");
    let node = Node::new();
    let mut agent = AgentProc::start(node.root.path(), &agent_cfg(&node, ""));
    let pid = agent.child.id().to_string();
    let open = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    let limit = format!("--nofile={0}:{0}", open + 6);
    let st = std::process::Command::new("prlimit")
        .args(["--pid", &pid, &limit])
        .status()
        .unwrap();
    assert!(st.success(), "prlimit failed");
    // More idle connections than the agent has descriptors left (within one address's share).
    let idle: Vec<std::net::TcpStream> = (0..14)
        .map(|_| std::net::TcpStream::connect(&agent.addr).unwrap())
        .collect();
    let log = |a: &AgentProc| std::fs::read_to_string(&a.log).unwrap_or_default();
    agent.wait_until("accept to fail (EMFILE)", Duration::from_secs(20), |a| {
        log(a).contains("accept failed")
    });
    // Keep it out of descriptors for a while (less than the head timeout that frees them).
    std::thread::sleep(Duration::from_secs(1));
    drop(idle);
    agent.wait_until(
        "/healthz once the connections are gone",
        Duration::from_secs(20),
        |a| a.get("/healthz").map(|(c, _)| c == 200).unwrap_or(false),
    );
    // Every failed accept logs one line: a busy loop would log thousands.
    println!(
        "failed accepts logged: {}",
        log(&agent).matches("accept failed").count()
    );
    let failed = log(&agent).matches("accept failed").count();
    assert!(
        failed < 100,
        "{failed} failed accepts: the listener spun on EMFILE"
    );
}
