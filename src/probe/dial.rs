//! TCP to a name's addresses as Go's `net.Dialer` dials them (the dialer both runtimes use:
//! containerd's hosts.go `ConfigureHosts` and containers/image's `tlsclientconfig.NewTransport`
//! both build `net.Dialer{Timeout: 30 * time.Second}` with the default fast fallback).
//!
//! Go's `DialContext` (net/dial.go, unchanged in this respect from go1.12 to go1.24):
//! - the addresses are the resolver's, in its order, split by `addrList.partition(isIPv4)`
//!   (net/ipsock.go): the *primaries* share the first address's family, the *fallbacks* are the
//!   rest, each in order;
//! - `dialParallel` dials the primaries; the fallbacks start [`FALLBACK_DELAY`] later, or at once
//!   when the primaries have all failed; the first connection wins, and when both lists fail the
//!   primaries' first error is returned;
//! - `dialSerial` dials a list in order, each address under `partialDeadline`: the time left
//!   divided by the addresses left, but at least [`SANE_MINIMUM`] (or all that is left), and
//!   returns the first error when every address fails.
//!
//! So a first address that drops SYNs costs its share of the deadline, not the pull.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::{timeout_at, Instant};

/// The runtimes' dial timeout (`net.Dialer.Timeout`): containerd hosts.go (1.6–2.x, before a
/// hosts.toml `dial_timeout`), containers/image `tlsclientconfig.NewTransport`.
pub(crate) const GO_DIAL_TIMEOUT: Duration = Duration::from_secs(30);
/// Go's `Dialer.fallbackDelay()` default (RFC 6555 fast fallback), net/dial.go.
pub(crate) const FALLBACK_DELAY: Duration = Duration::from_millis(300);
/// `saneMinimum` in net/dial.go `partialDeadline`.
pub(crate) const SANE_MINIMUM: Duration = Duration::from_secs(2);

/// Why a dial failed: the first error, as Go reports it.
#[derive(Debug)]
pub(crate) enum DialError {
    /// The first address's share of the deadline (or the whole deadline) ran out: Go's
    /// `i/o timeout`.
    Timeout,
    Io(SocketAddr, std::io::Error),
    NoAddresses,
}

/// `partialDeadline(now, deadline, addrsRemaining)`: `None` when no time is left (Go's
/// `errTimeout`).
pub(crate) fn partial_deadline(
    now: Instant,
    deadline: Instant,
    remaining: usize,
) -> Option<Instant> {
    let left = deadline
        .checked_duration_since(now)
        .filter(|d| !d.is_zero())?;
    let share = left / u32::try_from(remaining.max(1)).unwrap_or(u32::MAX);
    let share = if share >= SANE_MINIMUM {
        share
    } else {
        left.min(SANE_MINIMUM)
    };
    Some(now + share)
}

/// `addrList.partition(isIPv4)`: the addresses of the first one's family, and the rest.
pub(crate) fn partition(addrs: &[SocketAddr]) -> (Vec<SocketAddr>, Vec<SocketAddr>) {
    let Some(first) = addrs.first() else {
        return (Vec::new(), Vec::new());
    };
    addrs.iter().partition(|a| a.is_ipv4() == first.is_ipv4())
}

/// `dialSerial`: each address in order under its partial deadline; the first error when all fail.
pub(crate) async fn dial_serial(
    addrs: &[SocketAddr],
    deadline: Instant,
) -> Result<TcpStream, DialError> {
    let mut first_err = None;
    for (i, addr) in addrs.iter().enumerate() {
        let Some(partial) = partial_deadline(Instant::now(), deadline, addrs.len() - i) else {
            first_err.get_or_insert(DialError::Timeout);
            break;
        };
        let err = match timeout_at(partial, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => return Ok(s),
            Ok(Err(e)) => DialError::Io(*addr, e),
            Err(_) => DialError::Timeout,
        };
        first_err.get_or_insert(err);
    }
    Err(first_err.unwrap_or(DialError::NoAddresses))
}

/// `DialContext` + `dialParallel`: the primaries, and the fallbacks after [`FALLBACK_DELAY`] (or
/// as soon as the primaries failed); the first connection wins, else the primaries' error.
pub(crate) async fn dial_addrs(
    addrs: &[SocketAddr],
    deadline: Instant,
    fallback_delay: Duration,
) -> Result<TcpStream, DialError> {
    let (primaries, fallbacks) = partition(addrs);
    if fallbacks.is_empty() {
        return dial_serial(&primaries, deadline).await;
    }
    let primary_failed = Notify::new();
    let primary = dial_serial(&primaries, deadline);
    let fallback = async {
        tokio::select! {
            _ = tokio::time::sleep(fallback_delay) => {}
            _ = primary_failed.notified() => {}
        }
        dial_serial(&fallbacks, deadline).await
    };
    tokio::pin!(primary, fallback);
    let (mut primary_err, mut fallback_done) = (None, false);
    loop {
        tokio::select! {
            r = &mut primary, if primary_err.is_none() => match r {
                Ok(s) => return Ok(s),
                Err(e) if fallback_done => return Err(e),
                Err(e) => {
                    primary_err = Some(e);
                    // A stored permit: the fallback starts now even if not yet waiting.
                    primary_failed.notify_one();
                }
            },
            r = &mut fallback, if !fallback_done => match r {
                Ok(s) => return Ok(s),
                Err(_) => match primary_err.take() {
                    Some(p) => return Err(p),
                    None => fallback_done = true,
                },
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn partial_deadlines_share_the_time_left_but_give_at_least_two_seconds() {
        let now = Instant::now();
        let s = Duration::from_secs;
        // 30 s over 2 addresses: 15 s each (Go's doc: 4 addresses, 1 minute: 15 s each).
        assert_eq!(partial_deadline(now, now + s(30), 2), Some(now + s(15)));
        assert_eq!(partial_deadline(now, now + s(60), 4), Some(now + s(15)));
        // 5 s over 4: 1.25 s is under saneMinimum, so 2 s ("steal from the end of the list").
        assert_eq!(partial_deadline(now, now + s(5), 4), Some(now + s(2)));
        // Less than 2 s left: all of it.
        let ms = Duration::from_millis(1500);
        assert_eq!(partial_deadline(now, now + ms, 3), Some(now + ms));
        // Nothing left: errTimeout.
        assert_eq!(partial_deadline(now + s(1), now, 1), None);
        assert_eq!(partial_deadline(now, now, 1), None);
    }

    #[test]
    fn partition_keeps_the_first_family_first_and_the_order_within_each() {
        let addrs = [
            a("[2001:db8::1]:5"),
            a("10.0.0.1:5"),
            a("[2001:db8::2]:5"),
            a("10.0.0.2:5"),
        ];
        let (p, f) = partition(&addrs);
        assert_eq!(p, vec![addrs[0], addrs[2]]);
        assert_eq!(f, vec![addrs[1], addrs[3]]);
        let (p, f) = partition(&addrs[1..]);
        assert_eq!(p, vec![addrs[1], addrs[3]]);
        assert_eq!(f, vec![addrs[2]]);
        assert_eq!(partition(&[]), (vec![], vec![]));
    }

    #[tokio::test]
    async fn a_refused_first_address_moves_on_and_all_failing_gives_the_first_error() {
        let live = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dead_addr = dead.local_addr().unwrap();
        drop(dead);
        let deadline = Instant::now() + Duration::from_secs(5);
        let s = dial_addrs(
            &[dead_addr, live.local_addr().unwrap()],
            deadline,
            FALLBACK_DELAY,
        )
        .await
        .unwrap();
        assert_eq!(s.peer_addr().unwrap(), live.local_addr().unwrap());
        drop(live);
        match dial_addrs(&[dead_addr, a("127.0.0.1:1")], deadline, FALLBACK_DELAY).await {
            Err(DialError::Io(addr, e)) => {
                assert_eq!(addr, dead_addr);
                assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused);
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn the_fallback_family_starts_at_once_when_the_primaries_fail() {
        let live = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        // A refused IPv6 primary (or unreachable, where IPv6 is off) fails fast: the IPv4
        // fallback must not wait for its timer.
        let deadline = Instant::now() + Duration::from_secs(5);
        let t = Instant::now();
        let s = dial_addrs(
            &[a("[::1]:1"), live.local_addr().unwrap()],
            deadline,
            Duration::from_secs(3),
        )
        .await
        .unwrap();
        assert_eq!(s.peer_addr().unwrap(), live.local_addr().unwrap());
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    }

    #[tokio::test]
    async fn no_time_left_is_a_timeout_on_the_first_address() {
        let now = Instant::now();
        assert!(matches!(
            dial_serial(&[a("127.0.0.1:1")], now).await,
            Err(DialError::Timeout)
        ));
        assert!(matches!(
            dial_serial(&[], now + Duration::from_secs(1)).await,
            Err(DialError::NoAddresses)
        ));
    }
}
