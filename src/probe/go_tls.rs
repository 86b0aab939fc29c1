//! The TLS handshake the runtime's Go would make: which protocol versions, cipher suites, key
//! exchange groups and signature schemes its `crypto/tls` client offers, per runtime and Go
//! release ([`offer`]), and the names Go gives them (`tls.VersionName`, `tls.CipherSuiteName`,
//! the alert texts of `crypto/tls/alert.go`). Pure tables, each citing the Go or runtime code it
//! follows.
//!
//! The probe offers exactly this: rustls is restricted to the part of it rustls implements, and
//! what only the rest would complete (CBC suites, RSA key exchange, P-521, TLS 1.0/1.1) goes over
//! the second stack ([`super::second_stack`]), so neither a suite only rustls offers nor one only
//! Go offers decides "ok".
//!
//! What the runtimes configure:
//! - containerd (`remotes/docker/config/hosts.go`, `ConfigureHosts`: `&tls.Config{}` unless the
//!   caller passes `DefaultTLS`; the same in 1.6, 1.7 and 2.x): Go's client defaults — TLS 1.2 to 1.3
//!   (the client minimum is TLS 1.2 from go1.18, `(*Config).supportedVersions`), Go's default
//!   suites for that release.
//! - CRI-O and podman (containers/image v5.23, `docker/docker_client.go`, `serverDefault()`):
//!   `MinVersion: tls.VersionTLS10`, `CipherSuites: tlsconfig.DefaultServerAcceptedCiphers` of
//!   docker/go-connections v0.4.0 (ECDHE with AES-GCM and AES-CBC-SHA: no RSA key exchange, no
//!   ChaCha20). An explicit list is not touched by the `tlsrsakex`/`tls3des` GODEBUGs.
//! - Docker (moby `registry/registry.go`, `newTLSConfig`: `tlsconfig.ServerDefault()` of
//!   go-connections v0.4.0): TLS 1.2 minimum, the same explicit list.
//!
//! Checked against the real containerd 1.6.20 and skopeo 1.9.3 (both go1.19.8) in
//! `tests/tls_offer.rs`; the tables for later Go releases follow the Go sources cited below.
//!
//! Never does: I/O.

use crate::trust::Runtime;
use crate::verify::GoVersion;

/// A TLS protocol version, as Go numbers and names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Version {
    Tls10,
    Tls11,
    Tls12,
    Tls13,
}

impl Version {
    /// Go's `tls.VersionName` (go1.21; the same words in the handshake's errors before).
    pub fn go_name(self) -> &'static str {
        match self {
            Version::Tls10 => "TLS 1.0",
            Version::Tls11 => "TLS 1.1",
            Version::Tls12 => "TLS 1.2",
            Version::Tls13 => "TLS 1.3",
        }
    }

    /// The version from its wire number.
    pub fn from_wire(v: u16) -> Option<Version> {
        match v {
            0x0301 => Some(Version::Tls10),
            0x0302 => Some(Version::Tls11),
            0x0303 => Some(Version::Tls12),
            0x0304 => Some(Version::Tls13),
            _ => None,
        }
    }
}

/// How a TLS 1.0–1.2 suite agrees on keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyExchange {
    Ecdhe,
    /// The client encrypts the premaster secret to the server's RSA key (no forward secrecy).
    Rsa,
}

/// One TLS 1.0–1.2 cipher suite Go implements and may offer.
#[derive(Debug, PartialEq, Eq)]
pub struct Suite {
    pub id: u16,
    /// Go's `tls.CipherSuiteName`.
    pub name: &'static str,
    /// OpenSSL's name, for the second stack.
    pub openssl: &'static str,
    pub kx: KeyExchange,
    pub triple_des: bool,
}

const fn suite(id: u16, name: &'static str, openssl: &'static str, kx: KeyExchange) -> Suite {
    Suite {
        id,
        name,
        openssl,
        kx,
        triple_des: false,
    }
}

use KeyExchange::{Ecdhe, Rsa};

/// Go's TLS 1.0–1.2 suites that a default client may offer, in `cipherSuitesPreferenceOrder`
/// (`crypto/tls/cipher_suites.go`, go1.17 and later, the order with AES hardware). The suites in
/// `disabledCipherSuites` (CBC with SHA-256, RC4) are never offered by default and by no
/// runtime's explicit list, so they are not here.
pub const SUITES: &[Suite] = &[
    suite(
        0xc02b,
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        Ecdhe,
    ),
    suite(
        0xc02f,
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        Ecdhe,
    ),
    suite(
        0xc02c,
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        Ecdhe,
    ),
    suite(
        0xc030,
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        Ecdhe,
    ),
    suite(
        0xcca9,
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        Ecdhe,
    ),
    suite(
        0xcca8,
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        "ECDHE-RSA-CHACHA20-POLY1305",
        Ecdhe,
    ),
    suite(
        0xc009,
        "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
        "ECDHE-ECDSA-AES128-SHA",
        Ecdhe,
    ),
    suite(
        0xc013,
        "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
        "ECDHE-RSA-AES128-SHA",
        Ecdhe,
    ),
    suite(
        0xc00a,
        "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
        "ECDHE-ECDSA-AES256-SHA",
        Ecdhe,
    ),
    suite(
        0xc014,
        "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
        "ECDHE-RSA-AES256-SHA",
        Ecdhe,
    ),
    suite(
        0x009c,
        "TLS_RSA_WITH_AES_128_GCM_SHA256",
        "AES128-GCM-SHA256",
        Rsa,
    ),
    suite(
        0x009d,
        "TLS_RSA_WITH_AES_256_GCM_SHA384",
        "AES256-GCM-SHA384",
        Rsa,
    ),
    suite(0x002f, "TLS_RSA_WITH_AES_128_CBC_SHA", "AES128-SHA", Rsa),
    suite(0x0035, "TLS_RSA_WITH_AES_256_CBC_SHA", "AES256-SHA", Rsa),
    Suite {
        triple_des: true,
        ..suite(
            0xc012,
            "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
            "ECDHE-RSA-DES-CBC3-SHA",
            Ecdhe,
        )
    },
    Suite {
        triple_des: true,
        ..suite(0x000a, "TLS_RSA_WITH_3DES_EDE_CBC_SHA", "DES-CBC3-SHA", Rsa)
    },
];

/// The TLS 1.3 suites: Go always offers all three (`cipherSuitesTLS13`; `Config.CipherSuites`
/// does not apply to TLS 1.3), by Go's names.
pub const TLS13_SUITES: &[(u16, &str)] = &[
    (0x1301, "TLS_AES_128_GCM_SHA256"),
    (0x1302, "TLS_AES_256_GCM_SHA384"),
    (0x1303, "TLS_CHACHA20_POLY1305_SHA256"),
];

/// docker/go-connections v0.4.0 `tlsconfig.DefaultServerAcceptedCiphers` (`config.go`
/// `clientCipherSuites` + `config_client_ciphers.go` `acceptedCBCCiphers`), the explicit list of
/// containers/image v5.23 and of moby's registry client.
const GO_CONNECTIONS_V0_4: &[u16] = &[
    0xc030, 0xc02c, 0xc02f, 0xc02b, // ECDHE with AES-GCM
    0xc00a, 0xc014, 0xc009, 0xc013, // ECDHE with AES-CBC-SHA
];

/// Go's name for any suite id (`tls.CipherSuiteName`: `0x%04X` for one it does not know).
pub fn suite_name(id: u16) -> String {
    SUITES
        .iter()
        .map(|s| (s.id, s.name))
        .chain(TLS13_SUITES.iter().copied())
        .find(|(i, _)| *i == id)
        .map_or_else(|| format!("0x{id:04X}"), |(_, n)| n.to_string())
}

/// A key exchange group (`tls.CurveID`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// X25519 + ML-KEM-768 (TLS 1.3 only), go1.24 and later.
    X25519MlKem768,
    X25519,
    P256,
    P384,
    P521,
}

impl Group {
    /// OpenSSL's group name, for the second stack.
    pub fn openssl(self) -> &'static str {
        match self {
            Group::X25519MlKem768 => "X25519MLKEM768",
            Group::X25519 => "X25519",
            Group::P256 => "P-256",
            Group::P384 => "P-384",
            Group::P521 => "P-521",
        }
    }
}

/// A handshake signature scheme Go's client accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scheme {
    pub rustls: rustls::SignatureScheme,
    /// OpenSSL's name (3.0 knows the SHA-1 ones only as `ALG+HASH`).
    pub openssl: &'static str,
    /// SHA-1: TLS 1.2 only, and not from go1.25 unless `tlssha1=1`.
    pub sha1: bool,
}

/// Go's `supportedSignatureAlgorithms` (`crypto/tls/common.go`), in its order.
pub fn go_schemes() -> Vec<Scheme> {
    use rustls::SignatureScheme as S;
    let s = |rustls, openssl, sha1| Scheme {
        rustls,
        openssl,
        sha1,
    };
    vec![
        s(S::RSA_PSS_SHA256, "rsa_pss_rsae_sha256", false),
        s(S::ECDSA_NISTP256_SHA256, "ecdsa_secp256r1_sha256", false),
        s(S::ED25519, "ed25519", false),
        s(S::RSA_PSS_SHA384, "rsa_pss_rsae_sha384", false),
        s(S::RSA_PSS_SHA512, "rsa_pss_rsae_sha512", false),
        s(S::RSA_PKCS1_SHA256, "rsa_pkcs1_sha256", false),
        s(S::RSA_PKCS1_SHA384, "rsa_pkcs1_sha384", false),
        s(S::RSA_PKCS1_SHA512, "rsa_pkcs1_sha512", false),
        s(S::ECDSA_NISTP384_SHA384, "ecdsa_secp384r1_sha384", false),
        s(S::ECDSA_NISTP521_SHA512, "ecdsa_secp521r1_sha512", false),
        s(S::RSA_PKCS1_SHA1, "RSA+SHA1", true),
        s(S::ECDSA_SHA1_Legacy, "ECDSA+SHA1", true),
    ]
}

/// The `GODEBUG` settings the runtime's Go runs with: the defaults its build recorded
/// (`DefaultGODEBUG`, from go.mod's `go` line and `godebug` directives, go1.21 and later), later
/// entries winning as in Go's `internal/godebug`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GoDebug(Vec<(String, String)>);

impl GoDebug {
    /// Parses `k=v,k=v` (entries without `=` are ignored, as Go ignores them).
    pub fn parse(s: &str) -> GoDebug {
        GoDebug(
            s.split(',')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .collect(),
        )
    }

    /// The value of `key`, the last one given.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn is(&self, key: &str, value: &str) -> bool {
        self.get(key) == Some(value)
    }
}

/// What the runtime's Go client offers in its ClientHello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// The lowest version offered; the highest is always TLS 1.3 (no runtime sets MaxVersion).
    pub min: Version,
    /// TLS 1.0–1.2 suites, in Go's preference order.
    pub suites: Vec<&'static Suite>,
    pub groups: Vec<Group>,
    /// Whether SHA-1 handshake signatures are accepted in TLS 1.2.
    pub sha1_signatures: bool,
    /// Where this offer comes from, for the report.
    pub origin: &'static str,
}

impl Offer {
    /// The signature schemes offered (TLS 1.3 servers never pick the SHA-1 ones).
    pub fn schemes(&self) -> Vec<Scheme> {
        go_schemes()
            .into_iter()
            .filter(|s| self.sha1_signatures || !s.sha1)
            .collect()
    }

    pub fn offers_suite(&self, id: u16) -> bool {
        self.suites.iter().any(|s| s.id == id)
    }
}

/// The offer of `runtime` built with `go`, running with `godebug` (see the module documentation).
pub fn offer(runtime: Runtime, go: GoVersion, godebug: &GoDebug) -> Offer {
    let (min, suites, origin) = match runtime {
        Runtime::Containerd => (
            Version::Tls12,
            go_default_suites(go, godebug),
            "containerd: Go's crypto/tls client defaults (hosts.go: &tls.Config{})",
        ),
        Runtime::Crio => (
            Version::Tls10,
            listed(GO_CONNECTIONS_V0_4),
            "containers/image: serverDefault() (TLS 1.0 minimum, go-connections v0.4.0 suites)",
        ),
        Runtime::Docker => (
            Version::Tls12,
            listed(GO_CONNECTIONS_V0_4),
            "moby registry: tlsconfig.ServerDefault() (go-connections v0.4.0)",
        ),
    };
    Offer {
        min,
        suites,
        groups: go_default_groups(go, godebug),
        sha1_signatures: go_accepts_sha1_signatures(go, godebug),
        origin,
    }
}

/// An explicit `Config.CipherSuites`: Go offers the listed ones it implements, in its own
/// preference order (go1.17: the list's order is ignored).
fn listed(ids: &[u16]) -> Vec<&'static Suite> {
    SUITES.iter().filter(|s| ids.contains(&s.id)).collect()
}

/// Go's default TLS 1.0–1.2 suites (`Config.CipherSuites` nil).
///
/// - go1.19–go1.21: every suite of `cipherSuitesPreferenceOrder` but `disabledCipherSuites`
///   (`crypto/tls/cipher_suites.go`, `defaultCipherSuites` via `(*Config).cipherSuites`).
/// - go1.22: RSA key exchange off unless `GODEBUG=tlsrsakex=1` (`cipher_suites.go`,
///   `rsaKexCiphers`; `common.go`, `(*Config).cipherSuites`).
/// - go1.23: 3DES off unless `GODEBUG=tls3des=1` (`defaults.go`, `defaultCipherSuites`,
///   `tdesCiphers`).
pub fn go_default_suites(go: GoVersion, godebug: &GoDebug) -> Vec<&'static Suite> {
    let rsa_kex = go < GoVersion::new(22, 0) || godebug.is("tlsrsakex", "1");
    let triple_des = go < GoVersion::new(23, 0) || godebug.is("tls3des", "1");
    SUITES
        .iter()
        .filter(|s| rsa_kex || s.kx != Rsa)
        .filter(|s| triple_des || !s.triple_des)
        .collect()
}

/// Go's default groups (`Config.CurvePreferences` nil; `common.go`, `defaultCurvePreferences`):
/// X25519, P-256, P-384, P-521; from go1.24 X25519MLKEM768 first unless `GODEBUG=tlsmlkem=0`
/// (`defaults.go`, `defaultCurvePreferences`). go1.23's X25519Kyber768Draft00 (`tlskyber`) is
/// implemented by neither stack and only ever offered beside X25519, so it is not modelled.
pub fn go_default_groups(go: GoVersion, godebug: &GoDebug) -> Vec<Group> {
    let mut g = Vec::new();
    if go >= GoVersion::new(24, 0) && !godebug.is("tlsmlkem", "0") {
        g.push(Group::X25519MlKem768);
    }
    g.extend([Group::X25519, Group::P256, Group::P384, Group::P521]);
    g
}

/// SHA-1 handshake signatures in TLS 1.2: accepted before go1.25, which disallows them per RFC
/// 9155 unless `GODEBUG=tlssha1=1` (`crypto/tls/common.go`, `supportedSignatureAlgorithms` and
/// the `tlssha1` setting).
pub fn go_accepts_sha1_signatures(go: GoVersion, godebug: &GoDebug) -> bool {
    go < GoVersion::new(25, 0) || godebug.is("tlssha1", "1")
}

/// Go's text for a TLS alert (`crypto/tls/alert.go`, `alertText`; `alert(N)` for others).
pub fn alert_text(code: u8) -> String {
    let t = match code {
        0 => "close notify",
        10 => "unexpected message",
        20 => "bad record MAC",
        21 => "decryption failed",
        22 => "record overflow",
        30 => "decompression failure",
        40 => "handshake failure",
        42 => "bad certificate",
        43 => "unsupported certificate",
        44 => "revoked certificate",
        45 => "expired certificate",
        46 => "unknown certificate",
        47 => "illegal parameter",
        48 => "unknown certificate authority",
        49 => "access denied",
        50 => "error decoding message",
        51 => "error decrypting message",
        60 => "export restriction",
        70 => "protocol version not supported",
        71 => "insufficient security level",
        80 => "internal error",
        86 => "inappropriate fallback",
        90 => "user canceled",
        100 => "no renegotiation",
        109 => "missing extension",
        110 => "unsupported extension",
        111 => "certificate unobtainable",
        112 => "unrecognized name",
        113 => "bad certificate status response",
        114 => "bad certificate hash value",
        115 => "unknown PSK identity",
        116 => "certificate required",
        120 => "no application protocol",
        other => return format!("alert({other})"),
    };
    t.to_string()
}

/// Go's error for a fatal alert the server sent (`(alert).Error` wrapped as `remote error`).
pub fn remote_alert(code: u8) -> String {
    format!("remote error: tls: {}", alert_text(code))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(o: &Offer) -> Vec<u16> {
        o.suites.iter().map(|s| s.id).collect()
    }

    const NONE: &GoDebug = &GoDebug(Vec::new());

    #[test]
    fn containerd_on_go1_19_offers_cbc_rsa_kex_and_3des() {
        // crypto/tls cipher_suites.go (go1.19): defaultCipherSuites = cipherSuitesPreferenceOrder
        // minus disabledCipherSuites.
        let o = offer(Runtime::Containerd, GoVersion::new(19, 8), NONE);
        assert_eq!(o.min, Version::Tls12);
        assert_eq!(ids(&o).len(), 16);
        for id in [0xc013, 0x002f, 0x009c, 0xc012, 0x000a, 0xcca8] {
            assert!(o.offers_suite(id), "{id:04x}");
        }
        // CBC with SHA-256 and RC4 are in disabledCipherSuites.
        for id in [0xc027, 0xc023, 0x003c, 0x0005, 0xc011] {
            assert!(!o.offers_suite(id), "{id:04x}");
        }
        assert_eq!(
            o.groups,
            [Group::X25519, Group::P256, Group::P384, Group::P521]
        );
        assert!(o.sha1_signatures);
    }

    #[test]
    fn go1_22_drops_rsa_key_exchange_unless_tlsrsakex() {
        // crypto/tls common.go (go1.22) (*Config).cipherSuites: tlsrsakex.
        let o = offer(Runtime::Containerd, GoVersion::new(22, 0), NONE);
        assert!(!o.offers_suite(0x002f) && !o.offers_suite(0x009c));
        assert!(o.offers_suite(0xc013) && o.offers_suite(0xc012));
        let o21 = offer(Runtime::Containerd, GoVersion::new(21, 13), NONE);
        assert!(o21.offers_suite(0x002f));
        let back = GoDebug::parse("httpmuxgo121=1,tlsrsakex=1");
        let o = offer(Runtime::Containerd, GoVersion::new(22, 5), &back);
        assert!(o.offers_suite(0x002f) && o.offers_suite(0x0035));
    }

    #[test]
    fn go1_23_drops_3des_unless_tls3des() {
        // crypto/tls defaults.go (go1.23) defaultCipherSuites: tdesCiphers behind tls3des.
        let o = offer(Runtime::Containerd, GoVersion::new(23, 0), NONE);
        assert!(!o.offers_suite(0xc012) && !o.offers_suite(0x000a));
        let o22 = offer(Runtime::Containerd, GoVersion::new(22, 12), NONE);
        assert!(o22.offers_suite(0xc012));
        let both = GoDebug::parse("tls3des=1,tlsrsakex=1");
        let o = offer(Runtime::Containerd, GoVersion::new(24, 3), &both);
        assert_eq!(ids(&o).len(), 16);
    }

    #[test]
    fn go1_24_adds_mlkem_unless_tlsmlkem_0() {
        // crypto/tls defaults.go (go1.24) defaultCurvePreferences.
        let v = GoVersion::new;
        assert_eq!(go_default_groups(v(23, 6), NONE).len(), 4);
        assert_eq!(go_default_groups(v(24, 0), NONE)[0], Group::X25519MlKem768);
        assert_eq!(
            go_default_groups(v(25, 5), &GoDebug::parse("tlsmlkem=0")),
            [Group::X25519, Group::P256, Group::P384, Group::P521]
        );
    }

    #[test]
    fn go1_25_refuses_sha1_signatures_unless_tlssha1() {
        // crypto/tls common.go (go1.25): SHA-1 disallowed in TLS 1.2 (RFC 9155), GODEBUG tlssha1.
        let v = GoVersion::new;
        assert!(go_accepts_sha1_signatures(v(24, 11), NONE));
        assert!(!go_accepts_sha1_signatures(v(25, 0), NONE));
        assert!(go_accepts_sha1_signatures(
            v(25, 5),
            &GoDebug::parse("tlssha1=1")
        ));
        let o = offer(Runtime::Containerd, v(25, 5), NONE);
        assert!(o.schemes().iter().all(|s| !s.sha1));
        assert_eq!(
            offer(Runtime::Containerd, v(19, 0), NONE).schemes().len(),
            12
        );
    }

    #[test]
    fn containers_image_offers_tls10_and_only_go_connections_suites() {
        // containers/image v5.23 docker/docker_client.go serverDefault(); go-connections v0.4.0.
        for go in [GoVersion::new(19, 8), GoVersion::new(25, 5)] {
            let o = offer(Runtime::Crio, go, &GoDebug::parse("tlsrsakex=1"));
            assert_eq!(o.min, Version::Tls10);
            // Go's preference order, not the list's.
            assert_eq!(
                ids(&o),
                [0xc02b, 0xc02f, 0xc02c, 0xc030, 0xc009, 0xc013, 0xc00a, 0xc014]
            );
        }
        let d = offer(Runtime::Docker, GoVersion::new(19, 8), NONE);
        assert_eq!(d.min, Version::Tls12);
        assert!(!d.offers_suite(0xcca8) && !d.offers_suite(0x002f));
    }

    #[test]
    fn names_as_go_prints_them() {
        assert_eq!(suite_name(0xc013), "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA");
        assert_eq!(suite_name(0x1303), "TLS_CHACHA20_POLY1305_SHA256");
        assert_eq!(suite_name(0xc027), "0xC027");
        assert_eq!(
            Version::from_wire(0x0302).map(Version::go_name),
            Some("TLS 1.1")
        );
        assert_eq!(remote_alert(40), "remote error: tls: handshake failure");
        assert_eq!(
            remote_alert(70),
            "remote error: tls: protocol version not supported"
        );
        assert_eq!(alert_text(200), "alert(200)");
        assert_eq!(GoDebug::parse("a=1,b,a=2").get("a"), Some("2"));
    }
}
