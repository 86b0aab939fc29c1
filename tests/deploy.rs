//! The shipped files, checked with the real tools: Kubernetes manifests (rendered by the real
//! kustomize, `kubectl kustomize`, then kubernetes-validate --strict, checkov, and
//! scripts/check-manifests.py for regtrust's own rules), alert rules (promtool check and unit
//! tests, and their conventions), the systemd unit (systemd-analyze verify and its security
//! exposure), the node-problem-detector monitor, the Dockerfile (hadolint, checkov, its shape), and
//! every agent config they carry (regtrust's own validator).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const OVERLAYS: [&str; 4] = ["base", "staging", "all-nodes", "monitoring"];

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

/// `kubectl kustomize DIR` (the real kustomize), written to OUT/NAME.yaml.
fn kustomize(dir: &Path, out: &Path, name: &str) -> PathBuf {
    let (ok, text) = run(Command::new("kubectl").arg("kustomize").arg(dir));
    assert!(ok, "kubectl kustomize {}:\n{text}", dir.display());
    let path = out.join(format!("{name}.yaml"));
    write(&path, &text);
    path
}

fn render_all(out: &Path) -> Vec<(&'static str, PathBuf)> {
    require("kubectl");
    OVERLAYS
        .iter()
        .map(|o| {
            let dir = Path::new(ROOT).join("deploy/kubernetes").join(o);
            (*o, kustomize(&dir, out, o))
        })
        .collect()
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn kubernetes_overlays_render_with_kustomize_validate_and_carry_valid_configs() {
    require("kubernetes-validate");
    let out = tmp();
    let rendered = render_all(out.path());
    for (name, path) in &rendered {
        let (ok, text) = run(Command::new("kubernetes-validate")
            .args(["--strict", "--quiet"])
            .arg(path));
        assert!(ok, "{name}: kubernetes-validate --strict:\n{text}");
    }
    let mut check = Command::new("python3");
    check
        .arg(format!("{ROOT}/scripts/check-manifests.py"))
        .arg(out.path());
    for (name, path) in &rendered {
        check.arg(format!("{name}={}", path.display()));
    }
    let (ok, text) = run(&mut check);
    assert!(ok, "check-manifests.py:\n{text}");

    for overlay in ["base", "staging", "all-nodes"] {
        let toml =
            std::fs::read_to_string(out.path().join(format!("{overlay}-regtrust.toml"))).unwrap();
        let cfg = regtrust::config::AgentConfig::from_toml(&toml)
            .unwrap_or_else(|e| panic!("{overlay} ConfigMap: {e:?}"));
        assert_eq!(cfg.host_root, Path::new("/host"), "{overlay}");
        let staging = overlay == "staging";
        assert!(
            cfg.registries
                .iter()
                .all(|r| r.stage == staging && r.expected_ca_file.is_some()),
            "{overlay}: stage must be {staging} for every registry"
        );
        // The args name the config where its volume is mounted.
        let ds = json(&out.path().join(format!("{overlay}-daemonset.json")));
        let c = &ds["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(
            c["args"],
            serde_json::json!(["run", "--config", "/etc/regtrust/config/regtrust.toml"])
        );
        assert!(c["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["name"] == "config" && m["mountPath"] == "/etc/regtrust/config"));
        assert_eq!(
            c["image"], "regtrust:0.1.0",
            "{overlay}: the base's images: tag"
        );
    }
    let ds =
        std::fs::read_to_string(format!("{ROOT}/deploy/kubernetes/base/daemonset.yaml")).unwrap();
    assert!(
        ds.contains("do NOT pull this image"),
        "the manifest must warn about its own image source"
    );
}

#[test]
fn a_config_edit_renames_the_generated_configmap_so_the_pods_roll() {
    let out = tmp();
    let copy = out.path().join("kubernetes");
    let src = Path::new(ROOT).join("deploy/kubernetes");
    for overlay in ["base", "staging"] {
        for entry in std::fs::read_dir(src.join(overlay)).unwrap() {
            let entry = entry.unwrap();
            let to = copy.join(overlay).join(entry.file_name());
            write(&to, std::fs::read(entry.path()).unwrap());
        }
    }
    let config_name = |dir: &Path, tag: &str| -> String {
        let text = std::fs::read_to_string(kustomize(dir, out.path(), tag)).unwrap();
        let names: Vec<&str> = text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("name: regtrust-config-"))
            .collect();
        // The ConfigMap's own name and the DaemonSet's volume: the same generated name.
        assert!(names.len() == 2 && names[0] == names[1], "{tag}: {names:?}");
        names[0].to_string()
    };
    require("kubectl");
    let before = config_name(&copy.join("base"), "before");
    let staging = config_name(&copy.join("staging"), "staging");
    std::fs::OpenOptions::new()
        .append(true)
        .open(copy.join("base/regtrust.toml"))
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"\n# edited\n"))
        .unwrap();
    let after = config_name(&copy.join("base"), "after");
    assert_ne!(before, after, "an edit must change the generated name");
    assert_ne!(before, staging, "staging replaces the config");
}

/// The overlay the README's "Installing" shows (a mirror, pinned by digest), rendered as written.
#[test]
fn the_readmes_digest_pinned_overlay_renders_as_written() {
    let readme = std::fs::read_to_string(format!("{ROOT}/README.md")).unwrap();
    let install = &readme[readme.find("## Installing").unwrap()..];
    let marker = "```yaml\n# deploy/kubernetes/mine/kustomization.yaml\n";
    let start = install
        .find(marker)
        .expect("the example overlay in Installing")
        + 8;
    let block = &install[start..start + install[start..].find("```").unwrap()];
    let out = tmp();
    let k = out.path().join("kubernetes");
    let src = Path::new(ROOT).join("deploy/kubernetes/base");
    for entry in std::fs::read_dir(&src).unwrap() {
        let entry = entry.unwrap();
        write(
            &k.join("base").join(entry.file_name()),
            std::fs::read(entry.path()).unwrap(),
        );
    }
    write(&k.join("mine/kustomization.yaml"), block);
    require("kubectl");
    let text = std::fs::read_to_string(kustomize(&k.join("mine"), out.path(), "mine")).unwrap();
    let digest = block
        .lines()
        .find_map(|l| l.trim().strip_prefix("digest: "))
        .unwrap();
    let want = format!("image: mirror.example.internal/platform/regtrust@{digest}");
    assert!(text.contains(&want), "{want} not in:\n{text}");
}

#[test]
fn checkov_finds_nothing_unjustified_in_the_manifests_and_the_dockerfile() {
    require("checkov");
    let out = tmp();
    let rendered = render_all(out.path());
    for (name, path) in rendered.iter().filter(|(n, _)| *n != "monitoring") {
        let (ok, text) = run(Command::new("checkov")
            .args([
                "--framework",
                "kubernetes",
                "--skip-download",
                "--compact",
                "--quiet",
                "-f",
            ])
            .arg(path));
        assert!(ok, "checkov {name}:\n{text}");
    }
    let (ok, text) = run(Command::new("checkov")
        .args([
            "--framework",
            "dockerfile",
            "--skip-download",
            "--compact",
            "--quiet",
            "-f",
        ])
        .arg(format!("{ROOT}/Dockerfile")));
    assert!(ok, "checkov Dockerfile:\n{text}");
}

#[test]
fn hadolint_passes_the_dockerfile() {
    require("hadolint");
    let (ok, text) = run(Command::new("hadolint").arg(format!("{ROOT}/Dockerfile")));
    assert!(ok, "hadolint:\n{text}");
}

/// GitHub's anchor for a heading: lower case, spaces to '-', other punctuation dropped.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
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
    let tests = std::fs::read_to_string(format!("{dir}/alerts_test.yaml")).unwrap();
    let readme = std::fs::read_to_string(format!("{ROOT}/README.md")).unwrap();
    let section = &readme[readme.find("## What to alert on").unwrap()..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
    let anchors: Vec<String> = section
        .lines()
        .filter_map(|l| l.strip_prefix("### "))
        .map(anchor)
        .collect();
    let names: Vec<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .collect();
    for alert in [
        "RegtrustCAKeyMismatch",
        "RegtrustInsecureSignature",
        "RegtrustRegistryUnreachable",
        "RegtrustExpectedCANotTrusted",
        "RegtrustExpectedCAUnreadable",
        "RegtrustExpectedCAAbsent",
        "RegtrustStagingFailed",
        "RegtrustTrustFindings",
        "RegtrustRuntimeTrustStale",
        "RegtrustCertificateExpiring",
        "RegtrustAgentDown",
        "RegtrustAgentAbsent",
        "RegtrustDaemonSetNotReady",
        "RegtrustProbeStale",
    ] {
        assert!(names.contains(&alert), "{alert} missing");
    }
    for alert in &names {
        assert!(alert.starts_with("Regtrust"), "{alert}: one prefix");
        assert!(
            tests.contains(&format!(
                "alertname: {alert}\n        exp_alerts:\n          - exp_labels:"
            )),
            "{alert}: no promtool test where it fires"
        );
        assert!(
            section.contains(&format!("`{alert}`")),
            "{alert}: not listed in README's What to alert on"
        );
    }
    // Per rule: a constant summary, a runbook_url whose anchor is a README heading.
    let blocks: Vec<&str> = rules.split("- alert: ").skip(1).collect();
    assert_eq!(blocks.len(), names.len());
    for block in blocks {
        let name = block.lines().next().unwrap().trim();
        let field = |key: &str| {
            block
                .lines()
                .find_map(|l| l.trim().strip_prefix(key))
                .unwrap_or_else(|| panic!("{name}: no {key}"))
                .trim()
                .trim_matches('"')
                .to_string()
        };
        let summary = field("summary: ");
        assert!(
            !summary.contains("{{"),
            "{name}: summary must be constant: {summary}"
        );
        field("severity: ");
        field("description: ");
        let url = field("runbook_url: ");
        let (base, frag) = url
            .split_once('#')
            .unwrap_or_else(|| panic!("{name}: {url}"));
        assert_eq!(
            base, "https://regtrust.invalid/README.md",
            "{name}: one base"
        );
        assert_eq!(frag, anchor(name), "{name}: the anchor is its own heading");
        assert!(
            anchors.iter().any(|a| a == frag),
            "{name}: README has no heading #{frag}"
        );
    }
    // Every regtrust series of the unit tests carries the target labels prometheus-operator
    // attaches, so a rule that collides with them (or drops them) fails there.
    for line in tests.lines().filter(|l| l.contains("series: 'regtrust_")) {
        for label in [
            "namespace=\"regtrust\"",
            "pod=\"",
            "container=\"regtrust\"",
            "endpoint=\"metrics\"",
            "instance=\"",
            "job=\"regtrust/regtrust\"",
        ] {
            assert!(line.contains(label), "{label} missing in {line}");
        }
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
    // An Event per failed check beside the permanent condition, from the same command.
    let temporary = &v["rules"][1];
    assert_eq!(temporary["type"], "temporary");
    assert_eq!(temporary["args"], rule["args"]);
    assert_eq!(temporary["path"], rule["path"]);
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
