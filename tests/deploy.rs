//! The shipped files, checked with the real tools: Kubernetes manifests (kubernetes-validate,
//! offline schemas), alert rules (promtool check and unit tests), the systemd unit
//! (systemd-analyze verify and its security exposure), the node-problem-detector monitor, the
//! Dockerfile's shape, and every agent config they carry (regtrust's own validator).

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn kubernetes_manifests_validate_and_carry_valid_configs() {
    require("kubernetes-validate");
    let out = tmp();
    let (ok, text) = run(Command::new("python3")
        .arg(format!("{ROOT}/scripts/check-manifests.py"))
        .arg(out.path()));
    assert!(ok, "manifests:\n{text}");
    let base = std::fs::read_to_string(out.path().join("base-regtrust.toml")).unwrap();
    let cfg = regtrust::config::AgentConfig::from_toml(&base)
        .unwrap_or_else(|e| panic!("base ConfigMap: {e:?}"));
    assert_eq!(cfg.host_root, Path::new("/host"));
    assert!(
        cfg.registries.iter().all(|r| !r.stage),
        "the base must not stage"
    );
    let staging = std::fs::read_to_string(out.path().join("staging-regtrust.toml")).unwrap();
    let cfg = regtrust::config::AgentConfig::from_toml(&staging)
        .unwrap_or_else(|e| panic!("staging ConfigMap: {e:?}"));
    assert!(cfg
        .registries
        .iter()
        .all(|r| r.stage && r.expected_ca_file.is_some()));
    // The DaemonSet's args point at where the ConfigMap is mounted.
    let ds = std::fs::read_to_string(format!("{ROOT}/deploy/kubernetes/daemonset.yaml")).unwrap();
    assert!(
        ds.contains("\"--config\", \"/etc/regtrust/config/regtrust.toml\"")
            && ds.contains("mountPath: /etc/regtrust/config")
    );
    assert!(
        ds.contains("must not") || ds.contains("do NOT pull this image"),
        "the manifest must warn about its own image source"
    );
}

#[test]
fn alert_rules_pass_promtool_and_their_unit_tests() {
    require("promtool");
    let dir = format!("{ROOT}/deploy/prometheus");
    let (ok, text) = run(Command::new("promtool")
        .args(["check", "rules", "alerts.yaml"])
        .current_dir(&dir));
    assert!(ok, "{text}");
    let (ok, text) = run(Command::new("promtool")
        .args(["test", "rules", "alerts_test.yaml"])
        .current_dir(&dir));
    assert!(ok, "promtool test rules:\n{text}");
    let (ok, text) = run(Command::new("promtool")
        .args(["check", "config", "prometheus.yml"])
        .current_dir(&dir));
    assert!(ok, "{text}");
    let rules = std::fs::read_to_string(format!("{dir}/alerts.yaml")).unwrap();
    for alert in [
        "RegistryCAKeyMismatch",
        "RegistryUnreachableWithTLS",
        "RegistryExpectedCANotTrusted",
        "RegistryRuntimeTrustStale",
        "RegistryCertificateExpiringSoon",
        "RegtrustAgentDown",
    ] {
        assert!(
            rules.contains(&format!("alert: {alert}")),
            "{alert} missing"
        );
    }
}

#[test]
fn systemd_unit_verifies_and_is_hardened() {
    require("systemd-analyze");
    let t = tmp();
    // verify needs the ExecStart binary to exist: point a copy of the unit at the one just built.
    let unit = std::fs::read_to_string(format!("{ROOT}/systemd/regtrust.service")).unwrap();
    let path = t.path().join("regtrust.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/regtrust", env!("CARGO_BIN_EXE_regtrust")),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.trim().is_empty(),
        "systemd-analyze verify: {err}"
    );
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=yes"])
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let level: f64 = text
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for regtrust.service: ")
                .nth(1)
        })
        .and_then(|r| r.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{text}"));
    println!("systemd-analyze security exposure: {level}");
    assert!(level <= 2.0, "exposure {level} > 2.0:\n{text}");
    for key in [
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "ProtectHome=yes",
        "CapabilityBoundingSet=\n",
        "SystemCallFilter=@system-service",
        "RestrictAddressFamilies=",
    ] {
        assert!(unit.contains(key), "{key} missing");
    }
    assert!(
        unit.contains("#ReadWritePaths=/etc/containerd/certs.d"),
        "the staging ReadWritePaths line is documented"
    );
}

#[test]
fn node_problem_detector_monitor_runs_check_npd() {
    let text = std::fs::read_to_string(format!(
        "{ROOT}/deploy/node-problem-detector/regtrust-plugin-monitor.json"
    ))
    .unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["plugin"], "custom");
    assert_eq!(v["pluginConfig"]["max_output_length"], 80);
    assert_eq!(v["conditions"][0]["type"], "RegistryTrustProblem");
    let rule = &v["rules"][0];
    assert_eq!(rule["condition"], "RegistryTrustProblem");
    let args: Vec<&str> = rule["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(&args[..2], ["check", "--npd"]);
    // The arguments are ones regtrust accepts (a missing host root is "unknown", exit 2, not a usage error text).
    let out = Command::new(env!("CARGO_BIN_EXE_regtrust"))
        .args(&args)
        .output()
        .unwrap();
    let line = String::from_utf8_lossy(&out.stdout);
    assert!(
        matches!(out.status.code(), Some(0..=2))
            && line.lines().count() == 1
            && line.trim_end().chars().count() <= 80,
        "{line}"
    );
}

#[test]
fn dockerfile_is_multi_stage_static_non_root_and_shell_free() {
    let d = std::fs::read_to_string(format!("{ROOT}/Dockerfile")).unwrap();
    let stages: Vec<&str> = d.split("\nFROM ").collect();
    assert!(stages.len() >= 3, "a build stage and a final stage");
    let last = stages.last().unwrap();
    assert!(
        last.starts_with("gcr.io/distroless/static") || last.starts_with("scratch"),
        "final stage has no shell"
    );
    assert!(!last.contains("\nRUN "), "nothing runs in the final stage");
    assert!(last.contains("USER 65532"), "non-root by default");
    assert!(d.contains("x86_64-unknown-linux-musl"), "static binary");
}
