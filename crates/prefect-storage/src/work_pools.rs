//! Work pools and queues (the parts other features read; management arrives with workers).

use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect, RelationTrait};
use uuid::Uuid;

use crate::entity::{work_pool, work_queue};
use crate::Result;

/// `(queue name, pool id, pool name, pool type)` of a work queue, for event resources.
pub async fn read_queue_and_pool(c: &impl ConnectionTrait, queue_id: Uuid) -> Result<Option<(String, Uuid, String, String)>> {
    Ok(work_queue::Entity::find_by_id(queue_id)
        .select_only()
        .column(work_queue::Column::Name)
        .column(work_queue::Column::WorkPoolId)
        .column_as(sea_orm::sea_query::Expr::col((work_pool::Entity, work_pool::Column::Name)), "pool_name")
        .column_as(sea_orm::sea_query::Expr::col((work_pool::Entity, work_pool::Column::Kind)), "pool_type")
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
