//! Schema migrations of the Prefect server.
//!
//! Migrations are frozen history: they use string identifiers, never the
//! entities of `prefect-storage`, and each runs inside a transaction on both
//! SQLite and PostgreSQL. They run on server start (unless disabled) and from
//! `prefect-server database upgrade|downgrade|reset`.

pub use sea_orm_migration::prelude::*;

mod builders;
mod m20261126_000001_initial;
mod m20261126_000002_flow_run_state_counts;
mod m20261126_000003_drop_event_resources_event_id_index;
mod m20261127_000004_run_sort_indexes_with_id;
mod m20261128_000005_partial_indexes_on_optional_columns;
mod m20261128_000006_drop_flow_run_flow_id_index;

/// The ordered list of migrations.
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261126_000001_initial::Migration),
            Box::new(m20261126_000002_flow_run_state_counts::Migration),
            Box::new(m20261126_000003_drop_event_resources_event_id_index::Migration),
            Box::new(m20261127_000004_run_sort_indexes_with_id::Migration),
            Box::new(m20261128_000005_partial_indexes_on_optional_columns::Migration),
            Box::new(m20261128_000006_drop_flow_run_flow_id_index::Migration),
        ]
    }
}
