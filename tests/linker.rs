//! `scripts/linker`, the linker driver of x86_64 Linux/glibc builds: the link order's keys become
//! the link's own symbol names (LLVM's numeric suffixes, then stale hashes), a real lld places
//! the functions in that order, and a link without lld or without an order passes through to `cc`
//! unchanged.

use std::path::{Path, PathBuf};
use std::process::Command;

const LINKER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/linker");

/// Functions defined in the reverse of the order the keys ask for, so the default layout and the
/// asked one differ. Names as rustc writes them: a legacy name with a numeric suffix, one whose
/// hash the keys have stale, and a C name.
const SOURCE: &str = r#"
__attribute__((noinline, used)) int c_helper(void) { return 3; }
__attribute__((noinline, used)) int app_main(void) __asm__("_ZN3app4main17h0123456789abcdefE");
int app_main(void) { return c_helper() + 2; }
__attribute__((noinline, used)) int app_cold(void) __asm__("_ZN3app4cold17h1111111111111111E.1049");
int app_cold(void) { return app_main() + 1; }
int main(void) { return app_cold() == 6 ? 0 : 1; }
"#;

const KEYS: &str = "# target: x86_64-unknown-linux-gnu
_ZN3app4cold17h1111111111111111E
_ZN3app4main17hffffffffffffffffE
c_helper
not_in_this_link
";

/// A C compiler stand-in that records its arguments and the order file it was given.
fn recording_cc(dir: &Path) -> PathBuf {
    let cc = dir.join("cc-record");
    std::fs::write(
        &cc,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > {d}/args\nfor a do case $a in -Wl,--symbol-ordering-file=*) \
             f=${{a#-Wl,--symbol-ordering-file=}}; cp \"$f\" {d}/order; echo \"$f\" > {d}/order-path;; esac; done\n",
            d = dir.display()
        ),
    )
    .unwrap();
    Command::new("chmod").arg("+x").arg(&cc).status().unwrap();
    cc
}

fn object(dir: &Path) -> PathBuf {
    std::fs::write(dir.join("app.c"), SOURCE).unwrap();
    let obj = dir.join("app.o");
    let ok = Command::new("cc")
        .args(["-c", "-O1", "-ffunction-sections", "-fPIE", "-o"])
        .arg(&obj)
        .arg(dir.join("app.c"))
        .status()
        .expect("cc runs");
    assert!(ok.success());
    obj
}

fn run(dir: &Path, cc: &Path, args: &[&str]) {
    let ok = Command::new(LINKER)
        .args(args)
        .env("REGTRUST_LINK_CC", cc)
        .current_dir(dir)
        .status()
        .expect("scripts/linker runs");
    assert!(ok.success());
}

fn lines(p: &Path) -> Vec<String> {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn keys_resolve_to_the_links_names_and_other_links_pass_through() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let obj = object(d);
    std::fs::write(d.join("keys"), KEYS).unwrap();
    let cc = recording_cc(d);
    let order_arg = format!("-Wl,--symbol-ordering-file={}", d.join("keys").display());
    let o = obj.to_str().unwrap();

    // With lld: the suffixed name by its key, the stale hash by its hash-free key, the C name and
    // an unknown key as they are — in the keys' order; the resolved file is removed afterwards.
    run(
        d,
        &cc,
        &[
            "-fuse-ld=lld",
            &order_arg,
            "-Wl,--no-warn-symbol-ordering",
            o,
            "-o",
            "app",
        ],
    );
    assert_eq!(
        lines(&d.join("order")),
        [
            "_ZN3app4cold17h1111111111111111E.1049",
            "_ZN3app4main17h0123456789abcdefE",
            "c_helper",
            "not_in_this_link"
        ]
    );
    let args = lines(&d.join("args"));
    assert!(
        args.contains(&"-Wl,--no-warn-symbol-ordering".to_string()),
        "{args:?}"
    );
    assert!(
        !args.contains(&order_arg),
        "the keys file itself reached the linker: {args:?}"
    );
    let resolved = std::fs::read_to_string(d.join("order-path")).unwrap();
    assert!(
        !Path::new(resolved.trim()).exists(),
        "{resolved} left behind"
    );

    // Without lld (GNU ld has no such options): both dropped, the rest unchanged.
    std::fs::remove_file(d.join("order")).unwrap();
    run(
        d,
        &cc,
        &[&order_arg, "-Wl,--no-warn-symbol-ordering", o, "-o", "app"],
    );
    assert_eq!(lines(&d.join("args")), [o, "-o", "app"]);
    assert!(!d.join("order").exists());

    // No order asked for (every dev build): the arguments as they came.
    run(d, &cc, &["-fuse-ld=lld", o, "-o", "app two"]);
    assert_eq!(lines(&d.join("args")), ["-fuse-ld=lld", o, "-o", "app two"]);
}

/// The lld that rustc links x86_64 Linux with since 1.90, else one on PATH.
fn lld_dir() -> Option<PathBuf> {
    let out = Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .ok()?;
    let root = String::from_utf8(out.stdout).ok()?;
    let gcc_ld = Path::new(root.trim()).join("lib/rustlib/x86_64-unknown-linux-gnu/bin/gcc-ld");
    if gcc_ld.join("ld.lld").is_file() {
        return Some(gcc_ld);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).find(|d| d.join("ld.lld").is_file())
}

#[test]
fn a_real_lld_places_the_functions_in_the_keys_order() {
    let Some(lld) = lld_dir() else {
        panic!("no ld.lld: rustc >= 1.90 ships one (gcc-ld), or install Debian's lld");
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let obj = object(d);
    std::fs::write(d.join("keys"), KEYS).unwrap();
    let link = |extra: &[String], out: &str| {
        let mut args = vec![
            format!("-B{}", lld.display()),
            "-fuse-ld=lld".into(),
            "-pie".into(),
        ];
        args.extend_from_slice(extra);
        args.extend([obj.to_str().unwrap().to_string(), "-o".into(), out.into()]);
        let ok = Command::new(LINKER)
            .args(&args)
            .current_dir(d)
            .status()
            .unwrap();
        assert!(ok.success(), "link {out}");
        let nm = Command::new("nm")
            .arg("-n")
            .arg(d.join(out))
            .output()
            .unwrap();
        let text = String::from_utf8(nm.stdout).unwrap();
        let at = |name: &str| {
            text.lines()
                .find(|l| l.ends_with(&format!(" {name}")))
                .unwrap_or_else(|| panic!("{name} not in {out}"))
                .split_whitespace()
                .next()
                .map(|a| u64::from_str_radix(a, 16).unwrap())
                .unwrap()
        };
        let ok = Command::new(d.join(out)).status().unwrap();
        assert!(ok.success(), "{out} runs");
        [
            at("_ZN3app4cold17h1111111111111111E.1049"),
            at("_ZN3app4main17h0123456789abcdefE"),
            at("c_helper"),
        ]
    };
    let default = link(&[], "plain");
    assert!(
        default[0] > default[2],
        "the source order is not the asked one: {default:?}"
    );
    let ordered = link(
        &[
            format!("-Wl,--symbol-ordering-file={}", d.join("keys").display()),
            "-Wl,--no-warn-symbol-ordering".into(),
        ],
        "ordered",
    );
    assert!(
        ordered[0] < ordered[1] && ordered[1] < ordered[2],
        "{ordered:?}"
    );
}
