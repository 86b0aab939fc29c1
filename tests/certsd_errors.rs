//! containers/image's certs.d rules and words (pkg/tlsclientconfig `SetupCertificates`, v5.23.1)
//! checked against the real skopeo: for each directory, regtrust's CRI-O view and skopeo agree on
//! whether the pull can start, and where it cannot, regtrust's detail is skopeo's error word for
//! word (skopeo read the directory under the test's root, regtrust names the node path). Every
//! case fails before dialling, except those the runtime skips.

mod common;

use std::fs;
use std::path::Path;
use std::process::Output;

use common::*;

/// skopeo's error after its own prefix (`Error parsing image name "docker://…": `), unescaped,
/// with the test's root taken out of its paths; `None` when skopeo succeeded.
fn skopeo_words(out: &Output, root: &Path) -> Option<String> {
    if out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stderr).replace("\\\"", "\"");
    let line = text
        .trim_end()
        .lines()
        .last()
        .unwrap_or_default()
        .to_string();
    let start = line
        .find("Error parsing image name \"")
        .and_then(|i| line[i..].find("\": ").map(|j| i + j + 3))
        .unwrap_or_else(|| panic!("skopeo: {text}"));
    let end = line.rfind('"').filter(|&e| e > start).unwrap_or(line.len());
    Some(line[start..end].replace(&root.display().to_string(), ""))
}

/// Runs regtrust (CRI-O view) and skopeo on the node and asserts they agree; returns the words.
fn agree(case: &str, node: &Node, addr: &str) -> Option<String> {
    let root = node.root.path();
    let ours = check_json(root, &["--runtime", "crio"], addr);
    let skopeo = skopeo_inspect(&node.containers_dir(addr), root, addr);
    let theirs = skopeo_words(&skopeo, root);
    assert_eq!(
        ours.ok(),
        theirs.is_none(),
        "{case}: regtrust {} / skopeo {theirs:?}",
        ours.stdout
    );
    if let Some(go) = &theirs {
        assert_eq!(ours.reason(), "config_error", "{case}: {}", ours.stdout);
        let detail = ours.registry(0)["detail"].as_str().unwrap_or_default();
        assert_eq!(
            detail, go,
            "{case}: regtrust's detail is not skopeo's error"
        );
    }
    theirs
}

/// What a case puts in the directory.
type Setup = Box<dyn Fn(&Path)>;

/// A fresh certs.d directory for `addr` holding the good CA, then what `add` puts beside it.
fn reset(node: &Node, addr: &str, ca_pem: &str, add: impl FnOnce(&Path)) {
    let dir = node.containers_dir(addr);
    if dir.is_dir() {
        fs::remove_dir_all(&dir).unwrap();
    } else if dir.exists() {
        fs::remove_file(&dir).unwrap();
    }
    write(&dir.join("ca.crt"), ca_pem);
    add(&dir);
}

#[test]
fn certs_d_errors_are_skopeos_word_for_word() {
    let ca = ca("registry.test CA");
    let l = leaf(&ca);
    let reg = Registry::start(&[&l.cert], Some(&l.key));
    let addr = reg.addr();
    let node = Node::new();
    let pem = ca.pem();
    let d = format!("/etc/containers/certs.d/{addr}");

    reset(&node, &addr, &pem, |_| {});
    assert_eq!(agree("the good CA alone", &node, &addr), None);

    // Skipped by containers/image: a .crt without a certificate (AppendCertsFromPEM's false is
    // ignored) and a dangling link (IsNotExist).
    reset(&node, &addr, &pem, |p| {
        fs::write(p.join("empty.crt"), "not a certificate\n").unwrap();
        std::os::unix::fs::symlink("/nowhere", p.join("gone.crt")).unwrap();
    });
    assert_eq!(agree("empty and dangling .crt", &node, &addr), None);

    let cases: Vec<(&str, Setup, String)> = vec![
        (
            "a directory named bad.crt",
            Box::new(|p| fs::create_dir(p.join("bad.crt")).unwrap()),
            format!("read {d}/bad.crt: is a directory"),
        ),
        (
            "a socket named bad.crt",
            Box::new(|p| {
                std::os::unix::net::UnixListener::bind(p.join("bad.crt")).unwrap();
            }),
            format!("open {d}/bad.crt: no such device or address"),
        ),
        (
            "a symlink loop named loop.crt",
            Box::new(|p| std::os::unix::fs::symlink("loop.crt", p.join("loop.crt")).unwrap()),
            format!("open {d}/loop.crt: too many levels of symbolic links"),
        ),
        (
            "a .cert without its .key",
            Box::new(|p| fs::write(p.join("c.cert"), "x").unwrap()),
            "missing key c.key for client certificate c.cert. Note that CA certificates should use the extension .crt".into(),
        ),
        (
            "a .key without its .cert",
            Box::new(|p| fs::write(p.join("c.key"), "x").unwrap()),
            "missing client certificate c.cert for key c.key".into(),
        ),
        (
            "a pair that is not PEM",
            Box::new(|p| {
                fs::write(p.join("c.cert"), "garbage").unwrap();
                fs::write(p.join("c.key"), "garbage").unwrap();
            }),
            "tls: failed to find any PEM data in certificate input".into(),
        ),
        (
            "a directory named c.cert beside c.key",
            Box::new(|p| {
                fs::create_dir(p.join("c.cert")).unwrap();
                fs::write(p.join("c.key"), "x").unwrap();
            }),
            format!("read {d}/c.cert: is a directory"),
        ),
        (
            "a.key before b.crt in name order",
            Box::new(|p| {
                fs::write(p.join("a.key"), "x").unwrap();
                fs::create_dir(p.join("b.crt")).unwrap();
            }),
            "missing client certificate a.cert for key a.key".into(),
        ),
    ];
    for (case, add, want) in cases {
        reset(&node, &addr, &pem, add);
        assert_eq!(
            agree(case, &node, &addr).as_deref(),
            Some(want.as_str()),
            "{case}"
        );
    }

    // The host's certs.d entry is a file: os.Stat passes, os.ReadDir fails at getdents.
    reset(&node, &addr, &pem, |_| {});
    let dir = node.containers_dir(&addr);
    fs::remove_dir_all(&dir).unwrap();
    write(&dir, "a file");
    assert_eq!(
        agree("a file for the directory", &node, &addr),
        Some(format!("readdirent {d}: not a directory"))
    );
}
