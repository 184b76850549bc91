//! Background loops of the Prefect server.
//!
//! Each service is a component: an `Options` struct (serde, with defaults
//! matching Prefect's settings), a value built from options and a
//! [`prefect_core::Core`], and `run(self, shutdown)` that owns its loop until
//! the [`CancellationToken`] fires. Every loop works in batches, one
//! transaction per batch, and is safe to run in several server instances
//! sharing one PostgreSQL database.

pub mod cancellation_cleanup;
pub mod database_maintenance;
pub mod db_vacuum;
pub mod event_pipeline;
pub mod foreman;
pub mod late_runs;
pub mod pause_expirations;
pub mod repossessor;
pub mod scheduler;
pub mod triggers;

use std::future::Future;
use std::time::Duration;

pub use cancellation_cleanup::{CancellationCleanup, CancellationCleanupOptions, CleanupPass};
pub use database_maintenance::{DatabaseMaintenance, DatabaseMaintenanceOptions};
pub use db_vacuum::{DbVacuum, DbVacuumOptions};
pub use event_pipeline::{EventPipeline, EventPipelineOptions};
pub use foreman::{Foreman, ForemanOptions};
pub use late_runs::{LateRuns, LateRunsOptions};
pub use pause_expirations::{PauseExpirations, PauseExpirationsOptions};
pub use repossessor::{Repossessor, RepossessorOptions};
pub use scheduler::{Scheduler, SchedulerOptions};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;
pub use triggers::{Triggers, TriggersOptions};

/// Options of every service, as configured by the server.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ServicesOptions {
    pub database_maintenance: DatabaseMaintenanceOptions,
    pub db_vacuum: DbVacuumOptions,
    pub event_pipeline: EventPipelineOptions,
    pub repossessor: RepossessorOptions,
    pub pause_expirations: PauseExpirationsOptions,
    pub late_runs: LateRunsOptions,
    pub cancellation_cleanup: CancellationCleanupOptions,
    pub foreman: ForemanOptions,
    pub scheduler: SchedulerOptions,
    pub triggers: TriggersOptions,
}

/// A settings value in (fractional) seconds as a duration, to the millisecond.
pub(crate) fn seconds(s: f64) -> chrono::Duration {
    chrono::Duration::milliseconds((s * 1000.0) as i64)
}

/// Runs `tick` every `interval` until `shutdown` fires; errors are logged and the loop goes on.
pub async fn run_periodically<F, Fut>(name: &'static str, interval: Duration, shutdown: CancellationToken, mut tick: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = prefect_core::Result<()>>,
{
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = ticker.tick() => {
                if let Err(error) = tick().await {
                    tracing::warn!(service = name, %error, "Service iteration failed; will retry.");
                }
            }
        }
    }
    tracing::debug!(service = name, "Service stopped.");
}

/// Reads a duration setting as Prefect's timedelta settings take it: seconds (a number or a
/// numeric string, as environment variables arrive) or an ISO 8601 duration such as `PT1H`.
pub(crate) fn duration_setting<'de, D>(deserializer: D) -> Result<f64, D::Error>
where
    D: serde::Deserializer<'de>,
{
    use serde::Deserialize;
    use serde::de::Error;
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Seconds(f64),
        Text(String),
    }
    match Raw::deserialize(deserializer)? {
        Raw::Seconds(seconds) => Ok(seconds),
        Raw::Text(text) => text
            .trim()
            .parse::<f64>()
            .ok()
            .or_else(|| prefect_domain::time::iso_duration_seconds(text.trim()))
            .ok_or_else(|| D::Error::custom(format!("{text:?} is neither a number of seconds nor an ISO 8601 duration"))),
    }
}
