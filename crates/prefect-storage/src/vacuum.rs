//! Bounded deletes of old and orphaned rows, for the database vacuum service.
//!
//! Every function deletes at most `limit` rows (or handles at most `limit` parents) and
//! says how many it deleted, so the caller commits one batch per transaction and stops
//! when a batch comes back empty. Each picks its rows through an index: `occurred` for
//! events and their resources, `(event, occurred)` for events of one type, `flow_run_id`
//! for logs and artifacts.

use prefect_domain::state::StateType;
use prefect_domain::time::DateTime;
use sea_orm::sea_query::{Expr, ExprTrait, IntoTableRef, Query, TableRef};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, QueryTrait};
use uuid::Uuid;

use crate::Result;
use crate::db::Backend;
use crate::entity::{artifact, artifact_collection, event_resources, events, flow_run, log};

/// Deletes up to `limit` event resource rows of events that occurred before `before`.
pub async fn delete_event_resources_older_than(c: &impl ConnectionTrait, before: DateTime, limit: u64) -> Result<u64> {
    let batch = event_resources::Entity::find()
        .select_only()
        .column(event_resources::Column::Id)
        .filter(event_resources::Column::Occurred.lt(before))
        .limit(limit)
        .into_query();
    Ok(event_resources::Entity::delete_many().filter(event_resources::Column::Id.in_subquery(batch)).exec(c).await?.rows_affected)
}

/// Deletes up to `limit` events that occurred before `before` (their resource rows are
/// deleted by [`delete_event_resources_older_than`], through their own `occurred`).
pub async fn delete_events_older_than(c: &impl ConnectionTrait, before: DateTime, limit: u64) -> Result<u64> {
    let batch = events::Entity::find().select_only().column(events::Column::Id).filter(events::Column::Occurred.lt(before)).limit(limit).into_query();
    Ok(events::Entity::delete_many().filter(events::Column::Id.in_subquery(batch)).exec(c).await?.rows_affected)
}

/// Deletes up to `limit` events of type `event_type` that occurred before `before`, with
/// their resource rows; returns (events, resource rows) deleted.
///
/// A resource row carries its event's `occurred`, so the rows of a batch of events are
/// found through the `occurred` index, however many other events lie in between.
pub async fn delete_events_of_type_older_than(c: &impl ConnectionTrait, event_type: &str, before: DateTime, limit: u64) -> Result<(u64, u64)> {
    let batch: Vec<(Uuid, DateTime)> = events::Entity::find()
        .select_only()
        .column(events::Column::Id)
        .column(events::Column::Occurred)
        .filter(events::Column::Event.eq(event_type))
        .filter(events::Column::Occurred.lt(before))
        .limit(limit)
        .into_tuple()
        .all(c)
        .await?;
    if batch.is_empty() {
        return Ok((0, 0));
    }
    let (ids, occurred): (Vec<Uuid>, Vec<DateTime>) = batch.into_iter().unzip();
    let resources = event_resources::Entity::delete_many()
        .filter(event_resources::Column::Occurred.is_in(occurred))
        .filter(event_resources::Column::EventId.is_in(ids.clone()))
        .exec(c)
        .await?
        .rows_affected;
    let deleted = events::Entity::delete_many().filter(events::Column::Id.is_in(ids)).exec(c).await?.rows_affected;
    Ok((deleted, resources))
}

/// Deletes up to `limit` top-level flow runs that ended in a final state before `before`
/// (their states, task runs and inputs go with them); returns their ids. On PostgreSQL
/// runs locked by a concurrent transition are skipped, for a later pass.
pub async fn delete_old_flow_runs(c: &impl ConnectionTrait, backend: Backend, before: DateTime, limit: u64) -> Result<Vec<Uuid>> {
    let terminal = [StateType::Completed, StateType::Failed, StateType::Cancelled, StateType::Crashed].map(|t| t.as_str());
    let mut select = flow_run::Entity::find()
        .select_only()
        .column(flow_run::Column::Id)
        .filter(flow_run::Column::ParentTaskRunId.is_null())
        .filter(flow_run::Column::StateType.is_in(terminal))
        .filter(flow_run::Column::EndTime.is_not_null())
        .filter(flow_run::Column::EndTime.lt(before))
        .order_by_asc(flow_run::Column::Id)
        .limit(limit);
    if backend == Backend::Postgres {
        select = select.lock_with_behavior(sea_orm::sea_query::LockType::Update, sea_orm::sea_query::LockBehavior::SkipLocked);
    }
    let ids: Vec<Uuid> = select.into_tuple().all(c).await?;
    crate::flow_runs::delete_many(c, &ids).await?;
    Ok(ids)
}

/// Tables whose rows point at flow runs without a foreign key, and so can outlive them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowRunChildren {
    Logs,
    Artifacts,
}

impl FlowRunChildren {
    fn table(self) -> TableRef {
        match self {
            FlowRunChildren::Logs => log::Entity.into_table_ref(),
            FlowRunChildren::Artifacts => artifact::Entity.into_table_ref(),
        }
    }

    fn id(self) -> Expr {
        match self {
            FlowRunChildren::Logs => Expr::col((log::Entity, log::Column::Id)),
            FlowRunChildren::Artifacts => Expr::col((artifact::Entity, artifact::Column::Id)),
        }
    }

    fn flow_run_id(self) -> Expr {
        match self {
            FlowRunChildren::Logs => Expr::col((log::Entity, log::Column::FlowRunId)),
            FlowRunChildren::Artifacts => Expr::col((artifact::Entity, artifact::Column::FlowRunId)),
        }
    }
}

/// Whether only rows whose flow run is missing may be deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Only {
    /// Every row of the given runs (the runs were just deleted).
    All,
    /// Rows of the given runs while those runs still do not exist (one may have been
    /// created since they were found missing).
    Orphans,
}

/// Deletes up to `limit` rows of `children` that point at the given flow runs.
pub async fn delete_children(c: &impl ConnectionTrait, children: FlowRunChildren, flow_run_ids: &[Uuid], only: Only, limit: u64) -> Result<u64> {
    if flow_run_ids.is_empty() {
        return Ok(0);
    }
    let mut batch = Query::select();
    batch.expr(children.id()).from(children.table()).and_where(children.flow_run_id().is_in(flow_run_ids.iter().copied())).limit(limit);
    if only == Only::Orphans {
        let mut run = Query::select();
        run.expr(Expr::val(1)).from(flow_run::Entity).and_where(Expr::col((flow_run::Entity, flow_run::Column::Id)).eq(children.flow_run_id()));
        batch.and_where(Expr::exists(run).not());
    }
    let mut delete = Query::delete();
    delete.from_table(children.table()).and_where(children.id().in_subquery(batch));
    Ok(c.execute(&delete).await?.rows_affected())
}

/// The flow runs referenced by `children`, in id order after `after`, at most `limit`,
/// that no longer exist. Walking the distinct ids of the `flow_run_id` index a page at a
/// time reads each part of the index once, where an anti-join per batch would rescan it.
/// Returns the page's last id (the next cursor; `None` at the end) and the missing runs.
pub async fn missing_flow_runs_page(c: &impl ConnectionTrait, children: FlowRunChildren, after: Option<Uuid>, limit: u64) -> Result<(Option<Uuid>, Vec<Uuid>)> {
    let column = children.flow_run_id();
    let mut page = Query::select();
    page.distinct()
        .expr(column.clone())
        .from(children.table())
        .and_where(column.clone().is_not_null())
        .order_by_expr(column.clone(), sea_orm::Order::Asc)
        .limit(limit);
    if let Some(after) = after {
        page.and_where(column.gt(after));
    }
    let referenced: Vec<Uuid> = c.query_all(&page).await?.iter().map(|row| row.try_get_by_index::<Uuid>(0)).collect::<std::result::Result<_, _>>()?;
    let Some(last) = referenced.last().copied() else { return Ok((None, Vec::new())) };
    let existing: Vec<Uuid> =
        flow_run::Entity::find().select_only().column(flow_run::Column::Id).filter(flow_run::Column::Id.is_in(referenced.clone())).into_tuple().all(c).await?;
    let missing = referenced.into_iter().filter(|id| !existing.contains(id)).collect();
    Ok((Some(last), missing))
}

/// Artifact collections whose latest artifact was deleted behind their back (by the flow
/// run vacuum, or by hand), at most `limit`: re-pointed at the newest remaining artifact
/// of their key, or deleted when none remains. Returns (re-pointed, deleted).
pub async fn reconcile_artifact_collections(c: &impl ConnectionTrait, limit: u64, now: DateTime) -> Result<(u64, u64)> {
    let mut latest_exists = Query::select();
    latest_exists
        .expr(Expr::val(1))
        .from(artifact::Entity)
        .and_where(Expr::col((artifact::Entity, artifact::Column::Id)).equals((artifact_collection::Entity, artifact_collection::Column::LatestId)));
    let stale = artifact_collection::Entity::find().filter(Expr::exists(latest_exists).not()).limit(limit).all(c).await?;
    let (mut repointed, mut deleted) = (0, 0);
    for entry in stale {
        if crate::artifacts::repoint_collection(c, entry.id, &entry.key, now).await? {
            repointed += 1;
        } else {
            deleted += 1;
        }
    }
    Ok((repointed, deleted))
}
