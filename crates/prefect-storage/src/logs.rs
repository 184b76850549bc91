//! Log lines.

use prefect_domain::filters::LogFilter;
use prefect_domain::log::{Log, LogCreate};
use prefect_domain::sorts::LogSort;
use prefect_domain::time::DateTime;
use sea_orm::{ActiveValue::Set, ConnectionTrait, EntityTrait, Order, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use crate::Result;
use crate::convert;
use crate::db::Backend;
use crate::entity::log;
use crate::query;

/// Rows per INSERT, below SQLite's bound-parameter limit (9 columns each).
const INSERT_CHUNK: usize = 1000;

/// Inserts log lines with multi-row statements.
pub async fn insert_many(c: &impl ConnectionTrait, logs: &[LogCreate], now: DateTime) -> Result<()> {
    for chunk in logs.chunks(INSERT_CHUNK) {
        let models = chunk.iter().map(|l| log::ActiveModel {
            id: Set(Uuid::now_v7()),
            created: Set(now),
            updated: Set(now),
            name: Set(l.name.clone()),
            level: Set(l.level),
            flow_run_id: Set(l.flow_run_id),
            task_run_id: Set(l.task_run_id),
            message: Set(l.message.clone()),
            timestamp: Set(l.timestamp),
        });
        log::Entity::insert_many(models).exec_without_returning(c).await?;
    }
    Ok(())
}

pub async fn filter(
    c: &impl ConnectionTrait,
    backend: Backend,
    filter: Option<&LogFilter>,
    sort: LogSort,
    limit: u64,
    offset: u64,
) -> Result<Vec<Log>> {
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
