//! The text of `regtrust stage` for a person: what was (or would be) written, and where.
//!
//! Paths and messages are escaped like check's text ([`esc`]). Never does: I/O beyond returning
//! strings.

use super::text::esc;
use crate::stage::StageReport;

/// Text for a person.
pub fn text(r: &StageReport) -> String {
    let mut s = format!(
        "{} {} ({}): {}\n",
        r.outcome.as_str(),
        esc(&r.registry),
        r.runtime.as_str(),
        esc(&r.message)
    );
    if let Some(t) = &r.target {
        s.push_str(&format!("  file:   {}\n", esc(t)));
    }
    for c in &r.creates {
        s.push_str(&format!("  create: {}\n", esc(c)));
    }
    if r.target.is_some() {
        s.push_str(&format!(
            "  before: {}\n",
            if r.before.is_empty() {
                "(no certificate)".into()
            } else {
                esc(&r.before.join(", "))
            }
        ));
        s.push_str(&format!("  after:  {}\n", esc(&r.after.join(", "))));
    }
    if let Some(b) = &r.backup {
        s.push_str(&format!("  backup: {}\n", esc(b)));
    }
    s
}
