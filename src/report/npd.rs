//! The one line node-problem-detector's custom plugin reads from `regtrust check --npd`.
//!
//! Never does: I/O beyond returning strings.

use crate::outcome::CheckOutcome;

/// node-problem-detector's custom plugin contract: one line, at most this many characters.
pub const NPD_MAX_LINE: usize = 80;

/// One line for node-problem-detector: what is wrong, or that all is well.
pub fn npd_line(outcome: &CheckOutcome) -> String {
    let bad: Vec<_> = outcome.registries.iter().filter(|r| !r.ok()).collect();
    let line = if bad.is_empty() {
        format!(
            "all {} registries verify with the runtime's trust",
            outcome.registries.len()
        )
    } else {
        bad.iter()
            .map(|r| format!("{}: {}", r.name(), r.verdict.reason))
            .collect::<Vec<_>>()
            .join("; ")
    };
    truncate_line(&line, NPD_MAX_LINE)
}

/// Cuts at a character boundary, marking the cut with "...".
pub fn truncate_line(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(3)).collect();
    out.push_str("...");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npd_lines_fit_80_characters() {
        assert_eq!(truncate_line("short", 80), "short");
        let long = "r.example.com:5000: ca_key_mismatch; ".repeat(10);
        let cut = truncate_line(&long, NPD_MAX_LINE);
        assert_eq!(cut.chars().count(), 80);
        assert!(cut.ends_with("..."));
        assert_eq!(truncate_line(&"é".repeat(100), 80).chars().count(), 80);
    }
}
