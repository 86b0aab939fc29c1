//! The status page looked at in a real browser during the incident: `regtrust run` (behind basic
//! auth) watches the real registry, which rotates to a CA with the same name and a new key; Debian's
//! headless Chromium loads `/` and the test asserts the DOM it built (headline, reason, next step,
//! both CAs' fingerprints, the SVG timeline with a CA-change marker) and saves the screenshot
//! README shows (docs/status.png). `/api/v1/status` is checked against the JSON Schema.

mod common;
#[path = "support/schema.rs"]
mod schema;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use schema::validate_against_schema;

const USER: &str = "oncall";
const PASSWORD: &str = "at-3-am";

/// Chromium, headless and with nothing that talks to the internet, on a fresh profile; bounded.
fn chromium(profile: &Path, args: &[&str]) -> std::process::Output {
    require("chromium");
    Command::new("timeout")
        .args(["90", "chromium"])
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-extensions",
            "--disable-default-apps",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .output()
        .expect("run chromium")
}

fn get(addr: &str, path: &str) -> Option<(u16, String)> {
    let r = reqwest::blocking::Client::new()
        .get(format!("http://{addr}{path}"))
        .basic_auth(USER, Some(PASSWORD))
        .timeout(Duration::from_secs(5))
        .send()
        .ok()?;
    let code = r.status().as_u16();
    Some((code, r.text().ok()?))
}

/// Polls the JSON status until `cond` holds (at most `limit`).
fn wait_status(
    addr: &str,
    limit: Duration,
    cond: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let start = Instant::now();
    let mut last = serde_json::Value::Null;
    while start.elapsed() < limit {
        if let Some((200, body)) = get(addr, "/api/v1/status") {
            last = serde_json::from_str(&body).unwrap_or_default();
            if cond(&last) {
                return last;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out; last /api/v1/status:\n{last:#}");
}

fn reason(v: &serde_json::Value) -> &str {
    v["registries"][0]["reason"].as_str().unwrap_or("")
}

#[test]
fn the_status_page_explains_the_incident_in_a_real_browser() {
    // RSA CAs, as in the incident: the runtime's words are `crypto/rsa: verification error`.
    let rsa_ca = || {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
        Issued {
            cert: ca_params("registry.test").self_signed(&key).unwrap(),
            key,
        }
    };
    let (ca_a, ca_b) = (rsa_ca(), rsa_ca());
    let la = leaf(&ca_a);
    let reg = Registry::start(&[&la.cert], Some(&la.key));
    let name = reg.addr();
    let node = Node::new();
    node.trust(&name, &ca_a.pem());
    let expected = node.path("/expected/ca.pem");
    write(&expected, ca_b.pem());
    let hash = bcrypt::hash(PASSWORD, 4).unwrap();
    let cfg = format!(
        "host_root = \"{}\"\nhosts_dir = \"/etc/containerd/certs.d\"\nstate_dir = \"{}\"\nproc_dir = \"{}\"\n\
         jitter = 0.0\ntimeout = \"1s\"\ninterval = \"2s\"\n\
         [[registry]]\nname = \"{name}\"\nexpected_ca_file = \"{}\"\n\
         [web.basic_auth_users]\n{USER} = \"{hash}\"\n",
        node.root.path().display(),
        node.path("/var/lib/regtrust").display(),
        node.path("/proc-none").display(),
        expected.display()
    );
    let mut agent = AgentProc::start(node.root.path(), &cfg);
    agent.wait_until("first round", Duration::from_secs(30), |a| {
        a.get("/readyz").map(|(c, _)| c == 200).unwrap_or(false)
    });
    // Without credentials: nothing.
    assert_eq!(agent.get("/").map(|(c, _)| c), Some(401));
    assert_eq!(agent.get("/api/v1/status").map(|(c, _)| c), Some(401));
    let before = wait_status(&agent.addr, Duration::from_secs(10), |v| reason(v) == "ok");
    assert_eq!(before["registries"][0]["ok"], true);

    // The incident: the registry rotates to CA-B, same subject, new key.
    let lb = leaf(&ca_b);
    let _reg = reg.restart_with(&[&lb.cert], &lb.key);
    let after = wait_status(&agent.addr, Duration::from_secs(30), |v| {
        reason(v) == "ca_key_mismatch"
    });
    // The same document as `check --output json`, and it matches the schema.
    validate_against_schema("/api/v1/status", &after);
    let check = check_json(node.root.path(), &[], &name);
    assert_eq!(reason(&check.json), "ca_key_mismatch");
    assert_eq!(
        after["registries"][0]["next_step"],
        check.json["registries"][0]["next_step"]
    );
    // A few more rounds, so the timeline has points on both sides of the change.
    std::thread::sleep(Duration::from_secs(3));

    let a_sha = regtrust::cert::sha256_hex(ca_a.cert.der());
    let b_sha = regtrust::cert::sha256_hex(ca_b.cert.der());
    let profile = tmp();
    let url = format!("http://{USER}:{PASSWORD}@{}/", agent.addr);
    let out = chromium(profile.path(), &["--dump-dom", &url]);
    let dom = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        dom.contains(
            "<h1 id=\"headline\" class=\"bad\">this node can pull from 0 of 1 registries</h1>"
        ),
        "headline missing from the DOM:\n{dom}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dom.contains("FAIL ca_key_mismatch"), "{dom}");
    assert!(dom.contains("crypto/rsa: verification error"), "{dom}");
    let next = after["registries"][0]["next_step"].as_str().unwrap();
    assert!(next.contains("install the new CA"));
    assert!(dom.contains(next), "next step missing:\n{dom}");
    assert!(dom.contains(&a_sha), "the trusted CA-A fingerprint:\n{dom}");
    assert!(
        dom.contains(&b_sha),
        "the expected/presented CA-B fingerprint:\n{dom}"
    );
    assert!(dom.contains("<svg class=\"timeline\""), "{dom}");
    assert!(
        dom.contains("data-marker=\"ca-change\""),
        "no CA-change marker:\n{dom}"
    );
    assert!(dom.contains("<title>"), "{dom}");

    let shot = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/status.png");
    let _ = fs::remove_file(&shot);
    let out = chromium(
        profile.path(),
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1000,900",
            &url,
        ],
    );
    let png = fs::read(&shot).unwrap_or_else(|e| {
        panic!(
            "no screenshot at {} ({e}):\n{}",
            shot.display(),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000);
}
