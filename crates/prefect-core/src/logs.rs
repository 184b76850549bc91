//! Log use cases.

use prefect_domain::filters::LogFilter;
use prefect_domain::log::{Log, LogCreate};
use prefect_domain::sorts::LogSort;
use prefect_domain::time;
use prefect_storage::logs;

use crate::{Core, Result};

impl Core {
    /// Stores a batch of log lines in one transaction.
    pub async fn create_logs(&self, batch: Vec<LogCreate>) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let batch = std::sync::Arc::new(batch);
        let backend = self.db().backend();
        self.write_bulk(move |txn| {
            let batch = std::sync::Arc::clone(&batch);
            Box::pin(async move { Ok(logs::insert_many(txn, backend, &batch, time::now()).await?) })
        })
        .await
    }

    pub async fn filter_logs(&self, filter: Option<&LogFilter>, sort: LogSort, limit: Option<u64>, offset: u64) -> Result<Vec<Log>> {
        let limit = self.settings().limit(limit)?;
        Ok(logs::filter(self.db().reader(), self.db().backend(), filter, sort, limit, offset).await?)
    }

    /// Every log line of a flow run, oldest first, read in pages (for downloads).
    pub async fn all_flow_run_logs(&self, flow_run_id: uuid::Uuid) -> Result<Vec<Log>> {
        let filter = LogFilter { flow_run_id: Some(prefect_domain::filters::IdFilter { any_: Some(vec![flow_run_id]), not_any_: None }), ..Default::default() };
        let mut out = Vec::new();
        loop {
            let page = logs::filter(self.db().reader(), self.db().backend(), Some(&filter), LogSort::TimestampAsc, 1000, out.len() as u64).await?;
            let done = page.len() < 1000;
            out.extend(page);
            if done {
                return Ok(out);
            }
        }
    }
}
