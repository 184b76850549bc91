//! Cancellation cleanup, as Prefect's `cancellation_cleanup` service: task runs and
//! subflow runs of a cancelled flow run are cancelled, and runs left Cancelling for
//! `cancelling_timeout_seconds` (their worker never confirmed) become Cancelled.

use std::time::Duration;

use prefect_core::Core;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Settings (`PREFECT_SERVER_SERVICES_CANCELLATION_CLEANUP_*`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct CancellationCleanupOptions {
    pub enabled: bool,
    pub loop_seconds: f64,
    /// How long a run may stay Cancelling before it is marked Cancelled.
    #[serde(deserialize_with = "crate::duration_setting")]
    pub cancelling_timeout_seconds: f64,
    /// Runs read per page.
    pub batch_size: u64,
}

impl Default for CancellationCleanupOptions {
    fn default() -> Self {
        CancellationCleanupOptions { enabled: true, loop_seconds: 20.0, cancelling_timeout_seconds: 300.0, batch_size: 200 }
    }
}

/// What one pass changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanupPass {
    pub task_runs_cancelled: usize,
    pub subflow_runs_cancelled: usize,
    pub cancelling_timed_out: usize,
}

pub struct CancellationCleanup {
    options: CancellationCleanupOptions,
    core: Core,
}

impl CancellationCleanup {
    pub fn new(options: CancellationCleanupOptions, core: Core) -> Self {
        CancellationCleanup { options, core }
    }

    pub async fn run_once(&self) -> prefect_core::Result<CleanupPass> {
        let mut pass = CleanupPass::default();
        let batch = self.options.batch_size.max(1);
        let now = prefect_domain::time::now();

        // Task runs of runs cancelled in the last day.
        let mut cursor = Uuid::nil();
        loop {
            let cancelled = self.core.recently_cancelled_flow_runs(now - chrono::Duration::days(1), cursor, batch).await?;
            for id in &cancelled {
                match self.core.cancel_child_task_runs(*id).await {
                    Ok(n) => pass.task_runs_cancelled += n,
                    Err(error) => tracing::warn!(flow_run_id = %id, %error, "Could not cancel the task runs of a cancelled flow run."),
                }
            }
            match cancelled.last() {
                Some(last) if cancelled.len() as u64 == batch => cursor = *last,
                _ => break,
            }
        }

        // Subflow runs whose containing run was cancelled.
        let mut cursor = Uuid::nil();
        loop {
            let subflows = self.core.unfinished_subflow_runs(cursor, batch).await?;
            for (id, parent_task_run) in &subflows {
                match self.core.cancel_orphaned_subflow(*id, *parent_task_run).await {
                    Ok(true) => pass.subflow_runs_cancelled += 1,
                    Ok(false) => {}
                    Err(error) => tracing::warn!(flow_run_id = %id, %error, "Could not cancel a subflow run of a cancelled flow run."),
                }
            }
            match subflows.last() {
                Some((last, _)) if subflows.len() as u64 == batch => cursor = *last,
                _ => break,
            }
        }

        // Runs whose cancellation nobody confirmed.
        let before = now - crate::seconds(self.options.cancelling_timeout_seconds);
        for id in self.core.stale_cancelling_flow_runs(before, batch).await? {
            match self.core.time_out_cancelling(id, before).await {
                Ok(true) => pass.cancelling_timed_out += 1,
                Ok(false) => {}
                Err(error) => tracing::warn!(flow_run_id = %id, %error, "Could not end a timed-out cancellation."),
            }
        }
        if pass != CleanupPass::default() {
            tracing::info!(?pass, "Cancellation cleanup.");
        }
        Ok(pass)
    }

    pub async fn run(self, shutdown: CancellationToken) {
        let interval = Duration::from_secs_f64(self.options.loop_seconds.max(0.1));
        crate::run_periodically("cancellation_cleanup", interval, shutdown, || async { self.run_once().await.map(|_| ()) }).await;
    }
}
