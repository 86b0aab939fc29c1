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
