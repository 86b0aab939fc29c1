//! regtrust against the real CNCF registry over TLS on loopback, with certificates made per test,
//! and — for every TLS case — the real runtimes' verdicts on the same registry and trust:
//! `skopeo inspect --cert-dir` (containers/image: CRI-O, podman) and `ctr content fetch
//! --hosts-dir` (containerd). regtrust's `ok` must equal each runtime's.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

use common::*;
use rcgen::{CertificateParams, IsCa, KeyPair};

/// Runs regtrust with containerd and crio rules, skopeo and ctr; asserts every verdict agrees and
/// that regtrust gives `reason` for both runtimes. Returns the containerd-rules run.
fn differential(name: &str, reg: &Registry, node: &Node, reason: &str) -> Run {
    differential_at(name, &reg.addr(), node, reason)
}

/// regtrust under CRI-O's rules and a later Go than the oracles': asserts `reason`, returns the
/// detail (for rules only releases not installable here show).
fn crio_under(node: &Node, addr: &str, go: &str, reason: &str) -> String {
    let run = check_json(
        node.root.path(),
        &["--runtime", "crio", "--go-version", go],
        addr,
    );
    assert_eq!(run.reason(), reason, "under {go}: {}", run.stdout);
    run.registry(0)["detail"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// [`differential`] for the registry dialled as `addr` (e.g. `localhost:PORT`, or a [`Stunnel`]
/// front).
fn differential_at(name: &str, addr: &str, node: &Node, reason: &str) -> Run {
    let addr = addr.to_string();
    // regtrust follows the Go the oracles are built with (read from their binary).
    let go = oracle_go();
    let ctd_view = check_json(
        node.root.path(),
        &[
            "--hosts-dir",
            "/etc/containerd/certs.d",
            "--go-version",
            &go,
            "--runtime-version",
            &oracle_containerd_version(),
        ],
        &addr,
    );
    assert_eq!(
        ctd_view.reason(),
        reason,
        "{name}: regtrust (containerd rules): {}{}",
        ctd_view.stdout,
        ctd_view.stderr
    );
    assert_eq!(
        ctd_view.code,
        if reason == "ok" { 0 } else { 1 },
        "{name}: exit code"
    );
    let crio_view = check_json(
        node.root.path(),
        &["--runtime", "crio", "--go-version", &go],
        &addr,
    );
    assert_eq!(
        crio_view.reason(),
        reason,
        "{name}: regtrust (crio rules): {}",
        crio_view.stdout
    );

    let sk = skopeo_inspect(&node.containers_dir(&addr), node.root.path(), &addr);
    // skopeo logs through logrus, which escapes the quotes inside its message.
    let sk_err = String::from_utf8_lossy(&sk.stderr).replace("\\\"", "\"");
    assert_eq!(
        crio_view.ok(),
        sk.status.success(),
        "{name}: regtrust(crio) ok={} but skopeo says: {sk_err}",
        crio_view.ok()
    );

    let ctd = Containerd::start();
    let f = ctd.fetch(&node.hosts_dir(), node.root.path(), &addr);
    let f_err = String::from_utf8_lossy(&f.stderr);
    assert_eq!(
        ctd_view.ok(),
        f.status.success(),
        "{name}: regtrust(containerd) ok={} but ctr says: {f_err}",
        ctd_view.ok()
    );

    // Where Go explains a TLS failure, regtrust's detail is the same sentence, word for word from
    // `Get "URL": ` on (the `tls: failed to verify certificate:` prefix only where that Go has
    // it): skopeo's `pinging container registry …: Get "…": <error>`.
    let ours = crio_view.registry(0)["detail"].as_str().unwrap_or_default();
    if let Some(i) = sk_err
        .find("Get \"https://")
        .filter(|_| tls_words(&sk_err).is_some())
    {
        let line = sk_err[i..].lines().next().unwrap_or_default();
        // logrus closes its quoted msg with one `"`.
        let go = without_times(line.strip_suffix('"').unwrap_or(line));
        assert_eq!(
            without_times(ours),
            go,
            "{name}: skopeo and regtrust(crio) differ"
        );
    }
    // ctr's last line: `ctr: failed to resolve reference …: failed to do request: Head
    // "…/manifests/v1": <error>`: the error after the URL.
    let ours_ctd = ctd_view.registry(0)["detail"].as_str().unwrap_or_default();
    let ctr_last = f_err.trim_end().lines().last().unwrap_or_default();
    if let (Some(go), Some(us)) = (tls_words(ctr_last), tls_words(ours_ctd)) {
        assert_eq!(
            without_times(us),
            without_times(go),
            "{name}: ctr and regtrust(containerd) differ"
        );
    }
    ctd_view
}

/// The error after `"URL": ` in a Go request error, when it is crypto/tls's or crypto/x509's.
fn tls_words(s: &str) -> Option<&str> {
    let i = s.find("\": tls: ").or_else(|| s.find("\": x509: "))?;
    Some(s[i + 3..].trim_end())
}

/// `s` up to Go's validity times, which differ by the second between runs.
fn without_times(s: &str) -> &str {
    s.split(": current time").next().unwrap_or(s)
}

/// The Go version of the installed containerd and skopeo (the same Debian toolchain).
fn oracle_go() -> String {
    use regtrust::hostroot::{Follow, RegularFile};
    use regtrust::trust::runtime_version::buildinfo;
    let mut seen = Vec::new();
    for bin in ["/usr/bin/containerd", "/usr/bin/skopeo"] {
        let f = RegularFile::open(std::path::Path::new(bin), Follow::Yes).unwrap();
        seen.push(
            buildinfo::read(&f)
                .unwrap()
                .expect("a Go binary")
                .go_version,
        );
    }
    assert_eq!(
        seen[0], seen[1],
        "containerd and skopeo are built with different Go"
    );
    seen.remove(0)
}

fn simple(
    name: &str,
    served: &Issued,
    chain_extra: &[&rcgen::Certificate],
    trusted_pem: &str,
    reason: &str,
) -> Run {
    let mut chain = vec![&served.cert];
    chain.extend_from_slice(chain_extra);
    let reg = Registry::start(&chain, Some(&served.key));
    let node = Node::new();
    node.trust(&reg.addr(), trusted_pem);
    differential(name, &reg, &node, reason)
}

#[test]
fn trusted_ca_is_ok_in_all_three() {
    let ca = ca("registry.test");
    let run = simple("trusted", &leaf(&ca), &[], &ca.pem(), "ok");
    let ep = &run.registry(0)["endpoints"][0];
    assert_eq!(ep["http_status"], 200);
    assert_eq!(
        ep["trusted_cas"][0]["sha256"],
        regtrust::cert::sha256_hex(ca.cert.der())
    );
    assert!(ep["trusted_cas"][0]["source"]
        .as_str()
        .unwrap()
        .ends_with("/ca.crt"));
    assert!(ep["timings_ms"]["tls"].as_f64().is_some());
}

#[test]
fn unknown_ca() {
    simple(
        "unknown CA",
        &leaf(&ca("real-ca")),
        &[],
        &ca("some-other-ca").pem(),
        "unknown_authority",
    );
}

#[test]
fn the_incident_same_subject_new_key() {
    // RSA, as in the incident, so Go's hint is "crypto/rsa: verification error".
    let rsa = || KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let (ka, kb) = (rsa(), rsa());
    let ca_a = Issued {
        cert: ca_params("sspifqdn.com.internal").self_signed(&ka).unwrap(),
        key: ka,
    };
    let ca_b = Issued {
        cert: ca_params("sspifqdn.com.internal").self_signed(&kb).unwrap(),
        key: kb,
    };
    let served = leaf(&ca_b);
    let run = simple("incident", &served, &[], &ca_a.pem(), "ca_key_mismatch");
    let detail = run.registry(0)["detail"].as_str().unwrap();
    assert!(detail.contains("x509: certificate signed by unknown authority (possibly because of \"crypto/rsa: verification error\" while trying to verify candidate authority certificate \"sspifqdn.com.internal\")"), "{detail}");
    let km = &run.registry(0)["endpoints"][0]["key_mismatch"];
    assert_eq!(
        km["trusted"][0]["sha256"],
        regtrust::cert::sha256_hex(ca_a.cert.der())
    );
    assert_eq!(
        km["presented_cert_sha256"],
        regtrust::cert::sha256_hex(served.cert.der())
    );

    // The text for a person names the situation and both fingerprints.
    let reg = Registry::start(&[&served.cert], Some(&served.key));
    let node = Node::new();
    node.trust(&reg.addr(), &ca_a.pem());
    let root = node.root.path().display().to_string();
    let text = regtrust(&["check", "--host-root", &root, &reg.addr()]);
    assert_eq!(text.code, 1);
    assert!(text.stdout.contains("SAME NAME"), "{}", text.stdout);
    assert!(text
        .stdout
        .contains(&regtrust::cert::sha256_hex(ca_a.cert.der())));
    assert!(text
        .stdout
        .contains(&regtrust::cert::sha256_hex(served.cert.der())));

    // Trusting both old and new CA (mid-rotation bundle) works everywhere.
    simple(
        "old+new bundle",
        &served,
        &[],
        &format!("{}{}", ca_a.pem(), ca_b.pem()),
        "ok",
    );
}

#[test]
fn expired_and_not_yet_valid_leaf() {
    let ca = ca("registry.test");
    let mut p = leaf_params();
    p.not_before = days(-10);
    p.not_after = days(-1);
    simple("expired leaf", &sign(p, &ca), &[], &ca.pem(), "expired");
    let mut p = leaf_params();
    p.not_before = days(2);
    p.not_after = days(10);
    simple(
        "not yet valid",
        &sign(p, &ca),
        &[],
        &ca.pem(),
        "not_yet_valid",
    );
}

#[test]
fn name_mismatch() {
    let ca = ca("registry.test");
    let mut p = CertificateParams::new(vec!["elsewhere.test".to_string()]).unwrap();
    p.use_authority_key_identifier_extension = true;
    let run = simple(
        "name mismatch",
        &sign(p, &ca),
        &[],
        &ca.pem(),
        "name_mismatch",
    );
    assert!(run.registry(0)["detail"]
        .as_str()
        .unwrap()
        .contains("doesn't contain any IP SANs"));
}

#[test]
fn intermediate_served_and_missing() {
    let root = ca("root-ca");
    let mut ip = ca_params("intermediate-ca");
    ip.use_authority_key_identifier_extension = true;
    let inter = sign(ip, &root);
    let l = leaf(&inter);
    simple("served intermediate", &l, &[&inter.cert], &root.pem(), "ok");
    let run = simple(
        "missing intermediate",
        &l,
        &[],
        &root.pem(),
        "unknown_authority",
    );
    assert!(run.registry(0)["next_step"]
        .as_str()
        .unwrap()
        .contains("did not send"));
}

#[test]
fn expired_ca() {
    let mut p = ca_params("old-ca");
    p.not_before = days(-30);
    p.not_after = days(-1);
    let key = KeyPair::generate().unwrap();
    let old = Issued {
        cert: p.self_signed(&key).unwrap(),
        key,
    };
    simple("expired CA", &leaf(&old), &[], &old.pem(), "ca_expired");
}

#[test]
fn self_signed_leaf_trusted_and_untrusted() {
    let mut p = leaf_params();
    p.use_authority_key_identifier_extension = false;
    p.is_ca = IsCa::NoCa;
    let key = KeyPair::generate().unwrap();
    let ss = Issued {
        cert: p.self_signed(&key).unwrap(),
        key,
    };
    simple("self-signed trusted", &ss, &[], &ss.pem(), "ok");
    simple(
        "self-signed untrusted",
        &ss,
        &[],
        &ca("unrelated").pem(),
        "untrusted_self_signed",
    );
}

#[test]
fn rsa_1024_and_p521_pass_as_in_go() {
    // RSA-1024 leaf (Go accepts >= 1024 bits, webpki does not).
    let dir = tmp();
    let key_path = dir.path().join("k.pem");
    let st = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:1024",
            "-out",
        ])
        .arg(&key_path)
        .output()
        .unwrap();
    assert!(st.status.success());
    let ca = ca("registry.test");
    let f = |n: &str| dir.path().join(n);
    write(&f("ca.pem"), ca.pem());
    write(&f("ca.key"), ca.key.serialize_pem());
    write(&f("san.ext"), "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1\n");
    let csr = Command::new("openssl")
        .args(["req", "-new", "-subj", "/CN=127.0.0.1", "-key"])
        .arg(&key_path)
        .arg("-out")
        .arg(f("l.csr"))
        .status()
        .unwrap();
    assert!(csr.success());
    let signed = Command::new("openssl")
        .args(["x509", "-req", "-days", "5", "-in"])
        .arg(f("l.csr"))
        .arg("-CA")
        .arg(f("ca.pem"))
        .arg("-CAkey")
        .arg(f("ca.key"))
        .arg("-CAcreateserial")
        .arg("-extfile")
        .arg(f("san.ext"))
        .arg("-out")
        .arg(f("l.pem"))
        .output()
        .unwrap();
    assert!(
        signed.status.success(),
        "{}",
        String::from_utf8_lossy(&signed.stderr)
    );
    struct C(String);
    let cert = C(std::fs::read_to_string(f("l.pem")).unwrap());
    impl C {
        fn pem(&self) -> String {
            self.0.clone()
        }
    }
    let reg = Registry::start_pem(cert.pem(), std::fs::read_to_string(&key_path).unwrap());
    let node = Node::new();
    node.trust(&reg.addr(), &ca.pem());
    differential("rsa-1024 leaf", &reg, &node, "ok");

    // P-521 CA and leaf.
    let k = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P521_SHA512).unwrap();
    let ca521 = Issued {
        cert: ca_params("p521-ca").self_signed(&k).unwrap(),
        key: k,
    };
    let lk = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P521_SHA512).unwrap();
    let l = Issued {
        cert: leaf_params()
            .signed_by(&lk, &ca521.cert, &ca521.key)
            .unwrap(),
        key: lk,
    };
    simple("p-521", &l, &[], &ca521.pem(), "ok");
}

#[test]
fn mirror_with_its_own_ca_and_degraded_first_endpoint() {
    let mirror_ca = ca("mirror-ca");
    let main_ca = ca("main-ca");
    let mirror_leaf = leaf(&mirror_ca);
    let main_leaf = leaf(&main_ca);
    let mirror = Registry::start(&[&mirror_leaf.cert], Some(&mirror_leaf.key));
    let main = Registry::start(&[&main_leaf.cert], Some(&main_leaf.key));
    let node = Node::new();
    let dir = node.hosts_dir().join(main.addr());
    write(&dir.join("mirror.crt"), mirror_ca.pem());
    write(&dir.join("main.crt"), main_ca.pem());
    let hosts = |mirror_ca_file: &str| {
        format!(
            "server = \"https://{main}\"\nca = \"main.crt\"\n\n[host.\"https://{mirror}\"]\n  capabilities = [\"pull\", \"resolve\"]\n  ca = \"{mirror_ca_file}\"\n",
            main = main.addr(),
            mirror = mirror.addr()
        )
    };
    let ctd = Containerd::start();
    let args = ["--hosts-dir", "/etc/containerd/certs.d"];

    // The mirror's own CA verifies the mirror: ok through the mirror, nothing degraded.
    write(&dir.join("hosts.toml"), hosts("mirror.crt"));
    let run = check_json(node.root.path(), &args, &main.addr());
    assert!(run.ok(), "{}", run.stdout);
    assert_eq!(
        run.registry(0)["endpoints"][0]["endpoint"],
        format!("https://{}/v2/", mirror.addr())
    );
    assert!(run.registry(0)["endpoints"][0]["ok"].as_bool().unwrap());
    assert!(!run.stdout.contains("\"degraded\""));
    assert!(ctd
        .fetch(&node.hosts_dir(), node.root.path(), &main.addr())
        .status
        .success());

    // The mirror trusted with the wrong CA: the runtime falls through to the server — ok, degraded.
    write(&dir.join("hosts.toml"), hosts("main.crt"));
    let run = check_json(node.root.path(), &args, &main.addr());
    assert!(run.ok(), "{}", run.stdout);
    let findings = run.registry(0)["findings"].as_array().unwrap();
    assert!(
        findings.iter().any(|f| f["kind"] == "degraded"),
        "{findings:?}"
    );
    assert_eq!(
        run.registry(0)["endpoints"][0]["reason"],
        "unknown_authority"
    );
    let f = ctd.fetch(&node.hosts_dir(), node.root.path(), &main.addr());
    assert!(f.status.success(), "{}", String::from_utf8_lossy(&f.stderr));

    // Neither works: the registry's reason is the first endpoint's, as containerd reports it.
    write(&dir.join("main.crt"), ca("nobody").pem());
    let run = check_json(node.root.path(), &args, &main.addr());
    assert!(!run.ok());
    assert_eq!(
        run.reason(),
        run.registry(0)["endpoints"][0]["reason"].as_str().unwrap()
    );
    assert_eq!(
        run.registry(0)["detail"],
        run.registry(0)["endpoints"][0]["detail"]
    );
    assert!(!ctd
        .fetch(&node.hosts_dir(), node.root.path(), &main.addr())
        .status
        .success());
}

#[test]
fn system_roots_from_the_host_root() {
    let ca = ca("corp-root");
    let l = leaf(&ca);
    let reg = Registry::start(&[&l.cert], Some(&l.key));
    let node = Node::new();
    // No per-registry CA; the node's system bundle (under the host root) holds the CA.
    write(
        &node
            .path("/etc/containerd/certs.d")
            .join(reg.addr())
            .join("hosts.toml"),
        format!("[host.\"https://{0}\"]\n", reg.addr()),
    );
    node.append_file("/etc/ssl/certs/ca-certificates.crt", &ca.pem());
    let run = differential("system roots", &reg, &node, "ok");
    assert!(run.registry(0)["endpoints"][0]["trusted_cas"][0]["source"]
        .as_str()
        .unwrap()
        .starts_with("system:"));
}

#[test]
fn network_failures_have_their_own_reasons() {
    let node = Node::new();
    // Plain HTTP where TLS is expected.
    let plain = Registry::start_plain();
    node.trust(&plain.addr(), &ca("x").pem());
    assert_eq!(
        check_json(node.root.path(), &[], &plain.addr()).reason(),
        "not_tls"
    );
    // Nothing listening.
    let port = free_port();
    let refused = format!("127.0.0.1:{port}");
    node.trust(&refused, &ca("x").pem());
    assert_eq!(
        check_json(node.root.path(), &[], &refused).reason(),
        "connection_refused"
    );
    // Accepts TCP, never speaks: timeout in the TLS phase, within the configured deadline.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap().to_string();
    let holder = std::thread::spawn(move || {
        silent.set_nonblocking(false).unwrap();
        let mut held = Vec::new();
        for _ in 0..4 {
            match silent.accept() {
                Ok((mut s, _)) => {
                    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                    let mut b = [0u8; 64];
                    let _ = s.read(&mut b);
                    held.push(s);
                }
                Err(_) => break,
            }
        }
    });
    node.trust(&silent_addr, &ca("x").pem());
    let mut args = check_args(node.root.path(), 1);
    args.push(silent_addr.clone());
    let run = regtrust(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(run.reason(), "timeout", "{}", run.stdout);
    assert!(run.registry(0)["detail"].as_str().unwrap().contains("tls"));
    drop(holder);
    // DNS failure (.invalid never resolves, RFC 6761).
    node.trust("nowhere.invalid", &ca("x").pem());
    assert_eq!(
        check_json(node.root.path(), &[], "nowhere.invalid").reason(),
        "dns_failure"
    );
}

#[test]
fn v2_not_found_is_http_status() {
    let ca = ca("registry.test");
    let l = leaf(&ca);
    let reg = Registry::start(&[&l.cert], Some(&l.key));
    let node = Node::new();
    let dir = node.hosts_dir().join(reg.addr());
    write(&dir.join("ca.crt"), ca.pem());
    write(
        &dir.join("hosts.toml"),
        format!("server = \"https://{0}/not-a-registry\"\noverride_path = true\nca = \"ca.crt\"\n[host.\"https://{0}/not-a-registry\"]\noverride_path = true\nca = \"ca.crt\"\n", reg.addr()),
    );
    let run = check_json(node.root.path(), &[], &reg.addr());
    assert_eq!(run.reason(), "http_status", "{}", run.stdout);
    assert_eq!(run.registry(0)["endpoints"][0]["http_status"], 404);
}

#[test]
fn usage_and_config_errors_exit_2_and_discovery_checks_every_host_dir() {
    let node = Node::new();
    let root = node.root.path().display().to_string();
    assert_eq!(
        regtrust(&["check", "--host-root", &root, "https://not-a-host"]).code,
        2
    );
    assert_eq!(
        regtrust(&["check", "--host-root", "/does/not/exist", "r.test"]).code,
        2
    );
    write(&node.path("/etc/containerd/config.toml"), "version = = 2");
    let bad = regtrust(&["check", "--host-root", &root, "r.test"]);
    assert_eq!(bad.code, 2);
    assert!(
        bad.stderr.contains("/etc/containerd/config.toml"),
        "{}",
        bad.stderr
    );
    std::fs::remove_file(node.path("/etc/containerd/config.toml")).unwrap();

    // No registry given: every host dir except _default is checked.
    let ca = ca("registry.test");
    let l = leaf(&ca);
    let reg = Registry::start(&[&l.cert], Some(&l.key));
    node.trust(&reg.addr(), &ca.pem());
    std::fs::create_dir_all(node.hosts_dir().join("_default")).unwrap();
    write(
        &node.hosts_dir().join("broken.test/ca.crt"),
        "not a certificate",
    );
    let args = check_args(node.root.path(), 5);
    let run = regtrust(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let regs: Vec<_> = run.json["registries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["registry"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(regs, vec![reg.addr(), "broken.test".to_string()]);
    assert_eq!(run.code, 1);
    let broken = &run.json["registries"][1];
    assert_eq!(broken["reason"], "config_error");
    assert!(broken["findings"][0]["path"]
        .as_str()
        .unwrap()
        .ends_with("broken.test/ca.crt"));
}

#[test]
fn demo_reproduces_the_incident() {
    let run = regtrust(&["demo", "--output", "json"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(run.json["before"]["registries"][0]["reason"], "ok");
    let after = &run.json["after"]["registries"][0];
    assert_eq!(after["reason"], "ca_key_mismatch");
    let km = &after["endpoints"][0]["key_mismatch"];
    assert_eq!(km["trusted"][0]["sha256"], run.json["ca_a_sha256"]);
    // The agent's phases: expected CA untrusted before the rotation, the incident, the remedy.
    let phase = |i: usize| {
        run.json["agent"][i]["metrics"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(
        metric(&phase(1), "regtrust_expected_ca_trusted", &[]),
        Some(0.0)
    );
    assert_eq!(metric(&phase(1), "regtrust_probe_success", &[]), Some(1.0));
    assert_eq!(metric(&phase(2), "regtrust_probe_success", &[]), Some(0.0));
    assert_eq!(
        metric(&phase(3), "regtrust_stage_total", &[("result", "applied")]),
        Some(1.0)
    );
    assert_eq!(metric(&phase(3), "regtrust_probe_success", &[]), Some(1.0));
    // One rotation is one change, however the CA was first identified (key id, then fingerprint).
    assert_eq!(
        metric(&phase(3), "regtrust_ca_changes_total", &[]),
        Some(1.0)
    );
    assert_eq!(run.json["remedied"]["registries"][0]["reason"], "ok");
}

#[test]
fn npd_mode_prints_one_short_line_with_npd_exit_codes() {
    let ca = ca("registry.test");
    let l = leaf(&ca);
    let reg = Registry::start(&[&l.cert], Some(&l.key));
    let node = Node::new();
    node.trust(&reg.addr(), &ca.pem());
    let root = node.root.path().display().to_string();
    let ok = regtrust(&["check", "--npd", "--host-root", &root, &reg.addr()]);
    assert_eq!(ok.code, 0, "{}", ok.stdout);
    assert_eq!(ok.stdout.lines().count(), 1);
    assert!(ok.stdout.trim_end().chars().count() <= 80);
    // Many failing registries: still one line of at most 80 characters, exit 1.
    let mut args = vec![
        "check".to_string(),
        "--npd".into(),
        "--host-root".into(),
        root.clone(),
        "--timeout".into(),
        "2".into(),
    ];
    for _ in 0..6 {
        let port = free_port();
        let name = format!("127.0.0.1:{port}");
        node.trust(&name, &ca.pem());
        args.push(name);
    }
    let bad = regtrust(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(bad.code, 1, "{}", bad.stdout);
    assert_eq!(bad.stdout.lines().count(), 1);
    let line = bad.stdout.trim_end();
    assert!(
        line.chars().count() <= 80 && line.contains("connection_refused"),
        "{line}"
    );
    // A configuration error is "unknown": exit 2, still one line on stdout.
    write(&node.path("/etc/containerd/config.toml"), "not = = toml");
    let unknown = regtrust(&["check", "--npd", "--host-root", &root]);
    assert_eq!(unknown.code, 2);
    assert!(
        unknown.stdout.starts_with("unknown: ") && unknown.stdout.lines().count() == 1,
        "{}",
        unknown.stdout
    );
}

#[test]
fn client_certificates_are_presented_as_the_runtimes_present_them() {
    let ca = ca("registry.test");
    let l = leaf(&ca);
    let client_ca = common::ca("client CA");
    let mut cp = CertificateParams::new(Vec::<String>::new()).unwrap();
    cp.distinguished_name
        .push(rcgen::DnType::CommonName, "node client");
    cp.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    cp.use_authority_key_identifier_extension = true;
    let client = sign(cp, &client_ca);
    let reg = Registry::start_mtls(&[&l.cert], &l.key, &client_ca.pem());
    let addr = reg.addr();

    // Without a client certificate every runtime fails, and regtrust says why.
    let node = Node::new();
    node.trust(&addr, &ca.pem());
    let run = differential(
        "mTLS without a client certificate",
        &reg,
        &node,
        "handshake_failed",
    );
    assert!(
        run.registry(0)["next_step"]
            .as_str()
            .unwrap()
            .contains("client certificate"),
        "{}",
        run.stdout
    );

    // With the pair where each runtime reads it: containerd's hosts.toml `client`, certs.d's .cert/.key.
    node.present_client(&addr, &client);
    differential("mTLS with a client certificate", &reg, &node, "ok");

    // A client pair that does not load fails the pull before dialling, in both runtimes.
    write(
        &node.hosts_dir().join(&addr).join("client.key"),
        "not a key",
    );
    write(&node.containers_dir(&addr).join("client.key"), "not a key");
    let run = check_json(node.root.path(), &[], &addr);
    assert_eq!(run.reason(), "config_error", "{}", run.stdout);
    assert!(run.registry(0)["detail"]
        .as_str()
        .unwrap()
        .contains("failed to load X509 key pair"));
    assert_eq!(
        check_json(node.root.path(), &["--runtime", "crio"], &addr).reason(),
        "config_error"
    );
}

#[test]
fn registry_names_that_are_not_names_are_usage_errors() {
    let node = Node::new();
    let root = node.root.path().display().to_string();
    for bad in [".", "..", "a..b", "r.test.", "r\u{1b}[2K.test", "r test"] {
        let run = regtrust(&["check", "--host-root", &root, bad]);
        assert_eq!(run.code, 2, "check {bad:?}: {}", run.stderr);
        assert!(run.stderr.contains("is not a registry"), "{}", run.stderr);
        assert!(!run.stderr.contains('\u{1b}'), "{:?}", run.stderr);
        let run = regtrust(&[
            "stage",
            "--host-root",
            &root,
            "--registry",
            bad,
            "--ca",
            "/nonexistent.crt",
        ]);
        assert_eq!(run.code, 2, "stage {bad:?}: {}", run.stderr);
    }
}

/// crypto/x509 verify.go `validHostname`: a DNS SAN of a bare `*` is a pattern in go1.19 (the
/// oracles' Go), matching the single-label `localhost`; from go1.23 regtrust follows Go in
/// refusing it (`TestVerifyBareWildcard`), and the same registry is a name mismatch.
#[test]
fn a_bare_wildcard_san_matches_a_single_label_host_in_go_1_19() {
    let ca = ca("registry.test");
    let mut p = CertificateParams::new(vec!["*".to_string()]).unwrap();
    p.use_authority_key_identifier_extension = true;
    let l = sign(p, &ca);
    let reg = Registry::start(&[&l.cert], Some(&l.key));
    let addr = format!("localhost:{}", reg.port);
    let node = Node::new();
    node.trust(&addr, &ca.pem());
    differential_at("bare * for localhost (go1.19)", &addr, &node, "ok");
    // A newer runtime's Go refuses the bare wildcard: Go's HostnameError, naming `*`.
    let run = check_json(
        node.root.path(),
        &["--runtime", "crio", "--go-version", "1.23.0"],
        &addr,
    );
    assert_eq!(run.reason(), "name_mismatch", "{}", run.stdout);
    let detail = run.registry(0)["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("x509: certificate is valid for *, not localhost"),
        "{detail}"
    );
}

#[test]
fn a_fifo_named_ca_crt_is_a_finding_not_a_hang() {
    let node = Node::new();
    let dir = node.hosts_dir().join("fifo.test");
    std::fs::create_dir_all(&dir).unwrap();
    nix::unistd::mkfifo(
        &dir.join("ca.crt"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    let mut args = check_args(node.root.path(), 2);
    args.push("fifo.test".into());
    let mut child = Command::new(env!("CARGO_BIN_EXE_regtrust"))
        .args(&args)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("regtrust check hung on a FIFO named ca.crt");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert_eq!(status.code(), Some(1), "{out}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    let r = &json["registries"][0];
    assert_eq!(r["reason"], "config_error");
    let f = &r["findings"][0];
    assert_eq!(f["kind"], "ca_unreadable");
    assert!(f["path"].as_str().unwrap().ends_with("fifo.test/ca.crt"));
    assert!(f["message"].as_str().unwrap().contains("FIFO"), "{f}");
}

fn constrained_ca(
    cn: &str,
    permitted: Vec<rcgen::GeneralSubtree>,
    excluded: Vec<rcgen::GeneralSubtree>,
) -> Issued {
    let mut p = ca_params(cn);
    p.name_constraints = Some(rcgen::NameConstraints {
        permitted_subtrees: permitted,
        excluded_subtrees: excluded,
    });
    let key = KeyPair::generate().unwrap();
    Issued {
        cert: p.self_signed(&key).unwrap(),
        key,
    }
}

#[test]
fn name_constraints_excluding_a_san_fail_in_all_three() {
    // The node dials 127.0.0.1, but Go checks every SAN of the leaf: registry.test is excluded.
    let ca = constrained_ca(
        "constrained",
        vec![],
        vec![rcgen::GeneralSubtree::DnsName("registry.test".into())],
    );
    let run = simple(
        "excluded",
        &leaf(&ca),
        &[],
        &ca.pem(),
        "invalid_certificate",
    );
    // The report says which Go the verdict followed, and that the flag chose it.
    assert_eq!(run.json["runtime"]["go_version"], oracle_go().as_str());
    assert_eq!(run.json["runtime"]["source"], "config");
    let detail = run.registry(0)["detail"].as_str().unwrap();
    // Go 1.19 (the oracles' Go) returns x509's error without crypto/tls's prefix (go1.20+).
    assert!(
        detail.ends_with("\": x509: a root or intermediate certificate is not authorized to sign for this name: DNS name \"registry.test\" is excluded by constraint \"registry.test\""),
        "{detail}"
    );
    let ip = constrained_ca(
        "constrained-ip",
        vec![],
        vec![rcgen::GeneralSubtree::IpAddress(rcgen::CidrSubnet::V4(
            [127, 0, 0, 0],
            [255, 0, 0, 0],
        ))],
    );
    simple(
        "excluded ip",
        &leaf(&ip),
        &[],
        &ip.pem(),
        "invalid_certificate",
    );
}

#[test]
fn name_constraints_permitting_every_san_pass_in_all_three() {
    let dns = |s: &str| rcgen::GeneralSubtree::DnsName(s.into());
    let ca = constrained_ca(
        "permitting",
        vec![
            dns("localhost"),
            dns("registry.test"),
            rcgen::GeneralSubtree::IpAddress(rcgen::CidrSubnet::V4([127, 0, 0, 0], [255, 0, 0, 0])),
        ],
        vec![dns("other.test")],
    );
    simple("permitted", &leaf(&ca), &[], &ca.pem(), "ok");
    // One SAN outside the permitted DNS subtrees is enough to fail.
    let narrow = constrained_ca("narrow", vec![dns("registry.test")], vec![]);
    simple(
        "not permitted",
        &leaf(&narrow),
        &[],
        &narrow.pem(),
        "invalid_certificate",
    );
}

#[test]
fn common_name_only_gets_gos_legacy_text_in_all_three() {
    // No SAN extension; the CN is the address the node dials: Go refuses, with its own words.
    let ca = ca("cn-ca");
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name
        .push(rcgen::DnType::CommonName, "127.0.0.1");
    p.use_authority_key_identifier_extension = true;
    let run = simple("cn only", &sign(p, &ca), &[], &ca.pem(), "name_mismatch");
    let detail = run.registry(0)["detail"].as_str().unwrap();
    assert!(
        detail.ends_with("x509: certificate relies on legacy Common Name field, use SANs instead"),
        "{detail}"
    );
}

/// containerd `core/remotes/docker/resolver.go`, `Resolve`: a tag is resolved only by hosts with
/// both pull and resolve; a digest is fetched from hosts with pull. A pull-only mirror in front of
/// a server that refuses connections: the real containerd and regtrust agree on both kinds.
#[test]
fn a_pull_only_mirror_serves_pulls_by_digest_not_by_tag() {
    let mirror_ca = ca("mirror-ca");
    let l = leaf(&mirror_ca);
    let mirror = Registry::start(&[&l.cert], Some(&l.key));
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let node = Node::new();
    node.trust(&mirror.addr(), &mirror_ca.pem());
    let dir = node.hosts_dir().join(&dead);
    write(&dir.join("mirror.crt"), mirror_ca.pem());
    write(
        &dir.join("hosts.toml"),
        format!(
            "server = \"https://{dead}\"\n\n[host.\"https://{m}\"]\n  capabilities = [\"pull\"]\n  ca = \"mirror.crt\"\n",
            m = mirror.addr()
        ),
    );
    let ctd = Containerd::start();
    let args = ["--hosts-dir", "/etc/containerd/certs.d"];

    let by_tag = ctd.fetch(&node.hosts_dir(), node.root.path(), &dead);
    assert!(
        !by_tag.status.success(),
        "ctr resolved a tag through a pull-only mirror"
    );
    let run = check_json(node.root.path(), &args, &dead);
    assert!(!run.ok(), "{}", run.stdout);
    assert_eq!(run.reason(), "connection_refused", "{}", run.stdout);
    assert!(
        run.stdout.contains("endpoint_not_for_this_pull"),
        "{}",
        run.stdout
    );

    let inspect = skopeo_inspect(
        &node.containers_dir(&mirror.addr()),
        node.root.path(),
        &mirror.addr(),
    );
    assert!(
        inspect.status.success(),
        "{}",
        String::from_utf8_lossy(&inspect.stderr)
    );
    let digest = serde_json::from_slice::<serde_json::Value>(&inspect.stdout).unwrap()["Digest"]
        .as_str()
        .unwrap()
        .to_string();
    let image = IMAGE.split(':').next().unwrap();
    let by_digest = ctd.fetch_ref(
        &node.hosts_dir(),
        node.root.path(),
        &format!("{dead}/{image}@{digest}"),
    );
    assert!(
        by_digest.status.success(),
        "{}",
        String::from_utf8_lossy(&by_digest.stderr)
    );
    let mut args_digest = args.to_vec();
    args_digest.push("--by-digest");
    let run = check_json(node.root.path(), &args_digest, &dead);
    assert!(run.ok(), "{}", run.stdout);
    assert_eq!(
        run.registry(0)["endpoints"][0]["endpoint"],
        format!("https://{}/v2/", mirror.addr())
    );
    assert_eq!(run.json["pull"], "digest");
}

// === which candidate error Go returns, and the reason it gets (issue 10 items 4 and 5) ===

/// A serving certificate for 127.0.0.1 signed by `ca` with openssl's `-DIGEST` (rcgen signs
/// only with SHA-256 and up): (certificate PEM, key PEM).
fn openssl_leaf(ca: &Issued, digest: &str) -> (String, String) {
    openssl_leaf_by(&ca.pem(), &ca.key.serialize_pem(), digest)
}

/// [`openssl_leaf`] for a CA given as PEM certificate and key (keys rcgen cannot sign with).
fn openssl_leaf_by(ca_pem: &str, ca_key_pem: &str, digest: &str) -> (String, String) {
    let dir = tmp();
    let f = |n: &str| dir.path().join(n);
    write(&f("ca.pem"), ca_pem);
    write(&f("ca.key"), ca_key_pem);
    write(
        &f("san.ext"),
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
    );
    let req = Command::new("openssl")
        .args([
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
        ])
        .arg("-keyout")
        .arg(f("l.key"))
        .arg("-out")
        .arg(f("l.csr"))
        .output()
        .unwrap();
    assert!(
        req.status.success(),
        "{}",
        String::from_utf8_lossy(&req.stderr)
    );
    let signed = Command::new("openssl")
        .args(["x509", "-req", "-days", "5", &format!("-{digest}"), "-in"])
        .arg(f("l.csr"))
        .arg("-CA")
        .arg(f("ca.pem"))
        .arg("-CAkey")
        .arg(f("ca.key"))
        .arg("-CAcreateserial")
        .arg("-extfile")
        .arg(f("san.ext"))
        .arg("-out")
        .arg(f("l.pem"))
        .output()
        .unwrap();
    assert!(
        signed.status.success(),
        "{}",
        String::from_utf8_lossy(&signed.stderr)
    );
    let read = |n: &str| std::fs::read_to_string(f(n)).unwrap();
    (read("l.pem"), read("l.key"))
}

fn rsa_ca(cn: &str) -> Issued {
    let key = KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    Issued {
        cert: ca_params(cn).self_signed(&key).unwrap(),
        key,
    }
}

/// GODEBUG=x509sha1=1 lets go1.19–1.23 verify SHA-1 certificate signatures (x509.go
/// `checkSignature`): ctr and skopeo pull with it in their environment, and so regtrust says ok
/// with the runtime's GODEBUG (`--godebug`, or read from the runtime's process); go1.24 removed
/// the setting, so its rules still refuse.
#[test]
fn x509sha1_in_the_runtimes_godebug_lets_go1_19_verify_sha1() {
    let ca = rsa_ca("sha1-ca");
    let (cert, key) = openssl_leaf(&ca, "sha1");
    let reg = Registry::start_pem(cert, key);
    let addr = reg.addr();
    let node = Node::new();
    node.trust(&addr, &ca.pem());
    let env = [("GODEBUG", "x509sha1=1")];
    let sk = skopeo_inspect_env(&node.containers_dir(&addr), node.root.path(), &addr, &env);
    assert!(
        sk.status.success(),
        "skopeo: {}",
        String::from_utf8_lossy(&sk.stderr)
    );
    let ctd = Containerd::start();
    let reference = format!("{addr}/{IMAGE}");
    let f = ctd.fetch_env(&node.hosts_dir(), node.root.path(), &reference, &env);
    assert!(
        f.status.success(),
        "ctr: {}",
        String::from_utf8_lossy(&f.stderr)
    );
    let go = oracle_go();
    let ctd_rules = [
        "--hosts-dir",
        "/etc/containerd/certs.d",
        "--go-version",
        &go,
    ];
    let crio_rules = ["--runtime", "crio", "--go-version", &go];
    for rules in [&ctd_rules[..], &crio_rules[..]] {
        let with: Vec<&str> = rules
            .iter()
            .copied()
            .chain(["--godebug", "x509sha1=1"])
            .collect();
        let run = check_json(node.root.path(), &with, &addr);
        assert_eq!(run.reason(), "ok", "{rules:?}: {}", run.stdout);
        assert_eq!(
            run.json["runtime"]["env_godebug"], "x509sha1=1",
            "{}",
            run.stdout
        );
        let without = check_json(node.root.path(), rules, &addr);
        assert_eq!(
            without.reason(),
            "insecure_signature",
            "{rules:?}: {}",
            without.stdout
        );
    }
    let newer = check_json(
        node.root.path(),
        &[
            "--runtime",
            "crio",
            "--go-version",
            "1.24.0",
            "--godebug",
            "x509sha1=1",
        ],
        &addr,
    );
    assert_eq!(newer.reason(), "insecure_signature", "{}", newer.stdout);
}

#[test]
fn sha1_leaf_from_the_right_ca_is_insecure_signature_not_a_key_mismatch() {
    // The motivating defect: this was ca_key_mismatch, whose runbook says the CA was replaced.
    // Go 1.19's words: the x509sha1 GODEBUG hint for SHA-1, none for MD5.
    let cases = [
        (
            rsa_ca("sha1-ca"),
            "sha1",
            "SHA1-RSA (temporarily override with GODEBUG=x509sha1=1)",
        ),
        (
            ca("sha1-ca"),
            "sha1",
            "ECDSA-SHA1 (temporarily override with GODEBUG=x509sha1=1)",
        ),
        (rsa_ca("sha1-ca"), "md5", "MD5-RSA"),
    ];
    for (ca, digest, alg) in cases {
        let (cert, key) = openssl_leaf(&ca, digest);
        let reg = Registry::start_pem(cert, key);
        let node = Node::new();
        node.trust(&reg.addr(), &ca.pem());
        let run = differential(alg, &reg, &node, "insecure_signature");
        let detail = run.registry(0)["detail"].as_str().unwrap();
        let want = format!("\": x509: certificate signed by unknown authority (possibly because of \"x509: cannot verify signature: insecure algorithm {alg}\" while trying to verify candidate authority certificate \"sha1-ca\")");
        assert!(detail.ends_with(&want), "{detail}");
        assert!(run.registry(0)["endpoints"][0]["key_mismatch"].is_null());
        let next = run.registry(0)["next_step"].as_str().unwrap();
        assert!(next.contains("SHA-256"), "{next}");
    }
}

#[test]
fn a_trusted_root_not_valid_yet_is_gos_own_error() {
    let mut p = ca_params("future-ca");
    p.not_before = days(2);
    p.not_after = days(30);
    let key = KeyPair::generate().unwrap();
    let future = Issued {
        cert: p.self_signed(&key).unwrap(),
        key,
    };
    let run = simple(
        "future CA",
        &leaf(&future),
        &[],
        &future.pem(),
        "ca_not_yet_valid",
    );
    let detail = run.registry(0)["detail"].as_str().unwrap();
    assert!(
        detail.contains("\": x509: certificate has expired or is not yet valid: current time ")
            && detail.contains(" is before "),
        "{detail}"
    );
}

#[test]
fn a_trusted_ca_that_may_not_sign_is_named_in_the_next_step() {
    type Tweak = fn(&mut CertificateParams);
    let cases: [(&str, Tweak, &str); 2] = [
        ("CA:FALSE", |p| p.is_ca = IsCa::ExplicitNoCa, "CA:FALSE"),
        (
            "no keyCertSign",
            |p| p.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature],
            "keyUsage without keyCertSign",
        ),
    ];
    for (name, tweak, words) in cases {
        let mut p = ca_params("cannot-sign-ca");
        tweak(&mut p);
        let key = KeyPair::generate().unwrap();
        let ca = Issued {
            cert: p.self_signed(&key).unwrap(),
            key,
        };
        let run = simple(name, &leaf(&ca), &[], &ca.pem(), "unknown_authority");
        let detail = run.registry(0)["detail"].as_str().unwrap();
        assert!(detail.ends_with("(possibly because of \"x509: invalid signature: parent certificate cannot sign this kind of certificate\" while trying to verify candidate authority certificate \"cannot-sign-ca\")"), "{name}: {detail}");
        let next = run.registry(0)["next_step"].as_str().unwrap();
        assert!(
            next.contains("trusted CA \"cannot-sign-ca\"") && next.contains(words),
            "{name}: {next}"
        );
    }
}

#[test]
fn a_path_length_violation_is_gos_own_error() {
    let mut rp = ca_params("pathlen-root");
    rp.is_ca = IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    let key = KeyPair::generate().unwrap();
    let root = Issued {
        cert: rp.self_signed(&key).unwrap(),
        key,
    };
    let mut ip = ca_params("pathlen-intermediate");
    ip.use_authority_key_identifier_extension = true;
    let inter = sign(ip, &root);
    let run = simple(
        "path length",
        &leaf(&inter),
        &[&inter.cert],
        &root.pem(),
        "invalid_certificate",
    );
    let detail = run.registry(0)["detail"].as_str().unwrap();
    assert!(
        detail.ends_with("\": x509: too many intermediates for path length constraint"),
        "{detail}"
    );
    let next = run.registry(0)["next_step"].as_str().unwrap();
    assert!(
        next.contains("\"pathlen-root\"") && next.contains("pathlen"),
        "{next}"
    );
}

#[test]
fn an_expired_root_beside_another_key_of_its_name_is_still_the_expiry() {
    // Go's buildChains: the other key's signature failure is only a hint, the expired root's
    // isValid error is `err`, and `err` wins over UnknownAuthorityError.
    let mut p = ca_params("rotating-ca");
    p.not_before = days(-30);
    p.not_after = days(-1);
    let key = KeyPair::generate().unwrap();
    let old = Issued {
        cert: p.self_signed(&key).unwrap(),
        key,
    };
    let other = ca("rotating-ca");
    let bundle = format!("{}{}", other.pem(), old.pem());
    let run = simple(
        "expired + other key",
        &leaf(&old),
        &[],
        &bundle,
        "ca_expired",
    );
    let detail = run.registry(0)["detail"].as_str().unwrap();
    assert!(
        detail.contains("\": x509: certificate has expired or is not yet valid: current time ")
            && !detail.contains("unknown authority"),
        "{detail}"
    );
    let next = run.registry(0)["next_step"].as_str().unwrap();
    assert!(next.contains("\"rotating-ca\""), "{next}");
}

#[test]
fn a_wrong_intermediate_from_the_registry_is_not_a_ca_key_mismatch() {
    // The registry sends an intermediate with the right name and another key: Go's hint is the
    // signature failure, but no trusted CA was replaced.
    let root = ca("chain-root");
    let mut ip = ca_params("chain-intermediate");
    ip.use_authority_key_identifier_extension = true;
    let inter = sign(ip.clone(), &root);
    let wrong = sign(ip, &root);
    let run = simple(
        "wrong intermediate",
        &leaf(&inter),
        &[&wrong.cert],
        &root.pem(),
        "unknown_authority",
    );
    let detail = run.registry(0)["detail"].as_str().unwrap();
    assert!(detail.ends_with("(possibly because of \"x509: ECDSA verification failure\" while trying to verify candidate authority certificate \"chain-intermediate\")"), "{detail}");
    let next = run.registry(0)["next_step"].as_str().unwrap();
    assert!(
        next.contains("intermediate \"chain-intermediate\""),
        "{next}"
    );
}

/// What the runtime says when the port does not speak TLS, by the peer's first bytes (Go's
/// `tls.RecordHeaderError`): an `HTTP/` answer is net/http's "server gave HTTP response to HTTPS
/// client", anything else "tls: first record does not look like a TLS handshake". ctr and skopeo
/// print the same words as regtrust's detail.
#[test]
fn not_tls_in_go_words() {
    let plain = Registry::start_plain();
    // A peer that answers the hello with an SSH banner, for at most a few connections.
    let banner = TcpListener::bind("127.0.0.1:0").unwrap();
    let banner_addr = banner.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for mut s in banner.incoming().take(8).flatten() {
            let _ = s.write_all(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n");
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let mut b = [0u8; 512];
            let _ = s.read(&mut b);
        }
    });
    let ctd = Containerd::start();
    for (addr, words) in [
        (
            plain.addr(),
            "http: server gave HTTP response to HTTPS client",
        ),
        (
            banner_addr,
            "tls: first record does not look like a TLS handshake",
        ),
    ] {
        let node = Node::new();
        node.trust(&addr, &ca("x").pem());
        let ctd_rules = [
            "--go-version",
            &oracle_go(),
            "--runtime-version",
            &oracle_containerd_version(),
        ]
        .map(String::from);
        let crio_rules = ["--runtime", "crio", "--go-version", &oracle_go()].map(String::from);
        for rules in [&ctd_rules[..], &crio_rules[..]] {
            let rules: Vec<&str> = rules.iter().map(String::as_str).collect();
            let run = check_json(node.root.path(), &rules, &addr);
            assert_eq!(run.reason(), "not_tls", "{addr} {rules:?}: {}", run.stdout);
            let ours = run.registry(0)["detail"].as_str().unwrap_or_default();
            assert!(
                ours.ends_with(words),
                "{addr} {rules:?}: regtrust said {ours:?}"
            );
        }
        let sk = skopeo_inspect(&node.containers_dir(&addr), node.root.path(), &addr);
        let sk_err = String::from_utf8_lossy(&sk.stderr);
        assert!(sk_err.contains(words), "{addr}: skopeo said {sk_err}");
        let f = ctd.fetch(&node.hosts_dir(), node.root.path(), &addr);
        let f_err = String::from_utf8_lossy(&f.stderr);
        assert!(f_err.contains(words), "{addr}: ctr said {f_err}");
    }
}

#[test]
fn a_sha1_intermediate_is_insecure_signature_at_its_own_level() {
    // The leaf is fine; the intermediate the registry sends is signed with SHA-1 by the trusted
    // root. Go's recursion returns the intermediate's UnknownAuthorityError (hint: the insecure
    // algorithm, candidate: the root) as the error itself.
    let root = rsa_ca("sha1-root");
    let dir = tmp();
    let f = |n: &str| dir.path().join(n);
    write(&f("root.pem"), root.pem());
    write(&f("root.key"), root.key.serialize_pem());
    write(
        &f("ca.ext"),
        "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n",
    );
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=sha1-intermediate",
        "-keyout",
        "i.key",
        "-out",
        "i.csr",
    ]);
    openssl(&[
        "x509",
        "-req",
        "-sha1",
        "-days",
        "5",
        "-in",
        "i.csr",
        "-CA",
        "root.pem",
        "-CAkey",
        "root.key",
        "-CAcreateserial",
        "-extfile",
        "ca.ext",
        "-out",
        "i.pem",
    ]);
    let read = |n: &str| std::fs::read_to_string(f(n)).unwrap();
    let (leaf, key) = openssl_leaf_by(&read("i.pem"), &read("i.key"), "sha256");
    let reg = Registry::start_pem(format!("{leaf}{}", read("i.pem")), key);
    let node = Node::new();
    node.trust(&reg.addr(), &root.pem());
    let run = differential("sha1 intermediate", &reg, &node, "insecure_signature");
    let detail = run.registry(0)["detail"].as_str().unwrap();
    assert!(detail.ends_with("(possibly because of \"x509: cannot verify signature: insecure algorithm SHA1-RSA (temporarily override with GODEBUG=x509sha1=1)\" while trying to verify candidate authority certificate \"sha1-root\")"), "{detail}");
    let next = run.registry(0)["next_step"].as_str().unwrap();
    assert!(
        next.starts_with("\"sha1-intermediate\" is signed with SHA1-RSA"),
        "{next}"
    );
}

// === Parsing as Go parses (issue 10 item 3) ===

/// A hosts.toml for `addr` with skip_verify and no CA, in place of [`Node::trust`]'s.
fn skip_verify_in_containerd(node: &Node, addr: &str) {
    write(
        &node.hosts_dir().join(addr).join("hosts.toml"),
        format!("server = \"https://{addr}\"\n\n[host.\"https://{addr}\"]\n  capabilities = [\"pull\", \"resolve\"]\n  skip_verify = true\n"),
    );
}

/// ctr and regtrust (containerd rules) on a skip_verify host: the same `ok`, and when it fails,
/// Go's `words` in both.
fn skip_verify_differential(name: &str, node: &Node, addr: &str, ok: bool, words: &str) {
    skip_verify_in_containerd(node, addr);
    let run = check_json(
        node.root.path(),
        &[
            "--hosts-dir",
            "/etc/containerd/certs.d",
            "--go-version",
            &oracle_go(),
            "--runtime-version",
            &oracle_containerd_version(),
        ],
        addr,
    );
    let f = Containerd::start().fetch(&node.hosts_dir(), node.root.path(), addr);
    let f_err = String::from_utf8_lossy(&f.stderr);
    assert_eq!(
        f.status.success(),
        ok,
        "{name} skip_verify: ctr says {f_err}"
    );
    assert_eq!(
        run.ok(),
        ok,
        "{name} skip_verify: regtrust says {}",
        run.stdout
    );
    if !ok {
        assert!(
            f_err.contains(words),
            "{name} skip_verify: ctr says {f_err}"
        );
        let detail = run.registry(0)["detail"].as_str().unwrap_or_default();
        assert!(detail.ends_with(words), "{name} skip_verify: {detail}");
    }
}

#[test]
fn a_presented_certificate_go_cannot_parse_fails_in_all_three_even_with_skip_verify() {
    // crypto/tls handshake_client.go (go1.19), verifyServerCertificate: ParseCertificate of
    // every certificate before InsecureSkipVerify is looked at. Neither the Go registry nor
    // OpenSSL will load such a certificate, so a handshake-only rustls server presents it.
    let ca = ca("registry.test");
    let ku = vec![0x03, 0x02, 0x07, 0x80];
    type Extensions<'a> = Vec<(&'a str, bool, Vec<u8>)>;
    let cases: [(&str, Option<&[u8]>, Extensions, &str); 2] = [
        (
            "duplicate extension",
            None,
            vec![("2.5.29.15", true, ku.clone()), ("2.5.29.15", true, ku)],
            "x509: certificate contains duplicate extensions",
        ),
        (
            "IP SAN of 5 bytes",
            Some(&[0x30, 0x07, 0x87, 0x05, 127, 0, 0, 1, 9]),
            vec![],
            "x509: cannot parse IP address of length 5",
        ),
    ];
    for (name, san, exts, words) in cases {
        let (cert, key) = crafted_leaf(&ca, "1", san, &exts);
        let front = HandshakeOnly::start(&cert, &key);
        let node = Node::new();
        node.trust(&front.addr(), &ca.pem());
        let run = differential_at(name, &front.addr(), &node, "invalid_certificate");
        let detail = run.registry(0)["detail"].as_str().unwrap();
        let go_words = format!("tls: failed to parse certificate from server: {words}");
        assert!(detail.ends_with(&go_words), "{name}: {detail}");
        skip_verify_differential(name, &node, &front.addr(), false, &go_words);
    }
}

#[test]
fn critical_policy_extensions_are_unhandled_in_go1_19_unless_skip_verify() {
    // crypto/x509/parser.go (go1.19), processExtensions: no case for 2.5.29.36 or 2.5.29.54,
    // so a critical one is an UnhandledCriticalExtension, fatal in Verify only.
    let ca = ca("registry.test");
    let backend = Registry::start_plain();
    for (name, oid, value) in [
        (
            "policy constraints",
            "2.5.29.36",
            vec![0x30, 0x03, 0x80, 0x01, 0x00],
        ),
        ("inhibitAnyPolicy", "2.5.29.54", vec![0x02, 0x01, 0x00]),
    ] {
        let (cert, key) = crafted_leaf(&ca, "1", None, &[(oid, true, value)]);
        let front = Stunnel::start(&cert, &key, &backend);
        let node = Node::new();
        node.trust(&front.addr(), &ca.pem());
        let run = differential_at(name, &front.addr(), &node, "invalid_certificate");
        let detail = run.registry(0)["detail"].as_str().unwrap();
        assert!(
            detail.ends_with("x509: unhandled critical extension"),
            "{name}: {detail}"
        );
        skip_verify_differential(name, &node, &front.addr(), true, "");
        // go1.24 parses these extensions: the same registry passes under its rules.
        node.trust(&front.addr(), &ca.pem());
        let newer = check_json(
            node.root.path(),
            &[
                "--hosts-dir",
                "/etc/containerd/certs.d",
                "--go-version",
                "1.24.0",
            ],
            &front.addr(),
        );
        assert_eq!(
            newer.reason(),
            "ok",
            "{name} under go1.24: {}",
            newer.stdout
        );
    }
}

#[test]
fn a_negative_serial_passes_in_go1_19_and_fails_from_go1_23() {
    // crypto/x509/parser.go, parseCertificate: go1.19 accepts negative serials; go1.23 refuses
    // them unless x509negativeserial=1.
    let ca = ca("registry.test");
    let backend = Registry::start_plain();
    let (cert, key) = crafted_leaf(&ca, "-4242", None, &[]);
    let front = Stunnel::start(&cert, &key, &backend);
    let node = Node::new();
    node.trust(&front.addr(), &ca.pem());
    differential_at("negative serial", &front.addr(), &node, "ok");
    let detail = crio_under(&node, &front.addr(), "1.23.0", "invalid_certificate");
    assert!(
        detail.ends_with(
            "tls: failed to parse certificate from server: x509: negative serial number"
        ),
        "{detail}"
    );
}

#[test]
fn ca_files_are_read_as_go_reads_pem() {
    // encoding/pem (go1.19) Decode and crypto/x509 AppendCertsFromPEM on the CA file itself.
    let ca = ca("registry.test");
    let served = leaf(&ca);
    let reg = Registry::start(&[&served.cert], Some(&served.key));
    // Go finds the CA after a block without its END line, and in CRLF.
    for (name, file) in [
        (
            "unclosed block first",
            format!("-----BEGIN CERTIFICATE-----\nMIIB\n{}", ca.pem()),
        ),
        ("CRLF", ca.pem().replace('\n', "\r\n")),
    ] {
        let node = Node::new();
        node.trust(&reg.addr(), &file);
        differential(name, &reg, &node, "ok");
    }
    // Go skips a CERTIFICATE block with headers and one whose DER has trailing data: the file
    // holds no certificate. containerd fails the pull (unable to load CA cert), containers/image
    // goes on with the system pool (unknown authority).
    let der = regtrust::pem::scan_certs(ca.pem().as_bytes())
        .certs
        .remove(0);
    let with_headers = ca.pem().replacen("-----\n", "-----\nX-Note: 1\n", 1);
    let trailing = regtrust::pem::encode_cert(&[der, vec![0]].concat());
    for (name, file) in [("headers", with_headers), ("trailing data", trailing)] {
        let node = Node::new();
        node.trust(&reg.addr(), &file);
        let addr = reg.addr();
        let ctd_view = check_json(
            node.root.path(),
            &[
                "--hosts-dir",
                "/etc/containerd/certs.d",
                "--go-version",
                &oracle_go(),
                "--runtime-version",
                &oracle_containerd_version(),
            ],
            &addr,
        );
        assert_eq!(
            ctd_view.reason(),
            "config_error",
            "{name}: {}",
            ctd_view.stdout
        );
        let f = Containerd::start().fetch(&node.hosts_dir(), node.root.path(), &addr);
        let f_err = String::from_utf8_lossy(&f.stderr);
        assert!(
            !f.status.success() && f_err.contains("unable to load CA cert"),
            "{name}: ctr says {f_err}"
        );
        let crio_view = check_json(
            node.root.path(),
            &["--runtime", "crio", "--go-version", &oracle_go()],
            &addr,
        );
        assert_eq!(
            crio_view.reason(),
            "unknown_authority",
            "{name}: {}",
            crio_view.stdout
        );
        let sk = skopeo_inspect(&node.containers_dir(&addr), node.root.path(), &addr);
        let sk_err = String::from_utf8_lossy(&sk.stderr);
        assert!(
            !sk.status.success()
                && sk_err.contains("x509: certificate signed by unknown authority"),
            "{name}: skopeo says {sk_err}"
        );
    }
}

#[test]
fn a_ca_with_a_512_bit_rsa_key_verifies_in_go1_19_and_fails_from_go1_24() {
    // crypto/rsa/rsa.go: go1.19 has no minimum key size; go1.24's checkPublicKeySize refuses
    // keys under 1024 bits unless rsa1024min=0.
    let ca512 = openssl_rsa_ca("small-ca", 512, "7");
    let (cert, key) = crafted_leaf_by(&ca512, "5", None, &[]);
    let reg = Registry::start_pem(cert, key);
    let node = Node::new();
    node.trust(&reg.addr(), &ca512.0);
    differential("512-bit CA", &reg, &node, "ok");
    let detail = crio_under(&node, &reg.addr(), "1.24.0", "insecure_signature");
    assert!(
        detail.contains("possibly because of \"crypto/rsa: 512-bit keys are insecure (see https://go.dev/pkg/crypto/rsa#hdr-Minimum_key_size)\" while trying to verify candidate authority certificate \"small-ca\""),
        "{detail}"
    );
}

#[test]
fn a_critical_subject_key_id_passes_in_go1_19_and_fails_from_go1_25() {
    // crypto/x509/parser.go, processExtensions, case 14: go1.19 parses a critical SKID, later
    // Go refuses it ("incorrectly marked critical").
    let ca = ca("registry.test");
    let backend = Registry::start_plain();
    let skid = vec![0x04, 0x03, 1, 2, 3];
    let (cert, key) = crafted_leaf(&ca, "9", None, &[("2.5.29.14", true, skid)]);
    let front = Stunnel::start(&cert, &key, &backend);
    let node = Node::new();
    node.trust(&front.addr(), &ca.pem());
    differential_at("critical SKID", &front.addr(), &node, "ok");
    let detail = crio_under(&node, &front.addr(), "1.25.5", "invalid_certificate");
    assert!(
        detail.ends_with("tls: failed to parse certificate from server: x509: subject key identifier incorrectly marked critical"),
        "{detail}"
    );
}

#[test]
fn a_ca_file_holding_only_a_negative_serial_ca_fails_containerd_from_go1_23() {
    // crypto/x509 AppendCertsFromPEM skips what ParseCertificate refuses: from go1.23 a CA with a
    // negative serial, so containerd's `ca` file holds no certificate (unable to load CA cert)
    // and containers/image verifies against the system pool alone.
    let ca = openssl_rsa_ca("negative-ca", 2048, "-99");
    let (cert, key) = crafted_leaf_by(&ca, "5", None, &[]);
    let reg = Registry::start_pem(cert, key);
    let node = Node::new();
    node.trust(&reg.addr(), &ca.0);
    differential("negative-serial CA", &reg, &node, "ok");
    let containerd = check_json(
        node.root.path(),
        &[
            "--hosts-dir",
            "/etc/containerd/certs.d",
            "--go-version",
            "1.23.0",
        ],
        &reg.addr(),
    );
    assert_eq!(containerd.reason(), "config_error", "{}", containerd.stdout);
    let detail = containerd.registry(0)["detail"].as_str().unwrap();
    assert!(detail.starts_with("unable to load CA cert"), "{detail}");
    let crio = check_json(
        node.root.path(),
        &["--runtime", "crio", "--go-version", "1.23.0"],
        &reg.addr(),
    );
    assert_eq!(crio.reason(), "unknown_authority", "{}", crio.stdout);
    let allowed = check_json(
        node.root.path(),
        &[
            "--hosts-dir",
            "/etc/containerd/certs.d",
            "--go-version",
            "1.19.8",
        ],
        &reg.addr(),
    );
    assert_eq!(allowed.reason(), "ok", "{}", allowed.stdout);
}
