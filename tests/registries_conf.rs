//! containers/image's registries.conf, differential: regtrust with CRI-O rules against the real
//! `skopeo inspect` (Debian 12: skopeo 1.9.3 on containers/image 5.23.1) given the same
//! registries.conf (`--registries-conf`) and the same per-host certs.d (HOME is the node's
//! `/root`, so skopeo reads `$HOME/.config/containers/certs.d/HOST`), against the real
//! docker-registry on 127.0.0.1. regtrust's `ok` must equal skopeo's, with a control case each.

mod common;

use std::process::{Command, Output};

use common::*;

const CONF: &str = "/etc/containers/registries.conf";
const USER_CERTS: &str = "/root/.config/containers/certs.d";

/// `skopeo --registries-conf NODE/etc/containers/registries.conf inspect docker://REG/IMAGE`.
fn skopeo(node: &Node, registry: &str) -> Output {
    require("skopeo");
    Command::new("timeout")
        .arg("60")
        .arg("skopeo")
        .arg("--registries-conf")
        .arg(node.path(CONF))
        // --no-tags: listing tags goes to the registry's own location, never a mirror.
        .args(["inspect", "--no-tags", "--retry-times", "0"])
        .arg(format!("docker://{registry}/{IMAGE}"))
        .env("HOME", node.path("/root"))
        .envs(isolated_system_roots(node.root.path()))
        .output()
        .expect("run skopeo")
}

/// regtrust (crio rules) and skopeo on `registry`: their `ok` must agree and equal `want`.
fn agree(name: &str, node: &Node, registry: &str, want: bool) -> Run {
    let ours = check_json(node.root.path(), &["--runtime", "crio"], registry);
    let sk = skopeo(node, registry);
    let sk_err = String::from_utf8_lossy(&sk.stderr).replace("\\\"", "\"");
    assert_eq!(
        ours.ok(),
        sk.status.success(),
        "{name}: regtrust(crio) ok={} ({}) but skopeo: {sk_err}",
        ours.ok(),
        ours.stdout
    );
    assert_eq!(
        ours.ok(),
        want,
        "{name}: {} / skopeo: {sk_err}",
        ours.stdout
    );
    ours
}

/// A node with an empty registries.conf: skopeo refuses a missing file named by
/// `--registries-conf` (regtrust, reading the default path, treats a missing one as empty).
fn node() -> Node {
    let n = Node::new();
    conf(&n, "");
    n
}

fn conf(node: &Node, text: &str) {
    write(&node.path(CONF), text);
}

fn trust_at(node: &Node, host: &str, ca: &Issued) {
    write(&node.path(USER_CERTS).join(host).join("ca.crt"), ca.pem());
}

fn kinds(run: &Run) -> Vec<String> {
    run.registry(0)["findings"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f["kind"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// `insecure = true` skips verification (`newDockerClient`, `newImageSourceAttempt`): an
/// untrusted certificate pulls; without the entry it does not.
#[test]
fn insecure_entry_skips_verification() {
    let ca = ca("untrusted CA");
    let l = leaf(&ca);
    let reg = Registry::start(&[&l.cert], Some(&l.key));
    let node = node();
    agree("no entry", &node, &reg.addr(), false);
    conf(
        &node,
        &format!(
            "[[registry]]\nlocation = \"{}\"\ninsecure = true\n",
            reg.addr()
        ),
    );
    let run = agree("insecure", &node, &reg.addr(), true);
    assert!(
        kinds(&run).contains(&"skip_verify".to_string()),
        "{}",
        run.stdout
    );
}

/// `insecure = true` tries plain HTTP after an https failure (`detectPropertiesHelper`): a
/// plain-HTTP registry pulls, with an `insecure_http` finding; without the entry it does not.
#[test]
fn insecure_entry_falls_back_to_plain_http() {
    let reg = Registry::start_plain();
    let node = node();
    agree("no entry", &node, &reg.addr(), false);
    conf(
        &node,
        &format!(
            "[[registry]]\nlocation = \"{}\"\ninsecure = true\n",
            reg.addr()
        ),
    );
    let run = agree("insecure, plain HTTP", &node, &reg.addr(), true);
    assert!(
        kinds(&run).contains(&"insecure_http".to_string()),
        "{}",
        run.stdout
    );
}

/// `blocked = true` fails the pull before dialling (`newDockerClient`); regtrust says so.
#[test]
fn blocked_entry_fails_the_pull() {
    let ca = ca("trusted CA");
    let l = leaf(&ca);
    let reg = Registry::start(&[&l.cert], Some(&l.key));
    let node = node();
    trust_at(&node, &reg.addr(), &ca);
    agree("trusted", &node, &reg.addr(), true);
    conf(
        &node,
        &format!(
            "[[registry]]\nlocation = \"{}\"\nblocked = true\n",
            reg.addr()
        ),
    );
    let run = agree("blocked", &node, &reg.addr(), false);
    assert_eq!(run.reason(), "config_error", "{}", run.stdout);
    let detail = run.registry(0)["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("is blocked in"), "{detail}");
}

/// `[[registry.mirror]]` is tried first, with the mirror's own certs.d directory
/// (`PullSourcesFromReference`, `newDockerClientFromRef`): a dead primary pulls through a mirror
/// trusted in its own directory; with the CA in the primary's directory instead, it does not.
#[test]
fn mirror_with_its_own_certs_d() {
    let ca = ca("mirror CA");
    let l = leaf(&ca);
    let mirror = Registry::start(&[&l.cert], Some(&l.key));
    let dead = format!("127.0.0.1:{}", free_port());
    let node = node();
    conf(
        &node,
        &format!(
            "[[registry]]\nlocation = \"{dead}\"\n[[registry.mirror]]\nlocation = \"{}\"\n",
            mirror.addr()
        ),
    );
    trust_at(&node, &dead, &ca);
    agree("CA only in the primary's dir", &node, &dead, false);
    trust_at(&node, &mirror.addr(), &ca);
    agree("CA in the mirror's dir", &node, &dead, true);
}

/// `location` rewrites the host, and the rewritten host's certs.d directory is the one read
/// (`rewriteReference`, `newDockerClient`).
#[test]
fn location_rewrite_uses_the_new_hosts_certs_d() {
    let ca = ca("rewrite CA");
    let l = leaf(&ca);
    let reg = Registry::start(&[&l.cert], Some(&l.key));
    let node = node();
    conf(
        &node,
        &format!(
            "[[registry]]\nprefix = \"rewrite.test\"\nlocation = \"{}\"\n",
            reg.addr()
        ),
    );
    trust_at(&node, "rewrite.test", &ca);
    agree("CA under the prefix's name", &node, "rewrite.test", false);
    trust_at(&node, &reg.addr(), &ca);
    agree("CA under the location's name", &node, "rewrite.test", true);
}

/// A blocked registry's mirror is still tried: `blocked` is checked per attempt, on the name the
/// attempt dials (`newDockerClient` via `newImageSourceAttempt`), so the pull works via the
/// mirror; the mirror blocked by an entry of its own fails too.
#[test]
fn blocked_registry_pulls_through_its_mirror() {
    let ca = ca("mirror CA");
    let l = leaf(&ca);
    let mirror = Registry::start(&[&l.cert], Some(&l.key));
    let node = node();
    trust_at(&node, &mirror.addr(), &ca);
    let blocked = "blocked.test";
    let entry = format!(
        "[[registry]]\nlocation = \"{blocked}\"\nblocked = true\n[[registry.mirror]]\nlocation = \"{}\"\n",
        mirror.addr()
    );
    conf(&node, &entry);
    agree("blocked, mirror works", &node, blocked, true);
    conf(
        &node,
        &format!(
            "{entry}[[registry]]\nlocation = \"{}\"\nblocked = true\n",
            mirror.addr()
        ),
    );
    let run = agree("blocked, mirror blocked too", &node, blocked, false);
    assert!(
        kinds(&run).contains(&"registry_blocked".to_string()),
        "{}",
        run.stdout
    );
}

/// Drop-ins in `$HOME/.config/containers/registries.conf.d` replace the main file's entry of the
/// same prefix (`updateWithConfigurationFrom`), here turning `insecure` off again.
#[test]
fn drop_in_overrides_the_main_file() {
    let ca = ca("untrusted CA");
    let l = leaf(&ca);
    let reg = Registry::start(&[&l.cert], Some(&l.key));
    let node = node();
    conf(
        &node,
        &format!(
            "[[registry]]\nlocation = \"{}\"\ninsecure = true\n",
            reg.addr()
        ),
    );
    agree("insecure in the main file", &node, &reg.addr(), true);
    write(
        &node.path("/root/.config/containers/registries.conf.d/50-secure.conf"),
        format!("[[registry]]\nlocation = \"{}\"\n", reg.addr()),
    );
    agree("secure again in a drop-in", &node, &reg.addr(), false);
}
