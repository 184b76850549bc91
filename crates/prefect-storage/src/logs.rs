//! Log lines.

use prefect_domain::filters::LogFilter;
use prefect_domain::log::{Log, LogCreate};
use prefect_domain::sorts::LogSort;
use prefect_domain::time::DateTime;
use sea_orm::{ConnectionTrait, EntityTrait, Order, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use crate::Result;
use crate::bulk::{BulkTable, HexUuid, Kind, Timestamp};
use crate::convert;
use crate::db::Backend;
use crate::direct_writes::{DirectTransaction, sqlite_error, timestamp_text};
use crate::entity::log;
use crate::query;

/// Log lines per bulk INSERT (bounds the size of one JSON parameter).
const INSERT_CHUNK: usize = 5000;

const LOGS: BulkTable = BulkTable {
    name: "log",
    columns: &[
        ("id", Kind::Uuid),
        ("created", Kind::Timestamp),
        ("updated", Kind::Timestamp),
        ("name", Kind::Text),
        ("level", Kind::BigInt),
        ("flow_run_id", Kind::Uuid),
        ("task_run_id", Kind::Uuid),
        ("message", Kind::Text),
        ("timestamp", Kind::Timestamp),
    ],
    skip_conflicts_on: None,
};

/// Inserts log lines, a few thousand per statement.
pub async fn insert_many(c: &impl ConnectionTrait, backend: Backend, logs: &[LogCreate], now: DateTime) -> Result<()> {
    let at = Timestamp(now);
    for chunk in logs.chunks(INSERT_CHUNK) {
        let rows: Vec<_> = chunk
            .iter()
            .map(|l| {
                (
                    HexUuid(Uuid::now_v7()),
                    at,
                    at,
                    l.name.as_str(),
                    l.level,
                    l.flow_run_id.map(HexUuid),
                    l.task_run_id.map(HexUuid),
                    l.message.as_str(),
                    Timestamp(l.timestamp),
                )
            })
            .collect();
        LOGS.insert(c, backend, &rows).await?;
    }
    Ok(())
}

const SQLITE_INSERT_LOG: &str = "INSERT INTO \"log\" (\"id\", \"created\", \"updated\", \"name\", \"level\", \"flow_run_id\", \"task_run_id\", \
     \"message\", \"timestamp\") VALUES (?1, ?2, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";

/// Inserts log lines on the SQLite writer's own connection (see [`crate::direct_writes`]),
/// stored as [`insert_many`] stores them.
pub fn insert_many_direct(txn: &DirectTransaction<'_>, logs: &[LogCreate], now: DateTime) -> Result<()> {
    let mut insert = txn.prepare(SQLITE_INSERT_LOG)?;
    let now = timestamp_text(&now);
    let blob = |id: &Option<Uuid>| id.map(|u| *u.as_bytes());
    for l in logs {
        insert
            .execute(rusqlite::params![
                Uuid::now_v7().as_bytes(),
                now,
                l.name,
                l.level,
                blob(&l.flow_run_id),
                blob(&l.task_run_id),
                l.message,
                timestamp_text(&l.timestamp),
            ])
            .map_err(sqlite_error)?;
    }
    Ok(())
}

pub async fn filter(c: &impl ConnectionTrait, backend: Backend, filter: Option<&LogFilter>, sort: LogSort, limit: u64, offset: u64) -> Result<Vec<Log>> {
    let mut select = log::Entity::find();
    if let Some(f) = filter {
        select = select.filter(query::log_condition(backend, f));
    }
    let order = match sort {
        LogSort::TimestampAsc => Order::Asc,
        LogSort::TimestampDesc => Order::Desc,
    };
    Ok(select
        .order_by(log::Column::Timestamp, order.clone())
        .order_by(log::Column::Id, order)
        .limit(limit)
        .offset(offset)
        .all(c)
        .await?
        .into_iter()
        .map(convert::log)
        .collect())
}

#[cfg(test)]
mod tests {
    use sea_orm::TransactionTrait;

    use super::*;
    use crate::test_support::migrated_sqlite;

    /// Every stored value with its SQLite type, except the random row ids.
    async fn dump(db: &crate::Database) -> Vec<String> {
        let sql = "SELECT quote(created) || quote(updated) || quote(name) || quote(level) || quote(flow_run_id) || quote(task_run_id) \
                   || quote(message) || quote(timestamp) FROM log ORDER BY 1";
        let rows = db.reader().query_all_raw(sea_orm::Statement::from_string(sea_orm::DatabaseBackend::Sqlite, sql)).await.expect("dump");
        rows.iter().map(|r| r.try_get_by_index::<String>(0).expect("text")).collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn log_lines_written_directly_are_stored_as_seaorm_stores_them() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-27T09:00:00.5Z").expect("now").to_utc();
        let line = |n: i64, flow_run_id: Option<Uuid>, task_run_id: Option<Uuid>| LogCreate {
            name: format!("prefect.flow_runs.{n}"),
            level: 10 * n,
            message: format!("line {n}: \u{00e9}\u{0000} \"quoted\""),
            timestamp: now - chrono::Duration::microseconds(n),
            flow_run_id,
            task_run_id,
        };
        let lines = vec![line(1, Some(Uuid::now_v7()), None), line(2, Some(Uuid::now_v7()), Some(Uuid::now_v7())), line(3, None, None)];

        let (dir_a, dir_b) = (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"));
        let (through_orm, direct) = (migrated_sqlite(&dir_a).await, migrated_sqlite(&dir_b).await);
        let txn = through_orm.writer().begin().await.expect("begin");
        insert_many(&txn, Backend::Sqlite, &lines, now).await.expect("insert");
        txn.commit().await.expect("commit");
        let shared = std::sync::Arc::new(lines.clone());
        direct.write_direct(move |txn| insert_many_direct(txn, &shared, now)).await.expect("direct insert");

        let stored = dump(&direct).await;
        assert_eq!(stored.len(), 3);
        assert_eq!(stored, dump(&through_orm).await);
        let read = filter(direct.reader(), Backend::Sqlite, None, LogSort::TimestampDesc, 10, 0).await.expect("read back");
        assert_eq!(
            read.iter().map(|l| (l.name.as_str(), l.message.as_str(), l.flow_run_id)).collect::<Vec<_>>(),
            lines.iter().map(|l| (l.name.as_str(), l.message.as_str(), l.flow_run_id)).collect::<Vec<_>>()
        );
    }
}
