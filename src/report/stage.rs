//! The text of `regtrust stage` for a person: what was (or would be) written, and where.
//!
//! Never does: I/O beyond returning strings.

use crate::stage::StageReport;

/// Text for a person.
pub fn text(r: &StageReport) -> String {
    let mut s = format!(
        "{} {} ({}): {}\n",
        r.outcome.as_str(),
        r.registry,
        r.runtime.as_str(),
        r.message
    );
    if let Some(t) = &r.target {
        s.push_str(&format!("  file:   {t}\n"));
    }
    for c in &r.creates {
        s.push_str(&format!("  create: {c}\n"));
    }
    if r.target.is_some() {
        s.push_str(&format!(
            "  before: {}\n",
            if r.before.is_empty() {
                "(no certificate)".into()
            } else {
                r.before.join(", ")
            }
        ));
        s.push_str(&format!("  after:  {}\n", r.after.join(", ")));
    }
    if let Some(b) = &r.backup {
        s.push_str(&format!("  backup: {b}\n"));
    }
    s
}
