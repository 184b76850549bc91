//! Foreman: keeps worker, work pool, work queue and deployment readiness true to
//! what is happening, as Prefect's `foreman` service does. Workers that stopped
//! heartbeating go OFFLINE, pools without an online worker go NOT_READY, and queues
//! and deployments nobody polled for a while go NOT_READY.

use std::time::Duration;

use prefect_core::Core;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

/// Settings (`PREFECT_SERVER_SERVICES_FOREMAN_*`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ForemanOptions {
    pub enabled: bool,
    pub loop_seconds: f64,
    /// Queues and deployments not polled for this long become NOT_READY.
    #[serde(deserialize_with = "crate::duration_setting")]
    pub work_queue_last_polled_timeout_seconds: f64,
}

impl Default for ForemanOptions {
    fn default() -> Self {
        ForemanOptions { enabled: true, loop_seconds: 15.0, work_queue_last_polled_timeout_seconds: 60.0 }
    }
}

pub struct Foreman {
    options: ForemanOptions,
    core: Core,
}

impl Foreman {
    pub fn new(options: ForemanOptions, core: Core) -> Self {
        Foreman { options, core }
    }

    pub async fn run_once(&self) -> prefect_core::Result<usize> {
        let stale_after = crate::seconds(self.options.work_queue_last_polled_timeout_seconds);
        self.core.mark_unready_work(stale_after).await
    }

    pub async fn run(self, shutdown: CancellationToken) {
        let interval = Duration::from_secs_f64(self.options.loop_seconds.max(0.1));
        crate::run_periodically("foreman", interval, shutdown, || async { self.run_once().await.map(|_| ()) }).await;
    }
}
