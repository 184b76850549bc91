//! Translating the filter grammar into SQL conditions, for both backends.
//!
//! Cross-entity criteria become `IN (subquery)` conditions (a flow run filter
//! with `flows.name.any_` selects runs whose `flow_id` is in the matching
//! flows), which the indexes on the foreign-key columns serve. Tag criteria
//! are JSON operations and so differ per backend: `@>` on PostgreSQL's JSONB,
//! `json_each` on SQLite.

use prefect_domain::automation::AutomationFilter;
use prefect_domain::filters::{
    ArtifactFilter, BoolFilter, CreatedByFilter, DateTimeFilter, DeploymentFilter, FlowFilter, FlowRunFilter, IdFilter, IntFilter, LogFilter, NullableIdFilter,
    Operator, RunFilters, StateFilter, StringFilter, TagsFilter, TaskRunFilter, WorkPoolFilter, WorkQueueFilter,
};
use prefect_domain::state::StateType;
use prefect_domain::variable::VariableFilter;
use sea_orm::sea_query::{Condition, Expr, ExprTrait, SelectStatement};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect, QueryTrait, Value};

use crate::db::Backend;
use crate::entity::{artifact, automation, deployment, flow, flow_run, log, task_run, variable, work_pool, work_queue};

pub(crate) fn combine(operator: Operator, conditions: Vec<Condition>) -> Condition {
    let mut out = match operator {
        Operator::And => Condition::all(),
        Operator::Or => Condition::any(),
    };
    for c in conditions {
        out = out.add(c);
    }
    out
}

fn expr(e: Expr) -> Condition {
    Condition::all().add(e)
}

fn quoted(table: &str, column: &str) -> String {
    format!("\"{table}\".\"{column}\"")
}

fn ids_condition<C: ColumnTrait>(column: C, f: &IdFilter) -> Vec<Condition> {
    let mut out = Vec::new();
    if let Some(any) = &f.any_ {
        out.push(expr(column.into_expr().is_in(any.iter().copied())));
    }
    if let Some(not_any) = &f.not_any_ {
        out.push(expr(column.into_expr().is_not_in(not_any.iter().copied())));
    }
    out
}

fn nullable_ids_condition<C: ColumnTrait>(column: C, f: &NullableIdFilter) -> Condition {
    let mut out = Vec::new();
    if let Some(any) = &f.any_ {
        out.push(expr(column.into_expr().is_in(any.iter().copied())));
    }
    if let Some(is_null) = f.is_null_ {
        out.push(expr(if is_null { column.into_expr().is_null() } else { column.into_expr().is_not_null() }));
    }
    combine(f.operator, out)
}

fn like(backend: Backend, column_sql: &str, needle: &str) -> Condition {
    let pattern = format!("%{needle}%");
    expr(match backend {
        Backend::Postgres => Expr::cust_with_values(format!("{column_sql} ILIKE $1"), [pattern]),
        Backend::Sqlite => Expr::cust_with_values(format!("{column_sql} LIKE ?"), [pattern]),
    })
}

/// `table.column` contains `needle`, case-insensitively.
pub(crate) fn ilike(backend: Backend, table: &str, column: &str, needle: &str) -> Condition {
    like(backend, &quoted(table, column), needle)
}

fn strings_condition<C: ColumnTrait>(backend: Backend, table: &str, column: C, f: &StringFilter) -> Condition {
    let column_sql = quoted(table, column.as_str());
    let mut out = Vec::new();
    if let Some(any) = &f.any_ {
        out.push(expr(column.into_expr().is_in(any.iter().cloned())));
    }
    if let Some(not_any) = &f.not_any_ {
        out.push(expr(column.into_expr().is_not_in(not_any.iter().cloned())));
    }
    if let Some(needle) = &f.like_ {
        out.push(like(backend, &column_sql, needle));
    }
    if let Some(prefixes) = &f.startswith_ {
        let mut any = Condition::any();
        for prefix in prefixes {
            any = any.add(column.into_expr().like(format!("{prefix}%")));
        }
        out.push(any);
    }
    if let Some(is_null) = f.is_null_ {
        out.push(expr(if is_null { column.into_expr().is_null() } else { column.into_expr().is_not_null() }));
    }
    combine(f.operator, out)
}

fn datetimes_condition<C: ColumnTrait>(column: C, f: &DateTimeFilter) -> Vec<Condition> {
    let mut out = Vec::new();
    if let Some(before) = f.before_ {
        out.push(expr(column.into_expr().lte(before)));
    }
    if let Some(after) = f.after_ {
        out.push(expr(column.into_expr().gte(after)));
    }
    if let Some(is_null) = f.is_null_ {
        out.push(expr(if is_null { column.into_expr().is_null() } else { column.into_expr().is_not_null() }));
    }
    out
}

fn bool_condition<C: ColumnTrait>(column: C, f: &BoolFilter) -> Vec<Condition> {
    f.eq_.map(|v| expr(column.into_expr().eq(v))).into_iter().collect()
}

fn int_condition<C: ColumnTrait>(column: C, f: &IntFilter) -> Vec<Condition> {
    let mut out = Vec::new();
    if let Some(ge) = f.ge_ {
        out.push(expr(column.into_expr().gte(ge)));
    }
    if let Some(le) = f.le_ {
        out.push(expr(column.into_expr().lte(le)));
    }
    if let Some(is_null) = f.is_null_ {
        out.push(expr(if is_null { column.into_expr().is_null() } else { column.into_expr().is_not_null() }));
    }
    out
}

/// `tags` (a JSON array of strings) contains `tag`.
pub(crate) fn json_array_contains(backend: Backend, column_sql: &str, tag: &str) -> Expr {
    match backend {
        Backend::Postgres => Expr::cust_with_values(format!("{column_sql} @> $1"), [Value::Json(Some(Box::new(serde_json::json!([tag]))))]),
        Backend::Sqlite => Expr::cust_with_values(format!("EXISTS (SELECT 1 FROM json_each({column_sql}) WHERE json_each.value = ?)"), [tag]),
    }
}

fn json_array_is_empty(backend: Backend, column_sql: &str) -> Expr {
    match backend {
        Backend::Postgres => Expr::cust(format!("jsonb_array_length({column_sql}) = 0")),
        Backend::Sqlite => Expr::cust(format!("json_array_length({column_sql}) = 0")),
    }
}

pub(crate) fn tags_condition(backend: Backend, table: &str, column: &str, f: &TagsFilter) -> Condition {
    let column_sql = quoted(table, column);
    let mut out = Vec::new();
    if let Some(all) = &f.all_ {
        let mut every = Condition::all();
        for tag in all {
            every = every.add(json_array_contains(backend, &column_sql, tag));
        }
        out.push(every);
    }
    if let Some(any) = &f.any_ {
        let mut some = Condition::any();
        for tag in any {
            some = some.add(json_array_contains(backend, &column_sql, tag));
        }
        if any.is_empty() {
            some = some.add(Expr::cust("1 = 0"));
        }
        out.push(some);
    }
    if let Some(is_null) = f.is_null_ {
        let empty = json_array_is_empty(backend, &column_sql);
        out.push(if is_null { expr(empty) } else { Condition::all().not().add(empty) });
    }
    combine(f.operator, out)
}

/// Whether a state-type list is broad enough that the state-type index would lose to
/// walking the sort column's index (a UI page of "all but a few" states).
const UNSELECTIVE_STATE_TYPES: usize = 3;

/// `column IN (types)`. On SQLite an `IN` list is a temporary B-tree built on every
/// execution (`OpenEphemeral`, with a page-sized allocation); under a UI-page load that
/// allocation alone (glibc consolidating its free lists for it) was ~8 % of the server's
/// CPU. State types are few, so on SQLite the list becomes `column = a OR column = b …`,
/// evaluated in place. SQLite turns such a chain on an indexed column back into an index
/// lookup, so the plans are the ones `IN` gets.
fn one_of_state_types(backend: Backend, column: Expr, types: &[StateType]) -> Condition {
    if backend == Backend::Sqlite && !types.is_empty() {
        types.iter().fold(Condition::any(), |any, t| any.add(column.clone().eq(t.as_str())))
    } else {
        expr(column.is_in(types.iter().map(|t| t.as_str())))
    }
}

/// `for_sorted_page`: the condition filters a sorted, limited page. On SQLite an
/// `IN` over many state types then must not pick the state-type index: that plan sorts
/// every matching row, while walking the sort column's index stops after one page.
/// SQLite's sampled statistics cannot tell the two apart, so `+column` (which makes
/// the term unindexable) says it.
fn state_condition<T: ColumnTrait, N: ColumnTrait>(backend: Backend, type_column: T, name_column: N, f: &StateFilter, for_sorted_page: bool) -> Condition {
    let mut out = Vec::new();
    if let Some(types) = &f.state_type {
        if let Some(any) = &types.any_ {
            if for_sorted_page && backend == Backend::Sqlite && any.len() >= UNSELECTIVE_STATE_TYPES {
                let unindexed = Expr::cust(format!("+{}", quoted(type_column.entity_name().to_string().as_str(), type_column.as_str())));
                out.push(one_of_state_types(backend, unindexed, any));
            } else {
                out.push(one_of_state_types(backend, type_column.into_expr(), any));
            }
        }
        if let Some(not_any) = &types.not_any_ {
            out.push(expr(type_column.into_expr().is_not_in(not_any.iter().map(|t: &StateType| t.as_str()))));
        }
    }
    if let Some(names) = &f.name {
        if let Some(any) = &names.any_ {
            out.push(expr(name_column.into_expr().is_in(any.iter().cloned())));
        }
        if let Some(not_any) = &names.not_any_ {
            out.push(expr(name_column.into_expr().is_not_in(not_any.iter().cloned())));
        }
    }
    combine(f.operator, out)
}

fn created_by_condition(backend: Backend, f: &CreatedByFilter) -> Condition {
    let column_sql = quoted("flow_run", "created_by");
    let (id_path, type_path) = match backend {
        Backend::Postgres => (format!("({column_sql}->>'id')"), format!("({column_sql}->>'type')")),
        Backend::Sqlite => (format!("json_extract({column_sql}, '$.id')"), format!("json_extract({column_sql}, '$.type')")),
    };
    let mut out = Vec::new();
    if let Some(ids) = &f.id_ {
        let mut any = Condition::any().add(Expr::cust("1 = 0"));
        for id in ids {
            any = any.add(eq_text(backend, &id_path, id.to_string()));
        }
        out.push(any);
    }
    if let Some(types) = &f.type_ {
        let mut any = Condition::any().add(Expr::cust("1 = 0"));
        for t in types {
            any = any.add(eq_text(backend, &type_path, t.clone()));
        }
        out.push(any);
    }
    if let Some(is_null) = f.is_null_ {
        out.push(expr(Expr::cust(format!("{column_sql} IS {}NULL", if is_null { "" } else { "NOT " }))));
    }
    combine(f.operator, out)
}

fn eq_text(backend: Backend, sql: &str, value: String) -> Expr {
    match backend {
        Backend::Postgres => Expr::cust_with_values(format!("{sql} = $1"), [value]),
        Backend::Sqlite => Expr::cust_with_values(format!("{sql} = ?"), [value]),
    }
}

/// Conditions on `flow` rows.
pub fn flow_condition(backend: Backend, f: &FlowFilter) -> Condition {
    let mut out = Vec::new();
    if let Some(id) = &f.id {
        out.extend(ids_condition(flow::Column::Id, id));
    }
    if let Some(deployment) = &f.deployment
        && let Some(is_null) = deployment.is_null_
    {
        let with_deployments = deployment::Entity::find().select_only().column(deployment::Column::FlowId).into_query();
        out.push(expr(if is_null {
            flow::Column::Id.into_expr().not_in_subquery(with_deployments)
        } else {
            flow::Column::Id.into_expr().in_subquery(with_deployments)
        }));
    }
    if let Some(name) = &f.name {
        out.push(strings_condition(backend, "flow", flow::Column::Name, name));
    }
    if let Some(tags) = &f.tags {
        out.push(tags_condition(backend, "flow", "tags", tags));
    }
    combine(f.operator, out)
}

/// Conditions on `flow_run` rows from the flow run criteria alone.
pub fn flow_run_condition(backend: Backend, f: &FlowRunFilter) -> Condition {
    flow_run_condition_for(backend, f, false)
}

fn flow_run_condition_for(backend: Backend, f: &FlowRunFilter, for_sorted_page: bool) -> Condition {
    use flow_run::Column as C;
    let mut out = Vec::new();
    if let Some(id) = &f.id {
        out.extend(ids_condition(C::Id, id));
    }
    if let Some(name) = &f.name {
        out.push(strings_condition(backend, "flow_run", C::Name, name));
    }
    if let Some(tags) = &f.tags {
        out.push(tags_condition(backend, "flow_run", "tags", tags));
    }
    if let Some(d) = &f.deployment_id {
        out.push(nullable_ids_condition(C::DeploymentId, d));
    }
    if let Some(q) = &f.work_queue_name {
        out.push(strings_condition(backend, "flow_run", C::WorkQueueName, q));
    }
    if let Some(state) = &f.state {
        out.push(state_condition(backend, C::StateType, C::StateName, state, for_sorted_page));
    }
    if let Some(v) = &f.flow_version {
        out.push(strings_condition(backend, "flow_run", C::FlowVersion, v));
    }
    if let Some(t) = &f.start_time {
        out.extend(datetimes_condition(C::StartTime, t));
    }
    if let Some(t) = &f.end_time {
        out.extend(datetimes_condition(C::EndTime, t));
    }
    if let Some(t) = &f.expected_start_time {
        out.extend(datetimes_condition(C::ExpectedStartTime, t));
    }
    if let Some(t) = &f.next_scheduled_start_time {
        out.extend(datetimes_condition(C::NextScheduledStartTime, t));
    }
    if let Some(parent) = &f.parent_flow_run_id
        && let Some(any) = &parent.any_
    {
        // Runs whose parent task run belongs to one of these flow runs.
        let parents =
            task_run::Entity::find().select_only().column(task_run::Column::Id).filter(task_run::Column::FlowRunId.is_in(any.iter().copied())).into_query();
        out.push(expr(C::ParentTaskRunId.into_expr().in_subquery(parents)));
    }
    if let Some(p) = &f.parent_task_run_id {
        out.push(nullable_ids_condition(C::ParentTaskRunId, p));
    }
    if let Some(k) = &f.idempotency_key {
        out.push(strings_condition(backend, "flow_run", C::IdempotencyKey, k));
    }
    if let Some(c) = &f.created_by {
        out.push(created_by_condition(backend, c));
    }
    combine(f.operator, out)
}

/// Conditions on `task_run` rows from the task run criteria alone.
pub fn task_run_condition(backend: Backend, f: &TaskRunFilter) -> Condition {
    task_run_condition_for(backend, f, false)
}

fn task_run_condition_for(backend: Backend, f: &TaskRunFilter, for_sorted_page: bool) -> Condition {
    use task_run::Column as C;
    let mut out = Vec::new();
    if let Some(id) = &f.id {
        out.extend(ids_condition(C::Id, id));
    }
    if let Some(name) = &f.name {
        out.push(strings_condition(backend, "task_run", C::Name, name));
    }
    if let Some(tags) = &f.tags {
        out.push(tags_condition(backend, "task_run", "tags", tags));
    }
    if let Some(state) = &f.state {
        out.push(state_condition(backend, C::StateType, C::StateName, state, for_sorted_page));
    }
    if let Some(t) = &f.start_time {
        out.extend(datetimes_condition(C::StartTime, t));
    }
    if let Some(t) = &f.end_time {
        out.extend(datetimes_condition(C::EndTime, t));
    }
    if let Some(t) = &f.expected_start_time {
        out.extend(datetimes_condition(C::ExpectedStartTime, t));
    }
    if let Some(subflows) = &f.subflow_runs
        && let Some(exists) = subflows.exists_
    {
        let parents = flow_run::Entity::find()
            .select_only()
            .column(flow_run::Column::ParentTaskRunId)
            .filter(flow_run::Column::ParentTaskRunId.is_not_null())
            .into_query();
        out.push(expr(if exists { C::Id.into_expr().in_subquery(parents) } else { C::Id.into_expr().not_in_subquery(parents) }));
    }
    if let Some(fr) = &f.flow_run_id {
        let mut inner = Vec::new();
        if let Some(any) = &fr.any_ {
            inner.push(expr(C::FlowRunId.into_expr().is_in(any.iter().copied())));
        }
        if let Some(is_null) = fr.is_null_ {
            inner.push(expr(if is_null { C::FlowRunId.into_expr().is_null() } else { C::FlowRunId.into_expr().is_not_null() }));
        }
        out.push(combine(fr.operator, inner));
    }
    combine(f.operator, out)
}

/// Conditions on `deployment` rows.
pub fn deployment_condition(backend: Backend, f: &DeploymentFilter) -> Condition {
    use deployment::Column as C;
    let mut out = Vec::new();
    if let Some(id) = &f.id {
        out.extend(ids_condition(C::Id, id));
    }
    if let Some(name) = &f.name {
        out.push(strings_condition(backend, "deployment", C::Name, name));
    }
    if let Some(both) = &f.flow_or_deployment_name
        && let Some(needle) = &both.like_
    {
        let flows = flow::Entity::find().select_only().column(flow::Column::Id).filter(like(backend, &quoted("flow", "name"), needle)).into_query();
        out.push(Condition::any().add(like(backend, &quoted("deployment", "name"), needle)).add(C::FlowId.into_expr().in_subquery(flows)));
    }
    if let Some(paused) = &f.paused {
        out.extend(bool_condition(C::Paused, paused));
    }
    if let Some(tags) = &f.tags {
        out.push(tags_condition(backend, "deployment", "tags", tags));
    }
    if let Some(q) = &f.work_queue_name {
        out.push(strings_condition(backend, "deployment", C::WorkQueueName, q));
    }
    if let Some(limit) = &f.concurrency_limit {
        out.extend(int_condition(C::ConcurrencyLimit, limit));
    }
    combine(f.operator, out)
}

/// Conditions on `work_pool` rows.
pub fn work_pool_condition(backend: Backend, f: &WorkPoolFilter) -> Condition {
    let mut out = Vec::new();
    if let Some(id) = &f.id {
        out.extend(ids_condition(work_pool::Column::Id, id));
    }
    if let Some(name) = &f.name {
        out.push(strings_condition(backend, "work_pool", work_pool::Column::Name, name));
    }
    if let Some(kind) = &f.kind {
        out.push(strings_condition(backend, "work_pool", work_pool::Column::Kind, kind));
    }
    combine(f.operator, out)
}

/// Conditions on `work_queue` rows.
pub fn work_queue_condition(backend: Backend, f: &WorkQueueFilter) -> Condition {
    let mut out = Vec::new();
    if let Some(id) = &f.id {
        out.extend(ids_condition(work_queue::Column::Id, id));
    }
    if let Some(name) = &f.name {
        out.push(strings_condition(backend, "work_queue", work_queue::Column::Name, name));
    }
    combine(f.operator, out)
}

fn select_ids<E: EntityTrait, C: ColumnTrait>(column: C, condition: Condition) -> SelectStatement {
    E::find().select_only().column(column).filter(condition).into_query()
}

fn work_queue_ids_of_pools(backend: Backend, pools: &WorkPoolFilter) -> SelectStatement {
    let pool_ids = select_ids::<work_pool::Entity, _>(work_pool::Column::Id, work_pool_condition(backend, pools));
    select_ids::<work_queue::Entity, _>(work_queue::Column::Id, expr(work_queue::Column::WorkPoolId.into_expr().in_subquery(pool_ids)))
}

/// Conditions selecting flow runs that match every entity filter given.
pub fn flow_runs_matching(backend: Backend, filters: &RunFilters) -> Condition {
    flow_runs_matching_for(backend, filters, false)
}

/// [`flow_runs_matching`] for a sorted, limited page (see `state_condition`).
pub fn flow_runs_page_matching(backend: Backend, filters: &RunFilters) -> Condition {
    flow_runs_matching_for(backend, filters, true)
}

fn flow_runs_matching_for(backend: Backend, filters: &RunFilters, for_sorted_page: bool) -> Condition {
    let mut cond = Condition::all();
    if let Some(f) = &filters.flow_runs {
        cond = cond.add(flow_run_condition_for(backend, f, for_sorted_page));
    }
    if let Some(f) = &filters.flows {
        let ids = select_ids::<flow::Entity, _>(flow::Column::Id, flow_condition(backend, f));
        cond = cond.add(flow_run::Column::FlowId.into_expr().in_subquery(ids));
    }
    if let Some(f) = &filters.deployments {
        let ids = select_ids::<deployment::Entity, _>(deployment::Column::Id, deployment_condition(backend, f));
        cond = cond.add(flow_run::Column::DeploymentId.into_expr().in_subquery(ids));
    }
    if let Some(f) = &filters.task_runs {
        let ids = select_ids::<task_run::Entity, _>(task_run::Column::FlowRunId, task_run_condition(backend, f));
        cond = cond.add(flow_run::Column::Id.into_expr().in_subquery(ids));
    }
    if let Some(f) = &filters.work_pools {
        cond = cond.add(flow_run::Column::WorkQueueId.into_expr().in_subquery(work_queue_ids_of_pools(backend, f)));
    }
    if let Some(f) = &filters.work_pool_queues {
        let ids = select_ids::<work_queue::Entity, _>(work_queue::Column::Id, work_queue_condition(backend, f));
        cond = cond.add(flow_run::Column::WorkQueueId.into_expr().in_subquery(ids));
    }
    cond
}

/// Whether any criterion other than the flow run's own is present (a join is needed).
fn has_cross_run_filters(filters: &RunFilters) -> bool {
    filters.flows.is_some()
        || filters.deployments.is_some()
        || filters.task_runs.is_some()
        || filters.work_pools.is_some()
        || filters.work_pool_queues.is_some()
}

/// Conditions selecting task runs that match every entity filter given.
pub fn task_runs_matching(backend: Backend, filters: &RunFilters) -> Condition {
    task_runs_matching_for(backend, filters, false)
}

/// [`task_runs_matching`] for a sorted, limited page (see `state_condition`).
pub fn task_runs_page_matching(backend: Backend, filters: &RunFilters) -> Condition {
    task_runs_matching_for(backend, filters, true)
}

fn task_runs_matching_for(backend: Backend, filters: &RunFilters, for_sorted_page: bool) -> Condition {
    let mut cond = Condition::all();
    if let Some(f) = &filters.task_runs {
        cond = cond.add(task_run_condition_for(backend, f, for_sorted_page));
    }
    let run_filters = RunFilters { task_runs: None, ..filters.clone() };
    if run_filters.flow_runs.is_some() || has_cross_run_filters(&run_filters) {
        let ids = select_ids::<flow_run::Entity, _>(flow_run::Column::Id, flow_runs_matching(backend, &run_filters));
        cond = cond.add(task_run::Column::FlowRunId.into_expr().in_subquery(ids));
    }
    cond
}

/// Conditions selecting flows that match every entity filter given.
pub fn flows_matching(backend: Backend, filters: &RunFilters) -> Condition {
    let mut cond = Condition::all();
    if let Some(f) = &filters.flows {
        cond = cond.add(flow_condition(backend, f));
    }
    let run_filters = RunFilters { flows: None, deployments: None, ..filters.clone() };
    if run_filters.flow_runs.is_some() || has_cross_run_filters(&run_filters) {
        let ids = select_ids::<flow_run::Entity, _>(flow_run::Column::FlowId, flow_runs_matching(backend, &run_filters));
        cond = cond.add(flow::Column::Id.into_expr().in_subquery(ids));
    }
    if let Some(f) = &filters.deployments {
        let ids = select_ids::<deployment::Entity, _>(deployment::Column::FlowId, deployment_condition(backend, f));
        cond = cond.add(flow::Column::Id.into_expr().in_subquery(ids));
    }
    cond
}

/// Conditions on `log` rows.
pub fn log_condition(backend: Backend, f: &LogFilter) -> Condition {
    use log::Column as C;
    let mut out = Vec::new();
    if let Some(level) = &f.level {
        out.extend(int_condition(C::Level, level));
    }
    if let Some(t) = &f.timestamp {
        out.extend(datetimes_condition(C::Timestamp, t));
    }
    if let Some(ids) = &f.flow_run_id {
        out.extend(ids_condition(C::FlowRunId, ids));
    }
    if let Some(ids) = &f.task_run_id {
        out.push(nullable_ids_condition(C::TaskRunId, ids));
    }
    if let Some(text) = &f.text {
        let mut any = Condition::any();
        for term in text.query.split_whitespace() {
            any = any.add(like(backend, &quoted("log", "message"), term)).add(like(backend, &quoted("log", "name"), term));
        }
        out.push(any);
    }
    combine(f.operator, out)
}

/// Conditions on `artifact` rows.
pub fn artifact_condition(backend: Backend, f: &ArtifactFilter) -> Condition {
    use artifact::Column as C;
    let mut out = Vec::new();
    if let Some(id) = &f.id {
        out.extend(ids_condition(C::Id, id));
    }
    if let Some(key) = &f.key {
        if let Some(any) = &key.any_ {
            out.push(expr(C::Key.into_expr().is_in(any.iter().cloned())));
        }
        if let Some(needle) = &key.like_ {
            out.push(like(backend, &quoted("artifact", "key"), needle));
        }
        if let Some(exists) = key.exists_ {
            out.push(expr(if exists { C::Key.into_expr().is_not_null() } else { C::Key.into_expr().is_null() }));
        }
    }
    if let Some(ids) = &f.flow_run_id {
        out.extend(ids_condition(C::FlowRunId, ids));
    }
    if let Some(ids) = &f.task_run_id {
        out.extend(ids_condition(C::TaskRunId, ids));
    }
    if let Some(kind) = &f.kind {
        out.push(strings_condition(backend, "artifact", C::Kind, kind));
    }
    combine(f.operator, out)
}

/// Artifacts whose flow run / task run match the run filters given alongside.
pub fn artifacts_matching(backend: Backend, artifacts: Option<&ArtifactFilter>, filters: &RunFilters) -> Condition {
    let mut cond = Condition::all();
    if let Some(f) = artifacts {
        cond = cond.add(artifact_condition(backend, f));
    }
    let runs = RunFilters { task_runs: None, ..filters.clone() };
    if runs.flow_runs.is_some() || has_cross_run_filters(&runs) {
        let ids = select_ids::<flow_run::Entity, _>(flow_run::Column::Id, flow_runs_matching(backend, &runs));
        cond = cond.add(artifact::Column::FlowRunId.into_expr().in_subquery(ids));
    }
    if let Some(f) = &filters.task_runs {
        let ids = select_ids::<task_run::Entity, _>(task_run::Column::Id, task_run_condition(backend, f));
        cond = cond.add(artifact::Column::TaskRunId.into_expr().in_subquery(ids));
    }
    cond
}

/// Conditions on `variable` rows.
pub fn variable_condition(backend: Backend, f: &VariableFilter) -> Condition {
    use variable::Column as C;
    let mut out = Vec::new();
    if let Some(id) = f.id.as_ref().and_then(|id| id.any_.as_ref()) {
        out.push(expr(C::Id.into_expr().is_in(id.iter().copied())));
    }
    if let Some(name) = &f.name {
        if let Some(any) = &name.any_ {
            out.push(expr(C::Name.into_expr().is_in(any.iter().cloned())));
        }
        if let Some(needle) = &name.like_ {
            out.push(like(backend, &quoted("variable", "name"), needle));
        }
    }
    if let Some(tags) = &f.tags {
        let tags = TagsFilter { operator: tags.operator, all_: tags.all_.clone(), any_: None, is_null_: tags.is_null_ };
        out.push(tags_condition(backend, "variable", "tags", &tags));
    }
    combine(f.operator, out)
}

/// Conditions on `automation` rows.
pub fn automation_condition(backend: Backend, f: &AutomationFilter) -> Condition {
    use automation::Column as C;
    let mut out = Vec::new();
    if let Some(ids) = f.id.as_ref().and_then(|id| id.any_.as_ref()) {
        out.push(expr(C::Id.into_expr().is_in(ids.iter().copied())));
    }
    if let Some(names) = f.name.as_ref().and_then(|name| name.any_.as_ref()) {
        out.push(expr(C::Name.into_expr().is_in(names.iter().cloned())));
    }
    if let Some(before) = f.created.as_ref().and_then(|created| created.before_) {
        out.push(expr(C::Created.into_expr().lte(before)));
    }
    if let Some(tags) = &f.tags {
        out.push(tags_condition(backend, "automation", "tags", tags));
    }
    combine(f.operator, out)
}
