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
