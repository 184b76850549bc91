//! Database upkeep that keeps the write path and query plans fast: WAL
//! checkpoints off the write path, and fresh planner statistics (SQLite; on
//! PostgreSQL autovacuum does both jobs and these are no-ops).

use std::time::Duration;

use prefect_core::Core;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

/// Settings (not Prefect settings: the Python server has no such service).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct DatabaseMaintenanceOptions {
    pub enabled: bool,
    /// How often the WAL is checkpointed into the database file.
    pub checkpoint_seconds: f64,
    /// How often planner statistics are refreshed (and once at start).
    pub statistics_seconds: f64,
}

impl Default for DatabaseMaintenanceOptions {
    fn default() -> Self {
        DatabaseMaintenanceOptions { enabled: true, checkpoint_seconds: 1.0, statistics_seconds: 60.0 }
    }
}

pub struct DatabaseMaintenance {
    options: DatabaseMaintenanceOptions,
    core: Core,
}

impl DatabaseMaintenance {
    pub fn new(options: DatabaseMaintenanceOptions, core: Core) -> Self {
        DatabaseMaintenance { options, core }
    }

    pub async fn run(self, shutdown: CancellationToken) {
        let db = self.core.db();
        let checkpoints = crate::run_periodically(
            "database checkpoints",
            Duration::from_secs_f64(self.options.checkpoint_seconds.max(0.05)),
            shutdown.clone(),
            || async { db.checkpoint().await.map_err(prefect_core::Error::from) },
        );
        let statistics = crate::run_periodically(
            "database statistics",
            Duration::from_secs_f64(self.options.statistics_seconds.max(1.0)),
            shutdown,
            || async { db.refresh_statistics().await.map_err(prefect_core::Error::from) },
        );
        tokio::join!(checkpoints, statistics);
    }
}
