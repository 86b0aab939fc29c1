//! containerd's endpoint rules per release, against the real containerd installed here (1.6.20,
//! `ctr content fetch --hosts-dir`) for what that release shows, and against the same real
//! registry with `--runtime-version` for the releases that cannot be installed here (their rules
//! are unit-tested in `src/trust/containerd/tests.rs`, each citing its upstream source).

mod common;

use common::*;

/// regtrust's containerd view of `registry` as containerd `version` would pull it.
fn as_release(node: &Node, version: &str, registry: &str) -> Run {
    check_json(
        node.root.path(),
        &[
            "--hosts-dir",
            "/etc/containerd/certs.d",
            "--runtime-version",
            version,
        ],
        registry,
    )
}

fn kinds(run: &Run) -> Vec<String> {
    run.registry(0)["findings"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|f| f["kind"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn ctr_pulls(ctd: &Containerd, node: &Node, registry: &str) -> (bool, String) {
    let f = ctd.fetch(&node.hosts_dir(), node.root.path(), registry);
    (
        f.status.success(),
        String::from_utf8_lossy(&f.stderr).to_string(),
    )
}

/// The user-visible bug: a plain-HTTP registry on loopback (kind's, k3d's, minikube's local
/// registry) was `not_tls` in the containerd model while ctr pulls from it.
#[test]
fn a_plain_http_loopback_registry_is_ok_with_insecure_http() {
    let reg = Registry::start_plain();
    let node = Node::new();
    let ctd = Containerd::start();
    let oracle = oracle_containerd_version();
    for name in [reg.addr(), format!("localhost:{}", reg.port)] {
        let (pulls, err) = ctr_pulls(&ctd, &node, &name);
        assert!(pulls, "{name}: ctr {oracle} does not pull: {err}");
        let run = as_release(&node, &oracle, &name);
        assert_eq!(run.reason(), "ok", "{name}: {}", run.stdout);
        assert!(
            kinds(&run).contains(&"insecure_http".to_string()),
            "{}",
            run.stdout
        );
        assert_eq!(
            run.registry(0)["endpoints"][0]["endpoint"],
            format!("http://{name}/v2/"),
            "1.6 dials plain HTTP directly"
        );
        // 1.7.7+ and 2.x try https first and fall back to plain HTTP on the HTTP answer.
        for later in ["1.7.7", "1.7.8", "1.7.24", "2.0.0", "2.1.0", "2.2.2"] {
            let run = as_release(&node, later, &name);
            assert_eq!(run.reason(), "ok", "{name} as {later}: {}", run.stdout);
            let k = kinds(&run);
            assert!(k.contains(&"insecure_http".to_string()), "{later}: {k:?}");
            assert!(!run.stdout.contains("not_tls"), "{later}: {}", run.stdout);
            assert!(
                run.stdout.contains("containerd's fallback after https://"),
                "{later}: {}",
                run.stdout
            );
        }
    }
}

/// An `http://` `[host]` with a TLS setting in front of a TLS registry: 1.6 keeps plain HTTP (and
/// fails, as ctr does); 1.7.7+ and 2.x try https first with that CA and pull.
#[test]
fn an_http_host_with_tls_settings_by_release() {
    let ca = ca("http-host CA");
    let l = leaf(&ca);
    let reg = Registry::start(&[&l.cert], Some(&l.key));
    let name = reg.addr();
    let node = Node::new();
    let dir = node.hosts_dir().join(&name);
    write(&dir.join("ca.pem"), ca.pem());
    write(
        &dir.join("hosts.toml"),
        format!("[host.\"http://{name}\"]\n  ca = \"ca.pem\"\n"),
    );
    let ctd = Containerd::start();
    let oracle = oracle_containerd_version();
    let (pulls, err) = ctr_pulls(&ctd, &node, &name);
    let run = as_release(&node, &oracle, &name);
    assert_eq!(
        run.ok(),
        pulls,
        "ctr {oracle}: {err}; regtrust: {}",
        run.stdout
    );
    assert!(!pulls, "1.6 sends plain HTTP to the TLS port");
    assert_eq!(
        run.registry(0)["endpoints"][0]["endpoint"],
        format!("http://{name}/v2/")
    );
    for later in ["1.7.7", "1.7.8", "2.0.0", "2.2.2"] {
        let run = as_release(&node, later, &name);
        assert_eq!(run.reason(), "ok", "{later}: {}", run.stdout);
        assert_eq!(
            run.registry(0)["endpoints"][0]["endpoint"],
            format!("https://{name}/v2/"),
            "{later}"
        );
    }

    // The same http:// host in front of a plain-HTTP registry: every release pulls, over HTTP.
    let plain = Registry::start_plain();
    let pname = plain.addr();
    let pdir = node.hosts_dir().join(&pname);
    write(&pdir.join("ca.pem"), ca.pem());
    write(
        &pdir.join("hosts.toml"),
        format!("[host.\"http://{pname}\"]\n  ca = \"ca.pem\"\n"),
    );
    let (pulls, err) = ctr_pulls(&ctd, &node, &pname);
    assert!(pulls, "ctr {oracle}: {err}");
    for version in [oracle.as_str(), "1.7.7", "2.0.0", "2.2.2"] {
        let run = as_release(&node, version, &pname);
        assert_eq!(run.reason(), "ok", "{version}: {}", run.stdout);
        assert!(
            kinds(&run).contains(&"insecure_http".to_string()),
            "{version}: {}",
            run.stdout
        );
    }
}

/// A hosts.toml with only root-level keys: 1.6 ignores it and reads the directory's *.crt (so
/// the root `ca` is not used and the pull fails, as ctr's does); 2.x uses its root `ca`.
#[test]
fn a_root_level_only_hosts_toml_by_release() {
    let ca = ca("root-only CA");
    let l = leaf(&ca);
    let reg = Registry::start(&[&l.cert], Some(&l.key));
    let name = reg.addr();
    let node = Node::new();
    let dir = node.hosts_dir().join(&name);
    write(&dir.join("ca.pem"), ca.pem());
    write(
        &dir.join("hosts.toml"),
        format!("server = \"https://{name}\"\nca = \"ca.pem\"\n"),
    );
    let ctd = Containerd::start();
    let oracle = oracle_containerd_version();
    let (pulls, err) = ctr_pulls(&ctd, &node, &name);
    let run = as_release(&node, &oracle, &name);
    assert!(!pulls, "ctr {oracle} used the root-level ca");
    assert_eq!(run.ok(), pulls, "ctr: {err}; regtrust: {}", run.stdout);
    // Ignored: the loopback default host, which 1.6 dials over plain HTTP — the TLS port
    // answers 400.
    assert_eq!(run.reason(), "http_status", "{}", run.stdout);
    assert!(kinds(&run).contains(&"hosts_toml_ignored".to_string()));
    for later in ["2.0.0", "2.1.0", "2.2.2"] {
        let run = as_release(&node, later, &name);
        assert_eq!(run.reason(), "ok", "{later}: {}", run.stdout);
        assert!(!kinds(&run).contains(&"hosts_toml_ignored".to_string()));
    }
}

/// Wrong-typed and unknown keys: containerd 1.6 ignores unknown keys (`dial_timeout` is not one of
/// its fields) but ignores the whole file when a known key has the wrong type.
#[test]
fn unknown_and_wrong_typed_keys_as_1_6_reads_them() {
    let ca = ca("keys CA");
    let l = leaf(&ca);
    let reg = Registry::start(&[&l.cert], Some(&l.key));
    let name = reg.addr();
    let node = Node::new();
    let dir = node.hosts_dir().join(&name);
    write(&dir.join("ca.pem"), ca.pem());
    let ctd = Containerd::start();
    let oracle = oracle_containerd_version();
    for (case, extra, ok) in [
        ("dial_timeout of any type", "  dial_timeout = 5\n", true),
        ("unknown key", "  frobnicate = true\n", true),
        (
            "override_path a string",
            "  override_path = \"yes\"\n",
            false,
        ),
        ("header a string", "  header = \"x\"\n", false),
        ("header value a number", "  header.x = 1\n", false),
    ] {
        write(
            &dir.join("hosts.toml"),
            format!("[host.\"https://{name}\"]\n  ca = \"ca.pem\"\n{extra}"),
        );
        let (pulls, err) = ctr_pulls(&ctd, &node, &name);
        assert_eq!(pulls, ok, "{case}: ctr {oracle}: {err}");
        let run = as_release(&node, &oracle, &name);
        assert_eq!(run.ok(), pulls, "{case}: regtrust: {}", run.stdout);
    }
    // From 2.1 dial_timeout is a field: a number makes the file ignored.
    write(
        &dir.join("hosts.toml"),
        format!("[host.\"https://{name}\"]\n  ca = \"ca.pem\"\n  dial_timeout = 5\n"),
    );
    let run = as_release(&node, "2.0.0", &name);
    assert!(run.ok(), "{}", run.stdout);
    assert!(!kinds(&run).contains(&"bad_toml".to_string()));
    // 2.1 ignores the file: the loopback default host, https without verification.
    let run = as_release(&node, "2.1.0", &name);
    assert!(
        kinds(&run).contains(&"bad_toml".to_string()),
        "{}",
        run.stdout
    );
    assert!(kinds(&run).contains(&"loopback_insecure".to_string()));
    assert_eq!(run.registry(0)["endpoints"][0]["skip_verify"], true);
}
