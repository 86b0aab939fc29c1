//! After `/v2/`: redirects followed with the registry's trust, and a token realm on another port
//! whose certificate the node does not trust — against docker-registry, ctr and skopeo.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

/// A TLS server on 127.0.0.1 answering every request with `answer(path)`; stopped on drop.
struct Responder {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Responder {
    fn start(leaf: &Issued, answer: impl Fn(&str) -> String + Send + 'static) -> Responder {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let key = rustls::pki_types::PrivateKeyDer::try_from(leaf.key.serialize_der()).unwrap();
        let config = Arc::new(
            rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(vec![leaf.cert.der().clone()], key)
                .unwrap(),
        );
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        let thread = std::thread::spawn(move || {
            let start = Instant::now();
            while !st.load(Ordering::SeqCst) && start.elapsed() < Duration::from_secs(300) {
                match listener.accept() {
                    Ok((tcp, _)) => serve_one(tcp, config.clone(), &answer),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(10))
                    }
                    Err(_) => return,
                }
            }
        });
        Responder {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

fn serve_one(
    tcp: std::net::TcpStream,
    config: Arc<rustls::ServerConfig>,
    answer: &dyn Fn(&str) -> String,
) {
    let _ = tcp.set_nonblocking(false);
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = tcp.set_write_timeout(Some(Duration::from_secs(5)));
    let Ok(conn) = rustls::ServerConnection::new(config) else {
        return;
    };
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
        match tls.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&head);
    let path = text.split(' ').nth(1).unwrap_or("/");
    let _ = tls.write_all(answer(path).as_bytes());
    tls.conn.send_close_notify();
    let _ = tls.flush();
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// docker-registry over TLS with `auth: token` pointing at `realm`; killed on drop.
struct TokenRegistry {
    port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl TokenRegistry {
    fn start(leaf: &Issued, realm: &str, bundle_pem: &str) -> TokenRegistry {
        require("docker-registry");
        let dir = tmp();
        let d = dir.path().display().to_string();
        write(&dir.path().join("srv.pem"), leaf.pem());
        write(&dir.path().join("srv.key"), leaf.key.serialize_pem());
        write(&dir.path().join("bundle.pem"), bundle_pem);
        let port = free_port();
        let cfg = format!(
            "version: 0.1\nlog: {{level: error, accesslog: {{disabled: true}}}}\nstorage: {{filesystem: {{rootdirectory: {}}}}}\nauth: {{token: {{realm: '{realm}', service: regtrust-test, issuer: test-issuer, rootcertbundle: {d}/bundle.pem}}}}\nhttp: {{addr: 127.0.0.1:{port}, secret: test, tls: {{certificate: {d}/srv.pem, key: {d}/srv.key}}}}\n",
            seeded_storage().display()
        );
        write(&dir.path().join("config.yml"), cfg);
        let mut child = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.path().join("config.yml"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start docker-registry");
        wait_port(port, &mut child, "docker-registry with token auth");
        TokenRegistry {
            port,
            child,
            _dir: dir,
        }
    }
}

impl Drop for TokenRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).replace("\\\"", "\"")
}

struct Views {
    containerd: Run,
    crio: Run,
    ctr: std::process::Output,
    skopeo: std::process::Output,
}

fn views(node: &Node, ctrd: &Containerd, addr: &str) -> Views {
    let root = node.root.path();
    Views {
        containerd: check_json(root, &["--hosts-dir", "/etc/containerd/certs.d"], addr),
        crio: check_json(root, &["--runtime", "crio"], addr),
        ctr: ctrd.fetch(&node.hosts_dir(), root, addr),
        skopeo: skopeo_inspect(&node.containers_dir(addr), root, addr),
    }
}

fn agree(what: &str, v: &Views, ok: bool) {
    let c = &v.containerd;
    assert_eq!(c.ok(), ok, "{what}: containerd view: {}", c.stdout);
    assert_eq!(v.crio.ok(), ok, "{what}: crio view: {}", v.crio.stdout);
    let ctr = v.ctr.status.success();
    assert_eq!(ctr, ok, "{what}: ctr: {}", stderr(&v.ctr));
    let sk = v.skopeo.status.success();
    assert_eq!(sk, ok, "{what}: skopeo: {}", stderr(&v.skopeo));
}

fn detail(r: &Run) -> String {
    r.registry(0)["detail"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn a_redirect_to_another_host_is_verified_with_the_registrys_trust() {
    // The registry (CA B) is reached only through a redirector (CA A) that sends every request
    // there; the node trusts CA B for the registry's own name, CA A for the redirector's.
    let ca_a = ca("redirector CA");
    let ca_b = ca("registry CA");
    let lb = leaf(&ca_b);
    let reg = Registry::start(&[&lb.cert], Some(&lb.key));
    let target = format!("https://localhost:{}", reg.port);
    let la = leaf(&ca_a);
    let redirector = Responder::start(&la, move |path| {
        format!("HTTP/1.1 307 Temporary Redirect\r\nLocation: {target}{path}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    });
    let addr = format!("127.0.0.1:{}", redirector.port);
    let node = Node::new();
    node.trust(&addr, &ca_a.pem());
    node.trust(&format!("localhost:{}", reg.port), &ca_b.pem());
    let ctrd = Containerd::start();

    let v = views(&node, &ctrd, &addr);
    agree(
        "redirect to a host the redirector's trust does not cover",
        &v,
        false,
    );
    for r in [&v.containerd, &v.crio] {
        assert_eq!(r.reason(), "http_status", "{}", r.stdout);
        let d = detail(r);
        assert!(
            d.contains("x509: certificate signed by unknown authority")
                && d.contains(&format!("localhost:{}", reg.port)),
            "{d}"
        );
    }
    assert!(stderr(&v.skopeo).contains("x509: certificate signed by unknown authority"));
    assert!(stderr(&v.ctr).contains("x509: certificate signed by unknown authority"));

    // Trusting CA B for the redirector too (where the runtime reads the redirector's CAs): ok.
    node.trust(&addr, &format!("{}{}", ca_a.pem(), ca_b.pem()));
    let v = views(&node, &ctrd, &addr);
    agree(
        "redirect with the target's CA in the registry's trust",
        &v,
        true,
    );
}

#[test]
fn a_token_realm_with_an_untrusted_certificate_fails_every_pull() {
    let ca_r = ca("registry CA");
    let untrusted = ca("token service CA");
    let realm_srv = Responder::start(&leaf(&untrusted), |_| {
        "HTTP/1.1 500 No Tokens Here\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into()
    });
    let realm = format!("https://127.0.0.1:{}/token", realm_srv.port);
    let lr = leaf(&ca_r);
    let reg = TokenRegistry::start(&lr, &realm, &ca_r.pem());
    let addr = format!("127.0.0.1:{}", reg.port);
    let node = Node::new();
    node.trust(&addr, &ca_r.pem());
    let ctrd = Containerd::start();

    let v = views(&node, &ctrd, &addr);
    agree("a token realm the node does not trust", &v, false);
    for r in [&v.containerd, &v.crio] {
        assert_eq!(r.reason(), "token_realm_failed", "{}", r.stdout);
        let d = detail(r);
        assert!(d.contains(&realm), "{d}");
        assert!(
            d.contains("x509: certificate signed by unknown authority"),
            "{d}"
        );
    }
    for o in [&v.ctr, &v.skopeo] {
        let e = stderr(o);
        assert!(
            e.contains("x509: certificate signed by unknown authority") && e.contains("/token"),
            "{e}"
        );
    }

    // The realm's CA in the realm host's own directories changes nothing: the token request goes
    // through the registry's client, with the registry's trust, in both runtimes.
    node.trust(&format!("127.0.0.1:{}", realm_srv.port), &untrusted.pem());
    let v = views(&node, &ctrd, &addr);
    agree(
        "the realm's CA only in the realm host's own directories",
        &v,
        false,
    );
    for o in [&v.ctr, &v.skopeo] {
        let e = stderr(o);
        assert!(
            e.contains("x509: certificate signed by unknown authority"),
            "{e}"
        );
    }
    assert_eq!(v.crio.reason(), "token_realm_failed", "{}", v.crio.stdout);

    // The realm's CA where the runtime reads the registry's CAs: regtrust's TLS check passes
    // (the runtimes would then ask it for a token, which this test server does not issue).
    node.trust(&addr, &format!("{}{}", ca_r.pem(), untrusted.pem()));
    let run = check_json(node.root.path(), &[], &addr);
    assert!(run.ok(), "{}", run.stdout);
    let run = check_json(node.root.path(), &["--runtime", "crio"], &addr);
    assert!(run.ok(), "{}", run.stdout);
}

#[test]
fn override_path_hosts_are_probed_where_containerd_requests() {
    let ca = ca("registry.test");
    let l = leaf(&ca);
    let reg = Registry::start(&[&l.cert], Some(&l.key));
    let addr = reg.addr();
    let node = Node::new();
    node.trust(&addr, &ca.pem());
    let ctrd = Containerd::start();
    let dir = node.hosts_dir().join(&addr);
    // (host URL, override_path): containerd requests path.Join(host path, repo, "manifests", tag);
    // regtrust requests `{host path}/`, the same prefix (the repository is not known to a check:
    // an override_path host whose `{path}/` answers 200 while its repositories do not — e.g.
    // docker-registry's own `/` — is a known gap, see README).
    for (url, over) in [
        (format!("https://{addr}/v2"), true),
        (format!("https://{addr}/sub"), false),
        (format!("https://{addr}/sub/v2"), true),
    ] {
        write(
            &dir.join("hosts.toml"),
            format!("server = \"https://{addr}/nowhere\"\nca = \"ca.crt\"\noverride_path = true\n\n[host.\"{url}\"]\n  capabilities = [\"pull\", \"resolve\"]\n  ca = \"ca.crt\"\n  override_path = {over}\n"),
        );
        let run = check_json(
            node.root.path(),
            &["--hosts-dir", "/etc/containerd/certs.d"],
            &addr,
        );
        let f = ctrd.fetch(&node.hosts_dir(), node.root.path(), &addr);
        assert_eq!(
            run.ok(),
            f.status.success(),
            "{url} override_path={over}: regtrust {} but ctr: {}",
            run.stdout,
            stderr(&f)
        );
    }
}
