//! Drops `ix_flow_run__flow_id`, which `uq_flow_run__flow_id__idempotency_key` covers.
//!
//! The unique index starts with `flow_id` and holds every run (a run without an
//! idempotency key is in it too), so it serves every lookup by flow (filters, the
//! cascade when a flow is deleted) as well as the narrower index did. On PostgreSQL
//! each state change writes a new version of the run's row, which adds an entry to
//! every index of `flow_run`, so the redundant index cost each transition a B-tree
//! insert of its own.

use sea_orm_migration::prelude::*;

use crate::builders::{Batch, index};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261128_000006_drop_flow_run_flow_id_index"
    }
}

// The trait's signatures elide `SchemaManager`'s lifetime; impls must match them exactly.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        Batch::new(manager).drop_index("flow_run", &["flow_id"]).run(manager).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        Batch::new(manager).push(&index("flow_run", &["flow_id"], false)).run(manager).await
    }
}
