//! What trust loading (and the check built on it) reports to a person: [`Finding`], and its
//! [`FindingKind`] — a closed list with stable snake_case names, because JSON consumers, the
//! `regtrust_trust_findings{kind}` series and the tests branch on them.
//!
//! Never does: I/O.

use std::fmt;
use std::path::Path;

use serde::Serialize;

/// Declares [`FindingKind`] with its stable name next to each variant, so the two cannot drift.
macro_rules! finding_kinds {
    ($($(#[doc = $doc:literal])+ $variant:ident => $name:literal,)+) => {
        /// Every kind of finding regtrust reports; [`FindingKind::as_str`] is the stable name.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum FindingKind {
            $($(#[doc = $doc])+ $variant,)+
        }

        impl FindingKind {
            /// Every kind, in declaration order.
            pub const ALL: &'static [FindingKind] = &[$(FindingKind::$variant,)+];

            /// The stable name used in JSON, metrics labels and text output.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(FindingKind::$variant => $name,)+
                }
            }
        }
    };
}

finding_kinds! {
    /// No containerd config file: the default hosts dir is assumed.
    NoContainerdConfig => "no_containerd_config",
    /// CRI's config_path and the transfer service's differ.
    ConfigPathDiffers => "config_path_differs",
    /// config_path is a `:` list, which the transfer service does not split.
    ConfigPathList => "config_path_list",
    /// The deprecated 1.x CRI `registry.mirrors` / `registry.configs` are in use.
    DeprecatedRegistryConfig => "deprecated_registry_config",
    /// A hosts.toml that is not valid TOML or has an invalid value: containerd ignores it.
    BadToml => "bad_toml",
    /// A hosts.toml without any `[host]` table: containerd 1.x ignores it.
    HostsTomlIgnored => "hosts_toml_ignored",
    /// A `[host]` without pull or resolve capability.
    EndpointNotForPull => "endpoint_not_for_pull",
    /// A `[host]` whose capabilities exclude it from the kind of pull modelled (pull-only hosts
    /// do not resolve tags).
    EndpointNotForThisPull => "endpoint_not_for_this_pull",
    /// An endpoint configured with skip_verify.
    SkipVerify => "skip_verify",
    /// A loopback registry containerd does not verify (or dials over plain HTTP).
    LoopbackInsecure => "loopback_insecure",
    /// A configured CA file that does not exist.
    CaMissing => "ca_missing",
    /// A configured CA file that cannot be read (permissions, not a regular file, too large, …).
    CaUnreadable => "ca_unreadable",
    /// A CA file without any PEM certificate.
    CaNoCert => "ca_no_cert",
    /// A `.crt`/`.pem` beside a hosts.toml that no `ca` names.
    CaFileUnused => "ca_file_unused",
    /// A `.pem` where the runtime only reads `.crt`.
    IgnoredPem => "ignored_pem",
    /// A PEM block the runtime skips (not a certificate, or not parseable).
    PemBlockSkipped => "pem_block_skipped",
    /// A `.cert` without its `.key`.
    ClientKeyMissing => "client_key_missing",
    /// A `.key` without its `.cert`.
    ClientCertMissing => "client_cert_missing",
    /// A client certificate/key pair that does not load.
    ClientCertUnusable => "client_cert_unusable",
    /// A certs.d directory that cannot be listed.
    CertDirUnreadable => "cert_dir_unreadable",
    /// A discovered host directory whose name is not a registry name: skipped.
    InvalidHostDir => "invalid_host_dir",
    /// More endpoints than regtrust probes for one registry: the rest are not probed.
    TooManyEndpoints => "too_many_endpoints",
    /// The node has no system root certificates.
    NoSystemRoots => "no_system_roots",
    /// The system CA bundle cannot be read.
    SystemBundleError => "system_bundle_error",
    /// The system CA bundle is larger than regtrust reads.
    SystemBundleTooLarge => "system_bundle_too_large",
    /// An endpoint fails and the runtime falls through to a later one.
    Degraded => "degraded",
    /// The expected CA (agent config) cannot be read.
    ExpectedCaUnreadable => "expected_ca_unreadable",
    /// The runtime's Go version is unknown: verdicts follow the newest modelled Go release.
    RuntimeGoUnknown => "runtime_go_unknown",
    /// The runtime's Go is outside the releases regtrust models.
    RuntimeGoNotModelled => "runtime_go_not_modelled",
    /// containerd's version is unknown or not modelled: its endpoint rules follow another release.
    RuntimeVersionUnmodelled => "runtime_version_unmodelled",
    /// containers/image: the registries.conf entry (or one it names) is `blocked`.
    RegistryBlocked => "registry_blocked",
    /// A registries.conf entry whose effect a registry-level check can only describe.
    RegistriesConf => "registries_conf",
    /// The runtime reaches the registry over plain HTTP (ok, but nothing is verified).
    InsecureHttp => "insecure_http",
    /// The node's distribution (k3s, RKE2, OpenShift, kubeadm, SUSE) and what it changes.
    Distribution => "distribution",
}

impl fmt::Display for FindingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for FindingKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Something found while loading trust that a person should know about.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Finding {
    pub kind: FindingKind,
    /// The node path concerned, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    pub message: String,
}

impl Finding {
    pub fn new(kind: FindingKind, path: Option<&Path>, message: impl Into<String>) -> Self {
        Finding {
            kind,
            path: path.map(|p| p.display().to_string()),
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_are_unique_snake_case_and_serialize_as_named() {
        let mut seen = std::collections::HashSet::new();
        for k in FindingKind::ALL {
            let name = k.as_str();
            assert!(seen.insert(name), "{name} twice");
            assert!(
                !name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{name} is not snake_case"
            );
            assert_eq!(k.to_string(), name);
            assert_eq!(serde_json::to_string(k).unwrap(), format!("\"{name}\""));
        }
        let f = Finding::new(FindingKind::IgnoredPem, None, "m");
        assert_eq!(
            serde_json::to_string(&f).unwrap(),
            r#"{"kind":"ignored_pem","message":"m"}"#
        );
    }
}
