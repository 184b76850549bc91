//! Run pages sorted by expected start time, served whole by an index.
//!
//! Run pages sort by a column and then by `id`, so that runs with the same start
//! time keep one order from page to page. The indexes they walk held only the
//! column: for the tie-break SQLite built a temporary B-tree on every page ("USE
//! TEMP B-TREE FOR RIGHT PART OF ORDER BY"), and PostgreSQL an incremental sort.
//! With `id` as the last column, the index alone gives the page's order (forwards
//! for ascending sorts, backwards for descending ones), and a page stops after
//! `limit` rows without sorting anything.
//!
//! The indexes are rebuilt in place of the ones they replace, so the number of
//! indexes each insert updates stays the same.

use sea_orm_migration::prelude::*;

use crate::builders::{Batch, index};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261127_000004_run_sort_indexes_with_id"
    }
}

/// `(table, columns before, columns after)`: each index gains `id` as its last column.
const REPLACED: &[(&str, &[&str], &[&str])] = &[
    ("flow_run", &["expected_start_time"], &["expected_start_time", "id"]),
    ("flow_run", &["state_type", "expected_start_time"], &["state_type", "expected_start_time", "id"]),
    ("task_run", &["expected_start_time"], &["expected_start_time", "id"]),
];

// The trait's signatures elide `SchemaManager`'s lifetime; impls must match them exactly.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let mut batch = Batch::new(manager);
        for (table, before, after) in REPLACED {
            batch.replace_index(table, before, &index(table, after, false));
        }
        batch.run(manager).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let mut batch = Batch::new(manager);
        for (table, before, after) in REPLACED {
            batch.replace_index(table, after, &index(table, before, false));
        }
        batch.run(manager).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builders::index_name;

    #[test]
    fn names_follow_the_initial_migrations_convention() {
        assert_eq!(index_name("flow_run", &["expected_start_time"], false), "ix_flow_run__expected_start_time");
        let created = index("flow_run", &["expected_start_time", "id"], false).to_string(SqliteQueryBuilder);
        assert!(created.contains(r#""ix_flow_run__expected_start_time__id" ON "flow_run" ("expected_start_time", "id")"#), "{created}");
    }
}
