//! Pacing of the schedule: which due registries the loop starts now. A probe the interval brought
//! round (routine) starts at least a gap after the previous routine one; a probe something asked
//! for (a trust file changed, a new registry, SIGHUP, a staged CA) starts at once.
//!
//! Why: registries come due at random phases (the jitter), so at 1,000 registries on 5 s two
//! handshakes often overlap on the node's CPU — the registry's side and regtrust's — and each
//! probe's time grows with the overlap (median 4.8 ms, p90 9.4 ms, against 3 ms alone on the
//! bench machine). Starts spaced by 0.8 of the mean spacing rarely overlap, and the pacer can
//! start 1.25 probes for each one the interval brings, so no queue builds up behind it. The gap
//! is at most [`MAX_GAP`]: a probe of a healthy registry takes a few milliseconds, a larger gap
//! would spread nothing more and would only delay probes.

use std::time::Duration;

use tokio::time::Instant;

/// The largest gap between two routine starts.
pub(crate) const MAX_GAP: Duration = Duration::from_millis(10);
/// The gap as a share of the mean spacing (interval / registries).
const SHARE: f64 = 0.8;

/// The gap between two routine starts for `registries` probed every `interval`.
pub(crate) fn gap(interval: Duration, registries: usize) -> Duration {
    interval
        .mul_f64(SHARE)
        .div_f64(registries.max(1) as f64)
        .min(MAX_GAP)
}

/// What the pacer needs to know of a registry.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Due {
    pub(crate) at: Instant,
    /// Due because the interval came round (not because something asked for a probe).
    pub(crate) routine: bool,
    pub(crate) in_flight: bool,
}

/// The earliest time a routine probe may start.
#[derive(Debug, Default)]
pub(crate) struct Pacer {
    next: Option<Instant>,
}

impl Pacer {
    /// When a registry's probe may start: an asked-for one when due, a routine one not before
    /// the pacer allows.
    pub(crate) fn start_at(&self, due: &Due) -> Instant {
        match self.next {
            Some(next) if due.routine => due.at.max(next),
            _ => due.at,
        }
    }

    /// The registries to start at `now`: every asked-for one that is due, and the routine one
    /// due longest (the first of equals) when the pacer allows a routine start — the pacer then
    /// allows the next `gap` later.
    pub(crate) fn pick<'a, K>(
        &mut self,
        now: Instant,
        gap: Duration,
        regs: impl IntoIterator<Item = (&'a K, Due)>,
    ) -> Vec<&'a K>
    where
        K: 'a + ?Sized,
    {
        let mut start = Vec::new();
        let mut routine: Option<(&K, Instant)> = None;
        for (key, due) in regs {
            if due.in_flight || due.at > now {
                continue;
            }
            if !due.routine {
                start.push(key);
            } else if routine.is_none_or(|(_, at)| due.at < at) {
                routine = Some((key, due.at));
            }
        }
        if let Some((key, _)) = routine {
            if self.next.is_none_or(|next| next <= now) {
                start.push(key);
                self.next = Some(now + gap);
            }
        }
        start
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn due(at: Instant, routine: bool) -> Due {
        Due {
            at,
            routine,
            in_flight: false,
        }
    }

    #[test]
    fn the_gap_is_a_share_of_the_spacing_and_at_most_max_gap() {
        let five = Duration::from_secs(5);
        assert_eq!(gap(five, 1000), Duration::from_millis(4));
        assert_eq!(gap(five, 10_000), Duration::from_micros(400));
        assert_eq!(gap(five, 50), MAX_GAP);
        assert_eq!(gap(five, 1), MAX_GAP);
        assert_eq!(gap(five, 0), MAX_GAP);
    }

    #[test]
    fn routine_starts_are_a_gap_apart_asked_for_ones_are_not_held() {
        let t0 = Instant::now();
        let gap = Duration::from_millis(4);
        let mut p = Pacer::default();
        let regs = [
            ("a", due(t0, true)),
            ("b", due(t0 - Duration::from_millis(1), true)),
            ("c", due(t0, false)),
            ("d", due(t0 + Duration::from_secs(1), false)),
            (
                "e",
                Due {
                    in_flight: true,
                    ..due(t0 - Duration::from_secs(1), false)
                },
            ),
        ];
        let pick = |p: &mut Pacer, now| -> Vec<&str> {
            p.pick(now, gap, regs.iter().map(|(k, d)| (*k, *d)))
        };
        // The asked-for one that is due, and the routine one due longest.
        assert_eq!(pick(&mut p, t0), ["c", "b"]);
        // Within the gap, no routine start: "a" waits until the pacer allows it.
        assert_eq!(pick(&mut p, t0 + Duration::from_millis(1)), ["c"]);
        assert_eq!(p.start_at(&regs[0].1), t0 + gap);
        assert_eq!(p.start_at(&regs[2].1), t0);
        assert_eq!(pick(&mut p, t0 + gap), ["c", "b"]);
        assert_eq!(p.start_at(&regs[0].1), t0 + gap + gap);
        assert_eq!(p.start_at(&regs[3].1), t0 + Duration::from_secs(1));
    }
}
