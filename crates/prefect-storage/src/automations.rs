//! Automations, and the resources they relate to.
//!
//! An automation is related to the deployments its `selected` run-deployment actions
//! run (kept in step with its actions on every write) and, when created with an
//! `owner_resource`, owned by that resource (`DELETE /automations/owned-by/...`).

use prefect_domain::automation::{Automation, AutomationFilter, AutomationUpdate};
use prefect_domain::sorts::AutomationSort;
use prefect_domain::time::DateTime;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, Order, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use crate::convert::{from_json, string_list, to_json};
use crate::db::Backend;
use crate::entity::{automation, automation_related_resource as related};
use crate::{Result, query};

fn from_model(m: automation::Model) -> Result<Automation> {
    Ok(Automation {
        name: m.name,
        description: m.description,
        enabled: m.enabled,
        tags: string_list(m.tags),
        trigger: from_json(m.trigger, "trigger")?,
        actions: from_json(m.actions, "actions")?,
        actions_on_trigger: from_json(m.actions_on_trigger, "actions_on_trigger")?,
        actions_on_resolve: from_json(m.actions_on_resolve, "actions_on_resolve")?,
        id: m.id,
        created: m.created,
        updated: m.updated,
    })
}

fn columns(definition: &AutomationUpdate) -> automation::ActiveModel {
    automation::ActiveModel {
        name: Set(definition.name.clone()),
        description: Set(definition.description.clone()),
        enabled: Set(definition.enabled),
        tags: Set(to_json(&definition.tags)),
        trigger: Set(to_json(&definition.trigger)),
        actions: Set(to_json(&definition.actions)),
        actions_on_trigger: Set(to_json(&definition.actions_on_trigger)),
        actions_on_resolve: Set(to_json(&definition.actions_on_resolve)),
        ..Default::default()
    }
}

/// Stores a new automation, related to the deployments it runs and owned by `owner_resource`.
pub async fn insert(c: &impl ConnectionTrait, definition: &AutomationUpdate, owner_resource: Option<&str>, now: DateTime) -> Result<Automation> {
    let id = Uuid::now_v7();
    let model = automation::ActiveModel { id: Set(id), created: Set(now), updated: Set(now), ..columns(definition) };
    let stored = from_model(automation::Entity::insert(model).exec_with_returning(c).await?)?;
    relate_to_selected_deployments(c, id, definition, now).await?;
    if let Some(owner) = owner_resource {
        relate(c, id, owner, true, now).await?;
    }
    Ok(stored)
}

pub async fn read(c: &impl ConnectionTrait, id: Uuid) -> Result<Option<Automation>> {
    automation::Entity::find_by_id(id).one(c).await?.map(from_model).transpose()
}

/// Replaces the automation's definition; false if it does not exist.
pub async fn update(c: &impl ConnectionTrait, id: Uuid, definition: &AutomationUpdate, now: DateTime) -> Result<bool> {
    let model = automation::ActiveModel { updated: Set(now), ..columns(definition) };
    let result = automation::Entity::update_many().set(model).filter(automation::Column::Id.eq(id)).exec(c).await?;
    if result.rows_affected == 0 {
        return Ok(false);
    }
    relate_to_selected_deployments(c, id, definition, now).await?;
    Ok(true)
}

/// Turns the automation on or off; false if it does not exist.
pub async fn set_enabled(c: &impl ConnectionTrait, id: Uuid, enabled: bool, now: DateTime) -> Result<bool> {
    let model = automation::ActiveModel { enabled: Set(enabled), updated: Set(now), ..Default::default() };
    Ok(automation::Entity::update_many().set(model).filter(automation::Column::Id.eq(id)).exec(c).await?.rows_affected > 0)
}

/// Deletes the automation (its related resources go with it); false if it does not exist.
pub async fn delete(c: &impl ConnectionTrait, id: Uuid) -> Result<bool> {
    related::Entity::delete_many().filter(related::Column::AutomationId.eq(id)).exec(c).await?;
    Ok(automation::Entity::delete_by_id(id).exec(c).await?.rows_affected > 0)
}

/// Automations matching the filter, sorted and paged.
pub async fn filter(
    c: &impl ConnectionTrait,
    backend: Backend,
    filter: Option<&AutomationFilter>,
    sort: AutomationSort,
    limit: u64,
    offset: u64,
) -> Result<Vec<Automation>> {
    use automation::Column as C;
    let (column, order) = match sort {
        AutomationSort::CreatedDesc => (C::Created, Order::Desc),
        AutomationSort::UpdatedDesc => (C::Updated, Order::Desc),
        AutomationSort::NameAsc => (C::Name, Order::Asc),
        AutomationSort::NameDesc => (C::Name, Order::Desc),
    };
    let mut select = automation::Entity::find();
    if let Some(f) = filter {
        select = select.filter(query::automation_condition(backend, f));
    }
    select.order_by(column, order).order_by(C::Id, Order::Asc).limit(limit).offset(offset).all(c).await?.into_iter().map(from_model).collect()
}

pub async fn count(c: &impl ConnectionTrait, backend: Backend, filter: Option<&AutomationFilter>) -> Result<u64> {
    let mut select = automation::Entity::find();
    if let Some(f) = filter {
        select = select.filter(query::automation_condition(backend, f));
    }
    Ok(select.count(c).await?)
}

/// Every enabled automation (what the triggers service evaluates).
pub async fn enabled(c: &impl ConnectionTrait) -> Result<Vec<Automation>> {
    automation::Entity::find()
        .filter(automation::Column::Enabled.eq(true))
        .order_by_asc(automation::Column::Id)
        .all(c)
        .await?
        .into_iter()
        .map(from_model)
        .collect()
}

/// Automations related to `resource_id` (only those it owns, with `owned_only`).
pub async fn related_to(c: &impl ConnectionTrait, resource_id: &str, owned_only: bool) -> Result<Vec<Automation>> {
    let mut links = related::Entity::find().filter(related::Column::ResourceId.eq(resource_id));
    if owned_only {
        links = links.filter(related::Column::AutomationOwnedByResource.eq(true));
    }
    let ids: Vec<Uuid> = links.all(c).await?.into_iter().map(|link| link.automation_id).collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    automation::Entity::find()
        .filter(automation::Column::Id.is_in(ids))
        .order_by_asc(automation::Column::Name)
        .all(c)
        .await?
        .into_iter()
        .map(from_model)
        .collect()
}

/// Deletes the automations `resource_id` owns that were created at or before `created_before`;
/// returns them.
pub async fn delete_owned_by(c: &impl ConnectionTrait, resource_id: &str, created_before: DateTime) -> Result<Vec<Automation>> {
    let owned: Vec<Automation> = related_to(c, resource_id, true).await?.into_iter().filter(|a| a.created <= created_before).collect();
    if !owned.is_empty() {
        let ids: Vec<Uuid> = owned.iter().map(|a| a.id).collect();
        related::Entity::delete_many().filter(related::Column::AutomationId.is_in(ids.clone())).exec(c).await?;
        automation::Entity::delete_many().filter(automation::Column::Id.is_in(ids)).exec(c).await?;
    }
    Ok(owned)
}

/// Relates the automation to exactly the deployments its `selected` run-deployment
/// actions run; ownership links are left alone.
async fn relate_to_selected_deployments(c: &impl ConnectionTrait, id: Uuid, definition: &AutomationUpdate, now: DateTime) -> Result<()> {
    related::Entity::delete_many()
        .filter(related::Column::AutomationId.eq(id))
        .filter(related::Column::ResourceId.like("prefect.deployment.%"))
        .filter(related::Column::AutomationOwnedByResource.eq(false))
        .exec(c)
        .await?;
    for deployment_id in definition.selected_deployments() {
        relate(c, id, &format!("prefect.deployment.{deployment_id}"), false, now).await?;
    }
    Ok(())
}

/// Links the automation to a resource; an existing link keeps ownership once given.
async fn relate(c: &impl ConnectionTrait, automation_id: Uuid, resource_id: &str, owned: bool, now: DateTime) -> Result<()> {
    let link = related::ActiveModel {
        id: Set(Uuid::now_v7()),
        created: Set(now),
        updated: Set(now),
        automation_id: Set(automation_id),
        resource_id: Set(resource_id.to_owned()),
        automation_owned_by_resource: Set(owned),
    };
    let mut on_conflict = OnConflict::columns([related::Column::AutomationId, related::Column::ResourceId]);
    if owned {
        on_conflict.update_columns([related::Column::AutomationOwnedByResource, related::Column::Updated]);
    } else {
        on_conflict.update_column(related::Column::Updated);
    }
    related::Entity::insert(link).on_conflict(on_conflict.to_owned()).exec_without_returning(c).await?;
    Ok(())
}
