//! Variables.

use prefect_domain::sorts::VariableSort;
use prefect_domain::time::DateTime;
use prefect_domain::variable::{Variable, VariableCreate, VariableFilter, VariableUpdate};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, EntityTrait, Order, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};
use serde_json::Value;
use uuid::Uuid;

use crate::Result;
use crate::convert;
use crate::db::Backend;
use crate::entity::variable;
use crate::query;

fn from_model(m: variable::Model) -> Variable {
    Variable { id: m.id, created: m.created, updated: m.updated, name: m.name, value: m.value.unwrap_or(Value::Null), tags: convert::string_list(m.tags) }
}

/// Inserts a variable; a duplicate name is a `Conflict`.
pub async fn insert(c: &impl ConnectionTrait, create: &VariableCreate, now: DateTime) -> Result<Variable> {
    let model = variable::ActiveModel {
        id: Set(Uuid::now_v7()),
        created: Set(now),
        updated: Set(now),
        name: Set(create.name.clone()),
        value: Set(Some(create.value.clone())),
        tags: Set(convert::to_json(&create.tags)),
    };
    Ok(from_model(variable::Entity::insert(model).exec_with_returning(c).await?))
}

pub async fn read(c: &impl ConnectionTrait, id: Uuid) -> Result<Option<Variable>> {
    Ok(variable::Entity::find_by_id(id).one(c).await?.map(from_model))
}

pub async fn read_by_name(c: &impl ConnectionTrait, name: &str) -> Result<Option<Variable>> {
    Ok(variable::Entity::find().filter(variable::Column::Name.eq(name)).one(c).await?.map(from_model))
}

/// Applies the fields present in `update` to the variable `id`; false if it does not exist.
/// A new name that is taken is a `Conflict`.
pub async fn update(c: &impl ConnectionTrait, id: Uuid, update: &VariableUpdate, now: DateTime) -> Result<bool> {
    let model = variable::ActiveModel {
        updated: Set(now),
        name: update.name.clone().map_or(NotSet, Set),
        value: update.value.clone().map_or(NotSet, |v| Set(Some(v))),
        tags: update.tags.as_ref().map_or(NotSet, |t| Set(convert::to_json(t))),
        ..Default::default()
    };
    let result = variable::Entity::update_many().set(model).filter(variable::Column::Id.eq(id)).exec(c).await?;
    Ok(result.rows_affected > 0)
}

pub async fn delete(c: &impl ConnectionTrait, id: Uuid) -> Result<bool> {
    Ok(variable::Entity::delete_by_id(id).exec(c).await?.rows_affected > 0)
}

/// Variables matching the filter, sorted and paged.
pub async fn filter(
    c: &impl ConnectionTrait,
    backend: Backend,
    filter: Option<&VariableFilter>,
    sort: VariableSort,
    limit: u64,
    offset: u64,
) -> Result<Vec<Variable>> {
    use variable::Column as C;
    let (column, order) = match sort {
        VariableSort::CreatedDesc => (C::Created, Order::Desc),
        VariableSort::UpdatedDesc => (C::Updated, Order::Desc),
        VariableSort::NameDesc => (C::Name, Order::Desc),
        VariableSort::NameAsc => (C::Name, Order::Asc),
    };
    let mut select = variable::Entity::find();
    if let Some(f) = filter {
        select = select.filter(query::variable_condition(backend, f));
    }
    Ok(select.order_by(column, order).limit(limit).offset(offset).all(c).await?.into_iter().map(from_model).collect())
}

pub async fn count(c: &impl ConnectionTrait, backend: Backend, filter: Option<&VariableFilter>) -> Result<u64> {
    let mut select = variable::Entity::find();
    if let Some(f) = filter {
        select = select.filter(query::variable_condition(backend, f));
    }
    Ok(select.count(c).await?)
}

/// Every variable's name and value (for hydrating `workspace_variable` placeholders).
pub async fn all_values(c: &impl ConnectionTrait) -> Result<Vec<(String, Value)>> {
    Ok(variable::Entity::find()
        .order_by(variable::Column::Name, Order::Asc)
        .all(c)
        .await?
        .into_iter()
        .map(|m| (m.name, m.value.unwrap_or(Value::Null)))
        .collect())
}
