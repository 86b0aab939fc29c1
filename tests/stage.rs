//! Staging a corrected CA, with real parts: the real registry rotates, regtrust stages, the real
//! containerd (`ctr`) and containers/image (`skopeo`) then pull. Refusals change no byte on disk;
//! a writer killed at random moments never leaves a torn or loadable file; a failed confirmation
//! restores the backup.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;

/// Every entry under `root`: path → (kind, content or link target).
fn snapshot(root: &Path) -> BTreeMap<PathBuf, (String, Vec<u8>)> {
    fn walk(dir: &Path, out: &mut BTreeMap<PathBuf, (String, Vec<u8>)>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            let ft = e.file_type().unwrap();
            if ft.is_symlink() {
                out.insert(
                    p.clone(),
                    (
                        "link".into(),
                        std::fs::read_link(&p)
                            .unwrap()
                            .into_os_string()
                            .into_encoded_bytes(),
                    ),
                );
            } else if ft.is_dir() {
                out.insert(p.clone(), ("dir".into(), Vec::new()));
                walk(&p, out);
            } else {
                out.insert(p.clone(), ("file".into(), std::fs::read(&p).unwrap()));
            }
        }
    }
    let mut m = BTreeMap::new();
    walk(root, &mut m);
    m
}

fn stage_cli(node: &Node, args: &[&str]) -> (i32, serde_json::Value, String) {
    let root = node.root.path().display().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_regtrust"))
        .args([
            "stage",
            "--host-root",
            &root,
            "--timeout",
            "5",
            "--output",
            "json",
        ])
        .args(args)
        .output()
        .unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (
        out.status.code().unwrap_or(-1),
        json,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A registry serving a leaf from CA-B, a node trusting CA-A (same subject): the incident.
struct Incident {
    reg: Registry,
    ca_a: Issued,
    ca_b: Issued,
    node: Node,
}

fn incident() -> Incident {
    let ca_a = ca("registry.test");
    let ca_b = ca("registry.test");
    let lb = leaf(&ca_b);
    let reg = Registry::start(&[&lb.cert], Some(&lb.key));
    let node = Node::new();
    node.trust(&reg.addr(), &ca_a.pem());
    Incident {
        reg,
        ca_a,
        ca_b,
        node,
    }
}

#[test]
fn the_incident_remedied_end_to_end_with_ctr_and_skopeo() {
    let ca_a = ca("registry.test");
    let ca_b = ca("registry.test");
    let la = leaf(&ca_a);
    let reg = Registry::start(&[&la.cert], Some(&la.key));
    let name = reg.addr();
    let node = Node::new();
    node.trust(&name, &ca_a.pem());
    let expected = node.path("/etc/regtrust/expected/ca.pem");
    write(&expected, ca_b.pem());
    let ctd = Containerd::start();
    assert!(
        ctd.fetch(&node.hosts_dir(), node.root.path(), &name)
            .status
            .success(),
        "before the rotation ctr pulls"
    );

    // The registry rotates to CA-B: both runtimes fail.
    let lb = leaf(&ca_b);
    let _reg = reg.restart_with(&[&lb.cert], &lb.key);
    assert!(
        !ctd.fetch(&node.hosts_dir(), node.root.path(), &name)
            .status
            .success(),
        "ctr must fail before staging"
    );
    assert!(
        !skopeo_inspect(&node.containers_dir(&name), node.root.path(), &name)
            .status
            .success(),
        "skopeo must fail before staging"
    );

    // One agent per runtime, staging enabled, the expected CA file holds CA-B.
    let cfg = |runtime: &str, state: &str| {
        format!(
            "host_root = \"{}\"\nruntime = \"{runtime}\"\n{}state_dir = \"{}\"\ninterval = \"2s\"\ntimeout = \"1s\"\njitter = 0.0\nstage_min_interval = \"1s\"\n[[registry]]\nname = \"{name}\"\nexpected_ca_file = \"{}\"\nstage = true\n",
            node.root.path().display(),
            if runtime == "containerd" { "hosts_dir = \"/etc/containerd/certs.d\"\n" } else { "" },
            node.path(state).display(),
            expected.display()
        )
    };
    let mut a1 = AgentProc::start(node.root.path(), &cfg("containerd", "/state1"));
    let mut a2 = AgentProc::start(node.root.path(), &cfg("crio", "/state2"));
    for a in [&mut a1, &mut a2] {
        a.wait_until("staged and ok", Duration::from_secs(30), |a| {
            let m = a.metrics();
            metric(
                &m,
                "regtrust_stage_total",
                &[("registry", &name), ("result", "applied")],
            ) == Some(1.0)
                && metric(&m, "regtrust_probe_success", &[("registry", &name)]) == Some(1.0)
        });
        let log = std::fs::read_to_string(&a.log).unwrap();
        assert!(log.contains("staged a corrected CA"), "{log}");
    }
    // The real runtimes pull now.
    let f = ctd.fetch(&node.hosts_dir(), node.root.path(), &name);
    assert!(
        f.status.success(),
        "ctr after staging: {}",
        String::from_utf8_lossy(&f.stderr)
    );
    let s = skopeo_inspect(&node.containers_dir(&name), node.root.path(), &name);
    assert!(
        s.status.success(),
        "skopeo after staging: {}",
        String::from_utf8_lossy(&s.stderr)
    );
    // Bundle policy keep: the old CA stays beside the new one; the previous file is backed up.
    let staged = std::fs::read_to_string(node.hosts_dir().join(&name).join("ca.crt")).unwrap();
    assert!(
        staged.contains(ca_a.pem().lines().nth(1).unwrap())
            && staged.contains(ca_b.pem().lines().nth(1).unwrap())
    );
    let names: Vec<String> = std::fs::read_dir(node.hosts_dir().join(&name))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().any(|n| n.starts_with("ca.crt.regtrust-bak-")),
        "{names:?}"
    );
    assert!(node.containers_dir(&name).join("regtrust-ca.crt").exists());
}

#[test]
fn refusals_change_no_byte() {
    let inc = incident();
    let name = inc.reg.addr();
    let node = &inc.node;
    let before = snapshot(node.root.path());

    // Dry run: a plan, no write.
    let good = node.path("/candidates/b.pem");
    write(&good, inc.ca_b.pem());
    let (code, j, _) = stage_cli(node, &["--registry", &name, "--ca", good.to_str().unwrap()]);
    assert_eq!((code, j["outcome"].as_str()), (0, Some("dry_run")), "{j}");
    assert_eq!(
        j["target"],
        format!("/etc/containerd/certs.d/{name}/ca.crt")
    );
    assert_eq!(
        j["before"][0],
        regtrust::cert::sha256_hex(inc.ca_a.cert.der())
    );
    assert_eq!(
        j["after"].as_array().unwrap().len(),
        2,
        "keep: old and new: {j}"
    );
    let mut expect = before.clone();
    expect.insert(good.clone(), ("file".into(), std::fs::read(&good).unwrap()));
    expect.insert(good.parent().unwrap().to_path_buf(), ("dir".into(), vec![]));
    assert_eq!(
        snapshot(node.root.path()),
        expect,
        "a dry run wrote something"
    );

    // A candidate that does not verify the live chain.
    let wrong = node.path("/candidates/wrong.pem");
    write(&wrong, ca("registry.test").pem());
    let apply_ca = |f: &Path| {
        vec![
            "--apply".to_string(),
            "--registry".into(),
            name.clone(),
            "--ca".into(),
            f.display().to_string(),
        ]
    };
    assert_refused(
        node,
        &apply_ca(&wrong),
        "does not make the registry's live chain verify",
    );

    // A pin that matches nothing presented.
    let pin = vec![
        "--apply".to_string(),
        "--registry".into(),
        name.clone(),
        "--pin".into(),
        "ab".repeat(32),
    ];
    assert_refused(node, &pin, "never trusts on first use");

    // A hosts.toml `ca` outside the hosts dir (with an explicit https server too: a loopback
    // default host would be tried without verification).
    let dir = node.hosts_dir().join(&name);
    write(&node.path("/opt/ca/a.pem"), inc.ca_a.pem());
    write(&dir.join("hosts.toml"), format!("server = \"https://{name}\"\nca = \"/opt/ca/a.pem\"\n[host.\"https://{name}\"]\n  ca = \"/opt/ca/a.pem\"\n"));
    assert_refused(
        node,
        &apply_ca(&good),
        "outside the runtime's certificate directory",
    );

    // A symlinked host dir pointing outside the hosts dir; the target is a node path, as on a real
    // node (resolved under the host root).
    std::fs::remove_dir_all(&dir).unwrap();
    let outside = node.path("/elsewhere/dir");
    write(&outside.join("ca.crt"), inc.ca_a.pem());
    write(&outside.join("hosts.toml"), format!("server = \"https://{name}\"\nca = \"ca.crt\"\n[host.\"https://{name}\"]\n  ca = \"ca.crt\"\n"));
    std::os::unix::fs::symlink("/elsewhere/dir", &dir).unwrap();
    assert_refused(node, &apply_ca(&good), "symlink");
}

/// `regtrust stage ARGS` is refused, says `why`, and leaves every byte under the host root as it was.
fn assert_refused(node: &Node, args: &[String], why: &str) {
    let before = snapshot(node.root.path());
    let (code, j, _) = stage_cli(node, &args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!((code, j["outcome"].as_str()), (1, Some("refused")), "{j}");
    assert!(
        j["message"].as_str().unwrap_or_default().contains(why),
        "expected {why:?}: {j}"
    );
    assert_eq!(
        snapshot(node.root.path()),
        before,
        "a refusal changed the tree ({why})"
    );
}

#[test]
fn a_read_only_hosts_dir_is_a_clear_error_and_changes_nothing() {
    let inc = incident();
    let name = inc.reg.addr();
    let node = &inc.node;
    let good = node.path("/candidates/b.pem");
    write(&good, inc.ca_b.pem());
    let before = snapshot(node.root.path());
    let hosts = node.hosts_dir().display().to_string();
    let root = node.root.path().display().to_string();
    // A private mount namespace where the hosts dir is a read-only bind mount.
    let out = Command::new("unshare")
        .args([
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            "mount --bind \"$0\" \"$0\" && mount -o remount,bind,ro \"$0\" && exec \"$@\"",
        ])
        .arg(&hosts)
        .arg(env!("CARGO_BIN_EXE_regtrust"))
        .args([
            "stage",
            "--apply",
            "--host-root",
            &root,
            "--timeout",
            "5",
            "--output",
            "json",
            "--registry",
            &name,
            "--ca",
            good.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let j: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(j["outcome"], "failed", "{j}");
    assert!(
        j["message"]
            .as_str()
            .unwrap()
            .contains("read-only file system"),
        "{j}"
    );
    assert_eq!(snapshot(node.root.path()), before);
}

#[test]
fn a_new_host_dir_is_created_with_a_host_table_and_containerd_pulls() {
    // A name, not a loopback IP: containerd would skip verification for a loopback default host.
    let ns = Ns::new();
    let inc = incident();
    let name = format!("registry.test:{}", inc.reg.port);
    let node = Node::new();
    let good = node.path("/candidates/b.pem");
    write(&good, inc.ca_b.pem());
    let root = node.root.path().display().to_string();
    let stage = |apply: bool| {
        let mut c = ns.cmd(env!("CARGO_BIN_EXE_regtrust"));
        c.args([
            "stage",
            "--host-root",
            &root,
            "--hosts-dir",
            "/etc/containerd/certs.d",
            "--timeout",
            "5",
            "--output",
            "json",
            "--registry",
            &name,
            "--ca",
            good.to_str().unwrap(),
        ]);
        if apply {
            c.arg("--apply");
        }
        let out = c.output().unwrap();
        serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)))
    };
    let plan = stage(false);
    assert_eq!(plan["outcome"], "dry_run", "{plan}");
    let creates: Vec<&str> = plan["creates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        creates.contains(&format!("/etc/containerd/certs.d/{name}/").as_str())
            && creates.iter().any(|c| c.ends_with("hosts.toml")),
        "{creates:?}"
    );
    let applied = stage(true);
    assert_eq!(applied["outcome"], "applied", "{applied}");
    let toml = std::fs::read_to_string(node.hosts_dir().join(&name).join("hosts.toml")).unwrap();
    assert!(
        toml.contains(&format!("[host.\"https://{name}\"]")),
        "{toml}"
    );
    let ctd = Containerd::start();
    let out = ns
        .cmd("ctr")
        .arg("-a")
        .arg(&ctd.sock)
        .args(["-n", "test", "content", "fetch", "--hosts-dir"])
        .arg(node.hosts_dir())
        .arg(format!("{name}/{IMAGE}"))
        .envs(isolated_system_roots(node.root.path()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Run by `writer_killed_at_random_moments_never_tears_the_file` as a child process.
#[test]
#[ignore]
fn crash_child() {
    let Ok(dir) = std::env::var("REGTRUST_CRASH_DIR") else {
        return;
    };
    let a = std::fs::read(format!("{dir}/../a.pem")).unwrap();
    let b = std::fs::read(format!("{dir}/../b.pem")).unwrap();
    let d = regtrust::stage::write::Dir::open_root(Path::new(&dir)).unwrap();
    loop {
        d.replace("ca.crt", &a, true).unwrap();
        d.replace("ca.crt", &b, true).unwrap();
    }
}

#[test]
fn writer_killed_at_random_moments_never_tears_the_file() {
    let t = tmp();
    let dir = t.path().join("host");
    std::fs::create_dir(&dir).unwrap();
    // Two bundles of different sizes, so a torn write could not pass for either.
    let a = format!("{}{}", ca("A1").pem(), ca("A2").pem());
    let b = ca("B").pem().repeat(5);
    write(&t.path().join("a.pem"), &a);
    write(&t.path().join("b.pem"), &b);
    write(&dir.join("ca.crt"), &a);
    let mut seed: u64 = 0x9e3779b97f4a7c15 ^ std::process::id() as u64;
    for round in 0..40 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "crash_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("REGTRUST_CRASH_DIR", &dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(30 + seed % 70));
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
        let _ = child.wait();
        let now = std::fs::read_to_string(dir.join("ca.crt")).unwrap();
        assert!(
            now == a || now == b,
            "round {round}: ca.crt is neither bundle ({} bytes)",
            now.len()
        );
        let scan = regtrust::pem::scan_certs(now.as_bytes());
        assert!(scan.skipped.is_empty() && !scan.certs.is_empty());
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let n = entry.file_name().to_string_lossy().into_owned();
            let loaded = regtrust::stage::write::LOADED_SUFFIXES
                .iter()
                .any(|s| n.ends_with(s));
            assert!(
                n == "ca.crt" || !loaded,
                "round {round}: {n} would be loaded by a runtime"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_confirmation_restores_the_backup() {
    let inc = incident();
    let name = inc.reg.addr();
    let settings = regtrust::trust::TrustSettings {
        host_root: regtrust::hostroot::HostRoot::new(inc.node.root.path()),
        runtime: regtrust::trust::Runtime::Containerd,
        hosts_dir: Some(PathBuf::from("/etc/containerd/certs.d")),
        containerd_config: PathBuf::from("/etc/containerd/config.toml"),
        runtime_version: None,
    };
    let ps = regtrust::probe::ProbeSettings {
        timeout: Duration::from_secs(5),
        proxy: Default::default(),
        ..Default::default()
    };
    let target = inc.node.hosts_dir().join(&name).join("ca.crt");
    let original = std::fs::read(&target).unwrap();
    let cand = std::sync::Arc::new(regtrust::cert::Cert::from_der(inc.ca_b.cert.der()).unwrap());
    let plan = regtrust::stage::plan(
        &settings,
        &name,
        vec![cand],
        regtrust::stage::Policy::Replace,
    )
    .unwrap();
    plan.verify(&ps)
        .await
        .expect("CA-B verifies the live chain");
    let applied = plan.apply().unwrap();
    assert_ne!(std::fs::read(&target).unwrap(), original);
    // Before the re-probe the registry switches again, to CA-C.
    let ca_c = ca("registry.test");
    let lc = leaf(&ca_c);
    let reg = inc.reg;
    let _reg = tokio::task::spawn_blocking(move || reg.restart_with(&[&lc.cert], &lc.key))
        .await
        .unwrap();
    let rep = applied.confirm(&ps).await;
    assert_eq!(rep.outcome, regtrust::stage::Outcome::RolledBack, "{rep:?}");
    assert_eq!(
        rep.confirmed,
        Some(regtrust::diagnose::Reason::CaKeyMismatch)
    );
    assert_eq!(
        std::fs::read(&target).unwrap(),
        original,
        "the backup was not restored"
    );
}

/// The SHA-256 of every certificate in the PEM file at `p`.
fn fingerprints_in(p: &Path) -> Vec<String> {
    let data = std::fs::read(p).unwrap();
    regtrust::pem::scan_certs(&data)
        .certs
        .iter()
        .map(|d| regtrust::cert::sha256_hex(d))
        .collect()
}

/// Two `stage --apply` runs with different candidates started together: staging is serialised
/// by the lock and the second bundle is computed after the first write, so no CA is lost.
#[test]
fn overlapping_stagers_both_keep_their_ca() {
    let inc = incident();
    let name = inc.reg.addr();
    let node = &inc.node;
    let (x1, x2) = (ca("extra-1"), ca("extra-2"));
    let c1 = node.path("/candidates/one.pem");
    let c2 = node.path("/candidates/two.pem");
    // Both candidates verify the live chain (CA-B), each with its own extra CA.
    write(&c1, format!("{}{}", inc.ca_b.pem(), x1.pem()));
    write(&c2, format!("{}{}", inc.ca_b.pem(), x2.pem()));
    let root = node.root.path().display().to_string();
    let spawn = |cand: &Path| {
        Command::new("timeout")
            .arg("60")
            .arg(env!("CARGO_BIN_EXE_regtrust"))
            .args(["stage", "--apply", "--host-root", &root, "--timeout", "5"])
            .args(["--output", "json", "--registry", &name, "--ca"])
            .arg(cand)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let target = node.hosts_dir().join(&name).join("ca.crt");
    let original = std::fs::read(&target).unwrap();
    // Three rounds: in one, the second stager may start after the first finished (already ok).
    for round in 0..3 {
        std::fs::write(&target, &original).unwrap();
        overlap_round(&target, [spawn(&c1), spawn(&c2)], [&x1, &x2], &inc, round);
    }
}

/// Waits for two stagers of one round; what each applied, and the CA-A and CA-B, must be there.
fn overlap_round(
    target: &Path,
    procs: [std::process::Child; 2],
    extras: [&Issued; 2],
    inc: &Incident,
    round: usize,
) {
    let mut applied = Vec::new();
    for (p, extra) in procs.into_iter().zip(extras) {
        let out = p.wait_with_output().unwrap();
        let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        match j["outcome"].as_str() {
            Some("applied") => applied.push(regtrust::cert::sha256_hex(extra.cert.der())),
            Some("refused") => assert!(
                j["message"].as_str().unwrap().contains("already verifies"),
                "round {round}: {j}"
            ),
            _ => panic!("round {round}: {j}"),
        }
    }
    assert!(!applied.is_empty(), "round {round}: neither stager applied");
    let now = fingerprints_in(target);
    for want in applied.iter().chain([
        &regtrust::cert::sha256_hex(inc.ca_a.cert.der()),
        &regtrust::cert::sha256_hex(inc.ca_b.cert.der()),
    ]) {
        assert!(
            now.contains(want),
            "round {round}: {want} was lost: {now:?}"
        );
    }
}

/// A file only its owner reads keeps mode 0600 and its owner through staging, and so does its
/// backup.
#[test]
fn a_private_file_keeps_its_mode_and_owner() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let inc = incident();
    let name = inc.reg.addr();
    let node = &inc.node;
    let target = node.hosts_dir().join(&name).join("ca.crt");
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::chown(&target, Some(4321), Some(4322)).expect("chown (needs root, as CI)");
    let good = node.path("/candidates/b.pem");
    write(&good, inc.ca_b.pem());
    let (code, j, err) = stage_cli(
        node,
        &[
            "--apply",
            "--registry",
            &name,
            "--ca",
            good.to_str().unwrap(),
        ],
    );
    assert_eq!(
        (code, j["outcome"].as_str()),
        (0, Some("applied")),
        "{j} {err}"
    );
    let backup = node.path(j["backup"].as_str().unwrap());
    for f in [&target, &backup] {
        let m = std::fs::metadata(f).unwrap();
        assert_eq!(m.permissions().mode() & 0o7777, 0o600, "{}", f.display());
        assert_eq!((m.uid(), m.gid()), (4321, 4322), "{}", f.display());
    }
}

/// A rollback whose backup has vanished leaves the current file as it is (never an empty one) and
/// reports `failed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_without_its_backup_keeps_the_file_and_fails() {
    let inc = incident();
    let name = inc.reg.addr();
    let settings = regtrust::trust::TrustSettings {
        host_root: regtrust::hostroot::HostRoot::new(inc.node.root.path()),
        runtime: regtrust::trust::Runtime::Containerd,
        hosts_dir: Some(PathBuf::from("/etc/containerd/certs.d")),
        containerd_config: PathBuf::from("/etc/containerd/config.toml"),
        runtime_version: None,
    };
    let ps = regtrust::probe::ProbeSettings {
        timeout: Duration::from_secs(5),
        proxy: Default::default(),
        ..Default::default()
    };
    let target = inc.node.hosts_dir().join(&name).join("ca.crt");
    let cand = std::sync::Arc::new(regtrust::cert::Cert::from_der(inc.ca_b.cert.der()).unwrap());
    let plan = regtrust::stage::plan(
        &settings,
        &name,
        vec![cand],
        regtrust::stage::Policy::Replace,
    )
    .unwrap();
    let applied = plan.apply().unwrap();
    let written = std::fs::read(&target).unwrap();
    let backup = target.with_file_name(applied.backup().unwrap());
    std::fs::remove_file(&backup).unwrap();
    // The registry switches to CA-C before the re-probe, so the confirmation fails.
    let ca_c = ca("registry.test");
    let lc = leaf(&ca_c);
    let reg = inc.reg;
    let _reg = tokio::task::spawn_blocking(move || reg.restart_with(&[&lc.cert], &lc.key))
        .await
        .unwrap();
    let rep = applied.confirm(&ps).await;
    assert_eq!(rep.outcome, regtrust::stage::Outcome::Failed, "{rep:?}");
    assert!(rep.message.contains("has vanished"), "{}", rep.message);
    let now = std::fs::read(&target).unwrap();
    assert!(!now.is_empty(), "the rollback wrote an empty CA file");
    assert_eq!(now, written, "the rollback changed the file");
}

/// `stage --apply` killed with SIGKILL at random moments, 200 times (four registries, 50 each, in
/// parallel to keep the wall time down): the target is always the old or the new bundle byte for
/// byte, and nothing a runtime loads is left behind.
#[test]
fn stage_apply_killed_at_random_moments_leaves_old_or_new() {
    let workers: Vec<_> = (0..4u64)
        .map(|w| std::thread::spawn(move || kill_rounds(50, w)))
        .collect();
    let mut outcomes = [0usize; 2];
    for w in workers {
        let o = w.join().expect("a kill worker failed");
        outcomes[0] += o[0];
        outcomes[1] += o[1];
    }
    // Both ends were reached: kills landed before and after the write.
    assert!(outcomes[0] > 0 && outcomes[1] > 0, "{outcomes:?}");
}

/// `rounds` runs of `stage --apply` on one incident, each killed after a random delay up to a
/// little more than a whole run; returns how often the target was then [old, new].
fn kill_rounds(rounds: usize, worker: u64) -> [usize; 2] {
    let inc = incident();
    let name = inc.reg.addr();
    let node = &inc.node;
    let dir = node.hosts_dir().join(&name);
    let target = dir.join("ca.crt");
    let old = std::fs::read(&target).unwrap();
    let good = node.path("/candidates/b.pem");
    write(&good, inc.ca_b.pem());
    let root = node.root.path().display().to_string();
    let args = [
        "stage",
        "--apply",
        "--host-root",
        &root,
        "--timeout",
        "5",
        "--output",
        "json",
        "--policy",
        "replace",
        "--registry",
        &name,
        "--ca",
        good.to_str().unwrap(),
    ];
    let reset = || {
        let tmp = dir.join(".test-reset");
        std::fs::write(&tmp, &old).unwrap();
        std::fs::rename(&tmp, &target).unwrap();
    };
    // One run to the end: the new bundle, and how long a whole run takes.
    let t = std::time::Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_regtrust"))
        .args(args)
        .output()
        .unwrap();
    let full = t.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let new = std::fs::read(&target).unwrap();
    assert_ne!(new, old);
    let known = ["ca.crt", "hosts.toml"];
    let budget = std::time::Instant::now();
    let mut seed: u64 = 0x2545f4914f6cdd1d ^ (std::process::id() as u64) << 8 ^ worker;
    let mut outcomes = [0usize; 2];
    for round in 0..rounds {
        assert!(
            budget.elapsed() < Duration::from_secs(240),
            "round {round}: out of time"
        );
        if std::fs::read(&target).unwrap() == new {
            reset();
        }
        let mut child = Command::new(env!("CARGO_BIN_EXE_regtrust"))
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let micros = full.as_micros() as u64 * 12 / 10;
        std::thread::sleep(Duration::from_micros(seed % micros.max(1)));
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        let _ = child.wait();
        let now = std::fs::read(&target).unwrap();
        assert!(
            now == old || now == new,
            "{name} round {round}: ca.crt is neither bundle ({} bytes)",
            now.len()
        );
        outcomes[usize::from(now == new)] += 1;
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let n = entry.file_name().to_string_lossy().into_owned();
            let loaded = n == "hosts.toml"
                || regtrust::stage::write::LOADED_SUFFIXES
                    .iter()
                    .any(|s| n.ends_with(s));
            assert!(
                known.contains(&n.as_str()) || !loaded,
                "{name} round {round}: {n} would be loaded by a runtime"
            );
        }
    }
    outcomes
}
