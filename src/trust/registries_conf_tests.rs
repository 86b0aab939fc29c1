//! Unit tests of [`super`], each rule following containers/image v5.23.1
//! `pkg/sysregistriesv2/system_registries_v2.go` (the function named in each test's comment).

use super::*;

fn parse(text: &str) -> Result<Vec<RegistryEntry>, ConfError> {
    parse_file(
        Path::new("/etc/containers/registries.conf"),
        text.as_bytes(),
        false,
    )
}

fn prefixes(e: &[RegistryEntry]) -> Vec<&str> {
    e.iter().map(|r| r.prefix.as_str()).collect()
}

/// `refMatchingPrefix`: a prefix matches the name itself or up to ':', '/' or '@'; the
/// documented bug lets `example.com` match `example.com:5000`.
#[test]
fn prefix_matching() {
    assert_eq!(ref_matching_prefix("r.test", "r.test"), Some(6));
    assert_eq!(ref_matching_prefix("r.test:5000", "r.test"), Some(6));
    assert_eq!(
        ref_matching_prefix("r.test/team/img", "r.test/team"),
        Some(11)
    );
    assert_eq!(ref_matching_prefix("r.tester", "r.test"), None);
    assert_eq!(ref_matching_prefix("r.test", "r.test/team"), None);
    assert_eq!(ref_matching_prefix("r.test/teamx", "r.test/team"), None);
}

/// `refMatchingSubdomainPrefix`: `*.example.com` matches subdomains, not the domain itself, and
/// only in the host part.
#[test]
fn wildcard_matching() {
    assert_eq!(
        ref_matching_prefix("a.example.com", "*.example.com"),
        Some(13)
    );
    assert_eq!(
        ref_matching_prefix("a.b.example.com:5000", "*.example.com"),
        Some(15)
    );
    assert_eq!(ref_matching_prefix("example.com", "*.example.com"), None);
    assert_eq!(
        ref_matching_prefix("r.test/x.example.com", "*.example.com"),
        None
    );
    assert_eq!(
        ref_matching_prefix("a.example.community", "*.example.com"),
        None
    );
}

/// `FindRegistry`: the longest matching prefix wins, whatever the file order; lengths are the
/// prefixes' own, so `*.test` and `r.test` tie for `r.test`.
#[test]
fn longest_prefix_wins() {
    let e = parse(
        r#"
[[registry]]
prefix = "*.other"
location = ""
insecure = true
[[registry]]
location = "r.test"
blocked = true
[[registry]]
location = "r.test:5000"
"#,
    )
    .unwrap();
    assert_eq!(find(&e, "r.test:5000").unwrap().prefix, "r.test:5000");
    assert_eq!(find(&e, "r.test").unwrap().prefix, "r.test");
    assert!(
        find(&e, "r.test:6000").unwrap().blocked,
        "r.test matches r.test:6000"
    );
    assert_eq!(find(&e, "q.other").unwrap().prefix, "*.other");
    assert!(find(&e, "q.example").is_none());
    // Equal lengths: the first in prefix order wins, and "*.test" sorts before "r.test".
    let e = parse("[[registry]]\nlocation = \"r.test\"\n[[registry]]\nprefix = \"*.test\"\nlocation = \"w.example\"\n").unwrap();
    assert_eq!(find(&e, "r.test").unwrap().prefix, "*.test");
}

/// `rewriteReference` and `PullSourcesFromReference`: mirrors in file order, then the rewritten
/// location; each keeps its own `insecure`.
#[test]
fn location_rewrite_and_mirror_order() {
    let e = parse(
        r#"
[[registry]]
prefix = "r.test"
location = "real.test:5000/ns"
[[registry.mirror]]
location = "m1.test"
insecure = true
[[registry.mirror]]
location = "m2.test:6000"
"#,
    )
    .unwrap();
    let r = find(&e, "r.test").unwrap();
    let s = r.pull_sources("r.test", false).unwrap();
    let names: Vec<_> = s
        .iter()
        .map(|p| (p.domain(), p.mirror, p.location.insecure))
        .collect();
    assert_eq!(
        names,
        [
            ("m1.test", true, true),
            ("m2.test:6000", true, false),
            ("real.test:5000", false, false)
        ]
    );
    // The prefix bug appends the port too: r.test:5000 → m2.test:6000:5000, not a reference.
    let err = r.pull_sources("r.test:5000", false).unwrap_err();
    assert!(err.contains("\"m2.test:6000:5000\""), "{err}");
}

/// `PullSourcesFromReference`: `mirror-by-digest-only` and `pull-from-mirror` restrict mirrors
/// by the kind of pull.
#[test]
fn digest_only_and_tag_only_mirrors() {
    let e = parse(
        r#"
[[registry]]
location = "r.test"
[[registry.mirror]]
location = "digest.test"
pull-from-mirror = "digest-only"
[[registry.mirror]]
location = "tag.test"
pull-from-mirror = "tag-only"
[[registry]]
location = "q.test"
mirror-by-digest-only = true
[[registry.mirror]]
location = "qm.test"
"#,
    )
    .unwrap();
    let doms = |reg: &str, dig: bool| -> Vec<String> {
        find(&e, reg)
            .unwrap()
            .pull_sources(reg, dig)
            .unwrap()
            .iter()
            .map(|p| p.domain().to_string())
            .collect()
    };
    assert_eq!(doms("r.test", false), ["tag.test", "r.test"]);
    assert_eq!(doms("r.test", true), ["digest.test", "r.test"]);
    assert_eq!(doms("q.test", false), ["q.test"]);
    assert_eq!(doms("q.test", true), ["qm.test", "q.test"]);
}

/// `postProcessRegistries`: the first entry of a prefix wins; entries end up sorted by prefix;
/// conflicting `insecure`/`blocked` for one location fail the file.
#[test]
fn duplicates_and_conflicts() {
    let e = parse(
        r#"
[[registry]]
location = "z.test"
[[registry]]
prefix = "a.test"
location = "z.test"
[[registry]]
location = "z.test"
"#,
    )
    .unwrap();
    assert_eq!(prefixes(&e), ["a.test", "z.test"]);
    let err = parse("[[registry]]\nlocation = \"z.test\"\n[[registry]]\nprefix = \"y.test\"\nlocation = \"z.test\"\ninsecure = true\n").unwrap_err();
    assert!(err.message.contains("conflicting 'insecure'"), "{err}");
    let err = parse("[[registry]]\nlocation = \"z.test\"\n[[registry]]\nlocation = \"z.test/\"\nblocked = true\n").unwrap_err();
    assert!(err.message.contains("conflicting 'blocked'"), "{err}");
}

/// `updateWithConfigurationFrom`: a drop-in replaces the whole entry of the same prefix (its
/// mirrors too) and adds the others.
#[test]
fn drop_in_merge_replaces_by_prefix() {
    let mut base = parse(
        "[[registry]]\nlocation = \"r.test\"\ninsecure = true\n[[registry.mirror]]\nlocation = \"m.test\"\n[[registry]]\nlocation = \"s.test\"\n",
    )
    .unwrap();
    let d = parse_file(
        Path::new("/etc/containers/registries.conf.d/10-x.conf"),
        b"[[registry]]\nlocation = \"r.test\"\n[[registry]]\nlocation = \"b.test\"\nblocked = true\n",
        true,
    )
    .unwrap();
    merge(&mut base, d);
    assert_eq!(prefixes(&base), ["b.test", "r.test", "s.test"]);
    let r = find(&base, "r.test").unwrap();
    assert!(!r.endpoint.insecure && r.mirrors.is_empty());
    assert_eq!(
        r.file,
        Path::new("/etc/containers/registries.conf.d/10-x.conf")
    );
}

/// `loadConfigFile` / `ConvertToV2`: the v1 lists become entries; drop-ins must be v2; v1 and
/// v2 together fail.
#[test]
fn v1_format() {
    let e = parse("[registries.insecure]\nregistries = [\"i.test\"]\n[registries.block]\nregistries = [\"b.test\", \"i.test\"]\n").unwrap();
    let b = find(&e, "b.test").unwrap();
    assert!(b.blocked && !b.endpoint.insecure);
    let i = find(&e, "i.test").unwrap();
    assert!(i.blocked && i.endpoint.insecure);
    let err = parse_file(
        Path::new("/d/x.conf"),
        b"[registries.search]\nregistries = [\"a.test\"]\n",
        true,
    )
    .unwrap_err();
    assert!(err.message.contains("v2 format"), "{err}");
    assert!(
        err.to_string()
            .starts_with("loading drop-in registries configuration \"/d/x.conf\""),
        "{err}"
    );
    let err = parse("unqualified-search-registries = [\"a.test\"]\n[registries.search]\nregistries = [\"a.test\"]\n").unwrap_err();
    assert!(err.message.contains("mixing"), "{err}");
}

/// Files containers/image refuses: the error names the file; never a panic.
#[test]
fn malformed_files_are_clear_errors() {
    for (text, want) in [
        ("[[registry]\n", "not valid TOML"),
        ("[[registry]]\ninsecure = \"yes\"\nlocation = \"r.test\"\n", "registry[0].insecure: expected a boolean"),
        ("[[registry]]\ninsecure = true\n", "both location and prefix are unset"),
        ("[[registry]]\nlocation = \"https://r.test\"\n", "URI schemes are not supported"),
        ("[[registry]]\nprefix = \"r.test\"\n", "location is unset"),
        ("[[registry]]\nprefix = \"*.r.test:5000\"\nlocation = \"x.test\"\n", "Wildcarded prefix"),
        ("[[registry]]\nlocation = \"r.test\"\n[[registry.mirror]]\nlocation = \"/\"\n", "mirror location is unset"),
        ("[[registry]]\nlocation = \"r.test\"\n[[registry.mirror]]\nlocation = \"m.test\"\npull-from-mirror = \"sometimes\"\n", "unsupported pull-from-mirror"),
        ("[[registry]]\nlocation = \"r.test\"\npull-from-mirror = \"all\"\n", "non-mirror registry"),
        ("[[registry]]\nlocation = \"r.test\"\nmirror-by-digest-only = true\n[[registry.mirror]]\nlocation = \"m.test\"\npull-from-mirror = \"all\"\n", "at the same time"),
        ("registry = 5\n", "expected an array of tables"),
        ("short-name-mode = \"loud\"\n", "invalid short-name mode"),
        ("unqualified-search-registries = [\"bad_name!\"]\n", "Invalid unqualified-search-registries"),
        ("\u{0}\u{ff}", "not"),
    ] {
        let err = parse(text).unwrap_err();
        assert!(err.message.contains(want), "{text:?}: {err}");
        assert!(err.to_string().contains("/etc/containers/registries.conf"), "{err}");
    }
    assert!(parse_file(Path::new("/x"), &[0xff, 0xfe], false).is_err());
}

/// Unknown keys are ignored (logged at debug level upstream); keys match case-insensitively as
/// BurntSushi/toml matches struct fields.
#[test]
fn unknown_keys_ignored_and_case_insensitive_fields() {
    let e = parse(
        "whatever = 1\n[[registry]]\nLocation = \"r.test\"\nInsecure = true\ncolour = \"red\"\n",
    )
    .unwrap();
    assert!(find(&e, "r.test").unwrap().endpoint.insecure);
}

/// `rewriteReference`: a location whose first component is not a domain makes no canonical
/// reference, and the pull fails.
#[test]
fn non_canonical_rewrite_fails() {
    let e = parse("[[registry]]\nprefix = \"r.test\"\nlocation = \"mirror/ns\"\n").unwrap();
    let err = find(&e, "r.test")
        .unwrap()
        .pull_sources("r.test", false)
        .unwrap_err();
    assert!(err.contains("must be canonical"), "{err}");
    let e = parse("[[registry]]\nprefix = \"*.r.test\"\nlocation = \"\"\n").unwrap();
    let s = find(&e, "a.r.test")
        .unwrap()
        .pull_sources("a.r.test", false)
        .unwrap();
    assert_eq!(s[0].name, "a.r.test");
}
