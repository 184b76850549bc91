//! Database vacuum: deleting events past their retention, old finished flow runs with
//! their logs and artifacts, and rows orphaned by deleted runs. Each batch is one write
//! transaction in the writers' bulk lane, so a long vacuum shares the writer with
//! orchestration instead of holding it.

use std::sync::Arc;

use prefect_domain::time::{self, DateTime};
use prefect_storage::vacuum::{self, FlowRunChildren, Only};
use uuid::Uuid;

use crate::{Core, Result};

/// What one flow run vacuum pass deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FlowRunVacuum {
    pub flow_runs: u64,
    pub logs: u64,
    pub artifacts: u64,
}

impl Core {
    /// Deletes every event (and event resource row) that occurred before `before`, in
    /// batches of `batch_size`; returns (events, resource rows) deleted.
    pub async fn vacuum_events_before(&self, before: DateTime, batch_size: u64) -> Result<(u64, u64)> {
        let resources =
            self.delete_in_batches(move |txn| Box::pin(async move { Ok(vacuum::delete_event_resources_older_than(txn, before, batch_size).await?) })).await?;
        let events = self.delete_in_batches(move |txn| Box::pin(async move { Ok(vacuum::delete_events_older_than(txn, before, batch_size).await?) })).await?;
        Ok((events, resources))
    }

    /// Deletes the events of one type that occurred before `before`, with their resource
    /// rows, in batches of `batch_size`; returns (events, resource rows) deleted.
    pub async fn vacuum_events_of_type_before(&self, event_type: &str, before: DateTime, batch_size: u64) -> Result<(u64, u64)> {
        let (mut events, mut resources) = (0, 0);
        loop {
            let event_type = event_type.to_owned();
            let (deleted, rows) = self
                .write_bulk(move |txn| {
                    let event_type = event_type.clone();
                    Box::pin(async move { Ok(vacuum::delete_events_of_type_older_than(txn, &event_type, before, batch_size).await?) })
                })
                .await?;
            events += deleted;
            resources += rows;
            if deleted == 0 {
                return Ok((events, resources));
            }
        }
    }

    /// Deletes top-level flow runs that reached a final state before `before`, then their
    /// logs and artifacts (which have no foreign key to cascade along), in batches.
    ///
    /// The runs of a batch are deleted first and in one transaction, so a run that a
    /// concurrent transition keeps is never left without its logs; children left behind
    /// by an interrupted pass are found by [`Core::vacuum_orphans`].
    pub async fn vacuum_flow_runs_before(&self, before: DateTime, batch_size: u64) -> Result<FlowRunVacuum> {
        let backend = self.db().backend();
        let mut total = FlowRunVacuum::default();
        loop {
            let ids: Vec<Uuid> =
                self.write_bulk(move |txn| Box::pin(async move { Ok(vacuum::delete_old_flow_runs(txn, backend, before, batch_size).await?) })).await?;
            if ids.is_empty() {
                return Ok(total);
            }
            total.flow_runs += ids.len() as u64;
            let runs = Arc::new(ids);
            total.logs += self.delete_children(FlowRunChildren::Logs, Arc::clone(&runs), Only::All, batch_size).await?;
            total.artifacts += self.delete_children(FlowRunChildren::Artifacts, runs, Only::All, batch_size).await?;
        }
    }

    /// Deletes logs and artifacts whose flow run no longer exists, then mends artifact
    /// collections whose latest artifact is gone; returns (logs, artifacts, collections).
    pub async fn vacuum_orphans(&self, batch_size: u64) -> Result<(u64, u64, u64)> {
        let logs = self.delete_orphans(FlowRunChildren::Logs, batch_size).await?;
        let artifacts = self.delete_orphans(FlowRunChildren::Artifacts, batch_size).await?;
        let mut collections = 0;
        loop {
            let (repointed, deleted) =
                self.write_bulk(move |txn| Box::pin(async move { Ok(vacuum::reconcile_artifact_collections(txn, batch_size, time::now()).await?) })).await?;
            collections += repointed + deleted;
            if repointed + deleted == 0 {
                return Ok((logs, artifacts, collections));
            }
        }
    }

    async fn delete_orphans(&self, children: FlowRunChildren, batch_size: u64) -> Result<u64> {
        let mut cursor = None;
        let mut total = 0;
        loop {
            let (next, missing) = vacuum::missing_flow_runs_page(self.db().reader(), children, cursor, batch_size).await?;
            if !missing.is_empty() {
                total += self.delete_children(children, Arc::new(missing), Only::Orphans, batch_size).await?;
            }
            match next {
                Some(last) => cursor = Some(last),
                None => return Ok(total),
            }
        }
    }

    /// Deletes the rows of `children` that point at `runs`, a batch per transaction.
    async fn delete_children(&self, children: FlowRunChildren, runs: Arc<Vec<Uuid>>, only: Only, batch_size: u64) -> Result<u64> {
        self.delete_in_batches(move |txn| {
            let runs = Arc::clone(&runs);
            Box::pin(async move { Ok(vacuum::delete_children(txn, children, &runs, only, batch_size).await?) })
        })
        .await
    }

    /// Runs a bounded delete until it deletes nothing; returns the total.
    async fn delete_in_batches<F>(&self, batch: F) -> Result<u64>
    where
        F: for<'t> Fn(&'t prefect_storage::DatabaseTransaction) -> prefect_storage::batch::JobFuture<'t, u64, crate::Error> + Send + Sync + Clone + 'static,
    {
        let mut total = 0;
        loop {
            let deleted = self.write_bulk(batch.clone()).await?;
            total += deleted;
            if deleted == 0 {
                return Ok(total);
            }
        }
    }
}
