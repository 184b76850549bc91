//! Indexes on optional run columns hold only the rows that have a value.
//!
//! Most runs never set several of the columns Prefect indexes: ad-hoc runs have no
//! deployment or work queue, top-level runs no parent task run, and few runs carry
//! a flow version, a deployment version, an infrastructure document or a persisted
//! result. Each full index still took an entry for every row, and on PostgreSQL
//! every update that changes an indexed column (each state change does) adds a new
//! entry to every index whose predicate the new row version satisfies. An index
//! restricted to `column IS NOT NULL` skips those rows on insert and on update.
//!
//! The queries keep their plans: every query that reads these indexes compares the
//! column (`=`, `IN`, a join on it, `IS NOT NULL`), which implies `IS NOT NULL`,
//! and both SQLite and PostgreSQL use a partial index when the query implies its
//! predicate. An `IS NULL` filter never used these indexes for anything selective:
//! on the columns concerned most rows are `NULL`.
//!
//! Each index keeps its name, so the downgrade rebuilds the full index in its place.

use sea_orm_migration::prelude::*;

use crate::builders::{Batch, index};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261128_000005_partial_indexes_on_optional_columns"
    }
}

/// `(table, columns)`: each index is restricted to rows whose first column is set.
const OPTIONAL: &[(&str, &[&str])] = &[
    ("flow_run", &["deployment_id", "auto_scheduled", "next_scheduled_start_time"]),
    ("flow_run", &["deployment_version"]),
    ("flow_run", &["flow_version"]),
    ("flow_run", &["infrastructure_document_id"]),
    ("flow_run", &["parent_task_run_id"]),
    ("flow_run", &["work_queue_id", "state_type", "next_scheduled_start_time"]),
    ("flow_run", &["work_queue_name"]),
    ("flow_run_state", &["result_artifact_id"]),
    ("task_run_state", &["result_artifact_id"]),
];

/// The index on `columns`, restricted to rows whose first column is not `NULL`.
pub(crate) fn partial_index(table: &'static str, columns: &[&'static str]) -> IndexCreateStatement {
    let mut stmt = index(table, columns, false);
    stmt.and_where(Expr::col(Alias::new(columns[0])).is_not_null());
    stmt
}

// The trait's signatures elide `SchemaManager`'s lifetime; impls must match them exactly.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let mut batch = Batch::new(manager);
        for (table, columns) in OPTIONAL {
            batch.replace_index(table, columns, &partial_index(table, columns));
        }
        batch.run(manager).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let mut batch = Batch::new(manager);
        for (table, columns) in OPTIONAL {
            batch.replace_index(table, columns, &index(table, columns, false));
        }
        batch.run(manager).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partial_index_keeps_its_name_and_skips_rows_without_a_value() {
        let sqlite = partial_index("flow_run", &["work_queue_id", "state_type", "next_scheduled_start_time"]).to_string(SqliteQueryBuilder);
        assert!(
            sqlite.contains(
                r#""ix_flow_run__work_queue_id__state_type__next_scheduled_start_time" ON "flow_run" ("work_queue_id", "state_type", "next_scheduled_start_time") WHERE "work_queue_id" IS NOT NULL"#
            ),
            "{sqlite}"
        );
        let postgres = partial_index("flow_run_state", &["result_artifact_id"]).to_string(PostgresQueryBuilder);
        assert!(postgres.contains(r#"WHERE "result_artifact_id" IS NOT NULL"#), "{postgres}");
    }
}
