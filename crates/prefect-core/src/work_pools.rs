//! Work pool, work queue and worker use cases, and the worker polling path.

use prefect_domain::events::{RESOURCE_NAME, RESOURCE_ROLE, ReceivedEvent, Resource};
use prefect_domain::filters::{RunFilters, WorkPoolFilter, WorkQueueFilter};
use prefect_domain::time::{self, DateTime};
use prefect_domain::work_pool::{
    self as wp, LegacyWorkQueue, ScheduledRunsQuery, WorkPool, WorkPoolCreate, WorkPoolStatus, WorkPoolUpdate, WorkQueue, WorkQueueCreate,
    WorkQueueHealthPolicy, WorkQueueStatus, WorkQueueStatusDetail, WorkQueueUpdate, Worker, WorkerFilter, WorkerFlowRun,
};
use prefect_storage::{ConnectionTrait, flow_runs, work_pools};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::events::lifecycle;
use crate::job_variables::{self, Rules};
use crate::variables::py_repr;
use crate::{Core, Error, Result};

/// Pool of the legacy `/work_queues` routes (Prefect agents).
pub const DEFAULT_AGENT_POOL_NAME: &str = "default-agent-pool";
/// A queue polled within this long counts as READY when it is unpaused.
const RECENT_POLL_SECONDS: i64 = 60;
/// How stale `last_polled` may get before a poll stamps it again.
const POLL_STAMP_INTERVAL_MS: i64 = 1000;

fn pool_not_found(name: &str) -> Error {
    Error::not_found(format!("Work pool \"{name}\" not found."))
}

fn queue_not_found(pool: &str, queue: &str) -> Error {
    Error::not_found(format!("Work pool queue '{pool}/{queue}' not found."))
}

fn is_reserved(name: &str) -> bool {
    name.to_lowercase().starts_with("prefect")
}

fn pool_resource(pool: &WorkPool) -> Resource {
    Resource::with_id(format!("prefect.work-pool.{}", pool.id)).label(RESOURCE_NAME, &pool.name).label("prefect.work-pool.type", &pool.kind)
}

fn kebab(status: WorkPoolStatus) -> &'static str {
    match status {
        WorkPoolStatus::Ready => "ready",
        WorkPoolStatus::NotReady => "not-ready",
        WorkPoolStatus::Paused => "paused",
    }
}

/// `prefect.work-pool.{status}`, as Prefect emits when a pool's status changes.
fn pool_status_event(pool: &WorkPool, status: WorkPoolStatus, id: Uuid) -> ReceivedEvent {
    let mut event = lifecycle("work-pool", kebab(status), pool.id, None, json!({}), Vec::new());
    event.id = id;
    event.resource = pool_resource(pool);
    event
}

/// `prefect.work-queue.{status}`, related to the queue's pool.
fn queue_status_event(queue: &WorkQueue, pool: Option<&WorkPool>) -> Option<ReceivedEvent> {
    let status = queue.status?;
    let related = pool.map(|p| pool_resource(p).label(RESOURCE_ROLE, "work-pool")).into_iter().collect();
    let mut event = lifecycle("work-queue", kebab(status), queue.id, Some(&queue.name), json!({}), related);
    event.resource = event.resource.label(RESOURCE_ROLE, "work-queue");
    Some(event)
}

fn queue_event(action: &str, queue: &WorkQueue, pool: &WorkPool) -> ReceivedEvent {
    let related = vec![pool_resource(pool).label(RESOURCE_ROLE, "work-pool")];
    lifecycle("work-queue", action, queue.id, Some(&queue.name), json!({}), related)
}

/// The agents' pool (`default-agent-pool`), created with its default queue on first use,
/// inside the caller's transaction. Queues named without a pool live there.
pub(crate) async fn agent_pool(c: &impl ConnectionTrait, now: DateTime) -> Result<WorkPool> {
    if let Some(pool) = work_pools::read_pool_by_name(c, DEFAULT_AGENT_POOL_NAME).await? {
        return Ok(pool);
    }
    let create = WorkPoolCreate {
        name: DEFAULT_AGENT_POOL_NAME.to_owned(),
        description: None,
        kind: wp::AGENT_POOL_TYPE.to_owned(),
        base_job_template: Default::default(),
        is_paused: false,
        concurrency_limit: None,
        storage_configuration: Default::default(),
    };
    let mut pool = work_pools::insert_pool(c, &create, now).await?;
    let default = WorkQueueCreate::named(wp::DEFAULT_QUEUE_NAME, "The work pool's default queue.");
    let queue = work_pools::insert_queue(c, pool.id, &default, 1, now).await?;
    work_pools::set_default_queue(c, pool.id, queue.id).await?;
    pool.default_queue_id = Some(queue.id);
    Ok(pool)
}

/// Payload of a `*.updated` event, as Prefect sends it: the fields whose value changed,
/// each with `from` and `to`; `None` when nothing changed.
fn updated_fields_payload<const N: usize>(fields: [(&str, Value, Value); N]) -> Option<Map<String, Value>> {
    let mut updates = Map::new();
    for (field, from, to) in fields {
        if from != to {
            updates.insert(field.to_owned(), json!({"from": from, "to": to}));
        }
    }
    if updates.is_empty() {
        return None;
    }
    let names: Vec<Value> = updates.keys().map(|k| Value::String(k.clone())).collect();
    let mut payload = Map::new();
    payload.insert("updated_fields".to_owned(), Value::Array(names));
    payload.insert("updates".to_owned(), Value::Object(updates));
    Some(payload)
}

impl Core {
    async fn pool_by_name(&self, c: &impl ConnectionTrait, name: &str) -> Result<WorkPool> {
        work_pools::read_pool_by_name(c, name).await?.ok_or_else(|| pool_not_found(name))
    }

    async fn queue_by_name(&self, c: &impl ConnectionTrait, pool: &WorkPool, name: &str) -> Result<WorkQueue> {
        work_pools::read_queue_by_name(c, pool.id, name).await?.ok_or_else(|| queue_not_found(&pool.name, name))
    }

    async fn queue_id_by_names(&self, pool_name: &str, name: &str) -> Result<Uuid> {
        let reader = self.db().reader();
        let pool = self.pool_by_name(reader, pool_name).await?;
        Ok(self.queue_by_name(reader, &pool, name).await?.id)
    }

    /// Fills `active_slots` of pools that have a concurrency limit.
    async fn with_pool_slots(&self, c: &impl ConnectionTrait, mut pools: Vec<WorkPool>) -> Result<Vec<WorkPool>> {
        let limited: Vec<Uuid> = pools.iter().filter(|p| p.concurrency_limit.is_some()).map(|p| p.id).collect();
        let counts = work_pools::pool_active_slots(c, &limited).await?;
        for pool in pools.iter_mut().filter(|p| p.concurrency_limit.is_some()) {
            pool.active_slots = Some(counts.get(&pool.id).copied().unwrap_or(0));
        }
        Ok(pools)
    }

    /// Fills `active_slots` of queues that have a concurrency limit.
    async fn with_queue_slots(&self, c: &impl ConnectionTrait, mut queues: Vec<WorkQueue>) -> Result<Vec<WorkQueue>> {
        let limited: Vec<Uuid> = queues.iter().filter(|q| q.concurrency_limit.is_some()).map(|q| q.id).collect();
        let counts = work_pools::queue_active_slots(c, &limited).await?;
        for queue in queues.iter_mut().filter(|q| q.concurrency_limit.is_some()) {
            queue.active_slots = Some(counts.get(&queue.id).copied().unwrap_or(0));
        }
        Ok(queues)
    }

    // -------------------------------------------------------------- pools

    /// Creates a pool with its `default` queue; a taken name is a conflict.
    pub async fn create_work_pool(&self, create: WorkPoolCreate) -> Result<WorkPool> {
        create.validate()?;
        if is_reserved(&create.name) {
            return Err(Error::Forbidden("Work pools starting with 'Prefect' are reserved for internal use.".to_owned()));
        }
        let defaults = job_variables::violation(self.db().reader(), &create.base_job_template, &[], Rules::POOL_DEFAULTS).await?;
        if let Some(reason) = defaults {
            return Err(Error::unprocessable(format!("Validation failed for work pool's job variable defaults: {reason}")));
        }
        self.insert_work_pool(create).await
    }

    async fn insert_work_pool(&self, create: WorkPoolCreate) -> Result<WorkPool> {
        let now = time::now();
        let txn = self.db().begin_write().await?;
        let mut pool = match work_pools::insert_pool(&txn, &create, now).await {
            Ok(pool) => pool,
            Err(prefect_storage::Error::Conflict(_)) => {
                return Err(Error::Conflict("A work pool with this name already exists.".to_owned()));
            }
            Err(e) => return Err(e.into()),
        };
        let default = WorkQueueCreate::named(wp::DEFAULT_QUEUE_NAME, "The work pool's default queue.");
        let queue = work_pools::insert_queue(&txn, pool.id, &default, 1, now).await?;
        work_pools::set_default_queue(&txn, pool.id, queue.id).await?;
        prefect_storage::commit(txn).await?;
        pool.default_queue_id = Some(queue.id);
        if pool.concurrency_limit.is_some() {
            pool.active_slots = Some(0);
        }
        let mut created = lifecycle("work-pool", "created", pool.id, Some(&pool.name), json!({}), Vec::new());
        created.resource = pool_resource(&pool);
        self.emit(created).await;
        if let Some(status) = pool.status {
            self.emit(pool_status_event(&pool, status, Uuid::now_v7())).await;
        }
        Ok(pool)
    }

    pub async fn read_work_pool(&self, name: &str) -> Result<WorkPool> {
        let reader = self.db().reader();
        let pool = self.pool_by_name(reader, name).await?;
        Ok(self.with_pool_slots(reader, vec![pool]).await?.remove(0))
    }

    pub async fn filter_work_pools(&self, filter: Option<&WorkPoolFilter>, limit: Option<u64>, offset: u64) -> Result<Vec<WorkPool>> {
        let limit = self.settings().limit(limit)?;
        let reader = self.db().reader();
        let pools = work_pools::filter_pools(reader, self.db().backend(), filter, limit, offset).await?;
        self.with_pool_slots(reader, pools).await
    }

    pub async fn count_work_pools(&self, filter: Option<&WorkPoolFilter>) -> Result<u64> {
        Ok(work_pools::count_pools(self.db().reader(), self.db().backend(), filter).await?)
    }

    /// Applies an update; pausing sets PAUSED, unpausing READY or NOT_READY by its workers.
    pub async fn update_work_pool(&self, name: &str, update: WorkPoolUpdate) -> Result<()> {
        update.validate()?;
        if is_reserved(name) && update.changes_more_than_pause_or_limit() {
            return Err(Error::Forbidden(
                "Work pools starting with 'Prefect' are reserved for internal use and can only be updated to set concurrency limits or pause.".to_owned(),
            ));
        }
        let now = time::now();
        let txn = self.db().begin_write().await?;
        let before = self.pool_by_name(&txn, name).await?;
        let status = match (before.kind.as_str(), update.is_paused) {
            (wp::AGENT_POOL_TYPE, _) | (_, None) => None,
            (_, Some(true)) => Some(WorkPoolStatus::Paused),
            (_, Some(false)) => {
                if work_pools::has_online_worker(&txn, before.id, now).await? {
                    Some(WorkPoolStatus::Ready)
                } else {
                    Some(WorkPoolStatus::NotReady)
                }
            }
        };
        let status_change = status.filter(|s| before.status != Some(*s)).map(|s| (s, Uuid::now_v7()));
        work_pools::update_pool(&txn, before.id, &update, status_change, now).await?;
        let after = work_pools::read_pool(&txn, before.id).await?.ok_or_else(|| pool_not_found(name))?;
        prefect_storage::commit(txn).await?;

        let updates = updated_fields_payload([
            ("description", json!(before.description), json!(after.description)),
            ("base_job_template", json!(before.base_job_template), json!(after.base_job_template)),
            ("concurrency_limit", json!(before.concurrency_limit), json!(after.concurrency_limit)),
            ("storage_configuration", json!(before.storage_configuration), json!(after.storage_configuration)),
        ]);
        if let Some(payload) = updates {
            let mut event = lifecycle("work-pool", "updated", after.id, None, Value::Object(payload), Vec::new());
            event.resource = pool_resource(&after).label(RESOURCE_ROLE, "work-pool");
            self.emit(event).await;
        }
        if let Some((status, event_id)) = status_change {
            self.emit(pool_status_event(&after, status, event_id)).await;
        }
        Ok(())
    }

    pub async fn delete_work_pool(&self, name: &str) -> Result<()> {
        if is_reserved(name) {
            return Err(Error::Forbidden("Work pools starting with 'Prefect' are reserved for internal use and can not be deleted.".to_owned()));
        }
        let txn = self.db().begin_write().await?;
        let pool = self.pool_by_name(&txn, name).await?;
        let queues = work_pools::filter_queues(&txn, self.db().backend(), pool.id, None, None, 0).await?;
        work_pools::delete_pool(&txn, pool.id).await?;
        prefect_storage::commit(txn).await?;
        for queue in &queues {
            self.emit(queue_event("deleted", queue, &pool)).await;
        }
        let mut deleted = lifecycle("work-pool", "deleted", pool.id, Some(&pool.name), json!({}), Vec::new());
        deleted.resource = pool_resource(&pool);
        self.emit(deleted).await;
        Ok(())
    }

    // -------------------------------------------------------------- queues

    /// Creates a queue in `pool_name`; without a priority it takes the first free one.
    pub async fn create_work_queue(&self, pool_name: &str, create: WorkQueueCreate) -> Result<WorkQueue> {
        create.validate()?;
        let txn = self.db().begin_write().await?;
        let pool = self.pool_by_name(&txn, pool_name).await?;
        let queue = self.insert_work_queue(&txn, &pool, &create).await?;
        prefect_storage::commit(txn).await?;
        self.emit(queue_event("created", &queue, &pool)).await;
        Ok(queue)
    }

    async fn insert_work_queue(&self, txn: &impl ConnectionTrait, pool: &WorkPool, create: &WorkQueueCreate) -> Result<WorkQueue> {
        let existing = work_pools::queue_priorities(txn, pool.id).await?;
        let taken: Vec<i64> = existing.iter().map(|(_, p)| *p).collect();
        let priority = create.priority.unwrap_or_else(|| wp::next_free_priority(&taken));
        let mut queue = match work_pools::insert_queue(txn, pool.id, create, priority, time::now()).await {
            Ok(queue) => queue,
            Err(prefect_storage::Error::Conflict(_)) => {
                // Prefect's message is not an f-string: the placeholder is sent as written.
                return Err(Error::Conflict("A work queue with this name already exists in work pool {work_pool_name!r}.".to_owned()));
            }
            Err(e) => return Err(e.into()),
        };
        if create.priority.is_some() {
            let mut all = existing;
            all.push((queue.id, priority));
            all.sort_by_key(|&(_, p)| p);
            let changes = wp::reprioritize(&all, &[(queue.id, priority)]);
            work_pools::set_priorities(txn, &changes).await?;
        }
        queue.work_pool_name = Some(pool.name.clone());
        if queue.concurrency_limit.is_some() {
            queue.active_slots = Some(0);
        }
        Ok(queue)
    }

    pub async fn read_work_queue(&self, pool_name: &str, name: &str) -> Result<WorkQueue> {
        let reader = self.db().reader();
        let pool = self.pool_by_name(reader, pool_name).await?;
        let queue = self.queue_by_name(reader, &pool, name).await?;
        Ok(self.with_queue_slots(reader, vec![queue]).await?.remove(0))
    }

    pub async fn read_work_queue_by_id(&self, id: Uuid) -> Result<WorkQueue> {
        let reader = self.db().reader();
        let queue = work_pools::read_queue(reader, id).await?.ok_or_else(|| Error::not_found("Work queue not found."))?;
        Ok(self.with_queue_slots(reader, vec![queue]).await?.remove(0))
    }

    pub async fn filter_work_queues(&self, pool_name: &str, filter: Option<&WorkQueueFilter>, limit: Option<u64>, offset: u64) -> Result<Vec<WorkQueue>> {
        let limit = self.settings().limit(limit)?;
        let reader = self.db().reader();
        let pool = self.pool_by_name(reader, pool_name).await?;
        let queues = work_pools::filter_queues(reader, self.db().backend(), pool.id, filter, Some(limit), offset).await?;
        self.with_queue_slots(reader, queues).await
    }

    pub async fn update_work_queue(&self, pool_name: &str, name: &str, update: WorkQueueUpdate) -> Result<()> {
        let queue_id = self.queue_id_by_names(pool_name, name).await?;
        self.update_work_queue_by_id(queue_id, update).await
    }

    /// Applies an update: pausing sets PAUSED; unpausing a paused queue sets READY if it
    /// was polled within a minute, else NOT_READY. A new priority shifts the others.
    pub async fn update_work_queue_by_id(&self, id: Uuid, update: WorkQueueUpdate) -> Result<()> {
        update.validate()?;
        let now = time::now();
        let txn = self.db().begin_write().await?;
        let before = work_pools::read_queue(&txn, id).await?.ok_or_else(|| Error::not_found("Work queue not found."))?;
        let status = match update.is_paused {
            Some(true) if before.status != Some(WorkQueueStatus::Paused) => Some(WorkQueueStatus::Paused),
            Some(false) if before.status == Some(WorkQueueStatus::Paused) => {
                let last_polled = update.last_polled.or(before.last_polled);
                let recent = last_polled.is_some_and(|t| t > now - chrono::Duration::seconds(RECENT_POLL_SECONDS));
                Some(if recent { WorkQueueStatus::Ready } else { WorkQueueStatus::NotReady })
            }
            _ => None,
        };
        match work_pools::update_queue(&txn, id, &update, status, now).await {
            Ok(_) => {}
            Err(prefect_storage::Error::Conflict(_)) => {
                return Err(Error::Conflict(format!(
                    "A work queue with the name {} already exists in this work pool.",
                    py_repr(update.name.as_deref().unwrap_or(&before.name))
                )));
            }
            Err(e) => return Err(e.into()),
        }
        if let Some(priority) = update.priority {
            let all = work_pools::queue_priorities(&txn, before.work_pool_id).await?;
            let changes = wp::reprioritize(&all, &[(id, priority)]);
            work_pools::set_priorities(&txn, &changes).await?;
        }
        let after = work_pools::read_queue(&txn, id).await?.ok_or_else(|| Error::not_found("Work queue not found."))?;
        let pool = work_pools::read_pool(&txn, after.work_pool_id).await?;
        prefect_storage::commit(txn).await?;

        let updates = updated_fields_payload([
            ("name", json!(before.name), json!(after.name)),
            ("description", json!(before.description), json!(after.description)),
            ("concurrency_limit", json!(before.concurrency_limit), json!(after.concurrency_limit)),
            ("priority", json!(before.priority), json!(after.priority)),
        ]);
        if let (Some(pool), Some(payload)) = (&pool, updates) {
            let mut event = queue_event("updated", &after, pool);
            event.payload = payload;
            self.emit(event).await;
        }
        if status.is_some()
            && let Some(event) = queue_status_event(&after, pool.as_ref())
        {
            self.emit(event).await;
        }
        Ok(())
    }

    pub async fn delete_work_queue(&self, pool_name: &str, name: &str) -> Result<()> {
        let queue_id = self.queue_id_by_names(pool_name, name).await?;
        self.delete_work_queue_by_id(queue_id).await
    }

    /// Deletes a queue; a pool's default queue cannot be deleted.
    pub async fn delete_work_queue_by_id(&self, id: Uuid) -> Result<()> {
        let txn = self.db().begin_write().await?;
        let queue = work_pools::read_queue(&txn, id).await?.ok_or_else(|| Error::not_found("Work queue not found."))?;
        let pool = work_pools::read_pool(&txn, queue.work_pool_id).await?.ok_or_else(|| Error::not_found("Work queue not found."))?;
        if pool.default_queue_id == Some(id) {
            return Err(Error::BadRequest("Can't delete a pool's default queue.".to_owned()));
        }
        work_pools::delete_queue(&txn, id).await?;
        let remaining = work_pools::queue_priorities(&txn, pool.id).await?;
        work_pools::set_priorities(&txn, &wp::reprioritize(&remaining, &[])).await?;
        prefect_storage::commit(txn).await?;
        self.emit(queue_event("deleted", &queue, &pool)).await;
        Ok(())
    }

    // -------------------------------------------------------------- legacy /work_queues

    /// Creates a queue in the agents' pool (created on first use), as `POST /work_queues/` does.
    pub async fn create_agent_work_queue(&self, create: WorkQueueCreate) -> Result<WorkQueue> {
        create.validate()?;
        let txn = self.db().begin_write().await?;
        let pool = agent_pool(&txn, time::now()).await?;
        let queue = match self.insert_work_queue(&txn, &pool, &create).await {
            Err(Error::Conflict(_)) => {
                return Err(Error::Conflict("A work queue with this name already exists.".to_owned()));
            }
            other => other?,
        };
        prefect_storage::commit(txn).await?;
        self.emit(queue_event("created", &queue, &pool)).await;
        Ok(queue)
    }

    /// A queue of the agents' pool, by name (`GET /work_queues/name/{name}`).
    pub async fn read_agent_work_queue(&self, name: &str) -> Result<WorkQueue> {
        let reader = self.db().reader();
        let pool = work_pools::read_pool_by_name(reader, DEFAULT_AGENT_POOL_NAME).await?.ok_or_else(|| Error::not_found("Work queue not found."))?;
        let queue = work_pools::read_queue_by_name(reader, pool.id, name).await?.ok_or_else(|| Error::not_found("Work queue not found."))?;
        Ok(self.with_queue_slots(reader, vec![queue]).await?.remove(0))
    }

    /// Queues of every pool (`POST /work_queues/filter`), by name.
    pub async fn filter_all_work_queues(&self, filter: Option<&WorkQueueFilter>, limit: Option<u64>, offset: u64) -> Result<Vec<WorkQueue>> {
        let limit = self.settings().limit(limit)?;
        let reader = self.db().reader();
        let queues = work_pools::filter_all_queues(reader, self.db().backend(), filter, limit, offset).await?;
        self.with_queue_slots(reader, queues).await
    }

    /// `GET /work_queues/{id}/status`: late runs and the last poll against Prefect's default policy.
    pub async fn work_queue_status(&self, id: Uuid) -> Result<WorkQueueStatusDetail> {
        let reader = self.db().reader();
        let queue = work_pools::read_queue(reader, id).await?.ok_or_else(|| Error::not_found(format!("Work queue with id {id} not found")))?;
        let late: RunFilters = serde_json::from_value(json!({
            "flow_runs": {"state": {"name": {"any_": ["Late"]}}},
            "work_pool_queues": {"id": {"any_": [id]}},
        }))
        .map_err(|e| Error::Internal(format!("late-runs filter: {e}")))?;
        let late_runs_count = flow_runs::count(reader, self.db().backend(), &late).await?;
        let health_check_policy = WorkQueueHealthPolicy::default();
        let healthy = health_check_policy.is_healthy(late_runs_count, queue.last_polled, time::now());
        Ok(WorkQueueStatusDetail { healthy, late_runs_count, last_polled: queue.last_polled, health_check_policy })
    }

    /// `GET /deployments/{id}/work_queue_check`: the queues whose legacy agent filter would
    /// pick up the deployment's runs (queues without a filter pick up everything), oldest first.
    pub async fn work_queues_for_deployment(&self, deployment_id: Uuid) -> Result<Vec<LegacyWorkQueue>> {
        let reader = self.db().reader();
        let deployment =
            prefect_storage::deployments::read(reader, deployment_id, time::now()).await?.ok_or_else(|| Error::not_found("Deployment not found"))?;
        let mut queues = work_pools::filter_all_queues(reader, self.db().backend(), None, i64::MAX as u64, 0).await?;
        queues.retain(|q| q.legacy_filter_admits(deployment.id, &deployment.tags));
        queues.sort_by_key(|q| (q.created, q.id));
        Ok(queues.into_iter().map(LegacyWorkQueue::from).collect())
    }

    /// Scheduled runs of one queue (`POST /work_queues/{id}/get_runs`); marks it polled.
    pub async fn work_queue_runs(&self, id: Uuid, scheduled_before: Option<DateTime>, limit: Option<u64>) -> Result<Vec<prefect_domain::flow_run::FlowRun>> {
        let limit = self.settings().limit(limit)?;
        let queue = work_pools::read_queue(self.db().reader(), id).await?.ok_or_else(|| Error::not_found("Work queue not found."))?;
        let query = ScheduledRunsQuery {
            work_queue_ids: Some(vec![id]),
            scheduled_before: Some(scheduled_before.unwrap_or_else(time::now)),
            scheduled_after: None,
            limit,
            respect_queue_priorities: true,
        };
        let runs = self.scheduled_runs_of_pool(queue.work_pool_id, &query).await?;
        self.mark_polled(vec![queue]).await?;
        Ok(runs.into_iter().map(|r| r.flow_run).collect())
    }

    // -------------------------------------------------------------- workers

    /// Records a worker heartbeat; the pool becomes READY if it was NOT_READY.
    pub async fn worker_heartbeat(&self, pool_name: &str, name: &str, heartbeat_interval_seconds: Option<i64>) -> Result<()> {
        let now = time::now();
        let pool = self.pool_by_name(self.db().reader(), pool_name).await?;
        let (pool_id, name_owned) = (pool.id, name.to_owned());
        let ready_event = Uuid::now_v7();
        let became_ready = self
            .write(Some(pool_id), move |txn| {
                let name = name_owned.clone();
                Box::pin(async move {
                    work_pools::heartbeat(txn, pool_id, &name, heartbeat_interval_seconds, now).await?;
                    let current = work_pools::read_pool(txn, pool_id).await?;
                    if current.as_ref().and_then(|p| p.status) == Some(WorkPoolStatus::NotReady) {
                        let ready = Some((WorkPoolStatus::Ready, ready_event));
                        work_pools::update_pool(txn, pool_id, &WorkPoolUpdate::default(), ready, now).await?;
                        return Ok(true);
                    }
                    Ok(false)
                })
            })
            .await?;
        if became_ready {
            self.emit(pool_status_event(&pool, WorkPoolStatus::Ready, ready_event)).await;
        }
        Ok(())
    }

    pub async fn filter_workers(&self, pool_name: &str, filter: Option<&WorkerFilter>, limit: Option<u64>, offset: u64) -> Result<Vec<Worker>> {
        let limit = self.settings().limit(limit)?;
        let reader = self.db().reader();
        let pool = self.pool_by_name(reader, pool_name).await?;
        Ok(work_pools::filter_workers(reader, pool.id, filter, limit, offset, time::now()).await?)
    }

    pub async fn delete_worker(&self, pool_name: &str, name: &str) -> Result<()> {
        let txn = self.db().begin_write().await?;
        let pool = self.pool_by_name(&txn, pool_name).await?;
        if !work_pools::delete_worker(&txn, pool.id, name).await? {
            return Err(Error::not_found("Worker not found."));
        }
        prefect_storage::commit(txn).await?;
        Ok(())
    }

    // -------------------------------------------------------------- polling

    /// What a worker of `pool_name` should run next; marks the queues (and their
    /// deployments) polled, as Prefect does after answering.
    pub async fn get_scheduled_flow_runs(
        &self,
        pool_name: &str,
        work_queue_names: Option<&[String]>,
        scheduled_before: Option<DateTime>,
        scheduled_after: Option<DateTime>,
        limit: Option<u64>,
    ) -> Result<Vec<WorkerFlowRun>> {
        let limit = self.settings().limit(limit)?;
        let reader = self.db().reader();
        let pool = self.pool_by_name(reader, pool_name).await?;
        let (queues, queue_ids) = match work_queue_names.filter(|n| !n.is_empty()) {
            None => (work_pools::filter_queues(reader, self.db().backend(), pool.id, None, None, 0).await?, None),
            Some(names) => {
                let mut queues = Vec::with_capacity(names.len());
                for name in names {
                    queues.push(self.queue_by_name(reader, &pool, name).await?);
                }
                let ids = queues.iter().map(|q| q.id).collect();
                (queues, Some(ids))
            }
        };
        let query = ScheduledRunsQuery { work_queue_ids: queue_ids, scheduled_before, scheduled_after, limit, respect_queue_priorities: true };
        let runs = self.scheduled_runs_of_pool(pool.id, &query).await?;
        self.mark_polled(queues).await?;
        Ok(runs)
    }

    async fn scheduled_runs_of_pool(&self, pool_id: Uuid, query: &ScheduledRunsQuery) -> Result<Vec<WorkerFlowRun>> {
        let reads = self.db().reads();
        let picks = work_pools::scheduled_runs(&reads, self.db().backend(), pool_id, query).await?;
        let ids: Vec<Uuid> = picks.iter().map(|(_, _, run)| *run).collect();
        let mut runs: std::collections::HashMap<Uuid, _> = flow_runs::read_many(&reads, &ids, time::now()).await?.into_iter().map(|r| (r.id, r)).collect();
        Ok(picks
            .into_iter()
            .filter_map(|(work_pool_id, work_queue_id, run)| runs.remove(&run).map(|flow_run| WorkerFlowRun { work_pool_id, work_queue_id, flow_run }))
            .collect())
    }

    /// Stamps `last_polled` on the queues and on the deployments they serve; queues and
    /// deployments that were NOT_READY become READY (with status events for queues).
    async fn mark_polled(&self, queues: Vec<WorkQueue>) -> Result<()> {
        if queues.is_empty() {
            return Ok(());
        }
        let now = time::now();
        // Workers poll every few seconds, many at once: a queue stamped READY within the
        // last second is not written again, which keeps polling off the single SQLite writer.
        let fresh = |q: &WorkQueue| {
            q.status == Some(WorkQueueStatus::Ready) && q.last_polled.is_some_and(|t| now - t < chrono::Duration::milliseconds(POLL_STAMP_INTERVAL_MS))
        };
        let ids: Vec<Uuid> = queues.iter().filter(|q| !fresh(q)).map(|q| q.id).collect();
        if ids.is_empty() {
            return Ok(());
        }
        let newly_ready = self
            .write(None, move |txn| {
                let ids = ids.clone();
                Box::pin(async move {
                    let ready = work_pools::mark_queues_polled(txn, &ids, now).await?;
                    work_pools::mark_deployments_polled(txn, &ids, now).await?;
                    Ok(ready)
                })
            })
            .await?;
        if newly_ready.is_empty() {
            return Ok(());
        }
        let pool = work_pools::read_pool(self.db().reader(), queues[0].work_pool_id).await?;
        for mut queue in queues.into_iter().filter(|q| newly_ready.contains(&q.id)) {
            queue.status = Some(WorkQueueStatus::Ready);
            if let Some(event) = queue_status_event(&queue, pool.as_ref()) {
                self.emit(event).await;
            }
        }
        Ok(())
    }

    /// The foreman's pass: workers whose heartbeats stopped go OFFLINE; pools left
    /// without an online worker go NOT_READY; queues not polled for `queue_stale_after`
    /// go NOT_READY. Returns how many objects changed.
    pub async fn mark_unready_work(&self, queue_stale_after: chrono::Duration) -> Result<usize> {
        let now = time::now();
        let txn = self.db().begin_write().await?;
        let silent = work_pools::mark_silent_workers_offline(&txn, now).await?;
        let mut not_ready_pools = Vec::new();
        for pool_id in work_pools::ready_pools_without_online_workers(&txn).await? {
            let Some(pool) = work_pools::read_pool(&txn, pool_id).await? else {
                continue;
            };
            let event_id = Uuid::now_v7();
            work_pools::update_pool(&txn, pool_id, &WorkPoolUpdate::default(), Some((WorkPoolStatus::NotReady, event_id)), now).await?;
            not_ready_pools.push((pool, event_id));
        }
        let stale_queues = work_pools::mark_stale_queues_not_ready(&txn, now - queue_stale_after).await?;
        let stale_deployments = work_pools::mark_stale_deployments_not_ready(&txn, now - queue_stale_after).await?;
        prefect_storage::commit(txn).await?;
        for (pool, event_id) in &not_ready_pools {
            self.emit(pool_status_event(pool, WorkPoolStatus::NotReady, *event_id)).await;
        }
        let reader = self.db().reader();
        for queue in &stale_queues {
            let pool = work_pools::read_pool(reader, queue.work_pool_id).await?;
            if let Some(event) = queue_status_event(queue, pool.as_ref()) {
                self.emit(event).await;
            }
        }
        Ok(silent.len() + not_ready_pools.len() + stale_queues.len() + stale_deployments)
    }
}
