//! Reload, not restart: on SIGHUP ([`super::Command::Reload`]) or a change of the config file,
//! the agent reads its settings again — the file, then the same flags as at start — and applies
//! what is valid. A file with any mistake changes nothing (never half an invalid file); settings
//! bound at start (the listener, its TLS and auth, the state dir, the log format) are kept and
//! logged as needing a restart. [`plan`] is the pure part: old and new settings → what to apply.

use std::path::PathBuf;

use crate::config::{key, AgentConfig, Overrides};

/// Where the running agent's settings came from, to read them the same way again.
#[derive(Debug, Clone)]
pub struct Source {
    /// The `--config` file, watched for changes (its directory: a ConfigMap swaps a symlink).
    pub file: Option<PathBuf>,
    /// The flags given at start; they still override the file.
    pub overrides: Overrides,
}

impl Source {
    /// Reads and validates the settings again. Blocking: reads the file.
    pub fn load(&self) -> Result<AgentConfig, Vec<crate::config::Error>> {
        AgentConfig::load(self.file.as_deref(), self.overrides.clone())
    }
}

/// Settings a running agent cannot change (they are bound at start).
pub const RESTART_ONLY: &[&str] = &[key::LISTEN, key::WEB, key::STATE_DIR, key::LOG_FORMAT];

/// What a reload does.
#[derive(Debug)]
pub struct Plan {
    /// The settings to run with: the new ones, with [`RESTART_ONLY`] ones kept from the old.
    pub cfg: AgentConfig,
    /// The keys whose value changes now.
    pub changed: Vec<&'static str>,
    /// The keys that changed in the file but keep their running value until a restart.
    pub needs_restart: Vec<&'static str>,
}

/// Compares the running settings with the ones just read.
pub fn plan(old: &AgentConfig, mut new: AgentConfig) -> Plan {
    let differs = [
        (key::HOST_ROOT, old.host_root != new.host_root),
        (key::RUNTIME, old.runtime != new.runtime),
        (key::HOSTS_DIR, old.hosts_dir != new.hosts_dir),
        (
            key::CONTAINERD_CONFIG,
            old.containerd_config != new.containerd_config,
        ),
        (key::DISCOVER, old.discover != new.discover),
        (key::INTERVAL, old.interval != new.interval),
        (key::JITTER, old.jitter != new.jitter),
        (key::TIMEOUT, old.timeout != new.timeout),
        (key::CONCURRENCY, old.concurrency != new.concurrency),
        (key::LISTEN, old.listen != new.listen),
        (key::LOG_FORMAT, old.log_format != new.log_format),
        (key::STATE_DIR, old.state_dir != new.state_dir),
        (key::PROC_DIR, old.proc_dir != new.proc_dir),
        (
            key::STAGE_MIN_INTERVAL,
            old.stage_min_interval != new.stage_min_interval,
        ),
        (key::WEB, old.web != new.web),
        (key::REGISTRY, old.registries != new.registries),
    ];
    let (mut changed, mut needs_restart) = (Vec::new(), Vec::new());
    for (k, _) in differs.into_iter().filter(|(_, d)| *d) {
        if RESTART_ONLY.contains(&k) {
            needs_restart.push(k);
        } else {
            changed.push(k);
        }
    }
    new.listen = old.listen;
    new.web = old.web.clone();
    new.state_dir = old.state_dir.clone();
    new.log_format = old.log_format;
    Plan {
        cfg: new,
        changed,
        needs_restart,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{LogFormat, RegistryConfig};
    use std::time::Duration;

    #[test]
    fn what_can_change_changes_and_the_rest_waits_for_a_restart() {
        let old = AgentConfig::default();
        let mut new = AgentConfig {
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(2),
            registries: vec![RegistryConfig::named("r.test")],
            listen: "127.0.0.1:1".parse().unwrap(),
            log_format: LogFormat::Json,
            state_dir: "/elsewhere".into(),
            ..AgentConfig::default()
        };
        new.web.bearer_token_file = Some("/token".into());
        let p = plan(&old, new);
        assert_eq!(p.changed, [key::INTERVAL, key::TIMEOUT, key::REGISTRY]);
        assert_eq!(
            p.needs_restart,
            [key::LISTEN, key::LOG_FORMAT, key::STATE_DIR, key::WEB]
        );
        assert_eq!(p.cfg.interval, Duration::from_secs(5));
        assert_eq!(p.cfg.registries.len(), 1);
        assert_eq!(p.cfg.listen, old.listen);
        assert_eq!(p.cfg.web, old.web);
        assert_eq!(p.cfg.state_dir, old.state_dir);
        assert_eq!(p.cfg.log_format, old.log_format);

        let same = plan(&old, AgentConfig::default());
        assert!(same.changed.is_empty() && same.needs_restart.is_empty());
        assert_eq!(same.cfg, old);
    }

    #[test]
    fn a_source_reads_the_file_again_under_the_same_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("regtrust.toml");
        std::fs::write(&file, "interval = \"30s\"\n").unwrap();
        let src = Source {
            file: Some(file.clone()),
            overrides: Overrides {
                timeout: Some("3s".into()),
                ..Overrides::default()
            },
        };
        let cfg = src.load().unwrap();
        assert_eq!(
            (cfg.interval, cfg.timeout),
            (Duration::from_secs(30), Duration::from_secs(3))
        );
        std::fs::write(&file, "interval = \"2s\"\n").unwrap();
        let errs = src.load().unwrap_err();
        assert_eq!(errs[0].key_name(), Some(key::TIMEOUT), "{errs:?}");
    }
}
