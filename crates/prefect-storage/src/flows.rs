//! Flows.

use prefect_domain::filters::RunFilters;
use prefect_domain::flow::{Flow, FlowCreate};
use prefect_domain::sorts::FlowSort;
use prefect_domain::time::DateTime;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, Order, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use crate::convert;
use crate::db::Backend;
use crate::entity::flow;
use crate::query;
use crate::{Error, Result};

/// Inserts the flow unless one with its name exists; returns the stored flow and whether it is new.
pub async fn create_or_read(c: &impl ConnectionTrait, create: &FlowCreate, now: DateTime) -> Result<(Flow, bool)> {
    let model = flow::ActiveModel {
        id: Set(Uuid::now_v7()),
        created: Set(now),
        updated: Set(now),
        name: Set(create.name.clone()),
        tags: Set(convert::to_json(&create.tags)),
        labels: Set(create.labels.as_ref().map(convert::to_json)),
    };
    let inserted = flow::Entity::insert(model).on_conflict(OnConflict::column(flow::Column::Name).do_nothing().to_owned()).exec_without_returning(c).await?;
    let existing = read_by_name(c, &create.name).await?.ok_or(Error::NotFound { entity: "Flow" })?;
    Ok((existing, inserted > 0))
}

pub async fn read(c: &impl ConnectionTrait, id: Uuid) -> Result<Option<Flow>> {
    flow::Entity::find_by_id(id).one(c).await?.map(convert::flow).transpose()
}

pub async fn read_by_name(c: &impl ConnectionTrait, name: &str) -> Result<Option<Flow>> {
    flow::Entity::find().filter(flow::Column::Name.eq(name)).one(c).await?.map(convert::flow).transpose()
}

/// Flows matching the filters, sorted and paged.
pub async fn filter(c: &impl ConnectionTrait, backend: Backend, filters: &RunFilters, sort: FlowSort, limit: u64, offset: u64) -> Result<Vec<Flow>> {
    let (column, order) = match sort {
        FlowSort::CreatedDesc => (flow::Column::Created, Order::Desc),
        FlowSort::UpdatedDesc => (flow::Column::Updated, Order::Desc),
        FlowSort::NameAsc => (flow::Column::Name, Order::Asc),
        FlowSort::NameDesc => (flow::Column::Name, Order::Desc),
    };
    flow::Entity::find()
        .filter(query::flows_matching(backend, filters))
        .order_by(column, order)
        .order_by(flow::Column::Id, Order::Desc)
        .limit(limit)
        .offset(offset)
        .all(c)
        .await?
        .into_iter()
        .map(convert::flow)
        .collect()
}

pub async fn count(c: &impl ConnectionTrait, backend: Backend, filters: &RunFilters) -> Result<u64> {
    Ok(flow::Entity::find().filter(query::flows_matching(backend, filters)).count(c).await?)
}

/// Replaces a flow's tags; `false` if the flow does not exist.
pub async fn update_tags(c: &impl ConnectionTrait, id: Uuid, tags: &[String], now: DateTime) -> Result<bool> {
    let result = flow::Entity::update_many()
        .col_expr(flow::Column::Tags, sea_orm::sea_query::Expr::value(convert::to_json(&tags)))
        .col_expr(flow::Column::Updated, sea_orm::sea_query::Expr::value(now))
        .filter(flow::Column::Id.eq(id))
        .exec(c)
        .await?;
    Ok(result.rows_affected > 0)
}

/// Deletes a flow and, through foreign keys, its runs and deployments.
pub async fn delete(c: &impl ConnectionTrait, id: Uuid) -> Result<bool> {
    Ok(flow::Entity::delete_by_id(id).exec(c).await?.rows_affected > 0)
}

/// Deletes up to `limit` flows matching the filters; returns their ids.
pub async fn delete_matching(c: &impl ConnectionTrait, backend: Backend, filters: &RunFilters, limit: u64) -> Result<Vec<Uuid>> {
    let ids: Vec<Uuid> =
        flow::Entity::find().select_only().column(flow::Column::Id).filter(query::flows_matching(backend, filters)).limit(limit).into_tuple().all(c).await?;
    if !ids.is_empty() {
        flow::Entity::delete_many().filter(flow::Column::Id.is_in(ids.clone())).exec(c).await?;
    }
    Ok(ids)
}
