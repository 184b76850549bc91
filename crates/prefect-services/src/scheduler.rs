//! The scheduler: keeps future runs in place for every active schedule of every unpaused
//! deployment, as Prefect's `schedule_deployments` and `schedule_recent_deployments` do.
//!
//! Each pass selects deployments whose active schedules have too few future
//! auto-scheduled runs (or none far enough ahead), generates the runs their schedules
//! call for, and inserts them in batches with `ON CONFLICT DO NOTHING` on
//! `(flow_id, idempotency_key)`: the key `scheduled {deployment} {schedule} {time}` makes
//! several schedulers sharing a database create each run once. A fast loop also looks at
//! deployments updated in the last few seconds, so new or resumed deployments get runs
//! within seconds rather than at the next main pass.

use std::time::Duration;

use prefect_core::Core;
use prefect_core::deployments::ScheduleLimits;
use prefect_domain::time;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

/// Settings (`PREFECT_SERVER_SERVICES_SCHEDULER_*`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct SchedulerOptions {
    pub enabled: bool,
    /// Seconds between main passes.
    pub loop_seconds: f64,
    /// Deployments handled per batch.
    pub deployment_batch_size: usize,
    /// Most runs scheduled per schedule and pass.
    pub max_runs: usize,
    /// Fewest future runs kept per schedule.
    pub min_runs: usize,
    /// Runs are scheduled at most this many seconds ahead.
    #[serde(deserialize_with = "crate::duration_setting")]
    pub max_scheduled_time_seconds: f64,
    /// Runs are scheduled at least this many seconds ahead.
    #[serde(deserialize_with = "crate::duration_setting")]
    pub min_scheduled_time_seconds: f64,
    /// Runs inserted per transaction.
    pub insert_batch_size: usize,
    /// Seconds between passes over recently updated deployments.
    pub recent_deployments_loop_seconds: f64,
}

impl Default for SchedulerOptions {
    fn default() -> Self {
        SchedulerOptions {
            enabled: true,
            loop_seconds: 60.0,
            deployment_batch_size: 100,
            max_runs: 100,
            min_runs: 3,
            max_scheduled_time_seconds: 100.0 * 86400.0,
            min_scheduled_time_seconds: 3600.0,
            insert_batch_size: 500,
            recent_deployments_loop_seconds: 5.0,
        }
    }
}

impl SchedulerOptions {
    pub fn limits(&self) -> ScheduleLimits {
        ScheduleLimits {
            max_runs: self.max_runs,
            min_runs: self.min_runs,
            max_scheduled_time: crate::seconds(self.max_scheduled_time_seconds),
            min_scheduled_time: crate::seconds(self.min_scheduled_time_seconds),
        }
    }
}

#[derive(Clone)]
pub struct Scheduler {
    options: SchedulerOptions,
    core: Core,
}

impl Scheduler {
    pub fn new(options: SchedulerOptions, core: Core) -> Self {
        Scheduler { options, core }
    }

    /// One main pass: schedules every deployment that needs runs; returns how many runs were inserted.
    pub async fn run_once(&self) -> prefect_core::Result<usize> {
        let ids = self.core.deployments_to_schedule(&self.options.limits(), None).await?;
        self.schedule(ids).await
    }

    /// One pass over deployments updated within the last `recent_deployments_loop_seconds` (plus one).
    pub async fn run_recent_once(&self) -> prefect_core::Result<usize> {
        let window = crate::seconds(self.options.recent_deployments_loop_seconds + 1.0);
        let ids = self.core.deployments_to_schedule(&self.options.limits(), Some(time::now() - window)).await?;
        self.schedule(ids).await
    }

    async fn schedule(&self, ids: Vec<uuid::Uuid>) -> prefect_core::Result<usize> {
        let limits = self.options.limits();
        let mut inserted = 0;
        for batch in ids.chunks(self.options.deployment_batch_size.max(1)) {
            let mut runs = Vec::new();
            for id in batch {
                // A badly configured schedule must not stop the others.
                match self.core.runs_to_schedule(*id, &limits).await {
                    Ok(r) => runs.extend(r),
                    Err(error) => tracing::warn!(deployment_id = %id, %error, "Error scheduling deployment."),
                }
            }
            for chunk in runs.chunks(self.options.insert_batch_size.max(1)) {
                inserted += self.core.insert_scheduled_runs(chunk).await?;
            }
        }
        if inserted > 0 {
            tracing::info!(flow_runs = inserted, "Scheduled runs.");
        }
        Ok(inserted)
    }

    /// Runs the main loop and the recent-deployments loop until `shutdown` fires.
    pub async fn run(self, shutdown: CancellationToken) {
        let main = Duration::from_secs_f64(self.options.loop_seconds.max(0.1));
        let recent = Duration::from_secs_f64(self.options.recent_deployments_loop_seconds.max(0.1));
        let fast = self.clone();
        let fast_shutdown = shutdown.clone();
        tokio::join!(
            crate::run_periodically("scheduler", main, shutdown, || async { self.run_once().await.map(|_| ()) }),
            crate::run_periodically("recent_deployments_scheduler", recent, fast_shutdown, || async { fast.run_recent_once().await.map(|_| ()) }),
        );
    }
}
