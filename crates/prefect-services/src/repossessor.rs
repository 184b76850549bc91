//! The repossessor: returns the slots of expired concurrency leases, so a
//! client that died holding slots cannot deadlock a limit.

use std::time::Duration;

use prefect_core::Core;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

/// Settings (`PREFECT_SERVER_SERVICES_REPOSSESSOR_*`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct RepossessorOptions {
    pub enabled: bool,
    pub loop_seconds: f64,
    /// Leases reclaimed per transaction.
    pub batch_size: u64,
}

impl Default for RepossessorOptions {
    fn default() -> Self {
        RepossessorOptions { enabled: true, loop_seconds: 15.0, batch_size: 200 }
    }
}

pub struct Repossessor {
    options: RepossessorOptions,
    core: Core,
}

impl Repossessor {
    pub fn new(options: RepossessorOptions, core: Core) -> Self {
        Repossessor { options, core }
    }

    /// Reclaims expired leases until none are left; returns how many.
    pub async fn run_once(&self) -> prefect_core::Result<usize> {
        let mut total = 0;
        loop {
            let reclaimed = self.core.reclaim_expired_leases(self.options.batch_size).await?;
            total += reclaimed;
            if (reclaimed as u64) < self.options.batch_size {
                if total > 0 {
                    tracing::info!(leases = total, "Reclaimed expired concurrency leases.");
                }
                return Ok(total);
            }
        }
    }

    pub async fn run(self, shutdown: CancellationToken) {
        let interval = Duration::from_secs_f64(self.options.loop_seconds.max(0.1));
        crate::run_periodically("repossessor", interval, shutdown, || async { self.run_once().await.map(|_| ()) }).await;
    }
}
