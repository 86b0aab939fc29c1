//! `regtrust reasons`: every [`Reason`] with what it means, the runtime's own words for it and
//! the next step — as text for a person, as JSON, and as the Markdown table README carries
//! (a test keeps README equal to [`markdown`]).
//!
//! Never does: I/O beyond returning strings.

use std::fmt::Write;

use crate::diagnose::Reason;

/// Text for a person: one block per reason.
pub fn text() -> String {
    let mut s = String::new();
    for r in Reason::ALL {
        let _ = writeln!(s, "{r}\n  means:   {}", r.meaning().replace('`', ""));
        for w in r.runtime_words() {
            let _ = writeln!(s, "  runtime: {w}");
        }
        if !r.next_step().is_empty() {
            let _ = writeln!(s, "  next:    {}", r.next_step());
        }
        s.push('\n');
    }
    s
}

/// The same as a JSON array of `{reason, meaning, runtime_words, next_step}`.
pub fn json() -> String {
    let v: Vec<_> = Reason::ALL
        .iter()
        .map(|r| {
            serde_json::json!({
                "reason": r,
                "meaning": r.meaning().replace('`', ""),
                "runtime_words": r.runtime_words(),
                "next_step": r.next_step(),
            })
        })
        .collect();
    super::to_json(&v)
}

/// README's reason table (Markdown).
pub fn markdown() -> String {
    let mut s =
        String::from("| reason | meaning | the runtime's error | next step |\n|---|---|---|---|\n");
    for r in Reason::ALL {
        let words = if r.runtime_words().is_empty() {
            "—".to_string()
        } else {
            r.runtime_words()
                .iter()
                .map(|w| format!("`{w}`"))
                .collect::<Vec<_>>()
                .join(" / ")
        };
        let next = if r.next_step().is_empty() {
            "—"
        } else {
            r.next_step()
        };
        let _ = writeln!(
            s,
            "| `{r}` | {} | {words} | {} |",
            r.meaning(),
            next.replace('|', "\\|")
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_is_listed_with_its_words_and_next_step() {
        let t = text();
        for r in Reason::ALL {
            assert!(t.contains(&format!("{r}\n  means:")), "{r} missing");
            if *r != Reason::Ok {
                assert!(!r.runtime_words().is_empty(), "{r} has no runtime words");
                assert!(!r.next_step().is_empty(), "{r} has no next step");
            }
        }
        assert!(t.contains("crypto/rsa: verification error"));
        assert_eq!(markdown().lines().count(), Reason::ALL.len() + 2);
        let j: serde_json::Value = serde_json::from_str(&json()).unwrap();
        assert_eq!(j.as_array().map(Vec::len), Some(Reason::ALL.len()));
    }

    #[test]
    fn the_readme_table_is_the_generated_one() {
        let readme = include_str!("../../README.md");
        for line in markdown().lines().skip(2) {
            assert!(readme.contains(line), "README.md lacks: {line}");
        }
    }

    #[test]
    fn the_json_schema_lists_every_reason() {
        let schema: serde_json::Value =
            serde_json::from_str(include_str!("../../docs/check-output.schema.json")).unwrap();
        let listed: Vec<&str> = schema["$defs"]["reason"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        let all: Vec<&str> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(listed, all, "docs/check-output.schema.json: reason enum");
    }
}
