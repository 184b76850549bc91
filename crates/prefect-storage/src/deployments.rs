//! Deployments (the parts other features read; management arrives with deployments).

use sea_orm::{ConnectionTrait, EntityTrait, QuerySelect};
use serde_json::Value;
use uuid::Uuid;

use crate::Result;
use crate::entity::deployment;

/// Concurrency settings of a deployment: `(concurrency_limit_id, concurrency_options)`.
pub async fn read_concurrency(c: &impl ConnectionTrait, id: Uuid) -> Result<Option<(Option<Uuid>, Option<Value>)>> {
    crate::rows::one(c, concurrency_select(c.get_database_backend(), id)).await
}

/// [`read_concurrency`] on the SQLite writer's own connection (see [`crate::direct_writes`]).
pub fn read_concurrency_direct(txn: &crate::direct_writes::DirectTransaction<'_>, id: Uuid) -> Result<Option<(Option<Uuid>, Option<Value>)>> {
    txn.query_one(&concurrency_select(sea_orm::DbBackend::Sqlite, id))
}

/// `(concurrency_limit_id, concurrency_options)` of a deployment.
fn concurrency_select(backend: sea_orm::DbBackend, id: Uuid) -> sea_orm::Statement {
    let select = deployment::Entity::find_by_id(id).select_only().column(deployment::Column::ConcurrencyLimitId).column(deployment::Column::ConcurrencyOptions);
    sea_orm::QueryTrait::build(&select, backend)
}

/// `(name, tags)` of a deployment, for event resources.
pub async fn read_name_and_tags(c: &impl ConnectionTrait, id: Uuid) -> Result<Option<(String, Vec<String>)>> {
    let row: Option<(String, Value)> =
        deployment::Entity::find_by_id(id).select_only().column(deployment::Column::Name).column(deployment::Column::Tags).into_tuple().one(c).await?;
    Ok(row.map(|(name, tags)| (name, crate::convert::string_list(tags))))
}

/// Whether a deployment exists.
pub async fn exists(c: &impl ConnectionTrait, id: Uuid) -> Result<bool> {
    Ok(deployment::Entity::find_by_id(id).select_only().column(deployment::Column::Id).into_tuple::<Uuid>().one(c).await?.is_some())
}

// ---------------------------------------------------------------------------
// Management (create, read, update, delete, schedules, scheduled runs)

use std::collections::HashMap;

use prefect_domain::concurrency::GlobalConcurrencyLimitResponse;
use prefect_domain::deployment::{ConcurrencyOptions, Deployment, DeploymentSchedule, DeploymentScheduleCreate, DeploymentScheduleUpdate, DeploymentStatus};
use prefect_domain::filters::RunFilters;
use prefect_domain::flow_run::CreatedBy;
use prefect_domain::labels::KeyValueLabels;
use prefect_domain::sorts::DeploymentSort;
use prefect_domain::state::{State, StateType};
use prefect_domain::time::DateTime;
use sea_orm::QueryTrait;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, Condition, Order, PaginatorTrait, QueryFilter, QueryOrder, Statement,
};
use serde_json::Map;

use crate::convert::{self, to_json};
use crate::db::Backend;
use crate::entity::{TypedJson, concurrency_limit_v2, deployment_schedule, flow, flow_run, work_pool, work_queue};
use crate::query;

/// Column values of a deployment write. `None` leaves a column as it is (or at its
/// default on insert); nullable columns take `Some(None)` to clear them.
#[derive(Debug, Clone, Default)]
pub struct DeploymentChanges {
    pub version: Option<Option<String>>,
    pub version_info: Option<Option<Value>>,
    pub description: Option<Option<String>>,
    pub work_queue_name: Option<Option<String>>,
    pub work_queue_id: Option<Option<Uuid>>,
    pub job_variables: Option<Map<String, Value>>,
    pub path: Option<Option<String>>,
    pub entrypoint: Option<Option<String>>,
    pub paused: Option<bool>,
    pub concurrency_limit_id: Option<Option<Uuid>>,
    pub concurrency_options: Option<Option<ConcurrencyOptions>>,
    pub tags: Option<Vec<String>>,
    pub labels: Option<KeyValueLabels>,
    pub parameters: Option<Map<String, Value>>,
    pub pull_steps: Option<Option<Vec<Value>>>,
    pub parameter_openapi_schema: Option<Option<Map<String, Value>>>,
    pub enforce_parameter_schema: Option<bool>,
    pub created_by: Option<Option<CreatedBy>>,
    pub updated_by: Option<Option<CreatedBy>>,
    pub infrastructure_document_id: Option<Option<Uuid>>,
    pub storage_document_id: Option<Option<Uuid>>,
}

fn set<T: Into<sea_orm::Value>>(v: Option<T>) -> sea_orm::ActiveValue<T> {
    v.map_or(NotSet, Set)
}

impl DeploymentChanges {
    fn active_model(&self) -> deployment::ActiveModel {
        deployment::ActiveModel {
            version: set(self.version.clone()),
            version_info: set(self.version_info.clone()),
            description: set(self.description.clone()),
            work_queue_name: set(self.work_queue_name.clone()),
            work_queue_id: set(self.work_queue_id),
            job_variables: set(self.job_variables.clone().map(Value::Object)),
            path: set(self.path.clone()),
            entrypoint: set(self.entrypoint.clone()),
            paused: set(self.paused),
            concurrency_limit_id: set(self.concurrency_limit_id),
            concurrency_options: set(self.concurrency_options.as_ref().map(|o| o.as_ref().map(to_json))),
            tags: set(self.tags.as_ref().map(to_json)),
            labels: set(self.labels.clone().map(|l| Some(Value::Object(l)))),
            parameters: set(self.parameters.clone().map(Value::Object)),
            pull_steps: set(self.pull_steps.as_ref().map(|p| p.as_ref().map(to_json))),
            parameter_openapi_schema: set(self.parameter_openapi_schema.clone().map(|s| s.map(Value::Object))),
            enforce_parameter_schema: set(self.enforce_parameter_schema),
            created_by: set(self.created_by.as_ref().map(|c| c.as_ref().map(to_json))),
            updated_by: set(self.updated_by.as_ref().map(|c| c.as_ref().map(to_json))),
            infrastructure_document_id: set(self.infrastructure_document_id),
            storage_document_id: set(self.storage_document_id),
            ..Default::default()
        }
    }
}

/// The id and creation time of deployment `name` of flow `flow_id`, locking the row on PostgreSQL.
pub async fn find_by_flow_and_name(c: &impl ConnectionTrait, backend: Backend, flow_id: Uuid, name: &str) -> Result<Option<Uuid>> {
    let mut select = deployment::Entity::find()
        .select_only()
        .column(deployment::Column::Id)
        .filter(deployment::Column::FlowId.eq(flow_id))
        .filter(deployment::Column::Name.eq(name));
    if backend == Backend::Postgres {
        select = select.lock_exclusive();
    }
    Ok(select.into_tuple::<Uuid>().one(c).await?)
}

/// Inserts a deployment row.
pub async fn insert(c: &impl ConnectionTrait, id: Uuid, flow_id: Uuid, name: &str, changes: &DeploymentChanges, now: DateTime) -> Result<()> {
    let mut model = changes.active_model();
    model.id = Set(id);
    model.created = Set(now);
    model.updated = Set(now);
    model.name = Set(name.to_owned());
    model.flow_id = Set(flow_id);
    model.status = Set(DeploymentStatus::NotReady.as_str().to_owned());
    model.last_polled = Set(None);
    let defaults = [
        (&mut model.version, None::<String>),
        (&mut model.description, None),
        (&mut model.work_queue_name, None),
        (&mut model.path, None),
        (&mut model.entrypoint, None),
    ];
    for (slot, default) in defaults {
        if slot.is_not_set() {
            *slot = Set(default);
        }
    }
    for slot in [&mut model.work_queue_id, &mut model.concurrency_limit_id, &mut model.infrastructure_document_id, &mut model.storage_document_id] {
        if slot.is_not_set() {
            *slot = Set(None);
        }
    }
    for slot in [
        &mut model.version_info,
        &mut model.concurrency_options,
        &mut model.labels,
        &mut model.pull_steps,
        &mut model.parameter_openapi_schema,
        &mut model.created_by,
        &mut model.updated_by,
    ] {
        if slot.is_not_set() {
            *slot = Set(None);
        }
    }
    if model.job_variables.is_not_set() {
        model.job_variables = Set(Value::Object(Map::new()));
    }
    if model.parameters.is_not_set() {
        model.parameters = Set(Value::Object(Map::new()));
    }
    if model.tags.is_not_set() {
        model.tags = Set(Value::Array(Vec::new()));
    }
    if model.paused.is_not_set() {
        model.paused = Set(false);
    }
    if model.enforce_parameter_schema.is_not_set() {
        model.enforce_parameter_schema = Set(true);
    }
    deployment::Entity::insert(model).exec_without_returning(c).await?;
    Ok(())
}

/// Applies `changes` to deployment `id`; false if it does not exist.
pub async fn update(c: &impl ConnectionTrait, id: Uuid, changes: &DeploymentChanges, now: DateTime) -> Result<bool> {
    let mut model = changes.active_model();
    model.updated = Set(now);
    Ok(deployment::Entity::update_many().set(model).filter(deployment::Column::Id.eq(id)).exec(c).await?.rows_affected > 0)
}

/// Raw row access for use cases that need stored values (ids, schemas) without hydrating.
pub async fn read_row(c: &impl ConnectionTrait, id: Uuid) -> Result<Option<deployment::Model>> {
    Ok(deployment::Entity::find_by_id(id).one(c).await?)
}

pub async fn read(c: &impl ConnectionTrait, id: Uuid, now: DateTime) -> Result<Option<Deployment>> {
    let Some(model) = deployment::Entity::find_by_id(id).one(c).await? else { return Ok(None) };
    Ok(hydrate(c, vec![model], now).await?.pop())
}

pub async fn read_by_name(c: &impl ConnectionTrait, flow_name: &str, name: &str, now: DateTime) -> Result<Option<Deployment>> {
    let flow_ids = flow::Entity::find().select_only().column(flow::Column::Id).filter(flow::Column::Name.eq(flow_name)).into_query();
    let Some(model) =
        deployment::Entity::find().filter(deployment::Column::Name.eq(name)).filter(deployment::Column::FlowId.in_subquery(flow_ids)).one(c).await?
    else {
        return Ok(None);
    };
    Ok(hydrate(c, vec![model], now).await?.pop())
}

/// Conditions selecting deployments that match every entity filter given.
pub fn deployments_matching(backend: Backend, filters: &RunFilters) -> Condition {
    let mut cond = Condition::all();
    if let Some(f) = &filters.deployments {
        cond = cond.add(query::deployment_condition(backend, f));
    }
    if let Some(f) = &filters.flows {
        let ids = flow::Entity::find().select_only().column(flow::Column::Id).filter(query::flow_condition(backend, f)).into_query();
        cond = cond.add(deployment::Column::FlowId.in_subquery(ids));
    }
    if filters.flow_runs.is_some() || filters.task_runs.is_some() {
        let run_filters = RunFilters { flow_runs: filters.flow_runs.clone(), task_runs: filters.task_runs.clone(), ..Default::default() };
        let ids = flow_run::Entity::find()
            .select_only()
            .column(flow_run::Column::DeploymentId)
            .filter(query::flow_runs_matching(backend, &run_filters))
            .filter(flow_run::Column::DeploymentId.is_not_null())
            .into_query();
        cond = cond.add(deployment::Column::Id.in_subquery(ids));
    }
    if let Some(f) = &filters.work_pool_queues {
        let ids = work_queue::Entity::find().select_only().column(work_queue::Column::Id).filter(query::work_queue_condition(backend, f)).into_query();
        cond = cond.add(deployment::Column::WorkQueueId.in_subquery(ids));
    }
    if let Some(f) = &filters.work_pools {
        let pools = work_pool::Entity::find().select_only().column(work_pool::Column::Id).filter(query::work_pool_condition(backend, f)).into_query();
        let ids =
            work_queue::Entity::find().select_only().column(work_queue::Column::Id).filter(work_queue::Column::WorkPoolId.in_subquery(pools)).into_query();
        cond = cond.add(deployment::Column::WorkQueueId.in_subquery(ids));
    }
    cond
}

pub async fn filter(
    c: &impl ConnectionTrait,
    backend: Backend,
    filters: &RunFilters,
    sort: DeploymentSort,
    limit: u64,
    offset: u64,
    now: DateTime,
) -> Result<Vec<Deployment>> {
    use deployment::Column as C;
    let (column, order) = match sort {
        DeploymentSort::CreatedDesc => (C::Created, Order::Desc),
        DeploymentSort::UpdatedDesc => (C::Updated, Order::Desc),
        DeploymentSort::NameAsc => (C::Name, Order::Asc),
        DeploymentSort::NameDesc => (C::Name, Order::Desc),
    };
    let models = deployment::Entity::find()
        .filter(deployments_matching(backend, filters))
        .order_by(column, order)
        .order_by(C::Id, Order::Asc)
        .limit(limit)
        .offset(offset)
        .all(c)
        .await?;
    hydrate(c, models, now).await
}

pub async fn count(c: &impl ConnectionTrait, backend: Backend, filters: &RunFilters) -> Result<u64> {
    Ok(deployment::Entity::find().filter(deployments_matching(backend, filters)).count(c).await?)
}

/// Ids of deployments matching the filters, at most `limit`, in name order.
pub async fn ids_matching(c: &impl ConnectionTrait, backend: Backend, filters: &RunFilters, limit: u64) -> Result<Vec<Uuid>> {
    Ok(deployment::Entity::find()
        .select_only()
        .column(deployment::Column::Id)
        .filter(deployments_matching(backend, filters))
        .order_by(deployment::Column::Name, Order::Asc)
        .limit(limit)
        .into_tuple()
        .all(c)
        .await?)
}

pub async fn delete(c: &impl ConnectionTrait, id: Uuid) -> Result<bool> {
    Ok(deployment::Entity::delete_by_id(id).exec(c).await?.rows_affected > 0)
}

fn schedule_from_model(m: deployment_schedule::Model) -> Result<DeploymentSchedule> {
    Ok(DeploymentSchedule {
        id: m.id,
        created: m.created,
        updated: m.updated,
        deployment_id: Some(m.deployment_id),
        schedule: convert::from_json(m.schedule, "schedule")?,
        active: m.active,
        max_scheduled_runs: m.max_scheduled_runs,
        parameters: convert::json_object(m.parameters),
        slug: m.slug,
    })
}

async fn hydrate(c: &impl ConnectionTrait, models: Vec<deployment::Model>, now: DateTime) -> Result<Vec<Deployment>> {
    if models.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = models.iter().map(|m| m.id).collect();
    let mut schedules: HashMap<Uuid, Vec<DeploymentSchedule>> = HashMap::new();
    for s in deployment_schedule::Entity::find()
        .filter(deployment_schedule::Column::DeploymentId.is_in(ids.clone()))
        .order_by(deployment_schedule::Column::Updated, Order::Desc)
        .all(c)
        .await?
    {
        let s = schedule_from_model(s)?;
        schedules.entry(s.deployment_id.unwrap_or_default()).or_default().push(s);
    }
    let queue_ids: Vec<Uuid> = models.iter().filter_map(|m| m.work_queue_id).collect();
    let mut queues: HashMap<Uuid, (String, String)> = HashMap::new();
    if !queue_ids.is_empty() {
        let rows: Vec<(Uuid, String, String)> = work_queue::Entity::find()
            .select_only()
            .column(work_queue::Column::Id)
            .column(work_queue::Column::Name)
            .column_as(Expr::col((work_pool::Entity, work_pool::Column::Name)), "pool_name")
            .join(sea_orm::JoinType::InnerJoin, <work_queue::Relation as sea_orm::RelationTrait>::def(&work_queue::Relation::WorkPool))
            .filter(work_queue::Column::Id.is_in(queue_ids))
            .into_tuple()
            .all(c)
            .await?;
        queues = rows.into_iter().map(|(id, q, p)| (id, (q, p))).collect();
    }
    let limit_ids: Vec<Uuid> = models.iter().filter_map(|m| m.concurrency_limit_id).collect();
    let mut limits: HashMap<Uuid, GlobalConcurrencyLimitResponse> = HashMap::new();
    if !limit_ids.is_empty() {
        for m in concurrency_limit_v2::Entity::find().filter(concurrency_limit_v2::Column::Id.is_in(limit_ids)).all(c).await? {
            let l = convert::concurrency_limit(m);
            let active_slots = crate::concurrency::active_slots_now(&l, now);
            limits.insert(
                l.id,
                GlobalConcurrencyLimitResponse {
                    id: l.id,
                    created: l.created,
                    updated: l.updated,
                    active: l.active,
                    name: l.name,
                    limit: l.limit,
                    active_slots,
                    slot_decay_per_second: l.slot_decay_per_second,
                },
            );
        }
    }
    models
        .into_iter()
        .map(|m| {
            let queue = m.work_queue_id.and_then(|id| queues.get(&id).cloned());
            let global = m.concurrency_limit_id.and_then(|id| limits.get(&id).cloned());
            Ok(Deployment {
                id: m.id,
                created: m.created,
                updated: m.updated,
                name: m.name,
                version: m.version,
                description: m.description,
                flow_id: m.flow_id,
                paused: m.paused,
                schedules: schedules.remove(&m.id).unwrap_or_default(),
                // Deprecated in Prefect and answered as null (the limit lives in `global_concurrency_limit`).
                concurrency_limit: None,
                global_concurrency_limit: global,
                concurrency_options: m.concurrency_options.filter(|v| !v.is_null()).map(|v| convert::from_json(v, "concurrency_options")).transpose()?,
                job_variables: convert::json_object(m.job_variables),
                parameters: convert::json_object(m.parameters),
                tags: convert::string_list(m.tags),
                labels: m.labels.map(convert::json_object).unwrap_or_default(),
                work_queue_name: queue.as_ref().map(|(q, _)| q.clone()).or(m.work_queue_name),
                work_queue_id: m.work_queue_id,
                last_polled: m.last_polled,
                parameter_openapi_schema: m.parameter_openapi_schema.filter(|v| v.is_object()).map(convert::json_object),
                path: m.path,
                pull_steps: m.pull_steps.filter(|v| v.is_array()).map(|v| match v {
                    Value::Array(a) => a,
                    _ => Vec::new(),
                }),
                entrypoint: m.entrypoint,
                storage_document_id: m.storage_document_id,
                infrastructure_document_id: m.infrastructure_document_id,
                created_by: m.created_by.filter(|v| v.is_object()).map(|v| convert::from_json(v, "created_by")).transpose()?,
                updated_by: m.updated_by.filter(|v| v.is_object()).map(|v| convert::from_json(v, "updated_by")).transpose()?,
                work_pool_name: queue.map(|(_, p)| p),
                status: DeploymentStatus::parse(&m.status),
                enforce_parameter_schema: m.enforce_parameter_schema,
            })
        })
        .collect()
}

// ------------------------------------------------------------------ schedules

pub async fn insert_schedules(
    c: &impl ConnectionTrait,
    deployment_id: Uuid,
    schedules: &[DeploymentScheduleCreate],
    now: DateTime,
) -> Result<Vec<DeploymentSchedule>> {
    let mut out = Vec::with_capacity(schedules.len());
    for s in schedules {
        let model = deployment_schedule::ActiveModel {
            id: Set(Uuid::now_v7()),
            created: Set(now),
            updated: Set(now),
            deployment_id: Set(deployment_id),
            schedule: Set(to_json(&s.schedule)),
            active: Set(s.active),
            max_scheduled_runs: Set(s.max_scheduled_runs),
            parameters: Set(Value::Object(s.parameters.clone())),
            slug: Set(s.slug.clone()),
        };
        out.push(schedule_from_model(deployment_schedule::Entity::insert(model).exec_with_returning(c).await?)?);
    }
    Ok(out)
}

/// A deployment's schedules, most recently updated first.
pub async fn read_schedules(c: &impl ConnectionTrait, deployment_id: Uuid, active_only: bool) -> Result<Vec<DeploymentSchedule>> {
    let mut select = deployment_schedule::Entity::find().filter(deployment_schedule::Column::DeploymentId.eq(deployment_id));
    if active_only {
        select = select.filter(deployment_schedule::Column::Active.eq(true));
    }
    select.order_by(deployment_schedule::Column::Updated, Order::Desc).all(c).await?.into_iter().map(schedule_from_model).collect()
}

/// Which schedule of a deployment an update targets.
#[derive(Debug, Clone, Copy)]
pub enum ScheduleKey<'a> {
    Id(Uuid),
    Slug(&'a str),
}

/// Applies the non-null fields of `update`; false if no such schedule.
pub async fn update_schedule(
    c: &impl ConnectionTrait,
    deployment_id: Uuid,
    key: ScheduleKey<'_>,
    update: &DeploymentScheduleUpdate,
    now: DateTime,
) -> Result<bool> {
    let model = deployment_schedule::ActiveModel {
        updated: Set(now),
        active: set(update.active),
        schedule: set(update.schedule.as_ref().map(to_json)),
        max_scheduled_runs: set(update.max_scheduled_runs.map(Some)),
        parameters: set(update.parameters.clone().map(Value::Object)),
        slug: set(update.slug.clone().map(Some)),
        ..Default::default()
    };
    let mut q = deployment_schedule::Entity::update_many().set(model).filter(deployment_schedule::Column::DeploymentId.eq(deployment_id));
    q = match key {
        ScheduleKey::Id(id) => q.filter(deployment_schedule::Column::Id.eq(id)),
        ScheduleKey::Slug(slug) => q.filter(deployment_schedule::Column::Slug.eq(slug)),
    };
    Ok(q.exec(c).await?.rows_affected > 0)
}

/// Clears the slugs of a deployment's schedules (before renames, so the unique index allows them).
pub async fn clear_slugs(c: &impl ConnectionTrait, deployment_id: Uuid, slugs: &[String]) -> Result<()> {
    deployment_schedule::Entity::update_many()
        .col_expr(deployment_schedule::Column::Slug, Expr::value(None::<String>))
        .filter(deployment_schedule::Column::DeploymentId.eq(deployment_id))
        .filter(deployment_schedule::Column::Slug.is_in(slugs.to_vec()))
        .exec(c)
        .await?;
    Ok(())
}

pub async fn schedule_id_by_slug(c: &impl ConnectionTrait, deployment_id: Uuid, slug: &str) -> Result<Option<Uuid>> {
    Ok(deployment_schedule::Entity::find()
        .select_only()
        .column(deployment_schedule::Column::Id)
        .filter(deployment_schedule::Column::DeploymentId.eq(deployment_id))
        .filter(deployment_schedule::Column::Slug.eq(slug))
        .into_tuple()
        .one(c)
        .await?)
}

pub async fn delete_schedules_of(c: &impl ConnectionTrait, deployment_id: Uuid) -> Result<()> {
    deployment_schedule::Entity::delete_many().filter(deployment_schedule::Column::DeploymentId.eq(deployment_id)).exec(c).await?;
    Ok(())
}

pub async fn delete_schedule(c: &impl ConnectionTrait, deployment_id: Uuid, schedule_id: Uuid) -> Result<bool> {
    Ok(deployment_schedule::Entity::delete_many()
        .filter(deployment_schedule::Column::DeploymentId.eq(deployment_id))
        .filter(deployment_schedule::Column::Id.eq(schedule_id))
        .exec(c)
        .await?
        .rows_affected
        > 0)
}

// ------------------------------------------------------------------ runs

/// Deletes a deployment's runs that are Scheduled and never ran (not those awaiting a
/// concurrency slot), as Prefect's `_delete_scheduled_runs` does.
pub async fn delete_scheduled_runs(c: &impl ConnectionTrait, deployment_id: Uuid, auto_scheduled_only: bool, future_after: Option<DateTime>) -> Result<u64> {
    let mut q = flow_run::Entity::delete_many()
        .filter(flow_run::Column::DeploymentId.eq(deployment_id))
        .filter(flow_run::Column::StateType.eq(StateType::Scheduled.as_str()))
        .filter(Condition::any().add(flow_run::Column::StateName.is_null()).add(flow_run::Column::StateName.ne("AwaitingConcurrencySlot")))
        .filter(flow_run::Column::RunCount.eq(0));
    if auto_scheduled_only {
        q = q.filter(flow_run::Column::AutoScheduled.eq(true));
    }
    if let Some(after) = future_after {
        q = q.filter(flow_run::Column::NextScheduledStartTime.gt(after));
    }
    Ok(q.exec(c).await?.rows_affected)
}

/// Marks deployments polled and READY; returns those that were NOT_READY before.
pub async fn mark_ready(c: &impl ConnectionTrait, ids: &[Uuid], now: DateTime) -> Result<Vec<Uuid>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let unready: Vec<Uuid> = deployment::Entity::find()
        .select_only()
        .column(deployment::Column::Id)
        .filter(deployment::Column::Id.is_in(ids.to_vec()))
        .filter(deployment::Column::Status.ne(DeploymentStatus::Ready.as_str()))
        .into_tuple()
        .all(c)
        .await?;
    // `updated` stays as it is so the recent-deployments scheduler is not woken.
    deployment::Entity::update_many()
        .col_expr(deployment::Column::Status, Expr::value(DeploymentStatus::Ready.as_str()))
        .col_expr(deployment::Column::LastPolled, Expr::value(now))
        .filter(deployment::Column::Id.is_in(ids.to_vec()))
        .exec(c)
        .await?;
    Ok(unready)
}

/// `(schedule id, deployment id)` of active schedules of unpaused deployments, in deployment id
/// order; with `updated_since`, only deployments updated since then.
pub async fn active_schedules(c: &impl ConnectionTrait, updated_since: Option<DateTime>) -> Result<Vec<(Uuid, Uuid)>> {
    let mut deployments = deployment::Entity::find().select_only().column(deployment::Column::Id).filter(deployment::Column::Paused.eq(false));
    if let Some(since) = updated_since {
        deployments = deployments.filter(deployment::Column::Updated.gte(since));
    }
    Ok(deployment_schedule::Entity::find()
        .select_only()
        .column(deployment_schedule::Column::Id)
        .column(deployment_schedule::Column::DeploymentId)
        .filter(deployment_schedule::Column::Active.eq(true))
        .filter(deployment_schedule::Column::DeploymentId.in_subquery(deployments.into_query()))
        .order_by(deployment_schedule::Column::DeploymentId, Order::Asc)
        .into_tuple()
        .all(c)
        .await?)
}

/// Per schedule (by the `created_by.id` of its runs): how many future auto-scheduled
/// Scheduled runs it has and the latest of their start times.
pub async fn future_run_stats(c: &impl ConnectionTrait, backend: Backend, now: DateTime) -> Result<HashMap<Uuid, (i64, DateTime)>> {
    let (sid, mark) = match backend {
        Backend::Sqlite => ("json_extract(created_by, '$.id')", "?"),
        Backend::Postgres => ("(created_by ->> 'id')", "$1"),
    };
    let sql = format!(
        "SELECT {sid} AS sid, COUNT(*) AS n, MAX(next_scheduled_start_time) AS latest FROM flow_run \
         WHERE auto_scheduled = true AND state_type = 'SCHEDULED' AND deployment_id IS NOT NULL \
         AND next_scheduled_start_time >= {mark} GROUP BY {sid}"
    );
    let rows = c.query_all_raw(Statement::from_sql_and_values(c.get_database_backend(), sql, [now.into()])).await?;
    let mut out = HashMap::new();
    for row in rows {
        let sid: Option<String> = row.try_get("", "sid")?;
        let Some(id) = sid.and_then(|s| Uuid::parse_str(&s).ok()) else { continue };
        let n: i64 = row.try_get("", "n")?;
        let latest: DateTime = row.try_get("", "latest")?;
        out.insert(id, (n, latest));
    }
    Ok(out)
}

/// A run the scheduler wants to exist.
#[derive(Debug, Clone)]
pub struct ScheduledRun {
    pub run: crate::flow_runs::NewFlowRun,
    pub state: State,
}

/// Inserts the runs whose `(flow_id, idempotency_key)` is not taken yet, each with its
/// Scheduled state; returns the ids inserted. Safe to race: a key is inserted once.
pub async fn insert_scheduled_runs(c: &impl ConnectionTrait, runs: &[ScheduledRun], now: DateTime) -> Result<Vec<Uuid>> {
    let mut inserted = Vec::new();
    for r in runs {
        let new = &r.run;
        let scheduled_time = r.state.state_details.scheduled_time;
        let model = flow_run::ActiveModel {
            id: Set(new.id),
            created: Set(now),
            updated: Set(now),
            flow_id: Set(new.flow_id),
            deployment_id: Set(new.deployment_id),
            deployment_version: Set(new.deployment_version.clone()),
            work_queue_name: Set(new.work_queue_name.clone()),
            work_queue_id: Set(new.work_queue_id),
            flow_version: Set(new.flow_version.clone()),
            parameters: Set(Value::Object(new.parameters.clone())),
            idempotency_key: Set(new.idempotency_key.clone()),
            context: Set(Value::Object(new.context.clone())),
            empirical_policy: Set(TypedJson(new.empirical_policy.clone())),
            tags: Set(TypedJson(new.tags.clone())),
            labels: Set(Value::Object(new.labels.clone())),
            created_by: Set(new.created_by.as_ref().map(to_json)),
            infrastructure_pid: Set(None),
            job_variables: Set(new.job_variables.clone().map(Value::Object)),
            infrastructure_document_id: Set(new.infrastructure_document_id),
            parent_task_run_id: Set(None),
            auto_scheduled: Set(new.auto_scheduled),
            state_id: Set(None),
            name: Set(new.name.clone()),
            state_type: Set(Some(StateType::Scheduled.as_str().to_owned())),
            state_name: Set(Some(r.state.name().to_owned())),
            state_timestamp: Set(Some(r.state.timestamp)),
            run_count: Set(0),
            expected_start_time: Set(scheduled_time),
            next_scheduled_start_time: Set(scheduled_time),
            start_time: Set(None),
            end_time: Set(None),
            total_run_time: Set(0.0),
        };
        let on_conflict = OnConflict::columns([flow_run::Column::FlowId, flow_run::Column::IdempotencyKey]).do_nothing().to_owned();
        let rows = match flow_run::Entity::insert(model).on_conflict(on_conflict).exec_without_returning(c).await {
            Ok(n) => n,
            Err(sea_orm::DbErr::RecordNotInserted) => 0,
            Err(e) => return Err(e.into()),
        };
        if rows > 0 {
            crate::flow_runs::insert_state(c, new.id, &r.state, None, now).await?;
            flow_run::Entity::update_many()
                .col_expr(flow_run::Column::StateId, Expr::value(r.state.id))
                .filter(flow_run::Column::Id.eq(new.id))
                .exec(c)
                .await?;
            inserted.push(new.id);
        }
    }
    Ok(inserted)
}

/// Creates, resizes or removes the `deployment:{id}` limit so it matches `limit`; returns
/// the limit id the deployment should point to.
pub async fn sync_concurrency_limit(
    c: &impl ConnectionTrait,
    deployment_id: Uuid,
    current: Option<Uuid>,
    limit: Option<i64>,
    now: DateTime,
) -> Result<Option<Uuid>> {
    let existing = match current {
        Some(id) => concurrency_limit_v2::Entity::find_by_id(id).one(c).await?,
        None => None,
    };
    match (existing, limit) {
        (None, None) => Ok(None),
        (Some(l), None) => {
            concurrency_limit_v2::Entity::delete_by_id(l.id).exec(c).await?;
            Ok(None)
        }
        (Some(l), Some(n)) => {
            if l.limit != n {
                concurrency_limit_v2::Entity::update_many()
                    .col_expr(concurrency_limit_v2::Column::Limit, Expr::value(n))
                    .col_expr(concurrency_limit_v2::Column::Updated, Expr::value(now))
                    .filter(concurrency_limit_v2::Column::Id.eq(l.id))
                    .exec(c)
                    .await?;
            }
            Ok(Some(l.id))
        }
        (None, Some(n)) => {
            let name = format!("deployment:{deployment_id}");
            if let Some(l) = concurrency_limit_v2::Entity::find().filter(concurrency_limit_v2::Column::Name.eq(&name)).one(c).await? {
                concurrency_limit_v2::Entity::update_many()
                    .col_expr(concurrency_limit_v2::Column::Limit, Expr::value(n))
                    .filter(concurrency_limit_v2::Column::Id.eq(l.id))
                    .exec(c)
                    .await?;
                return Ok(Some(l.id));
            }
            let create = prefect_domain::concurrency::ConcurrencyLimitV2Create {
                active: true,
                name,
                limit: n,
                active_slots: 0,
                denied_slots: 0,
                slot_decay_per_second: 0.0,
            };
            Ok(Some(crate::concurrency::create(c, &create, now).await?.id))
        }
    }
}

/// Deletes the deployment's own `deployment:{id}` limit, if any.
pub async fn delete_concurrency_limit(c: &impl ConnectionTrait, limit_id: Option<Uuid>) -> Result<()> {
    if let Some(id) = limit_id {
        concurrency_limit_v2::Entity::delete_by_id(id).exec(c).await?;
    }
    Ok(())
}

/// How many deployments each of `flow_ids` has (flows without any are absent).
pub async fn count_by_flow(c: &impl ConnectionTrait, flow_ids: &[Uuid]) -> Result<HashMap<Uuid, u64>> {
    if flow_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(Uuid, i64)> = deployment::Entity::find()
        .select_only()
        .column(deployment::Column::FlowId)
        .column_as(Expr::cust("COUNT(*)"), "deployment_count")
        .filter(deployment::Column::FlowId.is_in(flow_ids.iter().copied()))
        .group_by(deployment::Column::FlowId)
        .into_tuple()
        .all(c)
        .await?;
    Ok(rows.into_iter().map(|(flow, n)| (flow, n.max(0) as u64)).collect())
}
