//! Task runs, their states, and the task cache.

use std::collections::{HashMap, HashSet};

use prefect_domain::filters::RunFilters;
use prefect_domain::labels::KeyValueLabels;
use prefect_domain::sorts::TaskRunSort;
use prefect_domain::state::State;
use prefect_domain::task_run::{TaskRun, TaskRunPolicy};
use prefect_domain::time::DateTime;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, SimpleExpr};
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, Order, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Statement};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::Result;
use crate::convert;
use crate::db::{Backend, ReadConnection};
use crate::direct_writes::DirectTransaction;
use crate::entity::{TypedJson, flow_run, task_run, task_run_state, task_run_state_cache};
use crate::flow_runs::{RunBookkeeping, changed};
use crate::query;
use crate::rows::{self, PositionalRow};
use crate::writes::RowWrites;

/// Everything needed to insert a task run row (before any state).
#[derive(Debug, Clone)]
pub struct NewTaskRun {
    pub id: Uuid,
    pub flow_run_id: Option<Uuid>,
    pub name: String,
    pub task_key: String,
    pub dynamic_key: String,
    pub cache_key: Option<String>,
    pub cache_expiration: Option<DateTime>,
    pub task_version: Option<String>,
    pub empirical_policy: TaskRunPolicy,
    pub tags: Vec<String>,
    pub labels: Option<KeyValueLabels>,
    pub task_inputs: Map<String, Value>,
}

fn active_model(run: &NewTaskRun, b: &RunBookkeeping, flow_run_run_count: i64, now: DateTime) -> task_run::ActiveModel {
    task_run::ActiveModel {
        id: Set(run.id),
        created: Set(now),
        updated: Set(now),
        flow_run_id: Set(run.flow_run_id),
        task_key: Set(run.task_key.clone()),
        dynamic_key: Set(run.dynamic_key.clone()),
        cache_key: Set(run.cache_key.clone()),
        cache_expiration: Set(run.cache_expiration),
        task_version: Set(run.task_version.clone()),
        empirical_policy: Set(TypedJson(run.empirical_policy.clone())),
        task_inputs: Set(Value::Object(run.task_inputs.clone())),
        tags: Set(TypedJson(run.tags.clone())),
        labels: Set(run.labels.clone().map(Value::Object)),
        name: Set(run.name.clone()),
        ..bookkeeping_columns(b, flow_run_run_count)
    }
}

/// The columns orchestration maintains, set from `b`; every other column unset.
/// [`insert`] and [`write_bookkeeping`] both write them.
fn bookkeeping_columns(b: &RunBookkeeping, flow_run_run_count: i64) -> task_run::ActiveModel {
    task_run::ActiveModel {
        state_id: Set(b.state_id),
        state_type: Set(b.state_type.map(|t| t.as_str().to_owned())),
        state_name: Set(b.state_name.clone()),
        state_timestamp: Set(b.state_timestamp),
        run_count: Set(b.run_count),
        flow_run_run_count: Set(flow_run_run_count),
        start_time: Set(b.start_time),
        end_time: Set(b.end_time),
        total_run_time: Set(b.total_run_time),
        expected_start_time: Set(b.expected_start_time),
        next_scheduled_start_time: Set(b.next_scheduled_start_time),
        ..Default::default()
    }
}

/// The run [`insert`] writes, as [`read`] would return it (no state yet), so a
/// creator need not read it back.
pub fn inserted(run: &NewTaskRun, now: DateTime) -> TaskRun {
    TaskRun {
        id: run.id,
        created: now,
        updated: now,
        name: run.name.clone(),
        flow_run_id: run.flow_run_id,
        task_key: run.task_key.clone(),
        dynamic_key: run.dynamic_key.clone(),
        cache_key: run.cache_key.clone(),
        cache_expiration: run.cache_expiration,
        task_version: run.task_version.clone(),
        empirical_policy: run.empirical_policy.clone(),
        tags: run.tags.clone(),
        labels: run.labels.clone(),
        state_id: None,
        task_inputs: run.task_inputs.clone(),
        state_type: None,
        state_name: None,
        run_count: 0,
        flow_run_run_count: 0,
        expected_start_time: None,
        next_scheduled_start_time: None,
        start_time: None,
        end_time: None,
        total_run_time: 0.0,
        estimated_run_time: 0.0,
        estimated_start_time_delta: 0.0,
        state: None,
    }
}

/// Inserts a task run with the bookkeeping its first transition decided (or the default: no state yet),
/// so a creation writes the row once instead of inserting and then updating it.
pub async fn insert(c: &impl ConnectionTrait, run: &NewTaskRun, b: &RunBookkeeping, flow_run_run_count: i64, now: DateTime) -> Result<()> {
    let mut writes = RowWrites::on(c);
    push_insert(&mut writes, run, b, flow_run_run_count, now);
    writes.execute(c).await
}

/// [`insert`], as one of several writes sent together.
pub fn push_insert(writes: &mut RowWrites, run: &NewTaskRun, b: &RunBookkeeping, flow_run_run_count: i64, now: DateTime) {
    writes.insert(&task_run::Entity::insert(active_model(run, b, flow_run_run_count, now)));
}

pub async fn read(c: &impl ConnectionTrait, id: Uuid, now: DateTime) -> Result<Option<TaskRun>> {
    let Some(row) = rows::select_one(c, &with_state().filter(task_run::Column::Id.eq(id))).await? else {
        return Ok(None);
    };
    Ok(hydrate(vec![row], now)?.pop())
}

/// Reads a task run for a transition, locking its row on PostgreSQL.
pub async fn read_for_update(c: &impl ConnectionTrait, backend: Backend, id: Uuid, now: DateTime) -> Result<Option<TaskRun>> {
    let Some(row) = rows::one(c, for_update_select(backend, id)).await? else {
        return Ok(None);
    };
    Ok(hydrate(vec![row], now)?.pop())
}

/// [`read_for_update`] on the SQLite writer's own connection (see [`crate::direct_writes`]).
pub fn read_for_update_direct(txn: &DirectTransaction<'_>, id: Uuid, now: DateTime) -> Result<Option<TaskRun>> {
    one_direct(txn, &for_update_select(Backend::Sqlite, id), now)
}

/// The task run the SQLite statement `select` finds first, on the writer's own connection.
fn one_direct(txn: &DirectTransaction<'_>, select: &Statement, now: DateTime) -> Result<Option<TaskRun>> {
    let Some(row) = txn.query_one::<RunWithState>(select)? else {
        return Ok(None);
    };
    Ok(hydrate(vec![row], now)?.pop())
}

/// The statement of [`read_for_update`] (see [`rows::built_once`]).
fn for_update_select(backend: Backend, id: Uuid) -> Statement {
    static SQL: rows::BuiltOnce = rows::built_once_cache();
    rows::built_once(&SQL, backend.into(), || build_for_update_select(backend, Uuid::nil()), [id.into()])
}

fn build_for_update_select(backend: Backend, id: Uuid) -> Statement {
    let mut select = with_state().filter(task_run::Column::Id.eq(id));
    if backend == Backend::Postgres {
        sea_orm::QueryTrait::query(&mut select).lock_with_tables(sea_orm::sea_query::LockType::Update, [task_run::Entity]);
    }
    sea_orm::QueryTrait::build(&select, backend.into())
}

/// [`find_by_natural_key`] on the SQLite writer's own connection.
pub fn find_by_natural_key_direct(
    txn: &DirectTransaction<'_>,
    flow_run_id: Option<Uuid>,
    task_key: &str,
    dynamic_key: &str,
    now: DateTime,
) -> Result<Option<TaskRun>> {
    let Some(flow_run_id) = flow_run_id else {
        return Ok(None);
    };
    one_direct(txn, &natural_key_select(sea_orm::DbBackend::Sqlite, flow_run_id, task_key, dynamic_key), now)
}

/// The task run with its state by `(flow_run_id, task_key, dynamic_key)` (see [`rows::built_once`]).
fn natural_key_select(backend: sea_orm::DbBackend, flow_run_id: Uuid, task_key: &str, dynamic_key: &str) -> Statement {
    static SQL: rows::BuiltOnce = rows::built_once_cache();
    let values = [flow_run_id.into(), task_key.into(), dynamic_key.into()];
    rows::built_once(&SQL, backend, || build_natural_key_select(backend, Uuid::nil(), "", ""), values)
}

fn build_natural_key_select(backend: sea_orm::DbBackend, flow_run_id: Uuid, task_key: &str, dynamic_key: &str) -> Statement {
    let select = with_state()
        .filter(task_run::Column::FlowRunId.eq(flow_run_id))
        .filter(task_run::Column::TaskKey.eq(task_key))
        .filter(task_run::Column::DynamicKey.eq(dynamic_key));
    sea_orm::QueryTrait::build(&select, backend)
}

/// The task run with this `(flow_run_id, task_key, dynamic_key)`.
pub async fn find_by_natural_key(
    c: &impl ConnectionTrait,
    flow_run_id: Option<Uuid>,
    task_key: &str,
    dynamic_key: &str,
    now: DateTime,
) -> Result<Option<TaskRun>> {
    let Some(flow_run_id) = flow_run_id else {
        return Ok(None);
    };
    let found = rows::one(c, natural_key_select(c.get_database_backend(), flow_run_id, task_key, dynamic_key)).await?;
    match found {
        Some(row) => Ok(hydrate(vec![row], now)?.pop()),
        None => Ok(None),
    }
}

fn hydrate(rows: Vec<RunWithState>, now: DateTime) -> Result<Vec<TaskRun>> {
    rows.into_iter()
        .map(|(m, state)| {
            let state = state.map(convert::task_run_state).transpose()?;
            let mut run = convert::task_run(m, state)?;
            run.compute_estimates(now);
            Ok(run)
        })
        .collect()
}

fn with_state() -> sea_orm::SelectTwo<task_run::Entity, task_run_state::Entity> {
    task_run::Entity::find().find_also_related(task_run_state::Entity)
}

/// A task run with its current state: one row of a [`with_state`] select, decoded by
/// column position through [`rows::select_all`] and [`rows::select_one`].
type RunWithState = (task_run::Model, Option<task_run_state::Model>);

/// Positions are the `Column` enums' order: the task run's columns, then its state's
/// (`task_run_positional_decoding_matches_sea_orms` checks this).
impl rows::Decoded for RunWithState {
    fn decode(row: &impl PositionalRow) -> std::result::Result<Self, sea_orm::TryGetError> {
        use task_run::Column as R;
        use task_run_state::Column as S;
        let run = task_run::Model {
            id: row.at(R::Id as usize)?,
            created: row.at(R::Created as usize)?,
            updated: row.at(R::Updated as usize)?,
            flow_run_id: row.at(R::FlowRunId as usize)?,
            task_key: row.at(R::TaskKey as usize)?,
            dynamic_key: row.at(R::DynamicKey as usize)?,
            cache_key: row.at(R::CacheKey as usize)?,
            cache_expiration: row.at(R::CacheExpiration as usize)?,
            task_version: row.at(R::TaskVersion as usize)?,
            flow_run_run_count: row.at(R::FlowRunRunCount as usize)?,
            empirical_policy: row.at(R::EmpiricalPolicy as usize)?,
            task_inputs: row.at(R::TaskInputs as usize)?,
            tags: row.at(R::Tags as usize)?,
            labels: row.at(R::Labels as usize)?,
            state_id: row.at(R::StateId as usize)?,
            name: row.at(R::Name as usize)?,
            state_type: row.at(R::StateType as usize)?,
            state_name: row.at(R::StateName as usize)?,
            state_timestamp: row.at(R::StateTimestamp as usize)?,
            run_count: row.at(R::RunCount as usize)?,
            expected_start_time: row.at(R::ExpectedStartTime as usize)?,
            next_scheduled_start_time: row.at(R::NextScheduledStartTime as usize)?,
            start_time: row.at(R::StartTime as usize)?,
            end_time: row.at(R::EndTime as usize)?,
            total_run_time: row.at(R::TotalRunTime as usize)?,
        };
        let base = state_offset();
        let state_id: Option<Uuid> = row.at(base + S::Id as usize)?;
        let state = match state_id {
            // The LEFT JOIN found no state.
            None => None,
            Some(id) => Some(task_run_state::Model {
                id,
                created: row.at(base + S::Created as usize)?,
                updated: row.at(base + S::Updated as usize)?,
                task_run_id: row.at(base + S::TaskRunId as usize)?,
                kind: row.at(base + S::Kind as usize)?,
                timestamp: row.at(base + S::Timestamp as usize)?,
                name: row.at(base + S::Name as usize)?,
                message: row.at(base + S::Message as usize)?,
                state_details: row.at(base + S::StateDetails as usize)?,
                data: row.at(base + S::Data as usize)?,
                result_artifact_id: row.at(base + S::ResultArtifactId as usize)?,
            }),
        };
        Ok((run, state))
    }
}

/// How many columns a task run has: where the state's columns start in a [`with_state`] row.
fn state_offset() -> usize {
    static OFFSET: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *OFFSET.get_or_init(|| <task_run::Column as sea_orm::Iterable>::iter().count())
}

fn sort_columns(sort: TaskRunSort) -> Vec<(SimpleExpr, Order)> {
    use task_run::Column as C;
    let col = |c: C| Expr::col((task_run::Entity, c));
    match sort {
        TaskRunSort::IdDesc => vec![(col(C::Id), Order::Desc)],
        TaskRunSort::ExpectedStartTimeAsc => vec![(col(C::ExpectedStartTime), Order::Asc), (col(C::Id), Order::Asc)],
        TaskRunSort::ExpectedStartTimeDesc => vec![(col(C::ExpectedStartTime), Order::Desc), (col(C::Id), Order::Desc)],
        TaskRunSort::NameAsc => vec![(col(C::Name), Order::Asc), (col(C::Id), Order::Asc)],
        TaskRunSort::NameDesc => vec![(col(C::Name), Order::Desc), (col(C::Id), Order::Desc)],
        TaskRunSort::NextScheduledStartTimeAsc => vec![(col(C::NextScheduledStartTime), Order::Asc), (col(C::Id), Order::Asc)],
        TaskRunSort::EndTimeDesc => vec![(col(C::EndTime), Order::Desc), (col(C::Id), Order::Desc)],
        TaskRunSort::DurationDesc => vec![(col(C::TotalRunTime), Order::Desc), (col(C::ExpectedStartTime), Order::Desc), (col(C::Id), Order::Desc)],
        TaskRunSort::DurationAsc => vec![(col(C::TotalRunTime), Order::Asc), (col(C::ExpectedStartTime), Order::Desc), (col(C::Id), Order::Desc)],
    }
}

pub async fn filter(
    c: &impl ReadConnection,
    backend: Backend,
    filters: &RunFilters,
    sort: TaskRunSort,
    limit: u64,
    offset: u64,
    now: DateTime,
) -> Result<Vec<TaskRun>> {
    let mut select = with_state().filter(query::task_runs_page_matching(backend, filters));
    for (expr, order) in sort_columns(sort) {
        select = select.order_by(expr, order);
    }
    let rows = rows::select_all(c, &select.limit(limit).offset(offset)).await?;
    hydrate(rows, now)
}

pub async fn count(c: &impl ConnectionTrait, backend: Backend, filters: &RunFilters) -> Result<u64> {
    Ok(task_run::Entity::find().filter(query::task_runs_matching(backend, filters)).count(c).await?)
}

pub async fn update_name(c: &impl ConnectionTrait, id: Uuid, name: &str, now: DateTime) -> Result<bool> {
    let model = task_run::ActiveModel { updated: Set(now), name: Set(name.to_owned()), ..Default::default() };
    Ok(task_run::Entity::update_many().set(model).filter(task_run::Column::Id.eq(id)).exec(c).await?.rows_affected > 0)
}

pub async fn delete(c: &impl ConnectionTrait, id: Uuid) -> Result<bool> {
    Ok(task_run::Entity::delete_by_id(id).exec(c).await?.rows_affected > 0)
}

/// What a transition changed in a task run's bookkeeping, as one of several writes sent
/// together: only the columns that differ from `before`, which must be the row as the
/// same transaction read it (see [`crate::flow_runs::push_bookkeeping_changes`]).
pub fn push_bookkeeping_changes(writes: &mut RowWrites, id: Uuid, before: (&RunBookkeeping, i64), after: (&RunBookkeeping, i64), now: DateTime) {
    let ((b, b_count), (a, a_count)) = (before, after);
    let state_type = |r: &RunBookkeeping| r.state_type.map(|t| t.as_str().to_owned());
    let model = task_run::ActiveModel {
        updated: Set(now),
        state_id: changed(&b.state_id, &a.state_id),
        state_type: changed(&state_type(b), &state_type(a)),
        state_name: changed(&b.state_name, &a.state_name),
        state_timestamp: changed(&b.state_timestamp, &a.state_timestamp),
        run_count: changed(&b.run_count, &a.run_count),
        flow_run_run_count: changed(&b_count, &a_count),
        start_time: changed(&b.start_time, &a.start_time),
        end_time: changed(&b.end_time, &a.end_time),
        total_run_time: changed(&b.total_run_time, &a.total_run_time),
        expected_start_time: changed(&b.expected_start_time, &a.expected_start_time),
        next_scheduled_start_time: changed(&b.next_scheduled_start_time, &a.next_scheduled_start_time),
        ..Default::default()
    };
    writes.update_one(&task_run::Entity::update_many().set(model).filter(task_run::Column::Id.eq(id)), "Task run");
}

/// Writes orchestration-owned columns back after a transition.
pub async fn write_bookkeeping(c: &impl ConnectionTrait, id: Uuid, b: &RunBookkeeping, flow_run_run_count: i64, now: DateTime) -> Result<()> {
    let mut writes = RowWrites::on(c);
    push_bookkeeping(&mut writes, id, b, flow_run_run_count, now);
    writes.execute(c).await
}

/// [`write_bookkeeping`], as one of several writes sent together.
pub fn push_bookkeeping(writes: &mut RowWrites, id: Uuid, b: &RunBookkeeping, flow_run_run_count: i64, now: DateTime) {
    let model = task_run::ActiveModel { updated: Set(now), ..bookkeeping_columns(b, flow_run_run_count) };
    writes.update_one(&task_run::Entity::update_many().set(model).filter(task_run::Column::Id.eq(id)), "Task run");
}

fn state_model(task_run_id: Uuid, state: &State, result_artifact_id: Option<Uuid>, now: DateTime) -> task_run_state::ActiveModel {
    task_run_state::ActiveModel {
        id: Set(state.id),
        created: Set(now),
        updated: Set(now),
        task_run_id: Set(task_run_id),
        kind: Set(state.state_type.as_str().to_owned()),
        timestamp: Set(state.timestamp),
        name: Set(state.name().to_owned()),
        message: Set(state.message.clone()),
        state_details: Set(TypedJson(state.state_details.clone())),
        data: Set(state.data.clone()),
        result_artifact_id: Set(result_artifact_id),
    }
}

pub async fn insert_state(c: &impl ConnectionTrait, task_run_id: Uuid, state: &State, result_artifact_id: Option<Uuid>, now: DateTime) -> Result<()> {
    let mut writes = RowWrites::on(c);
    push_state(&mut writes, task_run_id, state, result_artifact_id, now);
    writes.execute(c).await
}

/// [`insert_state`], as one of several writes sent together.
pub fn push_state(writes: &mut RowWrites, task_run_id: Uuid, state: &State, result_artifact_id: Option<Uuid>, now: DateTime) {
    writes.insert(&task_run_state::Entity::insert(state_model(task_run_id, state, result_artifact_id, now)));
}

pub async fn read_state(c: &impl ConnectionTrait, id: Uuid) -> Result<Option<State>> {
    task_run_state::Entity::find_by_id(id).one(c).await?.map(convert::task_run_state).transpose()
}

pub async fn states_of(c: &impl ConnectionTrait, task_run_id: Uuid) -> Result<Vec<State>> {
    task_run_state::Entity::find()
        .filter(task_run_state::Column::TaskRunId.eq(task_run_id))
        .order_by(task_run_state::Column::Timestamp, Order::Asc)
        .all(c)
        .await?
        .into_iter()
        .map(convert::task_run_state)
        .collect()
}

/// Records a state in the task cache.
pub async fn insert_cache_entry(c: &impl ConnectionTrait, cache_key: &str, expiration: Option<DateTime>, state_id: Uuid, now: DateTime) -> Result<()> {
    let model = task_run_state_cache::ActiveModel {
        id: Set(Uuid::now_v7()),
        created: Set(now),
        updated: Set(now),
        cache_key: Set(cache_key.to_owned()),
        cache_expiration: Set(expiration),
        task_run_state_id: Set(state_id),
    };
    task_run_state_cache::Entity::insert(model).exec_without_returning(c).await?;
    Ok(())
}

/// The newest unexpired cached state for a key.
pub async fn read_cached_state(c: &impl ConnectionTrait, cache_key: &str, now: DateTime) -> Result<Option<State>> {
    let entries: Vec<Uuid> = task_run_state_cache::Entity::find()
        .select_only()
        .column(task_run_state_cache::Column::TaskRunStateId)
        .filter(task_run_state_cache::Column::CacheKey.eq(cache_key))
        .filter(
            sea_orm::Condition::any().add(task_run_state_cache::Column::CacheExpiration.is_null()).add(task_run_state_cache::Column::CacheExpiration.gt(now)),
        )
        .order_by(task_run_state_cache::Column::Created, Order::Desc)
        .limit(1)
        .into_tuple()
        .all(c)
        .await?;
    match entries.first() {
        Some(state_id) => read_state(c, *state_id).await,
        None => Ok(None),
    }
}

/// A task run and one of its states, as reported by a client event.
#[derive(Debug, Clone)]
pub struct RecordedTaskRun {
    pub run: NewTaskRun,
    pub bookkeeping: RunBookkeeping,
    pub flow_run_run_count: i64,
    pub state: State,
}

/// Upserts task runs reported by client events and inserts their states.
///
/// Out-of-order and repeated events are safe: a row is only overwritten by a
/// report with a newer state timestamp, and states are inserted once. A report
/// whose natural key `(flow_run_id, task_key, dynamic_key)` already belongs to
/// another id is recorded under the existing id. Reports for flow runs that do
/// not exist are skipped. Returns how many reports were recorded.
pub async fn record(c: &impl ConnectionTrait, mut reports: Vec<RecordedTaskRun>, now: DateTime) -> Result<usize> {
    if reports.is_empty() {
        return Ok(0);
    }
    reports.sort_by_key(|r| r.state.timestamp);

    let flow_run_ids: HashSet<Uuid> = reports.iter().filter_map(|r| r.run.flow_run_id).collect();
    let existing_flow_runs: HashSet<Uuid> = if flow_run_ids.is_empty() {
        HashSet::new()
    } else {
        flow_run::Entity::find()
            .select_only()
            .column(flow_run::Column::Id)
            .filter(flow_run::Column::Id.is_in(flow_run_ids))
            .into_tuple::<Uuid>()
            .all(c)
            .await?
            .into_iter()
            .collect()
    };
    reports.retain(|r| r.run.flow_run_id.is_none_or(|id| existing_flow_runs.contains(&id)));
    if reports.is_empty() {
        return Ok(0);
    }

    // Map natural keys to the ids already stored, so a new id never collides with an existing row.
    let mut canonical: HashMap<(Uuid, String, String), Uuid> = HashMap::new();
    let ids: Vec<Uuid> = reports.iter().map(|r| r.run.id).collect();
    let existing_by_id: HashSet<Uuid> = task_run::Entity::find()
        .select_only()
        .column(task_run::Column::Id)
        .filter(task_run::Column::Id.is_in(ids))
        .into_tuple::<Uuid>()
        .all(c)
        .await?
        .into_iter()
        .collect();
    let unknown_flow_runs: HashSet<Uuid> = reports.iter().filter(|r| !existing_by_id.contains(&r.run.id)).filter_map(|r| r.run.flow_run_id).collect();
    if !unknown_flow_runs.is_empty() {
        let rows: Vec<(Uuid, Option<Uuid>, String, String)> = task_run::Entity::find()
            .select_only()
            .column(task_run::Column::Id)
            .column(task_run::Column::FlowRunId)
            .column(task_run::Column::TaskKey)
            .column(task_run::Column::DynamicKey)
            .filter(task_run::Column::FlowRunId.is_in(unknown_flow_runs))
            .into_tuple()
            .all(c)
            .await?;
        for (id, flow_run_id, task_key, dynamic_key) in rows {
            if let Some(flow_run_id) = flow_run_id {
                canonical.insert((flow_run_id, task_key, dynamic_key), id);
            }
        }
    }
    for report in &mut reports {
        if let Some(flow_run_id) = report.run.flow_run_id {
            let key = (flow_run_id, report.run.task_key.clone(), report.run.dynamic_key.clone());
            let id = *canonical.entry(key).or_insert(report.run.id);
            report.run.id = id;
            report.state.state_details.task_run_id = Some(id);
        }
    }

    // One row per task run: the newest report wins (reports are sorted by state time).
    let mut latest: HashMap<Uuid, usize> = HashMap::new();
    for (i, report) in reports.iter().enumerate() {
        latest.insert(report.run.id, i);
    }
    let mut rows: Vec<usize> = latest.into_values().collect();
    rows.sort_unstable();
    let models: Vec<task_run::ActiveModel> =
        rows.iter().map(|&i| active_model(&reports[i].run, &reports[i].bookkeeping, reports[i].flow_run_run_count, now)).collect();
    let updated = [
        task_run::Column::Updated,
        task_run::Column::Name,
        task_run::Column::CacheKey,
        task_run::Column::CacheExpiration,
        task_run::Column::TaskVersion,
        task_run::Column::FlowRunRunCount,
        task_run::Column::EmpiricalPolicy,
        task_run::Column::TaskInputs,
        task_run::Column::Tags,
        task_run::Column::Labels,
        task_run::Column::StateId,
        task_run::Column::StateType,
        task_run::Column::StateName,
        task_run::Column::StateTimestamp,
        task_run::Column::RunCount,
        task_run::Column::ExpectedStartTime,
        task_run::Column::NextScheduledStartTime,
        task_run::Column::StartTime,
        task_run::Column::EndTime,
        task_run::Column::TotalRunTime,
    ];
    let newer = Expr::col((task_run::Entity, task_run::Column::StateTimestamp))
        .is_null()
        .or(Expr::col((task_run::Entity, task_run::Column::StateTimestamp)).lt(Expr::cust("excluded.state_timestamp")));
    for chunk in models.chunks(200) {
        task_run::Entity::insert_many(chunk.to_vec())
            .on_conflict(OnConflict::column(task_run::Column::Id).update_columns(updated).action_and_where(newer.clone()).to_owned())
            .exec_without_returning(c)
            .await?;
    }

    let states: Vec<task_run_state::ActiveModel> = reports.iter().map(|r| state_model(r.run.id, &r.state, None, now)).collect();
    for chunk in states.chunks(500) {
        task_run_state::Entity::insert_many(chunk.to_vec()).on_conflict(OnConflict::new().do_nothing().to_owned()).exec_without_returning(c).await?;
    }
    Ok(reports.len())
}

pub async fn history_rows(
    c: &impl ConnectionTrait,
    backend: Backend,
    filters: &RunFilters,
    start: DateTime,
    end: DateTime,
) -> Result<Vec<crate::flow_runs::HistoryRow>> {
    use task_run::Column as C;
    /// expected start, state type, state name, total run time, start, state timestamp
    type Row = (Option<DateTime>, Option<String>, Option<String>, f64, Option<DateTime>, Option<DateTime>);
    let rows: Vec<Row> = task_run::Entity::find()
        .select_only()
        .columns([C::ExpectedStartTime, C::StateType, C::StateName, C::TotalRunTime, C::StartTime, C::StateTimestamp])
        .filter(query::task_runs_matching(backend, filters))
        .filter(C::ExpectedStartTime.gte(start))
        .filter(C::ExpectedStartTime.lt(end))
        .into_tuple()
        .all(c)
        .await?;
    rows.into_iter().filter_map(|r| crate::flow_runs::history_row(r).transpose()).collect()
}

/// Ids of task runs of a flow run, newest last (for cancellation and graphs).
pub async fn of_flow_run(c: &impl ReadConnection, flow_run_id: Uuid, now: DateTime) -> Result<Vec<TaskRun>> {
    let rows = rows::select_all(c, &with_state().filter(task_run::Column::FlowRunId.eq(flow_run_id)).order_by(task_run::Column::ExpectedStartTime, Order::Asc))
        .await?;
    hydrate(rows, now)
}

/// Ids of a flow run's task runs that have not finished (at most `limit`).
pub async fn unfinished_of_flow_run(c: &impl ConnectionTrait, flow_run_id: Uuid, limit: u64) -> Result<Vec<Uuid>> {
    Ok(task_run::Entity::find()
        .select_only()
        .column(task_run::Column::Id)
        .filter(task_run::Column::FlowRunId.eq(flow_run_id))
        .filter(task_run::Column::StateType.is_in(["SCHEDULED", "PENDING", "RUNNING", "PAUSED", "CANCELLING"]))
        .limit(limit)
        .into_tuple()
        .all(c)
        .await?)
}

/// Matching task runs per state type (`None` for runs without a state).
pub async fn count_by_state_type(c: &impl ConnectionTrait, backend: Backend, filters: &RunFilters) -> Result<Vec<(Option<String>, i64)>> {
    use task_run::Column as C;
    Ok(task_run::Entity::find()
        .select_only()
        .column(C::StateType)
        .column_as(C::Id.count(), "count")
        .filter(query::task_runs_matching(backend, filters))
        .group_by(C::StateType)
        .into_tuple()
        .all(c)
        .await?)
}

/// Start time and state type of every matching task run (the UI dashboard buckets them).
pub async fn start_times_and_state_types(c: &impl ConnectionTrait, backend: Backend, filters: &RunFilters) -> Result<Vec<(Option<DateTime>, Option<String>)>> {
    use task_run::Column as C;
    Ok(task_run::Entity::find()
        .select_only()
        .columns([C::StartTime, C::StateType])
        .filter(query::task_runs_matching(backend, filters))
        .into_tuple()
        .all(c)
        .await?)
}

/// Matching task runs per flow run.
pub async fn count_by_flow_run(c: &impl ConnectionTrait, backend: Backend, filters: &RunFilters) -> Result<Vec<(Uuid, i64)>> {
    use task_run::Column as C;
    let rows: Vec<(Option<Uuid>, i64)> = task_run::Entity::find()
        .select_only()
        .column(C::FlowRunId)
        .column_as(C::Id.count(), "count")
        .filter(query::task_runs_matching(backend, filters))
        .group_by(C::FlowRunId)
        .into_tuple()
        .all(c)
        .await?;
    Ok(rows.into_iter().filter_map(|(id, n)| id.map(|id| (id, n))).collect())
}

#[cfg(test)]
mod tests {
    use prefect_domain::state::StateType;
    use prefect_domain::time;
    use sea_orm::QueryOrder;

    use super::*;
    use crate::test_support::migrated_sqlite;

    /// The reads by key built once per backend are the statements sea-query builds.
    #[test]
    fn the_reads_built_once_are_the_ones_sea_query_builds() {
        for backend in [Backend::Sqlite, Backend::Postgres] {
            let id = Uuid::now_v7();
            let (built, cached) = (build_for_update_select(backend, id), for_update_select(backend, id));
            assert_eq!((cached.sql, cached.values, cached.db_backend), (built.sql, built.values, built.db_backend));
            let (built, cached) = (build_natural_key_select(backend.into(), id, "task", "7"), natural_key_select(backend.into(), id, "task", "7"));
            assert_eq!((cached.sql, cached.values, cached.db_backend), (built.sql, built.values, built.db_backend));
        }
    }

    fn new_task_run(id: Uuid, dynamic_key: &str) -> NewTaskRun {
        NewTaskRun {
            id,
            flow_run_id: None,
            name: "a-task".into(),
            task_key: "k".into(),
            dynamic_key: dynamic_key.into(),
            cache_key: None,
            cache_expiration: None,
            task_version: None,
            empirical_policy: TaskRunPolicy::default(),
            tags: vec!["t".into()],
            labels: None,
            task_inputs: Map::new(),
        }
    }

    /// Task runs decode by column position: through SeaORM and on the direct readers, the
    /// same models as SeaORM's decoding by name, with and without a state.
    #[tokio::test]
    async fn task_run_positional_decoding_matches_sea_orms() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = migrated_sqlite(&dir).await;
        let now = time::now();
        let (with, without) = (Uuid::now_v7(), Uuid::now_v7());
        let state = State::new(StateType::Completed, now);
        let bookkeeping = RunBookkeeping { state_id: Some(state.id), state_type: Some(StateType::Completed), state_timestamp: Some(now), ..Default::default() };
        let txn = db.begin_write().await.unwrap();
        let mut writes = RowWrites::on(&txn);
        push_insert(&mut writes, &new_task_run(with, "0"), &bookkeeping, 1, now);
        push_state(&mut writes, with, &state, None, now);
        push_insert(&mut writes, &new_task_run(without, "1"), &RunBookkeeping::default(), 0, now);
        writes.execute(&txn).await.unwrap();
        txn.execute_unprepared(
            r#"UPDATE task_run SET cache_key = 'ck', cache_expiration = state_timestamp, task_version = 'v', labels = '{"l": "v"}',
                expected_start_time = state_timestamp, start_time = state_timestamp, end_time = state_timestamp, total_run_time = 2.5
                WHERE state_id IS NOT NULL"#,
        )
        .await
        .unwrap();
        txn.execute_unprepared(r#"UPDATE task_run_state SET message = 'm', data = '{"d": 1}'"#).await.unwrap();
        crate::commit(txn).await.expect("commit");

        let by_name = with_state().order_by(task_run::Column::Id, Order::Asc).all(db.reader()).await.unwrap();
        assert_eq!(by_name.len(), 2);
        assert!(by_name[0].1.as_ref().is_some_and(|s| s.message.as_deref() == Some("m")));
        assert!(by_name[1].1.is_none());
        let select = || with_state().filter(task_run::Column::Created.lte(now)).order_by(task_run::Column::Id, Order::Asc).limit(10);
        assert_eq!(rows::select_all::<RunWithState>(db.reader(), &select()).await.unwrap(), by_name, "through SeaORM");
        let statement = sea_orm::QueryTrait::build(&select(), sea_orm::DatabaseBackend::Sqlite);
        let direct = db.reads().direct().cloned().expect("a SQLite file has direct readers");
        let stepped = direct.all(&statement, |row| <RunWithState as rows::Decoded>::decode(row)).await.unwrap().expect("every bound value encodes");
        assert_eq!(stepped, by_name, "on the direct readers");
        assert_eq!(
            rows::select_one::<RunWithState>(db.reader(), &with_state().filter(task_run::Column::Id.eq(without))).await.unwrap().as_ref(),
            Some(&by_name[1])
        );
    }
}
