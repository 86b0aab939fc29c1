//! Validating real output against docs/check-output.schema.json, with Python's `jsonschema`
//! (scripts/test installs it).

use std::fs;
use std::path::Path;
use std::process::Command;

/// Validates `doc` against the repository's JSON Schema with Python's `jsonschema`.
pub fn validate_against_schema(what: &str, doc: &serde_json::Value) {
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/check-output.schema.json");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("doc.json");
    fs::write(&file, doc.to_string()).unwrap();
    let out = Command::new("python3")
        .args([
            "-c",
            "import json,sys,jsonschema\n\
             s=json.load(open(sys.argv[1]))\n\
             jsonschema.Draft202012Validator.check_schema(s)\n\
             jsonschema.Draft202012Validator(s).validate(json.load(open(sys.argv[2])))",
        ])
        .arg(&schema)
        .arg(&file)
        .output()
        .expect("python3 (scripts/test installs python3-jsonschema)");
    assert!(
        out.status.success(),
        "{what} does not match docs/check-output.schema.json:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
