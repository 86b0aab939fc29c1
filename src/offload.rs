//! The blocking boundary. Work that can block (file reads and writes, fsync, `/proc` scans) or burn
//! CPU (chain verification: up to 100 signature checks, RSA-8192 possible) never runs on the
//! thread that serves the listener and drives probes: it goes through [`blocking`], onto tokio's
//! blocking pool, whose size the binary bounds (`MAX_BLOCKING_THREADS`).
//!
//! Outside a tokio runtime (unit tests of pure callers, fuzzing) the work simply runs inline.

/// Threads of the blocking pool: a node agent does a few file reads and verifications at a time,
/// and verification is CPU-bound (more threads than cores buy nothing); each thread may get its own
/// allocator arena, which the benchmark shows as private memory. Name lookups have threads of their
/// own (`probe::dns`), so they never take these.
pub const MAX_BLOCKING_THREADS: usize = 4;

/// A blocking job that did not finish: it panicked, or the runtime is shutting down.
#[derive(Debug, thiserror::Error)]
#[error("background work did not finish: {0}")]
pub struct Cancelled(String);

/// Runs `f` off the event loop and waits for it without blocking the loop.
pub async fn blocking<F, R>(f: F) -> Result<R, Cancelled>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    match tokio::runtime::Handle::try_current() {
        Ok(h) => h
            .spawn_blocking(f)
            .await
            .map_err(|e| Cancelled(e.to_string())),
        Err(_) => Ok(f()),
    }
}
