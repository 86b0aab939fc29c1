//! containerd's fallback rules checked against the real containerd (and skopeo), with a registry
//! *name*: a loopback IP would take containerd's plain-HTTP special case, so `registry.test` is
//! mapped to 127.0.0.1 in a private mount namespace's /etc/hosts, and regtrust, ctr and skopeo all
//! run inside it. Needs root (unshare/mount), as CI has.

mod common;

use std::process::Output;

use common::*;

struct Verdicts {
    containerd: serde_json::Value,
    crio: serde_json::Value,
    ctr: Output,
    skopeo: Output,
}

fn verdicts(ns: &Ns, node: &Node, registry: &str) -> Verdicts {
    let run = |extra: &[&str]| {
        let out = ns
            .cmd(env!("CARGO_BIN_EXE_regtrust"))
            .args(check_args(node.root.path(), 5))
            .args(extra)
            .arg(registry)
            .output()
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "regtrust output not JSON ({e}): {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
    };
    // regtrust follows the release ctr runs (its rules differ by version).
    let version = oracle_containerd_version();
    let containerd = run(&[
        "--hosts-dir",
        "/etc/containerd/certs.d",
        "--runtime-version",
        &version,
    ]);
    let crio = run(&["--runtime", "crio"]);
    let ctd = Containerd::start();
    let ctr = ns
        .cmd("ctr")
        .arg("-a")
        .arg(&ctd.sock)
        .args(["-n", "test", "content", "fetch", "--hosts-dir"])
        .arg(node.hosts_dir())
        .arg(format!("{registry}/{IMAGE}"))
        .envs(isolated_system_roots(node.root.path()))
        .output()
        .unwrap();
    let skopeo = ns
        .cmd("skopeo")
        .args(["inspect", "--retry-times", "0", "--cert-dir"])
        .arg(node.containers_dir(registry))
        .arg(format!("docker://{registry}/{IMAGE}"))
        .envs(isolated_system_roots(node.root.path()))
        .output()
        .unwrap();
    Verdicts {
        containerd,
        crio,
        ctr,
        skopeo,
    }
}

fn ok(v: &serde_json::Value) -> bool {
    v["registries"][0]["ok"].as_bool().unwrap_or(false)
}

fn reason(v: &serde_json::Value) -> String {
    v["registries"][0]["reason"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

/// Asserts regtrust agrees with ctr and skopeo, and gives `ctd_reason` / `crio_reason`.
fn agree(case: &str, v: &Verdicts, ctd_reason: &str, crio_reason: &str) {
    let err = |o: &Output| String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(
        reason(&v.containerd),
        ctd_reason,
        "{case}: regtrust containerd view: {}",
        v.containerd
    );
    assert_eq!(
        reason(&v.crio),
        crio_reason,
        "{case}: regtrust crio view: {}",
        v.crio
    );
    assert_eq!(
        ok(&v.containerd),
        v.ctr.status.success(),
        "{case}: ctr disagrees: {}",
        err(&v.ctr)
    );
    assert_eq!(
        ok(&v.crio),
        v.skopeo.status.success(),
        "{case}: skopeo disagrees: {}",
        err(&v.skopeo)
    );
}

fn finding_kinds(v: &serde_json::Value) -> Vec<String> {
    v["registries"][0]["findings"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|f| f["kind"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn setup() -> (Ns, Registry, Issued, String) {
    let ca = ca("registry.test CA");
    let l = leaf(&ca);
    let reg = Registry::start(&[&l.cert], Some(&l.key));
    let name = format!("registry.test:{}", reg.port);
    (Ns::new(), reg, ca, name)
}

fn dirs(node: &Node, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    (node.hosts_dir().join(name), node.containers_dir(name))
}

#[test]
fn legacy_crt_files_without_hosts_toml() {
    let (ns, _reg, ca, name) = setup();
    let node = Node::new();
    let (c, p) = dirs(&node, &name);
    write(&c.join("ca.crt"), ca.pem());
    write(&p.join("ca.crt"), ca.pem());
    agree("legacy ca.crt", &verdicts(&ns, &node, &name), "ok", "ok");

    // One *.crt without a certificate: containerd fails the whole host, containers/image skips it.
    write(&c.join("zz-broken.crt"), "not a certificate\n");
    write(&p.join("zz-broken.crt"), "not a certificate\n");
    let v = verdicts(&ns, &node, &name);
    agree("broken .crt beside a good one", &v, "config_error", "ok");
    assert!(finding_kinds(&v.containerd).contains(&"ca_no_cert".to_string()));
    let go = ctr_words(&v, &node, "unable to load CA cert");
    let ours = v.containerd["registries"][0]["detail"]
        .as_str()
        .unwrap_or_default();
    assert!(ours.ends_with(&go), "ctr said {go:?}, regtrust {ours:?}");
}

/// ctr's last line from `start` on, with the test's root taken out of its paths (ctr read the
/// hosts directory under it; regtrust names node paths).
fn ctr_words(v: &Verdicts, node: &Node, start: &str) -> String {
    let ctr_err = String::from_utf8_lossy(&v.ctr.stderr);
    let root = node.root.path().display().to_string();
    ctr_err
        .trim_end()
        .lines()
        .last()
        .and_then(|l| l.find(start).map(|i| l[i..].replace(&root, "")))
        .unwrap_or_else(|| panic!("ctr: {ctr_err}"))
}

#[test]
fn hosts_toml_without_host_table_is_ignored() {
    let (ns, _reg, ca, name) = setup();
    let node = Node::new();
    let (c, _) = dirs(&node, &name);
    // Only root-level keys: containerd 1.6/1.7 ignore the file, so its `ca` is never read …
    write(&c.join("ca.pem"), ca.pem());
    write(
        &c.join("hosts.toml"),
        format!("server = \"https://{name}\"\nca = \"ca.pem\"\n"),
    );
    let v = verdicts(&ns, &node, &name);
    agree(
        "root-level keys only, ca.pem",
        &v,
        "unknown_authority",
        "unknown_authority",
    );
    let kinds = finding_kinds(&v.containerd);
    assert!(
        kinds.contains(&"hosts_toml_ignored".to_string())
            && kinds.contains(&"ignored_pem".to_string()),
        "{kinds:?}"
    );
    // … and the directory's *.crt files are used instead.
    write(&c.join("ca.crt"), ca.pem());
    agree(
        "root-level keys only, plus ca.crt",
        &verdicts(&ns, &node, &name),
        "ok",
        "unknown_authority",
    );
}

#[test]
fn missing_ca_in_hosts_toml_fails_even_with_good_crt_beside() {
    let (ns, _reg, ca, name) = setup();
    let node = Node::new();
    let (c, p) = dirs(&node, &name);
    write(&c.join("ca.crt"), ca.pem());
    write(
        &c.join("hosts.toml"),
        format!("[host.\"https://{name}\"]\n  ca = \"missing.crt\"\n"),
    );
    write(&p.join("ca.crt"), ca.pem());
    let v = verdicts(&ns, &node, &name);
    agree("missing ca", &v, "config_error", "ok");
    // containerd's own words (hosts.go around Go's *PathError), path for path: ctr read the hosts
    // directory under the test's root, regtrust names the node path.
    let go = ctr_words(&v, &node, "unable to read CA cert");
    let ours = v.containerd["registries"][0]["detail"]
        .as_str()
        .unwrap_or_default();
    assert!(ours.ends_with(&go), "ctr said {go:?}, regtrust {ours:?}");
    let kinds = finding_kinds(&v.containerd);
    assert!(
        kinds.contains(&"ca_missing".to_string()) && kinds.contains(&"ca_file_unused".to_string()),
        "{kinds:?}"
    );
}

#[test]
fn default_dir_and_host_port_underscore_form() {
    let (ns, _reg, ca, name) = setup();
    let node = Node::new();
    // _default with a [host] table for this registry and no server works.
    write(&node.hosts_dir().join("_default/ca.crt"), ca.pem());
    write(
        &node.hosts_dir().join("_default/hosts.toml"),
        format!("[host.\"https://{name}\"]\n  ca = \"ca.crt\"\n"),
    );
    write(&node.containers_dir(&name).join("ca.crt"), ca.pem());
    agree("_default", &verdicts(&ns, &node, &name), "ok", "ok");
    // HOST_PORT_ wins over _default: here it trusts the wrong CA.
    let under = node.hosts_dir().join(name.replace(':', "_") + "_");
    write(&under.join("ca.crt"), common::ca("wrong").pem());
    let v = verdicts(&ns, &node, &name);
    agree("HOST_PORT_ over _default", &v, "unknown_authority", "ok");
    assert!(v.containerd["registries"][0]["host_dir"]
        .as_str()
        .unwrap()
        .ends_with('_'));
}
