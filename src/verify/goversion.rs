//! Which Go a verdict is modelled on: [`GoVersion`], parsed from what a Go binary records
//! (`go1.19.8`, `go1.22rc1`, `devel go1.23-abc…`) or from a setting (`1.19`, `go1.21.3`), and the
//! Go releases whose rules are modelled ([`GoVersion::OLDEST_MODELLED`] ..= [`GoVersion::NEWEST`]).
//!
//! The rules that change with the version ask for a threshold here (e.g.
//! [`GoVersion::checks_constraints_per_chain`]), each citing the Go change it follows, so the
//! table of versions is read in one place.
//!
//! Never does: I/O.

use std::fmt;

/// A Go release, `go1.MINOR.PATCH` (pre-releases count as the `.0` release).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GoVersion {
    pub minor: u32,
    pub patch: u32,
}

impl GoVersion {
    /// The oldest Go whose rules regtrust models (Debian 12's containerd and skopeo: go1.19.8).
    pub const OLDEST_MODELLED: GoVersion = GoVersion::new(19, 0);
    /// The newest Go release whose rules regtrust models; what a verdict assumes when the
    /// runtime's Go is not known.
    pub const NEWEST: GoVersion = GoVersion::new(25, 5);

    pub const fn new(minor: u32, patch: u32) -> GoVersion {
        GoVersion { minor, patch }
    }

    /// Parses `go1.19.8`, `1.19`, `go1.22rc1`, `go1.21.0-bigcorp`, `devel go1.23-1234abcd …`.
    /// `None` for anything that is not a Go 1.x version.
    pub fn parse(s: &str) -> Option<GoVersion> {
        let s = s.trim();
        let s = s.strip_prefix("devel ").unwrap_or(s);
        let s = s.strip_prefix("go").unwrap_or(s);
        let rest = s.strip_prefix("1.")?;
        let digits = |t: &str| -> (Option<u32>, usize) {
            let n = t.bytes().take_while(u8::is_ascii_digit).count();
            (t[..n].parse().ok(), n)
        };
        let (minor, n) = digits(rest);
        let minor = minor?;
        let after = &rest[n..];
        let patch = match after.strip_prefix('.') {
            Some(p) => digits(p).0?,
            // `rc1`, `beta2`, `-bigcorp`, ` X:…` or nothing: the .0 release (or before it).
            None => 0,
        };
        Some(GoVersion { minor, patch })
    }

    /// Whether regtrust models this release's rules (older and newer ones are approximated by
    /// the nearest modelled release, and the report says so).
    pub fn is_modelled(self) -> bool {
        (GoVersion::OLDEST_MODELLED..=GoVersion::NEWEST).contains(&self)
    }

    /// `self >= 1.minor.patch` within a release branch, or any later release.
    fn at_least(self, minor: u32, patch: u32) -> bool {
        self >= GoVersion::new(minor, patch)
    }

    /// A fix backported to several release branches: in `(minor, patch)` for each branch, and
    /// in every release after the newest listed branch.
    fn has_fix(self, branches: &[(u32, u32)]) -> bool {
        let newest = branches.iter().map(|b| b.0).max().unwrap_or(0);
        if self.minor > newest {
            return true;
        }
        branches
            .iter()
            .any(|&(minor, patch)| self.minor == minor && self.patch >= patch)
    }

    /// Name constraints are checked once per built chain, after chain building, permitted
    /// before excluded and with no comparison bound — Go's fix for CVE-2025-58187
    /// (`crypto/x509/constraints.go`, `checkChainConstraints`; go1.24.8, go1.25.2, reworked in
    /// go1.24.9/go1.25.3 — the releases are inferred from the advisory, not read at the tags).
    /// Before, `isValid` checked them for each candidate parent (`checkNameConstraints`,
    /// bounded by `maxConstraintComparisons`).
    pub fn checks_constraints_per_chain(self) -> bool {
        self.has_fix(&[(24, 8), (25, 2)])
    }

    /// A candidate's constraints apply to every certificate already in the chain, not to the
    /// leaf and the candidate itself — Go's "crypto/x509: properly apply name constraints to
    /// roots and intermediates" (`isValid`, from go1.21).
    pub fn constrains_whole_chain(self) -> bool {
        self.at_least(21, 0)
    }

    /// crypto/tls wraps a verification error as `tls: failed to verify certificate: …` —
    /// `CertificateVerificationError` in `handshake_client.go` `verifyServerCertificate`, from
    /// go1.20. go1.19 (read in Debian's go1.19.8 source) sends the alert and returns
    /// `Certificate.Verify`'s error unwrapped: `x509: …`.
    pub fn wraps_tls_verify_error(self) -> bool {
        self.at_least(20, 0)
    }

    /// `InsecureAlgorithmError` names the `x509sha1` GODEBUG for SHA-1 ("(temporarily override
    /// with GODEBUG=x509sha1=1)", `crypto/x509/x509.go`, read at go1.19.8) while the setting
    /// exists: until go1.23. go1.24 removed it (proposal golang/go#62048, Go 1.24 release notes;
    /// inferred from those, not read at the tag).
    pub fn has_x509sha1_godebug(self) -> bool {
        !self.at_least(24, 0)
    }

    /// SHA-1 certificate signatures verify: only with `GODEBUG=x509sha1=1`, while the setting
    /// exists (`crypto/x509/x509.go` `checkSignature`, go1.19.8: `case crypto.SHA1: if
    /// !allowSHA1 && !debugAllowSHA1`). Its default is 0 whatever the go.mod says (it predates
    /// go.mod-keyed defaults), so only the runtime's environment can set it.
    pub fn x509sha1_allowed(self, x509sha1: GoDebugValue<'_>) -> bool {
        self.has_x509sha1_godebug() && x509sha1 == Some("1")
    }

    /// A candidate parent whose key Go could not parse (`PublicKey == nil`: an algorithm
    /// crypto/x509 does not know) is skipped before its signature is checked — the fix for
    /// CVE-2024-24783 (`considerCandidate`, go1.21.8 and go1.22.1; inferred from the advisory, not
    /// read at the tags). Before, `CheckSignatureFrom` failed it with `ErrUnsupportedAlgorithm`,
    /// which became the hint ("algorithm unimplemented").
    pub fn skips_keyless_candidates(self) -> bool {
        self.has_fix(&[(21, 8), (22, 1)])
    }

    /// A bare `*` is not a valid host name pattern (`validHostname`'s `host == "*"` check,
    /// "Bare wildcards are not allowed", crypto/x509 verify.go; `TestVerifyBareWildcard`), so a
    /// DNS SAN `*` no longer matches a single-label host such as `localhost`. go1.19.8 (read in
    /// Debian's source) lets `*` match any one label. The release is bounded, not read at a tag:
    /// absent from a go1.22-era verify.go (with `potentialParent.constraint`, without the
    /// CVE-2024-24783 keyless-candidate skip), present in a later one (with that skip, without
    /// go1.24's policy validation), and its test sits between `TestVerifyNilPubKey` (go1.22.1)
    /// and `TestPoliciesValid` (go1.24) — so go1.23 or go1.24; go1.23 is assumed.
    pub fn rejects_bare_wildcard(self) -> bool {
        self.at_least(23, 0)
    }

    /// An excluded DNS constraint also excludes a wildcard SAN one label above it
    /// (`dnsConstraints.parentConstraints`, CVE-2025-61727; go1.24.11, go1.25.5).
    pub fn excludes_wildcard_parents(self) -> bool {
        self.has_fix(&[(24, 11), (25, 5)])
    }
}

/// The GODEBUG settings the parsing and key-size rules read (`x509negativeserial`,
/// `rsa1024min`, `tlsmaxrsasize`): the runtime's `DefaultGODEBUG` (which records its go.mod's
/// `go` line) overridden by its environment. `None` for a setting neither names.
pub type GoDebugValue<'a> = Option<&'a str>;

// === Parsing and key sizes, per version ===
impl GoVersion {
    /// A negative serial number makes `x509.ParseCertificate` fail ("x509: negative serial
    /// number") — from go1.23 unless `x509negativeserial=1`, which is the default a binary
    /// records when its go.mod says `go 1.22` or older (`crypto/x509/parser.go`,
    /// `parseCertificate`; go1.19 and go1.22.2 read at the tag accept it with a comment, go1.23
    /// from its release notes and `internal/godebugs/table.go`).
    pub fn rejects_negative_serial(self, x509negativeserial: GoDebugValue<'_>) -> bool {
        self.at_least(23, 0) && x509negativeserial != Some("1")
    }

    /// Policy mappings (2.5.29.33), policy constraints (2.5.29.36) and inhibitAnyPolicy
    /// (2.5.29.54) are parsed, so marking them critical is no longer fatal — from go1.24, with
    /// policy validation (`crypto/x509/parser.go`, `processExtensions`, `case 33/36/54`; go1.19
    /// read at the tag and go1.22.2 read in a godoc copy send them to `default: unhandled =
    /// true`; go1.24 from its release notes, not read at the tag).
    pub fn handles_policy_extensions(self) -> bool {
        self.at_least(24, 0)
    }

    /// A duplicate extension's error names its OID ("x509: certificate contains duplicate
    /// extension with OID \"2.5.29.15\"") instead of "x509: certificate contains duplicate
    /// extensions" (`crypto/x509/parser.go`, `parseCertificate`; go1.19 and go1.22.2 read at
    /// the tag have the old text, the new one read on the development branch; go1.24 is
    /// inferred, not read at its tag).
    pub fn names_duplicate_extension(self) -> bool {
        self.at_least(24, 0)
    }

    /// A subject key id, authority key id or authority info access extension marked critical
    /// fails the parse ("x509: subject key identifier incorrectly marked critical", …)
    /// (`crypto/x509/parser.go`, `processExtensions` and `parseAuthorityKeyIdentifier`; go1.19 at
    /// the tag and go1.22.2 in a godoc copy parse them, a port of go1.25.5 and the development
    /// branch refuse them; go1.25.0 as the first release is inferred, not read at a tag).
    pub fn refuses_critical_identifiers(self) -> bool {
        self.at_least(25, 0)
    }

    /// The smallest RSA modulus a signature check accepts: 1024 bits from go1.24 unless
    /// `rsa1024min=0` (the default for a go.mod older than 1.24), no minimum before
    /// (`crypto/rsa/rsa.go`, `checkPublicKeySize`, go1.24 release notes; go1.19 read at the tag
    /// has no minimum).
    pub fn rsa_min_bits(self, rsa1024min: GoDebugValue<'_>) -> usize {
        if self.at_least(24, 0) && rsa1024min != Some("0") {
            1024
        } else {
            0
        }
    }

    /// The largest RSA modulus the TLS client accepts in a server's certificate before any
    /// verification, even with InsecureSkipVerify ("tls: server sent certificate containing
    /// RSA key larger than 8192 bits"): CVE-2023-29409, go1.19.12, go1.20.7, go1.21.0
    /// (`crypto/tls/handshake_client.go`, `verifyServerCertificate`, `maxRSAKeySize`), from
    /// go1.22 a GODEBUG `tlsmaxrsasize` may raise it. The releases are from the advisory;
    /// go1.19.8 read at the tag has no limit.
    pub fn tls_max_rsa_bits(self, tlsmaxrsasize: GoDebugValue<'_>) -> Option<usize> {
        if !self.has_fix(&[(19, 12), (20, 7), (21, 0)]) {
            return None;
        }
        let set = tlsmaxrsasize.filter(|_| self.at_least(22, 0));
        Some(set.and_then(|v| v.parse().ok()).unwrap_or(8192))
    }
}

impl fmt::Display for GoVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.patch == 0 && self.minor < 21 {
            // Before go1.21 the first release of a branch was named `go1.N`.
            write!(f, "go1.{}", self.minor)
        } else {
            write!(f, "go1.{}.{}", self.minor, self.patch)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_go_binaries_and_people_write() {
        assert_eq!(GoVersion::parse("go1.19.8"), Some(GoVersion::new(19, 8)));
        assert_eq!(GoVersion::parse("1.22"), Some(GoVersion::new(22, 0)));
        assert_eq!(GoVersion::parse("go1.22rc1"), Some(GoVersion::new(22, 0)));
        assert_eq!(
            GoVersion::parse("go1.21.3-bigcorp"),
            Some(GoVersion::new(21, 3))
        );
        assert_eq!(
            GoVersion::parse("devel go1.23-1234abcd Tue"),
            Some(GoVersion::new(23, 0))
        );
        assert_eq!(GoVersion::parse("go2.0"), None);
        assert_eq!(GoVersion::parse("containerd"), None);
        assert_eq!(GoVersion::parse("go1."), None);
        assert_eq!(GoVersion::new(19, 8).to_string(), "go1.19.8");
        assert_eq!(GoVersion::new(20, 0).to_string(), "go1.20");
        assert_eq!(GoVersion::new(21, 0).to_string(), "go1.21.0");
    }

    #[test]
    fn version_table() {
        let v = GoVersion::new;
        assert!(!v(19, 8).constrains_whole_chain());
        assert!(v(21, 0).constrains_whole_chain());
        assert!(!v(24, 7).checks_constraints_per_chain());
        assert!(v(24, 8).checks_constraints_per_chain());
        assert!(!v(25, 1).checks_constraints_per_chain());
        assert!(v(25, 2).checks_constraints_per_chain());
        assert!(v(26, 0).checks_constraints_per_chain());
        assert!(!v(23, 12).checks_constraints_per_chain());
        assert!(!v(24, 10).excludes_wildcard_parents());
        assert!(v(24, 11).excludes_wildcard_parents());
        assert!(!v(25, 4).excludes_wildcard_parents());
        assert!(v(25, 5).excludes_wildcard_parents());
        assert!(GoVersion::NEWEST.is_modelled() && !v(18, 0).is_modelled());
    }

    #[test]
    fn version_table_of_words_and_key_sizes() {
        let v = GoVersion::new;
        // crypto/tls handshake_client.go verifyServerCertificate: CertificateVerificationError
        // from go1.20; go1.19 returns the x509 error itself.
        assert!(!v(19, 8).wraps_tls_verify_error());
        for minor in 20..=25 {
            assert!(v(minor, 0).wraps_tls_verify_error(), "1.{minor}");
        }
        // crypto/x509 x509.go InsecureAlgorithmError.Error: the x509sha1 hint until go1.23.
        for minor in 19..=23 {
            assert!(v(minor, 9).has_x509sha1_godebug(), "1.{minor}");
        }
        assert!(!v(24, 0).has_x509sha1_godebug());
        assert!(!v(25, 5).has_x509sha1_godebug());
        // x509.go checkSignature: SHA-1 verifies only with x509sha1=1, while the setting exists.
        assert!(v(19, 8).x509sha1_allowed(Some("1")));
        assert!(v(23, 4).x509sha1_allowed(Some("1")));
        assert!(!v(19, 8).x509sha1_allowed(None));
        assert!(!v(19, 8).x509sha1_allowed(Some("0")));
        assert!(!v(24, 0).x509sha1_allowed(Some("1")));
        // verify.go considerCandidate: keyless candidates skipped (CVE-2024-24783).
        assert!(!v(19, 8).skips_keyless_candidates());
        assert!(!v(21, 7).skips_keyless_candidates());
        assert!(v(21, 8).skips_keyless_candidates());
        assert!(!v(22, 0).skips_keyless_candidates());
        assert!(v(22, 1).skips_keyless_candidates());
        assert!(v(23, 0).skips_keyless_candidates());
        // verify.go validHostname: a bare `*` pattern (see rejects_bare_wildcard).
        assert!(!v(19, 8).rejects_bare_wildcard());
        assert!(!v(22, 12).rejects_bare_wildcard());
        for minor in 23..=25 {
            assert!(v(minor, 0).rejects_bare_wildcard(), "1.{minor}");
        }
    }

    /// The parsing and key-size rules per version, for the releases not installable here.
    #[test]
    fn parsing_version_table() {
        let v = GoVersion::new;
        // crypto/x509/parser.go, parseCertificate: negative serials (go1.23, x509negativeserial).
        assert!(!v(19, 8).rejects_negative_serial(None));
        assert!(!v(22, 12).rejects_negative_serial(None));
        assert!(v(23, 0).rejects_negative_serial(None));
        assert!(v(24, 3).rejects_negative_serial(Some("0")));
        assert!(!v(23, 0).rejects_negative_serial(Some("1")));
        // crypto/x509/parser.go, processExtensions: policy extensions handled from go1.24.
        assert!(!v(19, 8).handles_policy_extensions());
        assert!(!v(23, 9).handles_policy_extensions());
        assert!(v(24, 0).handles_policy_extensions());
        // crypto/x509/parser.go, parseCertificate: the duplicate extension's wording.
        assert!(!v(22, 2).names_duplicate_extension());
        assert!(v(25, 0).names_duplicate_extension());
        // crypto/x509/parser.go, processExtensions: critical SKID/AKID/AIA refused.
        assert!(!v(19, 8).refuses_critical_identifiers());
        assert!(!v(24, 11).refuses_critical_identifiers());
        assert!(v(25, 0).refuses_critical_identifiers());
        // crypto/rsa/rsa.go, checkPublicKeySize: rsa1024min.
        assert_eq!(v(19, 8).rsa_min_bits(None), 0);
        assert_eq!(v(23, 5).rsa_min_bits(None), 0);
        assert_eq!(v(24, 0).rsa_min_bits(None), 1024);
        assert_eq!(v(24, 0).rsa_min_bits(Some("0")), 0);
        assert_eq!(v(25, 5).rsa_min_bits(Some("1")), 1024);
        // crypto/tls/handshake_client.go, verifyServerCertificate: maxRSAKeySize, tlsmaxrsasize.
        assert_eq!(v(19, 8).tls_max_rsa_bits(None), None);
        assert_eq!(v(19, 12).tls_max_rsa_bits(None), Some(8192));
        assert_eq!(v(20, 6).tls_max_rsa_bits(None), None);
        assert_eq!(v(20, 7).tls_max_rsa_bits(None), Some(8192));
        assert_eq!(v(21, 0).tls_max_rsa_bits(Some("16384")), Some(8192));
        assert_eq!(v(22, 0).tls_max_rsa_bits(Some("16384")), Some(16384));
        assert_eq!(v(25, 5).tls_max_rsa_bits(None), Some(8192));
    }
}
