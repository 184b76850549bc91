//! Saved searches.

use prefect_domain::saved_search::{SavedSearch, SavedSearchCreate};
use prefect_domain::time::DateTime;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, Order, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use crate::convert::{from_json, to_json};
use crate::entity::saved_search;
use crate::{Error, Result};

fn from_model(m: saved_search::Model) -> Result<SavedSearch> {
    Ok(SavedSearch { id: m.id, created: m.created, updated: m.updated, name: m.name, filters: from_json(m.filters, "filters")? })
}

/// Inserts the search, or replaces the filters of the one with the same name; returns it and whether it is new.
pub async fn upsert(c: &impl ConnectionTrait, create: &SavedSearchCreate, now: DateTime) -> Result<(SavedSearch, bool)> {
    let existed = read_by_name(c, &create.name).await?.is_some();
    let model = saved_search::ActiveModel {
        id: Set(Uuid::now_v7()),
        created: Set(now),
        updated: Set(now),
        name: Set(create.name.clone()),
        filters: Set(to_json(&create.filters)),
    };
    saved_search::Entity::insert(model)
        .on_conflict(OnConflict::column(saved_search::Column::Name).update_column(saved_search::Column::Filters).to_owned())
        .exec_without_returning(c)
        .await?;
    let stored = read_by_name(c, &create.name).await?.ok_or(Error::NotFound { entity: "Saved search" })?;
    Ok((stored, !existed))
}

pub async fn read(c: &impl ConnectionTrait, id: Uuid) -> Result<Option<SavedSearch>> {
    saved_search::Entity::find_by_id(id).one(c).await?.map(from_model).transpose()
}

pub async fn read_by_name(c: &impl ConnectionTrait, name: &str) -> Result<Option<SavedSearch>> {
    saved_search::Entity::find().filter(saved_search::Column::Name.eq(name)).one(c).await?.map(from_model).transpose()
}

/// Saved searches by name, paged.
pub async fn filter(c: &impl ConnectionTrait, limit: u64, offset: u64) -> Result<Vec<SavedSearch>> {
    saved_search::Entity::find()
        .order_by(saved_search::Column::Name, Order::Asc)
        .limit(limit)
        .offset(offset)
        .all(c)
        .await?
        .into_iter()
        .map(from_model)
        .collect()
}

pub async fn delete(c: &impl ConnectionTrait, id: Uuid) -> Result<bool> {
    Ok(saved_search::Entity::delete_by_id(id).exec(c).await?.rows_affected > 0)
}
