//! Bounds on work that outside input sets: a hosts.toml with thousands of `[host]` tables is
//! capped (with a finding) and the agent keeps answering `/healthz`; state entries of endpoints
//! gone for a week are pruned.

mod common;

use std::time::{Duration, Instant};

use common::*;

/// 5,000 `[host]` tables on loopback addresses nobody listens on (IP literals: no DNS).
fn huge_hosts_toml() -> String {
    (0..5000)
        .map(|i| {
            format!(
                "[host.\"https://127.0.{}.{}:1\"]\n  capabilities = [\"pull\", \"resolve\"]\n",
                10 + i / 250,
                1 + i % 250
            )
        })
        .collect()
}

#[test]
fn five_thousand_host_tables_are_capped_and_healthz_keeps_answering() {
    let node = Node::new();
    let registry = "many.test:5000";
    write(
        &node.hosts_dir().join(registry).join("hosts.toml"),
        huge_hosts_toml(),
    );
    // check: the finding, and only the capped number of endpoints.
    let mut args = check_args(node.root.path(), 2);
    args.push(registry.to_string());
    let run = regtrust(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let findings = run.registry(0)["findings"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let f = findings
        .iter()
        .find(|f| f["kind"] == "too_many_endpoints")
        .unwrap_or_else(|| panic!("no too_many_endpoints finding: {}", run.stdout));
    assert!(
        f["message"].as_str().unwrap().contains("5001 endpoints"),
        "{f}"
    );
    let probed = run.registry(0)["endpoints"].as_array().map(Vec::len);
    assert_eq!(
        probed,
        Some(regtrust::trust::MAX_ENDPOINTS_PER_REGISTRY),
        "{}",
        run.stdout
    );

    // The agent: every /healthz within the kubelet's 5 s while it probes round after round.
    let cfg = format!(
        "host_root = \"{}\"\nhosts_dir = \"/etc/containerd/certs.d\"\nstate_dir = \"{}\"\ninterval = \"2s\"\ntimeout = \"1500ms\"\njitter = 0.0\n",
        node.root.path().display(),
        node.path("/state").display()
    );
    let agent = AgentProc::start(node.root.path(), &cfg);
    let start = Instant::now();
    let mut answered = 0;
    while start.elapsed() < Duration::from_secs(12) {
        let t = Instant::now();
        let r = agent.get("/healthz");
        assert_eq!(
            r.as_ref().map(|(c, _)| *c),
            Some(200),
            "/healthz failed after {:?} (request {answered})",
            t.elapsed()
        );
        assert!(t.elapsed() < Duration::from_secs(5));
        answered += 1;
        std::thread::sleep(Duration::from_millis(200));
    }
    let m = agent.metrics();
    let series = m
        .lines()
        .filter(|l| l.starts_with("regtrust_probe_success{") && l.contains(registry))
        .count();
    assert_eq!(series, regtrust::trust::MAX_ENDPOINTS_PER_REGISTRY, "{m}");
    assert!(
        metric(
            &m,
            "regtrust_trust_findings",
            &[("kind", "too_many_endpoints")]
        )
        .unwrap_or(0.0)
            >= 1.0,
        "{m}"
    );
}

#[test]
fn state_entries_unseen_for_a_week_are_pruned_by_the_first_save() {
    let ca = ca("registry.test");
    let l = leaf(&ca);
    let reg = Registry::start(&[&l.cert], Some(&l.key));
    let name = reg.addr();
    let node = Node::new();
    node.trust(&name, &ca.pem());
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let entry = |at: i64| serde_json::json!({"issuer_id": "sha256:aa", "issuer_subject": "CN=x", "seen_at": at, "changes": 2});
    let state_file = node.path("/state/state.json");
    let planted = serde_json::json!({
        "version": 1,
        "endpoints": {
            "gone.test:5000 https://gone.test:5000/v2/": entry(now - 8 * 24 * 3600),
            "kept.test:5000 https://kept.test:5000/v2/": entry(now - 24 * 3600),
        }
    });
    write(&state_file, planted.to_string());
    let cfg = format!(
        "host_root = \"{}\"\nhosts_dir = \"/etc/containerd/certs.d\"\nstate_dir = \"{}\"\ninterval = \"2s\"\ntimeout = \"1500ms\"\njitter = 0.0\n",
        node.root.path().display(),
        node.path("/state").display()
    );
    let mut agent = AgentProc::start(node.root.path(), &cfg);
    agent.wait_until("the first save", Duration::from_secs(30), |_| {
        std::fs::read_to_string(&state_file).is_ok_and(|s| s.contains(&name))
    });
    let text = std::fs::read_to_string(&state_file).unwrap();
    assert!(
        !text.contains("gone.test"),
        "the week-old entry survived:\n{text}"
    );
    assert!(
        text.contains("kept.test"),
        "a day-old entry was pruned:\n{text}"
    );
    // The pruned endpoint's change counter is not exported again either.
    let m = agent.metrics();
    assert!(!m.contains("gone.test"), "{m}");
    assert!(m.contains("kept.test"), "{m}");
}

/// Peak resident memory of a process, in KiB.
fn peak_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// A state file just under its cap, of the tiniest entries (the worst case: most allocations per
/// byte), each with a change counter (a series): measured, +6 MiB peak over an empty state; the
/// unbounded parse cost +39 MiB for the same file (and ~110 MB under the old 16 MiB cap).
#[test]
fn a_state_file_just_under_its_cap_costs_memory_of_its_order() {
    let node = Node::new();
    let cfg = format!(
        "host_root = \"{}\"\nhosts_dir = \"/etc/containerd/certs.d\"\nstate_dir = \"{}\"\ninterval = \"2s\"\ntimeout = \"1500ms\"\njitter = 0.0\n",
        node.root.path().display(),
        node.path("/state").display()
    );
    let baseline = {
        let agent = AgentProc::start(node.root.path(), &cfg);
        std::thread::sleep(Duration::from_millis(500));
        peak_kib(agent.child.id())
    };
    // The worst case for memory: as many tiny entries as fit under the cap.
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut data = String::from("{\"version\":1,\"endpoints\":{");
    let cap = regtrust::agent::state::MAX_STATE_BYTES as usize;
    let mut i = 0;
    while data.len() < cap - 200 {
        if i > 0 {
            data.push(',');
        }
        data.push_str(&format!(
            "\"r{i} u\":{{\"issuer_id\":\"\",\"issuer_subject\":\"\",\"seen_at\":{now},\"changes\":1}}"
        ));
        i += 1;
    }
    data.push_str("}}");
    write(&node.path("/state/state.json"), &data);
    let agent = AgentProc::start(node.root.path(), &cfg);
    std::thread::sleep(Duration::from_millis(500));
    let planted = peak_kib(agent.child.id());
    let extra_mib = planted.saturating_sub(baseline) / 1024;
    eprintln!("state memory: baseline {baseline} KiB, planted {planted} KiB, {i} entries");
    assert!(
        extra_mib < 16,
        "a {} KiB state file of {i} entries cost {extra_mib} MiB more",
        data.len() / 1024
    );
}
