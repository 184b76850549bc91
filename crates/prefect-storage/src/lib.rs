//! Storage for the Prefect server on SeaORM, for SQLite and PostgreSQL.
//!
//! This crate owns the database: connecting ([`Database`]), migrating
//! ([`migrate`]), the entities (which never leave the crate), and repository
//! functions that read and write domain types from `prefect-domain`. Every
//! repository function takes `&impl ConnectionTrait`, so the caller decides
//! whether it runs inside a write transaction ([`Database::begin_write`]) or on
//! the read pool ([`Database::reader`]).
//!
//! It knows nothing about orchestration or HTTP.
//!
//! ```no_run
//! # async fn demo() -> prefect_storage::Result<()> {
//! use prefect_storage::{Database, DatabaseOptions};
//! let db = Database::connect(&DatabaseOptions { url: "sqlite:///tmp/prefect.db".into(), ..Default::default() }).await?;
//! prefect_storage::migrate(&db).await?;
//! let flow = prefect_storage::flows::read_by_name(db.reader(), "my-flow").await?;
//! # Ok(()) }
//! ```

pub mod artifacts;
pub mod automations;
pub mod batch;
pub mod blocks;
mod bulk;
pub mod concurrency;
pub mod configuration;
mod convert;
pub mod csrf;
pub mod db;
pub mod deployments;
pub mod direct_reads;
pub mod direct_writes;
mod entity;
mod error;
pub mod events;
pub mod flow_run_inputs;
pub mod flow_runs;
pub mod flows;
pub mod logs;
mod postgres_tls;
pub mod query;
mod rows;
pub mod saved_searches;
mod sqlite_tuning;
pub mod task_runs;
mod tcp_nodelay;
#[cfg(test)]
mod test_support;
pub mod vacuum;
pub mod variables;
pub mod work_pools;
pub mod writes;

pub use db::{Backend, Checkpoint, Database, DatabaseOptions, ReadConnection, Reads};
pub use error::{Error, Result};
pub use sea_orm::{ConnectionTrait, DatabaseTransaction, Statement, TransactionTrait};
pub use writes::RowWrites;

use prefect_migration::{Migrator, MigratorTrait};

/// Commits a write transaction.
pub async fn commit(txn: DatabaseTransaction) -> Result<()> {
    txn.commit().await.map_err(Error::from_db)
}

/// Key of the PostgreSQL advisory lock that serializes migrations across server instances.
const MIGRATION_LOCK_KEY: i64 = 0x5052_4546_4543_5401;

/// Applies every pending migration. On PostgreSQL, under a transaction-scoped
/// advisory lock, so replicas starting together migrate one at a time.
pub async fn migrate(db: &Database) -> Result<()> {
    match db.backend() {
        Backend::Sqlite => Migrator::up(db.writer(), None).await.map_err(Error::from_db),
        Backend::Postgres => {
            let txn = db.writer().begin().await.map_err(Error::from_db)?;
            txn.execute_raw(sea_orm::Statement::from_sql_and_values(
                sea_orm::DatabaseBackend::Postgres,
                "SELECT pg_advisory_xact_lock($1)",
                [MIGRATION_LOCK_KEY.into()],
            ))
            .await
            .map_err(Error::from_db)?;
            Migrator::up(&txn, None).await.map_err(Error::from_db)?;
            txn.commit().await.map_err(Error::from_db)
        }
    }
}

/// Reverts the last `steps` migrations (all with `None`).
pub async fn downgrade(db: &Database, steps: Option<u32>) -> Result<()> {
    Migrator::down(db.writer(), steps).await.map_err(Error::from_db)
}

/// Drops everything and migrates from scratch.
pub async fn reset(db: &Database) -> Result<()> {
    Migrator::fresh(db.writer()).await.map_err(Error::from_db)
}

/// Names of applied migrations, oldest first.
pub async fn applied_migrations(db: &Database) -> Result<Vec<String>> {
    let migrations = Migrator::get_applied_migrations(db.writer()).await.map_err(Error::from_db)?;
    Ok(migrations.into_iter().map(|m| m.name().to_owned()).collect())
}
