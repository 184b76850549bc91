//! Connecting to SQLite or PostgreSQL, and opening write transactions.
//!
//! SQLite allows one writer at a time. Rather than letting concurrent writers
//! collide ("database is locked"), every write goes through a single-connection
//! write pool, and each write transaction starts with `BEGIN IMMEDIATE` so a
//! read-then-write can never be refused halfway. Reads use a separate pool of
//! read-only connections, which WAL lets run beside the writer. PostgreSQL uses
//! one pool for both, with row locks (`SELECT … FOR UPDATE`) taken by the
//! callers that read before they write.

use std::path::PathBuf;
use std::time::Duration;

use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, DatabaseBackend, DatabaseConnection, DatabaseTransaction, SqliteTransactionMode, TransactionOptions, TransactionTrait,
};
use serde::Deserialize;

use crate::direct_reads::DirectReads;
use crate::direct_writes::OwnWriter;
use crate::{Error, Result};

/// PostgreSQL connections opened at start beside the first (the writers and the services
/// take this many right after the migration).
const STARTUP_CONNECTIONS: u32 = 3;

/// Page cache of the connection the hot writes step on, KiB: it keeps the hot index pages
/// of every insert. Readers are many and mostly walk a few index pages per request, and the
/// OS page cache is one syscall away, so they keep less; 20 MB each (Prefect's value) would
/// put ten connections at 200 MB.
pub(crate) const WRITER_CACHE_KIB: i64 = 16_000;
/// Page cache of every other SQLite connection, KiB.
pub(crate) const READER_CACHE_KIB: i64 = 4_000;
/// WAL pages after which a writer's commit checkpoints: the maintenance service checkpoints
/// from its own connection and has the writer rewind the WAL between transactions
/// (`Database::checkpoint`); a writer's own checkpoint inside a commit is a backstop (~160 MB of
/// WAL) for when that service is off or stalled. Under sustained event ingest the WAL grows by
/// ~10,000 frames a second and a maintenance cycle (copy, sync, rewind) takes one to two seconds, so
/// the WAL peaks at ~17,000 frames; a backstop below that made the writer copy and sync the WAL
/// inside a commit every few seconds (a sixth of its time), holding every write behind it.
pub(crate) const WAL_AUTOCHECKPOINT_PAGES: u32 = 40_000;
/// Size the WAL file is truncated to after it is rewound, bytes.
pub(crate) const JOURNAL_SIZE_LIMIT_BYTES: i64 = 64 * 1024 * 1024;

/// Tables whose size decides between index plans (see [`Database::table_sizes`]).
const STATISTICS_TABLES: [&str; 7] = ["flow_run", "task_run", "flow_run_state", "task_run_state", "log", "events", "event_resources"];

/// Which database engine a URL points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The placeholder of the `n`th bound value (from 1) in hand-written SQL: `$n` or `?`.
    pub fn placeholder(self, n: usize) -> String {
        match self {
            Backend::Postgres => format!("${n}"),
            Backend::Sqlite => "?".to_owned(),
        }
    }
}

impl From<Backend> for DatabaseBackend {
    fn from(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => DatabaseBackend::Sqlite,
            Backend::Postgres => DatabaseBackend::Postgres,
        }
    }
}

/// How to connect, as configured by the server (Prefect's database settings).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct DatabaseOptions {
    /// `sqlite:///path`, `sqlite+aiosqlite:///path`, `postgres://…` or `postgresql+asyncpg://…`.
    pub url: String,
    /// Connections for PostgreSQL (and read connections for SQLite).
    pub pool_size: u32,
    /// Seconds to wait for a connection before answering 503.
    pub pool_timeout_seconds: f64,
    /// Seconds to wait to connect.
    pub connect_timeout_seconds: f64,
    /// Statement timeout on PostgreSQL, seconds (0 disables).
    pub statement_timeout_seconds: f64,
    /// How long SQLite waits on a lock held by another process, seconds.
    pub sqlite_busy_timeout_seconds: f64,
}

impl Default for DatabaseOptions {
    fn default() -> Self {
        DatabaseOptions {
            url: "sqlite://prefect.db".to_owned(),
            pool_size: 8,
            pool_timeout_seconds: 30.0,
            connect_timeout_seconds: 5.0,
            statement_timeout_seconds: 0.0,
            sqlite_busy_timeout_seconds: 60.0,
        }
    }
}

/// A URL in the form sqlx understands, with its backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalizedUrl {
    pub backend: Backend,
    pub url: String,
    /// The SQLite file, when the URL names one.
    pub sqlite_path: Option<PathBuf>,
}

/// Accepts Prefect's SQLAlchemy URLs (`sqlite+aiosqlite:///…`, `postgresql+asyncpg://…`)
/// as well as plain `sqlite://` and `postgres://` URLs.
pub fn normalize_url(url: &str) -> Result<NormalizedUrl> {
    let url = url.trim();
    let (scheme, rest) = url.split_once("://").ok_or_else(|| Error::InvalidUrl(url.to_owned()))?;
    let driverless = scheme.split('+').next().unwrap_or(scheme).to_ascii_lowercase();
    match driverless.as_str() {
        "sqlite" => {
            // SQLAlchemy (`sqlite+aiosqlite:///relative`, `…:////absolute`) puts one
            // extra slash before the path; sqlx (`sqlite://path`, `sqlite:///absolute`) does not.
            let (path, query) = rest.split_once('?').map_or((rest, None), |(p, q)| (p, Some(q)));
            let path = if scheme.contains('+') { path.strip_prefix('/').unwrap_or(path) } else { path };
            let path = if path.is_empty() || path == ":memory:" { ":memory:".to_owned() } else { path.to_owned() };
            let sqlite_path = (path != ":memory:").then(|| PathBuf::from(&path));
            let mut params: Vec<&str> = query.map(|q| q.split('&').filter(|p| !p.is_empty()).collect()).unwrap_or_default();
            if !params.iter().any(|p| p.starts_with("mode=")) && sqlite_path.is_some() {
                params.push("mode=rwc");
            }
            let query = if params.is_empty() { String::new() } else { format!("?{}", params.join("&")) };
            Ok(NormalizedUrl { backend: Backend::Sqlite, url: format!("sqlite://{path}{query}"), sqlite_path })
        }
        "postgres" | "postgresql" => Ok(NormalizedUrl { backend: Backend::Postgres, url: format!("postgres://{rest}"), sqlite_path: None }),
        _ => Err(Error::InvalidUrl(url.to_owned())),
    }
}

/// Connections to the server's database.
#[derive(Debug, Clone)]
pub struct Database {
    read: DatabaseConnection,
    write: WriteConnection,
    writers: crate::batch::Writers,
    /// SQLite files only: a connection that checkpoints the WAL off the write path.
    checkpointer: Option<DatabaseConnection>,
    /// SQLite files only: read connections of our own for pages of rows (see `direct_reads`).
    direct: Option<DirectReads>,
}

/// The pool write transactions come from, and how to begin one.
#[derive(Debug, Clone)]
pub(crate) struct WriteConnection {
    pub conn: DatabaseConnection,
    pub backend: Backend,
    /// SQLite files only: the connection direct write jobs step on (see `direct_writes`).
    pub own_writer: Option<std::sync::Arc<OwnWriter>>,
}

impl WriteConnection {
    /// `BEGIN IMMEDIATE` on SQLite, plain `BEGIN` on PostgreSQL.
    pub async fn begin(&self) -> Result<DatabaseTransaction> {
        let options = match self.backend {
            Backend::Sqlite => TransactionOptions { sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate), ..Default::default() },
            Backend::Postgres => TransactionOptions::default(),
        };
        self.conn.begin_with_options(options).await.map_err(Error::from_db)
    }
}

/// WAL frames (4 KiB pages) from which [`Database::checkpoint`] has the writer rewind
/// the WAL: 4 MiB, a fraction of a second of steady writes.
const REWIND_WAL_FRAMES: i64 = 1000;
/// Passes the checkpointer makes to catch up with the writer before handing it the rest.
const CATCH_UP_PASSES: usize = 2;
/// Frames left uncopied that are few enough to hand to the writer.
const CATCH_UP_FRAMES: i64 = 200;

/// What one WAL checkpoint found (`PRAGMA wal_checkpoint`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Checkpoint {
    /// Frames written to the WAL since it was last rewound.
    pub wal_frames: i64,
    /// Of those, frames copied into the database file.
    pub checkpointed_frames: i64,
}

/// Runs a passive checkpoint on `conn`: copies what no reader still needs, waits on nobody.
pub(crate) async fn wal_checkpoint(conn: &DatabaseConnection) -> Result<Checkpoint> {
    let row = conn
        .query_one_raw(sea_orm::Statement::from_string(DatabaseBackend::Sqlite, "PRAGMA wal_checkpoint(PASSIVE)"))
        .await
        .map_err(Error::from_db)?
        .ok_or_else(|| Error::Corrupt("PRAGMA wal_checkpoint returned no row".to_owned()))?;
    // Columns: busy (always 0 for PASSIVE), frames in the WAL, frames checkpointed; -1 if not in WAL mode.
    let frames = |i: usize| row.try_get_by_index::<i64>(i).map(|n| n.max(0)).map_err(Error::from_db);
    Ok(Checkpoint { wal_frames: frames(1)?, checkpointed_frames: frames(2)? })
}

impl Database {
    /// Connects with the options; creates the SQLite file and its directory if needed.
    pub async fn connect(options: &DatabaseOptions) -> Result<Database> {
        let normalized = normalize_url(&options.url)?;
        match normalized.backend {
            Backend::Sqlite => {
                if let Some(parent) = normalized.sqlite_path.as_ref().and_then(|p| p.parent())
                    && !parent.as_os_str().is_empty()
                {
                    std::fs::create_dir_all(parent).map_err(|e| Error::Io(e.to_string()))?;
                }
                // A shared in-memory database (`mode=memory`) is not a file another driver can open.
                let in_memory = normalized.url.contains("mode=memory");
                let file = normalized.sqlite_path.clone().filter(|_| !in_memory);
                // On a file, the hot writes (transitions, events, logs) step on a connection of
                // our own (`direct_writes::OwnWriter`), which keeps the writer's large cache; each
                // of its commits empties the cache of sqlx's writer anyway, as any other
                // connection's commit does in WAL mode, so that one gets a reader's.
                let write_cache = if file.is_some() { READER_CACHE_KIB } else { WRITER_CACHE_KIB };
                let write = Self::sqlite_pool(&normalized.url, options, 1, false, write_cache).await?;
                let (read, checkpointer) = if normalized.sqlite_path.is_some() {
                    let read = Self::sqlite_pool(&normalized.url, options, options.pool_size.max(1), true, READER_CACHE_KIB).await?;
                    // A checkpoint copies pages from the WAL to the file without the page cache.
                    let checkpointer = Self::sqlite_pool(&normalized.url, options, 1, false, READER_CACHE_KIB).await?;
                    (read, Some(checkpointer))
                } else {
                    // An in-memory database exists per connection: reads must share the writer.
                    (write.clone(), None)
                };
                let busy_timeout = Duration::from_secs_f64(options.sqlite_busy_timeout_seconds);
                let own_writer = file.clone().map(|path| std::sync::Arc::new(OwnWriter::new(path, busy_timeout)));
                let mut db = Database::assemble(read, WriteConnection { conn: write, backend: Backend::Sqlite, own_writer }, 1);
                db.checkpointer = checkpointer;
                // As many as can step at once on this machine's cores; they open when first used.
                let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
                db.direct = file.map(|path| DirectReads::new(path, cores.min(options.pool_size.max(1) as usize), busy_timeout));
                Ok(db)
            }
            Backend::Postgres => {
                let plain_if_local = crate::postgres_tls::url_leaves_tls_unset(&normalized.url, std::env::var("PGSSLMODE").ok().as_deref());
                let pool = match sea_orm::Database::connect(Self::postgres_options(&normalized.url, options, plain_if_local)).await {
                    Err(error) if plain_if_local && crate::postgres_tls::refused_without_tls(&error) => {
                        tracing::debug!("the local PostgreSQL server refuses connections without TLS; connecting with TLS");
                        sea_orm::Database::connect(Self::postgres_options(&normalized.url, options, false)).await
                    }
                    connected => connected,
                }
                .map_err(Error::from_db)?;
                Self::open_connections_ahead(&pool, options.pool_size.saturating_sub(1).min(STARTUP_CONNECTIONS));
                // Commits wait for the WAL to reach disk, and the server sits idle meanwhile:
                // half the pool writes, so several batches are in flight and PostgreSQL
                // flushes their commits together. Each writer holds one connection while it runs.
                let writers = (options.pool_size as usize / 2).clamp(1, 8);
                Ok(Database::assemble(pool.clone(), WriteConnection { conn: pool, backend: Backend::Postgres, own_writer: None }, writers))
            }
        }
    }

    /// The pool options for a PostgreSQL `url`; without TLS to a local server when
    /// `plain_if_local` (see [`crate::postgres_tls`]).
    fn postgres_options(url: &str, options: &DatabaseOptions, plain_if_local: bool) -> ConnectOptions {
        let mut opt = ConnectOptions::new(url.to_owned());
        opt.max_connections(options.pool_size.max(2))
            .min_connections(1)
            .acquire_timeout(Duration::from_secs_f64(options.pool_timeout_seconds))
            .connect_timeout(Duration::from_secs_f64(options.connect_timeout_seconds))
            // Ping only connections idle long enough to have been dropped, not every checkout.
            .test_before_acquire_if_idle_for(Duration::from_secs(30))
            .record_stmt_in_spans(false)
            .sqlx_logging(false);
        opt.map_sqlx_postgres_pool_opts(|pool| {
            pool.after_connect(|_conn, _meta| {
                Box::pin(async move {
                    crate::tcp_nodelay::set_on_process_sockets();
                    Ok(())
                })
            })
        });
        let statement_timeout = options.statement_timeout_seconds;
        opt.map_sqlx_postgres_opts(move |o| {
            let o = o.application_name("prefect-server");
            let o = if plain_if_local { crate::postgres_tls::plain_if_local(o) } else { o };
            if statement_timeout > 0.0 { o.options([("statement_timeout", format!("{}ms", (statement_timeout * 1000.0) as u64))]) } else { o }
        });
        opt
    }

    /// Opens `count` more pool connections in the background, all at once.
    ///
    /// A new PostgreSQL connection takes about 100 ms on loopback: its TLS handshake and
    /// startup messages go out in several small writes, and without TCP_NODELAY (which
    /// sqlx only lets us set once a connection is up, see `tcp_nodelay`) each waits for the
    /// server's delayed ACK. Opened one by one when first needed, the second connection
    /// alone added that much to the time from start to healthy; opened now, they connect
    /// while the migration runs on the first. `pool` must be a PostgreSQL pool.
    fn open_connections_ahead(pool: &DatabaseConnection, count: u32) {
        let pool = pool.get_postgres_connection_pool().clone();
        tokio::spawn(async move {
            // Each acquire beyond the idle connections opens a new one; all are then returned idle.
            let opened = futures_util::future::join_all((0..count).map(|_| pool.acquire())).await;
            if let Some(Err(error)) = opened.into_iter().find(|c| c.is_err()) {
                tracing::debug!(%error, "opening pool connections ahead of use failed; they open on demand");
            }
        });
    }

    async fn sqlite_pool(url: &str, options: &DatabaseOptions, size: u32, read_only: bool, cache_kib: i64) -> Result<DatabaseConnection> {
        crate::sqlite_tuning::disable_memory_statistics();
        let mut opt = ConnectOptions::new(url.to_owned());
        opt.max_connections(size)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs_f64(options.pool_timeout_seconds))
            .connect_timeout(Duration::from_secs_f64(options.connect_timeout_seconds))
            // A local file has no connection to lose: skip the ping on every checkout.
            .test_before_acquire(false)
            .record_stmt_in_spans(false)
            .sqlx_logging(false);
        opt.map_sqlx_sqlite_pool_opts(|pool| pool.after_connect(|conn, _meta| Box::pin(async move { crate::sqlite_tuning::enable_stable_plans(conn).await })));
        let busy = Duration::from_secs_f64(options.sqlite_busy_timeout_seconds);
        opt.map_sqlx_sqlite_opts(move |o| {
            // Prefect's own SQLite settings (server/database/configurations.py).
            o.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(busy)
                .foreign_keys(true)
                // Page cache per connection (see `WRITER_CACHE_KIB`).
                .pragma("cache_size", format!("-{cache_kib}"))
                .pragma("temp_store", "memory")
                .pragma("wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES.to_string())
                .pragma("journal_size_limit", JOURNAL_SIZE_LIMIT_BYTES.to_string())
                // ANALYZE samples at most this many rows per index: fast on any table size.
                .pragma("analysis_limit", "1000")
                .read_only(read_only)
        });
        sea_orm::Database::connect(opt).await.map_err(Error::from_db)
    }

    fn assemble(read: DatabaseConnection, write: WriteConnection, writers: usize) -> Database {
        let writers = crate::batch::Writers::start(&write, writers);
        Database { read, write, writers, checkpointer: None, direct: None }
    }

    /// The connection direct writes step on, where the database is a file.
    #[cfg(test)]
    pub(crate) fn own_writer(&self) -> Option<&OwnWriter> {
        self.write.own_writer.as_deref()
    }

    pub(crate) fn writers(&self) -> &crate::batch::Writers {
        &self.writers
    }

    /// How many write transactions can run at once: one on SQLite, a few on PostgreSQL.
    pub fn writer_count(&self) -> usize {
        self.writers.count()
    }

    /// Which engine this is.
    pub fn backend(&self) -> Backend {
        self.write.backend
    }

    /// SeaORM's name for the backend (for building statements).
    pub fn database_backend(&self) -> DatabaseBackend {
        self.write.backend.into()
    }

    /// The connection pool for reads.
    pub fn reader(&self) -> &DatabaseConnection {
        &self.read
    }

    /// The read pool for reads of pages of rows: on a SQLite file those step on the
    /// direct readers, everything else goes to [`Database::reader`].
    pub fn reads(&self) -> Reads<'_> {
        Reads { conn: &self.read, direct: self.direct.as_ref() }
    }

    /// The connection pool for schema changes and single-statement writes.
    pub fn writer(&self) -> &DatabaseConnection {
        &self.write.conn
    }

    /// Opens a write transaction of its own: `BEGIN IMMEDIATE` on SQLite, plain
    /// `BEGIN` on PostgreSQL. Hot paths use [`Database::write`] instead, which
    /// shares transactions between concurrent callers.
    pub async fn begin_write(&self) -> Result<DatabaseTransaction> {
        self.write.begin().await
    }

    /// Opens a read-only transaction, for reads that must see one snapshot.
    pub async fn begin_read(&self) -> Result<DatabaseTransaction> {
        self.read.begin().await.map_err(Error::from_db)
    }

    /// Checks that the database answers (`/ready`).
    pub async fn ping(&self) -> Result<()> {
        self.read.execute_unprepared("SELECT 1").await.map_err(Error::from_db)?;
        Ok(())
    }

    /// Copies what the WAL holds back into the SQLite file and, once the WAL has grown,
    /// lets the writer start it over. `None` on PostgreSQL and in-memory SQLite.
    ///
    /// SQLite only rewinds the WAL when a write transaction begins with every frame
    /// already copied back; under steady writes a checkpoint running beside the writer
    /// never quite catches up, so the WAL grows to `wal_autocheckpoint` frames and the
    /// writer then checkpoints all of them itself, inside a commit: copying tens of
    /// megabytes and two `fsync`s, which every waiting request sat out (the ~200 ms
    /// write tails on SQLite). Here the copying and the `fsync`s happen on the
    /// checkpointer's connection (`PRAGMA wal_checkpoint(PASSIVE)`, which waits on
    /// nobody), and only the last few frames are copied by the writer, between two of
    /// its transactions, so that its next transaction rewinds the WAL.
    pub async fn checkpoint(&self) -> Result<Option<Checkpoint>> {
        let Some(conn) = &self.checkpointer else { return Ok(None) };
        let mut done = wal_checkpoint(conn).await?;
        if done.wal_frames < REWIND_WAL_FRAMES {
            return Ok(Some(done));
        }
        // Copy what the writer appended during the pass before, while it goes on writing,
        // so that what is left for the writer to copy is small.
        for _ in 0..CATCH_UP_PASSES {
            if done.wal_frames - done.checkpointed_frames <= CATCH_UP_FRAMES {
                break;
            }
            done = wal_checkpoint(conn).await?;
        }
        // Even with everything copied, a write transaction open meanwhile appends more
        // after it, and the WAL is only rewound by one that begins after the last copy.
        // On an idle database the writer's pass costs a fraction of a millisecond.
        self.writers.checkpoint_between_transactions().await.map(Some)
    }

    /// Approximate row counts (`max(rowid)`, O(log n)) of the tables whose growth changes
    /// the best query plans, for deciding when to refresh statistics. Empty on PostgreSQL,
    /// where autovacuum keeps statistics current.
    pub async fn table_sizes(&self) -> Result<Vec<i64>> {
        if self.backend() != Backend::Sqlite {
            return Ok(Vec::new());
        }
        let selects: Vec<String> = STATISTICS_TABLES.iter().map(|t| format!("(SELECT coalesce(max(rowid), 0) FROM {t})")).collect();
        let sql = format!("SELECT {}", selects.join(", "));
        let row = self.read.query_one_raw(sea_orm::Statement::from_string(DatabaseBackend::Sqlite, sql)).await.map_err(Error::from_db)?;
        let Some(row) = row else { return Ok(Vec::new()) };
        (0..STATISTICS_TABLES.len()).map(|i| row.try_get_by_index::<i64>(i).map_err(Error::from_db)).collect()
    }

    /// Refreshes the statistics the SQLite query planner uses to pick indexes
    /// (`ANALYZE`, sampled). Without them SQLite cannot tell a selective filter
    /// from one that matches every row, and may sort a whole table for one page.
    /// PostgreSQL's autovacuum does this by itself, so it is a no-op there.
    ///
    /// One index per write job, in the writers' bulk lane: `ANALYZE` holds the write
    /// lock while it samples, and on a database of several GB with a cold page cache the
    /// index of one big table took seconds (`events`: 18 s for its four indexes, on
    /// 4 M rows). A single `ANALYZE` of everything held the writer for up to a minute in
    /// a soak, and every write, the services' included, waited behind it; between two
    /// indexes, waiting transitions and API writes now get their turn.
    pub async fn refresh_statistics(&self) -> Result<()> {
        if self.backend() != Backend::Sqlite {
            return Ok(());
        }
        // Each index of each table; a table without indexes is analyzed as a whole.
        let sql = "SELECT coalesce(i.name, t.name) FROM sqlite_master t
                   LEFT JOIN sqlite_master i ON i.type = 'index' AND i.tbl_name = t.name
                   WHERE t.type = 'table' AND t.name NOT LIKE 'sqlite_%'
                   ORDER BY t.name, i.name";
        let targets: Vec<String> = self
            .read
            .query_all_raw(sea_orm::Statement::from_string(DatabaseBackend::Sqlite, sql))
            .await
            .map_err(Error::from_db)?
            .iter()
            .map(|row| row.try_get_by_index::<String>(0))
            .collect::<std::result::Result<_, _>>()
            .map_err(Error::from_db)?;
        for target in targets {
            let sql = format!("ANALYZE \"{}\"", target.replace('"', "\"\""));
            let started = std::time::Instant::now();
            self.write_in(crate::batch::Lane::Bulk, None, move |txn| {
                let sql = sql.clone();
                Box::pin(async move { txn.execute_unprepared(&sql).await.map(|_| ()).map_err(Error::from_db) })
            })
            .await?;
            let seconds = started.elapsed().as_secs_f64();
            if seconds > 1.0 {
                tracing::warn!(index = target.as_str(), seconds, "Refreshing the query planner statistics of one index took over a second.");
            }
        }
        Ok(())
    }

    /// Folds the per-state flow run count deltas (PostgreSQL; see
    /// [`crate::flow_runs::fold_state_counts`]).
    pub async fn fold_state_counts(&self) -> Result<u64> {
        crate::flow_runs::fold_state_counts(self.writer(), self.backend()).await
    }

    /// Closes the pools.
    pub async fn close(self) -> Result<()> {
        if let Some(conn) = self.checkpointer {
            conn.close().await.map_err(Error::from_db)?;
        }
        if self.write.backend == Backend::Sqlite {
            self.read.close().await.map_err(Error::from_db)?;
        }
        self.write.conn.close().await.map_err(Error::from_db)
    }
}

/// A connection that reads, and may step pages of rows on SQLite's direct readers.
/// Storage functions that read pages take one; a transaction or a plain pool reads
/// everything through SeaORM.
pub trait ReadConnection: ConnectionTrait {
    /// The direct readers, where this connection has them.
    fn direct(&self) -> Option<&DirectReads> {
        None
    }
}

impl ReadConnection for DatabaseConnection {}
impl ReadConnection for DatabaseTransaction {}

/// The read pool with the direct readers of a SQLite file ([`Database::reads`]).
#[derive(Clone, Copy, Debug)]
pub struct Reads<'a> {
    conn: &'a DatabaseConnection,
    direct: Option<&'a DirectReads>,
}

impl ReadConnection for Reads<'_> {
    fn direct(&self) -> Option<&DirectReads> {
        self.direct
    }
}

#[async_trait::async_trait]
impl ConnectionTrait for Reads<'_> {
    fn get_database_backend(&self) -> sea_orm::DbBackend {
        self.conn.get_database_backend()
    }

    async fn execute_raw(&self, stmt: sea_orm::Statement) -> std::result::Result<sea_orm::ExecResult, sea_orm::DbErr> {
        self.conn.execute_raw(stmt).await
    }

    async fn execute_unprepared(&self, sql: &str) -> std::result::Result<sea_orm::ExecResult, sea_orm::DbErr> {
        self.conn.execute_unprepared(sql).await
    }

    async fn query_one_raw(&self, stmt: sea_orm::Statement) -> std::result::Result<Option<sea_orm::QueryResult>, sea_orm::DbErr> {
        self.conn.query_one_raw(stmt).await
    }

    async fn query_all_raw(&self, stmt: sea_orm::Statement) -> std::result::Result<Vec<sea_orm::QueryResult>, sea_orm::DbErr> {
        self.conn.query_all_raw(stmt).await
    }

    fn support_returning(&self) -> bool {
        self.conn.support_returning()
    }

    fn is_mock_connection(&self) -> bool {
        self.conn.is_mock_connection()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use crate::batch::JobFuture;

    /// One write transaction adding `n` rows of a page each.
    fn insert_pages(txn: &DatabaseTransaction, n: usize) -> JobFuture<'_, ()> {
        let sql = format!(
            "INSERT INTO pages (b) SELECT zeroblob(4000) FROM (WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {n}) SELECT i FROM n)"
        );
        Box::pin(async move {
            txn.execute_unprepared(&sql).await.map_err(Error::from_db)?;
            Ok(())
        })
    }

    /// Under steady writes the checkpointer never copies the whole WAL by itself; the
    /// writer copies the rest between two transactions, and the next one rewinds the WAL
    /// instead of letting it grow until the writer checkpoints it all inside a commit.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_checkpoint_under_steady_writes_rewinds_the_wal() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = crate::test_support::migrated_sqlite(&dir).await;
        db.writer().execute_unprepared("CREATE TABLE pages (b BLOB)").await.expect("table");
        for _ in 0..12 {
            db.write(None, |txn| insert_pages(txn, 100)).await.expect("pages");
        }
        let busy = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let writer = {
            let (db, busy) = (db.clone(), Arc::clone(&busy));
            tokio::spawn(async move {
                while busy.load(std::sync::atomic::Ordering::Relaxed) {
                    db.write(None, |txn| insert_pages(txn, 2)).await.expect("steady writes");
                }
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;

        let grown = db.checkpoint().await.expect("checkpoint").expect("a SQLite file checkpoints");
        assert!(grown.wal_frames >= REWIND_WAL_FRAMES, "the WAL holds the pages written: {grown:?}");
        assert_eq!(grown.checkpointed_frames, grown.wal_frames, "everything was copied back while the writer went on: {grown:?}");

        busy.store(false, std::sync::atomic::Ordering::Relaxed);
        writer.await.expect("writer");
        let after = db.checkpoint().await.expect("checkpoint").expect("a SQLite file checkpoints");
        assert!(after.wal_frames < grown.wal_frames.min(REWIND_WAL_FRAMES), "the writes after the checkpoint started the WAL over: {after:?} after {grown:?}");
        db.close().await.expect("close");
    }

    #[test]
    fn prefect_urls_are_accepted() {
        let u = normalize_url("sqlite+aiosqlite:////home/u/.prefect/prefect.db").unwrap();
        assert_eq!(u.backend, Backend::Sqlite);
        assert_eq!(u.url, "sqlite:///home/u/.prefect/prefect.db?mode=rwc");
        assert_eq!(u.sqlite_path, Some(PathBuf::from("/home/u/.prefect/prefect.db")));

        let u = normalize_url("sqlite+aiosqlite:///rel/prefect.db").unwrap();
        assert_eq!(u.sqlite_path, Some(PathBuf::from("rel/prefect.db")));

        let u = normalize_url("sqlite:///tmp/x.db").unwrap();
        assert_eq!(u.url, "sqlite:///tmp/x.db?mode=rwc");
        assert_eq!(u.sqlite_path, Some(PathBuf::from("/tmp/x.db")));

        let u = normalize_url("postgresql+asyncpg://postgres@127.0.0.1:5432/prefect").unwrap();
        assert_eq!(u.backend, Backend::Postgres);
        assert_eq!(u.url, "postgres://postgres@127.0.0.1:5432/prefect");

        assert!(normalize_url("mysql://x").is_err());
        assert!(normalize_url("nonsense").is_err());
    }
}
