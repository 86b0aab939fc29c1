//! Name lookups that cannot starve anything else.
//!
//! The system resolver (`getaddrinfo`: `/etc/hosts`, `resolv.conf`, nsswitch — what the node's
//! runtime uses) is blocking and cannot be cancelled. Run on tokio's shared blocking pool, a name
//! that never answers keeps a thread busy past the probe's deadline, and a few such names take the
//! whole pool: file reads, verification and every other registry's lookups stall behind them.
//!
//! So each lookup gets a thread of its own while it runs, used for nothing else, and lookups are
//! bounded per name ([`MAX_LOOKUPS_PER_NAME`]) and in total ([`MAX_LOOKUP_THREADS`]). A probe
//! that finds its name's slots taken (earlier lookups still hanging) waits for one until its own
//! deadline and times out in the `dns` phase: a name that never answers costs the probes of that
//! name their deadline, and nothing else. The threads are kept for [`LOOKUP_THREAD_IDLE`] after
//! a lookup and reused: a new thread per lookup was 5% of the agent's CPU in `clone` alone (perf
//! at 200 endpoints); a lookup that hangs keeps its thread, and the next lookup gets another.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{timeout_at, Instant};

use super::{Failure, Phase};

/// Lookups of one name in flight at once (the first may still hang when the next probe starts).
pub(crate) const MAX_LOOKUPS_PER_NAME: usize = 2;
/// Lookup threads in flight at once, over all names: a bound on memory (one small stack each),
/// far above what healthy lookups need (they finish in milliseconds).
pub(crate) const MAX_LOOKUP_THREADS: usize = 256;
/// Stack of a lookup thread: `getaddrinfo` needs some tens of KiB; the default 2 MiB is waste.
const LOOKUP_STACK_BYTES: usize = 256 * 1024;

/// How long an idle lookup thread waits for the next lookup before it ends.
const LOOKUP_THREAD_IDLE: Duration = Duration::from_secs(30);

/// The slots: a semaphore per name (dropped again once idle) and one for all threads.
struct Slots {
    per_name: Mutex<Names>,
    total: Arc<Semaphore>,
}

/// The per-name semaphores, swept of unheld ones when the map has doubled since the last sweep
/// (a sweep per lookup made a round of N names cost N²).
struct Names {
    map: HashMap<String, Arc<Semaphore>>,
    sweep_at: usize,
}

fn slots() -> &'static Slots {
    static SLOTS: OnceLock<Slots> = OnceLock::new();
    SLOTS.get_or_init(|| Slots {
        per_name: Mutex::new(Names {
            map: HashMap::new(),
            sweep_at: MIN_SWEEP,
        }),
        total: Arc::new(Semaphore::new(MAX_LOOKUP_THREADS)),
    })
}

/// The per-name map is never swept below this size.
const MIN_SWEEP: usize = 64;

impl Slots {
    /// The semaphore of `name`; semaphores nobody holds are forgotten now and then.
    fn of(&self, name: &str) -> Arc<Semaphore> {
        let mut names = self.per_name.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = names.map.get(name) {
            return s.clone();
        }
        if names.map.len() >= names.sweep_at {
            names.map.retain(|_, s| Arc::strong_count(s) > 1);
            names.sweep_at = (names.map.len() * 2).max(MIN_SWEEP);
        }
        names
            .map
            .entry(name.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(MAX_LOOKUPS_PER_NAME)))
            .clone()
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// The lookup threads: a queue of lookups, the threads waiting for one, and how many there are.
/// A lookup is handed to a waiting thread, or to a new one when none waits — so a lookup never
/// queues behind another (which may hang), and there are never more threads than lookups in
/// flight (bounded by [`MAX_LOOKUP_THREADS`]) plus those idling out.
struct Workers {
    state: Mutex<Queue>,
    wake: Condvar,
}

struct Queue {
    jobs: VecDeque<Job>,
    idle: usize,
}

fn workers() -> &'static Workers {
    static WORKERS: OnceLock<Workers> = OnceLock::new();
    WORKERS.get_or_init(|| Workers {
        state: Mutex::new(Queue {
            jobs: VecDeque::new(),
            idle: 0,
        }),
        wake: Condvar::new(),
    })
}

impl Workers {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `job` on a lookup thread: a waiting one, or a new one.
    fn run(&'static self, job: Job) -> std::io::Result<()> {
        let mut q = self.lock();
        q.jobs.push_back(job);
        if q.idle >= q.jobs.len() {
            self.wake.notify_one();
            return Ok(());
        }
        drop(q);
        let spawned = std::thread::Builder::new()
            .name("regtrust-dns".into())
            .stack_size(LOOKUP_STACK_BYTES)
            .spawn(move || self.work());
        if let Err(e) = spawned {
            // Take back a job no thread will run (the newest: ours, unless another thread
            // already took it, in which case one of theirs is dropped and its probe sees the
            // resolver thread end without an answer).
            self.lock().jobs.pop_back();
            return Err(e);
        }
        Ok(())
    }

    fn work(&self) {
        let mut q = self.lock();
        loop {
            if let Some(job) = q.jobs.pop_front() {
                drop(q);
                job();
                q = self.lock();
                continue;
            }
            q.idle += 1;
            let (guard, waited) = self
                .wake
                .wait_timeout(q, LOOKUP_THREAD_IDLE)
                .unwrap_or_else(|p| p.into_inner());
            q = guard;
            q.idle -= 1;
            if waited.timed_out() && q.jobs.is_empty() {
                return;
            }
        }
    }
}

/// Resolves `host:port` by the system's rules before `deadline`, with Go's error words
/// (`lookup HOST: …`). IP literals are not looked up.
pub(crate) async fn lookup(
    host: &str,
    port: u16,
    deadline: Instant,
) -> Result<Vec<SocketAddr>, Failure> {
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
    workers()
        .run(Box::new(move || {
            let answer = (name.as_str(), port)
                .to_socket_addrs()
                .map(|a| a.collect::<Vec<_>>());
            drop(permits);
            let _ = tx.send(answer);
        }))
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
        for i in 0..MIN_SWEEP {
            drop(slots().of(&format!("filler-{i}.test")));
        }
        let names = slots().per_name.lock().unwrap();
        assert!(!names.map.contains_key("forget-me.test"));
        assert!(names.map.contains_key("keep-me.test"));
        assert!(names.map.len() <= MIN_SWEEP, "{}", names.map.len());
        drop(names);
        drop(held);
    }

    /// Lookups one after another reuse the lookup thread; one that hangs keeps its thread and the
    /// next runs on another at once.
    #[test]
    fn lookup_threads_are_reused_and_a_hanging_one_blocks_nothing() {
        let thread_of = || {
            let (tx, rx) = std::sync::mpsc::channel();
            workers()
                .run(Box::new(move || {
                    let _ = tx.send(std::thread::current().id());
                }))
                .unwrap();
            rx.recv_timeout(Duration::from_secs(10)).unwrap()
        };
        let first = thread_of();
        // The thread that ran it goes back to waiting (a moment after it answered).
        let mut same = false;
        for _ in 0..50 {
            std::thread::sleep(Duration::from_millis(20));
            if thread_of() == first {
                same = true;
                break;
            }
        }
        assert!(same, "a waiting lookup thread was not reused");
        let (release, hang) = std::sync::mpsc::channel::<()>();
        let (started, on) = std::sync::mpsc::channel();
        workers()
            .run(Box::new(move || {
                let _ = started.send(std::thread::current().id());
                let _ = hang.recv_timeout(Duration::from_secs(30));
            }))
            .unwrap();
        let hanging = on.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_ne!(thread_of(), hanging);
        drop(release);
    }
}
