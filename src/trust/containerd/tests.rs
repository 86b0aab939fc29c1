use std::fs;
use std::path::{Path, PathBuf};

use super::hosts_toml::is_go_duration;
use super::*;
use crate::trust::testutil::{ca_pem, write};
use crate::trust::{ConfigError, FindingKind, TrustLoader, TrustSettings};

fn settings(root: &Path) -> TrustSettings {
    TrustSettings {
        host_root: HostRoot::new(root),
        runtime: Runtime::Containerd,
        hosts_dir: Some(PathBuf::from("/etc/containerd/certs.d")),
        containerd_config: PathBuf::from("/etc/containerd/config.toml"),
        // The tests below follow containerd 1.6.20 (the differential oracle) unless they say.
        runtime_version: Some("1.6.20".into()),
    }
}

fn load(root: &Path, reg: &str) -> RegistryTrust {
    TrustLoader::new(&settings(root)).unwrap().registry(reg)
}

fn ca_subjects(ep: &Endpoint) -> Vec<String> {
    ep.cas.iter().map(|c| c.cert.subject.clone()).collect()
}

fn kinds(rt: &RegistryTrust) -> Vec<&str> {
    rt.findings.iter().map(|f| f.kind.as_str()).collect()
}

const D: &str = "/etc/containerd/certs.d";

#[test]
fn host_dir_lookup_order() {
    let t = tempfile::tempdir().unwrap();
    write(t.path(), &format!("{D}/_default/ca.crt"), ca_pem("Default"));
    assert_eq!(
        ca_subjects(&load(t.path(), "r.test:5000").endpoints[0]),
        ["CN=Default"]
    );
    write(
        t.path(),
        &format!("{D}/r.test:5000/ca.crt"),
        ca_pem("Colon"),
    );
    assert_eq!(
        ca_subjects(&load(t.path(), "r.test:5000").endpoints[0]),
        ["CN=Colon"]
    );
    write(
        t.path(),
        &format!("{D}/r.test_5000_/ca.crt"),
        ca_pem("Underscore"),
    );
    let rt = load(t.path(), "r.test:5000");
    assert_eq!(
        rt.host_dir.as_deref(),
        Some("/etc/containerd/certs.d/r.test_5000_")
    );
    assert_eq!(ca_subjects(&rt.endpoints[0]), ["CN=Underscore"]);
    // Without a port there is no HOST_PORT_ form.
    write(t.path(), &format!("{D}/plain.test/ca.crt"), ca_pem("Plain"));
    assert_eq!(
        ca_subjects(&load(t.path(), "plain.test").endpoints[0]),
        ["CN=Plain"]
    );
    assert_eq!(
        load(t.path(), "plain.test").endpoints[0].url(),
        "https://plain.test/v2/"
    );
}

#[test]
fn hosts_toml_entries_in_file_order_then_server() {
    let t = tempfile::tempdir().unwrap();
    write(t.path(), &format!("{D}/r.test/m2.crt"), ca_pem("M2"));
    write(t.path(), "/opt/ca/m1.pem", ca_pem("M1"));
    write(
        t.path(),
        &format!("{D}/r.test/hosts.toml"),
        r#"server = "https://r.test"
[host."https://zz-mirror:5000"]
  ca = "/opt/ca/m1.pem"
  capabilities = ["pull", "resolve"]
[host."aa-mirror/base"]
  ca = ["m2.crt"]
[host."https://push-only"]
  capabilities = ["push"]
"#,
    );
    let rt = load(t.path(), "r.test");
    let urls: Vec<_> = rt.endpoints.iter().map(|e| e.url()).collect();
    assert_eq!(
        urls,
        [
            "https://zz-mirror:5000/v2/",
            "https://aa-mirror/base/v2/",
            "https://r.test/v2/"
        ]
    );
    // Absolute ca: a node path, re-rooted; relative: relative to the host dir.
    assert_eq!(ca_subjects(&rt.endpoints[0]), ["CN=M1"]);
    assert_eq!(&*rt.endpoints[0].cas[0].source, "/opt/ca/m1.pem");
    assert_eq!(ca_subjects(&rt.endpoints[1]), ["CN=M2"]);
    assert!(rt.endpoints[2].cas.is_empty());
    assert!(kinds(&rt).contains(&"endpoint_not_for_pull"));
    assert!(rt.config_error.is_none());
}

#[test]
fn root_level_ca_applies_to_registry_itself_and_override_path() {
    let t = tempfile::tempdir().unwrap();
    write(t.path(), &format!("{D}/r.test:443/ca.crt"), ca_pem("Root"));
    write(
        t.path(),
        &format!("{D}/r.test:443/hosts.toml"),
        "ca = \"ca.crt\"\n[host.\"https://m.test/custom/api\"]\noverride_path = true\n",
    );
    let rt = load(t.path(), "r.test:443");
    assert_eq!(rt.endpoints[0].url(), "https://m.test/custom/api/");
    assert_eq!(rt.endpoints[1].url(), "https://r.test:443/v2/");
    assert_eq!(ca_subjects(&rt.endpoints[1]), ["CN=Root"]);
}

#[test]
fn falls_back_to_legacy_files_exactly_when_containerd_does() {
    for (case, hosts_toml) in [
        ("missing", None),
        ("empty", Some("")),
        ("unparseable", Some("[host.\"https://x\"\nca = ")),
        (
            "no host table",
            Some("server = \"https://r.test\"\nca = \"other.pem\"\n"),
        ),
        (
            "bad capability",
            Some("[host.\"https://r.test\"]\ncapabilities = [\"fly\"]\n"),
        ),
    ] {
        let t = tempfile::tempdir().unwrap();
        write(
            t.path(),
            &format!("{D}/r.test/legacy.crt"),
            ca_pem("Legacy"),
        );
        write(t.path(), &format!("{D}/r.test/other.pem"), ca_pem("Pem"));
        if let Some(h) = hosts_toml {
            write(t.path(), &format!("{D}/r.test/hosts.toml"), h);
        }
        let rt = load(t.path(), "r.test");
        assert_eq!(rt.endpoints.len(), 1, "{case}");
        assert_eq!(ca_subjects(&rt.endpoints[0]), ["CN=Legacy"], "{case}");
        assert!(
            kinds(&rt).contains(&"ignored_pem"),
            "{case}: {:?}",
            kinds(&rt)
        );
        if case == "unparseable" || case == "bad capability" {
            assert!(kinds(&rt).contains(&"bad_toml"), "{case}: {:?}", kinds(&rt));
        }
        if case == "no host table" {
            let f = rt
                .findings
                .iter()
                .find(|f| f.kind == FindingKind::HostsTomlIgnored)
                .expect(case);
            assert_eq!(
                f.path.as_deref(),
                Some("/etc/containerd/certs.d/r.test/hosts.toml")
            );
        }
    }
}

#[test]
fn valid_hosts_toml_means_crt_beside_it_is_unused() {
    let t = tempfile::tempdir().unwrap();
    write(t.path(), &format!("{D}/r.test/ca.crt"), ca_pem("Beside"));
    write(
        t.path(),
        &format!("{D}/r.test/hosts.toml"),
        "[host.\"https://r.test\"]\nca = \"missing.crt\"\n",
    );
    let rt = load(t.path(), "r.test");
    // hosts.go's words around Go's *PathError, with the node path (not Rust's io error text).
    assert_eq!(
        rt.config_error.as_deref(),
        Some("unable to read CA cert \"/etc/containerd/certs.d/r.test/missing.crt\": open /etc/containerd/certs.d/r.test/missing.crt: no such file or directory")
    );
    assert!(kinds(&rt).contains(&"ca_missing"));
    assert!(kinds(&rt).contains(&"ca_file_unused"));
}

#[test]
fn bad_files_are_findings_with_paths_never_panics() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("etc/containerd/certs.d");
    // garbage hosts.toml
    write(
        t.path(),
        &format!("{D}/garbage/hosts.toml"),
        b"\x00\xff\xfe not toml [[[",
    );
    write(t.path(), &format!("{D}/garbage/good.crt"), ca_pem("G"));
    let rt = load(t.path(), "garbage");
    assert!(kinds(&rt).contains(&"bad_toml"));
    assert_eq!(ca_subjects(&rt.endpoints[0]), ["CN=G"]);
    // binary ca.crt: containerd fails the pull (unable to load CA cert)
    write(
        t.path(),
        &format!("{D}/binary/ca.crt"),
        (0..4096u32).map(|i| (i % 256) as u8).collect::<Vec<_>>(),
    );
    let rt = load(t.path(), "binary");
    let f = rt
        .findings
        .iter()
        .find(|f| f.kind == FindingKind::CaNoCert)
        .unwrap();
    assert_eq!(
        f.path.as_deref(),
        Some("/etc/containerd/certs.d/binary/ca.crt")
    );
    assert_eq!(
        rt.config_error.as_deref(),
        Some("unable to load CA cert \"/etc/containerd/certs.d/binary/ca.crt\"")
    );
    // 10 MB file
    write(
        t.path(),
        &format!("{D}/huge/ca.crt"),
        vec![b'A'; 10 * 1024 * 1024],
    );
    let rt = load(t.path(), "huge");
    let f = rt
        .findings
        .iter()
        .find(|f| f.kind == FindingKind::CaUnreadable)
        .unwrap();
    assert!(f.message.contains("larger than"), "{}", f.message);
    // directory named ca.crt: skipped by containerd's legacy loader
    fs::create_dir_all(dir.join("dirca/ca.crt")).unwrap();
    let rt = load(t.path(), "dirca");
    assert!(rt.config_error.is_none());
    assert!(rt.endpoints[0].cas.is_empty());
    // dangling symlink named ca.crt: containerd tries to read it and fails the pull
    fs::create_dir_all(dir.join("dangling")).unwrap();
    std::os::unix::fs::symlink("/nope/ca.crt", dir.join("dangling/ca.crt")).unwrap();
    let rt = load(t.path(), "dangling");
    let f = rt
        .findings
        .iter()
        .find(|f| f.kind == FindingKind::CaMissing)
        .unwrap();
    assert_eq!(
        f.path.as_deref(),
        Some("/etc/containerd/certs.d/dangling/ca.crt")
    );
    // hosts.toml that is a directory: containerd cannot read it and fails
    fs::create_dir_all(dir.join("tomldir/hosts.toml")).unwrap();
    assert!(load(t.path(), "tomldir")
        .config_error
        .unwrap()
        .contains("hosts.toml"));
}

#[test]
fn default_hosts_docker_io_and_loopback() {
    let t = tempfile::tempdir().unwrap();
    let rt = load(t.path(), "docker.io");
    assert_eq!(rt.endpoints[0].url(), "https://registry-1.docker.io/v2/");
    let rt = load(t.path(), "127.0.0.1:5000");
    assert!(rt.endpoints[0].skip_verify);
    assert!(kinds(&rt).contains(&"loopback_insecure"));
    // An explicit https host entry is verified normally.
    write(
        t.path(),
        &format!("{D}/127.0.0.1:5000/hosts.toml"),
        "[host.\"https://127.0.0.1:5000\"]\n",
    );
    let rt = load(t.path(), "127.0.0.1:5000");
    assert!(!rt.endpoints[0].skip_verify);
    assert_eq!(rt.endpoints[0].url(), "https://127.0.0.1:5000/v2/");
}

fn with_config(root: &Path, cfg: &str) -> Result<Layout, ConfigError> {
    write(root, "/etc/containerd/config.toml", cfg);
    with_config_file_only(root)
}

/// [`with_config`] as containerd `version` reads it.
fn with_config_as(root: &Path, version: &str, cfg: &str) -> Result<Layout, ConfigError> {
    write(root, "/etc/containerd/config.toml", cfg);
    let mut s = settings(root);
    s.hosts_dir = None;
    s.runtime_version = Some(version.into());
    Layout::load(&s)
}

/// Loads the layout from whatever is at the config path now.
fn with_config_file_only(root: &Path) -> Result<Layout, ConfigError> {
    let mut s = settings(root);
    s.hosts_dir = None;
    Layout::load(&s)
}

#[test]
fn config_toml_v2_v3_transfer_and_lists() {
    let t = tempfile::tempdir().unwrap();
    let l = with_config(t.path(), "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\nconfig_path = \"/etc/containerd/certs.d\"\n").unwrap();
    assert_eq!(l.hosts_dirs, [PathBuf::from("/etc/containerd/certs.d")]);
    // 2.0: CRI's local pull splits the list (and the finding warns about 2.1's transfer service).
    let l = with_config_as(
        t.path(),
        "2.0.0",
        "version = 3\n[plugins.'io.containerd.cri.v1.images'.registry]\nconfig_path = '/a:/b'\n",
    )
    .unwrap();
    assert_eq!(l.hosts_dirs, [PathBuf::from("/a"), PathBuf::from("/b")]);
    assert!(l
        .findings
        .iter()
        .any(|f| f.kind == FindingKind::ConfigPathList));
    // 2.2 pulling locally: the default list, split.
    let l = with_config_as(
        t.path(),
        "2.2.2",
        "version = 3\n[plugins.'io.containerd.cri.v1.images']\nuse_local_image_pull = true\n",
    )
    .unwrap();
    assert_eq!(
        l.hosts_dirs,
        [
            PathBuf::from("/etc/containerd/certs.d"),
            PathBuf::from("/etc/docker/certs.d")
        ]
    );
    // The transfer service's own config_path is stored and never read: CRI uses its own (none).
    let l = with_config(
        t.path(),
        "version = 2\n[plugins.\"io.containerd.transfer.v1.local\"]\nconfig_path = \"/t\"\n",
    )
    .unwrap();
    assert!(l.hosts_dirs.is_empty(), "{:?}", l.hosts_dirs);
    assert!(l
        .findings
        .iter()
        .any(|f| f.kind == FindingKind::ConfigPathDiffers));
    assert!(matches!(
        with_config(t.path(), "version = = 2"),
        Err(ConfigError::WithPath {
            err: crate::trust::ConfigFileError::Parse(_),
            ..
        })
    ));
    // No config file at all: the default hosts dir.
    let t2 = tempfile::tempdir().unwrap();
    let mut s = settings(t2.path());
    s.hosts_dir = None;
    assert_eq!(
        Layout::load(&s).unwrap().hosts_dirs,
        [PathBuf::from(DEFAULT_HOSTS_DIR)]
    );
}

#[test]
fn colon_list_searches_dirs_in_order() {
    let t = tempfile::tempdir().unwrap();
    write(t.path(), "/b/r.test/ca.crt", ca_pem("InB"));
    let l = with_config(
        t.path(),
        "version = 3\n[plugins.'io.containerd.cri.v1.images'.registry]\nconfig_path = '/a:/b'\n",
    )
    .unwrap();
    let hr = HostRoot::new(t.path());
    assert_eq!(
        ca_subjects(&l.registry(&hr, "r.test").endpoints[0]),
        ["CN=InB"]
    );
    assert_eq!(l.discover(&hr).registries, ["r.test"]);
}

#[test]
fn deprecated_cri_ca_file_and_mirrors() {
    let t = tempfile::tempdir().unwrap();
    write(t.path(), "/etc/certs/reg.pem", ca_pem("Legacy"));
    let l = with_config(
        t.path(),
        r#"version = 2
[plugins."io.containerd.grpc.v1.cri".registry.mirrors."r.test:5000"]
  endpoint = ["https://mirror.test:6000"]
[plugins."io.containerd.grpc.v1.cri".registry.configs."r.test:5000".tls]
  ca_file = "/etc/certs/reg.pem"
"#,
    )
    .unwrap();
    assert!(l
        .findings
        .iter()
        .any(|f| f.kind == FindingKind::DeprecatedRegistryConfig));
    let hr = HostRoot::new(t.path());
    let rt = l.registry(&hr, "r.test:5000");
    let urls: Vec<_> = rt.endpoints.iter().map(|e| e.url()).collect();
    assert_eq!(
        urls,
        ["https://mirror.test:6000/v2/", "https://r.test:5000/v2/"]
    );
    assert_eq!(ca_subjects(&rt.endpoints[1]), ["CN=Legacy"]);
    assert_eq!(l.discover(&hr).registries, ["r.test:5000"]);
}

#[test]
fn discover_lists_host_dirs_except_default() {
    let t = tempfile::tempdir().unwrap();
    for d in ["_default", "a.test", "b.test_5000_", "c.test:443"] {
        fs::create_dir_all(t.path().join("etc/containerd/certs.d").join(d)).unwrap();
    }
    write(t.path(), &format!("{D}/not-a-dir.txt"), "x");
    let layout = Layout::load(&settings(t.path())).unwrap();
    assert_eq!(
        layout.discover(&HostRoot::new(t.path())).registries,
        ["a.test", "b.test:5000", "c.test:443"]
    );
}

#[test]
fn discover_skips_directories_that_are_not_registry_names() {
    let t = tempfile::tempdir().unwrap();
    let evil = "evil\x1b[2K\rOK  prod.registry:5000";
    for d in [
        "a.test",
        "a..b",
        "trailing.",
        "sp ace",
        evil,
        "r.test:99999",
        "x_99999_",
    ] {
        fs::create_dir_all(t.path().join("etc/containerd/certs.d").join(d)).unwrap();
    }
    let layout = Layout::load(&settings(t.path())).unwrap();
    let d = layout.discover(&HostRoot::new(t.path()));
    assert_eq!(d.registries, ["a.test"]);
    let mut skipped: Vec<_> = d
        .findings
        .iter()
        .map(|f| {
            assert_eq!(f.kind, FindingKind::InvalidHostDir);
            f.path.clone().unwrap()
        })
        .collect();
    skipped.sort();
    let mut want: Vec<_> = [
        "a..b",
        "trailing.",
        "sp ace",
        evil,
        "r.test:99999",
        "x_99999_",
    ]
    .iter()
    .map(|n| format!("{D}/{n}"))
    .collect();
    want.sort();
    assert_eq!(skipped, want);
    let f = d
        .findings
        .iter()
        .find(|f| f.path.as_deref() == Some(&format!("{D}/{evil}")))
        .unwrap();
    assert!(
        f.message.starts_with(
            "host directory \"evil\\x1b[2K\\rOK  prod.registry:5000\" in /etc/containerd/certs.d is skipped: "
        ),
        "{}",
        f.message
    );
    assert!(!f.message.chars().any(char::is_control), "{:?}", f.message);
}

#[test]
fn go_durations() {
    assert!(
        is_go_duration("10s")
            && is_go_duration("1m30s")
            && is_go_duration("250ms")
            && is_go_duration("0")
    );
    assert!(!is_go_duration("10") && !is_go_duration("fast") && !is_go_duration(""));
}

#[test]
fn config_errors_carry_their_path_and_say_what_is_wrong() {
    let t = tempfile::tempdir().unwrap();
    let e = with_config(t.path(), "version = = 2").unwrap_err();
    assert_eq!(e.path(), Path::new("/etc/containerd/config.toml"));
    assert!(
        e.to_string().starts_with(
            "containerd config /etc/containerd/config.toml is not valid TOML (containerd would not start): "
        ),
        "{e}"
    );
    // A directory where the config file should be: a read error naming the file.
    fs::remove_file(t.path().join("etc/containerd/config.toml")).unwrap();
    fs::create_dir(t.path().join("etc/containerd/config.toml")).unwrap();
    let e = with_config_file_only(t.path()).unwrap_err();
    assert!(matches!(
        &e,
        ConfigError::WithPath {
            err: crate::trust::ConfigFileError::Read(_),
            ..
        }
    ));
    assert_eq!(
        e.to_string(),
        "cannot read containerd config /etc/containerd/config.toml: is a directory"
    );
}

/// Runs `f` on a thread and fails the test if it does not return within 10 s (a FIFO read that
/// blocks would otherwise hang the test run instead of failing it).
fn promptly<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(std::time::Duration::from_secs(10))
        .expect("loading trust blocked (a FIFO was opened or read as a file)")
}

#[test]
fn a_fifo_as_ca_crt_or_hosts_toml_is_refused_promptly_naming_it() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("etc/containerd/certs.d");
    fs::create_dir_all(dir.join("fifo-ca")).unwrap();
    fs::create_dir_all(dir.join("fifo-hosts")).unwrap();
    let mode = nix::sys::stat::Mode::from_bits_truncate(0o644);
    nix::unistd::mkfifo(&dir.join("fifo-ca/ca.crt"), mode).unwrap();
    nix::unistd::mkfifo(&dir.join("fifo-hosts/hosts.toml"), mode).unwrap();
    let root = t.path().to_path_buf();
    let rt = promptly(move || load(&root, "fifo-ca"));
    let f = rt
        .findings
        .iter()
        .find(|f| f.kind == FindingKind::CaUnreadable)
        .unwrap();
    assert_eq!(
        f.path.as_deref(),
        Some("/etc/containerd/certs.d/fifo-ca/ca.crt")
    );
    // Go's open of a FIFO blocks: the pull hangs there; regtrust says so without opening it.
    assert!(
        f.message
            .contains("is a FIFO: the runtime's os.ReadFile blocks opening it"),
        "{}",
        f.message
    );
    assert!(rt.config_error.is_some());

    let root = t.path().to_path_buf();
    let rt = promptly(move || load(&root, "fifo-hosts"));
    let err = rt.config_error.unwrap();
    assert!(
        err.contains("/etc/containerd/certs.d/fifo-hosts/hosts.toml") && err.contains("FIFO"),
        "{err}"
    );
}

/// containerd `core/remotes/docker/resolver.go`, `Resolve`: a tag is resolved by hosts whose
/// capabilities include both pull and resolve (`filterHosts(HostCapabilityPull|Resolve)`, `Has` =
/// all bits); a digest is fetched from hosts with pull.
#[test]
fn a_pull_only_mirror_serves_digests_but_not_tags() {
    let t = tempfile::tempdir().unwrap();
    write(
        t.path(),
        &format!("{D}/r.test/hosts.toml"),
        r#"server = "https://r.test"
[host."https://pull-only:5000"]
  capabilities = ["pull"]
[host."https://resolve-only:5000"]
  capabilities = ["resolve"]
[host."https://both:5000"]
  capabilities = ["pull", "resolve"]
"#,
    );
    let urls = |kind| -> Vec<String> {
        let loader = TrustLoader::new(&settings(t.path()))
            .unwrap()
            .with_pull(kind);
        loader
            .registry("r.test")
            .endpoints
            .iter()
            .map(|e| e.url())
            .collect()
    };
    assert_eq!(
        urls(PullKind::Tag),
        ["https://both:5000/v2/", "https://r.test/v2/"]
    );
    assert_eq!(
        urls(PullKind::Digest),
        [
            "https://pull-only:5000/v2/",
            "https://both:5000/v2/",
            "https://r.test/v2/"
        ]
    );
    let rt = load(t.path(), "r.test");
    assert_eq!(
        kinds(&rt)
            .iter()
            .filter(|k| **k == "endpoint_not_for_this_pull")
            .count(),
        2,
        "{:?}",
        rt.findings
    );
}

#[test]
fn endpoints_beyond_the_cap_are_a_finding_not_work() {
    let t = tempfile::tempdir().unwrap();
    let tables: String = (0..MAX_ENDPOINTS_PER_REGISTRY + 10)
        .map(|i| {
            format!("[host.\"https://m{i}.test\"]\n  capabilities = [\"pull\", \"resolve\"]\n")
        })
        .collect();
    write(t.path(), &format!("{D}/r.test/hosts.toml"), tables);
    let rt = load(t.path(), "r.test");
    assert_eq!(rt.endpoints.len(), MAX_ENDPOINTS_PER_REGISTRY);
    assert_eq!(rt.endpoints[0].authority, "m0.test");
    let f = rt
        .findings
        .iter()
        .find(|f| f.kind == FindingKind::TooManyEndpoints)
        .expect("a too_many_endpoints finding");
    assert!(f.message.contains("75 endpoints"), "{}", f.message);
    // At the cap exactly: no finding.
    let tables: String = (0..MAX_ENDPOINTS_PER_REGISTRY - 1)
        .map(|i| format!("[host.\"https://m{i}.test\"]\n"))
        .collect();
    write(t.path(), &format!("{D}/r.test/hosts.toml"), tables);
    assert!(!kinds(&load(t.path(), "r.test")).contains(&"too_many_endpoints"));
}
