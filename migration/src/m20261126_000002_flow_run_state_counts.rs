//! Flow run counts by state type, kept by the database itself.
//!
//! Counting the runs in some states (the UI's run tabs, a dashboard, `POST
//! /flow_runs/count` with only a state filter) otherwise visits one index entry per
//! run: ~130 ms at a million runs on either database. Triggers on `flow_run` keep
//! `flow_run_state_count` in step with every insert, state change and delete, in the
//! same transaction, whichever code path (or hand-written SQL) made the change.
//!
//! - SQLite has one writer, so the triggers update one row per state type in place.
//! - PostgreSQL may have many writers, and one hot row per state type would make them
//!   queue on its lock. There the triggers only append delta rows (`+1`, `-1`), which
//!   never conflict; a count sums them, and the database maintenance service folds
//!   them into one row per state type every few seconds.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

use crate::builders::Batch;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261126_000002_flow_run_state_counts"
    }
}

const CREATE_TABLE: &str = "CREATE TABLE flow_run_state_count (state_type TEXT NULL, n BIGINT NOT NULL)";

/// Starts the counts from the runs already stored.
const FILL: &str = "INSERT INTO flow_run_state_count (state_type, n) SELECT state_type, count(*) FROM flow_run GROUP BY state_type";

const SQLITE_UP: &[&str] = &[
    // `IS` rather than `=` so that runs without a state (NULL) are counted too.
    "CREATE TRIGGER flow_run_state_count_insert AFTER INSERT ON flow_run BEGIN
        INSERT INTO flow_run_state_count (state_type, n) SELECT NEW.state_type, 0
            WHERE NOT EXISTS (SELECT 1 FROM flow_run_state_count WHERE state_type IS NEW.state_type);
        UPDATE flow_run_state_count SET n = n + 1 WHERE state_type IS NEW.state_type;
    END",
    "CREATE TRIGGER flow_run_state_count_update AFTER UPDATE OF state_type ON flow_run
        WHEN OLD.state_type IS NOT NEW.state_type BEGIN
        UPDATE flow_run_state_count SET n = n - 1 WHERE state_type IS OLD.state_type;
        INSERT INTO flow_run_state_count (state_type, n) SELECT NEW.state_type, 0
            WHERE NOT EXISTS (SELECT 1 FROM flow_run_state_count WHERE state_type IS NEW.state_type);
        UPDATE flow_run_state_count SET n = n + 1 WHERE state_type IS NEW.state_type;
    END",
    "CREATE TRIGGER flow_run_state_count_delete AFTER DELETE ON flow_run BEGIN
        UPDATE flow_run_state_count SET n = n - 1 WHERE state_type IS OLD.state_type;
    END",
];

const SQLITE_DOWN: &[&str] = &[
    "DROP TRIGGER IF EXISTS flow_run_state_count_insert",
    "DROP TRIGGER IF EXISTS flow_run_state_count_update",
    "DROP TRIGGER IF EXISTS flow_run_state_count_delete",
    "DROP TABLE IF EXISTS flow_run_state_count",
];

const POSTGRES_UP: &[&str] = &[
    // Inserts and deletes count per statement, so a bulk insert appends one row per
    // state type rather than one per run.
    "CREATE OR REPLACE FUNCTION flow_run_state_count_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO flow_run_state_count (state_type, n) SELECT state_type, count(*) FROM inserted_runs GROUP BY state_type;
        RETURN NULL;
    END $$",
    "CREATE OR REPLACE FUNCTION flow_run_state_count_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO flow_run_state_count (state_type, n) SELECT state_type, -count(*) FROM deleted_runs GROUP BY state_type;
        RETURN NULL;
    END $$",
    "CREATE OR REPLACE FUNCTION flow_run_state_count_moved() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO flow_run_state_count (state_type, n) VALUES (OLD.state_type, -1), (NEW.state_type, 1);
        RETURN NULL;
    END $$",
    "CREATE TRIGGER flow_run_state_count_insert AFTER INSERT ON flow_run
        REFERENCING NEW TABLE AS inserted_runs FOR EACH STATEMENT EXECUTE FUNCTION flow_run_state_count_inserted()",
    "CREATE TRIGGER flow_run_state_count_delete AFTER DELETE ON flow_run
        REFERENCING OLD TABLE AS deleted_runs FOR EACH STATEMENT EXECUTE FUNCTION flow_run_state_count_deleted()",
    // Transition tables cannot go with a column list, and most updates of a run leave
    // its state alone: a row trigger with a WHEN clause costs nothing for those.
    "CREATE TRIGGER flow_run_state_count_update AFTER UPDATE OF state_type ON flow_run FOR EACH ROW
        WHEN (OLD.state_type IS DISTINCT FROM NEW.state_type) EXECUTE FUNCTION flow_run_state_count_moved()",
];

const POSTGRES_DOWN: &[&str] = &[
    "DROP TRIGGER IF EXISTS flow_run_state_count_insert ON flow_run",
    "DROP TRIGGER IF EXISTS flow_run_state_count_delete ON flow_run",
    "DROP TRIGGER IF EXISTS flow_run_state_count_update ON flow_run",
    "DROP FUNCTION IF EXISTS flow_run_state_count_inserted()",
    "DROP FUNCTION IF EXISTS flow_run_state_count_deleted()",
    "DROP FUNCTION IF EXISTS flow_run_state_count_moved()",
    "DROP TABLE IF EXISTS flow_run_state_count",
];

async fn execute_all(manager: &SchemaManager<'_>, statements: &[&str]) -> Result<(), DbErr> {
    let mut batch = Batch::new(manager);
    for sql in statements {
        batch.push_sql(sql);
    }
    batch.run(manager).await
}

// The trait's signatures elide `SchemaManager`'s lifetime; impls must match them exactly.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let triggers = match manager.get_database_backend() {
            DatabaseBackend::Sqlite => SQLITE_UP,
            DatabaseBackend::Postgres => POSTGRES_UP,
            other => return Err(DbErr::Migration(format!("unsupported database backend {other:?}"))),
        };
        execute_all(manager, &[&[CREATE_TABLE, FILL], triggers].concat()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        match manager.get_database_backend() {
            DatabaseBackend::Sqlite => execute_all(manager, SQLITE_DOWN).await,
            DatabaseBackend::Postgres => execute_all(manager, POSTGRES_DOWN).await,
            other => Err(DbErr::Migration(format!("unsupported database backend {other:?}"))),
        }
    }
}
