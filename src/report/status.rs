//! The agent's status page (`GET /`) and its JSON (`GET /api/v1/status`), for the person who
//! opens it during an incident: the headline first ("this node can pull from N of M
//! registries"), then per registry the verdict in plain words with the next step (the same
//! words as `check`), the presented, trusted and expected CA side by side, when it was last
//! probed, the findings, and per endpoint a small SVG timeline of its last probes with markers
//! where the presented CA changed and where staging happened.
//!
//! Made for a phone on a node without internet: one self-contained page (no external asset, no
//! script), auto-refreshing, relative links only (so the listener's auth carries over). Every
//! string from a registry, a file or the config goes through [`h`]. Never does: I/O beyond
//! returning strings.

use std::collections::VecDeque;
use std::fmt::Write as _;

use super::view::{EndpointReport, RegistryReport};
use crate::agent::history::{Point, RegistryStatus, StageMark, Status};
use crate::cert::rfc3339;
use crate::outcome::CheckOutcome;
use crate::trust::escape_control;

/// Seconds between the page's automatic reloads.
pub const REFRESH_SECS: u32 = 30;

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0 auto;padding:.5em;max-width:70em;line-height:1.35;color:#222}\
h1{font-size:1.4em;padding:.4em .6em;border-radius:6px}h2{font-size:1.15em;margin:.2em 0}\
.ok h1,h1.ok{background:#dfd}h1.bad{background:#fdd}\
section{border:1px solid #ccc;border-left:8px solid #ccc;border-radius:6px;padding:.5em .8em;margin:.8em 0}\
section.ok{border-left-color:#2a2}section.bad{border-left-color:#c22}\
.cas{display:flex;flex-wrap:wrap;gap:.6em}.ca{flex:1 1 16em;border:1px solid #ddd;border-radius:4px;padding:.4em;background:#fafafa}\
.ca h3{font-size:.95em;margin:0 0 .2em}code{font-size:.85em;word-break:break-all}\
.next{background:#ffe;padding:.3em .5em;border-radius:4px}.muted{color:#666;font-size:.9em}\
svg{display:block;width:100%;max-width:40em;height:auto;margin:.2em 0 .5em}svg text{font-size:10px;fill:#666}svg .ok{fill:#2a2}svg .bad{fill:#c22}\
svg .ca-change{stroke:#c60;stroke-width:2}svg .stage{stroke:#36c;stroke-width:2;stroke-dasharray:3 2}\
pre{white-space:pre-wrap;word-break:break-all;font-size:.8em;background:#f4f4f4;padding:.5em}";

/// HTML-escapes a string from outside, after showing its control characters as escapes.
pub fn h(s: &str) -> String {
    escape_control(s)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// The headline: how many registries this node can pull from.
pub fn headline(status: &Status) -> String {
    let total = status.registries.len();
    if total == 0 {
        return "no registry probed yet".into();
    }
    let ok = status.registries.iter().filter(|r| r.outcome.ok()).count();
    format!("this node can pull from {ok} of {total} registries")
}

/// `/api/v1/status`: the latest round exactly as `regtrust check --output json` prints it.
pub fn api_json(status: &Status) -> String {
    super::json(&status.check_outcome())
}

/// The page, as of `now_unix`.
pub fn page(status: &Status, now_unix: i64) -> String {
    let headline = headline(status);
    let all_ok = status.registries.iter().all(|r| r.outcome.ok());
    let mut p = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<meta http-equiv=\"refresh\" content=\"{REFRESH_SECS}\"><title>regtrust: {}</title><style>{STYLE}</style></head><body>\
<h1 id=\"headline\" class=\"{}\">{}</h1>\
<p class=\"muted\">regtrust {} · as of {} · reloads every {REFRESH_SECS} s · \
<a href=\"/api/v1/status\">JSON</a> · <a href=\"/metrics\">metrics</a> · <a href=\"/healthz\">healthz</a> · <a href=\"/readyz\">readyz</a></p>",
        h(&headline),
        if all_ok && !status.registries.is_empty() { "ok" } else { "bad" },
        h(&headline),
        env!("CARGO_PKG_VERSION"),
        rfc3339(now_unix),
    );
    if !status.findings.is_empty() {
        p.push_str("<p>About this node:</p><ul>");
        for f in &status.findings {
            let _ = write!(p, "<li>{}</li>", finding(f));
        }
        p.push_str("</ul>");
    }
    for r in &status.registries {
        registry(&mut p, r, now_unix);
    }
    p.push_str("</body></html>\n");
    p
}

fn finding(f: &crate::trust::Finding) -> String {
    format!(
        "<code>{}</code> {}{}",
        f.kind,
        f.path
            .as_ref()
            .map(|p| format!("<code>{}</code>: ", h(p)))
            .unwrap_or_default(),
        h(&f.message)
    )
}

/// How long ago, in the largest unit that fits.
pub fn age(secs: i64) -> String {
    match secs.max(0) {
        s if s < 120 => format!("{s} s ago"),
        s if s < 7200 => format!("{} min ago", s / 60),
        s if s < 172_800 => format!("{} h ago", s / 3600),
        s => format!("{} days ago", s / 86_400),
    }
}

fn registry(p: &mut String, r: &RegistryStatus, now: i64) {
    let rep = RegistryReport::from(&r.outcome);
    let (class, word) = if rep.ok {
        ("ok", "OK".to_string())
    } else {
        ("bad", format!("FAIL {}", rep.reason))
    };
    let _ = write!(
        p,
        "<section class=\"{class}\" data-registry=\"{}\"><h2>{word} · {}</h2><p class=\"verdict\">{}: {}</p>",
        h(&rep.registry),
        h(&rep.registry),
        h(rep.reason.meaning()),
        h(&rep.detail)
    );
    if !rep.ok && !rep.next_step.is_empty() {
        let _ = write!(
            p,
            "<p class=\"next\"><b>Next step:</b> {}</p>",
            h(&rep.next_step)
        );
    }
    let _ = write!(
        p,
        "<p class=\"muted\">last probe {} ({}) · {} · {}</p>",
        rfc3339(r.probed_at_unix),
        age(now - r.probed_at_unix),
        rep.runtime.as_str(),
        rep.host_dir
            .as_deref()
            .map(h)
            .unwrap_or_else(|| "no host directory: system roots only".into())
    );
    cas(p, r, &rep);
    if !rep.findings.is_empty() {
        p.push_str("<p>Findings:</p><ul>");
        for f in &rep.findings {
            let _ = write!(p, "<li>{}</li>", finding(f));
        }
        p.push_str("</ul>");
    }
    endpoints(p, r, &rep, now);
    let text = super::text(&CheckOutcome {
        registries: vec![r.outcome.clone()],
        ..CheckOutcome::default()
    });
    let _ = write!(
        p,
        "<details><summary>as <code>regtrust check</code> prints it</summary><pre>{}</pre></details></section>",
        text.lines().map(h).collect::<Vec<_>>().join("\n")
    );
}

/// The endpoint the verdict rests on: the one the runtime pulls through, else the first.
fn deciding<'a>(r: &RegistryStatus, rep: &'a RegistryReport) -> Option<&'a EndpointReport> {
    rep.endpoints.get(r.outcome.verdict.via.unwrap_or(0))
}

/// Presented, trusted and expected CA, side by side.
fn cas(p: &mut String, r: &RegistryStatus, rep: &RegistryReport) {
    let Some(e) = deciding(r, rep) else {
        return;
    };
    p.push_str("<div class=\"cas\"><div class=\"ca presented\"><h3>Presented by the registry</h3>");
    match (&e.presented_issuer, e.presented_chain.first()) {
        (Some(i), leaf) => {
            let _ = write!(p, "issuer <b>{}</b><br>", h(&i.subject));
            match (&i.sha256, &i.key_id) {
                (Some(sha), _) => {
                    let _ = write!(p, "CA sha256 <code>{}</code><br>", h(sha));
                }
                (None, Some(k)) => {
                    let _ = write!(
                        p,
                        "CA key id <code>{}</code> (CA certificate not sent)<br>",
                        h(k)
                    );
                    if let Some(x) = r.expected.iter().find(|x| x.key_id.as_deref() == Some(k)) {
                        let _ = write!(
                            p,
                            "= the expected CA, sha256 <code>{}</code><br>",
                            h(&x.sha256)
                        );
                    }
                }
                (None, None) => {}
            }
            if let Some(l) = leaf {
                let _ = write!(
                    p,
                    "<span class=\"muted\">leaf {} sha256 <code>{}</code>, expires {}</span>",
                    h(&l.subject),
                    h(&l.sha256),
                    h(&l.not_after)
                );
            }
        }
        (None, Some(l)) => {
            let _ = write!(p, "{} sha256 <code>{}</code>", h(&l.subject), h(&l.sha256));
        }
        (None, None) => p.push_str("nothing (no TLS handshake got that far)"),
    }
    p.push_str("</div><div class=\"ca trusted\"><h3>Trusted by the node</h3>");
    if e.trusted_cas.is_empty() {
        let _ = write!(
            p,
            "no CA configured for this endpoint ({} system roots)",
            e.system_roots
        );
    }
    for t in &e.trusted_cas {
        let _ = write!(
            p,
            "<p><b>{}</b><br>sha256 <code>{}</code><br>file <code>{}</code>, expires {}</p>",
            h(&t.subject),
            h(&t.sha256),
            h(&t.source),
            h(&t.not_after)
        );
    }
    p.push_str("</div><div class=\"ca expected\"><h3>Expected (config)</h3>");
    match r.expected_trusted {
        Some(true) => p.push_str("<p>the node trusts it</p>"),
        Some(false) => {
            p.push_str("<p><b>the node does NOT trust it</b>: a rotation to it breaks pulls</p>")
        }
        None => {}
    }
    if let Some(err) = &r.expected_error {
        let _ = write!(p, "<p><b>cannot be read:</b> {}</p>", h(err));
    } else if r.expected.is_empty() {
        p.push_str("none configured");
    }
    for x in &r.expected {
        let _ = write!(
            p,
            "<p><b>{}</b><br>sha256 <code>{}</code><br>from <code>{}</code></p>",
            h(x.subject.as_deref().unwrap_or("(pinned: subject unknown)")),
            h(&x.sha256),
            h(&x.source)
        );
    }
    p.push_str("</div></div>");
}

/// Each endpoint (one row per URL, every origin named) with its timeline.
fn endpoints(p: &mut String, r: &RegistryStatus, rep: &RegistryReport, now: i64) {
    p.push_str("<p>Endpoints, in the runtime's order <span class=\"muted\">(timeline: last probes up to now; \
<b style=\"color:#2a2\">●</b> ok, <b style=\"color:#c22\">●</b> failing, <b style=\"color:#c60\">|</b> presented CA changed, \
<b style=\"color:#36c\">¦</b> staging; hover for details)</span>:</p><ul>");
    let mut seen: Vec<&str> = Vec::new();
    for e in &rep.endpoints {
        if seen.contains(&e.endpoint.as_str()) {
            continue;
        }
        seen.push(&e.endpoint);
        let origins: Vec<String> = rep
            .endpoints
            .iter()
            .filter(|o| o.endpoint == e.endpoint)
            .map(|o| h(&o.origin))
            .collect();
        let _ = write!(
            p,
            "<li><code>{}</code> <b class=\"{}\">{}</b> <span class=\"muted\">from {}</span>",
            h(&e.endpoint),
            if e.ok { "ok" } else { "bad" },
            e.reason,
            origins.join(", ")
        );
        if let Some(points) = r.history.get(&e.endpoint) {
            p.push_str(&timeline(points, &r.stages, now));
        }
        p.push_str("</li>");
    }
    p.push_str("</ul>");
}

const W: f64 = 600.0;
const PAD: f64 = 8.0;

/// The last probes as dots (green ok, red failing) on a time axis up to `now`, a CA-change marker
/// (orange line) where the fold saw the presented CA change, a staging marker (blue dashes) per
/// staging attempt; each with a `<title>` (time, reason, fingerprint).
pub fn timeline(points: &VecDeque<Point>, stages: &VecDeque<StageMark>, now: i64) -> String {
    let t0 = points
        .front()
        .map(|p| p.at_unix)
        .into_iter()
        .chain(stages.front().map(|s| s.at_unix))
        .min()
        .unwrap_or(now);
    let t1 = now
        .max(points.back().map_or(now, |p| p.at_unix))
        .max(t0 + 1);
    let x = |t: i64| PAD + (t - t0) as f64 / (t1 - t0) as f64 * (W - 2.0 * PAD);
    let mut s = format!(
        "<svg class=\"timeline\" viewBox=\"0 0 {W} 52\" role=\"img\" aria-label=\"last {} probes\"><line x1=\"{PAD}\" y1=\"20\" x2=\"{}\" y2=\"20\" stroke=\"#bbb\"/>\
<text x=\"{PAD}\" y=\"50\">{}</text><text x=\"{}\" y=\"50\" text-anchor=\"end\">now {}</text>",
        points.len(),
        W - PAD,
        rfc3339(t0),
        W - PAD,
        rfc3339(now)
    );
    for st in stages.iter().filter(|st| st.at_unix >= t0) {
        let xs = x(st.at_unix);
        let _ = write!(
            s,
            "<line class=\"stage\" data-marker=\"stage\" x1=\"{xs:.1}\" y1=\"2\" x2=\"{xs:.1}\" y2=\"38\"><title>{} staging {}: {}</title></line>",
            rfc3339(st.at_unix),
            h(&st.result),
            h(&st.message)
        );
    }
    for pt in points {
        let xp = x(pt.at_unix);
        let fp = pt.issuer().unwrap_or("no certificate seen");
        if pt.ca_changed {
            let _ = write!(
                s,
                "<line class=\"ca-change\" data-marker=\"ca-change\" x1=\"{xp:.1}\" y1=\"2\" x2=\"{xp:.1}\" y2=\"38\"><title>{} the presented CA changed to {}</title></line>",
                rfc3339(pt.at_unix),
                h(fp)
            );
        }
        let class = if pt.reason == crate::diagnose::Reason::Ok {
            "ok"
        } else {
            "bad"
        };
        let _ = write!(
            s,
            "<circle class=\"{class}\" cx=\"{xp:.1}\" cy=\"20\" r=\"5\"><title>{} {} issuer {}{}</title></circle>",
            rfc3339(pt.at_unix),
            pt.reason,
            h(fp),
            pt.leaf_sha256().map(|l| format!(", leaf sha256 {}", h(l))).unwrap_or_default()
        );
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{cert, endpoint, trust};
    use super::*;
    use crate::agent::history::Round;
    use crate::diagnose::Reason;
    use crate::outcome::{IssuerId, RegistryOutcome};

    fn status() -> Status {
        let evil = "<script>alert(1)</script>\x1b[2K\r";
        let mut st = Status::default();
        let ok = RegistryOutcome::decide(
            trust("good.test:5000", None),
            vec![endpoint("good.test:5000", "server", Reason::Ok, Vec::new())],
        );
        st.record(Round {
            outcome: ok,
            expected_trusted: None,
            expected: None,
            events: &[],
            now_unix: 1000,
        });
        let changed = [crate::agent::drift::Event::CaChanged {
            url: "https://bad.test:5000/v2/".into(),
            previous: "sha256:aa".into(),
            current: IssuerId {
                subject: evil.into(),
                id: "sha256:bb".into(),
                sha256: Some("bb".into()),
                key_id: None,
            },
        }];
        for (t, events) in [(1000, &[][..]), (1060, &changed[..])] {
            let bad = RegistryOutcome::decide(
                trust("bad.test:5000", Some(evil)),
                vec![endpoint(
                    "bad.test:5000",
                    evil,
                    Reason::CaKeyMismatch,
                    vec![cert(evil)],
                )],
            );
            st.record(Round {
                outcome: bad,
                expected_trusted: Some(false),
                expected: None,
                events,
                now_unix: t,
            });
        }
        st.staged(
            "bad.test:5000",
            StageMark {
                at_unix: 1070,
                result: "applied".into(),
                message: evil.into(),
            },
        );
        st
    }

    #[test]
    fn the_page_answers_first_and_escapes_everything() {
        let st = status();
        let page = page(&st, 1090);
        assert!(
            page.contains(
                "<h1 id=\"headline\" class=\"bad\">this node can pull from 1 of 2 registries</h1>"
            ),
            "{page}"
        );
        assert!(page.contains(
            Reason::CaKeyMismatch
                .next_step()
                .replace('\'', "&#39;")
                .as_str()
        ));
        assert!(page.contains("30 s ago"), "{page}");
        assert!(page.contains("data-marker=\"ca-change\""));
        assert!(page.contains("data-marker=\"stage\""));
        assert!(page.contains("http-equiv=\"refresh\""));
        assert!(!page.contains("<script") && !page.contains('\x1b') && !page.contains('\r'));
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;\\x1b[2K\\r"));
        // No external asset: nothing is loaded from anywhere.
        assert!(!page.contains("src=") && !page.contains("<link") && !page.contains("url("));
        let j: serde_json::Value = serde_json::from_str(&api_json(&st)).unwrap();
        assert_eq!(j["registries"].as_array().map(Vec::len), Some(2));
        assert_eq!(j["registries"][0]["reason"], "ca_key_mismatch");
    }

    #[test]
    fn ages_read_in_the_largest_unit() {
        assert_eq!(age(5), "5 s ago");
        assert_eq!(age(600), "10 min ago");
        assert_eq!(age(3 * 3600), "3 h ago");
        assert_eq!(age(5 * 86_400), "5 days ago");
        assert_eq!(headline(&Status::default()), "no registry probed yet");
    }
}
