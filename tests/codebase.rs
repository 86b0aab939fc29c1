//! Rules the codebase holds itself to, checked on every run: no function in src/ longer than 100
//! lines, and `src/main.rs` at most 250 (ARCHITECTURE.md, "Invariants").

use std::process::Command;

#[test]
fn no_function_in_src_is_longer_than_100_lines() {
    let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/long-fns"))
        .arg("100")
        .output()
        .expect("scripts/long-fns runs (python3)");
    assert!(
        out.status.success(),
        "functions over 100 lines:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_length_check_can_fail() {
    // 101 lines of one function in a scratch tree: the same script must reject it.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("scripts")).unwrap();
    std::fs::create_dir_all(dir.path().join("src")).unwrap();
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/long-fns"),
        dir.path().join("scripts/long-fns"),
    )
    .unwrap();
    let body: String = (0..100)
        .map(|i| format!("    let _x{i} = {i};\n"))
        .collect();
    std::fs::write(
        dir.path().join("src/long.rs"),
        format!("fn long() {{\n{body}}}\n"),
    )
    .unwrap();
    let out = Command::new(dir.path().join("scripts/long-fns"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("fn long is 102 lines"));
}

/// Issue 9's bound: the binary only parses, calls the library and prints (ARCHITECTURE.md).
#[test]
fn main_rs_is_at_most_250_lines() {
    let main =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/main.rs")).unwrap();
    let lines = main.lines().count();
    assert!(lines <= 250, "src/main.rs has {lines} lines (at most 250)");
}
