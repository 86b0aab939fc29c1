//! Which distribution laid out the node, read from its files under the host root, and what that
//! changes for trust: k3s and RKE2 run their own containerd, whose config and certs.d live under
//! `/var/lib/rancher/{k3s,rke2}/agent/etc/containerd` (generated from `registries.yaml`); SUSE's
//! system bundle links into `/var/lib/ca-certificates`; OpenShift and many kubeadm nodes run CRI-O.
//!
//! Pure file-existence checks through [`HostRoot`]; the result is a finding for a person and, for
//! k3s/RKE2, the containerd config to read when the default one is absent.

use std::path::{Path, PathBuf};

use crate::hostroot::HostRoot;

use super::{Finding, FindingKind, Runtime, DEFAULT_CONTAINERD_CONFIG};

/// A distribution regtrust knows the layout of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Distro {
    K3s,
    Rke2,
    OpenShift,
    Kubeadm,
    Suse,
}

impl Distro {
    pub fn as_str(self) -> &'static str {
        match self {
            Distro::K3s => "k3s",
            Distro::Rke2 => "rke2",
            Distro::OpenShift => "openshift",
            Distro::Kubeadm => "kubeadm",
            Distro::Suse => "suse",
        }
    }

    /// The containerd config the distribution's own containerd reads, if it has its own.
    pub fn containerd_config(self) -> Option<&'static str> {
        match self {
            Distro::K3s => Some("/var/lib/rancher/k3s/agent/etc/containerd/config.toml"),
            Distro::Rke2 => Some("/var/lib/rancher/rke2/agent/etc/containerd/config.toml"),
            _ => None,
        }
    }

    /// Where the distribution keeps the registry settings it turns into hosts.toml files.
    fn registries_yaml(self) -> Option<&'static str> {
        match self {
            Distro::K3s => Some("/etc/rancher/k3s/registries.yaml"),
            Distro::Rke2 => Some("/etc/rancher/rke2/registries.yaml"),
            _ => None,
        }
    }
}

/// The marker files of each distribution, any one of which is enough.
const MARKERS: &[(Distro, &[&str])] = &[
    (
        Distro::K3s,
        &[
            "/var/lib/rancher/k3s/agent/etc/containerd/config.toml",
            "/etc/rancher/k3s",
        ],
    ),
    (
        Distro::Rke2,
        &[
            "/var/lib/rancher/rke2/agent/etc/containerd/config.toml",
            "/etc/rancher/rke2",
        ],
    ),
    (
        Distro::OpenShift,
        &[
            "/etc/machine-config-daemon",
            "/etc/mcs-machine-config-content.json",
        ],
    ),
    (
        Distro::Kubeadm,
        &[
            "/etc/kubernetes/manifests/kube-apiserver.yaml",
            "/etc/kubernetes/kubelet.conf",
        ],
    ),
    (
        Distro::Suse,
        &["/var/lib/ca-certificates/ca-bundle.pem", "/etc/SUSE-brand"],
    ),
];

/// What the node's files say about its distribution.
#[derive(Debug, Clone, Default)]
pub struct Profile {
    pub distros: Vec<Distro>,
    /// The containerd config to read instead of the default one, when the default is absent and
    /// the distribution's own containerd has one.
    pub containerd_config: Option<PathBuf>,
    pub findings: Vec<Finding>,
}

fn exists(hr: &HostRoot, p: &str) -> bool {
    hr.metadata(Path::new(p)).is_ok()
}

/// Reads the profile. `runtime` and `containerd_config` are the settings in force.
pub fn detect(hr: &HostRoot, runtime: Runtime, containerd_config: &Path) -> Profile {
    let distros: Vec<Distro> = MARKERS
        .iter()
        .filter(|(_, files)| files.iter().any(|f| exists(hr, f)))
        .map(|(d, _)| *d)
        .collect();
    let mut p = Profile {
        distros,
        ..Profile::default()
    };
    if p.distros.is_empty() {
        return p;
    }
    let default_config = containerd_config == Path::new(DEFAULT_CONTAINERD_CONFIG);
    let mut notes: Vec<String> = Vec::new();
    for d in p.distros.clone() {
        match (d.containerd_config(), runtime) {
            (Some(cfg), Runtime::Containerd) if exists(hr, cfg) => {
                if default_config && !exists(hr, DEFAULT_CONTAINERD_CONFIG) {
                    p.containerd_config = Some(PathBuf::from(cfg));
                    notes.push(format!("{}: its containerd reads {cfg}", d.as_str()));
                } else if p.containerd_config.is_none() {
                    notes.push(format!(
                        "{}: its containerd reads {cfg}, but {} is the config in use (give --containerd-config {cfg} if the kubelet talks to the {} containerd)",
                        d.as_str(),
                        containerd_config.display(),
                        d.as_str()
                    ));
                }
                if let Some(y) = d.registries_yaml().filter(|y| exists(hr, y)) {
                    notes.push(format!(
                        "{} writes the hosts.toml files from {y}; edit that file, not certs.d",
                        d.as_str()
                    ));
                }
            }
            (_, Runtime::Containerd) if d == Distro::OpenShift => notes.push(
                "openshift: the runtime is CRI-O (--runtime crio), not containerd".into(),
            ),
            (_, _) if d == Distro::Suse => notes.push(
                "suse: the system bundle links into /var/lib/ca-certificates (mount the node's / at the host root, or roots go missing)".into(),
            ),
            _ => notes.push(d.as_str().to_string()),
        }
    }
    p.findings.push(Finding::new(
        FindingKind::Distribution,
        None,
        format!("node layout: {}", notes.join("; ")),
    ));
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[&str]) -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        for f in files {
            let p = t.path().join(f.trim_start_matches('/'));
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, "x").unwrap();
        }
        t
    }

    fn detect_in(files: &[&str], rt: Runtime) -> Profile {
        let t = tree(files);
        detect(
            &HostRoot::new(t.path()),
            rt,
            Path::new(DEFAULT_CONTAINERD_CONFIG),
        )
    }

    #[test]
    fn k3s_and_rke2_use_their_own_containerd_config_when_the_default_is_absent() {
        for (d, cfg, yaml) in [
            (
                Distro::K3s,
                "/var/lib/rancher/k3s/agent/etc/containerd/config.toml",
                "/etc/rancher/k3s/registries.yaml",
            ),
            (
                Distro::Rke2,
                "/var/lib/rancher/rke2/agent/etc/containerd/config.toml",
                "/etc/rancher/rke2/registries.yaml",
            ),
        ] {
            let p = detect_in(&[cfg, yaml], Runtime::Containerd);
            assert_eq!(p.distros, vec![d]);
            assert_eq!(p.containerd_config.as_deref(), Some(Path::new(cfg)));
            let msg = &p.findings[0].message;
            assert!(msg.contains(cfg) && msg.contains(yaml), "{msg}");
            // With the default config present, the default stays and the finding says so.
            let p = detect_in(&[cfg, DEFAULT_CONTAINERD_CONFIG], Runtime::Containerd);
            assert_eq!(p.containerd_config, None);
            assert!(p.findings[0].message.contains("--containerd-config"));
        }
    }

    #[test]
    fn kubeadm_openshift_and_suse_are_named() {
        let p = detect_in(
            &["/etc/kubernetes/manifests/kube-apiserver.yaml"],
            Runtime::Containerd,
        );
        assert_eq!(p.distros, vec![Distro::Kubeadm]);
        assert_eq!(p.containerd_config, None);
        let p = detect_in(&["/etc/machine-config-daemon/x"], Runtime::Containerd);
        assert_eq!(p.distros, vec![Distro::OpenShift]);
        assert!(p.findings[0].message.contains("--runtime crio"));
        let p = detect_in(&["/var/lib/ca-certificates/ca-bundle.pem"], Runtime::Crio);
        assert_eq!(p.distros, vec![Distro::Suse]);
        assert!(p.findings[0].message.contains("/var/lib/ca-certificates"));
        assert_eq!(p.findings[0].kind, FindingKind::Distribution);
    }

    #[test]
    fn a_k3s_node_is_checked_with_the_trust_k3s_gives_its_containerd() {
        use crate::trust::testutil::{ca_pem, write};
        use crate::trust::{TrustLoader, TrustSettings};
        let t = tempfile::tempdir().unwrap();
        let base = "/var/lib/rancher/k3s/agent/etc/containerd";
        write(
            t.path(),
            &format!("{base}/config.toml"),
            format!("version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\nconfig_path = \"{base}/certs.d\"\n"),
        );
        write(
            t.path(),
            &format!("{base}/certs.d/r.test:5000/hosts.toml"),
            "server = \"https://r.test:5000\"\n[host.\"https://r.test:5000\"]\n  capabilities = [\"pull\", \"resolve\"]\n  ca = \"ca.crt\"\n",
        );
        write(
            t.path(),
            &format!("{base}/certs.d/r.test:5000/ca.crt"),
            ca_pem("k3s CA"),
        );
        let settings = TrustSettings {
            host_root: HostRoot::new(t.path()),
            runtime: Runtime::Containerd,
            hosts_dir: None,
            containerd_config: PathBuf::from(DEFAULT_CONTAINERD_CONFIG),
            runtime_version: None,
        };
        let loader = TrustLoader::new(&settings).unwrap();
        let rt = loader.registry("r.test:5000");
        assert_eq!(
            rt.host_dir.as_deref(),
            Some(format!("{base}/certs.d/r.test:5000").as_str())
        );
        assert!(rt.endpoints[0]
            .cas
            .iter()
            .any(|c| c.cert.subject.contains("k3s CA")));
        assert!(loader
            .findings()
            .iter()
            .any(|f| f.kind == FindingKind::Distribution && f.message.contains("k3s")));
    }

    #[test]
    fn an_unknown_layout_says_nothing() {
        let p = detect_in(&["/etc/containerd/config.toml"], Runtime::Containerd);
        assert!(p.distros.is_empty() && p.findings.is_empty());
    }
}
