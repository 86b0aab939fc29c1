//! Detection against the real containerd of this machine (its binary, and a process running it),
//! and the precedence of settings, process, binary and default.

use std::path::Path;
use std::process::Command;

use super::*;

/// `containerd --version` is the oracle for the version read from the binary.
fn containerd_says() -> String {
    let out = Command::new("/usr/bin/containerd")
        .arg("--version")
        .output()
        .expect("containerd is installed by the test setup");
    // "containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+deb12u3"
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(2)
        .expect("a version word")
        .to_string()
}

#[test]
fn binary_under_the_host_root() {
    let hr = HostRoot::new("/");
    let none = tempfile::tempdir().unwrap();
    let (info, findings) = detect(&hr, none.path(), Runtime::Containerd, &Overrides::default());
    assert_eq!(info.source, Source::Binary, "{findings:?}");
    assert_eq!(info.go_version, GoVersion::new(19, 8));
    assert_eq!(info.version.as_deref(), Some(containerd_says().as_str()));
    assert_eq!(info.version_source, Some(Source::Binary));
    assert_eq!(info.binary.as_deref(), Some("/usr/bin/containerd"));
    assert!(findings.is_empty(), "{findings:?}");
}

#[test]
fn the_running_process_wins() {
    // The real daemon, with a private root, state and socket, killed afterwards; the host
    // root has no binary, so only the process can tell.
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("config.toml");
    std::fs::write(&cfg, "version = 2\n").unwrap();
    let sock = tmp.path().join("c.sock");
    let mut child = Command::new("/usr/bin/containerd")
        .args(["--config", &cfg.display().to_string()])
        .args(["--root", &tmp.path().join("root").display().to_string()])
        .args(["--state", &tmp.path().join("state").display().to_string()])
        .args(["--address", &sock.display().to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("containerd starts");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut found = None;
    while std::time::Instant::now() < deadline {
        // Another containerd may run on this machine: accept the process, check ours exists.
        if Path::new(&format!("/proc/{}/exe", child.id())).exists() {
            found = find_pid(Path::new("/proc"), "containerd");
            if found.is_some() {
                break;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let hr = HostRoot::new("/nonexistent-host-root");
    let (info, _) = detect(
        &hr,
        Path::new("/proc"),
        Runtime::Containerd,
        &Overrides::default(),
    );
    let _ = child.kill();
    let _ = child.wait();
    assert!(found.is_some(), "containerd process not found");
    assert_eq!(info.source, Source::Process);
    assert_eq!(info.go_version, GoVersion::new(19, 8));
    assert_eq!(info.version.as_deref(), Some(containerd_says().as_str()));
    let shown = info.binary.unwrap_or_default();
    assert!(
        shown.starts_with("/proc/") && shown.ends_with("/exe (/usr/bin/containerd)"),
        "{shown}"
    );
}

#[test]
fn settings_replace_detection_and_nothing_known_is_the_newest_with_a_finding() {
    let hr = HostRoot::new("/nonexistent-host-root");
    let none = tempfile::tempdir().unwrap();
    let (info, findings) = detect(&hr, none.path(), Runtime::Crio, &Overrides::default());
    assert_eq!(
        (info.go_version, info.source),
        (GoVersion::NEWEST, Source::Default)
    );
    assert_eq!(info.version, None);
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0].kind, FindingKind::RuntimeGoUnknown);
    assert!(
        findings[0].message.contains("no crio process"),
        "{}",
        findings[0].message
    );

    let o = Overrides {
        runtime_version: Some("1.28.1".into()),
        go_version: Some(GoVersion::new(21, 4)),
        godebug: Some("x509sha1=1".into()),
    };
    let (info, findings) = detect(&HostRoot::new("/"), none.path(), Runtime::Containerd, &o);
    assert_eq!(
        (info.go_version, info.source),
        (GoVersion::new(21, 4), Source::Config)
    );
    assert_eq!(
        (info.version.as_deref(), info.version_source),
        (Some("1.28.1"), Some(Source::Config))
    );
    assert_eq!(info.env_godebug.as_deref(), Some("x509sha1=1"));
    assert!(findings.is_empty());
    // Only go_version set: the runtime version is still read from the binary.
    let o = Overrides {
        go_version: Some(GoVersion::new(17, 0)),
        ..Default::default()
    };
    let (info, findings) = detect(&HostRoot::new("/"), none.path(), Runtime::Containerd, &o);
    assert_eq!(info.version_source, Some(Source::Binary));
    assert_eq!(findings[0].kind, FindingKind::RuntimeGoNotModelled);
    let json = serde_json::to_value(&info).unwrap();
    assert_eq!(json["go_version"], "go1.17");
    assert_eq!(json["source"], "config");
}

#[test]
fn godebug_from_the_process_environment_overrides_the_build_defaults() {
    // A proc dir of our own: PID 4242 named containerd, running the real binary, with GODEBUG
    // in its environment (as a systemd drop-in `Environment=GODEBUG=tlsrsakex=1` sets it).
    let proc_dir = tempfile::tempdir().unwrap();
    let p = proc_dir.path().join("4242");
    std::fs::create_dir_all(&p).unwrap();
    std::fs::write(p.join("stat"), "4242 (containerd) S 1 4242").unwrap();
    std::fs::write(
        p.join("environ"),
        b"PATH=/usr/bin\0GODEBUG=tlsrsakex=1\0SECRET=x\0GODEBUG=tls3des=0\0",
    )
    .unwrap();
    std::os::unix::fs::symlink("/usr/bin/containerd", p.join("exe")).unwrap();
    let hr = HostRoot::new("/nonexistent-host-root");
    let (info, _) = detect(
        &hr,
        proc_dir.path(),
        Runtime::Containerd,
        &Overrides::default(),
    );
    assert_eq!(info.source, Source::Process);
    // The first GODEBUG counts (Go's syscall.copyenv drops later duplicates); nothing else of
    // the environment is kept.
    assert_eq!(info.env_godebug.as_deref(), Some("tlsrsakex=1"));
    // Debian's go1.19 containerd records no DefaultGODEBUG (go1.21 and later do).
    assert_eq!(info.default_godebug, None);
    let ps = crate::probe::ProbeSettings::for_runtime(
        std::time::Duration::from_secs(1),
        crate::probe::ProxyEnv::default(),
        &RuntimeInfo {
            go_version: GoVersion::new(23, 4),
            default_godebug: Some("tlsrsakex=0,tls3des=1".into()),
            ..info
        },
    );
    // crypto/tls (go1.22) tlsrsakex: the environment's 1 beats the defaults' 0; the defaults'
    // tls3des=1 (go1.23 drops 3DES) still holds.
    assert!(ps.offer().offers_suite(0x002f));
    assert!(ps.offer().offers_suite(0xc012));
    let plain = crate::probe::ProbeSettings {
        go: GoVersion::new(23, 4),
        ..Default::default()
    };
    assert!(!plain.offer().offers_suite(0x002f) && !plain.offer().offers_suite(0xc012));
    // Without a readable environ, nothing is invented.
    std::fs::remove_file(p.join("environ")).unwrap();
    let (info, _) = detect(
        &hr,
        proc_dir.path(),
        Runtime::Containerd,
        &Overrides::default(),
    );
    assert_eq!(info.env_godebug, None);
}
