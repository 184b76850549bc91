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
//! Which connection: on a SQLite file, one of our own ([`OwnWriter`]), opened beside
//! sqlx's writer connection with the same settings (busy timeout, foreign keys, cache),
//! and kept open with its statements prepared from one transaction to the next. Borrowing
//! sqlx's connection instead cost, per transaction, two trips to its worker thread (one
//! to lock the handle, one for the ping sqlx makes whenever a connection returns to its
//! pool), and every statement prepared again, because statements prepared on sqlx's
//! handle must be finalized before sqlx may close it. Only the writer loop writes, one
//! transaction at a time, so the two writer connections never wait on each other; a
//! transaction opened outside the loop ([`Database::begin_write`]) is kept apart by
//! SQLite's own lock (`BEGIN IMMEDIATE` waits out the busy timeout). An in-memory
//! database exists only on sqlx's connection, so there a job borrows that connection's
//! handle ([`LockedSqliteHandle`]) and prepares its statements once per transaction.
//! rusqlite links the same SQLite library as sqlx (one `libsqlite3-sys`).
//!
//! [`LockedSqliteHandle`]: sea_orm::sqlx::sqlite::LockedSqliteHandle
//! [`Database::begin_write`]: crate::Database::begin_write
//! [`Lane::Bulk`]: crate::batch::Lane::Bulk
//! [`Lane::Interactive`]: crate::batch::Lane::Interactive

#![allow(unsafe_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use chrono::SecondsFormat;
use prefect_domain::time::DateTime;
use sea_orm::{DbErr, Statement};

use crate::db::{JOURNAL_SIZE_LIMIT_BYTES, WAL_AUTOCHECKPOINT_PAGES, WRITER_CACHE_KIB, WriteConnection};
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
    if let Some(own) = db.own_writer.as_deref() {
        let conn = own.lock();
        if let Some(conn) = conn.as_ref() {
            return off_the_async_workers(|| in_transaction(conn, steps));
        }
    }
    let mut conn = db.conn.get_sqlite_connection_pool().acquire().await.map_err(sqlx_error)?;
    let mut locked = conn.lock_handle().await.map_err(sqlx_error)?;
    let handle = locked.as_raw_handle();
    off_the_async_workers(|| {
        // SAFETY: `handle` is the live connection of `conn`, which outlives this call, and
        // `locked` keeps sqlx's worker thread off it (and off its statements) until it is
        // dropped after this call. A connection made with `from_handle` does not own the
        // handle: dropping it finalizes only the statements it prepared, never closes it.
        let conn = unsafe { rusqlite::Connection::from_handle(handle.as_ptr()) }.map_err(sqlite_error)?;
        in_transaction(&conn, steps)
    })
}

fn in_transaction(conn: &rusqlite::Connection, steps: impl FnOnce(&rusqlite::Connection) -> bool) -> Result<bool> {
    conn.execute_batch("BEGIN IMMEDIATE").map_err(sqlite_error)?;
    let commit = steps(conn);
    let ended = if commit { conn.execute_batch("COMMIT") } else { conn.execute_batch("ROLLBACK") };
    if let Err(error) = ended {
        // Leave the connection as the next transaction expects it: in autocommit.
        if !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        return Err(sqlite_error(error));
    }
    Ok(commit)
}

/// Distinct statements the own writer keeps prepared: a few per kind of write (transitions
/// of flow and task runs, their events and artifacts, log and event inserts), with room for
/// the SeaORM-built statements whose text varies with their values (`IN` lists).
const WRITER_STATEMENT_CACHE: usize = 256;

/// The connection direct write jobs step on when the database is a file: ours, opened
/// when first needed and kept open with its prepared statements.
pub(crate) struct OwnWriter {
    path: PathBuf,
    busy_timeout: Duration,
    conn: Mutex<Option<rusqlite::Connection>>,
    /// Whether a failure to open has been logged (once: every write would otherwise repeat it).
    open_failure_logged: AtomicBool,
}

impl OwnWriter {
    pub(crate) fn new(path: PathBuf, busy_timeout: Duration) -> OwnWriter {
        OwnWriter { path, busy_timeout, conn: Mutex::new(None), open_failure_logged: AtomicBool::new(false) }
    }

    /// The connection, opened if it is not yet; `None` inside if it cannot open (the
    /// job then borrows sqlx's connection, which opened the same file).
    fn lock(&self) -> MutexGuard<'_, Option<rusqlite::Connection>> {
        // A job that panicked poisons the lock; the connection is still sound, and is
        // taken out of any transaction the job left open below.
        let mut conn = self.conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if conn.as_ref().is_some_and(|c| !c.is_autocommit() && c.execute_batch("ROLLBACK").is_err()) {
            *conn = None;
        }
        if conn.is_none() {
            *conn = self
                .open()
                .inspect_err(|error| {
                    if !self.open_failure_logged.swap(true, Ordering::Relaxed) {
                        tracing::warn!(%error, path = %self.path.display(), "cannot open a SQLite writer connection; writes borrow the pool's");
                    }
                })
                .ok();
        }
        conn
    }

    fn open(&self) -> rusqlite::Result<rusqlite::Connection> {
        use rusqlite::OpenFlags;
        // The file exists (sqlx's writer made it), and is in WAL mode, which the file keeps.
        let conn = rusqlite::Connection::open_with_flags(&self.path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
        crate::sqlite_tuning::configure_own_connection(&conn, self.busy_timeout, WRITER_CACHE_KIB, WRITER_STATEMENT_CACHE)?;
        // The writer's settings sqlx's writer has too (`Database::sqlite_pool`).
        conn.pragma_update(None, "foreign_keys", true)?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES)?;
        conn.pragma_update(None, "journal_size_limit", JOURNAL_SIZE_LIMIT_BYTES)?;
        Ok(conn)
    }
}

impl std::fmt::Debug for OwnWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnWriter").field("path", &self.path).finish_non_exhaustive()
    }
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

    /// A statement prepared on this connection: once per transaction on a borrowed
    /// connection, once for as long as it stays in the cache on the own writer.
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use sea_orm::ConnectionTrait;

    use crate::{Database, DatabaseOptions, Error, Result};

    async fn sqlite_file(dir: &tempfile::TempDir) -> Database {
        let url = format!("sqlite://{}", dir.path().join("writers.db").display());
        Database::connect(&DatabaseOptions { url, ..Default::default() }).await.expect("connect")
    }

    async fn orm(db: &Database, sql: &'static str) {
        db.write(None, move |txn| Box::pin(async move { txn.execute_unprepared(sql).await.map(|_| ()).map_err(Error::from_db) })).await.expect(sql);
    }

    /// The numbers in `t`, and how many columns a row of it has, read on the direct path
    /// with statements that stay prepared between transactions.
    async fn direct_rows(db: &Database) -> (Vec<i64>, usize) {
        db.write_direct(|txn| {
            let mut all = txn.prepare("SELECT * FROM t ORDER BY n")?;
            // Columns as the stepped statement has them (a schema change re-prepares it on the first step).
            let rows: Vec<(i64, usize)> =
                all.query_map([], |row| Ok((row.get::<_, i64>(0)?, row.as_ref().column_count()))).and_then(Iterator::collect).map_err(super::sqlite_error)?;
            let columns = rows.first().map_or(0, |(_, columns)| *columns);
            Ok((rows.into_iter().map(|(n, _)| n).collect(), columns))
        })
        .await
        .expect("direct read")
    }

    async fn direct_insert(db: &Database, n: i64) {
        db.write_direct(move |txn| txn.prepare("INSERT INTO t (n) VALUES (?1)")?.execute([n]).map(|_| ()).map_err(super::sqlite_error))
            .await
            .expect("direct insert");
    }

    /// Direct jobs run on a connection of their own beside sqlx's writer: each sees what
    /// the other committed, a statement kept prepared follows a schema change made on
    /// the other, and both stay in order with a transaction opened outside the writer.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn direct_and_orm_writes_see_each_other() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = sqlite_file(&dir).await;
        orm(&db, "CREATE TABLE t (n INTEGER NOT NULL)").await;

        direct_insert(&db, 1).await;
        let own = db.own_writer().expect("a file has an own writer");
        assert!(own.lock().is_some(), "the own writer opened: jobs do not fall back to sqlx's connection");
        orm(&db, "INSERT INTO t (n) VALUES (2)").await;
        assert_eq!(direct_rows(&db).await, (vec![1, 2], 1));
        orm(&db, "DELETE FROM t WHERE n = 1").await;
        direct_insert(&db, 3).await;
        assert_eq!(direct_rows(&db).await, (vec![2, 3], 1));

        // The same SELECT, prepared before the column existed, now reads two columns.
        orm(&db, "ALTER TABLE t ADD COLUMN label TEXT").await;
        assert_eq!(direct_rows(&db).await, (vec![2, 3], 2));

        // A transaction open outside the writer holds SQLite's write lock: a direct job
        // waits for it (busy timeout), then runs after its commit and sees its row.
        let txn = db.begin_write().await.expect("begin");
        txn.execute_unprepared("INSERT INTO t (n) VALUES (4)").await.expect("insert");
        let waiting = {
            let db = db.clone();
            tokio::spawn(async move {
                direct_insert(&db, 5).await;
                direct_rows(&db).await
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "a direct job does not write inside another connection's transaction");
        txn.commit().await.expect("commit");
        assert_eq!(waiting.await.expect("join"), (vec![2, 3, 4, 5], 2));
    }

    /// A direct job that fails rolls back on the kept connection, and the next one
    /// finds it out of any transaction.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_job_leaves_the_kept_connection_ready() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = sqlite_file(&dir).await;
        orm(&db, "CREATE TABLE t (n INTEGER NOT NULL UNIQUE)").await;
        direct_insert(&db, 1).await;
        let repeated: Result<()> = db
            .write_direct(|txn| {
                txn.prepare("INSERT INTO t (n) VALUES (?1)")?.execute([2]).map_err(super::sqlite_error)?;
                txn.prepare("INSERT INTO t (n) VALUES (?1)")?.execute([1]).map(|_| ()).map_err(super::sqlite_error)
            })
            .await;
        assert!(matches!(repeated, Err(Error::Conflict(_))), "{repeated:?}");
        assert_eq!(direct_rows(&db).await, (vec![1], 1));
        direct_insert(&db, 2).await;
        assert_eq!(direct_rows(&db).await, (vec![1, 2], 1));
        let txn = db.begin_write().await.expect("the pool's writer is free: the kept connection holds no lock");
        txn.commit().await.expect("commit");
    }
}
