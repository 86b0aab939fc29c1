//! The per-release tables, for the releases that cannot be installed here (the installed 1.6.20
//! is checked against ctr in tests/endpoint_rules.rs and tests/legacy_layout.rs). Each test
//! names the upstream file, function and tag it follows (github.com/containerd/containerd).

use std::path::{Path, PathBuf};

use super::*;
use crate::trust::testutil::{ca_pem, write};
use crate::trust::{FindingKind, TrustLoader, TrustSettings};

const D: &str = "/etc/containerd/certs.d";

fn settings(root: &Path, version: &str) -> TrustSettings {
    TrustSettings {
        host_root: HostRoot::new(root),
        runtime: Runtime::Containerd,
        hosts_dir: Some(PathBuf::from(D)),
        containerd_config: PathBuf::from("/etc/containerd/config.toml"),
        runtime_version: Some(version.into()),
    }
}

fn load(root: &Path, version: &str, reg: &str) -> RegistryTrust {
    TrustLoader::new(&settings(root, version))
        .unwrap()
        .registry(reg)
}

/// Loads `registry` through the config file `cfg` (no `--hosts-dir`).
fn load_cfg(root: &Path, version: &str, cfg: &str, reg: &str) -> (Layout, RegistryTrust) {
    write(root, "/etc/containerd/config.toml", cfg);
    let mut s = settings(root, version);
    s.hosts_dir = None;
    let layout = Layout::load(&s).unwrap();
    let rt = layout.registry(&HostRoot::new(root), reg);
    (layout, rt)
}

fn urls(rt: &RegistryTrust) -> Vec<String> {
    rt.endpoints.iter().map(Endpoint::url).collect()
}

fn kinds(rt: &RegistryTrust) -> Vec<FindingKind> {
    rt.findings.iter().map(|f| f.kind).collect()
}

fn no_fallback() -> Option<HttpFallback> {
    None
}

fn fallback(on_handshake_timeout: bool, on_port_error: bool) -> Option<HttpFallback> {
    Some(HttpFallback {
        on_handshake_timeout,
        on_port_error,
    })
}

#[test]
fn releases_parse_from_what_binaries_and_settings_say() {
    for (s, want) in [
        ("1.6.20~ds1", Release::new(1, 6, 20)),
        ("v2.1.3", Release::new(2, 1, 3)),
        ("2.0.0-rc.1", Release::new(2, 0, 0)),
        ("1.7", Release::new(1, 7, 0)),
        ("1.7.24-0ubuntu1", Release::new(1, 7, 24)),
    ] {
        assert_eq!(Release::parse(s), Some(want), "{s}");
    }
    for bad in ["", "v", "two", "1", "1.x"] {
        assert_eq!(Release::parse(bad), None, "{bad}");
    }
    // Unknown: the newest modelled rules, with a note; modelled: no note.
    let r = Rules::for_version(None);
    assert_eq!(r.release, Release::NEWEST);
    assert!(r.note().unwrap().contains("unknown"));
    assert!(Rules::for_version(Some("garbage")).note().is_some());
    assert!(Rules::for_version(Some("1.5.9")).note().is_some());
    assert!(Rules::for_version(Some("1.7.20")).note().is_none());
}

/// hosts.go `ConfigureHosts`, the default host for `docker.IsLocalhost`: v1.6.20 and v1.7.7
/// `DefaultScheme == ""` → `http` with skip_verify on any port; from v1.7.8 (35c7634e3) by port.
/// Then v1.7.7+ upgrades an `http` host with skip_verify to https with `HTTPFallback`.
#[test]
fn the_loopback_default_host_by_release() {
    let t = tempfile::tempdir().unwrap();
    #[rustfmt::skip]
    let cases: &[(&str, &str, &str, bool, Option<HttpFallback>)] = &[
        ("1.6.20", "127.0.0.1:5000", "http://127.0.0.1:5000/v2/", true, no_fallback()),
        ("1.6.20", "localhost", "http://localhost/v2/", true, no_fallback()),
        ("1.7.6", "localhost:443", "http://localhost:443/v2/", true, no_fallback()),
        ("1.7.7", "localhost", "https://localhost/v2/", true, fallback(false, false)),
        ("1.7.7", "localhost:80", "https://localhost:80/v2/", true, fallback(false, false)),
        ("1.7.8", "localhost", "https://localhost/v2/", true, no_fallback()),
        ("1.7.8", "localhost:443", "https://localhost:443/v2/", true, no_fallback()),
        ("1.7.8", "localhost:80", "http://localhost:80/v2/", false, no_fallback()),
        ("1.7.8", "[::1]:5000", "https://[::1]:5000/v2/", true, fallback(false, false)),
        ("1.7.16", "127.0.0.1:5000", "https://127.0.0.1:5000/v2/", true, fallback(true, false)),
        ("2.0.0", "127.0.0.1:5000", "https://127.0.0.1:5000/v2/", true, fallback(true, false)),
        ("2.2.2", "localhost:5000", "https://localhost:5000/v2/", true, fallback(true, false)),
    ];
    for (version, reg, url, skip, fb) in cases {
        let rt = load(t.path(), version, reg);
        let ep = &rt.endpoints[0];
        assert_eq!(ep.url(), *url, "{version} {reg}");
        assert_eq!(ep.skip_verify, *skip, "{version} {reg}");
        assert_eq!(ep.http_fallback, *fb, "{version} {reg}");
        assert_eq!(
            kinds(&rt).contains(&FindingKind::LoopbackInsecure),
            *skip,
            "{version} {reg}"
        );
    }
}

/// hosts.go `ConfigureHosts`, an `http://` host with TLS settings (`caCerts`, `clientPairs`,
/// `skipVerify`): v1.6.20 never upgrades; v1.7.7 (7779ce64e) on any port; v1.7.8 – v1.7.23
/// (`port != "" && port != "80"`); v1.7.24 (49c9f303b) and v2.x `port != "80"`, with
/// `isPortError` retrying a port-less host on 80. resolver.go `isTLSError`: the handshake
/// timeout from v1.7.16 (51c649d9d).
#[test]
fn an_http_host_with_tls_settings_by_release() {
    let t = tempfile::tempdir().unwrap();
    write(t.path(), &format!("{D}/r.test/ca.crt"), ca_pem("R"));
    let hosts = |host: &str, setting: &str| {
        write(
            t.path(),
            &format!("{D}/r.test/hosts.toml"),
            format!("[host.\"http://{host}\"]\n  {setting}\n"),
        );
    };
    #[rustfmt::skip]
    let cases: &[(&str, &str, &str, Option<HttpFallback>)] = &[
        ("1.6.20", "m.test:5000", "http://m.test:5000/v2/", no_fallback()),
        ("1.7.6", "m.test:5000", "http://m.test:5000/v2/", no_fallback()),
        ("1.7.7", "m.test", "https://m.test/v2/", fallback(false, false)),
        ("1.7.7", "m.test:80", "https://m.test:80/v2/", fallback(false, false)),
        ("1.7.8", "m.test", "http://m.test/v2/", no_fallback()),
        ("1.7.8", "m.test:80", "http://m.test:80/v2/", no_fallback()),
        ("1.7.8", "m.test:5000", "https://m.test:5000/v2/", fallback(false, false)),
        ("1.7.23", "m.test", "http://m.test/v2/", no_fallback()),
        ("1.7.24", "m.test", "https://m.test/v2/", fallback(true, true)),
        ("1.7.24", "m.test:5000", "https://m.test:5000/v2/", fallback(true, false)),
        ("2.0.0", "m.test", "https://m.test/v2/", fallback(true, true)),
        ("2.1.0", "m.test:80", "http://m.test:80/v2/", no_fallback()),
        ("2.2.2", "m.test", "https://m.test/v2/", fallback(true, true)),
    ];
    for setting in ["ca = \"ca.crt\"", "skip_verify = false"] {
        for (version, host, url, fb) in cases {
            hosts(host, setting);
            let rt = load(t.path(), version, "r.test");
            assert_eq!(rt.endpoints[0].url(), *url, "{version} {host} {setting}");
            assert_eq!(rt.endpoints[0].http_fallback, *fb, "{version} {host}");
        }
    }
    // `client` counts as a TLS setting; no setting at all keeps plain HTTP everywhere.
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["c".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    write(t.path(), &format!("{D}/r.test/c.cert"), cert.pem());
    write(t.path(), &format!("{D}/r.test/c.key"), key.serialize_pem());
    hosts("m.test", "client = [[\"c.cert\", \"c.key\"]]");
    let rt = load(t.path(), "2.0.0", "r.test");
    assert_eq!(rt.endpoints[0].url(), "https://m.test/v2/");
    assert!(!rt.endpoints[0].clients.is_empty());
    hosts("m.test:5000", "capabilities = [\"pull\", \"resolve\"]");
    for version in ["1.6.20", "1.7.7", "2.2.2"] {
        let rt = load(t.path(), version, "r.test");
        assert_eq!(rt.endpoints[0].url(), "http://m.test:5000/v2/", "{version}");
        assert_eq!(rt.endpoints[0].http_fallback, None);
    }
}

/// hosts.go `parseHostsFile`/`getSortedHosts`: v1.7.29 (go-toml v1) "invalid `host` tree"
/// without `[host]` tables → the legacy *.crt; v2.0.0 (go-toml v2, the unstable parser) finds no
/// table and uses the root `server` and `ca`. `dial_timeout` is a field from v2.1.0,
/// `referrers` a capability from v2.2.0; a wrong-typed known key fails `Unmarshal` everywhere.
#[test]
fn hosts_toml_keys_by_release() {
    let t = tempfile::tempdir().unwrap();
    write(t.path(), &format!("{D}/r.test/root.pem"), ca_pem("Root"));
    write(
        t.path(),
        &format!("{D}/r.test/legacy.crt"),
        ca_pem("Legacy"),
    );
    let file = |body: &str| write(t.path(), &format!("{D}/r.test/hosts.toml"), body);
    let subjects = |rt: &RegistryTrust| -> Vec<String> {
        rt.endpoints[0]
            .cas
            .iter()
            .map(|c| c.cert.subject.clone())
            .collect()
    };
    file("server = \"https://r.test\"\nca = \"root.pem\"\n");
    let rt = load(t.path(), "1.7.29", "r.test");
    assert_eq!(subjects(&rt), ["CN=Legacy"]);
    assert!(kinds(&rt).contains(&FindingKind::HostsTomlIgnored));
    for version in ["2.0.0", "2.2.2"] {
        let rt = load(t.path(), version, "r.test");
        assert_eq!(subjects(&rt), ["CN=Root"], "{version}");
        assert!(rt
            .findings
            .iter()
            .all(|f| f.kind != FindingKind::HostsTomlIgnored));
    }
    // (body, releases that use the file, releases that ignore it)
    let h = "[host.\"https://r.test\"]\n  ca = \"root.pem\"\n";
    let cases: &[(String, &[&str], &[&str])] = &[
        (
            format!("{h}  dial_timeout = 5\n"),
            &["1.6.20", "2.0.11"],
            &["2.1.0"],
        ),
        (
            format!("{h}  dial_timeout = \"soon\"\n"),
            &["2.0.0"],
            &["2.1.0", "2.2.2"],
        ),
        (format!("{h}  dial_timeout = \"5s\"\n"), &["2.1.0"], &[]),
        (
            format!("{h}  capabilities = [\"pull\", \"resolve\", \"referrers\"]\n"),
            &["2.2.0"],
            &["1.7.29", "2.1.9"],
        ),
        (
            format!("{h}  override_path = \"true\"\n"),
            &[],
            &["1.6.20", "2.2.2"],
        ),
        (format!("{h}  header = \"x\"\n"), &[], &["1.6.20", "2.2.2"]),
        (
            format!("{h}  header.x = [\"a\", 1]\n"),
            &[],
            &["1.6.20", "2.2.2"],
        ),
        (
            format!("{h}  header.x = [\"a\", \"b\"]\n  frobnicate = 1\n"),
            &["1.6.20", "2.2.2"],
            &[],
        ),
        (format!("server = 5\n{h}"), &[], &["1.6.20", "2.2.2"]),
    ];
    for (body, uses, ignores) in cases {
        file(body);
        for v in *uses {
            assert_eq!(
                subjects(&load(t.path(), v, "r.test")),
                ["CN=Root"],
                "{v}: {body}"
            );
        }
        for v in *ignores {
            let rt = load(t.path(), v, "r.test");
            assert_eq!(subjects(&rt), ["CN=Legacy"], "{v}: {body}");
            assert!(kinds(&rt).contains(&FindingKind::BadToml), "{v}: {body}");
        }
    }
}

/// CRI `config_path`: empty by default through v2.1 (`pkg/cri/config/config_unix.go`,
/// `internal/cri/config/config_unix.go`); v2.2.0–v2.2.1 `DefaultImageConfig` sets the list and
/// `plugins/cri/images/plugin.go` `migrateConfig` replaces a v1/v2 config's ""; from v2.2.2
/// (a20dead7c) the plugin sets it only when config_path is empty and no mirrors are set.
#[test]
fn cri_default_config_path_by_release() {
    let t = tempfile::tempdir().unwrap();
    let v2 = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\nconfig_path = \"\"\n";
    let v3 = "version = 3\n[plugins.'io.containerd.cri.v1.images'.registry]\nconfig_path = ''\n";
    let local = "[plugins.'io.containerd.cri.v1.images']\nuse_local_image_pull = true\n";
    let list = [
        PathBuf::from("/etc/containerd/certs.d"),
        PathBuf::from("/etc/docker/certs.d"),
    ];
    let dirs = |version: &str, cfg: &str| load_cfg(t.path(), version, cfg, "r.test").0.hosts_dirs;
    assert!(dirs("2.1.9", "version = 3\n").is_empty());
    assert!(dirs("1.7.29", v2).is_empty());
    assert_eq!(dirs("2.2.0", v2), [PathBuf::from(DEFAULT_V3_CONFIG_PATH)]);
    assert!(dirs("2.2.0", v3).is_empty());
    assert_eq!(dirs("2.2.2", v3), [PathBuf::from(DEFAULT_V3_CONFIG_PATH)]);
    assert_eq!(dirs("2.2.2", &format!("version = 3\n{local}")), list);
    // With mirrors: 2.2.2 keeps config_path empty (the legacy path); 2.2.0 sets the default and
    // then refuses mirrors beside a config_path (`ValidateImageConfig`).
    let mirrors = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry.mirrors.\"r.test\"]\nendpoint = [\"https://m.test\"]\n";
    let (l, rt) = load_cfg(t.path(), "2.2.2", mirrors, "r.test");
    assert!(l.config_error.is_none() && l.hosts_dirs.is_empty());
    assert_eq!(urls(&rt), ["https://m.test/v2/", "https://r.test/v2/"]);
    let (_, rt) = load_cfg(t.path(), "2.2.0", mirrors, "r.test");
    assert!(rt.config_error.unwrap().contains("`mirrors` cannot be set"));
    // 1.x: `configs.tls` beside a config_path is refused too (`ValidatePluginConfig`).
    let tls = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\nconfig_path = \"/d\"\n[plugins.\"io.containerd.grpc.v1.cri\".registry.configs.\"r.test\".tls]\ninsecure_skip_verify = true\n";
    let (_, rt) = load_cfg(t.path(), "1.6.20", tls, "r.test");
    assert!(rt
        .config_error
        .unwrap()
        .contains("`configs.tls` cannot be set"));
    let (_, rt) = load_cfg(t.path(), "2.0.0", tls, "r.test");
    assert!(rt.config_error.is_none());
}

/// v2.1+: CRI pulls through the transfer service (`internal/cri/server/images/image_pull.go`
/// `pullImageWithTransferService`: `registry.WithHostDir(ConfigPath)`, and `core/transfer/
/// registry/registry.go` `NewOCIRegistry`: one `HostDirFromRoot`, unsplit) unless
/// `CheckLocalImagePullConfigs` (`internal/cri/config/config.go`) finds a setting it lacks.
#[test]
fn the_transfer_service_takes_config_path_unsplit() {
    let t = tempfile::tempdir().unwrap();
    write(t.path(), "/b/r.test/ca.crt", ca_pem("InB"));
    let cfg =
        "version = 3\n[plugins.'io.containerd.cri.v1.images'.registry]\nconfig_path = '/a:/b'\n";
    let (l, rt) = load_cfg(t.path(), "2.1.0", cfg, "r.test");
    assert_eq!(l.hosts_dirs, [PathBuf::from("/a:/b")]);
    assert!(rt.endpoints[0].cas.is_empty(), "no host dir under '/a:/b'");
    assert!(l
        .findings
        .iter()
        .any(|f| f.kind == FindingKind::ConfigPathList && f.message.contains("transfer service")));
    for local in [
        "[plugins.'io.containerd.cri.v1.images']\nmax_concurrent_downloads = 5\n",
        "[plugins.'io.containerd.cri.v1.images']\ndisable_snapshot_annotations = false\n",
        "[plugins.'io.containerd.cri.v1.images']\nuse_local_image_pull = true\n",
    ] {
        let (l, rt) = load_cfg(t.path(), "2.1.0", &format!("{cfg}{local}"), "r.test");
        assert_eq!(
            l.hosts_dirs,
            [PathBuf::from("/a"), PathBuf::from("/b")],
            "{local}"
        );
        assert_eq!(rt.endpoints[0].cas.len(), 1, "{local}");
    }
    let (l, _) = load_cfg(t.path(), "2.0.11", cfg, "r.test");
    assert_eq!(l.hosts_dirs, [PathBuf::from("/a"), PathBuf::from("/b")]);
}

const CRI: &str = "plugins.\"io.containerd.grpc.v1.cri\".registry";

/// The legacy CRI path as v1.6.20 `pkg/cri/server/image_pull.go` `registryEndpoints` and
/// `registryHosts` run it.
#[test]
fn legacy_mirrors_as_1_6_reads_them() {
    let t = tempfile::tempdir().unwrap();
    let cfg = format!(
        "version = 2\n[{CRI}.mirrors.\"*\"]\nendpoint = [\"star.test\", \"http://plain.test:5000/custom\"]\n[{CRI}.mirrors.\"r.test\"]\nendpoint = [\"localhost:5000\", \"https://r.test\"]\n[{CRI}.mirrors.\"docker.io\"]\nendpoint = []\n"
    );
    // mirrors."*" for a registry without its own entry; addDefaultScheme, paths as written.
    let (l, rt) = load_cfg(t.path(), "1.6.20", &cfg, "other.test");
    assert_eq!(
        urls(&rt),
        [
            "https://star.test/v2/",
            "http://plain.test:5000/custom/",
            "https://other.test/v2/"
        ]
    );
    assert!(rt.endpoints.iter().all(|e| e.http_fallback.is_none()));
    assert!(!l
        .discover(&HostRoot::new(t.path()))
        .registries
        .contains(&"*".to_string()));
    // A mirror that is the registry: no default appended; a loopback mirror defaults to http.
    let (_, rt) = load_cfg(t.path(), "1.6.20", &cfg, "r.test");
    assert_eq!(
        urls(&rt),
        ["http://localhost:5000/v2/", "https://r.test/v2/"]
    );
    // An empty entry of its own still beats "*"; docker.io's default is registry-1.docker.io.
    let (_, rt) = load_cfg(t.path(), "1.6.20", &cfg, "docker.io");
    assert_eq!(urls(&rt), ["https://registry-1.docker.io/v2/"]);
}

/// `getTLSConfig` (v1.6.20 `pkg/cri/server/image_pull.go`): `ca_file` read errors fail, a file
/// without a certificate adds nothing (`AppendCertsFromPEM` unchecked); cert without key fails;
/// the pair is presented; an http endpoint keeps plain HTTP. v2.0.0 ignores `configs.*.tls`.
#[test]
fn legacy_configs_tls_as_1_6_reads_them() {
    let t = tempfile::tempdir().unwrap();
    write(t.path(), "/etc/certs/ca.pem", ca_pem("Legacy"));
    write(t.path(), "/etc/certs/empty.pem", "no certificate here\n");
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["c".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    write(t.path(), "/etc/certs/c.cert", cert.pem());
    write(t.path(), "/etc/certs/c.key", key.serialize_pem());
    let cfg = |tls: &str| {
        format!("version = 2\n[{CRI}.mirrors.\"r.test\"]\nendpoint = [\"http://m.test:5000\"]\n[{CRI}.configs.\"r.test\".tls]\n{tls}\n[{CRI}.configs.\"m.test:5000\".tls]\nca_file = \"/etc/certs/ca.pem\"\n")
    };
    let (_, rt) = load_cfg(t.path(), "1.6.20", &cfg("ca_file = \"/etc/certs/ca.pem\"\ncert_file = \"/etc/certs/c.cert\"\nkey_file = \"/etc/certs/c.key\""), "r.test");
    assert!(rt.config_error.is_none(), "{:?}", rt.config_error);
    assert_eq!(urls(&rt), ["http://m.test:5000/v2/", "https://r.test/v2/"]);
    assert_eq!(rt.endpoints[1].cas.len(), 1);
    assert!(!rt.endpoints[1].clients.is_empty());
    let (_, rt) = load_cfg(
        t.path(),
        "1.6.20",
        &cfg("ca_file = \"/etc/certs/empty.pem\""),
        "r.test",
    );
    assert!(rt.config_error.is_none(), "{:?}", rt.config_error);
    assert!(rt.endpoints[1].cas.is_empty());
    assert!(kinds(&rt).contains(&FindingKind::CaNoCert));
    let (_, rt) = load_cfg(
        t.path(),
        "1.6.20",
        &cfg("ca_file = \"/etc/certs/missing.pem\""),
        "r.test",
    );
    assert!(rt.config_error.unwrap().contains("failed to load CA file"));
    let (_, rt) = load_cfg(
        t.path(),
        "1.6.20",
        &cfg("cert_file = \"/etc/certs/c.cert\""),
        "r.test",
    );
    assert!(rt
        .config_error
        .unwrap()
        .contains("no corresponding key file"));
    let (l, rt) = load_cfg(
        t.path(),
        "2.0.0",
        &cfg("cert_file = \"/etc/certs/c.cert\""),
        "r.test",
    );
    assert!(rt.config_error.is_none());
    assert!(rt
        .endpoints
        .iter()
        .all(|e| e.cas.is_empty() && e.clients.is_empty()));
    assert!(l
        .findings
        .iter()
        .any(|f| f.kind == FindingKind::DeprecatedRegistryConfig && f.message.contains("ignores")));
}
