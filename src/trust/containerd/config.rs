//! containerd's config.toml → [`Layout`]: where the hosts directories are (CRI `registry.config_path`,
//! the transfer service's, the 2.x default), or the deprecated 1.x CRI `registry.mirrors` /
//! `registry.configs` when there is no config_path.
//!
//! Never does: read a hosts directory (that is the parent module's step), network I/O or writes.

use std::path::{Path, PathBuf};

use toml::{Table, Value};

use crate::trust::{ConfigError, ConfigFileError, Finding, FindingKind, PullKind, TrustSettings};

/// containerd's 2.x default when no config_path is set.
pub const DEFAULT_V3_CONFIG_PATH: &str = "/etc/containerd/certs.d:/etc/docker/certs.d";
/// What regtrust assumes when there is no containerd config file at all.
pub const DEFAULT_HOSTS_DIR: &str = "/etc/containerd/certs.d";

/// The deprecated 1.x CRI registry settings, used only when `config_path` is empty.
#[derive(Debug, Clone, Default)]
pub(super) struct LegacyCri {
    /// registry host → mirror endpoints, in order.
    pub(super) mirrors: Vec<(String, Vec<String>)>,
    /// endpoint host → (ca_file, insecure_skip_verify).
    pub(super) configs: Vec<(String, Option<String>, bool)>,
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
        let mut layout = Layout::default();
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

    /// Parses containerd's config.toml (`data`, read from `cfg_path`): where the hosts dirs are,
    /// or the deprecated CRI registry settings. Pure: the entry point the fuzzer uses too.
    pub fn from_config(data: &[u8], cfg_path: &Path) -> Result<Layout, ConfigError> {
        let mut layout = Layout {
            config_file: Some(cfg_path.to_path_buf()),
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
        match self.config_path(&table, cri_key, version, cfg_path) {
            Some(p) => self.use_config_path(&p, cfg_path),
            None => self.use_legacy(&table, cri_key, cri_plugin, cfg_path),
        }
        Ok(())
    }

    /// The config_path containerd uses: CRI's, else the transfer service's, else (v3) the default.
    fn config_path(
        &mut self,
        table: &Table,
        cri_key: &[&str],
        version: i64,
        cfg_path: &Path,
    ) -> Option<String> {
        let cri_path = non_empty_str(get(table, &sub_key(cri_key, "config_path")));
        let transfer_path = non_empty_str(get(
            table,
            &["plugins", "io.containerd.transfer.v1.local", "config_path"],
        ));
        if let (Some(a), Some(b)) = (&cri_path, &transfer_path) {
            if a != b {
                self.findings.push(Finding::new(
                    FindingKind::ConfigPathDiffers,
                    Some(cfg_path),
                    format!("CRI config_path {a:?} differs from the transfer service's {b:?}; image pulls through the transfer service (containerd 2.1+ CRI, ctr) use the latter — regtrust follows CRI's"),
                ));
            }
        }
        match (cri_path, transfer_path, version) {
            (Some(p), _, _) => Some(p),
            (None, Some(p), _) => Some(p),
            (None, None, 3) => Some(DEFAULT_V3_CONFIG_PATH.to_string()),
            (None, None, _) => None,
        }
    }

    fn use_config_path(&mut self, p: &str, cfg_path: &Path) {
        if p.contains(':') {
            self.findings.push(Finding::new(
                FindingKind::ConfigPathList,
                Some(cfg_path),
                format!("config_path {p:?} is a ':' list: the CRI pull path splits it, but the transfer service (default CRI pull path since containerd 2.1) treats it as one directory that does not exist (containerd issues 12808, 12415)"),
            ));
        }
        self.hosts_dirs = p
            .split(':')
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .collect();
    }

    fn use_legacy(&mut self, table: &Table, cri_key: &[&str], cri_plugin: &str, cfg_path: &Path) {
        let legacy = legacy_cri(table, cri_key);
        if !legacy.mirrors.is_empty() || !legacy.configs.is_empty() {
            self.findings.push(Finding::new(
                FindingKind::DeprecatedRegistryConfig,
                Some(cfg_path),
                format!("[plugins.\"{cri_plugin}\".registry] mirrors/configs are deprecated (removed in containerd 2.0); move them to a hosts directory (config_path)"),
            ));
        }
        self.legacy = Some(legacy);
    }
}

/// `registry.mirrors.HOST.endpoint` and `registry.configs.HOST.tls` under `cri_key`.
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
            let tls = v.get("tls");
            let ca = non_empty_str(tls.and_then(|t| t.get("ca_file")));
            let skip = tls
                .and_then(|t| t.get("insecure_skip_verify"))
                .and_then(Value::as_bool)
                .unwrap_or(false);
            legacy.configs.push((host.clone(), ca, skip));
        }
    }
    legacy
}
