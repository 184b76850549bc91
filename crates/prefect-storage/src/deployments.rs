//! Deployments (the parts other features read; management arrives with deployments).

use sea_orm::{ConnectionTrait, EntityTrait, QuerySelect};
use serde_json::Value;
use uuid::Uuid;

use crate::entity::deployment;
use crate::Result;

/// Concurrency settings of a deployment: `(concurrency_limit_id, concurrency_options)`.
pub async fn read_concurrency(c: &impl ConnectionTrait, id: Uuid) -> Result<Option<(Option<Uuid>, Option<Value>)>> {
    Ok(deployment::Entity::find_by_id(id)
        .select_only()
        .column(deployment::Column::ConcurrencyLimitId)
        .column(deployment::Column::ConcurrencyOptions)
        .into_tuple()
        .one(c)
        .await?)
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
