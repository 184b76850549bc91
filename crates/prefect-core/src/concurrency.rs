//! Concurrency limit use cases: global limits, leases, and the tag-limit (V1) view.

use std::time::Duration;

use prefect_domain::concurrency::{
    ConcurrencyLeaseHolder, ConcurrencyLimitV2, ConcurrencyLimitV2Create, ConcurrencyLimitV2Update, ConcurrencyLimitWithLeaseResponse, ConcurrencyMode,
    GlobalConcurrencyLimitResponse, LeaseHolderType, MinimalConcurrencyLimitResponse, TAG_LIMIT_PREFIX, TagConcurrencyLimit,
};
use prefect_domain::time::{self, DateTime};
use prefect_orchestration::math::clamped_poisson_interval;
use prefect_orchestration::task_rules::TAG_LEASE_TTL_SECONDS;
use prefect_storage::{DatabaseTransaction, concurrency};
use rand::Rng;
use uuid::Uuid;

use crate::{Core, Error, Result};

/// How slots are taken: held until released, or decaying on their own (rate limits).
pub type AcquireMode = ConcurrencyMode;

/// Limits whose slots were taken.
pub type Acquired = Vec<MinimalConcurrencyLimitResponse>;

fn minimal(limit: &ConcurrencyLimitV2) -> MinimalConcurrencyLimitResponse {
    MinimalConcurrencyLimitResponse { id: limit.id, name: limit.name.clone(), limit: limit.limit }
}

fn response(limit: ConcurrencyLimitV2, now: DateTime) -> GlobalConcurrencyLimitResponse {
    GlobalConcurrencyLimitResponse {
        active_slots: concurrency::active_slots_now(&limit, now),
        id: limit.id,
        created: limit.created,
        updated: limit.updated,
        active: limit.active,
        name: limit.name,
        limit: limit.limit,
        slot_decay_per_second: limit.slot_decay_per_second,
    }
}

fn not_found() -> Error {
    Error::not_found("Concurrency Limit not found")
}

impl Core {
    async fn limit_by_id_or_name(&self, c: &DatabaseTransaction, id_or_name: &str) -> Result<Option<ConcurrencyLimitV2>> {
        match Uuid::parse_str(id_or_name) {
            Ok(id) => Ok(concurrency::read(c, id).await?),
            Err(_) => Ok(concurrency::read_by_name(c, id_or_name).await?),
        }
    }

    pub async fn create_concurrency_limit(&self, create: ConcurrencyLimitV2Create) -> Result<ConcurrencyLimitV2> {
        create.validate()?;
        let txn = self.db().begin_write().await?;
        if concurrency::read_by_name(&txn, &create.name).await?.is_some() {
            return Err(Error::Conflict(format!("Concurrency limit with name {:?} already exists.", create.name)));
        }
        let limit = concurrency::create(&txn, &create, time::now()).await?;
        prefect_storage::commit(txn).await?;
        Ok(limit)
    }

    pub async fn read_concurrency_limit(&self, id_or_name: &str) -> Result<GlobalConcurrencyLimitResponse> {
        let reader = self.db().reader();
        let found = match Uuid::parse_str(id_or_name) {
            Ok(id) => concurrency::read(reader, id).await?,
            Err(_) => concurrency::read_by_name(reader, id_or_name).await?,
        };
        found.map(|l| response(l, time::now())).ok_or_else(not_found)
    }

    pub async fn filter_concurrency_limits(&self, limit: Option<u64>, offset: u64) -> Result<Vec<GlobalConcurrencyLimitResponse>> {
        let limit = self.settings().limit(limit)?;
        let now = time::now();
        Ok(concurrency::list(self.db().reader(), None, limit, offset).await?.into_iter().map(|l| response(l, now)).collect())
    }

    pub async fn update_concurrency_limit(&self, id_or_name: &str, update: ConcurrencyLimitV2Update) -> Result<()> {
        update.validate()?;
        let txn = self.db().begin_write().await?;
        let limit = self.limit_by_id_or_name(&txn, id_or_name).await?.ok_or_else(not_found)?;
        concurrency::update(&txn, limit.id, &update, time::now()).await?;
        prefect_storage::commit(txn).await?;
        Ok(())
    }

    pub async fn delete_concurrency_limit(&self, id_or_name: &str) -> Result<()> {
        let txn = self.db().begin_write().await?;
        let limit = self.limit_by_id_or_name(&txn, id_or_name).await?.ok_or_else(not_found)?;
        concurrency::delete(&txn, limit.id).await?;
        prefect_storage::commit(txn).await?;
        Ok(())
    }

    /// Takes `slots` on every active named limit (unknown names are ignored). When
    /// any is full, nothing is taken and the answer is `Locked` with a retry delay.
    pub async fn increment_concurrency_slots(&self, names: &[String], slots: i64, mode: AcquireMode) -> Result<Acquired> {
        let (limits, _) = self.acquire(names, slots, mode, None).await?;
        Ok(limits.iter().map(minimal).collect())
    }

    /// Like [`Core::increment_concurrency_slots`], and records a lease that returns the slots when revoked or expired.
    pub async fn increment_concurrency_slots_with_lease(
        &self,
        names: &[String],
        slots: i64,
        mode: AcquireMode,
        lease_duration_seconds: f64,
        holder: Option<ConcurrencyLeaseHolder>,
    ) -> Result<ConcurrencyLimitWithLeaseResponse> {
        if !(60.0..=86_400.0).contains(&lease_duration_seconds) {
            return Err(Error::invalid("lease_duration", "Input should be between 60 and 86400"));
        }
        let (limits, lease_id) = self.acquire(names, slots, mode, Some((lease_duration_seconds, holder))).await?;
        Ok(ConcurrencyLimitWithLeaseResponse { lease_id: lease_id.unwrap_or_else(Uuid::now_v7), limits: limits.iter().map(minimal).collect() })
    }

    async fn acquire(
        &self,
        names: &[String],
        slots: i64,
        mode: AcquireMode,
        lease: Option<(f64, Option<ConcurrencyLeaseHolder>)>,
    ) -> Result<(Vec<ConcurrencyLimitV2>, Option<Uuid>)> {
        if slots <= 0 {
            return Err(Error::invalid("slots", "Input should be greater than 0"));
        }
        if names.is_empty() {
            return Err(Error::invalid("names", "List should have at least 1 item after validation, not 0"));
        }
        let now = time::now();
        let waits = self.settings().slot_waits();
        let txn = self.db().begin_write().await?;
        let limits = concurrency::read_by_names(&txn, names).await?;
        let active: Vec<&ConcurrencyLimitV2> = limits.iter().filter(|l| l.active).collect();
        if active.iter().any(|l| l.limit < slots) {
            return Err(Error::invalid("slots", "Slots requested is greater than the limit"));
        }
        if mode == ConcurrencyMode::RateLimit {
            let non_decaying: Vec<&str> = active.iter().filter(|l| l.slot_decay_per_second == 0.0).map(|l| l.name.as_str()).collect();
            if !non_decaying.is_empty() {
                return Err(Error::invalid(
                    "mode",
                    format!(
                        "Only concurrency limits with slot decay can be used for rate limiting. The following limits do not have a decay configured: {:?}",
                        non_decaying.join(",")
                    ),
                ));
            }
        }
        let ids: Vec<Uuid> = active.iter().map(|l| l.id).collect();
        if !concurrency::increment(&txn, self.db().backend(), &ids, slots, &waits, now).await? {
            let denied = concurrency::add_denied(&txn, self.db().backend(), &ids, slots, &waits, now).await?;
            prefect_storage::commit(txn).await?;
            return Err(self.locked(&denied, slots));
        }
        let lease_id = match lease {
            // A lease is recorded even when no limit matched: the client renews and releases it by id.
            Some((ttl, holder)) => Some(concurrency::create_lease(&txn, &ids, slots, ttl, holder, now).await?),
            None => None,
        };
        prefect_storage::commit(txn).await?;
        Ok((limits, lease_id))
    }

    /// The 423 answer for a blocked acquire, with Prefect's Retry-After estimate.
    fn locked(&self, limits: &[ConcurrencyLimitV2], slots: i64) -> Error {
        let blocking = |l: &ConcurrencyLimitV2| {
            if l.slot_decay_per_second > 0.0 { (slots + l.denied_slots) as f64 } else { (slots + l.denied_slots) as f64 / l.limit.max(1) as f64 }
        };
        let Some(limit) = limits.iter().max_by(|a, b| blocking(a).total_cmp(&blocking(b))) else {
            return Error::Locked { detail: None, retry_after: Some(Duration::from_secs(1)) };
        };
        let blocking_slots = blocking(limit);
        let average = if limit.slot_decay_per_second == 0.0 {
            let max_wait = if limit.name.starts_with(TAG_LIMIT_PREFIX) {
                self.settings().tag_concurrency_slot_wait_seconds
            } else {
                self.settings().maximum_concurrency_slot_wait_seconds
            };
            let per_slot = limit.avg_slot_occupancy_seconds.min(max_wait);
            (per_slot * blocking_slots).min(max_wait)
        } else {
            blocking_slots / limit.slot_decay_per_second
        };
        let retry_after = clamped_poisson_interval(average, 0.3, rand::rng().random::<f64>());
        Error::Locked { detail: None, retry_after: Some(Duration::from_secs_f64(retry_after.max(0.0))) }
    }

    /// Returns `slots` to the named active limits.
    pub async fn decrement_concurrency_slots(&self, names: &[String], slots: i64, occupancy_seconds: Option<f64>) -> Result<Acquired> {
        if slots <= 0 {
            return Err(Error::invalid("slots", "Input should be greater than 0"));
        }
        let txn = self.db().begin_write().await?;
        let limits = concurrency::read_by_names(&txn, names).await?;
        let ids: Vec<Uuid> = limits.iter().filter(|l| l.active).map(|l| l.id).collect();
        concurrency::decrement(&txn, self.db().backend(), &ids, slots, occupancy_seconds, &self.settings().slot_waits(), time::now()).await?;
        prefect_storage::commit(txn).await?;
        Ok(limits.iter().map(minimal).collect())
    }

    /// Releases a lease's slots; an unknown lease is a no-op.
    pub async fn decrement_concurrency_slots_with_lease(&self, lease_id: Uuid) -> Result<()> {
        let now = time::now();
        let txn = self.db().begin_write().await?;
        if let Some(lease) = concurrency::read_lease(&txn, lease_id).await? {
            let occupancy = time::seconds(now - lease.created);
            concurrency::decrement(&txn, self.db().backend(), &lease.resource_ids, lease.slots, Some(occupancy), &self.settings().slot_waits(), now).await?;
            concurrency::revoke_lease(&txn, lease_id).await?;
        }
        prefect_storage::commit(txn).await?;
        Ok(())
    }

    /// Extends a lease; `Gone` if it expired or never existed.
    pub async fn renew_concurrency_lease(&self, lease_id: Uuid, lease_duration_seconds: f64) -> Result<()> {
        if !(60.0..=86_400.0).contains(&lease_duration_seconds) {
            return Err(Error::invalid("lease_duration", "Input should be between 60 and 86400"));
        }
        let txn = self.db().begin_write().await?;
        let renewed = concurrency::renew_lease(&txn, lease_id, lease_duration_seconds, time::now()).await?;
        prefect_storage::commit(txn).await?;
        if renewed { Ok(()) } else { Err(Error::Gone("Lease not found - it may have expired or been revoked".to_owned())) }
    }

    /// Releases up to `batch` expired leases; returns how many.
    pub async fn reclaim_expired_leases(&self, batch: u64) -> Result<usize> {
        let now = time::now();
        let txn = self.db().begin_write().await?;
        let expired = concurrency::expired_leases(&txn, self.db().backend(), now, batch).await?;
        for lease in &expired {
            concurrency::decrement(&txn, self.db().backend(), &lease.resource_ids, lease.slots, None, &self.settings().slot_waits(), now).await?;
            concurrency::revoke_lease(&txn, lease.id).await?;
        }
        prefect_storage::commit(txn).await?;
        Ok(expired.len())
    }

    // ---- the tag-limit (V1) view over `tag:<tag>` limits ----

    async fn tag_view(&self, c: &impl prefect_storage::ConnectionTrait, limit: ConcurrencyLimitV2) -> Result<TagConcurrencyLimit> {
        let holders = concurrency::leases_on_limit(c, limit.id).await?;
        let mut active_slots: Vec<Uuid> = holders.iter().filter_map(|l| l.holder.filter(|h| h.kind == LeaseHolderType::TaskRun).map(|h| h.id)).collect();
        active_slots.sort_unstable();
        active_slots.dedup();
        Ok(TagConcurrencyLimit {
            id: limit.id,
            created: limit.created,
            updated: limit.updated,
            tag: limit.name.trim_start_matches(TAG_LIMIT_PREFIX).to_owned(),
            concurrency_limit: limit.limit,
            active_slots,
        })
    }

    /// Creates or resizes the limit for `tag` (`created` tells which).
    pub async fn upsert_tag_concurrency_limit(&self, tag: &str, size: i64) -> Result<(TagConcurrencyLimit, bool)> {
        let name = format!("{TAG_LIMIT_PREFIX}{tag}");
        let now = time::now();
        let txn = self.db().begin_write().await?;
        let (limit, created) = match concurrency::read_by_name(&txn, &name).await? {
            Some(existing) => {
                concurrency::update(&txn, existing.id, &ConcurrencyLimitV2Update { limit: Some(size), ..Default::default() }, now).await?;
                (ConcurrencyLimitV2 { limit: size, updated: now, ..existing }, false)
            }
            None => {
                let create = ConcurrencyLimitV2Create { active: true, name, limit: size, active_slots: 0, denied_slots: 0, slot_decay_per_second: 0.0 };
                (concurrency::create(&txn, &create, now).await?, true)
            }
        };
        let view = self.tag_view(&txn, limit).await?;
        prefect_storage::commit(txn).await?;
        Ok((view, created))
    }

    pub async fn read_tag_concurrency_limit(&self, id: Uuid) -> Result<TagConcurrencyLimit> {
        let reader = self.db().reader();
        let limit = concurrency::read(reader, id).await?.filter(|l| l.name.starts_with(TAG_LIMIT_PREFIX));
        match limit {
            Some(l) => self.tag_view(reader, l).await,
            None => Err(Error::not_found("Concurrency limit not found")),
        }
    }

    pub async fn read_tag_concurrency_limit_by_tag(&self, tag: &str) -> Result<TagConcurrencyLimit> {
        let reader = self.db().reader();
        match concurrency::read_by_name(reader, &format!("{TAG_LIMIT_PREFIX}{tag}")).await? {
            Some(l) => self.tag_view(reader, l).await,
            None => Err(Error::not_found("Concurrency limit not found")),
        }
    }

    pub async fn filter_tag_concurrency_limits(&self, limit: Option<u64>, offset: u64) -> Result<Vec<TagConcurrencyLimit>> {
        let limit = self.settings().limit(limit)?;
        let reader = self.db().reader();
        let mut out = Vec::new();
        for l in concurrency::list(reader, Some(TAG_LIMIT_PREFIX), limit, offset).await? {
            out.push(self.tag_view(reader, l).await?);
        }
        Ok(out)
    }

    /// Deletes a tag limit (by id, or by tag) and its leases.
    pub async fn delete_tag_concurrency_limit(&self, id: Option<Uuid>, tag: Option<&str>) -> Result<()> {
        let txn = self.db().begin_write().await?;
        let limit = match (id, tag) {
            (Some(id), _) => concurrency::read(&txn, id).await?,
            (None, Some(tag)) => concurrency::read_by_name(&txn, &format!("{TAG_LIMIT_PREFIX}{tag}")).await?,
            (None, None) => None,
        };
        let limit = limit.filter(|l| l.name.starts_with(TAG_LIMIT_PREFIX)).ok_or_else(|| Error::not_found("Concurrency limit not found"))?;
        concurrency::delete(&txn, limit.id).await?;
        prefect_storage::commit(txn).await?;
        Ok(())
    }

    /// Drops every lease on a tag limit; with `slot_override`, those task runs hold the slots instead.
    pub async fn reset_tag_concurrency_limit(&self, tag: &str, slot_override: Option<Vec<Uuid>>) -> Result<()> {
        let now = time::now();
        let waits = self.settings().slot_waits();
        let txn = self.db().begin_write().await?;
        let limit =
            concurrency::read_by_name(&txn, &format!("{TAG_LIMIT_PREFIX}{tag}")).await?.ok_or_else(|| Error::not_found("Concurrency limit not found"))?;
        for lease in concurrency::leases_on_limit(&txn, limit.id).await? {
            concurrency::revoke_lease(&txn, lease.id).await?;
        }
        concurrency::update(&txn, limit.id, &ConcurrencyLimitV2Update { active_slots: Some(0), denied_slots: Some(0), ..Default::default() }, now).await?;
        for task_run_id in slot_override.unwrap_or_default() {
            if concurrency::increment(&txn, self.db().backend(), &[limit.id], 1, &waits, now).await? {
                let holder = ConcurrencyLeaseHolder { kind: LeaseHolderType::TaskRun, id: task_run_id };
                concurrency::create_lease(&txn, &[limit.id], 1, TAG_LEASE_TTL_SECONDS, Some(holder), now).await?;
            }
        }
        prefect_storage::commit(txn).await?;
        Ok(())
    }

    /// V1 acquire for a task run on its tags: all or nothing, 423 when any is full or zero.
    pub async fn increment_tag_concurrency_slots(&self, tags: &[String], task_run_id: Uuid) -> Result<Acquired> {
        let names: Vec<String> = tags.iter().map(|t| format!("{TAG_LIMIT_PREFIX}{t}")).collect();
        let now = time::now();
        let waits = self.settings().slot_waits();
        let txn = self.db().begin_write().await?;
        let limits = concurrency::read_by_names(&txn, &names).await?;
        if let Some(zero) = limits.iter().find(|l| l.limit == 0) {
            let tag = zero.name.trim_start_matches(TAG_LIMIT_PREFIX);
            return Err(Error::Locked {
                detail: Some(format!("The concurrency limit on tag \"{tag}\" is 0 and will deadlock if the task tries to run again.")),
                retry_after: None,
            });
        }
        let active: Vec<&ConcurrencyLimitV2> = limits.iter().filter(|l| l.active).collect();
        let ids: Vec<Uuid> = active.iter().map(|l| l.id).collect();
        if !ids.is_empty() {
            if !concurrency::increment(&txn, self.db().backend(), &ids, 1, &waits, now).await? {
                let tag = active.first().map_or("", |l| l.name.trim_start_matches(TAG_LIMIT_PREFIX));
                return Err(Error::Locked {
                    detail: Some(format!("Concurrency limit for the {tag} tag has been reached")),
                    retry_after: Some(Duration::from_secs_f64(self.settings().tag_concurrency_slot_wait_seconds)),
                });
            }
            let holder = ConcurrencyLeaseHolder { kind: LeaseHolderType::TaskRun, id: task_run_id };
            concurrency::create_lease(&txn, &ids, 1, TAG_LEASE_TTL_SECONDS, Some(holder), now).await?;
        }
        prefect_storage::commit(txn).await?;
        Ok(active
            .iter()
            .map(|l| MinimalConcurrencyLimitResponse { id: l.id, name: l.name.trim_start_matches(TAG_LIMIT_PREFIX).to_owned(), limit: l.limit })
            .collect())
    }

    /// V1 release: drops the task run's leases on these tags and returns their slots.
    pub async fn decrement_tag_concurrency_slots(&self, tags: &[String], task_run_id: Uuid) -> Result<Acquired> {
        let names: Vec<String> = tags.iter().map(|t| format!("{TAG_LIMIT_PREFIX}{t}")).collect();
        let now = time::now();
        let txn = self.db().begin_write().await?;
        let limits = concurrency::read_by_names(&txn, &names).await?;
        let ids: Vec<Uuid> = limits.iter().map(|l| l.id).collect();
        for lease in concurrency::leases_held_by(&txn, &ids, task_run_id).await? {
            concurrency::decrement(&txn, self.db().backend(), &lease.resource_ids, lease.slots, None, &self.settings().slot_waits(), now).await?;
            concurrency::revoke_lease(&txn, lease.id).await?;
        }
        prefect_storage::commit(txn).await?;
        Ok(limits.iter().map(minimal).collect())
    }
}
