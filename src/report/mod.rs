//! Every view of an outcome, and nothing else: text for a person on the node at 3 a.m.
//! ([`text`]), JSON for tools ([`json`], schema in [`view`]), the one line node-problem-detector
//! reads ([`npd`]), the agent's status page ([`status`]), the staging report ([`stage`]), the
//! reason table ([`reasons`]) and the demo's story ([`demo`]).
//!
//! Views read [`crate::outcome`] (or a staging report) and return strings. Never does: I/O,
//! decisions — a view never re-derives a verdict.

pub mod demo;
pub mod npd;
pub mod reasons;
pub mod stage;
pub mod status;
pub mod text;
pub mod view;

pub use npd::{npd_line, truncate_line, NPD_MAX_LINE};
pub use text::text;

use crate::outcome::CheckOutcome;

/// The JSON document (`--output json`).
pub fn json(outcome: &CheckOutcome) -> String {
    to_json(&view::Report::from(outcome))
}

/// Pretty JSON of any view; a value that cannot be serialized says so in the document.
pub fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string_pretty(v)
        .unwrap_or_else(|e| format!("{{\"error\":\"cannot serialize report: {e}\"}}"))
}

/// Outcomes for the views' unit tests (and the agent history's).
#[cfg(test)]
pub(crate) mod fixtures {
    use std::sync::Arc;

    use crate::cert::Cert;
    use crate::diagnose::{Diagnosis, Reason};
    use crate::outcome::EndpointOutcome;
    use crate::probe::{Failure, ProbeResult};
    use crate::trust::{Endpoint, RegistryTrust, Runtime};

    /// A certificate whose subject is `CN=<cn>` (any characters).
    pub(crate) fn cert(cn: &str) -> Arc<Cert> {
        let mut p = rcgen::CertificateParams::new(vec!["r.test".to_string()]).unwrap();
        p.distinguished_name.push(
            rcgen::DnType::CommonName,
            rcgen::DnValue::Utf8String(cn.into()),
        );
        let key = rcgen::KeyPair::generate().unwrap();
        Arc::new(Cert::from_der(p.self_signed(&key).unwrap().der()).unwrap())
    }

    pub(crate) fn trust(name: &str, host_dir: Option<&str>) -> RegistryTrust {
        RegistryTrust {
            registry: name.into(),
            runtime: Runtime::Containerd,
            host_dir: host_dir.map(String::from),
            endpoints: Vec::new(),
            findings: Vec::new(),
            config_error: None,
            watched: Vec::new(),
        }
    }

    /// An endpoint `https://<authority>/v2/` probed with `reason`, having presented `presented`.
    pub(crate) fn endpoint(
        authority: &str,
        origin: &str,
        reason: Reason,
        presented: Vec<Arc<Cert>>,
    ) -> EndpointOutcome {
        EndpointOutcome {
            endpoint: Endpoint::default_for("https", authority, origin),
            probe: Some(ProbeResult {
                presented,
                ..ProbeResult::new(
                    format!("https://{authority}/v2/"),
                    if reason == Reason::Ok {
                        Ok(())
                    } else {
                        Err(Failure::Http("x".into()))
                    },
                )
            }),
            diagnosis: Diagnosis {
                reason,
                detail: "bad\x1b[2K\rdetail".into(),
                next_step: reason.next_step().into(),
                key_mismatch: None,
            },
            trusted: Vec::new(),
            system_roots: 0,
        }
    }
}
