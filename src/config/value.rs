//! The validators of single settings, on typed values: the file's keys and the command line's
//! flags go through the same ones, so a bad value reads the same wherever it was given. Each
//! returns the value or the message that follows `key: ` in an [`Error::Key`](super::Error::Key).

use std::path::PathBuf;
use std::time::Duration;

use super::{
    MAX_CONCURRENCY, MAX_INTERVAL, MAX_JITTER, MAX_STAGE_MIN_INTERVAL, MAX_TIMEOUT,
    MIN_CONCURRENCY, MIN_INTERVAL,
};

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

/// Time between two probes of a registry.
pub(crate) fn interval(d: Duration) -> Result<Duration, String> {
    at_least(d, MIN_INTERVAL).and_then(|d| at_most(d, MAX_INTERVAL))
}

/// Deadline of one endpoint probe, all phases together.
pub(crate) fn timeout(d: Duration) -> Result<Duration, String> {
    if d.is_zero() {
        return Err("must be more than zero".into());
    }
    at_most(d, MAX_TIMEOUT)
}

/// A probe deadline given in (fractional) seconds, as `check --timeout 2.5`: the same rule as
/// [`timeout`].
pub fn timeout_from_secs(secs: f64) -> Result<Duration, String> {
    if secs.is_nan() || secs <= 0.0 {
        return Err(format!("must be more than zero, got {secs}"));
    }
    timeout(Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX))
}

/// Least time between two staging attempts for one registry.
pub(crate) fn stage_min_interval(d: Duration) -> Result<Duration, String> {
    at_least(d, MIN_INTERVAL).and_then(|d| at_most(d, MAX_STAGE_MIN_INTERVAL))
}

fn at_least(d: Duration, min: Duration) -> Result<Duration, String> {
    if d < min {
        Err(format!("must be at least {min:?}"))
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

/// Fraction of the interval by which each registry's probes are spread.
pub(crate) fn jitter(j: f64) -> Result<f64, String> {
    if (0.0..=MAX_JITTER).contains(&j) {
        Ok(j)
    } else {
        Err(format!("{j} is outside 0.0 ..= {MAX_JITTER:?}"))
    }
}

/// Most endpoint probes in flight at once: `n` if it is a whole number, `given` as written.
pub(crate) fn concurrency(n: Option<i64>, given: impl std::fmt::Display) -> Result<usize, String> {
    match n.map(usize::try_from) {
        Some(Ok(n)) if (MIN_CONCURRENCY..=MAX_CONCURRENCY).contains(&n) => Ok(n),
        _ => Err(format!(
            "expected a whole number from {MIN_CONCURRENCY} to {MAX_CONCURRENCY}, got {given}"
        )),
    }
}

/// Any path setting: an empty one is a mistake, not "the current directory".
pub(crate) fn path(p: PathBuf) -> Result<PathBuf, String> {
    if p.as_os_str().is_empty() {
        Err("must not be empty".into())
    } else {
        Ok(p)
    }
}

/// A registry as in an image reference, `host[:port]`.
pub(crate) fn registry(name: &str) -> Result<String, String> {
    crate::trust::validate_registry(name).map(|()| name.to_string())
}

/// Where an expected CA is published: an absolute `https://` URL with a host and without
/// credentials (the URL appears in logs and on the status page).
pub(crate) fn ca_url(s: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(s).map_err(|e| format!("{s:?} is not a URL: {e}"))?;
    if url.scheme() != "https" {
        return Err(format!(
            "{s:?} must be https:// (the expected CA must come over an authenticated channel)"
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{s:?} has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "{s:?} carries credentials; the URL is logged, so they are refused"
        ));
    }
    Ok(url)
}

/// Lowercase 64-hex SHA-256 (colons and case tolerated, as fingerprints are often written).
/// Longest `runtime_version` accepted (a version string, not a document).
pub(crate) const MAX_RUNTIME_VERSION_LEN: usize = 128;

/// `runtime_version`: the runtime's version as it prints it (`1.7.13`, `v2.1.3`).
pub fn runtime_version(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.is_empty() || s.len() > MAX_RUNTIME_VERSION_LEN || s.chars().any(char::is_control) {
        return Err(format!(
            "{s:?} is not a version (one line, 1 to {MAX_RUNTIME_VERSION_LEN} characters, e.g. \"1.7.13\")"
        ));
    }
    Ok(s.to_string())
}

/// `go_version`: `1.22`, `go1.21.5` (what `<runtime> --version` or `go version -m` shows).
pub fn go_version(s: &str) -> Result<crate::verify::GoVersion, String> {
    crate::verify::GoVersion::parse(s)
        .ok_or_else(|| format!("{s:?} is not a Go version (e.g. \"1.22\" or \"go1.21.5\")"))
}

/// A GODEBUG value as Go reads it: `key=value` pairs separated by commas (Go ignores an entry
/// without `=`; regtrust refuses it, since it is a typo the runtime would silently ignore).
pub fn godebug(s: &str) -> Result<String, String> {
    if s.len() > 4096 {
        return Err(format!("GODEBUG of {} bytes is longer than 4096", s.len()));
    }
    for entry in s.split(',').filter(|e| !e.is_empty()) {
        match entry.split_once('=') {
            Some((k, _))
                if !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') => {}
            _ => {
                return Err(format!(
                    "{entry:?} in {s:?} is not a GODEBUG key=value setting (e.g. \"x509sha1=1\")"
                ))
            }
        }
    }
    Ok(s.to_string())
}

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

#[cfg(test)]
mod tests {

    #[test]
    fn godebug_settings_are_key_value_pairs() {
        assert_eq!(
            godebug("x509sha1=1,tlsrsakex=1"),
            Ok("x509sha1=1,tlsrsakex=1".into())
        );
        assert_eq!(godebug(""), Ok(String::new()));
        let e = godebug("x509sha1").unwrap_err();
        assert!(e.contains("\"x509sha1\" in"), "{e}");
        assert!(godebug("=1").is_err());
        assert!(godebug("a b=1").is_err());
        assert!(godebug(&"a=1,".repeat(2000)).is_err());
    }

    use super::*;

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
    }

    #[test]
    fn one_timeout_rule_for_seconds_and_durations() {
        assert_eq!(timeout_from_secs(2.5), Ok(Duration::from_millis(2500)));
        assert_eq!(timeout(Duration::from_secs(600)), Ok(MAX_TIMEOUT));
        for bad in [0.0, -1.0, f64::NAN] {
            assert!(timeout_from_secs(bad)
                .unwrap_err()
                .starts_with("must be more than zero"));
        }
        for big in [601.0, 1e300, f64::INFINITY] {
            assert_eq!(timeout_from_secs(big), Err("must be at most 600s".into()));
        }
        assert_eq!(
            timeout(Duration::ZERO),
            Err("must be more than zero".into())
        );
    }

    #[test]
    fn bounds() {
        assert!(interval(Duration::from_millis(999)).is_err());
        assert!(interval(MAX_INTERVAL + Duration::from_secs(1)).is_err());
        assert!(stage_min_interval(MAX_STAGE_MIN_INTERVAL).is_ok());
        assert!(jitter(0.51).is_err() && jitter(-0.1).is_err() && jitter(0.5).is_ok());
        for bad in [Some(0), Some(1025), Some(-1), None] {
            assert_eq!(
                concurrency(bad, "x"),
                Err("expected a whole number from 1 to 1024, got x".into())
            );
        }
        assert_eq!(concurrency(Some(1024), ""), Ok(1024));
        assert!(path(PathBuf::new()).is_err());
        assert!(registry("https://r/").is_err());
    }

    #[test]
    fn ca_urls_are_https_with_a_host_and_no_credentials() {
        assert!(ca_url("https://vault.test:8200/v1/pki/ca/pem").is_ok());
        assert!(ca_url("https://127.0.0.1:9000/roots.pem").is_ok());
        for bad in [
            "http://ca.test/roots.pem",
            "ftp://ca.test/roots.pem",
            "ca.test/roots.pem",
            "https://user:secret@ca.test/roots.pem",
            "",
        ] {
            assert!(ca_url(bad).is_err(), "{bad}");
        }
        assert!(ca_url("http://x/").unwrap_err().contains("must be https"));
    }
}
