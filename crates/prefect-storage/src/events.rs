//! Events and the resources they involve.
//!
//! Each event is one `events` row plus one `event_resources` row per related
//! resource, which is what related-resource filters search. The event's own resource
//! has no `event_resources` row: it is already on the event (`resource_id`, with the
//! index that `resource` filters use, and `resource`), so `any_resource` filters look
//! for it there. A resource row costs a table row and three index entries: nearly a
//! third of the writes of an event with one related resource. Databases written before
//! this kept a row with role `""` for the event's own resource; those rows still
//! match what they matched (the same events), and age out with the events.

use std::borrow::Borrow;
use std::collections::{BTreeMap, HashSet};

use prefect_domain::events::{
    EventAnyResourceFilter, EventFilter, EventOrder, RESOURCE_ID, RESOURCE_NAME, RESOURCE_ROLE, ReceivedEvent, Resource, ResourceSpecification,
};
use prefect_domain::time::DateTime;
use sea_orm::sea_query::{Expr, ExprTrait, SelectStatement, UnionType};
use sea_orm::{ColumnTrait, Condition, ConnectionTrait, EntityTrait, Order, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, QueryTrait, Value};
use uuid::Uuid;

use crate::Result;
use crate::bulk::{BulkTable, HexUuid, Json, Kind, Timestamp};
use crate::convert::{from_json, json_object};
use crate::db::Backend;
use crate::direct_writes::{DirectTransaction, sqlite_error, timestamp_text};
use crate::entity::{event_resources, events};

/// Events per bulk INSERT (bounds the size of one JSON parameter).
const EVENT_CHUNK: usize = 2000;

const EVENTS: BulkTable = BulkTable {
    name: "events",
    columns: &[
        ("id", Kind::Uuid),
        ("created", Kind::Timestamp),
        ("updated", Kind::Timestamp),
        ("occurred", Kind::Timestamp),
        ("event", Kind::Text),
        ("resource_id", Kind::Text),
        ("resource", Kind::Json),
        ("related_resource_ids", Kind::Json),
        ("related", Kind::Json),
        ("payload", Kind::Json),
        ("received", Kind::Timestamp),
        ("recorded", Kind::Timestamp),
        ("follows", Kind::Uuid),
    ],
    skip_conflicts_on: Some("id"),
};

const EVENT_RESOURCES: BulkTable = BulkTable {
    name: "event_resources",
    columns: &[
        ("id", Kind::Uuid),
        ("created", Kind::Timestamp),
        ("updated", Kind::Timestamp),
        ("occurred", Kind::Timestamp),
        ("resource_id", Kind::Text),
        ("resource_role", Kind::Text),
        ("resource", Kind::Json),
        ("event_id", Kind::Uuid),
    ],
    skip_conflicts_on: None,
};

/// One `events` row, in [`EVENTS`] column order.
type EventRow<'a> = (
    HexUuid,
    Timestamp,
    Timestamp,
    Timestamp,
    &'a str,
    &'a str,
    Json<&'a Resource>,
    Json<Vec<&'a str>>,
    Json<&'a [Resource]>,
    Json<&'a serde_json::Map<String, serde_json::Value>>,
    Timestamp,
    Timestamp,
    Option<HexUuid>,
);

/// One `event_resources` row, in [`EVENT_RESOURCES`] column order.
type ResourceRow<'a> = (HexUuid, Timestamp, Timestamp, Timestamp, &'a str, &'a str, Json<ResourceLabels<'a>>, HexUuid);

/// A resource's labels without its id and role (those have their own columns).
struct ResourceLabels<'a>(&'a Resource);

impl serde::Serialize for ResourceLabels<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_map(self.0.0.iter().filter(|(k, _)| k.as_str() != RESOURCE_ID && k.as_str() != RESOURCE_ROLE))
    }
}

/// Inserts events not already stored (by id) with their resource rows; returns how many were new.
pub async fn insert_many<E: Borrow<ReceivedEvent>>(c: &impl ConnectionTrait, backend: Backend, batch: &[E], now: DateTime) -> Result<usize> {
    let mut inserted = 0;
    for chunk in batch.chunks(EVENT_CHUNK) {
        inserted += insert_chunk(c, backend, chunk, now).await?;
    }
    Ok(inserted)
}

async fn insert_chunk<E: Borrow<ReceivedEvent>>(c: &impl ConnectionTrait, backend: Backend, chunk: &[E], now: DateTime) -> Result<usize> {
    let at = Timestamp(now);
    let rows: Vec<EventRow<'_>> = chunk
        .iter()
        .map(|e| {
            let e = e.borrow();
            (
                HexUuid(e.id),
                at,
                at,
                Timestamp(e.occurred),
                e.event.as_str(),
                e.resource.id(),
                Json(&e.resource),
                Json(e.related.iter().map(|r| r.id()).collect()),
                Json(e.related.as_slice()),
                Json(&e.payload),
                Timestamp(e.received),
                at,
                e.follows.map(HexUuid),
            )
        })
        .collect();
    // Ids already stored (or repeated within the chunk) are skipped; only new events get resource rows.
    let fresh: HashSet<Uuid> = EVENTS.insert_returning_ids(c, backend, &rows, "id").await?.into_iter().collect();
    let mut claimed: HashSet<Uuid> = HashSet::with_capacity(fresh.len());
    let mut resources: Vec<ResourceRow<'_>> = Vec::new();
    for e in chunk.iter().map(Borrow::borrow) {
        if !fresh.contains(&e.id) || !claimed.insert(e.id) {
            continue;
        }
        let occurred = Timestamp(e.occurred);
        for r in &e.related {
            resources.push((HexUuid(Uuid::now_v7()), at, at, occurred, r.id(), r.role(), Json(ResourceLabels(r)), HexUuid(e.id)));
        }
    }
    EVENT_RESOURCES.insert(c, backend, &resources).await?;
    Ok(fresh.len())
}

/// A chunk of events with their rows encoded for SQLite, ready for the writer.
///
/// The encoding (JSON columns, timestamps, resource rows) is the part of an insert that
/// does not need the database, so it is done by whoever builds this, before the job
/// queues for the single writer; the writer then only binds and steps
/// ([`SqliteEventRows::insert`]).
#[derive(Debug)]
pub struct SqliteEventRows<E> {
    events: Vec<E>,
    rows: Vec<SqliteEventRow>,
}

/// One event's encoded columns (those not read straight from the event).
#[derive(Debug)]
struct SqliteEventRow {
    occurred: String,
    resource: String,
    related_resource_ids: String,
    related: String,
    payload: String,
    received: String,
    /// Each related resource's row: (row id, labels JSON).
    related_rows: Vec<(Uuid, String)>,
}

const SQLITE_INSERT_EVENT: &str = "INSERT INTO \"events\" (\"id\", \"created\", \"updated\", \"occurred\", \"event\", \"resource_id\", \"resource\", \
     \"related_resource_ids\", \"related\", \"payload\", \"received\", \"recorded\", \"follows\") \
     VALUES (?1, ?2, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?2, ?11) ON CONFLICT (\"id\") DO NOTHING";

const SQLITE_INSERT_RESOURCE: &str = "INSERT INTO \"event_resources\" (\"id\", \"created\", \"updated\", \"occurred\", \"resource_id\", \
     \"resource_role\", \"resource\", \"event_id\") VALUES (?1, ?2, ?2, ?3, ?4, ?5, ?6, ?7)";

fn json_text<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| crate::Error::Encode(e.to_string()))
}

impl<E: Borrow<ReceivedEvent>> SqliteEventRows<E> {
    /// Encodes `events` (stored as SeaORM would store them, so they read back alike).
    pub fn new(events: Vec<E>) -> Result<Self> {
        let rows = events
            .iter()
            .map(|e| {
                let e = e.borrow();
                let labels = |r: &Resource| json_text(&ResourceLabels(r)).map(|labels| (Uuid::now_v7(), labels));
                Ok(SqliteEventRow {
                    occurred: timestamp_text(&e.occurred),
                    resource: json_text(&e.resource)?,
                    related_resource_ids: json_text(&e.related.iter().map(|r| r.id()).collect::<Vec<_>>())?,
                    related: json_text(&e.related)?,
                    payload: json_text(&e.payload)?,
                    received: timestamp_text(&e.received),
                    related_rows: e.related.iter().map(labels).collect::<Result<_>>()?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(SqliteEventRows { events, rows })
    }

    /// Inserts the events not already stored (by id) with their resource rows; returns
    /// how many were new. Re-runnable: a rolled-back attempt leaves nothing behind.
    pub fn insert(&self, txn: &DirectTransaction<'_>, now: DateTime) -> Result<usize> {
        let mut insert_event = txn.prepare(SQLITE_INSERT_EVENT)?;
        let mut insert_resource = txn.prepare(SQLITE_INSERT_RESOURCE)?;
        let now = timestamp_text(&now);
        let mut inserted = 0;
        for (event, row) in self.events.iter().zip(&self.rows) {
            let e = event.borrow();
            let id = e.id.as_bytes().as_slice();
            let fresh = insert_event
                .execute(rusqlite::params![
                    id,
                    now,
                    row.occurred,
                    e.event,
                    e.resource.id(),
                    row.resource,
                    row.related_resource_ids,
                    row.related,
                    row.payload,
                    row.received,
                    e.follows.as_ref().map(|f| f.as_bytes().as_slice()),
                ])
                .map_err(sqlite_error)?;
            // An id already stored, or repeated in this chunk, gets no resource rows.
            if fresh == 0 {
                continue;
            }
            inserted += 1;
            for (resource, (row_id, labels)) in e.related.iter().zip(&row.related_rows) {
                insert_resource
                    .execute(rusqlite::params![row_id.as_bytes().as_slice(), now, row.occurred, resource.id(), resource.role(), labels, id])
                    .map_err(sqlite_error)?;
            }
        }
        Ok(inserted)
    }
}

fn label_sql(backend: Backend, column_sql: &str, label: &str) -> (String, Value) {
    match backend {
        Backend::Postgres => (format!("({column_sql} ->> $1)"), Value::from(label.to_owned())),
        Backend::Sqlite => (format!("json_extract({column_sql}, ?)"), Value::from(format!("$.\"{label}\""))),
    }
}

/// One label matcher: exact value, `prefix*`, or either negated with `!`.
fn match_expression(backend: Backend, sql: &str, param: Option<Value>, expected: &str) -> Expr {
    let (negated, pattern) = match expected.strip_prefix('!') {
        Some(rest) => (true, rest),
        None => (false, expected),
    };
    let (op, value) = match pattern.strip_suffix('*') {
        Some(prefix) => ("LIKE", format!("{prefix}%")),
        None => ("=", pattern.to_owned()),
    };
    let not = if negated { "NOT " } else { "" };
    let mut values: Vec<Value> = param.into_iter().collect();
    let placeholder = backend.placeholder(values.len() + 1);
    values.push(Value::from(value));
    Expr::cust_with_values(format!("{not}({sql} {op} {placeholder})"), values)
}

fn labels_condition(backend: Backend, column_sql: &str, id_column_sql: &str, spec: &ResourceSpecification) -> Condition {
    let mut all = Condition::all();
    for (label, expected) in &spec.0 {
        let values = expected.values();
        if values.is_empty() {
            all = all.add(Expr::cust("1 = 0"));
            continue;
        }
        let (positive, negative): (Vec<&str>, Vec<&str>) = values.into_iter().partition(|v| !v.starts_with('!'));
        let (sql, param) = if label == RESOURCE_ID {
            (id_column_sql.to_owned(), None)
        } else {
            let (sql, param) = label_sql(backend, column_sql, label);
            (sql, Some(param))
        };
        if !positive.is_empty() {
            let mut any = Condition::any();
            for p in positive {
                any = any.add(match_expression(backend, &sql, param.clone(), p));
            }
            all = all.add(any);
        }
        for n in negative {
            all = all.add(match_expression(backend, &sql, param.clone(), n));
        }
    }
    all
}

fn resource_rows(condition: Condition) -> SelectStatement {
    event_resources::Entity::find().select_only().column(event_resources::Column::EventId).filter(condition).into_query()
}

/// `column` within the filter's window.
fn occurred_between(column: impl ColumnTrait, since: DateTime, until: DateTime) -> Condition {
    Condition::all().add(column.gte(since)).add(column.lte(until))
}

/// One table's resource columns against a resource criterion: any of `ids`, any of
/// `prefixes`, and every label of `labels` (`table` is `events` or `event_resources`).
fn resource_matches(
    backend: Backend,
    table: &str,
    id_column: impl ColumnTrait,
    ids: Option<&[String]>,
    prefixes: Option<&[String]>,
    labels: Option<&ResourceSpecification>,
) -> Condition {
    let mut all = Condition::all();
    if let Some(ids) = ids {
        all = all.add(id_column.is_in(ids.iter().cloned()));
    }
    if let Some(prefixes) = prefixes {
        let mut any = Condition::any().add(Expr::cust("1 = 0"));
        for p in prefixes {
            any = any.add(id_column.starts_with(p));
        }
        all = all.add(any);
    }
    if let Some(labels) = labels {
        all = all.add(labels_condition(backend, &format!("\"{table}\".\"resource\""), &format!("\"{table}\".\"resource_id\""), labels));
    }
    all
}

/// Ids of the events in the window that involve a resource matching `f`: as a related
/// resource (a row in `event_resources`) or as their own (on `events`). One subquery
/// (a `UNION ALL` of the two), so the outer query still looks its events up by id and
/// an `id` criterion is two index searches, one on each table's `resource_id` index.
fn any_resource_ids(backend: Backend, f: &EventAnyResourceFilter, since: DateTime, until: DateTime) -> SelectStatement {
    use event_resources::Column as R;
    use events::Column as C;
    let mut related = occurred_between(R::Occurred, since, until);
    // An event's own resource has no role (Prefect gives roles to related resources only),
    // so a role criterion admits it only when it asks for the empty role.
    let mut own_can_match = true;
    let mut labels = f.labels.clone();
    if let Some(roles) = labels.as_mut().and_then(|spec| spec.0.remove(RESOURCE_ROLE)) {
        let roles: Vec<String> = roles.values().into_iter().map(str::to_owned).collect();
        own_can_match = roles.iter().any(String::is_empty);
        related = related.add(R::ResourceRole.is_in(roles));
    }
    let (ids, prefixes) = (f.id.as_deref(), f.id_prefix.as_deref());
    let mut rows = resource_rows(related.add(resource_matches(backend, "event_resources", R::ResourceId, ids, prefixes, labels.as_ref())));
    if own_can_match {
        let own = occurred_between(C::Occurred, since, until).add(resource_matches(backend, "events", C::ResourceId, ids, prefixes, labels.as_ref()));
        rows.union(UnionType::All, events::Entity::find().select_only().column(C::Id).filter(own).into_query());
    }
    rows
}

/// The SQL conditions of an event filter.
pub fn condition(backend: Backend, filter: &EventFilter, now: DateTime) -> Condition {
    use events::Column as C;
    let (since, until) = filter.window(now);
    let mut cond = occurred_between(C::Occurred, since, until);
    let window = || occurred_between(event_resources::Column::Occurred, since, until);
    if let Some(name) = &filter.event {
        if let Some(prefixes) = &name.prefix {
            let mut any = Condition::any().add(Expr::cust("1 = 0"));
            for p in prefixes {
                any = any.add(C::Event.starts_with(p));
            }
            cond = cond.add(any);
        }
        if let Some(prefixes) = &name.exclude_prefix {
            for p in prefixes {
                cond = cond.add(C::Event.starts_with(p).not());
            }
        }
        if let Some(names) = &name.name {
            cond = cond.add(C::Event.is_in(names.iter().cloned()));
        }
        if let Some(names) = &name.exclude_name {
            cond = cond.add(C::Event.is_not_in(names.iter().cloned()));
        }
    }
    if let Some(resource) = &filter.resource {
        cond = cond.add(resource_matches(backend, "events", C::ResourceId, resource.id.as_deref(), resource.id_prefix.as_deref(), resource.labels.as_ref()));
    }
    if let Some(related) = &filter.related {
        for f in related.as_slice() {
            use event_resources::Column as R;
            let mut rows = window();
            let mut constrained = false;
            if let Some(ids) = &f.id {
                rows = rows.add(R::ResourceId.is_in(ids.iter().cloned()));
                constrained = true;
            }
            if let Some(roles) = &f.role {
                rows = rows.add(R::ResourceRole.is_in(roles.iter().cloned()));
                constrained = true;
            }
            if let Some(pairs) = &f.resources_in_roles {
                let mut any = Condition::any().add(Expr::cust("1 = 0"));
                for (id, role) in pairs {
                    any = any.add(Condition::all().add(R::ResourceId.eq(id.clone())).add(R::ResourceRole.eq(role.clone())));
                }
                rows = rows.add(any);
                constrained = true;
            }
            if let Some(labels) = &f.labels {
                let mut spec = labels.clone();
                if let Some(roles) = spec.0.remove(RESOURCE_ROLE) {
                    rows = rows.add(R::ResourceRole.is_in(roles.values().into_iter().map(str::to_owned)));
                }
                rows = rows.add(labels_condition(backend, "\"event_resources\".\"resource\"", "\"event_resources\".\"resource_id\"", &spec));
                constrained = true;
            }
            if constrained {
                if f.role.is_none() {
                    rows = rows.add(R::ResourceRole.ne(""));
                }
                cond = cond.add(C::Id.in_subquery(resource_rows(rows)));
            }
        }
    }
    if let Some(any_resource) = &filter.any_resource {
        for f in any_resource.as_slice() {
            cond = cond.add(C::Id.in_subquery(any_resource_ids(backend, f, since, until)));
        }
    }
    if let Some(ids) = filter.id.as_ref().and_then(|f| f.id.as_ref()) {
        cond = cond.add(C::Id.is_in(ids.iter().copied()));
    }
    if let Some(text) = &filter.text {
        let pattern = format!("%{}%", text.query);
        let (op, ph) = match backend {
            Backend::Postgres => ("ILIKE", "$1"),
            Backend::Sqlite => ("LIKE", "?"),
        };
        let cast = match backend {
            Backend::Postgres => "CAST(\"events\".\"payload\" AS TEXT)",
            Backend::Sqlite => "\"events\".\"payload\"",
        };
        let mut any = Condition::any();
        for column in ["\"events\".\"event\"", "\"events\".\"resource_id\"", cast] {
            any = any.add(Expr::cust_with_values(format!("{column} {op} {ph}"), [pattern.clone()]));
        }
        cond = cond.add(any);
    }
    cond
}

fn to_event(model: events::Model) -> Result<ReceivedEvent> {
    Ok(ReceivedEvent {
        occurred: model.occurred,
        event: model.event,
        resource: from_json::<Resource>(model.resource, "resource")?,
        related: from_json::<Vec<Resource>>(model.related, "related")?,
        payload: json_object(model.payload),
        id: model.id,
        follows: model.follows,
        received: model.received,
    })
}

/// One page of events matching the filter, and how many match in all.
pub async fn query(
    c: &impl ConnectionTrait,
    backend: Backend,
    filter: &EventFilter,
    limit: u64,
    offset: u64,
    now: DateTime,
) -> Result<(Vec<ReceivedEvent>, u64)> {
    let cond = condition(backend, filter, now);
    let total = events::Entity::find().filter(cond.clone()).count(c).await?;
    let order = match filter.order {
        EventOrder::Asc => Order::Asc,
        EventOrder::Desc => Order::Desc,
    };
    let models = events::Entity::find()
        .filter(cond)
        .order_by(events::Column::Occurred, order.clone())
        .order_by(events::Column::Id, order)
        .limit(limit)
        .offset(offset)
        .all(c)
        .await?;
    let events = models.into_iter().map(to_event).collect::<Result<Vec<_>>>()?;
    Ok((events, total))
}

/// Per-value counts for `count-by/event` and `count-by/resource`: `(value, label, count, first, last)`.
pub async fn count_by_column(
    c: &impl ConnectionTrait,
    backend: Backend,
    filter: &EventFilter,
    by_resource: bool,
    now: DateTime,
) -> Result<Vec<(String, String, u64, DateTime, DateTime)>> {
    let cond = condition(backend, filter, now);
    let column = if by_resource { events::Column::ResourceId } else { events::Column::Event };
    let rows: Vec<(String, i64, DateTime, DateTime)> = events::Entity::find()
        .select_only()
        .column(column)
        .column_as(Expr::col(events::Column::Id).count(), "count")
        .column_as(Expr::col(events::Column::Occurred).min(), "oldest")
        .column_as(Expr::col(events::Column::Occurred).max(), "latest")
        .filter(cond.clone())
        .group_by(column)
        .into_tuple()
        .all(c)
        .await?;
    let mut labels: BTreeMap<String, String> = BTreeMap::new();
    if by_resource && !rows.is_empty() {
        // Label each resource by the name on its most recent event.
        let named: Vec<(String, serde_json::Value)> = events::Entity::find()
            .select_only()
            .column(events::Column::ResourceId)
            .column(events::Column::Resource)
            .filter(cond)
            .order_by(events::Column::Occurred, Order::Asc)
            .into_tuple()
            .all(c)
            .await?;
        for (id, resource) in named {
            if let Some(name) = resource.get(RESOURCE_NAME).or_else(|| resource.get("prefect.name")).and_then(|v| v.as_str()) {
                labels.insert(id, name.to_owned());
            }
        }
    }
    let mut out: Vec<(String, String, u64, DateTime, DateTime)> = rows
        .into_iter()
        .map(|(value, count, oldest, latest)| {
            let label = labels.get(&value).cloned().unwrap_or_else(|| value.clone());
            (value, label, u64::try_from(count).unwrap_or(0), oldest, latest)
        })
        .collect();
    out.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.1.cmp(&b.1)));
    Ok(out)
}

/// Occurrence times of matching events (for time-bucketed counts).
pub async fn occurrences(c: &impl ConnectionTrait, backend: Backend, filter: &EventFilter, now: DateTime) -> Result<Vec<DateTime>> {
    Ok(events::Entity::find().select_only().column(events::Column::Occurred).filter(condition(backend, filter, now)).into_tuple().all(c).await?)
}

#[cfg(test)]
mod tests {
    use prefect_domain::events::{EventAnyResourceFilter, EventRelatedFilter, OneOrMany};
    use sea_orm::TransactionTrait;

    use super::*;
    use crate::test_support::migrated_sqlite;

    fn event(id: Uuid, n: usize, follows: Option<Uuid>) -> ReceivedEvent {
        let at = |s: &str| chrono::DateTime::parse_from_rfc3339(s).expect("timestamp").to_utc();
        let resource = |pairs: &[(&str, &str)]| Resource(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect());
        ReceivedEvent {
            occurred: at("2026-11-27T08:18:13.231942Z"),
            event: format!("test.event.{n}"),
            resource: resource(&[(RESOURCE_ID, &format!("prefect.flow-run.{n}")), (RESOURCE_NAME, "a \"quoted\" name")]),
            related: vec![
                resource(&[(RESOURCE_ID, "prefect.flow.1"), (RESOURCE_ROLE, "flow")]),
                resource(&[(RESOURCE_ID, "prefect.tag.x"), (RESOURCE_ROLE, "tag"), ("extra", "ünïcode")]),
            ],
            payload: serde_json::json!({"n": n, "nested": {"list": [1, 2.5, null]}}).as_object().cloned().expect("object"),
            id,
            follows,
            received: at("2026-11-27T08:18:14Z"),
        }
    }

    /// Every stored value with its SQLite type, except the random ids of resource rows.
    async fn dump(db: &crate::Database) -> Vec<String> {
        let sql = "SELECT 'e' || quote(id) || quote(created) || quote(updated) || quote(occurred) || quote(event) || quote(resource_id) \
                     || quote(resource) || quote(related_resource_ids) || quote(related) || quote(payload) || quote(received) \
                     || quote(recorded) || quote(follows) FROM events \
                   UNION ALL SELECT 'r' || quote(created) || quote(updated) || quote(occurred) || quote(resource_id) || quote(resource_role) \
                     || quote(resource) || quote(event_id) FROM event_resources ORDER BY 1";
        let rows = db.reader().query_all_raw(sea_orm::Statement::from_string(sea_orm::DatabaseBackend::Sqlite, sql)).await.expect("dump");
        rows.iter().map(|r| r.try_get_by_index::<String>(0).expect("text")).collect()
    }

    /// Events stepped on the writer's connection are stored exactly as SeaORM stores
    /// them (same types and encodings), repeats by id are skipped either way, and the
    /// related-resource filters find them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn events_written_directly_are_stored_as_seaorm_stores_them() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-27T09:00:00.5Z").expect("now").to_utc();
        let first = Uuid::now_v7();
        let batch = vec![event(first, 1, None), event(Uuid::now_v7(), 2, Some(first)), event(first, 1, None)];

        let (dir_a, dir_b) = (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"));
        let (through_orm, direct) = (migrated_sqlite(&dir_a).await, migrated_sqlite(&dir_b).await);

        let txn = through_orm.writer().begin().await.expect("begin");
        assert_eq!(insert_many(&txn, Backend::Sqlite, &batch, now).await.expect("insert"), 2);
        assert_eq!(insert_many(&txn, Backend::Sqlite, &batch, now).await.expect("insert again"), 0);
        txn.commit().await.expect("commit");

        let rows = std::sync::Arc::new(SqliteEventRows::new(batch.clone()).expect("encode"));
        let again = std::sync::Arc::clone(&rows);
        assert_eq!(direct.write_direct(move |txn| rows.insert(txn, now)).await.expect("direct insert"), 2);
        assert_eq!(direct.write_direct(move |txn| again.insert(txn, now)).await.expect("direct insert again"), 0);

        let stored = dump(&direct).await;
        assert_eq!(stored.len(), 2 + 2 * 2, "two events, a resource row for each of their two related resources");
        assert_eq!(stored, dump(&through_orm).await);

        let filter = EventFilter {
            related: Some(OneOrMany::One(EventRelatedFilter { id: Some(vec!["prefect.tag.x".to_owned()]), ..Default::default() })),
            ..Default::default()
        };
        let (found, total) = query(direct.reader(), Backend::Sqlite, &filter, 10, 0, now).await.expect("query");
        assert_eq!(total, 2);
        let mut expected = batch[..2].to_vec();
        expected.sort_by_key(|e| e.id);
        let mut found = found;
        found.sort_by_key(|e| e.id);
        assert_eq!(found, expected);
    }

    /// A database written before events stopped getting a row for their own resource
    /// (role `""`) answers as a new one: each event is counted once whichever way it
    /// matches, and related filters still skip the old rows.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn resource_rows_of_an_events_own_resource_from_older_databases_change_nothing() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-27T09:00:00.5Z").expect("now").to_utc();
        let dir = tempfile::tempdir().expect("tempdir");
        let db = migrated_sqlite(&dir).await;
        let batch = vec![event(Uuid::now_v7(), 1, None), event(Uuid::now_v7(), 2, None)];
        let rows = SqliteEventRows::new(batch.clone()).expect("encode");
        assert_eq!(db.write_direct(move |txn| rows.insert(txn, now)).await.expect("insert"), 2);
        let own_rows = |db: &crate::Database| {
            let sql = "SELECT count(*) FROM event_resources WHERE resource_role = ''";
            let reader = db.reader().clone();
            async move {
                let row = reader.query_one_raw(sea_orm::Statement::from_string(sea_orm::DatabaseBackend::Sqlite, sql)).await.expect("count");
                row.expect("a row").try_get_by_index::<i64>(0).expect("count")
            }
        };
        assert_eq!(own_rows(&db).await, 0, "new events get rows for their related resources only");

        let any_resource = |id: &str| EventFilter {
            any_resource: Some(OneOrMany::One(EventAnyResourceFilter { id: Some(vec![id.to_owned()]), ..Default::default() })),
            ..Default::default()
        };
        let related_to = |id: &str| EventFilter {
            related: Some(OneOrMany::One(EventRelatedFilter { id: Some(vec![id.to_owned()]), ..Default::default() })),
            ..Default::default()
        };
        let totals = |db: crate::Database| async move {
            let mut totals = Vec::new();
            for filter in [any_resource("prefect.flow-run.1"), any_resource("prefect.flow.1"), related_to("prefect.flow-run.1"), related_to("prefect.flow.1")] {
                totals.push(query(db.reader(), Backend::Sqlite, &filter, 10, 0, now).await.expect("query").1);
            }
            totals
        };
        let fresh = totals(db.clone()).await;
        assert_eq!(fresh, vec![1, 2, 0, 2]);

        // What the older code wrote for each event's own resource.
        let legacy = "INSERT INTO event_resources (id, created, updated, occurred, resource_id, resource_role, resource, event_id) \
                      SELECT randomblob(16), created, updated, occurred, resource_id, '', '{}', id FROM events";
        db.write(None, move |txn| Box::pin(async move { txn.execute_unprepared(legacy).await.map(|_| ()).map_err(crate::Error::from_db) }))
            .await
            .expect("rows as older databases hold them");
        assert_eq!(own_rows(&db).await, 2);
        assert_eq!(totals(db.clone()).await, fresh);
    }

    /// A direct job that fails leaves nothing behind, and the writer goes on.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_direct_job_rolls_back() {
        let now = prefect_domain::time::now();
        let dir = tempfile::tempdir().expect("tempdir");
        let db = migrated_sqlite(&dir).await;
        let rows = SqliteEventRows::new(vec![event(Uuid::now_v7(), 1, None)]).expect("encode");
        let failed = db
            .write_direct(move |txn| {
                rows.insert(txn, now)?;
                Err::<(), _>(crate::Error::Encode("the job fails after writing".to_owned()))
            })
            .await;
        assert!(matches!(failed, Err(crate::Error::Encode(_))), "{failed:?}");
        assert!(dump(&db).await.is_empty());

        let rows = SqliteEventRows::new(vec![event(Uuid::now_v7(), 2, None)]).expect("encode");
        assert_eq!(db.write_direct(move |txn| rows.insert(txn, now)).await.expect("next job"), 1);
        // SeaORM jobs still find the connection in autocommit, between transactions.
        db.write(None, |txn| Box::pin(async move { txn.execute_unprepared("DELETE FROM event_resources").await.map(|_| ()).map_err(crate::Error::from_db) }))
            .await
            .expect("an ORM job after direct ones");
        assert_eq!(dump(&db).await.len(), 1);
    }
}
