//! Global concurrency limits and their leases.
//!
//! Slot arithmetic happens in Rust on rows read inside the caller's write
//! transaction (locked with `FOR UPDATE` on PostgreSQL, serialized by the single
//! writer on SQLite), so a limit can never go below zero or above its size, no
//! matter how many callers race.

use prefect_domain::concurrency::{ConcurrencyLease, ConcurrencyLeaseHolder, ConcurrencyLimitV2, ConcurrencyLimitV2Create, ConcurrencyLimitV2Update, slots};
use prefect_domain::time::{self, DateTime};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, Order, QueryFilter, QueryOrder, QuerySelect,
};
use uuid::Uuid;

use crate::Result;
use crate::convert::{self, to_json};
use crate::db::Backend;
use crate::entity::{concurrency_lease, concurrency_limit_v2};

/// Upper bounds used when decaying denied slots (tag limits wait less than others).
#[derive(Debug, Clone, Copy)]
pub struct SlotWaits {
    pub tag_limit_seconds: f64,
    pub other_limit_seconds: f64,
}

impl Default for SlotWaits {
    fn default() -> Self {
        SlotWaits { tag_limit_seconds: 10.0, other_limit_seconds: 30.0 }
    }
}

impl SlotWaits {
    fn for_limit(&self, name: &str) -> f64 {
        if name.starts_with(prefect_domain::concurrency::TAG_LIMIT_PREFIX) { self.tag_limit_seconds } else { self.other_limit_seconds }
    }
}

pub async fn create(c: &impl ConnectionTrait, create: &ConcurrencyLimitV2Create, now: DateTime) -> Result<ConcurrencyLimitV2> {
    let model = concurrency_limit_v2::ActiveModel {
        id: Set(Uuid::now_v7()),
        created: Set(now),
        updated: Set(now),
        active: Set(create.active),
        name: Set(create.name.clone()),
        limit: Set(create.limit),
        active_slots: Set(create.active_slots),
        denied_slots: Set(create.denied_slots),
        slot_decay_per_second: Set(create.slot_decay_per_second),
        avg_slot_occupancy_seconds: Set(2.0),
    };
    let model = concurrency_limit_v2::Entity::insert(model).exec_with_returning(c).await?;
    Ok(convert::concurrency_limit(model))
}

pub async fn read(c: &impl ConnectionTrait, id: Uuid) -> Result<Option<ConcurrencyLimitV2>> {
    Ok(concurrency_limit_v2::Entity::find_by_id(id).one(c).await?.map(convert::concurrency_limit))
}

/// [`read`] on the SQLite writer's own connection (see [`crate::direct_writes`]).
pub fn read_direct(txn: &crate::direct_writes::DirectTransaction<'_>, id: Uuid) -> Result<Option<ConcurrencyLimitV2>> {
    let select = concurrency_limit_v2::Entity::find_by_id(id);
    let model: Option<concurrency_limit_v2::Model> = txn.query_one(&sea_orm::QueryTrait::build(&select, sea_orm::DbBackend::Sqlite))?;
    Ok(model.map(convert::concurrency_limit))
}

/// A limit's row by column position: the `Column` enum's order, which is the order
/// `find_by_id` selects them in (`a_limit_read_directly_is_the_limit_sea_orm_reads` checks it).
impl crate::rows::Decoded for concurrency_limit_v2::Model {
    fn decode(row: &impl crate::rows::PositionalRow) -> std::result::Result<Self, sea_orm::TryGetError> {
        use concurrency_limit_v2::Column as C;
        Ok(concurrency_limit_v2::Model {
            id: row.at(C::Id as usize)?,
            created: row.at(C::Created as usize)?,
            updated: row.at(C::Updated as usize)?,
            active: row.at(C::Active as usize)?,
            name: row.at(C::Name as usize)?,
            limit: row.at(C::Limit as usize)?,
            active_slots: row.at(C::ActiveSlots as usize)?,
            denied_slots: row.at(C::DeniedSlots as usize)?,
            slot_decay_per_second: row.at(C::SlotDecayPerSecond as usize)?,
            avg_slot_occupancy_seconds: row.at(C::AvgSlotOccupancySeconds as usize)?,
        })
    }
}

pub async fn read_by_name(c: &impl ConnectionTrait, name: &str) -> Result<Option<ConcurrencyLimitV2>> {
    Ok(concurrency_limit_v2::Entity::find().filter(concurrency_limit_v2::Column::Name.eq(name)).one(c).await?.map(convert::concurrency_limit))
}

pub async fn read_by_names(c: &impl ConnectionTrait, names: &[String]) -> Result<Vec<ConcurrencyLimitV2>> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    Ok(concurrency_limit_v2::Entity::find()
        .filter(concurrency_limit_v2::Column::Name.is_in(names.iter().cloned()))
        .order_by(concurrency_limit_v2::Column::Name, Order::Asc)
        .all(c)
        .await?
        .into_iter()
        .map(convert::concurrency_limit)
        .collect())
}

/// Limits ordered by name; `name_prefix` restricts to e.g. `tag:` limits.
pub async fn list(c: &impl ConnectionTrait, name_prefix: Option<&str>, limit: u64, offset: u64) -> Result<Vec<ConcurrencyLimitV2>> {
    let mut select = concurrency_limit_v2::Entity::find();
    if let Some(prefix) = name_prefix {
        select = select.filter(concurrency_limit_v2::Column::Name.starts_with(prefix));
    }
    Ok(select
        .order_by(concurrency_limit_v2::Column::Name, Order::Asc)
        .limit(limit)
        .offset(offset)
        .all(c)
        .await?
        .into_iter()
        .map(convert::concurrency_limit)
        .collect())
}

/// Applies an update; `false` if the limit does not exist.
pub async fn update(c: &impl ConnectionTrait, id: Uuid, update: &ConcurrencyLimitV2Update, now: DateTime) -> Result<bool> {
    let model = concurrency_limit_v2::ActiveModel {
        updated: Set(now),
        active: update.active.map_or(NotSet, Set),
        name: update.name.clone().map_or(NotSet, Set),
        limit: update.limit.map_or(NotSet, Set),
        active_slots: update.active_slots.map_or(NotSet, Set),
        denied_slots: update.denied_slots.map_or(NotSet, Set),
        slot_decay_per_second: update.slot_decay_per_second.map_or(NotSet, Set),
        ..Default::default()
    };
    let result = concurrency_limit_v2::Entity::update_many().set(model).filter(concurrency_limit_v2::Column::Id.eq(id)).exec(c).await?;
    Ok(result.rows_affected > 0)
}

/// Deletes a limit and the leases on it.
pub async fn delete(c: &impl ConnectionTrait, id: Uuid) -> Result<bool> {
    let leases = leases_on_limit(c, id).await?;
    let lease_ids: Vec<Uuid> = leases.iter().map(|l| l.id).collect();
    if !lease_ids.is_empty() {
        concurrency_lease::Entity::delete_many().filter(concurrency_lease::Column::Id.is_in(lease_ids)).exec(c).await?;
    }
    Ok(concurrency_limit_v2::Entity::delete_by_id(id).exec(c).await?.rows_affected > 0)
}

/// Reads limits by id, locking them on PostgreSQL for the rest of the transaction.
async fn lock_limits(c: &impl ConnectionTrait, backend: Backend, ids: &[Uuid]) -> Result<Vec<concurrency_limit_v2::Model>> {
    let mut select = concurrency_limit_v2::Entity::find()
        .filter(concurrency_limit_v2::Column::Id.is_in(ids.iter().copied()))
        .order_by(concurrency_limit_v2::Column::Id, Order::Asc);
    if backend == Backend::Postgres {
        select = select.lock_exclusive();
    }
    Ok(select.all(c).await?)
}

fn elapsed(model: &concurrency_limit_v2::Model, now: DateTime) -> f64 {
    time::seconds(now - model.updated)
}

fn decayed(model: &concurrency_limit_v2::Model, waits: &SlotWaits, now: DateTime) -> (i64, i64) {
    let e = elapsed(model, now);
    let active = slots::active_after_decay(model.active_slots, model.slot_decay_per_second, e);
    let denied = slots::denied_after_decay(model.denied_slots, model.slot_decay_per_second, model.avg_slot_occupancy_seconds, waits.for_limit(&model.name), e);
    (active, denied)
}

/// Active slots of a limit as of `now`, after decay.
pub fn active_slots_now(limit: &ConcurrencyLimitV2, now: DateTime) -> i64 {
    slots::active_after_decay(limit.active_slots, limit.slot_decay_per_second, time::seconds(now - limit.updated))
}

/// Takes `slots` on every limit in `ids`, or on none. Returns `false` (changing
/// nothing) if any is missing, inactive, or would exceed its size.
pub async fn increment(c: &impl ConnectionTrait, backend: Backend, ids: &[Uuid], slots: i64, waits: &SlotWaits, now: DateTime) -> Result<bool> {
    if ids.is_empty() {
        return Ok(true);
    }
    let models = lock_limits(c, backend, ids).await?;
    if models.len() != ids.len() {
        // A limit vanished since the caller read it.
        return Ok(false);
    }
    let mut plans = Vec::with_capacity(models.len());
    for model in &models {
        let (current, denied) = decayed(model, waits, now);
        if !model.active || current + slots > model.limit {
            return Ok(false);
        }
        plans.push((model.id, current + slots, denied));
    }
    for (id, new_active, denied) in plans {
        set_slots(c, id, new_active, denied, None, now).await?;
    }
    Ok(true)
}

/// Returns `slots` to every active limit in `ids` (never below zero), and
/// updates the average occupancy when `occupancy_seconds` is known.
pub async fn decrement(
    c: &impl ConnectionTrait,
    backend: Backend,
    ids: &[Uuid],
    slots: i64,
    occupancy_seconds: Option<f64>,
    waits: &SlotWaits,
    now: DateTime,
) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    for model in lock_limits(c, backend, ids).await?.into_iter().filter(|m| m.active) {
        let (current, denied) = decayed(&model, waits, now);
        let occupancy = occupancy_seconds.filter(|s| *s > 0.0).map(|s| slots::updated_avg_occupancy(model.avg_slot_occupancy_seconds, model.limit, s, slots));
        set_slots(c, model.id, (current - slots).max(0), denied, occupancy, now).await?;
    }
    Ok(())
}

/// Records `slots` denied requests on the active limits (they raise the next wait).
pub async fn add_denied(
    c: &impl ConnectionTrait,
    backend: Backend,
    ids: &[Uuid],
    slots: i64,
    waits: &SlotWaits,
    now: DateTime,
) -> Result<Vec<ConcurrencyLimitV2>> {
    let mut out = Vec::new();
    for model in lock_limits(c, backend, ids).await?.into_iter().filter(|m| m.active) {
        let (current, denied) = decayed(&model, waits, now);
        set_slots(c, model.id, current, denied + slots, None, now).await?;
        let mut limit = convert::concurrency_limit(model);
        limit.active_slots = current;
        limit.denied_slots = denied + slots;
        out.push(limit);
    }
    Ok(out)
}

async fn set_slots(c: &impl ConnectionTrait, id: Uuid, active: i64, denied: i64, occupancy: Option<f64>, now: DateTime) -> Result<()> {
    let model = concurrency_limit_v2::ActiveModel {
        updated: Set(now),
        active_slots: Set(active),
        denied_slots: Set(denied),
        avg_slot_occupancy_seconds: occupancy.map_or(NotSet, Set),
        ..Default::default()
    };
    concurrency_limit_v2::Entity::update_many().set(model).filter(concurrency_limit_v2::Column::Id.eq(id)).exec(c).await?;
    Ok(())
}

pub async fn create_lease(
    c: &impl ConnectionTrait,
    limit_ids: &[Uuid],
    slots: i64,
    ttl_seconds: f64,
    holder: Option<ConcurrencyLeaseHolder>,
    now: DateTime,
) -> Result<Uuid> {
    let id = Uuid::now_v7();
    let model = concurrency_lease::ActiveModel {
        id: Set(id),
        created: Set(now),
        updated: Set(now),
        expiration: Set(now + time::from_seconds(ttl_seconds)),
        resource_ids: Set(to_json(&limit_ids)),
        slots: Set(slots),
        holder_type: Set(holder.map(|h| h.kind.as_str().to_owned())),
        holder_id: Set(holder.map(|h| h.id)),
    };
    concurrency_lease::Entity::insert(model).exec_without_returning(c).await?;
    Ok(id)
}

pub async fn read_lease(c: &impl ConnectionTrait, id: Uuid) -> Result<Option<ConcurrencyLease>> {
    concurrency_lease::Entity::find_by_id(id).one(c).await?.map(convert::concurrency_lease).transpose()
}

/// Extends a lease that has not been reclaimed yet (even if past its expiry, as Prefect
/// does); `false` if it is gone.
pub async fn renew_lease(c: &impl ConnectionTrait, id: Uuid, ttl_seconds: f64, now: DateTime) -> Result<bool> {
    let result = concurrency_lease::Entity::update_many()
        .col_expr(concurrency_lease::Column::Expiration, Expr::value(now + time::from_seconds(ttl_seconds)))
        .col_expr(concurrency_lease::Column::Updated, Expr::value(now))
        .filter(concurrency_lease::Column::Id.eq(id))
        .exec(c)
        .await?;
    Ok(result.rows_affected > 0)
}

/// Deletes a lease; `false` if it did not exist.
pub async fn revoke_lease(c: &impl ConnectionTrait, id: Uuid) -> Result<bool> {
    Ok(concurrency_lease::Entity::delete_by_id(id).exec(c).await?.rows_affected > 0)
}

/// Leases held by `holder_id` on any of `limit_ids`.
pub async fn leases_held_by(c: &impl ConnectionTrait, limit_ids: &[Uuid], holder_id: Uuid) -> Result<Vec<ConcurrencyLease>> {
    let leases = concurrency_lease::Entity::find().filter(concurrency_lease::Column::HolderId.eq(holder_id)).all(c).await?;
    leases.into_iter().map(convert::concurrency_lease).filter(|l| l.as_ref().map_or(true, |l| l.resource_ids.iter().any(|r| limit_ids.contains(r)))).collect()
}

/// Unexpired leases that hold slots of `limit_id`.
pub async fn leases_on_limit(c: &impl ConnectionTrait, limit_id: Uuid) -> Result<Vec<ConcurrencyLease>> {
    // Lease rows are few (one per running holder); scanning them beats a join table on every acquire.
    let needle = limit_id.to_string();
    let leases = concurrency_lease::Entity::find().all(c).await?;
    leases
        .into_iter()
        .filter(|m| m.resource_ids.as_array().is_some_and(|ids| ids.iter().any(|v| v.as_str() == Some(needle.as_str()))))
        .map(convert::concurrency_lease)
        .collect()
}

/// Up to `limit` leases that expired before `now`, oldest first.
pub async fn expired_leases(c: &impl ConnectionTrait, backend: Backend, now: DateTime, limit: u64) -> Result<Vec<ConcurrencyLease>> {
    let mut select = concurrency_lease::Entity::find()
        .filter(Condition::all().add(concurrency_lease::Column::Expiration.lte(now)))
        .order_by(concurrency_lease::Column::Expiration, Order::Asc)
        .limit(limit);
    if backend == Backend::Postgres {
        select = select.lock_with_behavior(sea_orm::sea_query::LockType::Update, sea_orm::sea_query::LockBehavior::SkipLocked);
    }
    select.all(c).await?.into_iter().map(convert::concurrency_lease).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::migrated_sqlite;

    /// A limit read on the writer's own connection, by column position, is the limit SeaORM reads.
    #[tokio::test]
    async fn a_limit_read_directly_is_the_limit_sea_orm_reads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = migrated_sqlite(&dir).await;
        let create =
            ConcurrencyLimitV2Create { active: false, name: "deployment:x".to_owned(), limit: 3, active_slots: 2, denied_slots: 1, slot_decay_per_second: 0.5 };
        let created = create_limit(&db, &create).await;
        let through_sea_orm = read(db.reader(), created.id).await.expect("read").expect("the limit");
        let id = created.id;
        let direct = db.write_direct(move |txn| read_direct(txn, id)).await.expect("direct read").expect("the limit");
        assert_eq!(direct, through_sea_orm);
        assert_eq!(db.write_direct(|txn| read_direct(txn, Uuid::now_v7())).await.expect("direct read"), None);
    }

    async fn create_limit(db: &crate::Database, create: &ConcurrencyLimitV2Create) -> ConcurrencyLimitV2 {
        let txn = db.begin_write().await.expect("begin");
        let limit = super::create(&txn, create, prefect_domain::time::now()).await.expect("create");
        crate::commit(txn).await.expect("commit");
        limit
    }
}
