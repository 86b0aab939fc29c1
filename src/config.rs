//! The agent's settings: defaults as named constants, a TOML file validated as a whole (every bad
//! key or value reported at once, with its path, so a person fixes all mistakes in one go), and
//! command-line overrides for the simple case.
//!
//! Never does: network I/O. Reads only the config file it is given.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::{Table, Value};

use crate::hostroot::HostRoot;
use crate::trust::{Runtime, TrustSettings, DEFAULT_CONTAINERD_CONFIG};

pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
/// ±20 % per registry, so a fleet of nodes does not probe a registry in lockstep.
pub const DEFAULT_JITTER: f64 = 0.2;
pub const DEFAULT_TIMEOUT: Duration = crate::probe::DEFAULT_TIMEOUT;
pub const DEFAULT_CONCURRENCY: usize = 16;
/// All interfaces: Prometheus scrapes the node from elsewhere (the DaemonSet uses hostNetwork).
pub const DEFAULT_LISTEN: &str = "0.0.0.0:9823";
pub const DEFAULT_STATE_DIR: &str = "/var/lib/regtrust";
pub const DEFAULT_PROC_DIR: &str = "/proc";
/// Smallest interval accepted: below this the agent would be a load test.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// Largest interval accepted: a day between probes is already no monitoring (and bounds keep
/// every `now + interval` far from overflow).
pub const MAX_INTERVAL: Duration = Duration::from_secs(24 * 3600);
/// Largest per-probe timeout accepted.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(600);
/// Largest stage_min_interval accepted.
pub const MAX_STAGE_MIN_INTERVAL: Duration = Duration::from_secs(30 * 24 * 3600);
/// At most one staging attempt per registry this often, so a flapping registry cannot make the
/// agent rewrite files in a loop.
pub const DEFAULT_STAGE_MIN_INTERVAL: Duration = Duration::from_secs(600);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// One registry the agent watches.
#[derive(Debug, Clone, PartialEq)]
pub struct RegistryConfig {
    pub name: String,
    /// A PEM bundle in the agent's own filesystem (e.g. a mounted ConfigMap) — not a node path.
    pub expected_ca_file: Option<PathBuf>,
    /// Pinned SHA-256 fingerprints (lowercase hex) of expected CAs.
    pub expected_ca_sha256: Vec<String>,
    /// Stage a corrected CA when allowed (see `stage`).
    pub stage: bool,
}

/// Protection of the metrics/status listener, after Prometheus' web configuration: TLS, and a
/// bearer token or basic-auth users with bcrypt hashes. `/healthz` and `/readyz` stay open (kubelet
/// probes carry no credentials); `/metrics` and `/` need them when any is set.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WebConfig {
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    pub bearer_token_file: Option<PathBuf>,
    /// user → bcrypt hash (`$2y$…`, as `htpasswd -B` makes).
    pub basic_auth_users: Vec<(String, String)>,
}

impl WebConfig {
    pub fn requires_auth(&self) -> bool {
        self.bearer_token_file.is_some() || !self.basic_auth_users.is_empty()
    }
}

/// Validated agent settings.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub host_root: PathBuf,
    pub runtime: Runtime,
    pub hosts_dir: Option<PathBuf>,
    pub containerd_config: PathBuf,
    /// Also check every host directory found (rescanned when the hosts dir changes).
    pub discover: bool,
    pub registries: Vec<RegistryConfig>,
    pub interval: Duration,
    pub jitter: f64,
    pub timeout: Duration,
    pub concurrency: usize,
    pub listen: SocketAddr,
    pub log_format: LogFormat,
    pub state_dir: PathBuf,
    /// Where the runtime's process is visible (the node's /proc: hostPID in a DaemonSet).
    pub proc_dir: PathBuf,
    /// Least time between two staging attempts for one registry.
    pub stage_min_interval: Duration,
    pub web: WebConfig,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            host_root: PathBuf::from("/"),
            runtime: Runtime::Containerd,
            hosts_dir: None,
            containerd_config: PathBuf::from(DEFAULT_CONTAINERD_CONFIG),
            discover: true,
            registries: Vec::new(),
            interval: DEFAULT_INTERVAL,
            jitter: DEFAULT_JITTER,
            timeout: DEFAULT_TIMEOUT,
            concurrency: DEFAULT_CONCURRENCY,
            listen: DEFAULT_LISTEN
                .parse()
                .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 9823))),
            log_format: LogFormat::Text,
            state_dir: PathBuf::from(DEFAULT_STATE_DIR),
            proc_dir: PathBuf::from(DEFAULT_PROC_DIR),
            stage_min_interval: DEFAULT_STAGE_MIN_INTERVAL,
            web: WebConfig::default(),
        }
    }
}

impl AgentConfig {
    pub fn trust_settings(&self) -> TrustSettings {
        TrustSettings {
            host_root: HostRoot::new(&self.host_root),
            runtime: self.runtime,
            hosts_dir: self.hosts_dir.clone(),
            containerd_config: self.containerd_config.clone(),
        }
    }

    /// Reads and validates a config file; all problems at once.
    pub fn from_file(path: &Path) -> Result<AgentConfig, Vec<String>> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| vec![format!("{}: cannot read: {e}", path.display())])?;
        Self::from_toml(&text).map_err(|errs| {
            errs.into_iter()
                .map(|e| format!("{}: {e}", path.display()))
                .collect()
        })
    }

    /// Parses and validates TOML text.
    pub fn from_toml(text: &str) -> Result<AgentConfig, Vec<String>> {
        let table: Table = text
            .parse()
            .map_err(|e: toml::de::Error| vec![format!("not valid TOML: {e}")])?;
        let mut cfg = AgentConfig::default();
        let mut errs = Vec::new();
        for (key, v) in &table {
            let r: Result<(), String> = match key.as_str() {
                "host_root" => path(v).map(|p| cfg.host_root = p),
                "runtime" => runtime(v).map(|r| cfg.runtime = r),
                "hosts_dir" => path(v).map(|p| cfg.hosts_dir = Some(p)),
                "containerd_config" => path(v).map(|p| cfg.containerd_config = p),
                "discover" => boolean(v).map(|b| cfg.discover = b),
                "interval" => duration(v).and_then(min_interval).and_then(|d| at_most(d, MAX_INTERVAL)).map(|d| cfg.interval = d),
                "jitter" => jitter(v).map(|j| cfg.jitter = j),
                "timeout" => duration(v).and_then(positive).and_then(|d| at_most(d, MAX_TIMEOUT)).map(|d| cfg.timeout = d),
                "concurrency" => concurrency(v).map(|c| cfg.concurrency = c),
                "listen" => listen(v).map(|a| cfg.listen = a),
                "log_format" => log_format(v).map(|f| cfg.log_format = f),
                "state_dir" => path(v).map(|p| cfg.state_dir = p),
                "web" => web(v, &mut errs).map(|w| cfg.web = w),
                "stage_min_interval" => duration(v).and_then(min_interval).and_then(|d| at_most(d, MAX_STAGE_MIN_INTERVAL)).map(|d| cfg.stage_min_interval = d),
                "proc_dir" => path(v).map(|p| cfg.proc_dir = p),
                "registry" => {
                    registries(v, &mut errs).map(|r| cfg.registries = r)
                }
                other => Err(format!("unknown key (known: host_root, runtime, hosts_dir, containerd_config, discover, interval, jitter, timeout, concurrency, listen, log_format, state_dir, proc_dir, stage_min_interval, [web], [[registry]]): {other}")),
            };
            if let Err(e) = r {
                errs.push(format!("{key}: {e}"));
            }
        }
        if table.contains_key("hosts_dir") && table.contains_key("containerd_config") {
            errs.push("hosts_dir and containerd_config: give one, not both".into());
        }
        if cfg.timeout >= cfg.interval {
            errs.push(format!(
                "timeout ({:?}) must be shorter than interval ({:?})",
                cfg.timeout, cfg.interval
            ));
        }
        if errs.is_empty() {
            Ok(cfg)
        } else {
            Err(errs)
        }
    }
}

fn string(v: &Value) -> Result<&str, String> {
    v.as_str()
        .ok_or_else(|| format!("expected a string, got {}", v.type_str()))
}

fn path(v: &Value) -> Result<PathBuf, String> {
    let s = string(v)?;
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    Ok(PathBuf::from(s))
}

fn boolean(v: &Value) -> Result<bool, String> {
    v.as_bool()
        .ok_or_else(|| format!("expected true or false, got {}", v.type_str()))
}

fn runtime(v: &Value) -> Result<Runtime, String> {
    match string(v)? {
        "containerd" => Ok(Runtime::Containerd),
        "crio" | "cri-o" | "podman" => Ok(Runtime::Crio),
        "docker" => Ok(Runtime::Docker),
        other => Err(format!("{other:?} is not one of containerd, crio, docker")),
    }
}

/// `60`, `"60s"`, `"5m"`, `"1h"`, `"1m30s"`, `"500ms"`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("{s:?} is not a duration (e.g. \"30s\", \"5m\", \"1h\")");
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total = Duration::ZERO;
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let num: f64 = rest[..n].parse().map_err(|_| bad())?;
        rest = &rest[n..];
        let (unit, len) = if rest.starts_with("ms") {
            (0.001, 2)
        } else if rest.starts_with('s') {
            (1.0, 1)
        } else if rest.starts_with('m') {
            (60.0, 1)
        } else if rest.starts_with('h') {
            (3600.0, 1)
        } else {
            return Err(bad());
        };
        rest = &rest[len..];
        // Checked: a huge number must be an error, not a panic (found by fuzzing).
        let part = Duration::try_from_secs_f64(num * unit).map_err(|_| bad())?;
        total = total.checked_add(part).ok_or_else(bad)?;
    }
    Ok(total)
}

fn duration(v: &Value) -> Result<Duration, String> {
    match v {
        Value::Integer(i) if *i >= 0 => Ok(Duration::from_secs(*i as u64)),
        Value::String(s) => parse_duration(s),
        other => Err(format!(
            "expected seconds or a duration string, got {}",
            other.type_str()
        )),
    }
}

fn positive(d: Duration) -> Result<Duration, String> {
    if d.is_zero() {
        Err("must be more than zero".into())
    } else {
        Ok(d)
    }
}

fn at_most(d: Duration, max: Duration) -> Result<Duration, String> {
    if d > max {
        Err(format!("must be at most {max:?}"))
    } else {
        Ok(d)
    }
}

fn min_interval(d: Duration) -> Result<Duration, String> {
    if d < MIN_INTERVAL {
        Err(format!("must be at least {MIN_INTERVAL:?}"))
    } else {
        Ok(d)
    }
}

fn jitter(v: &Value) -> Result<f64, String> {
    let j = v
        .as_float()
        .or_else(|| v.as_integer().map(|i| i as f64))
        .ok_or("expected a fraction such as 0.2")?;
    if (0.0..=0.5).contains(&j) {
        Ok(j)
    } else {
        Err(format!("{j} is outside 0.0 ..= 0.5"))
    }
}

fn concurrency(v: &Value) -> Result<usize, String> {
    match v.as_integer() {
        Some(n) if (1..=1024).contains(&n) => Ok(n as usize),
        _ => Err(format!("expected a whole number from 1 to 1024, got {v}")),
    }
}

fn listen(v: &Value) -> Result<SocketAddr, String> {
    let s = string(v)?;
    s.parse()
        .map_err(|_| format!("{s:?} is not an address:port (e.g. \"0.0.0.0:9823\")"))
}

fn log_format(v: &Value) -> Result<LogFormat, String> {
    match string(v)? {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        other => Err(format!("{other:?} is not text or json")),
    }
}

/// Lowercase 64-hex SHA-256 (colons and case tolerated, as fingerprints are often written).
pub fn normalize_sha256(s: &str) -> Result<String, String> {
    let h: String = s
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_ascii_lowercase();
    if h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(h)
    } else {
        Err(format!(
            "{s:?} is not a SHA-256 fingerprint (64 hex digits)"
        ))
    }
}

fn web(v: &Value, errs: &mut Vec<String>) -> Result<WebConfig, String> {
    let t = v.as_table().ok_or("expected a [web] table")?;
    let mut w = WebConfig::default();
    for (k, v) in t {
        let r: Result<(), String> = match k.as_str() {
            "tls_cert_file" => path(v).map(|p| w.tls_cert_file = Some(p)),
            "tls_key_file" => path(v).map(|p| w.tls_key_file = Some(p)),
            "bearer_token_file" => path(v).map(|p| w.bearer_token_file = Some(p)),
            "basic_auth_users" => match v.as_table() {
                Some(users) => {
                    for (user, hash) in users {
                        match hash.as_str() {
                            Some(h) if h.starts_with("$2") => match crate::agent::http::auth::check_bcrypt_hash(h) {
                                Ok(_) => w.basic_auth_users.push((user.clone(), h.to_string())),
                                Err(e) => errs.push(format!("web.basic_auth_users.{user}: {e}")),
                            },
                            _ => errs.push(format!("web.basic_auth_users.{user}: expected a bcrypt hash (\"$2y$...\", e.g. from htpasswd -nB)")),
                        }
                    }
                    Ok(())
                }
                None => Err("expected a table of user = \"bcrypt hash\"".into()),
            },
            other => Err(format!("unknown key (known: tls_cert_file, tls_key_file, bearer_token_file, basic_auth_users): {other}")),
        };
        if let Err(e) = r {
            errs.push(format!("web.{k}: {e}"));
        }
    }
    if w.tls_cert_file.is_some() != w.tls_key_file.is_some() {
        errs.push("web: tls_cert_file and tls_key_file go together".into());
    }
    if w.bearer_token_file.is_some() && !w.basic_auth_users.is_empty() {
        errs.push("web: give bearer_token_file or basic_auth_users, not both".into());
    }
    Ok(w)
}

fn registries(v: &Value, errs: &mut Vec<String>) -> Result<Vec<RegistryConfig>, String> {
    let arr = v.as_array().ok_or("expected [[registry]] tables")?;
    let mut out = Vec::new();
    for (i, item) in arr.iter().enumerate() {
        let at = |k: &str| format!("registry[{i}].{k}");
        let Some(t) = item.as_table() else {
            errs.push(format!("registry[{i}]: expected a table"));
            continue;
        };
        let mut rc = RegistryConfig {
            name: String::new(),
            expected_ca_file: None,
            expected_ca_sha256: Vec::new(),
            stage: false,
        };
        for (k, v) in t {
            let r: Result<(), String> = match k.as_str() {
                "name" => string(v).and_then(|s| crate::trust::validate_registry(s).map(|()| rc.name = s.to_string())),
                "expected_ca_file" => path(v).map(|p| rc.expected_ca_file = Some(p)),
                "expected_ca_sha256" => {
                    let list: Vec<&Value> = match v {
                        Value::Array(a) => a.iter().collect(),
                        other => vec![other],
                    };
                    list.into_iter()
                        .map(|x| string(x).and_then(normalize_sha256))
                        .collect::<Result<Vec<_>, _>>()
                        .map(|l| rc.expected_ca_sha256 = l)
                }
                "stage" => boolean(v).map(|b| rc.stage = b),
                other => Err(format!("unknown key (known: name, expected_ca_file, expected_ca_sha256, stage): {other}")),
            };
            if let Err(e) = r {
                errs.push(format!("{}: {e}", at(k)));
            }
        }
        if rc.name.is_empty() && !t.contains_key("name") {
            errs.push(format!("{}: missing", at("name")));
        }
        if out.iter().any(|o: &RegistryConfig| o.name == rc.name) && !rc.name.is_empty() {
            errs.push(format!("{}: {:?} is listed twice", at("name"), rc.name));
        }
        out.push(rc);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_full_example_parse() {
        let c = AgentConfig::from_toml("").unwrap();
        assert_eq!(c.interval, DEFAULT_INTERVAL);
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        let c = AgentConfig::from_toml(
            r#"
host_root = "/host"
runtime = "crio"
interval = "5m"
jitter = 0.1
timeout = 5
concurrency = 4
listen = "127.0.0.1:9999"
log_format = "json"
[[registry]]
name = "r.example:5000"
expected_ca_file = "/etc/regtrust/expected/r.pem"
expected_ca_sha256 = "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89"
"#,
        )
        .unwrap();
        assert_eq!(c.interval, Duration::from_secs(300));
        assert_eq!(c.runtime, Runtime::Crio);
        assert_eq!(
            c.registries[0].expected_ca_sha256[0],
            "abcdef0123456789".repeat(4)
        );
    }

    #[test]
    fn every_mistake_is_reported_at_once_with_its_path() {
        let errs = AgentConfig::from_toml(
            r#"
intervall = "60s"
interval = "soon"
jitter = 3
listen = "everywhere"
[[registry]]
name = "https://bad/"
expected_ca_sha256 = ["nothex"]
colour = "red"
[[registry]]
stage = "yes"
"#,
        )
        .unwrap_err();
        let all = errs.join("\n");
        for needle in [
            "intervall: unknown key",
            "interval: \"soon\" is not a duration",
            "jitter: 3 is outside",
            "listen: \"everywhere\"",
            "registry[0].name:",
            "registry[0].expected_ca_sha256: \"nothex\"",
            "registry[0].colour: unknown key",
            "registry[1].stage: expected true or false",
            "registry[1].name: missing",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
        }
        assert_eq!(errs.len(), 9, "{all}");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert!(parse_duration("5 minutes").is_err());
        // Found by fuzzing: a huge number panicked in Duration::from_secs_f64.
        assert!(parse_duration(&format!("{}m3", "1".repeat(80))).is_err());
        assert!(
            parse_duration(&"9".repeat(400)).is_err(),
            "no unit, too large for u64"
        );
        assert!(AgentConfig::from_toml("interval = \"9999999h\"").is_err());
        assert!(AgentConfig::from_toml("timeout = 100000").is_err());
        assert!(AgentConfig::from_toml("interval = \"10s\"\ntimeout = \"20s\"").is_err());
    }
}
