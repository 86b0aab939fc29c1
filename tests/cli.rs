//! The CLI for a person, as a process: README's reason table is `regtrust reasons`; the demo
//! replays the incident's RSA case and its JSON matches docs/check-output.schema.json; an
//! endpoint configured twice is one line; colour only on a terminal and never with NO_COLOR;
//! hostile host directory names and certificate subjects never reach the terminal or the logs raw.

mod common;
#[path = "support/schema.rs"]
mod schema;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use rcgen::{DnType, DnValue};
use schema::validate_against_schema;

/// A terminal-rewriting, line-forging string, as a host directory name and as a subject.
const EVIL: &str = "evil\x1b[2K\rOK  prod.registry:5000";

fn assert_no_raw_controls(what: &str, s: &str) {
    assert!(
        !s.contains('\x1b') && !s.contains('\r'),
        "{what} holds a raw ESC or CR:\n{s:?}"
    );
}

#[test]
fn readme_reason_table_is_regtrust_reasons() {
    let run = regtrust(&["reasons", "--output", "markdown"]);
    assert_eq!(run.code, 0);
    let readme =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let start = readme
        .find("<!-- reasons:begin")
        .expect("README reasons marker");
    let body = &readme[start..];
    let body = &body[body.find('\n').unwrap() + 1..body.find("<!-- reasons:end -->").unwrap()];
    assert_eq!(
        body, run.stdout,
        "README's reason table differs: regenerate it with `regtrust reasons --output markdown`"
    );
    let text = regtrust(&["reasons"]);
    assert!(text.stdout.contains("ca_key_mismatch\n  means:"));
    assert!(text.stdout.contains("crypto/rsa: verification error"));
}

#[test]
fn demo_replays_the_rsa_incident_and_its_json_matches_the_schema() {
    let text = regtrust(&["demo"]);
    assert_eq!(text.code, 0, "{}{}", text.stdout, text.stderr);
    assert!(
        text.stdout.contains("crypto/rsa: verification error"),
        "{}",
        text.stdout
    );
    let run = regtrust(&["demo", "--output", "json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    for phase in ["before", "after", "remedied"] {
        validate_against_schema(phase, &run.json[phase]);
    }
    // The schema can fail: a report without its registries is refused.
    let out = std::panic::catch_unwind(|| {
        validate_against_schema("broken", &serde_json::json!({"findings": []}))
    });
    assert!(
        out.is_err(),
        "the schema accepted a report without registries"
    );
}

/// A node that trusts CA-A for the registry (hosts.toml `server` and `[host]` naming the same
/// URL), and a host directory with a hostile name beside it.
fn hostile_node(reg: &Registry, ca_pem: &str) -> Node {
    let node = Node::new();
    node.trust(&reg.addr(), ca_pem);
    write(&node.hosts_dir().join(EVIL).join("ca.crt"), ca_pem);
    node
}

#[test]
fn check_text_shows_each_url_once_and_escapes_hostile_names_and_subjects() {
    let ca_a = ca("registry.test");
    let mut evil_ca = ca_params("registry.test");
    evil_ca
        .distinguished_name
        .push(DnType::OrganizationName, DnValue::Utf8String(EVIL.into()));
    let key = rcgen::KeyPair::generate().unwrap();
    let evil_ca = Issued {
        cert: evil_ca.self_signed(&key).unwrap(),
        key,
    };
    let l = leaf(&evil_ca);
    let reg = Registry::start(&[&l.cert, &evil_ca.cert], Some(&l.key));
    let node = hostile_node(&reg, &ca_a.pem());
    let root = node.root.path().display().to_string();
    let run = regtrust(&["check", "--host-root", &root, "--timeout", "5"]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert_no_raw_controls("check's text", &run.stdout);
    assert_no_raw_controls("check's stderr", &run.stderr);
    assert!(
        run.stdout.contains("evil\\x1b[2K\\rOK  prod.registry:5000"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("O=evil\\x1b[2K\\rOK"), "{}", run.stdout);
    // server and [host] name the same URL: one line, both origins.
    let url = format!("https://{}/v2/", reg.addr());
    let lines: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("  [") && l.contains(&url))
        .collect();
    assert_eq!(lines.len(), 1, "{}", run.stdout);
    assert!(
        lines[0].contains(", "),
        "both origins on the line: {}",
        lines[0]
    );
    // The same check for tools: valid JSON of the documented schema, strings intact.
    let json = check_json(node.root.path(), &[], &reg.addr());
    validate_against_schema("check --output json", &json.json);
    assert!(
        json.stdout.contains("evil\\u001b[2K\\rOK"),
        "{}",
        json.stdout
    );
    // The node-problem-detector line, and a usage error naming the hostile name.
    let npd = regtrust(&["check", "--npd", "--host-root", &root, "--timeout", "5"]);
    assert_no_raw_controls("the --npd line", &npd.stdout);
    let bad = regtrust(&["check", "--npd", "--host-root", &root, EVIL]);
    assert_eq!(bad.code, 2);
    assert_no_raw_controls("the --npd usage line", &bad.stdout);
    let bad = regtrust(&["check", "--host-root", &root, EVIL]);
    assert_eq!(bad.code, 2);
    assert_no_raw_controls("a usage error", &bad.stderr);
}

/// `regtrust check` under a pseudo-terminal (util-linux `script`), with `no_color` as NO_COLOR.
fn check_on_a_terminal(root: &str, registry: &str, no_color: Option<&str>) -> String {
    let mut cmd = Command::new("timeout");
    cmd.args(["30", "script", "-qec"])
        .arg(format!(
            "{} check --host-root {root} --timeout 5 {registry}",
            env!("CARGO_BIN_EXE_regtrust")
        ))
        .arg("/dev/null")
        .env_remove("NO_COLOR");
    if let Some(v) = no_color {
        cmd.env("NO_COLOR", v);
    }
    let out = cmd.output().expect("script (util-linux)");
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn colour_only_on_a_terminal_and_never_with_no_color() {
    let ca_a = ca("registry.test");
    let ca_b = ca("registry.test");
    let l = leaf(&ca_b);
    let reg = Registry::start(&[&l.cert], Some(&l.key));
    let node = Node::new();
    node.trust(&reg.addr(), &ca_a.pem());
    let root = node.root.path().display().to_string();
    let tty = check_on_a_terminal(&root, &reg.addr(), None);
    assert!(tty.contains("\x1b[1;31mFAIL ca_key_mismatch"), "{tty:?}");
    let tty_empty = check_on_a_terminal(&root, &reg.addr(), Some(""));
    assert!(
        tty_empty.contains("\x1b[1;31m"),
        "NO_COLOR= (empty) keeps colour"
    );
    let no_color = check_on_a_terminal(&root, &reg.addr(), Some("1"));
    assert!(no_color.contains("FAIL ca_key_mismatch"), "{no_color:?}");
    assert!(!no_color.contains('\x1b'), "{no_color:?}");
    let piped = regtrust(&["check", "--host-root", &root, "--timeout", "5", &reg.addr()]);
    assert!(piped.stdout.contains("FAIL ca_key_mismatch"));
    assert!(!piped.stdout.contains('\x1b'));
}

#[test]
fn the_agents_text_logs_escape_subjects_from_the_registry() {
    let key_a = rcgen::KeyPair::generate().unwrap();
    let ca_a = Issued {
        cert: ca_params(EVIL).self_signed(&key_a).unwrap(),
        key: key_a,
    };
    let key_b = rcgen::KeyPair::generate().unwrap();
    let ca_b = Issued {
        cert: ca_params(EVIL).self_signed(&key_b).unwrap(),
        key: key_b,
    };
    // Same name, other key: the runtime's words name the CA, so the log line carries it.
    let l = leaf(&ca_b);
    let reg = Registry::start(&[&l.cert], Some(&l.key));
    let node = hostile_node(&reg, &ca_a.pem());
    let cfg = format!(
        "host_root = \"{}\"\nhosts_dir = \"/etc/containerd/certs.d\"\nstate_dir = \"{}\"\nproc_dir = \"{}\"\njitter = 0.0\ntimeout = \"2s\"\nlog_format = \"text\"\n",
        node.root.path().display(),
        node.path("/var/lib/regtrust").display(),
        node.path("/proc-none").display(),
    );
    let mut agent = AgentProc::start(node.root.path(), &cfg);
    agent.wait_until("first round", Duration::from_secs(30), |a| {
        a.get("/readyz").map(|(c, _)| c == 200).unwrap_or(false)
    });
    agent.wait_until("the verdict logged", Duration::from_secs(10), |a| {
        fs::read_to_string(&a.log).is_ok_and(|l| l.contains("endpoint verdict"))
    });
    let log = fs::read_to_string(&agent.log).unwrap();
    assert_no_raw_controls("the agent's text log", &log);
    assert!(log.contains("evil\\x1b[2K\\rOK"), "{log}");
    let (_, page) = agent.get("/").unwrap();
    assert_no_raw_controls("the status page", &page);
}

/// `REGTRUST_LOG` takes a level or `target=level` pairs; one that does not parse is said on stderr,
/// naming the variable, and logging goes on at the default level.
#[test]
fn a_log_filter_that_does_not_parse_is_said_not_ignored() {
    let run = |filter: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_regtrust"))
            .args([
                "check",
                "--host-root",
                "/nonexistent-regtrust-root",
                "r.test:1",
            ])
            .env("REGTRUST_LOG", filter)
            .output()
            .expect("run regtrust");
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let bad = run("regtrust=[");
    assert!(
        bad.contains("REGTRUST_LOG=\"regtrust=[\" is not a log filter")
            && bad.contains("logging at warn"),
        "{bad}"
    );
    for good in ["debug", "regtrust=debug,warn"] {
        let err = run(good);
        assert!(!err.contains("is not a log filter"), "{good}: {err}");
        assert!(err.contains("is not a directory"), "{good}: {err}");
    }
}
