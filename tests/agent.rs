//! `regtrust run` as a process against the real `docker-registry`, scraped by the real
//! `prometheus`, its exposition linted by the real `promtool`.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

fn agent_cfg(node: &Node, extra: &str) -> String {
    format!(
        "host_root = \"{}\"\nhosts_dir = \"/etc/containerd/certs.d\"\nstate_dir = \"{}\"\nproc_dir = \"{}\"\njitter = 0.0\ntimeout = \"1s\"\n{extra}",
        node.root.path().display(),
        node.path("/var/lib/regtrust").display(),
        node.path("/proc-none").display(),
    )
}

fn success(text: &str, reg: &str) -> Option<f64> {
    metric(text, "regtrust_probe_success", &[("registry", reg)])
}

#[test]
fn rotation_to_same_subject_new_key_is_seen_with_drift_and_a_change() {
    let ca_a = ca("registry.test");
    let ca_b = ca("registry.test");
    let la = leaf(&ca_a);
    let reg = Registry::start(&[&la.cert], Some(&la.key));
    let name = reg.addr();
    let node = Node::new();
    node.trust(&name, &ca_a.pem());
    // Expected CA published before the rotation: the node does not trust it yet.
    let expected = node.path("/expected/ca.pem");
    write(&expected, ca_b.pem());
    let cfg = agent_cfg(
        &node,
        &format!(
            "interval = \"2s\"\n[[registry]]\nname = \"{name}\"\nexpected_ca_file = \"{}\"\n",
            expected.display()
        ),
    );
    let mut agent = AgentProc::start(node.root.path(), &cfg);
    agent.wait_until("first round", Duration::from_secs(20), |a| {
        a.get("/readyz").map(|(c, _)| c == 200).unwrap_or(false)
    });
    let m = agent.metrics();
    assert_eq!(success(&m, &name), Some(1.0), "{m}");
    assert_eq!(
        metric(&m, "regtrust_expected_ca_trusted", &[("registry", &name)]),
        Some(0.0),
        "rotation not safe yet while pulls work:\n{m}"
    );
    assert_eq!(
        metric(
            &m,
            "regtrust_ca_drift",
            &[("registry", &name), ("kind", "expected_untrusted")]
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &m,
            "regtrust_ca_drift",
            &[("registry", &name), ("kind", "presented_untrusted")]
        ),
        Some(0.0)
    );
    let a_sha = regtrust::cert::sha256_hex(ca_a.cert.der());
    assert_eq!(
        metric(
            &m,
            "regtrust_presented_ca_info",
            &[("registry", &name), ("sha256", &a_sha)]
        ),
        Some(1.0),
        "{m}"
    );
    assert!(metric(
        &m,
        "regtrust_trusted_ca_info",
        &[("registry", &name), ("sha256", &a_sha)]
    )
    .is_some());

    // The registry rotates to CA-B, same subject.
    let lb = leaf(&ca_b);
    let _reg = reg.restart_with(&[&lb.cert], &lb.key);
    agent.wait_until("ca_key_mismatch", Duration::from_secs(30), |a| {
        metric(
            &a.metrics(),
            "regtrust_probe_reason",
            &[("registry", &name), ("reason", "ca_key_mismatch")],
        ) == Some(1.0)
    });
    let m = agent.metrics();
    assert_eq!(success(&m, &name), Some(0.0));
    assert_eq!(
        metric(
            &m,
            "regtrust_ca_drift",
            &[("registry", &name), ("kind", "presented_untrusted")]
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(&m, "regtrust_ca_changes_total", &[("registry", &name)]),
        Some(1.0),
        "{m}"
    );
    // The old fingerprint's series is gone, not left at 1.
    assert_eq!(
        metric(
            &m,
            "regtrust_presented_ca_info",
            &[("registry", &name), ("sha256", &a_sha)]
        ),
        None,
        "{m}"
    );
    // The status page says it too.
    let (code, page) = agent.get("/").unwrap();
    assert_eq!(code, 200);
    assert!(
        page.contains("ca_key_mismatch") && page.contains(&name),
        "{page}"
    );
    // One log event per state change, not per probe: several probes ran since the rotation.
    agent.wait_until(
        "more probes after the change",
        Duration::from_secs(30),
        |a| {
            metric(
                &a.metrics(),
                "regtrust_probes_total",
                &[("registry", &name), ("reason", "ca_key_mismatch")],
            )
            .unwrap_or(0.0)
                >= 3.0
        },
    );
    let log = std::fs::read_to_string(&agent.log).unwrap();
    let verdicts = log
        .lines()
        .filter(|l| l.contains("endpoint verdict") && l.contains("reason=ca_key_mismatch"))
        .count();
    assert_eq!(
        verdicts, 1,
        "one event for the change, none for unchanged probes:\n{log}"
    );
    assert!(log.contains("CA drift started"), "{log}");
    assert!(log.contains("the registry's issuing CA changed"), "{log}");
    assert_eq!(
        agent.terminate().map(|s| s.code()),
        Some(Some(0)),
        "SIGTERM must exit 0"
    );
}

#[test]
fn a_trust_file_change_triggers_a_probe_long_before_the_tick() {
    let ca_a = ca("registry.test");
    let la = leaf(&ca_a);
    let reg = Registry::start(&[&la.cert], Some(&la.key));
    let name = reg.addr();
    let node = Node::new();
    node.trust(&name, &ca("wrong").pem());
    let cfg = agent_cfg(&node, "interval = \"1h\"\nlog_format = \"json\"\n");
    let mut agent = AgentProc::start(node.root.path(), &cfg);
    agent.wait_until("first round", Duration::from_secs(20), |a| {
        success(&a.metrics(), &name).is_some()
    });
    assert_eq!(success(&agent.metrics(), &name), Some(0.0));
    // log_format = "json" in the file: one JSON object per line, with the fields to filter on.
    let log = std::fs::read_to_string(&agent.log).unwrap();
    let events: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let verdict = events
        .iter()
        .find(|e| e["message"] == "endpoint verdict")
        .unwrap_or_else(|| panic!("no verdict event in:\n{log}"));
    assert_eq!(verdict["registry"], name.as_str());
    assert_eq!(verdict["reason"], "unknown_authority");
    assert_eq!(verdict["endpoint"], format!("https://{name}/v2/"));
    let probes = |a: &AgentProc| {
        a.metrics()
            .lines()
            .filter(|l| {
                l.starts_with("regtrust_probes_total{")
                    && l.contains(&format!("registry=\"{name}\""))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    let before = probes(&agent);
    // Fix the CA file: the agent must notice the change, not wait an hour.
    write(&node.hosts_dir().join(&name).join("ca.crt"), ca_a.pem());
    agent.wait_until(
        "a probe caused by the file change",
        Duration::from_secs(30),
        |a| probes(a) > before && success(&a.metrics(), &name) == Some(1.0),
    );

    // A new host directory appears: discovered and probed; removed: its series go away.
    let other = Registry::start(&[&la.cert], Some(&la.key));
    node.trust(&other.addr(), &ca_a.pem());
    agent.wait_until("the new registry", Duration::from_secs(30), |a| {
        success(&a.metrics(), &other.addr()) == Some(1.0)
    });
    std::fs::remove_dir_all(node.hosts_dir().join(other.addr())).unwrap();
    agent.wait_until(
        "the departed registry's series removed",
        Duration::from_secs(30),
        |a| {
            !a.metrics()
                .contains(&format!("registry=\"{}\"", other.addr()))
        },
    );
}

#[test]
fn restart_keeps_the_change_and_survives_a_garbage_state_file() {
    let ca_a = ca("registry.test");
    let ca_b = ca("registry.test");
    let la = leaf(&ca_a);
    let reg = Registry::start(&[&la.cert], Some(&la.key));
    let name = reg.addr();
    let node = Node::new();
    node.trust(&name, &format!("{}{}", ca_a.pem(), ca_b.pem()));
    let cfg = agent_cfg(&node, "interval = \"2s\"\n");
    let mut agent = AgentProc::start(node.root.path(), &cfg);
    agent.wait_until("ok", Duration::from_secs(20), |a| {
        success(&a.metrics(), &name) == Some(1.0)
    });
    let lb = leaf(&ca_b);
    let _reg = reg.restart_with(&[&lb.cert], &lb.key);
    agent.wait_until("the change", Duration::from_secs(30), |a| {
        metric(
            &a.metrics(),
            "regtrust_ca_changes_total",
            &[("registry", &name)],
        ) == Some(1.0)
    });
    assert_eq!(agent.terminate().and_then(|s| s.code()), Some(0));
    let state_file = node.path("/var/lib/regtrust/state.json");
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&state_file).unwrap()).unwrap();
    let seen = state["endpoints"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap()
        .clone();
    let b_sha = format!("sha256:{}", regtrust::cert::sha256_hex(ca_b.cert.der()));
    let a_sha = format!("sha256:{}", regtrust::cert::sha256_hex(ca_a.cert.der()));
    assert_eq!(seen["issuer_id"], b_sha.as_str());
    assert_eq!(
        seen["previous_issuer_id"],
        a_sha.as_str(),
        "the cause of the change is kept"
    );

    // Restarted: the counter carries on from the state, and the same CA is not a new change.
    let mut agent = AgentProc::start(node.root.path(), &cfg);
    agent.wait_until("ok again", Duration::from_secs(20), |a| {
        success(&a.metrics(), &name) == Some(1.0)
    });
    assert_eq!(
        metric(
            &agent.metrics(),
            "regtrust_ca_changes_total",
            &[("registry", &name)]
        ),
        Some(1.0)
    );
    assert_eq!(agent.terminate().and_then(|s| s.code()), Some(0));

    // A garbage state file is logged and replaced, never fatal.
    std::fs::write(&state_file, b"\x00\x01 definitely not json").unwrap();
    let mut agent = AgentProc::start(node.root.path(), &cfg);
    agent.wait_until(
        "ok with a garbage state file",
        Duration::from_secs(20),
        |a| success(&a.metrics(), &name) == Some(1.0),
    );
    assert_eq!(agent.terminate().and_then(|s| s.code()), Some(0));
    let log = std::fs::read_to_string(&agent.log).unwrap();
    assert!(log.contains("corrupt"), "{log}");
    assert!(
        serde_json::from_slice::<serde_json::Value>(&std::fs::read(&state_file).unwrap()).is_ok(),
        "state file was not replaced"
    );
}

#[test]
fn runtime_staleness_follows_the_bundle_and_the_runtime_start() {
    let _ctd = Containerd::start();
    let node = Node::new();
    let bundle = node.path("/etc/ssl/certs/ca-certificates.crt");
    write(&bundle, ca("sys").pem());
    let certs_dir = node.path("/etc/ssl/certs");
    let touch = |when: &str, p: &std::path::Path| {
        assert!(Command::new("touch")
            .args(["-d", when])
            .arg(p)
            .status()
            .unwrap()
            .success())
    };
    // Both the bundle and its directory count (update-ca-certificates changes both).
    touch("1 day ago", &bundle);
    touch("1 day ago", &certs_dir);
    let cfg = format!(
        "host_root = \"{}\"\nhosts_dir = \"/etc/containerd/certs.d\"\nstate_dir = \"{}\"\ninterval = \"1h\"\n",
        node.root.path().display(),
        node.path("/var/lib/regtrust").display()
    );
    let mut agent = AgentProc::start(node.root.path(), &cfg);
    let stale = |a: &AgentProc| {
        metric(
            &a.metrics(),
            "regtrust_runtime_trust_stale",
            &[("runtime", "containerd")],
        )
    };
    agent.wait_until("staleness 0", Duration::from_secs(20), |a| {
        stale(a) == Some(0.0)
    });
    // The bundle changes after containerd started: the running runtime has old roots.
    touch("+1 minute", &bundle);
    agent.wait_until("staleness 1", Duration::from_secs(30), |a| {
        stale(a) == Some(1.0)
    });
}

#[test]
fn prometheus_scrapes_the_agent_and_promtool_lints_it() {
    require("prometheus");
    require("promtool");
    let ca_a = ca("registry.test");
    let la = leaf(&ca_a);
    let reg = Registry::start(&[&la.cert], Some(&la.key));
    let name = reg.addr();
    let node = Node::new();
    node.trust(&name, &ca("someone-else").pem());
    let mut agent = AgentProc::start(node.root.path(), &agent_cfg(&node, "interval = \"2s\"\n"));
    agent.wait_until("first probe", Duration::from_secs(20), |a| {
        success(&a.metrics(), &name).is_some()
    });

    // promtool lints the live exposition.
    let exposition = agent.metrics();
    let mut lint = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    lint.stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let out = lint.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // A real Prometheus scrapes it; PromQL sees the drift.
    let prom = Prometheus::start(
        &format!("global: {{scrape_interval: 1s, evaluation_interval: 1s}}\nscrape_configs:\n  - job_name: regtrust\n    static_configs: [{{targets: ['{}']}}]\n", agent.addr),
        &[],
    );
    let query =
        format!("regtrust_ca_drift{{kind=\"presented_untrusted\",registry=\"{name}\"}} == 1");
    let path = format!(
        "/api/v1/query?query={}",
        query
            .replace(' ', "%20")
            .replace('{', "%7B")
            .replace('}', "%7D")
            .replace('"', "%22")
            .replace('=', "%3D")
    );
    let start = std::time::Instant::now();
    let mut last = serde_json::Value::Null;
    while start.elapsed() < Duration::from_secs(60) {
        last = prom.api(&path);
        if last["data"]["result"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
        {
            assert_eq!(
                last["data"]["result"][0]["metric"]["url"],
                format!("https://{name}/v2/")
            );
            return;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("Prometheus never saw the drift; last answer: {last}");
}

#[test]
fn the_example_config_in_deploy_is_valid() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/regtrust.toml");
    let cfg = regtrust::config::AgentConfig::from_file(std::path::Path::new(path))
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(cfg.listen.to_string(), regtrust::config::DEFAULT_LISTEN);
    // With the commented registry enabled it is still valid.
    let text = std::fs::read_to_string(path).unwrap();
    let uncommented: String = text
        .lines()
        .map(|l| match l.strip_prefix("# ") {
            Some(rest)
                if rest.starts_with("[[registry]]")
                    || rest.starts_with("name")
                    || rest.starts_with("expected_ca") =>
            {
                rest.split(" # ").next().unwrap_or(rest).to_string()
            }
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    let cfg = regtrust::config::AgentConfig::from_toml(&uncommented)
        .unwrap_or_else(|e| panic!("{e:?}\n{uncommented}"));
    assert_eq!(cfg.registries.len(), 1);
    assert_eq!(cfg.registries[0].expected_ca_sha256.len(), 1);
    let url = cfg.registries[0].expected_ca_url.as_ref().unwrap();
    assert_eq!(
        url.url.as_str(),
        "https://vault.example.com:8200/v1/pki/ca/pem"
    );
    assert!(matches!(
        url.trust,
        regtrust::config::CaUrlTrust::PinnedLeaf(_)
    ));
}

fn curl_code(args: &[&str]) -> String {
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "5",
        ])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn the_listener_serves_tls_with_a_bearer_token_and_keeps_probes_open() {
    let node = Node::new();
    let ca = ca("listener CA");
    let l = leaf(&ca);
    let dir = node.path("/etc/regtrust/web");
    write(&dir.join("tls.crt"), l.pem());
    write(&dir.join("tls.key"), l.key.serialize_pem());
    write(&dir.join("ca.pem"), ca.pem());
    write(&dir.join("token"), "s3cret-token-0123456789abcdef\n");
    let cfg = agent_cfg(
        &node,
        &format!(
            "interval = \"1h\"\n[web]\ntls_cert_file = \"{0}/tls.crt\"\ntls_key_file = \"{0}/tls.key\"\nbearer_token_file = \"{0}/token\"\n",
            dir.display()
        ),
    );
    let mut agent = AgentProc::start(node.root.path(), &cfg);
    let url = |addr: &str, p: &str| format!("https://{addr}{p}");
    let addr = agent.addr.clone();
    let cacert = dir.join("ca.pem").display().to_string();
    agent.wait_until("TLS /healthz", Duration::from_secs(20), |_| {
        curl_code(&["--cacert", &cacert, &url(&addr, "/healthz")]) == "200"
    });
    assert_eq!(
        curl_code(&["--cacert", &cacert, &url(&addr, "/readyz")]),
        "200",
        "probes stay open"
    );
    assert_eq!(
        curl_code(&["--cacert", &cacert, &url(&addr, "/metrics")]),
        "401"
    );
    assert_eq!(
        curl_code(&[
            "--cacert",
            &cacert,
            "-H",
            "Authorization: Bearer wrong-token-0123456789",
            &url(&addr, "/metrics")
        ]),
        "401"
    );
    assert_eq!(
        curl_code(&[
            "--cacert",
            &cacert,
            "-H",
            "Authorization: Bearer s3cret-token-0123456789abcdef",
            &url(&addr, "/metrics")
        ]),
        "200"
    );
    assert_eq!(
        curl_code(&[
            "--cacert",
            &cacert,
            "-H",
            "Authorization: Bearer s3cret-token-0123456789abcdef",
            &url(&addr, "/")
        ]),
        "200"
    );
    // Plain HTTP to the TLS listener gets no page.
    assert_ne!(curl_code(&[&format!("http://{addr}/metrics")]), "200");
}

#[test]
fn the_listener_checks_basic_auth_and_bounds_requests_and_connections() {
    let node = Node::new();
    let hash = bcrypt::hash("right-password", 4).unwrap();
    let cfg = agent_cfg(
        &node,
        &format!("interval = \"1h\"\n[web.basic_auth_users]\nprometheus = \"{hash}\"\n"),
    );
    let agent = AgentProc::start(node.root.path(), &cfg);
    let base = format!("http://{}", agent.addr);
    assert_eq!(curl_code(&[&format!("{base}/metrics")]), "401");
    assert_eq!(
        curl_code(&["-u", "prometheus:wrong", &format!("{base}/metrics")]),
        "401"
    );
    assert_eq!(
        curl_code(&["-u", "nobody:right-password", &format!("{base}/metrics")]),
        "401"
    );
    assert_eq!(
        curl_code(&[
            "-u",
            "prometheus:right-password",
            &format!("{base}/metrics")
        ]),
        "200"
    );
    assert_eq!(
        curl_code(&[
            "-u",
            "prometheus:right-password",
            &format!("{base}/metrics")
        ]),
        "200",
        "cached"
    );
    // Only GET/HEAD, only known paths, bounded heads.
    assert_eq!(
        curl_code(&["-X", "POST", &format!("{base}/healthz")]),
        "405"
    );
    assert_eq!(
        curl_code(&["-u", "prometheus:right-password", &format!("{base}/nope")]),
        "404"
    );
    assert_eq!(curl_code(&["-I", &format!("{base}/healthz")]), "200");
    let big = format!("X-Big: {}", "a".repeat(10_000));
    assert_eq!(curl_code(&["-H", &big, &format!("{base}/healthz")]), "431");

    // Connection limit: 64 idle connections fill it; the next is closed unanswered; it recovers.
    use std::io::{Read, Write};
    let idle: Vec<std::net::TcpStream> = (0..64)
        .map(|_| std::net::TcpStream::connect(&agent.addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut extra = std::net::TcpStream::connect(&agent.addr).unwrap();
    extra
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let _ = extra.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut buf = Vec::new();
    let _ = extra.read_to_end(&mut buf);
    assert!(
        !String::from_utf8_lossy(&buf).contains("200 OK"),
        "a 65th connection was served"
    );
    drop(idle);
    let start = std::time::Instant::now();
    while curl_code(&[&format!("{base}/healthz")]) != "200" {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the listener did not recover"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn bad_web_settings_are_refused_at_start() {
    let node = Node::new();
    let errs = regtrust::config::AgentConfig::from_toml(
        "[web]\ntls_cert_file = \"/x\"\nbasic_auth_users = { a = \"plaintext\" }\ncolour = 1\n",
    )
    .unwrap_err();
    let keys: Vec<_> = errs.iter().filter_map(|e| e.key_name()).collect();
    assert_eq!(keys, ["web.basic_auth_users.a", "web.colour", "web"]);
    let errs = errs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    for needle in [
        "tls_cert_file and tls_key_file go together",
        "web.basic_auth_users.a: expected a bcrypt hash",
        "web.colour: unknown key",
    ] {
        assert!(errs.contains(needle), "{needle} missing in {errs}");
    }
    // A token file that does not exist: the agent names it and exits 2.
    let cfg = agent_cfg(
        &node,
        "interval = \"1h\"\n[web]\nbearer_token_file = \"/nonexistent/token\"\n",
    );
    let path = node.path("/bad.toml");
    write(&path, format!("listen = \"127.0.0.1:0\"\n{cfg}"));
    let out = Command::new(env!("CARGO_BIN_EXE_regtrust"))
        .args(["run", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/token"));
}

#[test]
fn runtime_info_says_which_go_the_verdicts_follow() {
    // Detected: the host root has the real containerd binary (linked, else copied, there).
    let node = Node::new();
    std::fs::create_dir_all(node.path("/usr/bin")).unwrap();
    let bin = node.path("/usr/bin/containerd");
    if std::fs::hard_link("/usr/bin/containerd", &bin).is_err() {
        std::fs::copy("/usr/bin/containerd", &bin).unwrap();
    }
    let none = tmp();
    let cfg = format!(
        "host_root = \"{}\"\nhosts_dir = \"/etc/containerd/certs.d\"\nstate_dir = \"{}\"\nproc_dir = \"{}\"\ninterval = \"1h\"\n",
        node.root.path().display(),
        node.path("/var/lib/regtrust").display(),
        none.path().display(),
    );
    let info = |a: &AgentProc, labels: &[(&str, &str)]| {
        metric(&a.metrics(), "regtrust_runtime_info", labels)
    };
    let mut agent = AgentProc::start(node.root.path(), &cfg);
    // Reading the binary's tables takes seconds in a debug build on a loaded machine.
    agent.wait_until(
        "runtime info from the binary",
        Duration::from_secs(60),
        |a| {
            info(
                a,
                &[
                    ("runtime", "containerd"),
                    ("go_version", "go1.19.8"),
                    ("source", "binary"),
                    ("version", "1.6.20~ds1"),
                ],
            ) == Some(1.0)
        },
    );
    assert_eq!(agent.terminate().and_then(|s| s.code()), Some(0));
    // The setting replaces detection.
    let cfg = format!("{cfg}go_version = \"go1.22.5\"\n");
    let mut agent = AgentProc::start(node.root.path(), &cfg);
    agent.wait_until(
        "runtime info from the config",
        Duration::from_secs(20),
        |a| info(a, &[("go_version", "go1.22.5"), ("source", "config")]) == Some(1.0),
    );
    assert_eq!(agent.terminate().and_then(|s| s.code()), Some(0));
}

/// A registry name on loopback where nothing listens: its probes fail at once, its series exist.
fn unserved() -> String {
    format!("127.0.0.1:{}", free_port())
}

fn registries(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("[[registry]]\nname = \"{n}\"\n"))
        .collect()
}

#[test]
fn sighup_reloads_what_is_valid_and_an_invalid_file_changes_nothing() {
    let (a, b, c) = (unserved(), unserved(), unserved());
    let node = Node::new();
    // The config is a symlink into another directory, whose changes the file watch does not see:
    // only the signal can make the agent read the edit.
    let real = node.path("/real/regtrust.toml");
    write(&real, "");
    let config = node.path("/etc/regtrust/regtrust.toml");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(&real, &config).unwrap();
    let base = agent_cfg(&node, "discover = false\ninterval = \"1h\"\n");
    let mut agent = AgentProc::start_at(
        node.root.path(),
        &config,
        &(base.clone() + &registries(&[&a])),
    );
    agent.wait_until("registry a probed", Duration::from_secs(20), |ag| {
        success(&ag.metrics(), &a).is_some()
    });

    agent.rewrite(&(base.clone() + &registries(&[&a, &b])));
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        success(&agent.metrics(), &b),
        None,
        "not without the signal"
    );
    agent.hangup();
    agent.wait_until("registry b after SIGHUP", Duration::from_secs(10), |ag| {
        success(&ag.metrics(), &b).is_some()
    });
    assert!(agent.log_text().contains("config reloaded"));

    // An invalid file: every mistake logged with its key, nothing of it applied (not even the
    // valid new registry c), the agent keeps running. A new listen address needs a restart.
    let bad = base.replace("interval = \"1h\"", "interval = \"soon\"")
        + &registries(&[&a, &b, &c])
        + "colour = \"red\"\n";
    agent.rewrite(&bad);
    agent.hangup();
    agent.wait_until("the rejection logged", Duration::from_secs(10), |ag| {
        ag.log_text().contains("config not reloaded")
    });
    let log = agent.log_text();
    for key in ["key=\"interval\"", "key=\"registry[2].colour\""] {
        assert!(
            log.lines()
                .any(|l| l.contains("config not reloaded") && l.contains(key)),
            "{key} not named:\n{log}"
        );
    }
    assert!(
        log.contains(&config.display().to_string()),
        "the file is named:\n{log}"
    );
    assert!(agent.child.try_wait().unwrap().is_none(), "still running");
    let m = agent.metrics();
    assert!(
        success(&m, &a).is_some() && success(&m, &b).is_some(),
        "{m}"
    );
    assert_eq!(
        success(&m, &c),
        None,
        "nothing of an invalid file is applied"
    );

    // A valid file with another listen address: the rest applies (b leaves), the address waits
    // for a restart.
    std::fs::write(
        &real,
        format!("listen = \"127.0.0.1:1\"\n{base}{}", registries(&[&a])),
    )
    .unwrap();
    agent.hangup();
    agent.wait_until("b removed", Duration::from_secs(10), |ag| {
        success(&ag.metrics(), &b).is_none()
    });
    let log = agent.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains("needs a restart") && l.contains("key=\"listen\"")),
        "{log}"
    );
    assert!(agent.get("/healthz").is_some(), "still on the old address");
    assert_eq!(
        agent.terminate().map(|s| s.code()),
        Some(Some(0)),
        "SIGTERM still exits 0"
    );
}

#[test]
fn a_configmap_swap_of_the_config_is_picked_up_without_a_signal() {
    let (a, b) = (unserved(), unserved());
    let node = Node::new();
    // How the kubelet lays out a ConfigMap volume: the file is a symlink through `..data`, and an
    // update swaps `..data` to a new timestamped directory.
    let cm = node.path("/etc/regtrust");
    std::fs::create_dir_all(cm.join("..2026_12_02_06_00_00.1")).unwrap();
    std::os::unix::fs::symlink("..2026_12_02_06_00_00.1", cm.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/regtrust.toml", cm.join("regtrust.toml")).unwrap();
    let config = cm.join("regtrust.toml");
    let base = agent_cfg(&node, "discover = false\ninterval = \"1h\"\n");
    let mut agent = AgentProc::start_at(
        node.root.path(),
        &config,
        &(base.clone() + &registries(&[&a])),
    );
    agent.wait_until("registry a probed", Duration::from_secs(20), |ag| {
        success(&ag.metrics(), &a).is_some()
    });
    let next = cm.join("..2026_12_02_06_05_00.2");
    write(
        &next.join("regtrust.toml"),
        format!("listen = \"{}\"\n{base}{}", agent.addr, registries(&[&b])),
    );
    std::os::unix::fs::symlink("..2026_12_02_06_05_00.2", cm.join("..data_tmp")).unwrap();
    std::fs::rename(cm.join("..data_tmp"), cm.join("..data")).unwrap();
    std::fs::remove_dir_all(cm.join("..2026_12_02_06_00_00.1")).unwrap();
    agent.wait_until("b added, a removed", Duration::from_secs(10), |ag| {
        let m = ag.metrics();
        success(&m, &b).is_some() && success(&m, &a).is_none()
    });
}

#[test]
fn the_expected_ca_is_fetched_from_the_pki_under_its_own_trust_each_interval() {
    let (pinned, wrong_pin, by_ca_file) = (unserved(), unserved(), unserved());
    let node = Node::new();
    let registry_ca = ca("registry.test");
    for r in [&pinned, &wrong_pin, &by_ca_file] {
        node.trust(r, &registry_ca.pem());
    }
    let pki_ca = ca("pki.test");
    let pki_leaf = leaf(&pki_ca);
    let pki = PkiServer::start(&pki_leaf, registry_ca.pem());
    let pki_ca_file = node.path("/agent/pki-ca.pem");
    write(&pki_ca_file, pki_ca.pem());
    let url = pki.url("/v1/pki/ca/pem");
    let pin = regtrust::cert::sha256_hex(pki_leaf.cert.der());
    let cfg = agent_cfg(
        &node,
        &format!(
            "discover = false\ninterval = \"2s\"\n\
             [[registry]]\nname = \"{pinned}\"\nexpected_ca_url = \"{url}\"\nexpected_ca_url_sha256 = \"{pin}\"\n\
             [[registry]]\nname = \"{wrong_pin}\"\nexpected_ca_url = \"{url}\"\nexpected_ca_url_sha256 = \"{}\"\n\
             [[registry]]\nname = \"{by_ca_file}\"\nexpected_ca_url = \"{url}\"\nexpected_ca_url_ca_file = \"{}\"\n",
            "ab".repeat(32),
            pki_ca_file.display()
        ),
    );
    let mut agent = AgentProc::start(node.root.path(), &cfg);
    let trusted = |m: &str, r: &str| metric(m, "regtrust_expected_ca_trusted", &[("registry", r)]);
    let unreadable = |m: &str, r: &str| {
        metric(
            m,
            "regtrust_trust_findings",
            &[("registry", r), ("kind", "expected_ca_unreadable")],
        )
    };
    agent.wait_until("the published CA read", Duration::from_secs(20), |ag| {
        let m = ag.metrics();
        trusted(&m, &pinned) == Some(1.0)
            && trusted(&m, &by_ca_file) == Some(1.0)
            && unreadable(&m, &wrong_pin) == Some(1.0)
    });
    let m = agent.metrics();
    assert_eq!(unreadable(&m, &pinned), None, "{m}");
    let error = |r: &str| metric(&m, "regtrust_expected_ca_error", &[("registry", r)]);
    assert_eq!(
        (error(&pinned), error(&wrong_pin), error(&by_ca_file)),
        (Some(0.0), Some(1.0), Some(0.0)),
        "{m}"
    );
    let log = agent.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains("cannot read the expected CA")
                && l.contains(&wrong_pin)
                && l.contains("not the pinned")),
        "{log}"
    );
    // The PKI publishes the next CA: the next round reads it, and the node does not trust it yet.
    pki.set_body(ca("registry.test, next").pem());
    agent.wait_until("the next CA read", Duration::from_secs(15), |ag| {
        trusted(&ag.metrics(), &pinned) == Some(0.0)
    });
    assert!(agent.child.try_wait().unwrap().is_none());
}

#[test]
fn an_edit_of_the_config_file_is_picked_up_without_a_signal() {
    let (a, b) = (unserved(), unserved());
    let node = Node::new();
    let base = agent_cfg(&node, "discover = false\ninterval = \"1h\"\n");
    // The config file sits beside the agent's log, which changes all the time.
    let mut agent = AgentProc::start(node.root.path(), &(base.clone() + &registries(&[&a])));
    agent.wait_until("registry a probed", Duration::from_secs(20), |ag| {
        success(&ag.metrics(), &a).is_some()
    });
    agent.rewrite(&(base + &registries(&[&a, &b])));
    agent.wait_until("registry b added", Duration::from_secs(10), |ag| {
        success(&ag.metrics(), &b).is_some()
    });
    std::thread::sleep(Duration::from_secs(1));
    let reloads = agent
        .log_text()
        .lines()
        .filter(|l| l.contains("config reloaded"))
        .count();
    assert_eq!(reloads, 1, "one edit, one reload:\n{}", agent.log_text());
}

/// A config file that is a FIFO (or a device) must not hang the agent at start: it is refused,
/// naming the path, as every file regtrust reads (hostroot::read_regular).
#[test]
fn a_fifo_as_the_config_file_is_refused_not_waited_on() {
    let dir = tmp();
    let fifo = dir.path().join("regtrust.toml");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let out = Command::new("timeout")
        .arg("20")
        .arg(env!("CARGO_BIN_EXE_regtrust"))
        .args(["run", "--config"])
        .arg(&fifo)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&fifo.display().to_string()) && err.contains("not a regular file"),
        "{err}"
    );
}

/// A FIFO named ca.crt in a host directory: the agent keeps serving and probing, reports the
/// registry's configuration error naming the file, and stops on SIGTERM; `stage --apply` for that
/// registry ends promptly instead of hanging in open(2).
#[test]
fn a_fifo_in_a_host_dir_does_not_freeze_the_agent_or_staging() {
    let node = Node::new();
    let dir = node.hosts_dir().join("fifo.test:5000");
    std::fs::create_dir_all(&dir).unwrap();
    assert!(Command::new("mkfifo")
        .arg(dir.join("ca.crt"))
        .status()
        .unwrap()
        .success());
    let cfg = agent_cfg(
        &node,
        "interval = \"2s\"\n[[registry]]\nname = \"fifo.test:5000\"\n",
    );
    let mut agent = AgentProc::start(node.root.path(), &cfg);
    agent.wait_until("config_error reported", Duration::from_secs(30), |a| {
        a.metrics().lines().any(|l| {
            l.starts_with("regtrust_probe_reason{")
                && l.contains("fifo.test:5000")
                && l.contains("reason=\"config_error\"")
                && l.ends_with(" 1")
        })
    });
    assert_eq!(agent.get("/healthz").map(|(c, _)| c), Some(200));

    let ca = ca("candidate");
    let cand = node.path("/tmp/candidate.pem");
    write(&cand, ca.pem());
    let mut stage = Command::new("timeout")
        .arg("30")
        .arg(env!("CARGO_BIN_EXE_regtrust"))
        .args(["stage", "--host-root"])
        .arg(node.root.path())
        .args([
            "--hosts-dir",
            "/etc/containerd/certs.d",
            "--timeout",
            "2",
            "--apply",
            "--ca",
        ])
        .arg(&cand)
        .args(["--registry", "fifo.test:5000"])
        .output()
        .unwrap();
    assert_ne!(
        stage.status.code(),
        Some(124),
        "stage --apply hung on the FIFO"
    );
    assert_ne!(stage.status.code(), Some(0), "{stage:?}");
    stage.stdout.extend_from_slice(&stage.stderr);
    let text = String::from_utf8_lossy(&stage.stdout);
    assert!(text.contains("ca.crt"), "{text}");

    let st = agent.terminate().expect("the agent stops on SIGTERM");
    assert!(st.success(), "{st:?}");
}

/// The same URL twice in one hosts.toml (a `[host]` table with the CA, and `server` without):
/// containerd tries both and pulls through the first. Its series stay 1 round after round and no
/// drift is logged; before, whichever of the two was probed last set them, so they flapped.
#[test]
fn the_same_url_configured_twice_is_one_steady_series() {
    let ca_a = ca("registry.test");
    let la = leaf(&ca_a);
    let reg = Registry::start(&[&la.cert], Some(&la.key));
    let name = reg.addr();
    let node = Node::new();
    let dir = node.hosts_dir().join(&name);
    write(&dir.join("ca.crt"), ca_a.pem());
    write(
        &dir.join("hosts.toml"),
        format!("server = \"https://{name}\"\n[host.\"https://{name}\"]\n  capabilities = [\"pull\", \"resolve\"]\n  ca = \"ca.crt\"\n"),
    );
    let cfg = agent_cfg(&node, "interval = \"2s\"\n");
    let mut agent = AgentProc::start(node.root.path(), &cfg);
    let probes = |a: &AgentProc| {
        metric(
            &a.metrics(),
            "regtrust_probes_total",
            &[("registry", &name), ("reason", "ok")],
        )
    };
    // Several rounds in a row (the server's endpoint, probed too, fails each time).
    agent.wait_until("three rounds", Duration::from_secs(30), |a| {
        probes(a).is_some_and(|n| n >= 3.0)
    });
    for _ in 0..10 {
        let m = agent.metrics();
        assert_eq!(success(&m, &name), Some(1.0), "{m}");
        assert_eq!(
            metric(
                &m,
                "regtrust_ca_drift",
                &[("registry", &name), ("kind", "presented_untrusted")]
            ),
            Some(0.0),
            "{m}"
        );
        std::thread::sleep(Duration::from_millis(150));
    }
    let log = agent.log_text();
    assert!(!log.contains("CA drift started"), "{log}");
}

/// Saves are coalesced (one in flight, one more after it), yet nothing is lost: the first round
/// of several registries, each recording its issuer, reaches the state file while the agent
/// runs — no shutdown save needed.
#[test]
fn a_burst_of_changes_is_saved_while_the_agent_runs() {
    let ca_a = ca("registry.test");
    let la = leaf(&ca_a);
    let regs: Vec<Registry> = (0..8)
        .map(|_| Registry::start(&[&la.cert], Some(&la.key)))
        .collect();
    let node = Node::new();
    for r in &regs {
        node.trust(&r.addr(), &ca_a.pem());
    }
    let cfg = agent_cfg(&node, "interval = \"1h\"\n");
    let mut agent = AgentProc::start(node.root.path(), &cfg);
    let state_file = node.path("/var/lib/regtrust/state.json");
    let saved = || -> usize {
        std::fs::read(&state_file)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v["endpoints"].as_object().map(|o| o.len()))
            .unwrap_or(0)
    };
    agent.wait_until(
        "every registry's issuer on disk",
        Duration::from_secs(30),
        |_| saved() == regs.len(),
    );
    assert_eq!(agent.terminate().and_then(|s| s.code()), Some(0));
    assert_eq!(saved(), regs.len());
}
