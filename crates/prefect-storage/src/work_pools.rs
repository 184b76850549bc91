//! Work pools, their queues and workers.

use std::collections::HashMap;

use prefect_domain::filters::{WorkPoolFilter, WorkQueueFilter};
use prefect_domain::time::DateTime;
use prefect_domain::work_pool::{
    ScheduledRunsQuery, WorkPool, WorkPoolCreate, WorkPoolStatus, WorkPoolStorageConfiguration, WorkPoolUpdate, WorkQueue, WorkQueueCreate, WorkQueueStatus,
    WorkQueueUpdate, Worker, WorkerFilter, WorkerStatus,
};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, Order, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, RelationTrait, Statement,
};
use serde_json::Value;
use uuid::Uuid;

use crate::Result;
use crate::convert;
use crate::db::{Backend, ReadConnection};
use crate::entity::{deployment, flow_run, work_pool, work_queue, worker};
use crate::query;
use crate::rows;

fn status_str(status: Option<WorkPoolStatus>) -> String {
    status.map(WorkPoolStatus::as_str).unwrap_or("").to_owned()
}

fn pool_from_model(m: work_pool::Model) -> WorkPool {
    let storage_configuration: WorkPoolStorageConfiguration = serde_json::from_value(m.storage_configuration).unwrap_or_default();
    WorkPool {
        id: m.id,
        created: m.created,
        updated: m.updated,
        name: m.name,
        description: m.description,
        status: if m.kind == prefect_domain::work_pool::AGENT_POOL_TYPE { None } else { WorkPoolStatus::parse(&m.status) },
        kind: m.kind,
        base_job_template: convert::json_object(m.base_job_template),
        is_paused: m.is_paused,
        concurrency_limit: m.concurrency_limit,
        default_queue_id: m.default_queue_id,
        storage_configuration,
        active_slots: None,
    }
}

fn queue_from_model(m: work_queue::Model, pool_name: Option<String>) -> WorkQueue {
    WorkQueue {
        id: m.id,
        created: m.created,
        updated: m.updated,
        name: m.name,
        description: Some(m.description),
        is_paused: m.is_paused,
        concurrency_limit: m.concurrency_limit,
        priority: m.priority,
        work_pool_id: m.work_pool_id,
        filter: m.filter.filter(|f| !f.is_null()),
        last_polled: m.last_polled,
        status: WorkPoolStatus::parse(&m.status),
        work_pool_name: pool_name,
        active_slots: None,
    }
}

fn worker_from_model(m: worker::Model, now: DateTime) -> Worker {
    Worker {
        status: Worker::status_at(m.last_heartbeat_time, m.heartbeat_interval_seconds, now),
        id: m.id,
        created: m.created,
        updated: m.updated,
        name: m.name,
        work_pool_id: m.work_pool_id,
        last_heartbeat_time: m.last_heartbeat_time,
        heartbeat_interval_seconds: m.heartbeat_interval_seconds,
    }
}

// ------------------------------------------------------------------ pools

/// Inserts a pool (without its default queue, see [`set_default_queue`]); a taken name is a `Conflict`.
pub async fn insert_pool(c: &impl ConnectionTrait, create: &WorkPoolCreate, now: DateTime) -> Result<WorkPool> {
    let model = work_pool::ActiveModel {
        id: Set(Uuid::now_v7()),
        created: Set(now),
        updated: Set(now),
        name: Set(create.name.clone()),
        description: Set(create.description.clone()),
        kind: Set(create.kind.clone()),
        base_job_template: Set(Value::Object(create.base_job_template.clone())),
        is_paused: Set(create.is_paused),
        default_queue_id: Set(None),
        concurrency_limit: Set(create.concurrency_limit),
        status: Set(status_str(create.initial_status())),
        last_transitioned_status_at: Set(None),
        last_status_event_id: Set(None),
        storage_configuration: Set(convert::to_json(&create.storage_configuration)),
    };
    Ok(pool_from_model(work_pool::Entity::insert(model).exec_with_returning(c).await?))
}

pub async fn set_default_queue(c: &impl ConnectionTrait, pool_id: Uuid, queue_id: Uuid) -> Result<()> {
    work_pool::Entity::update_many()
        .col_expr(work_pool::Column::DefaultQueueId, Expr::value(queue_id))
        .filter(work_pool::Column::Id.eq(pool_id))
        .exec(c)
        .await?;
    Ok(())
}

pub async fn read_pool(c: &impl ConnectionTrait, id: Uuid) -> Result<Option<WorkPool>> {
    Ok(work_pool::Entity::find_by_id(id).one(c).await?.map(pool_from_model))
}

pub async fn read_pool_by_name(c: &impl ConnectionTrait, name: &str) -> Result<Option<WorkPool>> {
    Ok(work_pool::Entity::find().filter(work_pool::Column::Name.eq(name)).one(c).await?.map(pool_from_model))
}

/// Pools matching the filter, by name.
pub async fn filter_pools(c: &impl ConnectionTrait, backend: Backend, filter: Option<&WorkPoolFilter>, limit: u64, offset: u64) -> Result<Vec<WorkPool>> {
    let mut select = work_pool::Entity::find();
    if let Some(f) = filter {
        select = select.filter(query::work_pool_condition(backend, f));
    }
    let rows = select.order_by(work_pool::Column::Name, Order::Asc).limit(limit).offset(offset).all(c).await?;
    Ok(rows.into_iter().map(pool_from_model).collect())
}

pub async fn count_pools(c: &impl ConnectionTrait, backend: Backend, filter: Option<&WorkPoolFilter>) -> Result<u64> {
    let mut select = work_pool::Entity::find();
    if let Some(f) = filter {
        select = select.filter(query::work_pool_condition(backend, f));
    }
    Ok(select.count(c).await?)
}

/// Applies the fields present in `update`, and `status` when it changes.
pub async fn update_pool(c: &impl ConnectionTrait, id: Uuid, update: &WorkPoolUpdate, status: Option<(WorkPoolStatus, Uuid)>, now: DateTime) -> Result<bool> {
    let model = work_pool::ActiveModel {
        updated: Set(now),
        description: update.description.clone().map_or(NotSet, Set),
        is_paused: update.is_paused.map_or(NotSet, Set),
        base_job_template: update.base_job_template.clone().map_or(NotSet, |t| Set(Value::Object(t))),
        concurrency_limit: update.concurrency_limit.map_or(NotSet, Set),
        storage_configuration: update.storage_configuration.as_ref().map_or(NotSet, |s| Set(convert::to_json(s))),
        status: status.map_or(NotSet, |(s, _)| Set(s.as_str().to_owned())),
        last_status_event_id: status.map_or(NotSet, |(_, event)| Set(Some(event))),
        last_transitioned_status_at: status.map_or(NotSet, |_| Set(Some(now))),
        ..Default::default()
    };
    Ok(work_pool::Entity::update_many().set(model).filter(work_pool::Column::Id.eq(id)).exec(c).await?.rows_affected > 0)
}

pub async fn delete_pool(c: &impl ConnectionTrait, id: Uuid) -> Result<bool> {
    // The default queue references its pool and the pool its default queue: unlink first.
    work_pool::Entity::update_many()
        .col_expr(work_pool::Column::DefaultQueueId, Expr::value(Option::<Uuid>::None))
        .filter(work_pool::Column::Id.eq(id))
        .exec(c)
        .await?;
    work_queue::Entity::delete_many().filter(work_queue::Column::WorkPoolId.eq(id)).exec(c).await?;
    worker::Entity::delete_many().filter(worker::Column::WorkPoolId.eq(id)).exec(c).await?;
    Ok(work_pool::Entity::delete_by_id(id).exec(c).await?.rows_affected > 0)
}

/// Runs holding a slot (Pending or Running) per pool, for pools with a concurrency limit.
pub async fn pool_active_slots(c: &impl ConnectionTrait, pool_ids: &[Uuid]) -> Result<HashMap<Uuid, i64>> {
    if pool_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(Uuid, i64)> = flow_run::Entity::find()
        .select_only()
        .column_as(Expr::col((work_queue::Entity, work_queue::Column::WorkPoolId)), "pool_id")
        .column_as(flow_run::Column::Id.count(), "active")
        .join(sea_orm::JoinType::InnerJoin, flow_run::Relation::WorkQueue.def())
        .filter(Expr::col((work_queue::Entity, work_queue::Column::WorkPoolId)).is_in(pool_ids.iter().copied().map(sea_orm::Value::from)))
        .filter(flow_run::Column::StateType.is_in(["PENDING", "RUNNING"]))
        .group_by(Expr::col((work_queue::Entity, work_queue::Column::WorkPoolId)))
        .into_tuple()
        .all(c)
        .await?;
    Ok(rows.into_iter().collect())
}

/// Runs holding a slot (Pending or Running) per queue.
pub async fn queue_active_slots(c: &impl ConnectionTrait, queue_ids: &[Uuid]) -> Result<HashMap<Uuid, i64>> {
    if queue_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(Option<Uuid>, i64)> = flow_run::Entity::find()
        .select_only()
        .column(flow_run::Column::WorkQueueId)
        .column_as(flow_run::Column::Id.count(), "active")
        .filter(flow_run::Column::WorkQueueId.is_in(queue_ids.iter().copied()))
        .filter(flow_run::Column::StateType.is_in(["PENDING", "RUNNING"]))
        .group_by(flow_run::Column::WorkQueueId)
        .into_tuple()
        .all(c)
        .await?;
    Ok(rows.into_iter().filter_map(|(q, n)| q.map(|q| (q, n))).collect())
}

// ------------------------------------------------------------------ queues

/// Inserts a queue with the given priority; a name taken in the pool is a `Conflict`.
pub async fn insert_queue(c: &impl ConnectionTrait, pool_id: Uuid, create: &WorkQueueCreate, priority: i64, now: DateTime) -> Result<WorkQueue> {
    let model = work_queue::ActiveModel {
        id: Set(Uuid::now_v7()),
        created: Set(now),
        updated: Set(now),
        name: Set(create.name.clone()),
        filter: Set(create.filter.clone()),
        description: Set(create.description.clone().unwrap_or_default()),
        is_paused: Set(create.is_paused),
        concurrency_limit: Set(create.concurrency_limit),
        priority: Set(priority),
        last_polled: Set(None),
        status: Set(if create.is_paused { WorkQueueStatus::Paused } else { WorkQueueStatus::NotReady }.as_str().to_owned()),
        work_pool_id: Set(pool_id),
    };
    Ok(queue_from_model(work_queue::Entity::insert(model).exec_with_returning(c).await?, None))
}

/// `(id, priority)` of a pool's queues, by priority.
pub async fn queue_priorities(c: &impl ConnectionTrait, pool_id: Uuid) -> Result<Vec<(Uuid, i64)>> {
    Ok(work_queue::Entity::find()
        .select_only()
        .column(work_queue::Column::Id)
        .column(work_queue::Column::Priority)
        .filter(work_queue::Column::WorkPoolId.eq(pool_id))
        .order_by(work_queue::Column::Priority, Order::Asc)
        .into_tuple()
        .all(c)
        .await?)
}

pub async fn set_priorities(c: &impl ConnectionTrait, changes: &[(Uuid, i64)]) -> Result<()> {
    for (id, priority) in changes {
        work_queue::Entity::update_many().col_expr(work_queue::Column::Priority, Expr::value(*priority)).filter(work_queue::Column::Id.eq(*id)).exec(c).await?;
    }
    Ok(())
}

async fn queues_with_pool_names(c: &impl ConnectionTrait, select: sea_orm::Select<work_queue::Entity>) -> Result<Vec<WorkQueue>> {
    let rows = select.all(c).await?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let pool_ids: Vec<Uuid> = rows.iter().map(|r| r.work_pool_id).collect();
    let names: HashMap<Uuid, String> = work_pool::Entity::find()
        .select_only()
        .column(work_pool::Column::Id)
        .column(work_pool::Column::Name)
        .filter(work_pool::Column::Id.is_in(pool_ids))
        .into_tuple()
        .all(c)
        .await?
        .into_iter()
        .collect();
    Ok(rows
        .into_iter()
        .map(|m| {
            let name = names.get(&m.work_pool_id).cloned();
            queue_from_model(m, name)
        })
        .collect())
}

pub async fn read_queue(c: &impl ConnectionTrait, id: Uuid) -> Result<Option<WorkQueue>> {
    Ok(queues_with_pool_names(c, work_queue::Entity::find_by_id(id)).await?.pop())
}

pub async fn read_queue_by_name(c: &impl ConnectionTrait, pool_id: Uuid, name: &str) -> Result<Option<WorkQueue>> {
    let select = work_queue::Entity::find().filter(work_queue::Column::WorkPoolId.eq(pool_id)).filter(work_queue::Column::Name.eq(name));
    Ok(queues_with_pool_names(c, select).await?.pop())
}

/// A pool's queues matching the filter, by priority.
pub async fn filter_queues(
    c: &impl ConnectionTrait,
    backend: Backend,
    pool_id: Uuid,
    filter: Option<&WorkQueueFilter>,
    limit: Option<u64>,
    offset: u64,
) -> Result<Vec<WorkQueue>> {
    let mut select = work_queue::Entity::find().filter(work_queue::Column::WorkPoolId.eq(pool_id));
    if let Some(f) = filter {
        select = select.filter(query::work_queue_condition(backend, f));
    }
    // SQLite accepts OFFSET only after a LIMIT.
    let select = select.order_by(work_queue::Column::Priority, Order::Asc).limit(limit.unwrap_or(i64::MAX as u64));
    let select = if offset > 0 { select.offset(offset) } else { select };
    queues_with_pool_names(c, select).await
}

/// Applies the fields present in `update` (priorities are rebalanced by the caller) and a new status.
pub async fn update_queue(c: &impl ConnectionTrait, id: Uuid, update: &WorkQueueUpdate, status: Option<WorkQueueStatus>, now: DateTime) -> Result<bool> {
    let model = work_queue::ActiveModel {
        updated: Set(now),
        name: update.name.clone().map_or(NotSet, Set),
        description: update.description.clone().map_or(NotSet, |d| Set(d.unwrap_or_default())),
        is_paused: update.is_paused.map_or(NotSet, Set),
        concurrency_limit: update.concurrency_limit.map_or(NotSet, Set),
        priority: update.priority.map_or(NotSet, Set),
        last_polled: update.last_polled.map_or(NotSet, |t| Set(Some(t))),
        filter: update.filter.clone().map_or(NotSet, Set),
        status: status.map_or(NotSet, |s| Set(s.as_str().to_owned())),
        ..Default::default()
    };
    Ok(work_queue::Entity::update_many().set(model).filter(work_queue::Column::Id.eq(id)).exec(c).await?.rows_affected > 0)
}

pub async fn delete_queue(c: &impl ConnectionTrait, id: Uuid) -> Result<bool> {
    Ok(work_queue::Entity::delete_by_id(id).exec(c).await?.rows_affected > 0)
}

/// Records that `queue_ids` were polled now; those not yet READY become READY and are returned.
pub async fn mark_queues_polled(c: &impl ConnectionTrait, queue_ids: &[Uuid], now: DateTime) -> Result<Vec<Uuid>> {
    if queue_ids.is_empty() {
        return Ok(Vec::new());
    }
    let newly_ready: Vec<Uuid> = work_queue::Entity::find()
        .select_only()
        .column(work_queue::Column::Id)
        .filter(work_queue::Column::Id.is_in(queue_ids.iter().copied()))
        .filter(work_queue::Column::Status.eq(WorkQueueStatus::NotReady.as_str()))
        .into_tuple()
        .all(c)
        .await?;
    work_queue::Entity::update_many()
        .col_expr(work_queue::Column::LastPolled, Expr::value(now))
        .filter(work_queue::Column::Id.is_in(queue_ids.iter().copied()))
        .exec(c)
        .await?;
    if !newly_ready.is_empty() {
        work_queue::Entity::update_many()
            .col_expr(work_queue::Column::Status, Expr::value(WorkQueueStatus::Ready.as_str()))
            .filter(work_queue::Column::Id.is_in(newly_ready.iter().copied()))
            .exec(c)
            .await?;
    }
    Ok(newly_ready)
}

/// Queues that were READY but last polled before `cutoff` become NOT_READY; returns them.
pub async fn mark_stale_queues_not_ready(c: &impl ConnectionTrait, cutoff: DateTime) -> Result<Vec<WorkQueue>> {
    let stale = Condition::all()
        .add(work_queue::Column::Status.eq(WorkQueueStatus::Ready.as_str()))
        .add(work_queue::Column::LastPolled.is_not_null())
        .add(work_queue::Column::LastPolled.lt(cutoff));
    let queues = queues_with_pool_names(c, work_queue::Entity::find().filter(stale.clone())).await?;
    if !queues.is_empty() {
        work_queue::Entity::update_many()
            .col_expr(work_queue::Column::Status, Expr::value(WorkQueueStatus::NotReady.as_str()))
            .filter(work_queue::Column::Id.is_in(queues.iter().map(|q| q.id)))
            .exec(c)
            .await?;
    }
    Ok(queues
        .into_iter()
        .map(|mut q| {
            q.status = Some(WorkQueueStatus::NotReady);
            q
        })
        .collect())
}

// ------------------------------------------------------------------ workers

/// Records a heartbeat: inserts the worker or refreshes it.
pub async fn heartbeat(c: &impl ConnectionTrait, pool_id: Uuid, name: &str, interval_seconds: Option<i64>, now: DateTime) -> Result<()> {
    let model = worker::ActiveModel {
        id: Set(Uuid::now_v7()),
        created: Set(now),
        updated: Set(now),
        work_pool_id: Set(pool_id),
        name: Set(name.to_owned()),
        last_heartbeat_time: Set(now),
        heartbeat_interval_seconds: Set(interval_seconds),
        status: Set(WorkerStatus::Online.as_str().to_owned()),
    };
    let mut update = vec![worker::Column::LastHeartbeatTime, worker::Column::Status, worker::Column::Updated];
    if interval_seconds.is_some() {
        update.push(worker::Column::HeartbeatIntervalSeconds);
    }
    worker::Entity::insert(model)
        .on_conflict(OnConflict::columns([worker::Column::WorkPoolId, worker::Column::Name]).update_columns(update).to_owned())
        .exec_without_returning(c)
        .await?;
    Ok(())
}

/// A pool's workers matching the filter, most recent heartbeat first.
pub async fn filter_workers(
    c: &impl ConnectionTrait,
    pool_id: Uuid,
    filter: Option<&WorkerFilter>,
    limit: u64,
    offset: u64,
    now: DateTime,
) -> Result<Vec<Worker>> {
    let mut select = worker::Entity::find().filter(worker::Column::WorkPoolId.eq(pool_id));
    if let Some(f) = filter {
        let mut parts = Vec::new();
        if let Some(t) = &f.last_heartbeat_time {
            if let Some(before) = t.before_ {
                parts.push(Condition::all().add(worker::Column::LastHeartbeatTime.lte(before)));
            }
            if let Some(after) = t.after_ {
                parts.push(Condition::all().add(worker::Column::LastHeartbeatTime.gte(after)));
            }
        }
        if let Some(s) = &f.status {
            if let Some(any) = &s.any_ {
                parts.push(Condition::all().add(worker::Column::Status.is_in(any.iter().map(|s| s.as_str()))));
            }
            if let Some(not_any) = s.not_any_.as_ref().filter(|v| !v.is_empty()) {
                parts.push(Condition::all().add(worker::Column::Status.is_not_in(not_any.iter().map(|s| s.as_str()))));
            }
        }
        select = select.filter(query::combine(f.operator, parts));
    }
    let rows = select.order_by(worker::Column::LastHeartbeatTime, Order::Desc).limit(limit).offset(offset).all(c).await?;
    Ok(rows.into_iter().map(|m| worker_from_model(m, now)).collect())
}

/// Whether any worker of the pool heartbeated recently enough to be online.
pub async fn has_online_worker(c: &impl ConnectionTrait, pool_id: Uuid, now: DateTime) -> Result<bool> {
    Ok(filter_workers(c, pool_id, None, 1000, 0, now).await?.iter().any(|w| w.status == WorkerStatus::Online))
}

pub async fn delete_worker(c: &impl ConnectionTrait, pool_id: Uuid, name: &str) -> Result<bool> {
    Ok(worker::Entity::delete_many().filter(worker::Column::WorkPoolId.eq(pool_id)).filter(worker::Column::Name.eq(name)).exec(c).await?.rows_affected > 0)
}

/// Workers whose stored status is ONLINE but whose heartbeats stopped; marks them OFFLINE.
pub async fn mark_silent_workers_offline(c: &impl ConnectionTrait, now: DateTime) -> Result<Vec<(Uuid, String)>> {
    let online: Vec<worker::Model> = worker::Entity::find().filter(worker::Column::Status.eq(WorkerStatus::Online.as_str())).all(c).await?;
    let silent: Vec<worker::Model> =
        online.into_iter().filter(|w| Worker::status_at(w.last_heartbeat_time, w.heartbeat_interval_seconds, now) == WorkerStatus::Offline).collect();
    if !silent.is_empty() {
        worker::Entity::update_many()
            .col_expr(worker::Column::Status, Expr::value(WorkerStatus::Offline.as_str()))
            .filter(worker::Column::Id.is_in(silent.iter().map(|w| w.id)))
            .exec(c)
            .await?;
    }
    Ok(silent.into_iter().map(|w| (w.work_pool_id, w.name)).collect())
}

// ------------------------------------------------------------------ worker polling

/// `(work_pool_id, work_queue_id, flow_run_id)` of the Scheduled runs a worker of `pool_id`
/// should start: unpaused pool and queues, queue priority order, and at most as many runs
/// per queue and per pool as their concurrency limits leave free (Pending and Running runs
/// hold slots). Runs retried in-process by the client are not handed out.
pub async fn scheduled_runs(c: &impl ReadConnection, backend: Backend, pool_id: Uuid, q: &ScheduledRunsQuery) -> Result<Vec<(Uuid, Uuid, Uuid)>> {
    rows::all(c, scheduled_runs_statement(backend, pool_id, q)).await
}

/// The statement [`scheduled_runs`] runs.
pub(crate) fn scheduled_runs_statement(backend: Backend, pool_id: Uuid, q: &ScheduledRunsQuery) -> Statement {
    /// Cap on runs taken from one queue and one pool when no limit applies (Prefect's).
    const PER_QUEUE_AND_POOL_CAP: i64 = 1000;
    let mut values: Vec<sea_orm::Value> = Vec::new();
    let param = |v: sea_orm::Value, values: &mut Vec<sea_orm::Value>| {
        values.push(v);
        backend.placeholder(values.len())
    };
    let (greatest, least, retry_type) = match backend {
        Backend::Sqlite => ("MAX", "MIN", "json_extract(fr.empirical_policy, '$.retry_type')"),
        Backend::Postgres => ("GREATEST", "LEAST", "(fr.empirical_policy ->> 'retry_type')"),
    };
    let pool_a = param(pool_id.into(), &mut values);
    let pool_b = param(pool_id.into(), &mut values);
    let pool_c = param(pool_id.into(), &mut values);
    let mut time_filter = String::new();
    if let Some(after) = q.scheduled_after {
        time_filter += &format!(" AND fr.next_scheduled_start_time >= {}", param(after.into(), &mut values));
    }
    if let Some(before) = q.scheduled_before {
        time_filter += &format!(" AND fr.next_scheduled_start_time <= {}", param(before.into(), &mut values));
    }
    let pool_d = param(pool_id.into(), &mut values);
    let mut queue_filter = String::new();
    if let Some(ids) = q.work_queue_ids.as_ref().filter(|ids| !ids.is_empty()) {
        let marks: Vec<String> = ids.iter().map(|id| param((*id).into(), &mut values)).collect();
        queue_filter = format!(" AND wq.id IN ({})", marks.join(", "));
    }
    let priority = if q.respect_queue_priorities { "wq.priority ASC, " } else { "" };
    let final_priority = if q.respect_queue_priorities { "pool_rank ASC, " } else { "" };
    let cap = PER_QUEUE_AND_POOL_CAP;
    let limit = param((q.limit as i64).into(), &mut values);
    let sql = format!(
        "WITH pool_slots AS (
            SELECT wp.id, {greatest}(0, wp.concurrency_limit - COUNT(fr.id)) AS available
            FROM work_pool wp
            JOIN work_queue wq ON wq.work_pool_id = wp.id
            LEFT JOIN flow_run fr ON fr.work_queue_id = wq.id AND fr.state_type IN ('RUNNING', 'PENDING')
            WHERE wp.id = {pool_a} AND wp.is_paused = false AND wp.concurrency_limit IS NOT NULL
            GROUP BY wp.id, wp.concurrency_limit
        ),
        queue_slots AS (
            SELECT wq.id, {greatest}(0, wq.concurrency_limit - COUNT(fr.id)) AS available
            FROM work_queue wq
            LEFT JOIN flow_run fr ON fr.work_queue_id = wq.id AND fr.state_type IN ('RUNNING', 'PENDING')
            WHERE wq.work_pool_id = {pool_b} AND wq.is_paused = false AND wq.concurrency_limit IS NOT NULL
            GROUP BY wq.id, wq.concurrency_limit
        ),
        candidates AS (
            SELECT fr.id, fr.work_queue_id, fr.next_scheduled_start_time,
                   ROW_NUMBER() OVER (PARTITION BY fr.work_queue_id ORDER BY fr.next_scheduled_start_time) AS queue_rank
            FROM flow_run fr
            WHERE fr.state_type = 'SCHEDULED'
              AND fr.work_queue_id IN (SELECT id FROM work_queue WHERE work_pool_id = {pool_c})
              AND ({retry_type} IS NULL OR {retry_type} != 'in_process'){time_filter}
        ),
        ranked AS (
            SELECT wp.id AS pool_id, wq.id AS queue_id, c.id AS run_id, c.next_scheduled_start_time AS start_time,
                   ROW_NUMBER() OVER (PARTITION BY wp.id ORDER BY {priority}c.next_scheduled_start_time) AS pool_rank,
                   ps.available AS pool_available
            FROM work_pool wp
            JOIN work_queue wq ON wq.work_pool_id = wp.id
            JOIN candidates c ON c.work_queue_id = wq.id
            LEFT JOIN pool_slots ps ON ps.id = wp.id
            LEFT JOIN queue_slots qs ON qs.id = wq.id
            WHERE wp.id = {pool_d} AND wp.is_paused = false AND wq.is_paused = false{queue_filter}
              AND c.queue_rank <= {least}(COALESCE(qs.available, {cap}), {cap})
        )
        SELECT pool_id, queue_id, run_id FROM ranked
        WHERE pool_rank <= {least}(COALESCE(pool_available, {cap}), {cap})
        ORDER BY {final_priority}start_time ASC
        LIMIT {limit}"
    );
    Statement::from_sql_and_values(backend.into(), sql, values)
}

/// `(queue name, pool id, pool name, pool type)` of a work queue, for event resources.
pub async fn read_queue_and_pool(c: &impl ConnectionTrait, queue_id: Uuid) -> Result<Option<(String, Uuid, String, String)>> {
    Ok(work_queue::Entity::find_by_id(queue_id)
        .select_only()
        .column(work_queue::Column::Name)
        .column(work_queue::Column::WorkPoolId)
        .column_as(Expr::col((work_pool::Entity, work_pool::Column::Name)), "pool_name")
        .column_as(Expr::col((work_pool::Entity, work_pool::Column::Kind)), "pool_type")
        .join(sea_orm::JoinType::InnerJoin, work_queue::Relation::WorkPool.def())
        .into_tuple()
        .one(c)
        .await?)
}

/// The id of queue `queue_name` in pool `pool_name`, or of the pool's default queue when no name is given.
pub async fn resolve_queue(c: &impl ConnectionTrait, pool_name: &str, queue_name: Option<&str>) -> Result<Option<Uuid>> {
    let pool: Option<(Uuid, Option<Uuid>)> = work_pool::Entity::find()
        .select_only()
        .column(work_pool::Column::Id)
        .column(work_pool::Column::DefaultQueueId)
        .filter(work_pool::Column::Name.eq(pool_name))
        .into_tuple()
        .one(c)
        .await?;
    let Some((pool_id, default_queue)) = pool else { return Ok(None) };
    match queue_name {
        None => Ok(default_queue),
        Some(name) => Ok(work_queue::Entity::find()
            .select_only()
            .column(work_queue::Column::Id)
            .filter(work_queue::Column::WorkPoolId.eq(pool_id))
            .filter(work_queue::Column::Name.eq(name))
            .into_tuple()
            .one(c)
            .await?),
    }
}

/// Queues of every pool matching the filter, by name.
pub async fn filter_all_queues(
    c: &impl ConnectionTrait,
    backend: Backend,
    filter: Option<&WorkQueueFilter>,
    limit: u64,
    offset: u64,
) -> Result<Vec<WorkQueue>> {
    let mut select = work_queue::Entity::find();
    if let Some(f) = filter {
        select = select.filter(query::work_queue_condition(backend, f));
    }
    queues_with_pool_names(c, select.order_by(work_queue::Column::Name, Order::Asc).limit(limit).offset(offset)).await
}

/// Stamps `last_polled` on the deployments served by `queue_ids` and makes them READY.
pub async fn mark_deployments_polled(c: &impl ConnectionTrait, queue_ids: &[Uuid], now: DateTime) -> Result<()> {
    if queue_ids.is_empty() {
        return Ok(());
    }
    deployment::Entity::update_many()
        .col_expr(deployment::Column::LastPolled, Expr::value(now))
        .col_expr(deployment::Column::Status, Expr::value("READY"))
        .filter(deployment::Column::WorkQueueId.is_in(queue_ids.iter().copied()))
        .exec(c)
        .await?;
    Ok(())
}

/// READY deployments last polled before `cutoff` (and whose queue was too) become NOT_READY.
pub async fn mark_stale_deployments_not_ready(c: &impl ConnectionTrait, cutoff: DateTime) -> Result<usize> {
    let candidates: Vec<(Uuid, Option<DateTime>)> = deployment::Entity::find()
        .select_only()
        .column(deployment::Column::Id)
        .column_as(Expr::col((work_queue::Entity, work_queue::Column::LastPolled)), "queue_last_polled")
        .join(
            sea_orm::JoinType::LeftJoin,
            sea_orm::RelationDef::from(deployment::Entity::belongs_to(work_queue::Entity).from(deployment::Column::WorkQueueId).to(work_queue::Column::Id)),
        )
        .filter(deployment::Column::Status.eq("READY"))
        .filter(deployment::Column::LastPolled.is_not_null())
        .filter(deployment::Column::LastPolled.lt(cutoff))
        .into_tuple()
        .all(c)
        .await?;
    let stale: Vec<Uuid> = candidates.into_iter().filter(|(_, queue_polled)| queue_polled.is_none_or(|t| t < cutoff)).map(|(id, _)| id).collect();
    if !stale.is_empty() {
        deployment::Entity::update_many()
            .col_expr(deployment::Column::Status, Expr::value("NOT_READY"))
            .filter(deployment::Column::Id.is_in(stale.iter().copied()))
            .exec(c)
            .await?;
    }
    Ok(stale.len())
}

/// READY pools none of whose workers is (stored as) ONLINE.
pub async fn ready_pools_without_online_workers(c: &impl ConnectionTrait) -> Result<Vec<Uuid>> {
    let ready: Vec<Uuid> = work_pool::Entity::find()
        .select_only()
        .column(work_pool::Column::Id)
        .filter(work_pool::Column::Status.eq(WorkPoolStatus::Ready.as_str()))
        .into_tuple()
        .all(c)
        .await?;
    if ready.is_empty() {
        return Ok(ready);
    }
    let with_online: Vec<Uuid> = worker::Entity::find()
        .select_only()
        .column(worker::Column::WorkPoolId)
        .distinct()
        .filter(worker::Column::WorkPoolId.is_in(ready.iter().copied()))
        .filter(worker::Column::Status.eq(WorkerStatus::Online.as_str()))
        .into_tuple()
        .all(c)
        .await?;
    Ok(ready.into_iter().filter(|id| !with_online.contains(id)).collect())
}
