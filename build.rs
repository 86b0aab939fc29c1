//! Build facts for `regtrust_build_info`: the source revision (git, or `REGTRUST_REVISION` when the
//! build has no .git, as in a container build) and the compiler's version; and the link order of
//! release builds (`benches/link-order.txt`, see `link_order`).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The functions one agent run executes, in the order it first runs them (`scripts/order` makes it
/// from a callgrind profile of `scripts/bench`).
const ORDER_FILE: &str = "benches/link-order.txt";

fn output(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn main() {
    println!("cargo:rerun-if-env-changed=REGTRUST_REVISION");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs");
    let revision = std::env::var("REGTRUST_REVISION")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| output("git", &["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let rustc_version = output(&rustc, &["--version"])
        .and_then(|v| v.split_whitespace().nth(1).map(str::to_string))
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=REGTRUST_REVISION={revision}");
    println!("cargo:rustc-env=REGTRUST_RUSTC_VERSION={rustc_version}");
    link_order(&rustc);
}

/// Release builds for x86_64 Linux/glibc are linked by lld, when it is there, with the functions
/// that the agent runs placed together at the start of `.text` (`--symbol-ordering-file`). The
/// agent's RSS is mostly its own text: the kernel maps 64 KiB around every page fault, so executed
/// functions spread through the binary keep nearly all of it resident; packed together they keep
/// about 2 MiB less (scripts/bench, README "Footprint"). The file holds keys, not names (scripts/order
/// cuts the parts that change from build to build), which `scripts/linker` — the linker driver
/// `.cargo/config.toml` sets — resolves at link time; so the order is asked for only when that
/// driver links. Dev builds, other targets, other linkers, no lld and `REGTRUST_LINK_ORDER=0` link
/// as before; the order never changes what the code does.
fn link_order(rustc: &str) {
    println!("cargo:rerun-if-env-changed=REGTRUST_LINK_ORDER");
    println!("cargo:rerun-if-changed={ORDER_FILE}");
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    let driver = var("RUSTC_LINKER");
    if var("PROFILE") != "release"
        || var("REGTRUST_LINK_ORDER") == "0"
        || !driver.ends_with("scripts/linker")
    {
        return;
    }
    let file = Path::new(&var("CARGO_MANIFEST_DIR")).join(ORDER_FILE);
    let Ok(text) = std::fs::read_to_string(&file) else {
        println!("cargo:warning={ORDER_FILE} is missing: linking in the default order (run scripts/order)");
        return;
    };
    let made_for = text
        .lines()
        .take_while(|l| l.starts_with('#'))
        .find_map(|l| l.strip_prefix("# target: "))
        .map(str::trim);
    if made_for != Some(var("TARGET").as_str()) {
        return; // symbol names are per target: nothing in the file would match
    }
    let Some((lld, toolchain_dir)) = lld(rustc) else {
        println!(
            "cargo:warning=no ld.lld (neither the toolchain's nor on PATH): linking in the default \
             order, about 2 MiB more RSS (Debian: apt install lld; REGTRUST_LINK_ORDER=0 silences this)"
        );
        return;
    };
    println!("cargo:rerun-if-changed={}", lld.display());
    println!("cargo:rustc-link-arg-bins=-fuse-ld=lld");
    if let Some(dir) = toolchain_dir {
        println!("cargo:rustc-link-arg-bins=-B{}", dir.display());
    }
    println!(
        "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}",
        file.display()
    );
    println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
}

/// The `ld.lld` that `cc -fuse-ld=lld` is to run: the toolchain's own (rustc links with it by
/// default on x86_64 Linux since 1.90, through the same `-B` directory, returned with it), else
/// the first on PATH.
fn lld(rustc: &str) -> Option<(PathBuf, Option<PathBuf>)> {
    let sysroot = output(rustc, &["--print", "sysroot"]);
    let host = output(rustc, &["-vV"]).and_then(|v| {
        v.lines()
            .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
    });
    let dir = sysroot.zip(host).map(|(root, host)| {
        Path::new(&root)
            .join("lib/rustlib")
            .join(host)
            .join("bin/gcc-ld")
    });
    if let Some(dir) = dir.filter(|d| d.join("ld.lld").is_file()) {
        return Some((dir.join("ld.lld"), Some(dir)));
    }
    let path = std::env::var_os("PATH")?;
    let found = std::env::split_paths(&path)
        .map(|d| d.join("ld.lld"))
        .find(|p| p.is_file())?;
    Some((found, None))
}
