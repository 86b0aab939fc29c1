//! containerd's config.toml → [`Layout`]: where the hosts directories are (CRI `registry.config_path`,
//! the transfer service's, the 2.x default), or the deprecated 1.x CRI `registry.mirrors` /
//! `registry.configs` when there is no config_path.
//!
//! Never does: read a hosts directory (that is the parent module's step), network I/O or writes.

use std::path::{Path, PathBuf};

use toml::{Table, Value};

use super::version::{DefaultConfigPath, Rules};
use crate::trust::{ConfigError, ConfigFileError, Finding, FindingKind, PullKind, TrustSettings};

/// containerd's 2.x default when no config_path is set.
pub const DEFAULT_V3_CONFIG_PATH: &str = "/etc/containerd/certs.d:/etc/docker/certs.d";
/// What regtrust assumes when there is no containerd config file at all.
pub const DEFAULT_HOSTS_DIR: &str = "/etc/containerd/certs.d";

/// The deprecated CRI registry settings, used only when `config_path` is empty.
#[derive(Debug, Clone, Default)]
pub(super) struct LegacyCri {
    /// registry host (or `*`) → mirror endpoints, in order.
    pub(super) mirrors: Vec<(String, Vec<String>)>,
    /// endpoint host → its `tls` table, when there is one.
    pub(super) configs: Vec<(String, Option<LegacyTls>)>,
    /// `registry.auths` is set (it makes 2.1+ CRI pull locally).
    pub(super) auths: bool,
}

/// `registry.configs.HOST.tls` (CRI `TLSConfig`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct LegacyTls {
    pub(super) ca_file: String,
    pub(super) cert_file: String,
    pub(super) key_file: String,
    pub(super) insecure_skip_verify: bool,
}

/// Where containerd finds registry configuration on this node.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    /// Hosts directories in search order (node paths).
    pub hosts_dirs: Vec<PathBuf>,
    pub(super) legacy: Option<LegacyCri>,
    pub findings: Vec<Finding>,
    /// Node path of the config file read, if any.
    pub config_file: Option<PathBuf>,
    /// The kind of pull modelled: which hosts the resolver tries.
    pub pull: PullKind,
    /// The containerd release whose rules apply.
    pub rules: Rules,
    /// CRI's image service refuses this configuration (it does not start): every pull fails so.
    pub config_error: Option<String>,
}

fn get<'a>(t: &'a Table, path: &[&str]) -> Option<&'a Value> {
    let (last, parents) = path.split_last()?;
    let mut cur = t;
    for p in parents {
        cur = cur.get(*p)?.as_table()?;
    }
    cur.get(*last)
}

fn non_empty_str(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// The CRI plugin's registry table for a config `version`, and the plugin's name.
fn cri_registry_key(version: i64) -> (&'static [&'static str], &'static str) {
    match version {
        3 => (
            &["plugins", "io.containerd.cri.v1.images", "registry"],
            "io.containerd.cri.v1.images",
        ),
        2 => (
            &["plugins", "io.containerd.grpc.v1.cri", "registry"],
            "io.containerd.grpc.v1.cri",
        ),
        _ => (&["plugins", "cri", "registry"], "cri"),
    }
}

/// `cri_key` + `leaf` as a lookup path.
fn sub_key<'a>(cri_key: &[&'a str], leaf: &'a str) -> Vec<&'a str> {
    let mut p = cri_key.to_vec();
    p.push(leaf);
    p
}

impl Layout {
    /// Reads containerd's configuration (or takes `--hosts-dir`).
    pub fn load(settings: &TrustSettings) -> Result<Layout, ConfigError> {
        let mut layout = Layout {
            rules: Rules::for_version(settings.runtime_version.as_deref()),
            ..Layout::default()
        };
        if let Some(dir) = &settings.hosts_dir {
            layout.hosts_dirs.push(dir.clone());
            return Ok(layout);
        }
        let cfg_path = &settings.containerd_config;
        let data = match settings.host_root.read(cfg_path) {
            Ok(d) => d,
            Err(e) if e.is_not_found() => {
                layout.hosts_dirs.push(PathBuf::from(DEFAULT_HOSTS_DIR));
                layout.findings.push(Finding::new(
                    FindingKind::NoContainerdConfig,
                    Some(cfg_path),
                    format!("no containerd config file; assuming hosts dir {DEFAULT_HOSTS_DIR}"),
                ));
                return Ok(layout);
            }
            Err(e) => {
                return Err(ConfigError::WithPath {
                    path: cfg_path.clone(),
                    err: ConfigFileError::Read(e),
                })
            }
        };
        layout.config_file = Some(cfg_path.clone());
        layout.apply_config(&data, cfg_path)?;
        Ok(layout)
    }

    /// Parses containerd's config.toml (`data`, read from `cfg_path`) as the newest modelled
    /// release reads it. Pure: the entry point the fuzzer uses.
    pub fn from_config(data: &[u8], cfg_path: &Path) -> Result<Layout, ConfigError> {
        Layout::from_config_as(data, cfg_path, Rules::default())
    }

    /// Parses containerd's config.toml as the release of `rules` reads it: where the hosts dirs
    /// are, or the deprecated CRI registry settings. Pure.
    pub fn from_config_as(
        data: &[u8],
        cfg_path: &Path,
        rules: Rules,
    ) -> Result<Layout, ConfigError> {
        let mut layout = Layout {
            config_file: Some(cfg_path.to_path_buf()),
            rules,
            ..Layout::default()
        };
        layout.apply_config(data, cfg_path)?;
        Ok(layout)
    }

    fn apply_config(&mut self, data: &[u8], cfg_path: &Path) -> Result<(), ConfigError> {
        let text = String::from_utf8_lossy(data);
        let table: Table = text
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::WithPath {
                path: cfg_path.to_path_buf(),
                err: ConfigFileError::Parse(e.to_string()),
            })?;
        let version = table
            .get("version")
            .and_then(Value::as_integer)
            .unwrap_or(1);
        let (cri_key, cri_plugin) = cri_registry_key(version);
        let legacy = legacy_cri(&table, cri_key);
        let raw = get(&table, &sub_key(cri_key, "config_path")).and_then(Value::as_str);
        let config_path = self.effective_config_path(raw, version, &legacy);
        self.note_transfer_config_path(&table, cfg_path);
        self.config_error = self.refusal(&legacy, &config_path);
        if config_path.is_empty() {
            self.use_legacy(legacy, cri_plugin, cfg_path);
        } else if self.rules.release.transfer_pull() && !local_pull(&table, version, &legacy) {
            self.use_transfer_path(&config_path, cfg_path);
        } else {
            self.use_config_path(&config_path, cfg_path);
        }
        Ok(())
    }

    /// CRI's `config_path` after the release's defaults (see [`DefaultConfigPath`]).
    fn effective_config_path(&self, raw: Option<&str>, version: i64, legacy: &LegacyCri) -> String {
        let default = DEFAULT_V3_CONFIG_PATH.to_string();
        match (self.rules.release.default_config_path(), raw) {
            (DefaultConfigPath::Empty, raw) => raw.unwrap_or("").to_string(),
            // 2.2.0-2.2.1: DefaultImageConfig, and migrateConfig fills "" of a v1/v2 config.
            (DefaultConfigPath::Always, None) => default,
            (DefaultConfigPath::Always, Some("")) if version < 3 => default,
            (DefaultConfigPath::Always, Some(p)) => p.to_string(),
            (DefaultConfigPath::WhenNoMirrors, Some(p)) if !p.is_empty() => p.to_string(),
            (DefaultConfigPath::WhenNoMirrors, _) if legacy.mirrors.is_empty() => default,
            (DefaultConfigPath::WhenNoMirrors, _) => String::new(),
        }
    }

    /// CRI's `ValidatePluginConfig` / `ValidateImageConfig`: what makes the image service refuse
    /// to start.
    fn refusal(&self, legacy: &LegacyCri, config_path: &str) -> Option<String> {
        if config_path.is_empty() {
            return None;
        }
        let tls = legacy.configs.iter().any(|(_, t)| t.is_some());
        let why = if !legacy.mirrors.is_empty() {
            "`mirrors` cannot be set when `config_path` is provided"
        } else if tls && self.rules.release.legacy_tls_configs() {
            "`configs.tls` cannot be set when `config_path` is provided"
        } else {
            return None;
        };
        Some(format!(
            "containerd {}'s CRI plugin refuses this config ({why}; config_path is {config_path:?}): no image can be pulled through CRI until one of them is removed",
            self.rules.release
        ))
    }

    /// The transfer service's own `config_path`: stored, never read (core/transfer/local).
    fn note_transfer_config_path(&mut self, table: &Table, cfg_path: &Path) {
        let transfer = get(
            table,
            &["plugins", "io.containerd.transfer.v1.local", "config_path"],
        );
        if let Some(p) = non_empty_str(transfer) {
            self.findings.push(Finding::new(
                FindingKind::ConfigPathDiffers,
                Some(cfg_path),
                format!("[plugins.\"io.containerd.transfer.v1.local\"] config_path {p:?} is not what CRI pulls use: containerd passes CRI's own registry config_path to the transfer service (core/transfer/local keeps this value unused)"),
            ));
        }
    }

    /// 2.1+ pulls through the transfer service, which takes config_path as one directory.
    fn use_transfer_path(&mut self, p: &str, cfg_path: &Path) {
        if p.contains(':') {
            self.findings.push(Finding::new(
                FindingKind::ConfigPathList,
                Some(cfg_path),
                format!("config_path {p:?} is a ':' list, and containerd {} pulls through the transfer service, which does not split it: it looks for host directories under one directory of that name, so none of them is used (containerd issues 12808, 12415); set use_local_image_pull = true or give one directory", self.rules.release),
            ));
        }
        self.hosts_dirs = vec![PathBuf::from(p)];
    }

    fn use_config_path(&mut self, p: &str, cfg_path: &Path) {
        if p.contains(':') {
            self.findings.push(Finding::new(
                FindingKind::ConfigPathList,
                Some(cfg_path),
                format!("config_path {p:?} is a ':' list: CRI's local pull path splits it, but the transfer service (CRI's default pull path from containerd 2.1) treats it as one directory that does not exist (containerd issues 12808, 12415)"),
            ));
        }
        self.hosts_dirs = p
            .split(':')
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .collect();
    }

    fn use_legacy(&mut self, legacy: LegacyCri, cri_plugin: &str, cfg_path: &Path) {
        if !legacy.mirrors.is_empty() || !legacy.configs.is_empty() {
            self.findings.push(Finding::new(
                FindingKind::DeprecatedRegistryConfig,
                Some(cfg_path),
                format!("[plugins.\"{cri_plugin}\".registry] mirrors/configs are deprecated (containerd 2.x no longer reads configs.*.tls; mirrors are to be removed in 2.3); move them to a hosts directory (config_path)"),
            ));
        }
        let tls = legacy.configs.iter().any(|(_, t)| t.is_some());
        if tls && !self.rules.release.legacy_tls_configs() {
            self.findings.push(Finding::new(
                FindingKind::DeprecatedRegistryConfig,
                Some(cfg_path),
                format!("containerd {} ignores registry.configs.*.tls (ca_file, cert_file, key_file, insecure_skip_verify): its legacy path uses a transport without TLS settings", self.rules.release),
            ));
        }
        self.legacy = Some(legacy);
    }
}

/// `CheckLocalImagePullConfigs` (2.1+): a setting the transfer service lacks makes CRI pull
/// locally; so does `use_local_image_pull`. A v1/v2 config's settings are migrated first.
fn local_pull(table: &Table, version: i64, legacy: &LegacyCri) -> bool {
    if !legacy.mirrors.is_empty() || !legacy.configs.is_empty() || legacy.auths {
        return true;
    }
    let (images, containerd): (&[&str], &[&str]) = if version >= 3 {
        (
            &["plugins", "io.containerd.cri.v1.images"],
            &["plugins", "io.containerd.cri.v1.images"],
        )
    } else {
        (
            &["plugins", "io.containerd.grpc.v1.cri"],
            &["plugins", "io.containerd.grpc.v1.cri", "containerd"],
        )
    };
    let at = |base: &[&str], key: &str| get(table, &sub_key(base, key));
    let is_true = |v: Option<&Value>| v.and_then(Value::as_bool) == Some(true);
    (version >= 3 && is_true(at(images, "use_local_image_pull")))
        || at(images, "max_concurrent_downloads")
            .and_then(Value::as_integer)
            .is_some_and(|n| n != 3)
        || is_true(at(images, "image_pull_with_sync_fs"))
        || is_true(at(containerd, "discard_unpacked_layers"))
        || at(containerd, "disable_snapshot_annotations").and_then(Value::as_bool) == Some(false)
}

/// `registry.mirrors.HOST.endpoint`, `registry.configs.HOST.tls` and whether `registry.auths`
/// is set, under `cri_key`.
fn legacy_cri(table: &Table, cri_key: &[&str]) -> LegacyCri {
    let mut legacy = LegacyCri::default();
    if let Some(m) = get(table, &sub_key(cri_key, "mirrors")).and_then(Value::as_table) {
        for (host, v) in m {
            let eps = v
                .get("endpoint")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            legacy.mirrors.push((host.clone(), eps));
        }
    }
    if let Some(c) = get(table, &sub_key(cri_key, "configs")).and_then(Value::as_table) {
        for (host, v) in c {
            let tls = v.get("tls").and_then(Value::as_table).map(|t| {
                let s = |k: &str| t.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                LegacyTls {
                    ca_file: s("ca_file"),
                    cert_file: s("cert_file"),
                    key_file: s("key_file"),
                    insecure_skip_verify: t
                        .get("insecure_skip_verify")
                        .and_then(Value::as_bool)
                        .unwrap_or(false),
                }
            });
            legacy.configs.push((host.clone(), tls));
        }
    }
    legacy.auths = get(table, &sub_key(cri_key, "auths"))
        .and_then(Value::as_table)
        .is_some_and(|t| !t.is_empty());
    legacy
}
