//! The shipped alerts under the labels prometheus-operator gives a PodMonitor's targets. A real
//! `prometheus` scrapes a real agent with deploy/prometheus/scrape-kubernetes.yaml's
//! relabel_configs (on a static target carrying the `__meta_kubernetes_*` labels Kubernetes
//! discovery would give it, since Debian's Prometheus has no Kubernetes discovery) plus the
//! operator's `job="<namespace>/<podmonitor>"`, so every series has namespace, pod, container,
//! endpoint="metrics", instance and job. The node trusts the old CA for a registry with two URLs
//! (a mirror and the server, both presenting the rotated CA): every rule must evaluate without
//! error (no many-to-many join), the incident must fire once per URL with every target label,
//! and no regtrust label may have been renamed to `exported_*`.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::*;

const SCRAPE: &str = include_str!("../deploy/prometheus/scrape-kubernetes.yaml");
const ALERTS: &str = include_str!("../deploy/prometheus/alerts.yaml");
const SD_BLOCK: &str = "    kubernetes_sd_configs:\n      - role: pod\n        namespaces:\n          names: [regtrust]\n";

/// The shipped scrape job with Kubernetes discovery replaced by one static target that carries
/// what discovery would attach, and the job label the operator sets for a PodMonitor.
fn scrape_config(target: &str) -> String {
    assert!(
        SCRAPE.contains(SD_BLOCK),
        "scrape-kubernetes.yaml changed shape: update this test's SD_BLOCK"
    );
    let statics = format!(
        "    static_configs:\n      - targets: ['{target}']\n        labels:\n          __meta_kubernetes_namespace: regtrust\n          __meta_kubernetes_pod_name: regtrust-x7k2p\n          __meta_kubernetes_pod_container_name: regtrust\n          __meta_kubernetes_pod_container_port_name: metrics\n          __meta_kubernetes_pod_label_app_kubernetes_io_name: regtrust\n          __meta_kubernetes_pod_node_name: n1\n"
    );
    let operator_job = "      - target_label: job\n        replacement: regtrust/regtrust\n";
    let body = SCRAPE
        .lines()
        .skip_while(|l| !l.starts_with("scrape_configs:"))
        .collect::<Vec<_>>()
        .join("\n");
    format!(
        "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\nrule_files: [alerts.yaml]\n{}\n{operator_job}",
        body.replace(SD_BLOCK, &statics)
    )
}

/// The shipped rules with every `for:` shortened to 0s.
fn fast_rules() -> String {
    ALERTS
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("for: ") {
                format!("{}for: 0s", &l[..l.len() - l.trim_start().len()])
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn firing(prom: &Prometheus, alert: &str) -> Vec<serde_json::Value> {
    let v = prom.api("/api/v1/alerts");
    v["data"]["alerts"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|x| x["labels"]["alertname"] == alert && x["state"] == "firing")
                .map(|x| x["labels"].clone())
                .collect()
        })
        .unwrap_or_default()
}

/// Every rule of every group, as (name, health, lastError), once each has been evaluated.
fn rule_health(prom: &Prometheus) -> Vec<(String, String, String)> {
    let v = prom.api("/api/v1/rules");
    let mut out = Vec::new();
    for g in v["data"]["groups"].as_array().into_iter().flatten() {
        for r in g["rules"].as_array().into_iter().flatten() {
            out.push((
                r["name"].as_str().unwrap_or("").to_string(),
                r["health"].as_str().unwrap_or("").to_string(),
                r["lastError"].as_str().unwrap_or("").to_string(),
            ));
        }
    }
    out
}

/// Polls `cond` until it holds; on timeout panics with every rule's health and last error.
fn wait_for(prom: &Prometheus, what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!(
        "timed out waiting for {what}; rules (name, health, last error):\n{:#?}",
        rule_health(prom)
    );
}

#[test]
fn every_alert_evaluates_under_podmonitor_labels_on_a_registry_with_two_urls() {
    require("prometheus");
    let ca_old = ca("registry.test");
    let ca_new = ca("registry.test");
    let l = leaf(&ca_new);
    let server = Registry::start(&[&l.cert], Some(&l.key));
    let mirror = Registry::start(&[&l.cert], Some(&l.key));
    let name = server.addr();

    // The node trusts the old CA for both URLs: containerd tries the mirror, then the server.
    let node = Node::new();
    let dir = node.hosts_dir().join(&name);
    write(&dir.join("ca.crt"), ca_old.pem());
    write(
        &dir.join("hosts.toml"),
        format!(
            "server = \"https://{name}\"\nca = \"ca.crt\"\n\n[host.\"https://{}\"]\n  capabilities = [\"pull\", \"resolve\"]\n  ca = \"ca.crt\"\n",
            mirror.addr()
        ),
    );
    let expected = node.path("/expected.pem");
    write(&expected, ca_new.pem());
    let cfg = format!(
        "host_root = \"{}\"\nhosts_dir = \"/etc/containerd/certs.d\"\nstate_dir = \"{}\"\ninterval = \"2s\"\ntimeout = \"1s\"\njitter = 0.0\n[[registry]]\nname = \"{name}\"\nexpected_ca_file = \"{}\"\n",
        node.root.path().display(),
        node.path("/var/lib/regtrust").display(),
        expected.display()
    );
    let agent = AgentProc::start(node.root.path(), &cfg);
    let prom = Prometheus::start(
        &scrape_config(&agent.addr),
        &[("alerts.yaml", &fast_rules())],
    );

    // The incident fires once per URL, each alert with every target label and its own url.
    let mut alerts = Vec::new();
    wait_for(
        &prom,
        "RegtrustCAKeyMismatch for both URLs",
        Duration::from_secs(90),
        || {
            alerts = firing(&prom, "RegtrustCAKeyMismatch");
            alerts.len() == 2
        },
    );
    let urls: BTreeSet<String> = alerts
        .iter()
        .map(|a| a["url"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(urls.len(), 2, "one alert per URL: {alerts:?}");
    for port in [server.port, mirror.port] {
        assert!(
            urls.iter().any(|u| u.contains(&format!(":{port}"))),
            "no alert for the URL on port {port}: {urls:?}"
        );
    }
    for a in &alerts {
        for (k, v) in [
            ("namespace", "regtrust"),
            ("pod", "regtrust-x7k2p"),
            ("container", "regtrust"),
            ("endpoint", "metrics"),
            ("job", "regtrust/regtrust"),
            ("node", "n1"),
            ("instance", agent.addr.as_str()),
            ("registry", name.as_str()),
            ("severity", "critical"),
        ] {
            assert_eq!(a[k], v, "{k} in {a}");
        }
    }
    // The expected-CA guard speaks for the same node, and the incident has its own alert.
    wait_for(
        &prom,
        "RegtrustExpectedCANotTrusted",
        Duration::from_secs(30),
        || firing(&prom, "RegtrustExpectedCANotTrusted").len() == 1,
    );
    assert!(firing(&prom, "RegtrustRegistryUnreachable").is_empty());

    // Every rule has been evaluated, and none failed (a many-to-many join would show here).
    let mut health = Vec::new();
    wait_for(
        &prom,
        "every rule evaluated",
        Duration::from_secs(30),
        || {
            health = rule_health(&prom);
            !health.is_empty() && health.iter().all(|(_, h, _)| h != "unknown")
        },
    );
    for (rule, h, err) in &health {
        assert_eq!(h, "ok", "{rule}: {err}");
    }

    // No regtrust label was renamed by the scrape (honor_labels is false, as with the operator).
    let series = prom.api("/api/v1/series?match%5B%5D=%7B__name__%3D~%22regtrust_.%2B%22%7D");
    let all = series["data"].as_array().cloned().unwrap_or_default();
    assert!(!all.is_empty(), "no regtrust series: {series}");
    for s in &all {
        let obj = s.as_object().unwrap();
        assert!(
            obj.keys().all(|k| !k.starts_with("exported_")),
            "a regtrust label collides with a target label: {s}"
        );
        assert_eq!(s["endpoint"], "metrics", "{s}");
    }
}
