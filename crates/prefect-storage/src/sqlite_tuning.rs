//! Per-connection SQLite settings that no pragma reaches.
//!
//! SQLite re-plans a prepared statement whenever a bound value it planned with
//! changes (`sqlite3_bind_*` expires the statement). The value it plans with
//! most often is `LIMIT ?`, which every SeaORM `.one()` and every filter page
//! binds, so without this each cached statement was parsed and planned again
//! on every execution: about a tenth of the server's CPU under load. The
//! "query planner stability guarantee" (QPSG) makes plans independent of bound
//! values, so cached statements stay prepared.

#![allow(unsafe_code)]

use sea_orm::sqlx::SqliteConnection;

/// Turns on the query planner stability guarantee for one connection.
pub(crate) async fn enable_stable_plans(conn: &mut SqliteConnection) -> Result<(), sea_orm::sqlx::Error> {
    let mut handle = conn.lock_handle().await?;
    let db = handle.as_raw_handle().as_ptr();
    // SAFETY: `db` is the live handle of this connection, and the lock taken above
    // keeps the connection's worker thread from using it during the call.
    // SQLITE_DBCONFIG_ENABLE_QPSG takes an int (1 = on) and an optional int*
    // for the resulting setting, for which we pass null.
    let rc = unsafe {
        libsqlite3_sys::sqlite3_db_config(db, libsqlite3_sys::SQLITE_DBCONFIG_ENABLE_QPSG, 1 as std::ffi::c_int, std::ptr::null_mut::<std::ffi::c_int>())
    };
    if rc == libsqlite3_sys::SQLITE_OK {
        Ok(())
    } else {
        Err(sea_orm::sqlx::Error::Configuration(format!("sqlite3_db_config(ENABLE_QPSG) failed with code {rc}").into()))
    }
}

/// Turns off SQLite's memory statistics for the whole process, once, before the
/// first connection opens (SQLite accepts the setting only before it initializes).
///
/// With statistics on (the default of the bundled SQLite), every allocation SQLite
/// makes takes a process-wide mutex to update the counters; profiles of worker polls
/// and state transitions showed that lock and its bookkeeping at ~8 % of the server's
/// CPU. Nothing here reads the counters.
pub(crate) fn disable_memory_statistics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: sqlite3_config is called before any connection of this process is opened
        // (Database::connect calls this first); if SQLite is already initialized it
        // returns SQLITE_MISUSE and changes nothing, which is harmless.
        let rc = unsafe { libsqlite3_sys::sqlite3_config(libsqlite3_sys::SQLITE_CONFIG_MEMSTATUS, 0 as std::ffi::c_int) };
        if rc != libsqlite3_sys::SQLITE_OK {
            tracing::debug!(rc, "SQLite was already initialized; its memory statistics stay on");
        }
    });
}

/// The settings every connection of our own (rusqlite, beside sqlx's pools) shares: busy
/// timeout, page cache, temporary tables in memory, stable plans (so cached statements stay
/// prepared, see above) and how many statements stay prepared.
pub(crate) fn configure_own_connection(
    conn: &rusqlite::Connection,
    busy_timeout: std::time::Duration,
    cache_kib: i64,
    statements: usize,
) -> rusqlite::Result<()> {
    conn.busy_timeout(busy_timeout)?;
    conn.pragma_update(None, "cache_size", -cache_kib)?;
    conn.pragma_update(None, "temp_store", "memory")?;
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    conn.set_prepared_statement_cache_capacity(statements);
    Ok(())
}
