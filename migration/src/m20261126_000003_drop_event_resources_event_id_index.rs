//! Drops the index of `event_resources` on `event_id`.
//!
//! Every stored event writes one resource row per resource it names, and each row
//! updated every index of the table. Nothing reads resource rows by event: filters go
//! through `(resource_id, occurred)`, and the database vacuum deletes by `occurred`
//! (events of one type: by `occurred` and then `event_id` among those rows). So the
//! index only cost writes.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261126_000003_drop_event_resources_event_id_index"
    }
}

const INDEX: &str = "ix_event_resources__event_id";

// The trait's signatures elide `SchemaManager`'s lifetime; impls must match them exactly.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_index(Index::drop().name(INDEX).table("event_resources").if_exists().to_owned()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.create_index(Index::create().name(INDEX).table("event_resources").col("event_id").if_not_exists().to_owned()).await
    }
}
