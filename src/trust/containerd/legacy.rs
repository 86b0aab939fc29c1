//! The deprecated CRI `registry.mirrors` / `registry.configs` path, used when `config_path` is
//! empty: CRI's `registryEndpoints` and `registryHosts` (containerd 1.6 `pkg/cri/server/
//! image_pull.go`; 2.x `internal/cri/server/images/image_pull.go`).
//!
//! - endpoints: `mirrors."HOST"`, else `mirrors."*"`; one without a scheme gets `http://` for a
//!   loopback host and `https://` otherwise (`addDefaultScheme`); the default endpoint
//!   (`registry-1.docker.io` for `docker.io`) is appended unless a mirror already is the registry.
//! - each endpoint: its path as written (`/v2` only when it has none), pull and resolve, its own
//!   transport: `http` stays plain HTTP.
//! - TLS (1.x only; 2.x ignores `configs.*.tls`): `configs."ENDPOINT_HOST".tls` — `cert_file`
//!   without `key_file` (or the reverse) fails the pull, the pair is presented, `ca_file` that
//!   cannot be read fails the pull while one without a certificate adds nothing (the result of
//!   `AppendCertsFromPEM` is not checked), `insecure_skip_verify`.
//!
//! Never does: file reads (the parent module reads the files), network I/O.

use std::path::PathBuf;

use super::config::LegacyCri;
use super::hosts_toml::HostConfig;
use super::is_localhost;
use super::version::Release;

/// The hosts CRI's legacy path tries for `registry`, in order; an error fails the pull.
pub(super) fn hosts(
    legacy: &LegacyCri,
    registry: &str,
    release: Release,
) -> Result<Vec<HostConfig>, String> {
    let find = |h: &str| legacy.mirrors.iter().find(|(m, _)| m == h);
    let (key, endpoints) = match find(registry).or_else(|| find("*")) {
        Some((k, eps)) => (k.as_str(), eps.clone()),
        None => (registry, Vec::new()),
    };
    let mut urls: Vec<String> = endpoints.iter().map(|e| add_default_scheme(e)).collect();
    let is_registry = urls
        .iter()
        .any(|u| split_url(u).is_some_and(|(_, host, _)| host == registry));
    if !is_registry {
        let default_host = if registry == "docker.io" {
            "registry-1.docker.io"
        } else {
            registry
        };
        urls.push(format!("{}://{default_host}", default_scheme(default_host)));
    }
    let n_mirrors = if is_registry {
        urls.len()
    } else {
        urls.len() - 1
    };
    let mut out = Vec::new();
    for (i, url) in urls.iter().enumerate() {
        let Some((scheme, host, path)) = split_url(url) else {
            return Err(format!(
                "get registry endpoints: parse endpoint url: {url:?} has no host"
            ));
        };
        if scheme != "http" && scheme != "https" {
            return Err(format!(
                "registry endpoint {url:?} from mirrors: unsupported protocol scheme {scheme:?}"
            ));
        }
        let mut hc = HostConfig {
            scheme: scheme.into(),
            host: host.into(),
            path: if path.is_empty() {
                "/v2".into()
            } else {
                path.into()
            },
            pull: true,
            resolve: true,
            origin: if i < n_mirrors {
                format!("registry.mirrors.{key:?}.endpoint")
            } else {
                "default".into()
            },
            legacy: Some(url.clone()),
            ..HostConfig::default()
        };
        if release.legacy_tls_configs() {
            apply_tls(legacy, url, &mut hc)?;
        }
        out.push(hc);
    }
    Ok(out)
}

/// `registry.configs."HOST".tls` of the endpoint's host (`getTLSConfig`).
fn apply_tls(legacy: &LegacyCri, url: &str, hc: &mut HostConfig) -> Result<(), String> {
    let Some(Some(tls)) = legacy
        .configs
        .iter()
        .find(|(h, _)| *h == hc.host)
        .map(|(_, t)| t)
    else {
        return Ok(());
    };
    let (cert, key) = (&tls.cert_file, &tls.key_file);
    match (cert.is_empty(), key.is_empty()) {
        (false, true) => return Err(format!("get TLSConfig for registry {url:?}: cert file {cert:?} was specified, but no corresponding key file was specified")),
        (true, false) => return Err(format!("get TLSConfig for registry {url:?}: key file {key:?} was specified, but no corresponding cert file was specified")),
        (false, false) => hc.client = vec![(PathBuf::from(cert), Some(PathBuf::from(key)))],
        (true, true) => {}
    }
    if !tls.ca_file.is_empty() {
        hc.ca = Some(vec![PathBuf::from(&tls.ca_file)]);
    }
    hc.skip_verify = Some(tls.insecure_skip_verify);
    hc.origin = format!("{} + registry.configs.{:?}.tls", hc.origin, hc.host);
    Ok(())
}

/// `defaultScheme`: plain HTTP for a loopback host.
fn default_scheme(host: &str) -> &'static str {
    if is_localhost(host) {
        "http"
    } else {
        "https"
    }
}

/// `addDefaultScheme`: an endpoint without `://` gets the host's default scheme.
fn add_default_scheme(endpoint: &str) -> String {
    if endpoint.contains("://") {
        return endpoint.to_string();
    }
    let host = endpoint.split(['/', '?', '#']).next().unwrap_or(endpoint);
    format!("{}://{endpoint}", default_scheme(host))
}

/// `scheme://host[:port]/path` → its parts (`url.Parse` as far as CRI uses it); `None` without
/// a host.
fn split_url(url: &str) -> Option<(&str, &str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    let rest = rest.split(['?', '#']).next().unwrap_or(rest);
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    (!host.is_empty()).then_some((scheme, host, path))
}
