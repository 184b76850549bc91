//! Writes stepped directly on the SQLite writer's own connection.
//!
//! Through SeaORM, every statement of a write job is built by sea-query, its values are
//! copied into sqlx's arguments, and it travels to the connection's worker thread and
//! back: a thread hand-off per statement, and the writer loop and the worker thread take
//! turns. Here a job runs whole on the thread that owns the writer for the moment: sqlx
//! lends out the connection's `sqlite3` handle ([`LockedSqliteHandle`]), and the job
//! binds and steps its statements through rusqlite, each prepared once per transaction.
//!
//! Two kinds of jobs run this way:
//! - bulk inserts of events and log lines ([`Lane::Bulk`], one job per transaction): many
//!   rows of a few fixed statements;
//! - state transitions of flow and task runs ([`Lane::Interactive`], sharing a transaction
//!   with the transitions queued beside them): a read of the run, the rules, then the rows
//!   they write, with the statements SeaORM builds ([`DirectTransaction::execute`],
//!   [`DirectTransaction::query_one`]), so no trip to the worker thread between them.
//!
//! It is the same connection, so the same page cache, the same transaction order and
//! the same settings (busy timeout, foreign keys) as every other write; rusqlite links
//! the same SQLite library as sqlx (one `libsqlite3-sys`).
//!
//! [`LockedSqliteHandle`]: sea_orm::sqlx::sqlite::LockedSqliteHandle
//! [`Lane::Bulk`]: crate::batch::Lane::Bulk
//! [`Lane::Interactive`]: crate::batch::Lane::Interactive

#![allow(unsafe_code)]

use chrono::SecondsFormat;
use prefect_domain::time::DateTime;
use sea_orm::{DbErr, Statement};

use crate::db::WriteConnection;
use crate::direct_reads::bindable;
use crate::error::{Error, Result};
use crate::rows::Decoded;

/// A timestamp as sqlx stores a `DateTime<Utc>` in SQLite (RFC 3339, `+00:00`).
pub(crate) fn timestamp_text(t: &DateTime) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

/// A rusqlite error as this crate's error, sorted as [`Error::from_db`] sorts sqlx's:
/// constraint violations, busy or locked (the database is unavailable), the rest.
pub(crate) fn sqlite_error(e: rusqlite::Error) -> Error {
    use rusqlite::ErrorCode::{DatabaseBusy, DatabaseLocked};
    use rusqlite::ffi::{SQLITE_CONSTRAINT_FOREIGNKEY, SQLITE_CONSTRAINT_PRIMARYKEY, SQLITE_CONSTRAINT_UNIQUE};
    if let rusqlite::Error::SqliteFailure(failure, _) = &e {
        match failure.extended_code {
            SQLITE_CONSTRAINT_UNIQUE | SQLITE_CONSTRAINT_PRIMARYKEY => return Error::Conflict(e.to_string()),
            SQLITE_CONSTRAINT_FOREIGNKEY => return Error::InvalidReference(e.to_string()),
            _ => {}
        }
    }
    match e.sqlite_error_code() {
        Some(DatabaseBusy | DatabaseLocked) => Error::Unavailable(e.to_string()),
        _ => Error::Database(DbErr::Custom(e.to_string())),
    }
}

fn sqlx_error(e: sea_orm::sqlx::Error) -> Error {
    Error::Unavailable(format!("the SQLite writer connection: {e}"))
}

/// Runs `steps` inside `BEGIN IMMEDIATE … COMMIT` on the writer's connection; `steps`
/// answers whether to commit (`false` rolls back). A failed commit rolls back too.
pub(crate) async fn transaction(db: &WriteConnection, steps: impl FnOnce(&rusqlite::Connection) -> bool) -> Result<bool> {
    let mut conn = db.conn.get_sqlite_connection_pool().acquire().await.map_err(sqlx_error)?;
    let mut locked = conn.lock_handle().await.map_err(sqlx_error)?;
    let handle = locked.as_raw_handle();
    off_the_async_workers(|| {
        // SAFETY: `handle` is the live connection of `conn`, which outlives this call, and
        // `locked` keeps sqlx's worker thread off it (and off its statements) until it is
        // dropped after this call. A connection made with `from_handle` does not own the
        // handle: dropping it finalizes only the statements it prepared, never closes it.
        let conn = unsafe { rusqlite::Connection::from_handle(handle.as_ptr()) }.map_err(sqlite_error)?;
        conn.execute_batch("BEGIN IMMEDIATE").map_err(sqlite_error)?;
        let commit = steps(&conn);
        let ended = if commit { conn.execute_batch("COMMIT") } else { conn.execute_batch("ROLLBACK") };
        if let Err(error) = ended {
            // Leave the connection as sqlx expects it between transactions: in autocommit.
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            return Err(sqlite_error(error));
        }
        Ok(commit)
    })
}

/// Runs `f` where blocking is allowed: on a multi-threaded runtime the worker hands its
/// other tasks to another thread first; elsewhere (a test's single-threaded runtime) it
/// just runs.
fn off_the_async_workers<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// The SQLite writer's connection inside a write transaction, lent to a bulk job
/// ([`Database::write_direct`](crate::Database::write_direct)).
pub struct DirectTransaction<'c> {
    conn: &'c rusqlite::Connection,
}

impl<'c> DirectTransaction<'c> {
    pub(crate) fn new(conn: &'c rusqlite::Connection) -> Self {
        DirectTransaction { conn }
    }

    /// A statement prepared for this transaction (prepared once, then reused for every row).
    pub(crate) fn prepare(&self, sql: &str) -> Result<rusqlite::CachedStatement<'c>> {
        self.conn.prepare_cached(sql).map_err(sqlite_error)
    }

    /// Runs a statement SeaORM built for SQLite that returns no rows; how many rows it changed.
    pub(crate) fn execute(&self, statement: &Statement) -> Result<usize> {
        let mut prepared = self.bound(statement)?;
        prepared.raw_execute().map_err(sqlite_error)
    }

    /// The first row of a statement SeaORM built for SQLite, decoded by position.
    pub(crate) fn query_one<D: Decoded>(&self, statement: &Statement) -> Result<Option<D>> {
        let mut prepared = self.bound(statement)?;
        let mut rows = prepared.raw_query();
        match rows.next().map_err(sqlite_error)? {
            Some(row) => Ok(Some(D::decode(row).map_err(|e| Error::Corrupt(DbErr::from(e).to_string()))?)),
            None => Ok(None),
        }
    }

    /// Every row of a statement SeaORM built for SQLite, decoded by position.
    pub(crate) fn query_all<D: Decoded>(&self, statement: &Statement) -> Result<Vec<D>> {
        let mut prepared = self.bound(statement)?;
        let mut rows = prepared.raw_query();
        let mut decoded = Vec::new();
        while let Some(row) = rows.next().map_err(sqlite_error)? {
            decoded.push(D::decode(row).map_err(|e| Error::Corrupt(DbErr::from(e).to_string()))?);
        }
        Ok(decoded)
    }

    /// `statement` prepared, with its values bound as sqlx would bind them.
    fn bound(&self, statement: &Statement) -> Result<rusqlite::CachedStatement<'c>> {
        let mut prepared = self.prepare(&statement.sql)?;
        for (index, value) in statement.values.iter().flat_map(|v| v.0.iter()).enumerate() {
            let value = bindable(value).ok_or_else(|| Error::Database(DbErr::Custom(format!("a direct write cannot bind {value:?}"))))?;
            prepared.raw_bind_parameter(index + 1, value).map_err(sqlite_error)?;
        }
        Ok(prepared)
    }
}

impl std::fmt::Debug for DirectTransaction<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectTransaction").finish_non_exhaustive()
    }
}
