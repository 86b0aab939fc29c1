//! Three "nodes" on one machine — each an agent on its own loopback address with its own host root —
//! one real `docker-registry`, and a real `prometheus` loading deploy/prometheus/alerts.yaml and
//! scraping all three. Two nodes trust CA-A, one already trusts A and B. The registry rotates to
//! CA-B: the incident's alert fires for exactly the two stale nodes; when one of them gets staging,
//! its alert resolves.

mod common;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn firing(prom: &Prometheus, alert: &str) -> BTreeSet<String> {
    let v = prom.api("/api/v1/alerts");
    v["data"]["alerts"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|x| x["labels"]["alertname"] == alert && x["state"] == "firing")
                .filter_map(|x| x["labels"]["node"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("timed out waiting for {what}");
}

#[test]
fn the_incident_alert_fires_for_exactly_the_stale_nodes_and_staging_resolves_one() {
    require("prometheus");
    let ca_a = ca("registry.test");
    let ca_b = ca("registry.test");
    let la = leaf(&ca_a);
    let reg = Registry::start(&[&la.cert], Some(&la.key));
    let name = reg.addr();
    let dir = tmp();
    let expected = dir.path().join("expected-b.pem");
    write(&expected, ca_b.pem());

    let nodes: Vec<Node> = (0..3).map(|_| Node::new()).collect();
    nodes[0].trust(&name, &ca_a.pem());
    nodes[1].trust(&name, &ca_a.pem());
    nodes[2].trust(&name, &format!("{}{}", ca_a.pem(), ca_b.pem()));
    let cfg = |n: &Node, stage: bool| {
        format!(
            "host_root = \"{}\"\nhosts_dir = \"/etc/containerd/certs.d\"\nstate_dir = \"{}\"\ninterval = \"2s\"\ntimeout = \"1s\"\njitter = 0.0\nstage_min_interval = \"1s\"\n[[registry]]\nname = \"{name}\"\nexpected_ca_file = \"{}\"\nstage = {stage}\n",
            n.root.path().display(),
            n.path("/var/lib/regtrust").display(),
            expected.display()
        )
    };
    let ips = ["127.0.1.1", "127.0.1.2", "127.0.1.3"];
    let mut agents: Vec<AgentProc> = nodes
        .iter()
        .zip(ips)
        .map(|(n, ip)| AgentProc::start_on(n.root.path(), &cfg(n, false), ip))
        .collect();

    // Prometheus with the shipped rules; only the `for:` durations are shortened for the test.
    let rules = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/prometheus/alerts.yaml"
    ))
    .unwrap();
    let fast: String = rules
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("for: ") {
                format!("{}for: 0s", &l[..l.len() - l.trim_start().len()])
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let targets: Vec<String> = agents
        .iter()
        .zip(["n1", "n2", "n3"])
        .map(|(a, n)| {
            format!(
                "      - targets: ['{}']\n        labels: {{node: {n}}}\n",
                a.addr
            )
        })
        .collect();
    let prom = Prometheus::start(&format!("global: {{scrape_interval: 1s, evaluation_interval: 1s}}\nrule_files: [alerts.yaml]\nscrape_configs:\n  - job_name: regtrust\n    static_configs:\n{}", targets.join("")), &[("alerts.yaml", &fast)]);

    // Before the rotation: every node pulls; the expected CA (B) is trusted only on n3.
    wait_for(
        "the expected-CA alert on n1 and n2",
        Duration::from_secs(90),
        || {
            firing(&prom, "RegtrustExpectedCANotTrusted")
                == BTreeSet::from(["n1".to_string(), "n2".to_string()])
        },
    );
    assert!(firing(&prom, "RegtrustCAKeyMismatch").is_empty());

    // The registry rotates to CA-B.
    let lb = leaf(&ca_b);
    let _reg = reg.restart_with(&[&lb.cert], &lb.key);
    wait_for(
        "the incident alert on exactly n1 and n2",
        Duration::from_secs(90),
        || {
            firing(&prom, "RegtrustCAKeyMismatch")
                == BTreeSet::from(["n1".to_string(), "n2".to_string()])
        },
    );
    assert!(
        !firing(&prom, "RegtrustCAKeyMismatch").contains("n3"),
        "n3 trusts B: no alert"
    );
    assert!(
        firing(&prom, "RegtrustRegistryUnreachable").is_empty(),
        "the incident has its own alert"
    );

    // Staging on n2 (restart its agent with stage = true, same address and state): it installs
    // CA-B, and its alert resolves; n1 keeps firing.
    let addr = agents[1].addr.clone();
    assert_eq!(agents[1].terminate().and_then(|s| s.code()), Some(0));
    agents[1] = {
        let path = nodes[1].root.path().join("agent-staging.toml");
        write(
            &path,
            format!("listen = \"{addr}\"\n{}", cfg(&nodes[1], true)),
        );
        let child = Command::new(env!("CARGO_BIN_EXE_regtrust"))
            .args(["run", "--config"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(nodes[1].root.path().join("staging.log")).unwrap())
            .spawn()
            .unwrap();
        let mut a = AgentProc {
            child,
            addr: addr.clone(),
            log: nodes[1].root.path().join("staging.log"),
            config: path.clone(),
        };
        a.wait_until("n2 staged", Duration::from_secs(30), |a| {
            metric(
                &a.metrics(),
                "regtrust_stage_total",
                &[("result", "applied")],
            ) == Some(1.0)
        });
        a
    };
    wait_for(
        "n2's alert to resolve while n1's stays",
        Duration::from_secs(90),
        || firing(&prom, "RegtrustCAKeyMismatch") == BTreeSet::from(["n1".to_string()]),
    );
}
