//! Name lookups that cannot starve anything else.
//!
//! The system resolver (`getaddrinfo`: `/etc/hosts`, `resolv.conf`, nsswitch — what the node's
//! runtime uses) is blocking and cannot be cancelled. Run on tokio's shared blocking pool, a name
//! that never answers keeps a thread busy past the probe's deadline, and a few such names take the
//! whole pool: file reads, verification and every other registry's lookups stall behind them.
//!
//! So each lookup gets its own short-lived thread, used for nothing else, and the threads are
//! bounded per name ([`MAX_LOOKUPS_PER_NAME`]) and in total ([`MAX_LOOKUP_THREADS`]). A probe
//! that finds its name's slots taken (earlier lookups still hanging) waits for one until its own
//! deadline and times out in the `dns` phase: a name that never answers costs the probes of that
//! name their deadline, and nothing else.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{timeout_at, Instant};

use super::{Failure, Phase};

/// Lookups of one name in flight at once (the first may still hang when the next probe starts).
pub const MAX_LOOKUPS_PER_NAME: usize = 2;
/// Lookup threads in flight at once, over all names: a bound on memory (one small stack each),
/// far above what healthy lookups need (they finish in milliseconds).
pub const MAX_LOOKUP_THREADS: usize = 256;
/// Stack of a lookup thread: `getaddrinfo` needs some tens of KiB; the default 2 MiB is waste.
const LOOKUP_STACK_BYTES: usize = 256 * 1024;

/// The slots: a semaphore per name (dropped again once idle) and one for all threads.
struct Slots {
    per_name: Mutex<HashMap<String, Arc<Semaphore>>>,
    total: Arc<Semaphore>,
}

fn slots() -> &'static Slots {
    static SLOTS: OnceLock<Slots> = OnceLock::new();
    SLOTS.get_or_init(|| Slots {
        per_name: Mutex::new(HashMap::new()),
        total: Arc::new(Semaphore::new(MAX_LOOKUP_THREADS)),
    })
}

impl Slots {
    /// The semaphore of `name`; semaphores nobody holds are forgotten on the way.
    fn of(&self, name: &str) -> Arc<Semaphore> {
        let mut map = self.per_name.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|n, s| n == name || Arc::strong_count(s) > 1);
        map.entry(name.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(MAX_LOOKUPS_PER_NAME)))
            .clone()
    }
}

/// Resolves `host:port` by the system's rules before `deadline`, with Go's error words
/// (`lookup HOST: …`). IP literals are not looked up.
pub async fn lookup(host: &str, port: u16, deadline: Instant) -> Result<Vec<SocketAddr>, Failure> {
    if let Ok(ip) = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let s = slots();
    let name_sem = s.of(host);
    let permits = async {
        let name = name_sem.acquire_owned().await;
        let total = s.total.clone().acquire_owned().await;
        (name, total)
    };
    let (Ok(name), Ok(total)) = timeout_at(deadline, permits)
        .await
        .map_err(|_| Failure::Timeout(Phase::Dns))?
    else {
        return Err(Failure::Dns(format!("lookup {host}: resolver closed")));
    };
    let rx = spawn_lookup(host, port, [name, total])?;
    match timeout_at(deadline, rx).await {
        Err(_) => Err(Failure::Timeout(Phase::Dns)),
        Ok(Err(_)) => Err(Failure::Dns(format!(
            "lookup {host}: the resolver thread ended without an answer"
        ))),
        Ok(Ok(Err(e))) => Err(Failure::Dns(format!("lookup {host}: {e}"))),
        Ok(Ok(Ok(addrs))) if addrs.is_empty() => {
            Err(Failure::Dns(format!("lookup {host}: no addresses")))
        }
        Ok(Ok(Ok(addrs))) => Ok(addrs),
    }
}

type Answer = std::io::Result<Vec<SocketAddr>>;

/// Starts the lookup on its own thread, which holds `permits` until `getaddrinfo` returns —
/// however long after the probe gave up that is.
fn spawn_lookup(
    host: &str,
    port: u16,
    permits: [OwnedSemaphorePermit; 2],
) -> Result<tokio::sync::oneshot::Receiver<Answer>, Failure> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let name = host.to_string();
    std::thread::Builder::new()
        .name("regtrust-dns".into())
        .stack_size(LOOKUP_STACK_BYTES)
        .spawn(move || {
            let answer = (name.as_str(), port)
                .to_socket_addrs()
                .map(|a| a.collect::<Vec<_>>());
            drop(permits);
            let _ = tx.send(answer);
        })
        .map_err(|e| {
            Failure::Dns(format!(
                "lookup {host}: cannot start a resolver thread: {e}"
            ))
        })?;
    Ok(rx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn literals_and_localhost_resolve() {
        let deadline = Instant::now() + Duration::from_secs(5);
        let a = lookup("127.0.0.1", 5000, deadline).await.unwrap();
        assert_eq!(a, vec!["127.0.0.1:5000".parse().unwrap()]);
        let a = lookup("[::1]", 443, deadline).await.unwrap();
        assert_eq!(a, vec!["[::1]:443".parse().unwrap()]);
        let a = lookup("localhost", 80, deadline).await.unwrap();
        assert!(
            a.iter().all(|s| s.ip().is_loopback() && s.port() == 80),
            "{a:?}"
        );
    }

    #[tokio::test]
    async fn a_name_with_its_slots_taken_times_out_and_others_do_not_wait() {
        let name = "slots-taken.invalid";
        let sem = slots().of(name);
        let held: Vec<_> = (0..MAX_LOOKUPS_PER_NAME)
            .map(|_| sem.clone().try_acquire_owned().unwrap())
            .collect();
        let deadline = Instant::now() + Duration::from_millis(200);
        assert!(matches!(
            lookup(name, 443, deadline).await,
            Err(Failure::Timeout(Phase::Dns))
        ));
        let deadline = Instant::now() + Duration::from_secs(5);
        assert!(lookup("localhost", 443, deadline).await.is_ok());
        drop(held);
    }

    #[test]
    fn idle_names_are_forgotten() {
        drop(slots().of("forget-me.test"));
        let held = slots().of("keep-me.test");
        let _ = slots().of("another.test");
        let map = slots().per_name.lock().unwrap();
        assert!(!map.contains_key("forget-me.test"));
        assert!(map.contains_key("keep-me.test"));
        drop(held);
    }
}
