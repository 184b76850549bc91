//! Database upkeep that keeps the write path, query plans and counts fast: WAL
//! checkpoints off the write path and fresh planner statistics (SQLite; on
//! PostgreSQL autovacuum does both jobs and these are no-ops), and folding the
//! per-state flow run count deltas (PostgreSQL; SQLite counts in place).

use std::time::{Duration, Instant};

use prefect_core::Core;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

/// Settings (not Prefect settings: the Python server has no such service).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct DatabaseMaintenanceOptions {
    pub enabled: bool,
    /// How often the WAL is checkpointed into the database file. Once it has grown past
    /// 1000 frames, the writer copies the last few between two transactions so that the
    /// next one rewinds it (see `Database::checkpoint`); checking often keeps that small.
    pub checkpoint_seconds: f64,
    /// How often table sizes are checked; statistics are refreshed when a table has
    /// doubled (from 1000 rows on) since the last refresh, so plans follow growth quickly.
    pub statistics_check_seconds: f64,
    /// Statistics are also refreshed this often when anything changed at all.
    pub statistics_seconds: f64,
    /// How often the flow run state count deltas are folded: a count sums the rows
    /// appended since the last fold.
    pub state_count_fold_seconds: f64,
}

impl Default for DatabaseMaintenanceOptions {
    fn default() -> Self {
        DatabaseMaintenanceOptions {
            enabled: true,
            checkpoint_seconds: 0.25,
            statistics_check_seconds: 2.0,
            statistics_seconds: 600.0,
            state_count_fold_seconds: 2.0,
        }
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
        let checkpoints =
            crate::run_periodically("database checkpoints", Duration::from_secs_f64(self.options.checkpoint_seconds.max(0.05)), shutdown.clone(), || async {
                db.checkpoint().await.map(|_| ()).map_err(prefect_core::Error::from)
            });
        let analyzed: std::sync::Mutex<Option<(Vec<i64>, Instant)>> = std::sync::Mutex::new(None);
        let every = Duration::from_secs_f64(self.options.statistics_seconds.max(1.0));
        let state_counts = crate::run_periodically(
            "flow run state counts",
            Duration::from_secs_f64(self.options.state_count_fold_seconds.max(0.05)),
            shutdown.clone(),
            || async { db.fold_state_counts().await.map(|_| ()).map_err(prefect_core::Error::from) },
        );
        let statistics =
            crate::run_periodically("database statistics", Duration::from_secs_f64(self.options.statistics_check_seconds.max(0.1)), shutdown, || async {
                let sizes = db.table_sizes().await?;
                let previous = analyzed.lock().map(|a| a.clone()).unwrap_or_default();
                if sizes.is_empty() || !statistics_are_stale(previous.as_ref(), &sizes, every) {
                    return Ok(());
                }
                let started = Instant::now();
                db.refresh_statistics().await?;
                tracing::debug!(seconds = started.elapsed().as_secs_f64(), "Refreshed the query planner statistics.");
                if let Ok(mut a) = analyzed.lock() {
                    *a = Some((sizes, Instant::now()));
                }
                Ok(())
            });
        tokio::join!(checkpoints, state_counts, statistics);
    }
}

/// Whether statistics taken at `previous` no longer describe tables of `sizes`: never
/// taken, a table at least doubled (counting from 500 rows), or `every` passed with changes.
fn statistics_are_stale(previous: Option<&(Vec<i64>, Instant)>, sizes: &[i64], every: Duration) -> bool {
    let Some((before, at)) = previous else { return true };
    let grown = sizes.iter().zip(before).any(|(now, then)| *now >= 2 * (*then).max(500));
    grown || (at.elapsed() >= every && sizes != before.as_slice())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics_follow_growth_not_every_write() {
        let hour = Duration::from_secs(3600);
        assert!(statistics_are_stale(None, &[0, 0], hour), "first pass");
        let taken = (vec![0, 0], Instant::now());
        assert!(!statistics_are_stale(Some(&taken), &[999, 10], hour), "small tables wait");
        assert!(statistics_are_stale(Some(&taken), &[1000, 10], hour));
        let taken = (vec![10_000, 10], Instant::now());
        assert!(!statistics_are_stale(Some(&taken), &[15_000, 10], hour));
        assert!(statistics_are_stale(Some(&taken), &[20_000, 10], hour));
        assert!(statistics_are_stale(Some(&taken), &[10_001, 10], Duration::ZERO), "periodic refresh after changes");
        assert!(!statistics_are_stale(Some(&taken), &[10_000, 10], Duration::ZERO), "nothing changed");
    }
}
