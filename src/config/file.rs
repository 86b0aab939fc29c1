//! The config file: TOML text → [`AgentConfig`], every key checked, every mistake collected with
//! its path (`registry[1].stage`). Only the TOML shape is checked here (a string, a table, …);
//! what a value may be is [`value`]'s, shared with the command line.

use std::path::PathBuf;

use toml::{Table, Value};

use super::key::{self, registry as reg_key, web as web_key};
use super::{value, AgentConfig, CaUrl, CaUrlTrust, Error, LogFormat, RegistryConfig, WebConfig};
use crate::trust::Runtime;

/// The settings in `text`, over the defaults, and every mistake in it; `Err` only when the text is
/// not TOML at all. The rules across settings (timing) are the caller's, after the flags.
pub(super) fn parse(text: &str) -> Result<(AgentConfig, Vec<Error>), Error> {
    let table: Table = text
        .parse()
        .map_err(|e: toml::de::Error| Error::Syntax(e.to_string()))?;
    let mut cfg = AgentConfig::default();
    let mut errs = Vec::new();
    for (k, v) in &table {
        if let Err(message) = set(&mut cfg, k, v, &mut errs) {
            errs.push(Error::key(k.as_str(), message));
        }
    }
    if table.contains_key(key::HOSTS_DIR) && table.contains_key(key::CONTAINERD_CONFIG) {
        errs.push(Error::Exclusive {
            first: key::HOSTS_DIR,
            second: key::CONTAINERD_CONFIG,
        });
    }
    Ok((cfg, errs))
}

/// Sets the top-level key `k`; the tables report their own keys' mistakes into `errs`.
fn set(cfg: &mut AgentConfig, k: &str, v: &Value, errs: &mut Vec<Error>) -> Result<(), String> {
    match k {
        key::HOST_ROOT => path(v).map(|p| cfg.host_root = p),
        key::RUNTIME => runtime(v).map(|r| cfg.runtime = r),
        key::HOSTS_DIR => path(v).map(|p| cfg.hosts_dir = Some(p)),
        key::CONTAINERD_CONFIG => path(v).map(|p| cfg.containerd_config = p),
        key::DISCOVER => boolean(v).map(|b| cfg.discover = b),
        key::INTERVAL => duration(v)
            .and_then(value::interval)
            .map(|d| cfg.interval = d),
        key::JITTER => jitter(v).map(|j| cfg.jitter = j),
        key::TIMEOUT => duration(v)
            .and_then(value::timeout)
            .map(|d| cfg.timeout = d),
        key::CONCURRENCY => value::concurrency(v.as_integer(), v).map(|c| cfg.concurrency = c),
        key::LISTEN => listen(v).map(|a| cfg.listen = a),
        key::LOG_FORMAT => log_format(v).map(|f| cfg.log_format = f),
        key::STATE_DIR => path(v).map(|p| cfg.state_dir = p),
        key::PROC_DIR => path(v).map(|p| cfg.proc_dir = p),
        key::RUNTIME_VERSION => {
            value::runtime_version(string(v)?).map(|r| cfg.runtime_version = Some(r))
        }
        key::GO_VERSION => value::go_version(string(v)?).map(|g| cfg.go_version = Some(g)),
        key::GODEBUG => value::godebug(string(v)?).map(|g| cfg.godebug = Some(g)),
        key::STAGE_MIN_INTERVAL => duration(v)
            .and_then(value::stage_min_interval)
            .map(|d| cfg.stage_min_interval = d),
        key::WEB => web(v, errs).map(|w| cfg.web = w),
        key::REGISTRY => registries(v, errs).map(|r| cfg.registries = r),
        other => Err(unknown(key::ALL, other)),
    }
}

/// "unknown key (known: …): other", tables shown as TOML writes them.
fn unknown(known: &[&str], other: &str) -> String {
    let shown: Vec<String> = known
        .iter()
        .map(|k| match *k {
            key::WEB => format!("[{k}]"),
            key::REGISTRY => format!("[[{k}]]"),
            k => k.to_string(),
        })
        .collect();
    format!("unknown key (known: {}): {other}", shown.join(", "))
}

fn string(v: &Value) -> Result<&str, String> {
    v.as_str()
        .ok_or_else(|| format!("expected a string, got {}", v.type_str()))
}

fn path(v: &Value) -> Result<PathBuf, String> {
    value::path(PathBuf::from(string(v)?))
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

fn duration(v: &Value) -> Result<std::time::Duration, String> {
    match v {
        Value::Integer(i) if *i >= 0 => Ok(std::time::Duration::from_secs(*i as u64)),
        Value::String(s) => value::parse_duration(s),
        other => Err(format!(
            "expected seconds or a duration string, got {}",
            other.type_str()
        )),
    }
}

fn jitter(v: &Value) -> Result<f64, String> {
    let j = v
        .as_float()
        .or_else(|| v.as_integer().map(|i| i as f64))
        .ok_or("expected a fraction such as 0.2")?;
    value::jitter(j)
}

fn listen(v: &Value) -> Result<std::net::SocketAddr, String> {
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

fn web(v: &Value, errs: &mut Vec<Error>) -> Result<WebConfig, String> {
    let t = v.as_table().ok_or("expected a [web] table")?;
    let mut w = WebConfig::default();
    for (k, v) in t {
        let r = match k.as_str() {
            web_key::TLS_CERT_FILE => path(v).map(|p| w.tls_cert_file = Some(p)),
            web_key::TLS_KEY_FILE => path(v).map(|p| w.tls_key_file = Some(p)),
            web_key::BEARER_TOKEN_FILE => path(v).map(|p| w.bearer_token_file = Some(p)),
            web_key::BASIC_AUTH_USERS => basic_auth_users(v, &mut w, errs),
            other => Err(unknown(web_key::ALL, other)),
        };
        if let Err(message) = r {
            errs.push(Error::key(format!("{}.{k}", key::WEB), message));
        }
    }
    if w.tls_cert_file.is_some() != w.tls_key_file.is_some() {
        errs.push(Error::key(
            key::WEB,
            "tls_cert_file and tls_key_file go together",
        ));
    }
    if w.bearer_token_file.is_some() && !w.basic_auth_users.is_empty() {
        errs.push(Error::key(
            key::WEB,
            "give bearer_token_file or basic_auth_users, not both",
        ));
    }
    Ok(w)
}

/// `[web.basic_auth_users]`: user = "bcrypt hash"; each bad user is its own mistake.
fn basic_auth_users(v: &Value, w: &mut WebConfig, errs: &mut Vec<Error>) -> Result<(), String> {
    let users = v
        .as_table()
        .ok_or("expected a table of user = \"bcrypt hash\"")?;
    for (user, hash) in users {
        match hash.as_str() {
            Some(h) if h.starts_with("$2") => {
                match crate::agent::http::auth::check_bcrypt_hash(h) {
                    Ok(_) => w.basic_auth_users.push((user.clone(), h.to_string())),
                    Err(e) => errs.push(Error::key(
                        format!("{}.{}.{user}", key::WEB, web_key::BASIC_AUTH_USERS),
                        e,
                    )),
                }
            }
            _ => errs.push(Error::key(
                format!("{}.{}.{user}", key::WEB, web_key::BASIC_AUTH_USERS),
                "expected a bcrypt hash (\"$2y$...\", e.g. from htpasswd -nB)",
            )),
        }
    }
    Ok(())
}

fn registries(v: &Value, errs: &mut Vec<Error>) -> Result<Vec<RegistryConfig>, String> {
    let arr = v.as_array().ok_or("expected [[registry]] tables")?;
    let mut out: Vec<RegistryConfig> = Vec::new();
    for (i, item) in arr.iter().enumerate() {
        let at = |k: &str| format!("{}[{i}].{k}", key::REGISTRY);
        let Some(t) = item.as_table() else {
            errs.push(Error::key(
                format!("{}[{i}]", key::REGISTRY),
                "expected a table",
            ));
            continue;
        };
        let mut rc = RegistryConfig::named("");
        let mut url = UrlParts::default();
        // A bad expected_ca_url* value is its own mistake; the rule across them is then moot.
        let mut url_key_bad = false;
        for (k, v) in t {
            if let Err(message) = set_registry(&mut rc, &mut url, k, v) {
                url_key_bad |= k.starts_with(reg_key::EXPECTED_CA_URL);
                errs.push(Error::key(at(k), message));
            }
        }
        match url.validate() {
            Ok(u) => rc.expected_ca_url = u,
            Err(_) if url_key_bad => {}
            Err((k, message)) => errs.push(Error::key(at(k), message)),
        }
        if rc.name.is_empty() && !t.contains_key(reg_key::NAME) {
            errs.push(Error::key(at(reg_key::NAME), "missing"));
        }
        if !rc.name.is_empty() && out.iter().any(|o| o.name == rc.name) {
            errs.push(Error::key(
                at(reg_key::NAME),
                format!("{:?} is listed twice", rc.name),
            ));
        }
        out.push(rc);
    }
    Ok(out)
}

fn set_registry(
    rc: &mut RegistryConfig,
    url: &mut UrlParts,
    k: &str,
    v: &Value,
) -> Result<(), String> {
    match k {
        reg_key::NAME => string(v).and_then(value::registry).map(|n| rc.name = n),
        reg_key::EXPECTED_CA_FILE => path(v).map(|p| rc.expected_ca_file = Some(p)),
        reg_key::EXPECTED_CA_SHA256 => {
            let list: Vec<&Value> = match v {
                Value::Array(a) => a.iter().collect(),
                other => vec![other],
            };
            list.into_iter()
                .map(|x| string(x).and_then(value::normalize_sha256))
                .collect::<Result<Vec<_>, _>>()
                .map(|l| rc.expected_ca_sha256 = l)
        }
        reg_key::EXPECTED_CA_URL => string(v).and_then(value::ca_url).map(|u| url.url = Some(u)),
        reg_key::EXPECTED_CA_URL_SHA256 => string(v)
            .and_then(value::normalize_sha256)
            .map(|h| url.sha256 = Some(h)),
        reg_key::EXPECTED_CA_URL_CA_FILE => path(v).map(|p| url.ca_file = Some(p)),
        reg_key::STAGE => boolean(v).map(|b| rc.stage = b),
        other => Err(unknown(reg_key::ALL, other)),
    }
}

/// The `expected_ca_url*` keys of one registry table, as given (each already valid alone).
#[derive(Default)]
struct UrlParts {
    url: Option<reqwest::Url>,
    sha256: Option<String>,
    ca_file: Option<PathBuf>,
}

impl UrlParts {
    /// The URL with exactly one trust option, or the key to blame and why.
    fn validate(self) -> Result<Option<CaUrl>, (&'static str, String)> {
        let trust = match (self.sha256, self.ca_file) {
            (Some(_), Some(_)) => {
                return Err((
                    reg_key::EXPECTED_CA_URL,
                    format!(
                        "give {} or {}, not both",
                        reg_key::EXPECTED_CA_URL_SHA256,
                        reg_key::EXPECTED_CA_URL_CA_FILE
                    ),
                ))
            }
            (Some(h), None) => Some(CaUrlTrust::PinnedLeaf(h)),
            (None, Some(f)) => Some(CaUrlTrust::CaFile(f)),
            (None, None) => None,
        };
        match (self.url, trust) {
            (Some(url), Some(trust)) => Ok(Some(CaUrl { url, trust })),
            (Some(_), None) => Err((
                reg_key::EXPECTED_CA_URL,
                format!(
                    "needs its own trust: {} (SHA-256 of the server's certificate) or {} (a CA \
                     bundle); the registry's trust is never used for it",
                    reg_key::EXPECTED_CA_URL_SHA256,
                    reg_key::EXPECTED_CA_URL_CA_FILE
                ),
            )),
            (None, Some(CaUrlTrust::PinnedLeaf(_))) => Err((
                reg_key::EXPECTED_CA_URL_SHA256,
                format!("only with {}", reg_key::EXPECTED_CA_URL),
            )),
            (None, Some(CaUrlTrust::CaFile(_))) => Err((
                reg_key::EXPECTED_CA_URL_CA_FILE,
                format!("only with {}", reg_key::EXPECTED_CA_URL),
            )),
            (None, None) => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use crate::config::{DEFAULT_INTERVAL, DEFAULT_LISTEN};

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
        let all = errs
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n");
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
        // The keys are values: a caller finds a mistake without reading the text.
        let keys: Vec<_> = errs.iter().filter_map(Error::key_name).collect();
        for k in [
            "intervall",
            "interval",
            "jitter",
            "listen",
            "registry[1].name",
        ] {
            assert!(keys.contains(&k), "{k} not among {keys:?}");
        }
        assert!(errs.iter().all(|e| e.path().is_none()));
    }

    #[test]
    fn runtime_and_go_version_settings() {
        let cfg =
            AgentConfig::from_toml("runtime_version = \"1.7.13\"\ngo_version = \"go1.22.5\"\n")
                .unwrap();
        assert_eq!(cfg.runtime_version.as_deref(), Some("1.7.13"));
        assert_eq!(cfg.go_version, Some(crate::verify::GoVersion::new(22, 5)));
        let cfg = AgentConfig::from_toml("godebug = \"x509sha1=1\"\n").unwrap();
        assert_eq!(cfg.godebug.as_deref(), Some("x509sha1=1"));
        let errs = AgentConfig::from_toml("godebug = \"x509sha1\"\n").unwrap_err();
        assert!(errs[0].to_string().starts_with("godebug: "), "{}", errs[0]);
        let errs =
            AgentConfig::from_toml("go_version = \"1.x\"\nruntime_version = \"\"\n").unwrap_err();
        let all: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert!(
            all.iter()
                .any(|e| e.starts_with("go_version: \"1.x\" is not a Go version")),
            "{all:?}"
        );
        assert!(
            all.iter().any(|e| e.starts_with("runtime_version: ")),
            "{all:?}"
        );
    }

    #[test]
    fn an_expected_ca_url_needs_exactly_one_trust_of_its_own() {
        let reg = |extra: &str| format!("[[registry]]\nname = \"r.test\"\n{extra}");
        let pin = "ab".repeat(32);
        let c = AgentConfig::from_toml(&reg(&format!(
            "expected_ca_url = \"https://vault.test:8200/v1/pki/ca/pem\"\nexpected_ca_url_sha256 = \"{pin}\"\n"
        )))
        .unwrap();
        let u = c.registries[0].expected_ca_url.as_ref().unwrap();
        assert_eq!(u.url.as_str(), "https://vault.test:8200/v1/pki/ca/pem");
        assert_eq!(u.trust, CaUrlTrust::PinnedLeaf(pin.clone()));
        let c = AgentConfig::from_toml(&reg(
            "expected_ca_url = \"https://ca.test/roots.pem\"\nexpected_ca_url_ca_file = \"/etc/regtrust/pki-ca.pem\"\n",
        ))
        .unwrap();
        assert_eq!(
            c.registries[0].expected_ca_url.as_ref().unwrap().trust,
            CaUrlTrust::CaFile("/etc/regtrust/pki-ca.pem".into())
        );
        let one = |extra: &str| {
            let errs = AgentConfig::from_toml(&reg(extra)).unwrap_err();
            assert_eq!(errs.len(), 1, "{errs:?}");
            (errs[0].key_name().unwrap().to_string(), errs[0].to_string())
        };
        let (k, msg) = one("expected_ca_url = \"https://ca.test/roots.pem\"\n");
        assert_eq!(k, "registry[0].expected_ca_url");
        assert!(msg.contains("needs its own trust"), "{msg}");
        let (k, msg) = one(&format!(
            "expected_ca_url = \"https://ca.test/roots.pem\"\nexpected_ca_url_sha256 = \"{pin}\"\nexpected_ca_url_ca_file = \"/ca.pem\"\n"
        ));
        assert_eq!(k, "registry[0].expected_ca_url");
        assert!(msg.contains("not both"), "{msg}");
        let (k, msg) = one(&format!(
            "expected_ca_url = \"http://ca.test/roots.pem\"\nexpected_ca_url_sha256 = \"{pin}\"\n"
        ));
        assert_eq!(k, "registry[0].expected_ca_url");
        assert!(msg.contains("must be https"), "{msg}");
        let (k, _) = one(&format!("expected_ca_url_sha256 = \"{pin}\"\n"));
        assert_eq!(k, "registry[0].expected_ca_url_sha256");
        let (k, _) = one("expected_ca_url_ca_file = \"/ca.pem\"\n");
        assert_eq!(k, "registry[0].expected_ca_url_ca_file");
        let (k, msg) = one(
            "expected_ca_url = \"https://ca.test/roots.pem\"\nexpected_ca_url_sha256 = \"short\"\n",
        );
        assert_eq!(k, "registry[0].expected_ca_url_sha256");
        assert!(msg.contains("not a SHA-256"), "{msg}");
    }

    #[test]
    fn unknown_keys_list_the_known_ones() {
        let errs = AgentConfig::from_toml("colour = 1\n[web]\nshade = 2\n").unwrap_err();
        assert_eq!(
            errs[0].to_string(),
            "colour: unknown key (known: host_root, runtime, hosts_dir, containerd_config, \
             discover, interval, jitter, timeout, concurrency, listen, log_format, state_dir, \
             proc_dir, runtime_version, go_version, godebug, stage_min_interval, [web], [[registry]]): colour"
        );
        assert_eq!(
            errs[1].to_string(),
            "web.shade: unknown key (known: tls_cert_file, tls_key_file, bearer_token_file, \
             basic_auth_users): shade"
        );
    }

    #[test]
    fn rules_across_keys() {
        let errs = AgentConfig::from_toml(
            "hosts_dir = \"/a\"\ncontainerd_config = \"/b\"\nconcurrency = \"many\"\n",
        )
        .unwrap_err();
        assert!(
            matches!(
                &errs[..],
                [Error::Key { key, .. }, Error::Exclusive { first: "hosts_dir", second: "containerd_config" }]
                    if key == "concurrency"
            ),
            "{errs:?}"
        );
        assert_eq!(
            errs[1].to_string(),
            "hosts_dir and containerd_config: give one, not both"
        );
        assert!(AgentConfig::from_toml("interval = \"9999999h\"").is_err());
        assert!(AgentConfig::from_toml("timeout = 100000").is_err());
        let errs = AgentConfig::from_toml("interval = \"10s\"\ntimeout = \"20s\"").unwrap_err();
        assert!(matches!(&errs[..], [Error::TimeoutNotBelowInterval { .. }]));
        assert!(matches!(
            AgentConfig::from_toml("= nonsense").unwrap_err()[..],
            [Error::Syntax(_)]
        ));
    }
}
