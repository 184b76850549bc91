//! Keyed inputs sent to paused flow runs.

use prefect_domain::time::DateTime;
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, Order, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use crate::Result;
use crate::entity::flow_run_input;

/// A stored input.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredInput {
    pub id: Uuid,
    pub created: DateTime,
    pub updated: DateTime,
    pub flow_run_id: Uuid,
    pub key: String,
    pub value: String,
    pub sender: Option<String>,
}

fn stored(m: flow_run_input::Model) -> StoredInput {
    StoredInput { id: m.id, created: m.created, updated: m.updated, flow_run_id: m.flow_run_id, key: m.key, value: m.value, sender: m.sender }
}

/// Inserts an input; a duplicate key is a `Conflict`.
pub async fn create(c: &impl ConnectionTrait, flow_run_id: Uuid, key: &str, value: &str, sender: Option<&str>, now: DateTime) -> Result<StoredInput> {
    let model = flow_run_input::ActiveModel {
        id: Set(Uuid::now_v7()),
        created: Set(now),
        updated: Set(now),
        flow_run_id: Set(flow_run_id),
        key: Set(key.to_owned()),
        value: Set(value.to_owned()),
        sender: Set(sender.map(str::to_owned)),
    };
    Ok(stored(flow_run_input::Entity::insert(model).exec_with_returning(c).await?))
}

pub async fn read(c: &impl ConnectionTrait, flow_run_id: Uuid, key: &str) -> Result<Option<StoredInput>> {
    Ok(flow_run_input::Entity::find()
        .filter(flow_run_input::Column::FlowRunId.eq(flow_run_id))
        .filter(flow_run_input::Column::Key.eq(key))
        .one(c)
        .await?
        .map(stored))
}

/// Inputs whose key starts with `prefix`, excluding `exclude_keys`, oldest first.
pub async fn filter(c: &impl ConnectionTrait, flow_run_id: Uuid, prefix: &str, limit: u64, exclude_keys: &[String]) -> Result<Vec<StoredInput>> {
    let mut select =
        flow_run_input::Entity::find().filter(flow_run_input::Column::FlowRunId.eq(flow_run_id)).filter(flow_run_input::Column::Key.starts_with(prefix));
    if !exclude_keys.is_empty() {
        select = select.filter(flow_run_input::Column::Key.is_not_in(exclude_keys.iter().cloned()));
    }
    Ok(select.order_by(flow_run_input::Column::Created, Order::Asc).limit(limit).all(c).await?.into_iter().map(stored).collect())
}

pub async fn delete(c: &impl ConnectionTrait, flow_run_id: Uuid, key: &str) -> Result<bool> {
    Ok(flow_run_input::Entity::delete_many()
        .filter(flow_run_input::Column::FlowRunId.eq(flow_run_id))
        .filter(flow_run_input::Column::Key.eq(key))
        .exec(c)
        .await?
        .rows_affected
        > 0)
}

pub async fn delete_keys(c: &impl ConnectionTrait, flow_run_id: Uuid, keys: &[String]) -> Result<()> {
    if keys.is_empty() {
        return Ok(());
    }
    flow_run_input::Entity::delete_many()
        .filter(flow_run_input::Column::FlowRunId.eq(flow_run_id))
        .filter(flow_run_input::Column::Key.is_in(keys.iter().cloned()))
        .exec(c)
        .await?;
    Ok(())
}
