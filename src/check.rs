//! The one-shot check: for each registry, the runtime's endpoints probed with the runtime's trust,
//! judged, and decided the way the runtime decides ([`RegistryOutcome::decide`]).
//!
//! Returns domain data ([`crate::outcome`]); rendering is [`crate::report`]'s. Never does: writes.
//! Network I/O only through [`crate::probe`].

use std::sync::Arc;

use crate::cert::Cert;
use crate::diagnose::{self, Diagnosis, Reason};
use crate::outcome::{CheckOutcome, EndpointOutcome, RegistryOutcome};
use crate::probe::{self, ProbeSettings};
use crate::trust::{
    self, ConfigError, PullKind, RegistryTrust, SystemRoots, TrustLoader, TrustSettings, TrustedCa,
};

/// Most endpoint probes in flight at once.
pub const MAX_CONCURRENT_PROBES: usize = 16;

/// Runs the check for `registries`, or for every configured registry when none is given, for a
/// pull by tag.
pub async fn run(
    settings: &TrustSettings,
    registries: &[String],
    probe_settings: &ProbeSettings,
) -> Result<CheckOutcome, ConfigError> {
    run_as(settings, registries, probe_settings, PullKind::Tag).await
}

/// [`run`] for the given kind of pull (which hosts containerd's resolver tries).
pub async fn run_as(
    settings: &TrustSettings,
    registries: &[String],
    probe_settings: &ProbeSettings,
    pull: PullKind,
) -> Result<CheckOutcome, ConfigError> {
    let loader = TrustLoader::new(settings)?.with_pull(pull);
    let (registries, skipped) = if registries.is_empty() {
        let discovery = loader.discover();
        (discovery.registries, discovery.findings)
    } else {
        (registries.to_vec(), Vec::new())
    };
    let system = Arc::new(trust::system::load(&settings.host_root));
    let mut findings = system.findings.clone();
    findings.extend_from_slice(loader.findings());
    findings.extend(skipped);
    let sem = Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_PROBES));
    let mut tasks = Vec::new();
    for reg in &registries {
        let rt = loader.registry(reg);
        let system = system.clone();
        let ps = probe_settings.clone();
        let sem = sem.clone();
        tasks.push(tokio::spawn(async move {
            check_registry(rt, &system, &ps, &sem).await
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        match t.await {
            Ok(r) => out.push(r),
            Err(e) => tracing::error!(error = %e, "a registry check task failed"),
        }
    }
    Ok(CheckOutcome {
        registries: out,
        findings,
        runtime: None,
        pull,
    })
}

/// containerd's `unable to load CA cert` for a `ca` file whose every certificate the runtime's
/// Go refuses to parse, though some other Go would (a negative serial number from go1.23, a
/// critical identifier extension from go1.25): the trust loader, which knows no Go version,
/// kept them; `AppendCertsFromPEM` in that Go adds none.
fn unloadable_ca(rt: &trust::RegistryTrust, ps: &ProbeSettings) -> Option<String> {
    let negative_serial = ps.godebug.get("x509negativeserial");
    let refused = |c: &trust::TrustedCa| c.cert.go_parse_error(ps.go, negative_serial).is_some();
    rt.endpoints
        .iter()
        .filter(|ep| ep.cas_must_load)
        .flat_map(|ep| ep.ca_files.iter().map(move |f| (ep, f)))
        .find_map(|(ep, f)| {
            let source = f.display().to_string();
            let from: Vec<_> = ep.cas.iter().filter(|c| *c.source == *source).collect();
            (!from.is_empty() && from.iter().all(|c| refused(c))).then(|| {
                format!(
                    "unable to load CA cert {source:?}: no certificate in it parses in the runtime's Go ({})",
                    ps.go
                )
            })
        })
}

/// Probes every endpoint of one registry (concurrently) and reaches the runtime's verdict.
pub async fn check_registry(
    rt: impl Into<Arc<RegistryTrust>>,
    system: &SystemRoots,
    ps: &ProbeSettings,
    sem: &tokio::sync::Semaphore,
) -> RegistryOutcome {
    let rt: Arc<RegistryTrust> = rt.into();
    let failed = |ep: &trust::Endpoint, err: &str| EndpointOutcome {
        endpoint: ep.clone(),
        probe: None,
        diagnosis: Diagnosis {
            reason: Reason::ConfigError,
            detail: err.to_string(),
            next_step: String::new(),
            key_mismatch: None,
        },
        trusted: ep.cas.clone(),
        system_roots: system.cas.len(),
    };
    if let Some(err) = rt.config_error.clone().or_else(|| unloadable_ca(&rt, ps)) {
        let endpoints = rt.endpoints.iter().map(|ep| failed(ep, &err)).collect();
        return RegistryOutcome::decide(rt, endpoints);
    }
    let probes = rt.endpoints.iter().map(|ep| {
        let early = ep.config_error.as_deref().map(|err| failed(ep, err));
        async move {
            // The runtime fails this endpoint before dialling (blocked, its certs.d).
            if let Some(outcome) = early {
                return outcome;
            }
            let _permit = sem.acquire().await;
            // Boxed once a probe may run: a thousand registries waiting for a permit hold a
            // pointer each, not a whole probe's state (heaptrack: 18% of the heap at 1,000).
            Box::pin(probe_endpoint(ep, system, ps)).await
        }
    });
    let endpoints = futures_util::future::join_all(probes).await;
    RegistryOutcome::decide(rt, endpoints)
}

/// Probes one endpoint with its trust pool, over plain HTTP again where containerd falls back.
async fn probe_endpoint(
    ep: &trust::Endpoint,
    system: &SystemRoots,
    ps: &ProbeSettings,
) -> EndpointOutcome {
    // Built once a probe may run.
    let certs = roots(system, ep);
    let res = probe::probe(ep, certs.clone(), ps).await;
    // containerd's HTTP fallback: the same request again over plain HTTP.
    let (ep, res) = if falls_back(ep, &res) {
        let http = ep.plain_http();
        let res = probe::probe(&http, certs, ps).await;
        (http, res)
    } else {
        (ep.clone(), res)
    };
    // The pool with each CA's source, for the evidence of a failure (a success needs none).
    let roots = if res.result.is_err() {
        pool(system, &ep)
    } else {
        Vec::new()
    };
    let diagnosis = diagnose::diagnose(&res, &roots);
    EndpointOutcome {
        trusted: relevant(&ep, &res.presented, system),
        endpoint: ep,
        probe: Some(res),
        diagnosis,
        system_roots: system.cas.len(),
    }
}

/// The endpoint's CAs that join the system roots in its pool: those not among the system roots
/// (deduplicated when loaded), each once — Go's `CertPool.AddCert` skips a certificate it holds.
fn own_cas<'a>(system: &SystemRoots, ep: &'a trust::Endpoint) -> Vec<&'a TrustedCa> {
    let mut own: Vec<&TrustedCa> = Vec::new();
    for ca in &ep.cas {
        let sha = &ca.cert.sha256;
        if !system.contains(sha) && !own.iter().any(|c| c.cert.sha256 == *sha) {
            own.push(ca);
        }
    }
    own
}

/// The endpoint's roots as the probe carries them: the system roots' one shared slice, and
/// [`own_cas`].
fn roots(system: &SystemRoots, ep: &trust::Endpoint) -> crate::verify::Pool {
    crate::verify::Pool {
        system: system.certs(),
        own: own_cas(system, ep)
            .into_iter()
            .map(|ca| ca.cert.clone())
            .collect(),
    }
}

/// Whether containerd's `httpFallback` retries `ep` over plain HTTP after `res` (`resolver.go`
/// `isTLSError`, `isPortError`): an answer whose first record header is `HTTP/`
/// ([`Failure::HttpAnswer`](probe::Failure::HttpAnswer)), a handshake timeout or a port error
/// where the release retries those; the plain-HTTP probe then says what it is.
fn falls_back(ep: &trust::Endpoint, res: &probe::ProbeResult) -> bool {
    use probe::{Failure, Phase};
    let Some(fb) = ep.http_fallback else {
        return false;
    };
    match &res.result {
        Err(Failure::HttpAnswer) => true,
        Err(Failure::Timeout(Phase::Tls)) => fb.on_handshake_timeout,
        Err(Failure::Refused(_) | Failure::Timeout(Phase::Connect)) => fb.on_port_error,
        _ => false,
    }
}

/// The same pool as [`roots`], with each CA's source: system roots, then [`own_cas`].
fn pool(system: &SystemRoots, ep: &trust::Endpoint) -> Vec<TrustedCa> {
    system
        .cas
        .iter()
        .chain(own_cas(system, ep))
        .cloned()
        .collect()
}

/// The CAs worth showing for an endpoint: the configured ones, plus any pool member named like an
/// issuer in the presented chain.
fn relevant(ep: &trust::Endpoint, presented: &[Arc<Cert>], system: &SystemRoots) -> Vec<TrustedCa> {
    let mut out = ep.cas.clone();
    for ca in system.cas.iter().chain(&ep.cas) {
        let named = presented
            .iter()
            .any(|p| p.raw_issuer() == ca.cert.raw_subject());
        if named && !out.iter().any(|t| t.cert.sha256 == ca.cert.sha256) {
            out.push(ca.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::{Failure, Phase, ProbeResult};
    use crate::trust::{Endpoint, HttpFallback};

    fn result(r: Result<(), Failure>) -> ProbeResult {
        ProbeResult::new(String::new(), r)
    }

    /// The pool a probe carries: the system slice shared, not copied; the endpoint's own CAs
    /// without the system's and without repeats, in the order configured.
    #[test]
    fn an_endpoints_roots_share_the_system_slice_and_hold_each_ca_once() {
        use crate::report::fixtures::cert;
        let ca = |c: &Arc<Cert>, source: &str| TrustedCa {
            cert: c.clone(),
            source: source.into(),
        };
        let (a, b, c, d) = (cert("A"), cert("B"), cert("C"), cert("D"));
        let mut system = SystemRoots::default();
        system.cas = vec![ca(&a, "system:x"), ca(&b, "system:x")];
        let mut ep = Endpoint::default_for("https", "r.test", "server");
        ep.cas = vec![
            ca(&d, "/d.pem"),
            ca(&b, "/b.pem"),
            ca(&c, "/c.pem"),
            ca(&d, "/d2.pem"),
        ];
        let first = roots(&system, &ep);
        let second = roots(&system, &ep);
        assert!(Arc::ptr_eq(&first.system, &second.system));
        let names = |certs: &[Arc<Cert>]| -> Vec<String> {
            certs.iter().map(|c| c.common_name.clone()).collect()
        };
        assert_eq!(names(&first.system), ["A", "B"]);
        assert_eq!(names(&first.own), ["D", "C"]);
        let sourced: Vec<String> = pool(&system, &ep)
            .iter()
            .map(|ca| format!("{}@{}", ca.cert.common_name, ca.source))
            .collect();
        assert_eq!(
            sourced,
            ["A@system:x", "B@system:x", "D@/d.pem", "C@/c.pem"]
        );
    }

    /// containerd `resolver.go` `httpFallback.RoundTrip`: only an upgraded endpoint falls back;
    /// an HTTP answer always (`isTLSError`), a handshake timeout from 1.7.16, a refused or
    /// timed-out dial of a port-less host from 1.7.24 (`isPortError`); a verification failure
    /// never.
    #[test]
    fn falls_back_exactly_when_containerd_does() {
        let mut ep = Endpoint::default_for("https", "r.test", "t");
        let not_tls = || result(Err(Failure::HttpAnswer));
        assert!(!falls_back(&ep, &not_tls()), "a declared https:// host");
        ep.http_fallback = Some(HttpFallback::default());
        assert!(falls_back(&ep, &not_tls()));
        let timeout = result(Err(Failure::Timeout(Phase::Tls)));
        let refused = result(Err(Failure::Refused("refused".into())));
        assert!(!falls_back(&ep, &timeout) && !falls_back(&ep, &refused));
        ep.http_fallback = Some(HttpFallback {
            on_handshake_timeout: true,
            on_port_error: true,
        });
        assert!(falls_back(&ep, &timeout) && falls_back(&ep, &refused));
        let verify = result(Err(Failure::Handshake("bad".into())));
        assert!(!falls_back(&ep, &verify) && !falls_back(&ep, &result(Ok(()))));
        let http = ep.plain_http();
        assert_eq!(http.url(), "http://r.test/v2/");
        assert!(http.http_fallback.is_none() && http.cas.is_empty());
    }
}
