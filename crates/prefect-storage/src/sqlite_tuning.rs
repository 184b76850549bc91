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
