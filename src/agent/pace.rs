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
    /// The registries to start at `now` — every asked-for one that is due, and the routine one
    /// due longest (the first of equals) when the pacer allows a routine start, which then allows
    /// the next `gap` later — and when the next of the others may start (one pass over all
    /// registries, where `start_at` for each would be a second).
    pub(crate) fn pick<'a, K>(
        &mut self,
        now: Instant,
        gap: Duration,
        regs: impl IntoIterator<Item = (&'a K, Due)>,
    ) -> Picked<'a, K>
    where
        K: 'a + ?Sized,
    {
        let mut start = Vec::new();
        let mut routine: Option<(&K, Instant)> = None;
        let (mut waiting, mut asked_next, mut routine_next) = (0usize, None, None);
        let earliest = |a: Option<Instant>, b: Instant| Some(a.map_or(b, |a| a.min(b)));
        for (key, due) in regs {
            match (due.in_flight, due.at > now, due.routine) {
                (true, _, _) => {}
                (false, true, false) => asked_next = earliest(asked_next, due.at),
                (false, true, true) => routine_next = earliest(routine_next, due.at),
                (false, false, false) => start.push(key),
                (false, false, true) => {
                    waiting += 1;
                    if routine.is_none_or(|(_, at)| due.at < at) {
                        routine = Some((key, due.at));
                    }
                }
            }
        }
        if let Some((key, _)) = routine {
            if self.next.is_none_or(|next| next <= now) {
                start.push(key);
                waiting -= 1;
                self.next = Some(now + gap);
            }
        }
        let paced = |at: Instant| self.next.map_or(at, |n| at.max(n));
        let mut next = asked_next;
        if let Some(at) = routine_next {
            next = earliest(next, paced(at));
        }
        if waiting > 0 {
            next = earliest(next, paced(now));
        }
        Picked { start, next }
    }
}

/// What [`Pacer::pick`] found.
#[derive(Debug)]
pub(crate) struct Picked<'a, K: ?Sized> {
    /// To start now.
    pub(crate) start: Vec<&'a K>,
    /// When the next of the others may start (none: all in flight or started).
    pub(crate) next: Option<Instant>,
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
        let pick = |p: &mut Pacer, now| -> (Vec<&str>, Option<Instant>) {
            let picked = p.pick(now, gap, regs.iter().map(|(k, d)| (*k, *d)));
            (picked.start, picked.next)
        };
        // The asked-for one that is due, and the routine one due longest; "a" may start a gap
        // later.
        assert_eq!(pick(&mut p, t0), (vec!["c", "b"], Some(t0 + gap)));
        // Within the gap, no routine start: "a" waits until the pacer allows it.
        assert_eq!(
            pick(&mut p, t0 + Duration::from_millis(1)),
            (vec!["c"], Some(t0 + gap))
        );
        assert_eq!(
            pick(&mut p, t0 + gap),
            (vec!["c", "b"], Some(t0 + gap + gap))
        );
    }

    #[test]
    fn the_next_start_is_the_earliest_of_asked_for_and_paced_routine_ones() {
        let t0 = Instant::now();
        let gap = Duration::from_millis(4);
        let mut p = Pacer::default();
        let later = |ms| t0 + Duration::from_millis(ms);
        // Nothing due: the earliest due time, asked-for or routine.
        let picked = p.pick(
            t0,
            gap,
            [(&1, due(later(7), false)), (&2, due(later(5), true))],
        );
        assert!(picked.start.is_empty());
        assert_eq!(picked.next, Some(later(5)));
        // A routine start at t0 pushes another routine one, due within the gap, to the gap's end.
        let picked = p.pick(t0, gap, [(&1, due(t0, true)), (&2, due(later(1), true))]);
        assert_eq!(picked.start, [&1]);
        assert_eq!(picked.next, Some(later(4)));
        // All in flight: nothing to wake for.
        let busy = Due {
            in_flight: true,
            ..due(t0, false)
        };
        assert_eq!(p.pick(t0, gap, [(&1, busy)]).next, None);
    }
}
