//! Flow runs and their states.

use std::collections::HashMap;

use prefect_domain::filters::RunFilters;
use prefect_domain::flow_run::{CreatedBy, FlowRun, FlowRunPolicy, FlowRunUpdate, SimpleNextFlowRun};
use prefect_domain::labels::KeyValueLabels;
use prefect_domain::sorts::FlowRunSort;
use prefect_domain::state::{State, StateType};
use prefect_domain::time::DateTime;
use sea_orm::sea_query::{Expr, ExprTrait, Func, SimpleExpr};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, Order, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, RelationTrait, Statement,
};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::convert::{self, to_json};
use crate::db::{Backend, ReadConnection};
use crate::direct_writes::DirectTransaction;
use crate::entity::{TypedJson, flow_run, flow_run_state, work_pool, work_queue};
use crate::query;
use crate::rows::{self, Decoded, PositionalRow};
use crate::writes::RowWrites;
use crate::{Error, Result};

/// Everything needed to insert a flow run row.
#[derive(Debug, Clone)]
pub struct NewFlowRun {
    pub id: Uuid,
    pub name: String,
    pub flow_id: Uuid,
    pub flow_version: Option<String>,
    pub deployment_id: Option<Uuid>,
    pub deployment_version: Option<String>,
    pub work_queue_id: Option<Uuid>,
    pub work_queue_name: Option<String>,
    pub parameters: Map<String, Value>,
    pub idempotency_key: Option<String>,
    pub context: Map<String, Value>,
    pub empirical_policy: FlowRunPolicy,
    pub tags: Vec<String>,
    pub labels: KeyValueLabels,
    pub parent_task_run_id: Option<Uuid>,
    pub infrastructure_document_id: Option<Uuid>,
    pub job_variables: Option<Map<String, Value>>,
    pub created_by: Option<CreatedBy>,
    pub auto_scheduled: bool,
}

/// The run fields orchestration maintains, written back after each transition
/// (the default is a run with no state yet).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunBookkeeping {
    pub state_id: Option<Uuid>,
    pub state_type: Option<StateType>,
    pub state_name: Option<String>,
    pub state_timestamp: Option<DateTime>,
    pub run_count: i64,
    pub start_time: Option<DateTime>,
    pub end_time: Option<DateTime>,
    pub total_run_time: f64,
    pub expected_start_time: Option<DateTime>,
    pub next_scheduled_start_time: Option<DateTime>,
}

/// The columns orchestration maintains, set from `b`; every other column unset.
/// [`insert`] and [`write_bookkeeping`] both write them.
fn bookkeeping_columns(b: &RunBookkeeping) -> flow_run::ActiveModel {
    flow_run::ActiveModel {
        state_id: Set(b.state_id),
        state_type: Set(b.state_type.map(|t| t.as_str().to_owned())),
        state_name: Set(b.state_name.clone()),
        state_timestamp: Set(b.state_timestamp),
        run_count: Set(b.run_count),
        start_time: Set(b.start_time),
        end_time: Set(b.end_time),
        total_run_time: Set(b.total_run_time),
        expected_start_time: Set(b.expected_start_time),
        next_scheduled_start_time: Set(b.next_scheduled_start_time),
        ..Default::default()
    }
}

/// `after`'s value if it differs from `before`'s, else unset: an UPDATE then leaves the
/// column alone. On SQLite, assigning an indexed column rewrites its index entries even
/// when the value is the same, and `flow_run` carries many such indexes (a Running
/// transition assigned columns of nine of them, four for values it did not change).
pub(crate) fn changed<V>(before: &V, after: &V) -> sea_orm::ActiveValue<V>
where
    V: Into<sea_orm::Value> + PartialEq + Clone,
{
    if before == after { NotSet } else { Set(after.clone()) }
}

/// The columns orchestration maintains whose value differs between `before` (the row
/// as the transaction read it) and `after`; every other column unset.
fn changed_bookkeeping_columns(before: &RunBookkeeping, after: &RunBookkeeping) -> flow_run::ActiveModel {
    let state_type = |b: &RunBookkeeping| b.state_type.map(|t| t.as_str().to_owned());
    flow_run::ActiveModel {
        state_id: changed(&before.state_id, &after.state_id),
        state_type: changed(&state_type(before), &state_type(after)),
        state_name: changed(&before.state_name, &after.state_name),
        state_timestamp: changed(&before.state_timestamp, &after.state_timestamp),
        run_count: changed(&before.run_count, &after.run_count),
        start_time: changed(&before.start_time, &after.start_time),
        end_time: changed(&before.end_time, &after.end_time),
        total_run_time: changed(&before.total_run_time, &after.total_run_time),
        expected_start_time: changed(&before.expected_start_time, &after.expected_start_time),
        next_scheduled_start_time: changed(&before.next_scheduled_start_time, &after.next_scheduled_start_time),
        ..Default::default()
    }
}

/// Inserts a flow run with the bookkeeping and empirical policy its first transition
/// decided, so a creation writes the row once instead of inserting and then updating it.
pub async fn insert(c: &impl ConnectionTrait, run: &NewFlowRun, b: &RunBookkeeping, empirical_policy: &FlowRunPolicy, now: DateTime) -> Result<()> {
    let mut writes = RowWrites::on(c);
    push_insert(&mut writes, run, b, empirical_policy, now);
    writes.execute(c).await
}

/// [`insert`], as one of several writes sent together.
pub fn push_insert(writes: &mut RowWrites, run: &NewFlowRun, b: &RunBookkeeping, empirical_policy: &FlowRunPolicy, now: DateTime) {
    let model = flow_run::ActiveModel {
        id: Set(run.id),
        created: Set(now),
        updated: Set(now),
        flow_id: Set(run.flow_id),
        deployment_id: Set(run.deployment_id),
        deployment_version: Set(run.deployment_version.clone()),
        work_queue_name: Set(run.work_queue_name.clone()),
        work_queue_id: Set(run.work_queue_id),
        flow_version: Set(run.flow_version.clone()),
        parameters: Set(Value::Object(run.parameters.clone())),
        idempotency_key: Set(run.idempotency_key.clone()),
        context: Set(Value::Object(run.context.clone())),
        empirical_policy: Set(TypedJson(empirical_policy.clone())),
        tags: Set(TypedJson(run.tags.clone())),
        labels: Set(Value::Object(run.labels.clone())),
        created_by: Set(run.created_by.as_ref().map(to_json)),
        infrastructure_pid: Set(None),
        job_variables: Set(run.job_variables.clone().map(Value::Object)),
        infrastructure_document_id: Set(run.infrastructure_document_id),
        parent_task_run_id: Set(run.parent_task_run_id),
        auto_scheduled: Set(run.auto_scheduled),
        name: Set(run.name.clone()),
        ..bookkeeping_columns(b)
    };
    writes.insert(&flow_run::Entity::insert(model));
}

/// The run [`insert`] writes, as [`read`] would return it (no state yet), so a
/// creator need not read it back.
pub fn inserted(run: &NewFlowRun, work_pool: Option<(Uuid, String)>, now: DateTime) -> FlowRun {
    let (work_pool_id, work_pool_name) = work_pool.map_or((None, None), |(id, name)| (Some(id), Some(name)));
    FlowRun {
        id: run.id,
        created: now,
        updated: now,
        name: run.name.clone(),
        flow_id: run.flow_id,
        state_id: None,
        deployment_id: run.deployment_id,
        deployment_version: run.deployment_version.clone(),
        work_queue_id: run.work_queue_id,
        work_queue_name: run.work_queue_name.clone(),
        flow_version: run.flow_version.clone(),
        parameters: run.parameters.clone(),
        idempotency_key: run.idempotency_key.clone(),
        context: run.context.clone(),
        empirical_policy: run.empirical_policy.clone(),
        tags: run.tags.clone(),
        labels: run.labels.clone(),
        parent_task_run_id: run.parent_task_run_id,
        state_type: None,
        state_name: None,
        run_count: 0,
        expected_start_time: None,
        next_scheduled_start_time: None,
        start_time: None,
        end_time: None,
        total_run_time: 0.0,
        estimated_run_time: 0.0,
        estimated_start_time_delta: 0.0,
        auto_scheduled: run.auto_scheduled,
        infrastructure_document_id: run.infrastructure_document_id,
        infrastructure_pid: None,
        created_by: run.created_by.clone(),
        work_pool_id,
        work_pool_name,
        state: None,
        job_variables: run.job_variables.clone(),
    }
}

/// Labels of a run, without loading the rest of it.
pub async fn read_labels(c: &impl ConnectionTrait, id: Uuid) -> Result<Option<KeyValueLabels>> {
    let labels: Option<Value> =
        flow_run::Entity::find().select_only().column(flow_run::Column::Labels).filter(flow_run::Column::Id.eq(id)).into_tuple().one(c).await?;
    Ok(labels.map(convert::json_object))
}

/// Builds flow runs from rows joined with their current state, loading work pools in one more query if needed.
async fn hydrate(c: &impl ConnectionTrait, rows: Vec<(flow_run::Model, Option<flow_run_state::Model>)>, now: DateTime) -> Result<Vec<FlowRun>> {
    let queue_ids: Vec<Uuid> = rows.iter().filter_map(|(m, _)| m.work_queue_id).collect();
    let pools = work_pools_of_queues(c, queue_ids).await?;
    runs_in_pools(rows, &pools, now)
}

/// [`hydrate`] on the SQLite writer's own connection.
fn hydrate_direct(txn: &DirectTransaction<'_>, rows: Vec<(flow_run::Model, Option<flow_run_state::Model>)>, now: DateTime) -> Result<Vec<FlowRun>> {
    let queue_ids: Vec<Uuid> = rows.iter().filter_map(|(m, _)| m.work_queue_id).collect();
    let pools = match pools_of_queues_select(DbBackend::Sqlite, queue_ids) {
        Some(select) => txn.query_all::<(Uuid, Uuid, String)>(&select)?.into_iter().map(|(queue, pool, name)| (queue, (pool, name))).collect(),
        None => HashMap::new(),
    };
    runs_in_pools(rows, &pools, now)
}

/// Flow runs from rows joined with their current state, given the work pool of each queue.
fn runs_in_pools(rows: Vec<RunWithState>, pools: &HashMap<Uuid, (Uuid, String)>, now: DateTime) -> Result<Vec<FlowRun>> {
    rows.into_iter()
        .map(|(m, state)| {
            let state = state.map(convert::flow_run_state).transpose()?;
            let pool = m.work_queue_id.and_then(|q| pools.get(&q).cloned());
            let mut run = convert::flow_run(m, state, pool)?;
            run.compute_estimates(now);
            Ok(run)
        })
        .collect()
}

fn with_state() -> sea_orm::SelectTwo<flow_run::Entity, flow_run_state::Entity> {
    flow_run::Entity::find().find_also_related(flow_run_state::Entity)
}

/// A run with its current state: one row of a [`with_state`] select, decoded by column
/// position through [`rows::select_all`] and [`rows::select_one`] (on a SQLite file, pages
/// are stepped on the direct readers: see [`crate::direct_reads`]).
type RunWithState = (flow_run::Model, Option<flow_run_state::Model>);

/// The positions are the `Column` enums' order, which is the models' field order and the
/// order `find_also_related` selects them in: the run's columns, then its state's
/// (`positional_and_direct_decoding_match_sea_orms` checks this).
impl rows::Decoded for RunWithState {
    fn decode(row: &impl PositionalRow) -> std::result::Result<Self, sea_orm::TryGetError> {
        Ok((run_at(row)?, state_at(row)?))
    }
}

/// How many columns a flow run has: where the state's columns start in a [`with_state`] row.
fn state_offset() -> usize {
    static OFFSET: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *OFFSET.get_or_init(|| <flow_run::Column as sea_orm::Iterable>::iter().count())
}

/// The run's columns of a [`with_state`] row.
fn run_at(row: &impl PositionalRow) -> std::result::Result<flow_run::Model, sea_orm::TryGetError> {
    use flow_run::Column as C;
    Ok(flow_run::Model {
        id: row.at(C::Id as usize)?,
        created: row.at(C::Created as usize)?,
        updated: row.at(C::Updated as usize)?,
        flow_id: row.at(C::FlowId as usize)?,
        deployment_id: row.at(C::DeploymentId as usize)?,
        deployment_version: row.at(C::DeploymentVersion as usize)?,
        work_queue_name: row.at(C::WorkQueueName as usize)?,
        work_queue_id: row.at(C::WorkQueueId as usize)?,
        flow_version: row.at(C::FlowVersion as usize)?,
        parameters: row.at(C::Parameters as usize)?,
        idempotency_key: row.at(C::IdempotencyKey as usize)?,
        context: row.at(C::Context as usize)?,
        empirical_policy: row.at(C::EmpiricalPolicy as usize)?,
        tags: row.at(C::Tags as usize)?,
        labels: row.at(C::Labels as usize)?,
        created_by: row.at(C::CreatedBy as usize)?,
        infrastructure_pid: row.at(C::InfrastructurePid as usize)?,
        job_variables: row.at(C::JobVariables as usize)?,
        infrastructure_document_id: row.at(C::InfrastructureDocumentId as usize)?,
        parent_task_run_id: row.at(C::ParentTaskRunId as usize)?,
        auto_scheduled: row.at(C::AutoScheduled as usize)?,
        state_id: row.at(C::StateId as usize)?,
        name: row.at(C::Name as usize)?,
        state_type: row.at(C::StateType as usize)?,
        state_name: row.at(C::StateName as usize)?,
        state_timestamp: row.at(C::StateTimestamp as usize)?,
        run_count: row.at(C::RunCount as usize)?,
        expected_start_time: row.at(C::ExpectedStartTime as usize)?,
        next_scheduled_start_time: row.at(C::NextScheduledStartTime as usize)?,
        start_time: row.at(C::StartTime as usize)?,
        end_time: row.at(C::EndTime as usize)?,
        total_run_time: row.at(C::TotalRunTime as usize)?,
    })
}

/// The state of a [`with_state`] row; a run without a state (its LEFT JOIN found
/// nothing) is `None`, told by the id alone.
fn state_at(row: &impl PositionalRow) -> std::result::Result<Option<flow_run_state::Model>, sea_orm::TryGetError> {
    use flow_run_state::Column as C;
    let base = state_offset();
    let Some(id) = row.at(base + C::Id as usize)? else {
        return Ok(None);
    };
    Ok(Some(flow_run_state::Model {
        id,
        created: row.at(base + C::Created as usize)?,
        updated: row.at(base + C::Updated as usize)?,
        flow_run_id: row.at(base + C::FlowRunId as usize)?,
        kind: row.at(base + C::Kind as usize)?,
        timestamp: row.at(base + C::Timestamp as usize)?,
        name: row.at(base + C::Name as usize)?,
        message: row.at(base + C::Message as usize)?,
        state_details: row.at(base + C::StateDetails as usize)?,
        data: row.at(base + C::Data as usize)?,
        result_artifact_id: row.at(base + C::ResultArtifactId as usize)?,
    }))
}

/// `work_queue_id -> (work_pool_id, work_pool_name)`.
pub async fn work_pools_of_queues(c: &impl ConnectionTrait, queue_ids: Vec<Uuid>) -> Result<HashMap<Uuid, (Uuid, String)>> {
    let Some(select) = pools_of_queues_select(c.get_database_backend(), queue_ids) else {
        return Ok(HashMap::new());
    };
    let mut pools = HashMap::new();
    for row in c.query_all_raw(select).await? {
        let (queue, pool, name) = <(Uuid, Uuid, String)>::decode(&row).map_err(sea_orm::DbErr::from)?;
        pools.insert(queue, (pool, name));
    }
    Ok(pools)
}

/// `(queue id, pool id, pool name)` of each queue; `None` when there are no queues.
fn pools_of_queues_select(backend: DbBackend, mut queue_ids: Vec<Uuid>) -> Option<Statement> {
    queue_ids.sort_unstable();
    queue_ids.dedup();
    if queue_ids.is_empty() {
        return None;
    }
    let select = work_queue::Entity::find()
        .select_only()
        .column(work_queue::Column::Id)
        .column(work_queue::Column::WorkPoolId)
        .column_as(Expr::col((work_pool::Entity, work_pool::Column::Name)), "pool_name")
        .join(sea_orm::JoinType::InnerJoin, work_queue::Relation::WorkPool.def())
        .filter(work_queue::Column::Id.is_in(queue_ids));
    Some(sea_orm::QueryTrait::build(&select, backend))
}

pub async fn read(c: &impl ConnectionTrait, id: Uuid, now: DateTime) -> Result<Option<FlowRun>> {
    let Some(row) = rows::one(c, by_id_select(c.get_database_backend(), id)).await? else {
        return Ok(None);
    };
    Ok(hydrate(c, vec![row], now).await?.pop())
}

/// Reads a run for a transition, locking its row on PostgreSQL until the transaction ends.
pub async fn read_for_update(c: &impl ConnectionTrait, backend: Backend, id: Uuid, now: DateTime) -> Result<Option<FlowRun>> {
    let mut select = with_state().filter(flow_run::Column::Id.eq(id));
    if backend == Backend::Postgres {
        // Only the run: the state row is immutable, and an outer join's nullable side cannot be locked.
        sea_orm::QueryTrait::query(&mut select).lock_with_tables(sea_orm::sea_query::LockType::Update, [flow_run::Entity]);
    }
    let Some(row) = rows::select_one(c, &select).await? else {
        return Ok(None);
    };
    Ok(hydrate(c, vec![row], now).await?.pop())
}

/// Reads a run for a transition, as [`read_for_update`] does, and in the same statement
/// whether one of its states already has `proposed_timestamp` (state timestamps are unique
/// per run, and orchestration asks exactly this before accepting a state; asking here
/// saves a round trip on the writer).
pub async fn read_for_transition(
    c: &impl ConnectionTrait,
    backend: Backend,
    id: Uuid,
    proposed_timestamp: DateTime,
    now: DateTime,
) -> Result<Option<(FlowRun, bool)>> {
    let Some(row) = c.query_one_raw(transition_select(backend, id, proposed_timestamp)).await? else {
        return Ok(None);
    };
    let (run, state, taken) = RunForTransition::decode(&row).map_err(sea_orm::DbErr::from)?;
    let run = hydrate(c, vec![(run, state)], now).await?.pop();
    Ok(run.map(|run| (run, taken)))
}

/// [`read_for_transition`] on the SQLite writer's own connection (see [`crate::direct_writes`]).
pub fn read_for_transition_direct(txn: &DirectTransaction<'_>, id: Uuid, proposed_timestamp: DateTime, now: DateTime) -> Result<Option<(FlowRun, bool)>> {
    let Some((run, state, taken)) = txn.query_one::<RunForTransition>(&transition_select(Backend::Sqlite, id, proposed_timestamp))? else {
        return Ok(None);
    };
    let run = hydrate_direct(txn, vec![(run, state)], now)?.pop();
    Ok(run.map(|run| (run, taken)))
}

/// The run by id on the SQLite writer's own connection, as [`read`] reads it.
pub fn read_direct(txn: &DirectTransaction<'_>, id: Uuid, now: DateTime) -> Result<Option<FlowRun>> {
    let Some(row) = txn.query_one::<RunWithState>(&by_id_select(DbBackend::Sqlite, id))? else {
        return Ok(None);
    };
    Ok(hydrate_direct(txn, vec![row], now)?.pop())
}

/// The run with its state, by id: the statement of [`read`] (see [`rows::built_once`]).
fn by_id_select(backend: DbBackend, id: Uuid) -> Statement {
    static SQL: rows::BuiltOnce = rows::built_once_cache();
    rows::built_once(&SQL, backend, || build_by_id_select(backend, Uuid::nil()), [id.into()])
}

fn build_by_id_select(backend: DbBackend, id: Uuid) -> Statement {
    sea_orm::QueryTrait::build(&with_state().filter(flow_run::Column::Id.eq(id)), backend)
}

/// The run with its state, and whether one of its states has `proposed_timestamp`
/// (locked on PostgreSQL): the statement of [`read_for_transition`]. Its text depends on
/// the backend only, so it is built once per backend: building it with sea-query took
/// longer than SQLite takes to prepare and run it.
fn transition_select(backend: Backend, id: Uuid, proposed_timestamp: DateTime) -> Statement {
    static SQL: rows::BuiltOnce = rows::built_once_cache();
    // The values in the order the statement binds them: the subquery's (its `SELECT 1`
    // too), then the key.
    let values = [1i32.into(), id.into(), proposed_timestamp.into(), id.into()];
    rows::built_once(&SQL, backend.into(), || build_transition_select(backend, Uuid::nil(), DateTime::UNIX_EPOCH), values)
}

fn build_transition_select(backend: Backend, id: Uuid, proposed_timestamp: DateTime) -> Statement {
    let other = sea_orm::sea_query::Alias::new("other_state");
    let taken = sea_orm::sea_query::Query::select()
        .expr(Expr::val(1))
        .from_as(flow_run_state::Entity, other.clone())
        .and_where(Expr::col((other.clone(), flow_run_state::Column::FlowRunId)).eq(id))
        .and_where(Expr::col((other, flow_run_state::Column::Timestamp)).eq(proposed_timestamp))
        .to_owned();
    let mut select = with_state().filter(flow_run::Column::Id.eq(id)).expr_as(Expr::exists(taken), "proposed_timestamp_taken");
    if backend == Backend::Postgres {
        sea_orm::QueryTrait::query(&mut select).lock_with_tables(sea_orm::sea_query::LockType::Update, [flow_run::Entity]);
    }
    sea_orm::QueryTrait::build(&select, backend.into())
}

/// A row of [`transition_select`]: the run, its state, and whether the timestamp is taken
/// (the column after the state's).
type RunForTransition = (flow_run::Model, Option<flow_run_state::Model>, bool);

impl rows::Decoded for RunForTransition {
    fn decode(row: &impl PositionalRow) -> std::result::Result<Self, sea_orm::TryGetError> {
        let taken_at = state_offset() + <flow_run_state::Column as sea_orm::Iterable>::iter().count();
        Ok((run_at(row)?, state_at(row)?, row.at(taken_at)?))
    }
}

pub async fn find_by_idempotency_key(c: &impl ConnectionTrait, flow_id: Uuid, key: &str, now: DateTime) -> Result<Option<FlowRun>> {
    let found = rows::select_one(c, &with_state().filter(flow_run::Column::FlowId.eq(flow_id)).filter(flow_run::Column::IdempotencyKey.eq(key))).await?;
    match found {
        Some(row) => Ok(hydrate(c, vec![row], now).await?.pop()),
        None => Ok(None),
    }
}

fn sort_columns(sort: FlowRunSort) -> Vec<(SimpleExpr, Order)> {
    use flow_run::Column as C;
    let col = |c: C| Expr::col((flow_run::Entity, c));
    let coalesce_start: SimpleExpr = Func::coalesce([col(C::StartTime), col(C::ExpectedStartTime)]).into();
    match sort {
        FlowRunSort::IdDesc => vec![(col(C::Id), Order::Desc)],
        FlowRunSort::StartTimeAsc => vec![(coalesce_start, Order::Asc), (col(C::Id), Order::Asc)],
        FlowRunSort::StartTimeDesc => {
            vec![(coalesce_start, Order::Desc), (col(C::Id), Order::Desc)]
        }
        FlowRunSort::ExpectedStartTimeAsc => vec![(col(C::ExpectedStartTime), Order::Asc), (col(C::Id), Order::Asc)],
        FlowRunSort::ExpectedStartTimeDesc => vec![(col(C::ExpectedStartTime), Order::Desc), (col(C::Id), Order::Desc)],
        FlowRunSort::NameAsc => vec![(col(C::Name), Order::Asc), (col(C::Id), Order::Asc)],
        FlowRunSort::NameDesc => vec![(col(C::Name), Order::Desc), (col(C::Id), Order::Desc)],
        FlowRunSort::NextScheduledStartTimeAsc => vec![(col(C::NextScheduledStartTime), Order::Asc), (col(C::Id), Order::Asc)],
        FlowRunSort::EndTimeDesc => vec![(col(C::EndTime), Order::Desc), (col(C::Id), Order::Desc)],
    }
}

/// Flow runs matching the filters, sorted and paged.
pub async fn filter(
    c: &impl ReadConnection,
    backend: Backend,
    filters: &RunFilters,
    sort: FlowRunSort,
    limit: u64,
    offset: u64,
    now: DateTime,
) -> Result<Vec<FlowRun>> {
    let rows = rows::select_all(c, &page_query(backend, filters, sort, limit, offset)).await?;
    hydrate(c, rows, now).await
}

fn page_query(
    backend: Backend,
    filters: &RunFilters,
    sort: FlowRunSort,
    limit: u64,
    offset: u64,
) -> sea_orm::SelectTwo<flow_run::Entity, flow_run_state::Entity> {
    let mut select = with_state().filter(query::flow_runs_page_matching(backend, filters));
    for (expr, order) in sort_columns(sort) {
        select = select.order_by(expr, order);
    }
    select.limit(limit).offset(offset)
}

/// How many runs match the filters. A filter on nothing but state types is answered
/// from the per-state counts the database keeps (migration
/// `m20261126_000002_flow_run_state_counts`) in O(state types), not O(runs).
pub async fn count(c: &impl ConnectionTrait, backend: Backend, filters: &RunFilters) -> Result<u64> {
    if only_state_types(filters) {
        return count_from_state_counts(c, backend, filters).await;
    }
    Ok(flow_run::Entity::find().filter(query::flow_runs_matching(backend, filters)).count(c).await?)
}

/// Whether the filters constrain nothing but the run's state type.
fn only_state_types(filters: &RunFilters) -> bool {
    let RunFilters { flows: None, flow_runs, task_runs: None, deployments: None, work_pools: None, work_pool_queues: None } = filters else {
        return false;
    };
    let Some(f) = flow_runs else { return true };
    // Spelled out so that a criterion added to `FlowRunFilter` cannot be missed here.
    let prefect_domain::filters::FlowRunFilter {
        operator: _,
        id,
        name,
        tags,
        deployment_id,
        work_queue_name,
        state,
        flow_version,
        start_time,
        end_time,
        expected_start_time,
        next_scheduled_start_time,
        parent_flow_run_id,
        parent_task_run_id,
        idempotency_key,
        created_by,
    } = f;
    let others_absent = id.is_none()
        && name.is_none()
        && tags.is_none()
        && deployment_id.is_none()
        && work_queue_name.is_none()
        && flow_version.is_none()
        && start_time.is_none()
        && end_time.is_none()
        && expected_start_time.is_none()
        && next_scheduled_start_time.is_none()
        && parent_flow_run_id.is_none()
        && parent_task_run_id.is_none()
        && idempotency_key.is_none()
        && created_by.is_none();
    others_absent && state.as_ref().is_none_or(|s| s.name.is_none())
}

/// The runs per state type, kept by triggers on `flow_run`.
const STATE_COUNT_TABLE: &str = "flow_run_state_count";

/// Sums the state counts that match the filter. The counts table is named `flow_run` in
/// this query, so the filter's condition, built exactly as the row count builds it, reads
/// the counts' `state_type` column (the only column a state-type filter refers to). One
/// condition builder for both ways of counting keeps their answers the same (NULL
/// states, `or_` with nothing in it, `not_any_`).
async fn count_from_state_counts(c: &impl ConnectionTrait, backend: Backend, filters: &RunFilters) -> Result<u64> {
    use sea_orm::sea_query::{Alias, Query};
    let select = Query::select()
        .expr(Expr::cust("CAST(COALESCE(SUM(n), 0) AS BIGINT)"))
        .from_as(Alias::new(STATE_COUNT_TABLE), flow_run::Entity)
        .cond_where(query::flow_runs_matching(backend, filters))
        .to_owned();
    let row = c.query_one(&select).await?;
    let total: i64 = match row {
        Some(row) => row.try_get_by_index(0)?,
        None => 0,
    };
    u64::try_from(total).map_err(|_| Error::Corrupt(format!("negative flow run count {total} in {STATE_COUNT_TABLE}")))
}

/// Folds the delta rows PostgreSQL's triggers append to the state counts into one row
/// per state type, so counting stays a sum over a handful of rows. Returns how many
/// rows the fold wrote (one per state type it saw). SQLite's triggers update in place:
/// nothing to do there.
///
/// One statement deletes and re-inserts, so a concurrent count sees the rows before or
/// after, never half; two instances folding at once each fold only the rows they
/// deleted (READ COMMITTED skips rows another transaction deleted first).
pub async fn fold_state_counts(c: &impl ConnectionTrait, backend: Backend) -> Result<u64> {
    if backend != Backend::Postgres {
        return Ok(0);
    }
    let sql = format!(
        "WITH folded AS (DELETE FROM {STATE_COUNT_TABLE} RETURNING state_type, n)
         INSERT INTO {STATE_COUNT_TABLE} (state_type, n) SELECT state_type, SUM(n) FROM folded GROUP BY state_type"
    );
    let result = c.execute_unprepared(&sql).await?;
    Ok(result.rows_affected())
}

/// The average lateness in seconds of the runs matching the filters, as Prefect computes it:
/// how much later than expected a run started, or, for a run not started and not finished, how
/// overdue it is now; 0 otherwise. `None` when nothing matches.
pub async fn average_lateness(c: &impl ConnectionTrait, backend: Backend, filters: &RunFilters) -> Result<Option<f64>> {
    let finished = "'COMPLETED', 'FAILED', 'CANCELLED', 'CRASHED'";
    let average = match backend {
        Backend::Sqlite => format!(
            "AVG(CASE
                WHEN flow_run.start_time > flow_run.expected_start_time
                    THEN (julianday(flow_run.start_time) - julianday(flow_run.expected_start_time)) * 86400.0
                WHEN flow_run.start_time IS NULL AND flow_run.state_type NOT IN ({finished})
                     AND julianday(flow_run.expected_start_time) < julianday('now')
                    THEN (julianday('now') - julianday(flow_run.expected_start_time)) * 86400.0
                ELSE 0 END)"
        ),
        Backend::Postgres => format!(
            "CAST(AVG(CASE
                WHEN flow_run.start_time > flow_run.expected_start_time
                    THEN EXTRACT(EPOCH FROM (flow_run.start_time - flow_run.expected_start_time))
                WHEN flow_run.start_time IS NULL AND flow_run.state_type NOT IN ({finished})
                     AND flow_run.expected_start_time < now()
                    THEN EXTRACT(EPOCH FROM (now() - flow_run.expected_start_time))
                ELSE 0 END) AS DOUBLE PRECISION)"
        ),
    };
    let row: Option<Option<f64>> = flow_run::Entity::find()
        .select_only()
        .column_as(Expr::cust(average), "lateness")
        .filter(query::flow_runs_matching(backend, filters))
        .into_tuple()
        .one(c)
        .await?;
    Ok(row.flatten())
}

/// Ids of runs matching the filters (bulk operations).
pub async fn ids_matching(c: &impl ConnectionTrait, backend: Backend, filters: &RunFilters, limit: u64) -> Result<Vec<Uuid>> {
    Ok(flow_run::Entity::find()
        .select_only()
        .column(flow_run::Column::Id)
        .filter(query::flow_runs_matching(backend, filters))
        .order_by(flow_run::Column::Id, Order::Desc)
        .limit(limit)
        .into_tuple()
        .all(c)
        .await?)
}

/// Applies a `PATCH`; `false` if the run does not exist.
pub async fn update(c: &impl ConnectionTrait, id: Uuid, update: &FlowRunUpdate, now: DateTime) -> Result<bool> {
    let model = flow_run::ActiveModel {
        id: Set(id),
        updated: Set(now),
        name: update.name.clone().map_or(NotSet, Set),
        flow_version: update.flow_version.clone().map_or(NotSet, |v| Set(Some(v))),
        parameters: update.parameters.clone().map_or(NotSet, |v| Set(Value::Object(v))),
        empirical_policy: update.empirical_policy.clone().map_or(NotSet, |v| Set(TypedJson(v.normalized()))),
        tags: update.tags.as_ref().map_or(NotSet, |v| Set(TypedJson(v.clone()))),
        infrastructure_pid: update.infrastructure_pid.clone().map_or(NotSet, |v| Set(Some(v))),
        job_variables: update.job_variables.clone().map_or(NotSet, |v| Set(Some(Value::Object(v)))),
        ..Default::default()
    };
    let result = flow_run::Entity::update_many().set(model).filter(flow_run::Column::Id.eq(id)).exec(c).await?;
    Ok(result.rows_affected > 0)
}

/// Writes the labels map (callers merge first).
pub async fn set_labels(c: &impl ConnectionTrait, id: Uuid, labels: &KeyValueLabels, now: DateTime) -> Result<bool> {
    let model = flow_run::ActiveModel { updated: Set(now), labels: Set(Value::Object(labels.clone())), ..Default::default() };
    let result = flow_run::Entity::update_many().set(model).filter(flow_run::Column::Id.eq(id)).exec(c).await?;
    Ok(result.rows_affected > 0)
}

/// Sets the infrastructure pid, empirical policy and other orchestration-owned columns.
pub async fn write_bookkeeping(c: &impl ConnectionTrait, id: Uuid, b: &RunBookkeeping, empirical_policy: &FlowRunPolicy, now: DateTime) -> Result<()> {
    let mut writes = RowWrites::on(c);
    push_bookkeeping(&mut writes, id, b, empirical_policy, now);
    writes.execute(c).await
}

/// [`write_bookkeeping`], as one of several writes sent together.
pub fn push_bookkeeping(writes: &mut RowWrites, id: Uuid, b: &RunBookkeeping, empirical_policy: &FlowRunPolicy, now: DateTime) {
    let model = flow_run::ActiveModel { updated: Set(now), empirical_policy: Set(TypedJson(empirical_policy.clone())), ..bookkeeping_columns(b) };
    writes.update_one(&flow_run::Entity::update_many().set(model).filter(flow_run::Column::Id.eq(id)), "Flow run");
}

/// What a transition changed in a run's bookkeeping, as one of several writes sent
/// together: only the columns that differ from `before`, which must be the row as the
/// same transaction read it (locked on PostgreSQL), and the empirical policy if given.
pub fn push_bookkeeping_changes(
    writes: &mut RowWrites,
    id: Uuid,
    before: &RunBookkeeping,
    after: &RunBookkeeping,
    empirical_policy: Option<&FlowRunPolicy>,
    now: DateTime,
) {
    let model = flow_run::ActiveModel {
        updated: Set(now),
        empirical_policy: empirical_policy.map_or(NotSet, |p| Set(TypedJson(p.clone()))),
        ..changed_bookkeeping_columns(before, after)
    };
    writes.update_one(&flow_run::Entity::update_many().set(model).filter(flow_run::Column::Id.eq(id)), "Flow run");
}

pub async fn delete(c: &impl ConnectionTrait, id: Uuid) -> Result<bool> {
    Ok(flow_run::Entity::delete_by_id(id).exec(c).await?.rows_affected > 0)
}

pub async fn delete_many(c: &impl ConnectionTrait, ids: &[Uuid]) -> Result<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    Ok(flow_run::Entity::delete_many().filter(flow_run::Column::Id.is_in(ids.iter().copied())).exec(c).await?.rows_affected)
}

/// Inserts a state row for a flow run.
pub async fn insert_state(c: &impl ConnectionTrait, flow_run_id: Uuid, state: &State, result_artifact_id: Option<Uuid>, now: DateTime) -> Result<()> {
    let mut writes = RowWrites::on(c);
    push_state(&mut writes, flow_run_id, state, result_artifact_id, now);
    writes.execute(c).await
}

/// [`insert_state`], as one of several writes sent together.
pub fn push_state(writes: &mut RowWrites, flow_run_id: Uuid, state: &State, result_artifact_id: Option<Uuid>, now: DateTime) {
    let model = flow_run_state::ActiveModel {
        id: Set(state.id),
        created: Set(now),
        updated: Set(now),
        flow_run_id: Set(flow_run_id),
        kind: Set(state.state_type.as_str().to_owned()),
        timestamp: Set(state.timestamp),
        name: Set(state.name().to_owned()),
        message: Set(state.message.clone()),
        state_details: Set(TypedJson(state.state_details.clone())),
        data: Set(state.data.clone()),
        result_artifact_id: Set(result_artifact_id),
    };
    writes.insert(&flow_run_state::Entity::insert(model));
}

pub async fn read_state(c: &impl ConnectionTrait, id: Uuid) -> Result<Option<State>> {
    flow_run_state::Entity::find_by_id(id).one(c).await?.map(convert::flow_run_state).transpose()
}

/// Every state of a run, oldest first.
pub async fn states_of(c: &impl ConnectionTrait, flow_run_id: Uuid) -> Result<Vec<State>> {
    flow_run_state::Entity::find()
        .filter(flow_run_state::Column::FlowRunId.eq(flow_run_id))
        .order_by(flow_run_state::Column::Timestamp, Order::Asc)
        .all(c)
        .await?
        .into_iter()
        .map(convert::flow_run_state)
        .collect()
}

pub async fn state_timestamp_taken(c: &impl ConnectionTrait, flow_run_id: Uuid, timestamp: DateTime) -> Result<bool> {
    let found = flow_run_state::Entity::find()
        .select_only()
        .column(flow_run_state::Column::Id)
        .filter(flow_run_state::Column::FlowRunId.eq(flow_run_id))
        .filter(flow_run_state::Column::Timestamp.eq(timestamp))
        .into_tuple::<Uuid>()
        .one(c)
        .await?;
    Ok(found.is_some())
}

/// The columns run history needs, for runs expected to start in `[start, end)`.
#[derive(Debug, Clone)]
pub struct HistoryRow {
    pub expected_start_time: DateTime,
    pub state_type: Option<StateType>,
    pub state_name: Option<String>,
    pub total_run_time: f64,
    pub start_time: Option<DateTime>,
    pub state_timestamp: Option<DateTime>,
}

type HistoryTuple = (Option<DateTime>, Option<String>, Option<String>, f64, Option<DateTime>, Option<DateTime>);

pub(crate) fn history_row(t: HistoryTuple) -> Result<Option<HistoryRow>> {
    let (expected, state_type, state_name, total_run_time, start_time, state_timestamp) = t;
    let Some(expected_start_time) = expected else {
        return Ok(None);
    };
    Ok(Some(HistoryRow {
        expected_start_time,
        state_type: convert::opt_state_type(state_type.as_deref())?,
        state_name,
        total_run_time,
        start_time,
        state_timestamp,
    }))
}

pub async fn history_rows(c: &impl ConnectionTrait, backend: Backend, filters: &RunFilters, start: DateTime, end: DateTime) -> Result<Vec<HistoryRow>> {
    use flow_run::Column as C;
    let rows: Vec<HistoryTuple> = flow_run::Entity::find()
        .select_only()
        .columns([C::ExpectedStartTime, C::StateType, C::StateName, C::TotalRunTime, C::StartTime, C::StateTimestamp])
        .filter(query::flow_runs_matching(backend, filters))
        .filter(C::ExpectedStartTime.gte(start))
        .filter(C::ExpectedStartTime.lt(end))
        .into_tuple()
        .all(c)
        .await?;
    rows.into_iter().filter_map(|r| history_row(r).transpose()).collect()
}

/// Paused runs with an id greater than `after`, in id order (for paging through all of them).
pub async fn paused_after(c: &impl ReadConnection, after: Uuid, limit: u64, now: DateTime) -> Result<Vec<FlowRun>> {
    let select = with_state()
        .filter(flow_run::Column::StateType.eq("PAUSED"))
        .filter(flow_run::Column::Id.gt(after))
        .order_by(flow_run::Column::Id, sea_orm::Order::Asc)
        .limit(limit);
    hydrate(c, rows::select_all(c, &select).await?, now).await
}

/// The runs with these ids, in the order given (missing ids are skipped).
pub async fn read_many(c: &impl ReadConnection, ids: &[Uuid], now: DateTime) -> Result<Vec<FlowRun>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = rows::select_all(c, &with_state().filter(flow_run::Column::Id.is_in(ids.iter().copied()))).await?;
    let mut runs: HashMap<Uuid, FlowRun> = hydrate(c, rows, now).await?.into_iter().map(|r| (r.id, r)).collect();
    Ok(ids.iter().filter_map(|id| runs.remove(id)).collect())
}

/// Ids of runs in the `Scheduled` state (not `Late`, not `AwaitingRetry`) due before `before`.
pub async fn overdue_scheduled(c: &impl ConnectionTrait, before: DateTime, limit: u64) -> Result<Vec<Uuid>> {
    Ok(flow_run::Entity::find()
        .select_only()
        .column(flow_run::Column::Id)
        .filter(flow_run::Column::StateType.eq("SCHEDULED"))
        .filter(flow_run::Column::StateName.eq("Scheduled"))
        .filter(flow_run::Column::NextScheduledStartTime.lte(before))
        .order_by(flow_run::Column::NextScheduledStartTime, Order::Asc)
        .limit(limit)
        .into_tuple()
        .all(c)
        .await?)
}

/// States a run can still leave (not Completed, Failed, Cancelled or Crashed).
const UNFINISHED_STATE_TYPES: [&str; 5] = ["SCHEDULED", "PENDING", "RUNNING", "PAUSED", "CANCELLING"];

/// Ids after `after` (by id) of runs Cancelled since `ended_since`.
pub async fn cancelled_since(c: &impl ConnectionTrait, ended_since: DateTime, after: Uuid, limit: u64) -> Result<Vec<Uuid>> {
    Ok(flow_run::Entity::find()
        .select_only()
        .column(flow_run::Column::Id)
        .filter(flow_run::Column::StateType.eq("CANCELLED"))
        .filter(flow_run::Column::EndTime.gte(ended_since))
        .filter(flow_run::Column::Id.gt(after))
        .order_by(flow_run::Column::Id, Order::Asc)
        .limit(limit)
        .into_tuple()
        .all(c)
        .await?)
}

/// `(id, parent_task_run_id)` after `after` (by id) of subflow runs that have not finished.
pub async fn unfinished_subflows(c: &impl ConnectionTrait, after: Uuid, limit: u64) -> Result<Vec<(Uuid, Uuid)>> {
    Ok(flow_run::Entity::find()
        .select_only()
        .column(flow_run::Column::Id)
        .column(flow_run::Column::ParentTaskRunId)
        .filter(flow_run::Column::ParentTaskRunId.is_not_null())
        .filter(flow_run::Column::StateType.is_in(UNFINISHED_STATE_TYPES))
        .filter(flow_run::Column::Id.gt(after))
        .order_by(flow_run::Column::Id, Order::Asc)
        .limit(limit)
        .into_tuple()
        .all(c)
        .await?)
}

/// Ids of runs in a Cancelling state entered at or before `before`.
pub async fn cancelling_since(c: &impl ConnectionTrait, before: DateTime, limit: u64) -> Result<Vec<Uuid>> {
    Ok(flow_run::Entity::find()
        .select_only()
        .column(flow_run::Column::Id)
        .filter(flow_run::Column::StateType.eq("CANCELLING"))
        .filter(flow_run::Column::StateTimestamp.lte(before))
        .order_by(flow_run::Column::StateTimestamp, Order::Asc)
        .limit(limit)
        .into_tuple()
        .all(c)
        .await?)
}

/// The soonest Scheduled run of each of `flow_ids` that has one: one statement (a window over
/// the runs of those flows), not one query per flow.
pub async fn next_scheduled_of_flows(c: &impl ConnectionTrait, backend: Backend, flow_ids: &[Uuid]) -> Result<Vec<SimpleNextFlowRun>> {
    if flow_ids.is_empty() {
        return Ok(Vec::new());
    }
    let marks: Vec<String> = (1..=flow_ids.len()).map(|n| backend.placeholder(n)).collect();
    let sql = format!(
        "SELECT id, flow_id, name, state_name, state_type, next_scheduled_start_time FROM (
            SELECT id, flow_id, name, state_name, state_type, next_scheduled_start_time,
                   ROW_NUMBER() OVER (PARTITION BY flow_id ORDER BY next_scheduled_start_time ASC, id ASC) AS soonest
            FROM flow_run
            WHERE flow_id IN ({}) AND state_type = 'SCHEDULED'
        ) ranked
        WHERE soonest = 1",
        marks.join(", ")
    );
    let values: Vec<sea_orm::Value> = flow_ids.iter().map(|id| (*id).into()).collect();
    let rows = c.query_all_raw(sea_orm::Statement::from_sql_and_values(c.get_database_backend(), sql, values)).await?;
    rows.iter()
        .map(|row| {
            Ok(SimpleNextFlowRun {
                id: row.try_get("", "id")?,
                flow_id: row.try_get("", "flow_id")?,
                name: row.try_get("", "name")?,
                state_name: row.try_get("", "state_name")?,
                state_type: convert::opt_state_type(row.try_get::<Option<String>>("", "state_type")?.as_deref())?,
                next_scheduled_start_time: row.try_get("", "next_scheduled_start_time")?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;
    use prefect_domain::flow::FlowCreate;
    use prefect_domain::time;

    use super::*;
    use sea_orm::QueryTrait;

    use crate::flows;
    use crate::test_support::migrated_sqlite;

    fn new_run(id: Uuid, flow_id: Uuid) -> NewFlowRun {
        NewFlowRun {
            id,
            name: "a-run".into(),
            flow_id,
            flow_version: None,
            deployment_id: None,
            deployment_version: None,
            work_queue_id: None,
            work_queue_name: None,
            parameters: Map::new(),
            idempotency_key: None,
            context: Map::new(),
            empirical_policy: FlowRunPolicy::default(),
            tags: Vec::new(),
            labels: Map::new(),
            parent_task_run_id: None,
            infrastructure_document_id: None,
            job_variables: None,
            created_by: None,
            auto_scheduled: false,
        }
    }

    async fn create_flow(txn: &crate::DatabaseTransaction, now: DateTime) -> Uuid {
        flows::create_or_read(txn, &FlowCreate { name: "f".into(), tags: vec![], labels: None }, now).await.unwrap().0.id
    }

    /// Queues a new run of `flow_id` with a first state of `state_type`; returns the state and
    /// the run's bookkeeping for it.
    fn push_run_in_state(writes: &mut RowWrites, run_id: Uuid, flow_id: Uuid, state_type: StateType, now: DateTime) -> (State, RunBookkeeping) {
        let state = State::new(state_type, now);
        let bookkeeping = RunBookkeeping { state_id: Some(state.id), state_type: Some(state_type), state_timestamp: Some(now), ..Default::default() };
        push_insert(writes, &new_run(run_id, flow_id), &bookkeeping, &FlowRunPolicy::default(), now);
        push_state(writes, run_id, &state, None, now);
        (state, bookkeeping)
    }

    #[tokio::test]
    async fn a_transition_reads_whether_the_proposed_timestamp_is_taken_and_writes_in_one_call() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = migrated_sqlite(&dir).await;
        let now = time::now();
        let txn = db.begin_write().await.unwrap();
        let flow_id = create_flow(&txn, now).await;

        // The run and its first state, in one call.
        let run_id = Uuid::now_v7();
        let mut writes = RowWrites::on(&txn);
        let (state, bookkeeping) = push_run_in_state(&mut writes, run_id, flow_id, StateType::Pending, now);
        writes.execute(&txn).await.unwrap();

        let (run, taken) = read_for_transition(&txn, Backend::Sqlite, run_id, state.timestamp, now).await.unwrap().expect("the run");
        assert!(taken, "the Pending state has that timestamp");
        assert_eq!(run.state.map(|s| s.id), Some(state.id));
        assert_eq!(run.state_type, Some(StateType::Pending));
        let (_, taken) = read_for_transition(&txn, Backend::Sqlite, run_id, state.timestamp + TimeDelta::microseconds(1), now).await.unwrap().expect("the run");
        assert!(!taken);
        assert!(read_for_transition(&txn, Backend::Sqlite, Uuid::now_v7(), now, now).await.unwrap().is_none());

        // A state and the bookkeeping of a run that is gone: the update finds no row.
        let mut writes = RowWrites::on(&txn);
        push_state(&mut writes, run_id, &State::new(StateType::Running, now + TimeDelta::seconds(1)), None, now);
        push_bookkeeping(&mut writes, Uuid::now_v7(), &bookkeeping, &FlowRunPolicy::default(), now);
        assert!(matches!(writes.execute(&txn).await, Err(Error::NotFound { entity: "Flow run" })));
    }

    #[tokio::test]
    async fn a_transition_assigns_only_the_bookkeeping_columns_it_changes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = migrated_sqlite(&dir).await;
        let now = time::now();
        let txn = db.begin_write().await.unwrap();
        let flow_id = create_flow(&txn, now).await;
        let run_id = Uuid::now_v7();
        let pending = State::new(StateType::Pending, now);
        let before = RunBookkeeping {
            state_id: Some(pending.id),
            state_type: Some(StateType::Pending),
            state_name: Some("Pending".into()),
            state_timestamp: Some(now),
            expected_start_time: Some(now),
            ..Default::default()
        };
        let mut writes = RowWrites::on(&txn);
        push_insert(&mut writes, &new_run(run_id, flow_id), &before, &FlowRunPolicy::default(), now);
        push_state(&mut writes, run_id, &pending, None, now);
        writes.execute(&txn).await.unwrap();

        let later = now + TimeDelta::seconds(1);
        let running = State::new(StateType::Running, later);
        let after = RunBookkeeping {
            state_id: Some(running.id),
            state_type: Some(StateType::Running),
            state_name: Some("Running".into()),
            state_timestamp: Some(later),
            run_count: 1,
            start_time: Some(later),
            ..before.clone()
        };
        let mut writes = RowWrites::on(&txn);
        push_state(&mut writes, run_id, &running, None, later);
        push_bookkeeping_changes(&mut writes, run_id, &before, &after, None, later);
        let update = writes.sql()[1].to_owned();
        for assigned in ["\"updated\"", "\"state_id\"", "\"state_type\"", "\"state_name\"", "\"state_timestamp\"", "\"run_count\"", "\"start_time\""] {
            assert!(update.contains(assigned), "{assigned} is assigned: {update}");
        }
        for untouched in ["expected_start_time", "next_scheduled_start_time", "end_time", "total_run_time", "empirical_policy"] {
            assert!(!update.contains(untouched), "{untouched} is left alone: {update}");
        }
        writes.execute(&txn).await.unwrap();

        let run = read(&txn, run_id, later).await.unwrap().expect("the run");
        assert_eq!((run.state_id, run.state_type, run.run_count), (Some(running.id), Some(StateType::Running), 1));
        assert_eq!((run.start_time, run.expected_start_time, run.end_time), (Some(later), Some(now), None));
        // The state counts follow state_type, which was assigned.
        let counts = txn
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Sqlite,
                "SELECT (SELECT n FROM flow_run_state_count WHERE state_type = 'PENDING'), (SELECT n FROM flow_run_state_count WHERE state_type = 'RUNNING')",
            ))
            .await
            .unwrap()
            .map(|r| (r.try_get_by_index::<i64>(0).unwrap(), r.try_get_by_index::<i64>(1).unwrap()));
        assert_eq!(counts, Some((0, 1)), "(Pending, Running)");

        // Nothing changed: only `updated` is assigned, and the run is still found.
        let mut writes = RowWrites::on(&txn);
        push_bookkeeping_changes(&mut writes, run_id, &after, &after, None, later);
        assert_eq!(writes.sql()[0].matches(" = ").count(), 2, "updated, and the id: {}", writes.sql()[0]);
        writes.execute(&txn).await.unwrap();
        let mut writes = RowWrites::on(&txn);
        push_bookkeeping_changes(&mut writes, Uuid::now_v7(), &after, &after, None, later);
        assert!(matches!(writes.execute(&txn).await, Err(Error::NotFound { entity: "Flow run" })));
    }

    /// The reads by key built once per backend are the statements sea-query builds.
    #[test]
    fn the_reads_built_once_are_the_ones_sea_query_builds() {
        for backend in [Backend::Sqlite, Backend::Postgres] {
            let (id, timestamp) = (Uuid::now_v7(), DateTime::from_timestamp(1_800_000_000, 123_456_000).expect("time"));
            let built = build_transition_select(backend, id, timestamp);
            let cached = transition_select(backend, id, timestamp);
            assert_eq!((cached.sql, cached.values, cached.db_backend), (built.sql, built.values, built.db_backend));
            let (built, cached) = (build_by_id_select(backend.into(), id), by_id_select(backend.into(), id));
            assert_eq!((cached.sql, cached.values, cached.db_backend), (built.sql, built.values, built.db_backend));
        }
    }

    /// Position-based decoding of run rows gives exactly what SeaORM's by-name decoding
    /// gives: for a run with a state and most optional columns set, and for one without.
    #[tokio::test]
    async fn positional_and_direct_decoding_match_sea_orms() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = migrated_sqlite(&dir).await;
        let now = time::now();
        let txn = db.begin_write().await.unwrap();
        let flow_id = create_flow(&txn, now).await;
        let (with, without) = (Uuid::now_v7(), Uuid::now_v7());
        let mut writes = RowWrites::on(&txn);
        push_run_in_state(&mut writes, with, flow_id, StateType::Running, now);
        push_insert(&mut writes, &new_run(without, flow_id), &RunBookkeeping::default(), &FlowRunPolicy::default(), now);
        writes.execute(&txn).await.unwrap();
        txn.execute_unprepared(
            r#"UPDATE flow_run SET deployment_version = 'dv', work_queue_name = 'q', flow_version = 'fv', idempotency_key = 'k',
                created_by = '{"type": "USER"}', infrastructure_pid = 'pid', job_variables = '{"a": 1}', run_count = 3,
                expected_start_time = state_timestamp, next_scheduled_start_time = state_timestamp, start_time = state_timestamp,
                end_time = state_timestamp, total_run_time = 1.5, tags = '["t"]', labels = '{"l": "v"}' WHERE state_id IS NOT NULL"#,
        )
        .await
        .unwrap();
        txn.execute_unprepared(r#"UPDATE flow_run_state SET message = 'm', data = '{"d": true}'"#).await.unwrap();
        crate::commit(txn).await.expect("commit");

        let by_name = with_state().order_by(flow_run::Column::Id, Order::Asc).all(db.reader()).await.unwrap();
        let by_position = rows::select_all::<RunWithState>(db.reader(), &with_state().order_by(flow_run::Column::Id, Order::Asc)).await.unwrap();
        assert_eq!(by_position.len(), 2);
        assert!(by_position[0].1.as_ref().is_some_and(|s| s.message.as_deref() == Some("m")), "{by_position:?}");
        assert!(by_position[1].1.is_none());
        assert_eq!(by_position[0].0.flow_version.as_deref(), Some("fv"));
        assert_eq!(by_position, by_name);

        // The same rows stepped on the direct readers, with the values SeaORM binds
        // (a uuid list, a timestamp, a limit) encoded as sqlx encodes them.
        let direct = db.reads().direct().cloned().expect("a SQLite file has direct readers");
        let select = with_state()
            .filter(flow_run::Column::Id.is_in([with, without]))
            .filter(flow_run::Column::Created.lte(now))
            .filter(flow_run::Column::Created.gte(now))
            .order_by(flow_run::Column::Id, Order::Asc)
            .limit(10);
        let statement = sea_orm::QueryTrait::build(&select, sea_orm::DatabaseBackend::Sqlite);
        let stepped = direct.all(&statement, |row| RunWithState::decode(row)).await.unwrap().expect("every bound value encodes");
        assert_eq!(stepped, by_name);
        assert_eq!(rows::select_all::<RunWithState>(&db.reads(), &select).await.unwrap(), by_name);
    }

    /// The UI's runs page (most state types, newest first) and its ascending twin must
    /// walk one index and stop after a page: no temporary B-tree for the `id`
    /// tie-break (migration `m20261127_000004`), and the state types compared in place.
    #[tokio::test]
    async fn sorted_run_pages_walk_an_index_without_sorting() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = migrated_sqlite(&dir).await;
        let broad: RunFilters = serde_json::from_value(serde_json::json!({"flow_runs": {"state": {"type": {"any_": [
            "COMPLETED", "FAILED", "CRASHED", "RUNNING", "SCHEDULED", "PENDING", "CANCELLED"
        ]}}}}))
        .unwrap();
        let one_state: RunFilters = serde_json::from_value(serde_json::json!({"flow_runs": {"state": {"type": {"any_": ["SCHEDULED"]}}}})).unwrap();
        for (filters, sort, index) in [
            (&broad, FlowRunSort::ExpectedStartTimeDesc, "ix_flow_run__expected_start_time__id"),
            (&broad, FlowRunSort::ExpectedStartTimeAsc, "ix_flow_run__expected_start_time__id"),
            (&RunFilters::default(), FlowRunSort::ExpectedStartTimeDesc, "ix_flow_run__expected_start_time__id"),
            (&one_state, FlowRunSort::ExpectedStartTimeDesc, "ix_flow_run__state_type__expected_start_time__id"),
        ] {
            let statement = page_query(Backend::Sqlite, filters, sort, 50, 0).build(sea_orm::DatabaseBackend::Sqlite);
            assert!(!statement.sql.contains(" IN ("), "state types compared in place: {}", statement.sql);
            let plan = sqlite_plan(&db, &statement).await;
            assert!(plan.iter().any(|step| step.contains(&format!("USING INDEX {index}"))), "{sort:?} walks {index}: {plan:?}");
            assert!(!plan.iter().any(|step| step.contains("TEMP B-TREE")), "{sort:?} sorts nothing: {plan:?}");
        }
    }

    async fn sqlite_plan(db: &crate::Database, statement: &sea_orm::Statement) -> Vec<String> {
        let explain = sea_orm::Statement::from_sql_and_values(
            sea_orm::DatabaseBackend::Sqlite,
            format!("EXPLAIN QUERY PLAN {}", statement.sql),
            statement.values.clone().map(|v| v.0).unwrap_or_default(),
        );
        db.reader().query_all_raw(explain).await.unwrap().iter().map(|row| row.try_get::<String>("", "detail").unwrap()).collect()
    }

    /// The indexes on optional columns hold only rows with a value (migration
    /// `m20261128_000005`); a filter on one of those columns implies the index's
    /// predicate, so it still looks runs up through the index.
    #[tokio::test]
    async fn filters_on_run_columns_use_their_indexes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = migrated_sqlite(&dir).await;
        let id = Uuid::new_v4().to_string();
        for (filter, index) in [
            (serde_json::json!({"deployment_id": {"any_": [id]}}), "ix_flow_run__deployment_id__auto_scheduled__next_scheduled_start_time"),
            (serde_json::json!({"work_queue_name": {"any_": ["a", "b"]}}), "ix_flow_run__work_queue_name"),
            (serde_json::json!({"flow_version": {"any_": ["1.0"]}}), "ix_flow_run__flow_version"),
            (serde_json::json!({"parent_task_run_id": {"any_": [id]}}), "ix_flow_run__parent_task_run_id"),
            (serde_json::json!({"parent_flow_run_id": {"any_": [id]}}), "ix_flow_run__parent_task_run_id"),
        ] {
            let filters: RunFilters = serde_json::from_value(serde_json::json!({ "flow_runs": filter })).unwrap();
            let statement = page_query(Backend::Sqlite, &filters, FlowRunSort::IdDesc, 50, 0).build(sea_orm::DatabaseBackend::Sqlite);
            let plan = sqlite_plan(&db, &statement).await;
            assert!(plan.iter().any(|step| step.contains(&format!("USING INDEX {index}"))), "{filter} looks up {index}: {plan:?}");
        }
        // Runs of a flow: the unique index on `(flow_id, idempotency_key)` leads with the
        // flow and holds every run, so no index of their own on `flow_id`.
        let filters: RunFilters = serde_json::from_value(serde_json::json!({ "flows": {"id": {"any_": [id]}} })).unwrap();
        let statement = page_query(Backend::Sqlite, &filters, FlowRunSort::IdDesc, 50, 0).build(sea_orm::DatabaseBackend::Sqlite);
        let plan = sqlite_plan(&db, &statement).await;
        assert!(plan.iter().any(|step| step.contains("USING INDEX uq_flow_run__flow_id__idempotency_key (flow_id=?)")), "{plan:?}");
        // A worker's poll finds its pool's Scheduled runs through the work queue index.
        let query = prefect_domain::work_pool::ScheduledRunsQuery {
            work_queue_ids: None,
            scheduled_before: Some(time::now()),
            scheduled_after: None,
            limit: 10,
            respect_queue_priorities: false,
        };
        let poll = crate::work_pools::scheduled_runs_statement(Backend::Sqlite, Uuid::new_v4(), &query);
        let plan = sqlite_plan(&db, &poll).await;
        let index = "ix_flow_run__work_queue_id__state_type__next_scheduled_start_time";
        // The candidates, and the Pending and Running runs the pool's and the queues' limits count.
        let lookups = plan.iter().filter(|step| step.starts_with(&format!("SEARCH fr USING INDEX {index} (work_queue_id=? AND state_type=?"))).count();
        assert_eq!(lookups, 3, "a poll looks runs up through {index}: {plan:?}");
        assert!(!plan.iter().any(|step| step.starts_with("SCAN fr")), "{plan:?}");
    }
}
