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

    /// RSA keys under 1024 bits fail every signature check (`crypto/rsa` `checkKeySize`, "N-bit
    /// keys are insecure", golang/go#68762, from go1.24 unless `GODEBUG=rsa1024min=0`). Before,
    /// `rsa.VerifyPKCS1v15`/`VerifyPSS` took any size.
    pub fn rejects_small_rsa_keys(self) -> bool {
        self.at_least(24, 0)
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
        // verify.go considerCandidate: keyless candidates skipped (CVE-2024-24783).
        assert!(!v(19, 8).skips_keyless_candidates());
        assert!(!v(21, 7).skips_keyless_candidates());
        assert!(v(21, 8).skips_keyless_candidates());
        assert!(!v(22, 0).skips_keyless_candidates());
        assert!(v(22, 1).skips_keyless_candidates());
        assert!(v(23, 0).skips_keyless_candidates());
        // crypto/rsa checkKeySize: 1024-bit minimum from go1.24.
        assert!(!v(23, 12).rejects_small_rsa_keys());
        assert!(v(24, 0).rejects_small_rsa_keys());
        assert!(v(25, 0).rejects_small_rsa_keys());
        // verify.go validHostname: a bare `*` pattern (see rejects_bare_wildcard).
        assert!(!v(19, 8).rejects_bare_wildcard());
        assert!(!v(22, 12).rejects_bare_wildcard());
        for minor in 23..=25 {
            assert!(v(minor, 0).rejects_bare_wildcard(), "1.{minor}");
        }
    }
}
