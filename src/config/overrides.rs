//! Command-line settings laid over the file's (`regtrust run --interval 30s …`), checked by the
//! same validators as the file's keys, so `--timeout 0` reads like `timeout = 0` with the flag as
//! its key.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::key;
use super::{flag, value, AgentConfig, Error, LogFormat, RegistryConfig};
use crate::trust::Runtime;

/// The flags given, as given: `None` (or empty) leaves the file's setting.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub host_root: Option<PathBuf>,
    pub runtime: Option<Runtime>,
    pub hosts_dir: Option<PathBuf>,
    /// Also drops the file's `hosts_dir`: the hosts dir is then read from this config.
    pub containerd_config: Option<PathBuf>,
    /// Watched in addition to the file's registries.
    pub registries: Vec<String>,
    pub listen: Option<SocketAddr>,
    /// A duration as in the file (`60s`, `5m`).
    pub interval: Option<String>,
    /// A duration as in the file (`10s`).
    pub timeout: Option<String>,
    pub state_dir: Option<PathBuf>,
    pub log_format: Option<LogFormat>,
}

impl Overrides {
    /// Sets each flag given on `cfg`; each bad one is a mistake keyed by its flag.
    pub fn apply(self, cfg: &mut AgentConfig, errs: &mut Vec<Error>) {
        let mut check = |k: &str, r: Result<(), String>| {
            if let Err(message) = r {
                errs.push(Error::key(flag(k), message));
            }
        };
        if let Some(p) = self.host_root {
            check(key::HOST_ROOT, value::path(p).map(|p| cfg.host_root = p));
        }
        if let Some(r) = self.runtime {
            cfg.runtime = r;
        }
        if let Some(p) = self.hosts_dir {
            check(
                key::HOSTS_DIR,
                value::path(p).map(|p| cfg.hosts_dir = Some(p)),
            );
        }
        if let Some(p) = self.containerd_config {
            let r = value::path(p).map(|p| {
                cfg.containerd_config = p;
                cfg.hosts_dir = None;
            });
            check(key::CONTAINERD_CONFIG, r);
        }
        for name in self.registries {
            let r = value::registry(&name).map(|name| {
                if !cfg.registries.iter().any(|x| x.name == name) {
                    cfg.registries.push(RegistryConfig::named(name));
                }
            });
            check(key::REGISTRY, r);
        }
        if let Some(a) = self.listen {
            cfg.listen = a;
        }
        if let Some(s) = self.interval {
            let r = value::parse_duration(&s).and_then(value::interval);
            check(key::INTERVAL, r.map(|d| cfg.interval = d));
        }
        if let Some(s) = self.timeout {
            let r = value::parse_duration(&s).and_then(value::timeout);
            check(key::TIMEOUT, r.map(|d| cfg.timeout = d));
        }
        if let Some(p) = self.state_dir {
            check(key::STATE_DIR, value::path(p).map(|p| cfg.state_dir = p));
        }
        if let Some(f) = self.log_format {
            cfg.log_format = f;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn apply(o: Overrides, toml: &str) -> (AgentConfig, Vec<Error>) {
        let mut cfg = AgentConfig::from_toml(toml).unwrap();
        let mut errs = Vec::new();
        o.apply(&mut cfg, &mut errs);
        (cfg, errs)
    }

    #[test]
    fn flags_replace_the_file_and_add_registries() {
        let o = Overrides {
            containerd_config: Some("/etc/alt/config.toml".into()),
            registries: vec!["a.test".into(), "b.test:5000".into()],
            interval: Some("5m".into()),
            timeout: Some("3s".into()),
            log_format: Some(LogFormat::Json),
            ..Overrides::default()
        };
        let (cfg, errs) = apply(
            o,
            "hosts_dir = \"/d\"\n[[registry]]\nname = \"a.test\"\nstage = true\n",
        );
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(
            cfg.hosts_dir, None,
            "--containerd-config replaces hosts_dir"
        );
        assert_eq!(cfg.containerd_config, PathBuf::from("/etc/alt/config.toml"));
        let names: Vec<_> = cfg
            .registries
            .iter()
            .map(|r| (r.name.as_str(), r.stage))
            .collect();
        assert_eq!(names, [("a.test", true), ("b.test:5000", false)]);
        assert_eq!(cfg.interval, Duration::from_secs(300));
        assert_eq!(cfg.timeout, Duration::from_secs(3));
        assert_eq!(cfg.log_format, LogFormat::Json);
    }

    #[test]
    fn a_bad_flag_reads_like_the_bad_key() {
        let o = Overrides {
            host_root: Some(PathBuf::new()),
            registries: vec!["https://r/".into()],
            interval: Some("soon".into()),
            timeout: Some("0".into()),
            ..Overrides::default()
        };
        let (_, errs) = apply(o, "");
        let flags: Vec<_> = errs.iter().filter_map(Error::key_name).collect();
        assert_eq!(
            flags,
            ["--host-root", "--registry", "--interval", "--timeout"]
        );
        for (flag, key) in [
            ("--interval", "interval = \"soon\""),
            ("--timeout", "timeout = 0"),
        ] {
            let from_file = AgentConfig::from_toml(key).unwrap_err()[0].to_string();
            let from_flag = errs
                .iter()
                .find(|e| e.key_name() == Some(flag))
                .unwrap()
                .to_string();
            assert_eq!(
                from_flag.strip_prefix(flag),
                from_file.strip_prefix(&flag[2..]),
                "{from_flag} / {from_file}"
            );
        }
    }
}
