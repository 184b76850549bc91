//! Pause expirations: a flow run paused with a timeout that nobody resumed in time
//! is failed ("The flow was paused and never resumed."), as Prefect's
//! `pause_expirations` service does.

use std::time::Duration;

use prefect_core::Core;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Settings (`PREFECT_SERVER_SERVICES_PAUSE_EXPIRATIONS_*`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct PauseExpirationsOptions {
    pub enabled: bool,
    pub loop_seconds: f64,
    /// Paused runs read per page.
    pub batch_size: u64,
}

impl Default for PauseExpirationsOptions {
    fn default() -> Self {
        PauseExpirationsOptions { enabled: true, loop_seconds: 5.0, batch_size: 200 }
    }
}

pub struct PauseExpirations {
    options: PauseExpirationsOptions,
    core: Core,
}

impl PauseExpirations {
    pub fn new(options: PauseExpirationsOptions, core: Core) -> Self {
        PauseExpirations { options, core }
    }

    /// Fails every paused run whose timeout has passed; returns how many.
    pub async fn run_once(&self) -> prefect_core::Result<usize> {
        let mut failed = 0;
        let mut cursor = Uuid::nil();
        loop {
            let (expired, next) = self.core.expired_pauses(cursor, self.options.batch_size.max(1)).await?;
            for id in expired {
                // Each run in its own transaction: one that was resumed meanwhile is left alone.
                match self.core.fail_expired_pause(id).await {
                    Ok(true) => failed += 1,
                    Ok(false) => {}
                    Err(error) => tracing::warn!(flow_run_id = %id, %error, "Could not fail an expired pause."),
                }
            }
            match next {
                Some(next) => cursor = next,
                None => break,
            }
        }
        if failed > 0 {
            tracing::info!(flow_runs = failed, "Failed paused flow runs whose pause expired.");
        }
        Ok(failed)
    }

    pub async fn run(self, shutdown: CancellationToken) {
        let interval = Duration::from_secs_f64(self.options.loop_seconds.max(0.1));
        crate::run_periodically("pause_expirations", interval, shutdown, || async { self.run_once().await.map(|_| ()) }).await;
    }
}
