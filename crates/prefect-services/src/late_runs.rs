//! Late runs: marks Scheduled runs `Late` once their start time is `after_seconds`
//! past, as Prefect's `late_runs` service does.

use std::time::Duration;

use prefect_core::Core;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

/// Settings (`PREFECT_SERVER_SERVICES_LATE_RUNS_*`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct LateRunsOptions {
    pub enabled: bool,
    pub loop_seconds: f64,
    /// How long past its scheduled time a run waits before it is Late.
    #[serde(deserialize_with = "crate::duration_setting")]
    pub after_seconds: f64,
    /// Runs marked per pass.
    pub batch_size: u64,
}

impl Default for LateRunsOptions {
    fn default() -> Self {
        LateRunsOptions { enabled: true, loop_seconds: 5.0, after_seconds: 15.0, batch_size: 400 }
    }
}

pub struct LateRuns {
    options: LateRunsOptions,
    core: Core,
}

impl LateRuns {
    pub fn new(options: LateRunsOptions, core: Core) -> Self {
        LateRuns { options, core }
    }

    /// Marks overdue runs Late; returns how many.
    pub async fn run_once(&self) -> prefect_core::Result<usize> {
        let before = prefect_domain::time::now() - crate::seconds(self.options.after_seconds);
        let mut marked = 0;
        for id in self.core.overdue_scheduled_runs(before, self.options.batch_size.max(1)).await? {
            // Each run in its own transaction: one picked up meanwhile is left alone.
            match self.core.mark_flow_run_late(id, before).await {
                Ok(true) => marked += 1,
                Ok(false) => {}
                Err(error) => tracing::warn!(flow_run_id = %id, %error, "Could not mark a flow run late."),
            }
        }
        if marked > 0 {
            tracing::info!(flow_runs = marked, "Marked flow runs late.");
        }
        Ok(marked)
    }

    pub async fn run(self, shutdown: CancellationToken) {
        let interval = Duration::from_secs_f64(self.options.loop_seconds.max(0.1));
        crate::run_periodically("late_runs", interval, shutdown, || async { self.run_once().await.map(|_| ()) }).await;
    }
}
