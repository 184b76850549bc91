//! Giving freed heap memory back to the operating system.
//!
//! glibc's malloc keeps what a thread freed in that thread's arena, and only trims the
//! main arena on its own. A server that answered a burst of requests on several worker
//! threads therefore keeps its peak footprint resident while idle: right after start, the
//! migrations and block type registration alone leave about 40 MiB of freed memory
//! resident. `malloc_trim(0)` walks every arena and releases free pages; the server calls
//! it shortly after start and then periodically, which brings an idle server from about 72 MiB
//! to about 31 MiB resident. Trimming costs a few milliseconds of one thread and does not
//! slow the next allocations much (the pages are faulted in again on demand).
#![allow(unsafe_code)] // two FFI calls into glibc, documented below

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Malloc arenas the server uses unless `MALLOC_ARENA_MAX` says otherwise (see [`limit_arenas`]).
pub const ARENAS: i32 = 2;

/// Caps glibc's malloc arenas at [`ARENAS`], unless the `MALLOC_ARENA_MAX` environment
/// variable is set (glibc has then applied it already). Must run before any thread starts.
///
/// glibc hands a thread that meets contention on an arena a new arena, up to eight per
/// core. This server has many threads that allocate (async and HTTP workers, one thread per
/// SQLite connection, blocking-pool threads for reads and trims), so most end up with an
/// arena of their own; each arena keeps its own free fragments and its own high-water mark,
/// and the process's peak becomes the sum of every thread's peak. Per-thread caches
/// (tcache) still serve most small allocations without a lock. In two 30-minute mixed soaks
/// on one afternoon, two arenas peaked at 180 MiB and stayed flat, glibc's default peaked at
/// 219 MiB and grew 16 %; two arenas also cost 7–13 % of lifecycle throughput (see
/// docs/performance.md, tenth session; `MALLOC_ARENA_MAX` chooses otherwise).
pub fn limit_arenas() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only sets a malloc tunable; it takes no pointers. It runs first
    // thing in `main`, before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, ARENAS);
    }
}

/// Releases free heap pages of every malloc arena to the operating system.
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` takes no pointers and only touches malloc's own bookkeeping,
    // under the arenas' locks; it is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Trims shortly after start (once startup's garbage is freed), then every `interval`
/// until `shutdown`.
pub async fn trim_periodically(interval: Duration, shutdown: CancellationToken) {
    let first = tokio::time::Instant::now() + Duration::from_secs(2).min(interval);
    let mut ticks = tokio::time::interval_at(first, interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticks.tick() => {
                // Off the async workers: a large trim can take a few milliseconds.
                let _ = tokio::task::spawn_blocking(trim).await;
            }
        }
    }
}
