//! Flow run use cases.

use std::collections::HashMap;
use std::sync::Arc;

use prefect_domain::filters::RunFilters;
use prefect_domain::flow_run::{CreatedBy, FlowRun, FlowRunCreate, FlowRunUpdate, HistoryResponse, HistoryResponseState};
use prefect_domain::labels::KeyValueLabels;
use prefect_domain::pagination::Paginated;
use prefect_domain::sorts::FlowRunSort;
use prefect_domain::state::{OrchestrationResult, State, StateCreate, StateType};
use prefect_domain::time::{self, DateTime};
use prefect_orchestration::{Effect, FlowPolicy};
use prefect_storage::direct_writes::DirectTransaction;
use prefect_storage::flow_runs::{HistoryRow, NewFlowRun};
use prefect_storage::{flow_run_inputs, flow_runs, flows, task_runs, work_pools};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::events::{self, FlowRunRelations};
use crate::orchestrate::{self, TransitionContext};
use crate::{ClientInfo, Core, Error, Result};

/// The answer to a state proposal.
#[derive(Debug, Clone)]
pub struct SetStateOutcome {
    pub result: OrchestrationResult,
    /// Whether a new state was written (the API answers 201 then, 200 otherwise).
    pub created: bool,
}

/// A keyed input of a flow run.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowRunInput {
    pub id: Uuid,
    pub created: DateTime,
    pub updated: DateTime,
    pub flow_run_id: Uuid,
    pub key: String,
    pub value: String,
    pub sender: Option<String>,
}

impl From<flow_run_inputs::StoredInput> for FlowRunInput {
    fn from(s: flow_run_inputs::StoredInput) -> Self {
        FlowRunInput { id: s.id, created: s.created, updated: s.updated, flow_run_id: s.flow_run_id, key: s.key, value: s.value, sender: s.sender }
    }
}

pub(crate) fn random_name() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    prefect_domain::names::slug(|n| rng.random_range(0..n))
}

impl Core {
    pub(crate) fn transition_context(&self, client: &ClientInfo) -> TransitionContext {
        TransitionContext { client: client.clone(), now: time::now(), waits: self.settings().slot_waits(), settings: self.settings().orchestration() }
    }

    fn check_parameters(&self, parameters: &serde_json::Map<String, Value>) -> Result<()> {
        let size = serde_json::to_vec(parameters).map_or(0, |v| v.len());
        if size > self.settings().max_parameter_size {
            return Err(Error::invalid(
                "parameters",
                format!("Flow run parameters must be less than {} bytes, got {size} bytes.", self.settings().max_parameter_size),
            ));
        }
        Ok(())
    }

    /// Creates a flow run, or returns the existing one with the same `(flow_id, idempotency_key)`.
    /// The initial state (Pending by default) is set with the minimal (forced) policy.
    pub async fn create_flow_run(&self, create: FlowRunCreate, created_by: Option<CreatedBy>, client: &ClientInfo) -> Result<(FlowRun, bool)> {
        self.check_parameters(&create.parameters)?;
        if let Some(labels) = &create.labels {
            prefect_domain::labels::validate(labels, "labels")?;
        }
        let t = self.transition_context(client);
        let reader = self.db().reader();
        let flow = flows::read(reader, create.flow_id).await?.ok_or_else(|| {
            Error::Conflict(
                "Data integrity conflict. This usually means a unique or foreign key constraint was violated. See server logs for details.".to_owned(),
            )
        })?;
        let (work_queue_id, work_pool) = match &create.work_pool_name {
            Some(pool) => {
                let queue_id = work_pools::resolve_queue(reader, pool, create.work_queue_name.as_deref())
                    .await?
                    .ok_or_else(|| Error::not_found(format!("Work pool {pool:?} or its work queue was not found.")))?;
                let pool = flow_runs::work_pools_of_queues(reader, vec![queue_id]).await?.remove(&queue_id);
                (Some(queue_id), pool)
            }
            None => (None, None),
        };
        let mut labels: KeyValueLabels = flow.labels.clone().unwrap_or_default();
        labels.insert("prefect.flow.id".to_owned(), Value::String(flow.id.to_string()));
        if let Some(user) = &create.labels {
            labels.extend(user.clone());
        }
        let new = NewFlowRun {
            id: Uuid::now_v7(),
            name: create.name.clone().filter(|n| !n.is_empty()).unwrap_or_else(random_name),
            flow_id: create.flow_id,
            flow_version: create.flow_version.clone(),
            deployment_id: create.deployment_id,
            deployment_version: None,
            work_queue_id,
            work_queue_name: create.work_queue_name.clone(),
            parameters: create.parameters.clone(),
            idempotency_key: create.idempotency_key.clone(),
            context: create.context.clone(),
            empirical_policy: create.empirical_policy.clone().normalized(),
            tags: create.tags.clone(),
            labels,
            parent_task_run_id: create.parent_task_run_id,
            infrastructure_document_id: create.infrastructure_document_id,
            job_variables: create.job_variables.clone(),
            created_by,
            auto_scheduled: false,
        };
        let initial = create.state.clone().unwrap_or_else(|| StateCreate::of(StateType::Pending)).into_state(t.now);
        self.insert_flow_run(new, work_pool, initial, t, flow).await
    }

    /// Inserts a prepared run (or finds the one with its idempotency key) and sets its
    /// initial state with the minimal (forced) policy; true when it was created.
    pub(crate) async fn insert_flow_run(
        &self,
        new: NewFlowRun,
        work_pool: Option<(Uuid, String)>,
        initial: State,
        t: TransitionContext,
        flow: prefect_domain::flow::Flow,
    ) -> Result<(FlowRun, bool)> {
        let inserted = flow_runs::inserted(&new, work_pool, t.now);
        // Runs with an idempotency key share a writer with their flow's other keyed runs,
        // so two creations with one key meet in order rather than racing.
        let key = new.idempotency_key.as_ref().map(|_| new.flow_id);
        let job = Arc::new((new, inserted, initial, t, self.db().backend()));
        let direct_job = Arc::clone(&job);
        let direct = move |txn: &DirectTransaction<'_>| {
            let (new, inserted, initial, t, _) = &*direct_job;
            if new.idempotency_key.is_some() {
                // Looking the key up is left to SeaORM (scheduled runs, not the hot path).
                return Ok(None);
            }
            let transition = orchestrate::transition_flow_run_direct(txn, t, inserted.clone(), initial.clone(), true, None, orchestrate::FlowRunRow::New(new))?;
            Ok(transition.map(Ok))
        };
        let outcome = self
            .write_direct_or(key, direct, move |txn| {
                let job = Arc::clone(&job);
                Box::pin(async move {
                    let (new, inserted, initial, t, backend) = &*job;
                    if let Some(key) = &new.idempotency_key
                        && let Some(existing) = flow_runs::find_by_idempotency_key(txn, new.flow_id, key, t.now).await?
                    {
                        return Ok(Err(existing));
                    }
                    let transition =
                        orchestrate::transition_flow_run(txn, *backend, t, inserted.clone(), initial.clone(), true, None, orchestrate::FlowRunRow::New(new))
                            .await?;
                    Ok(Ok(transition))
                })
            })
            .await?;
        match outcome {
            Ok(transition) => {
                let run = &transition.run;
                if run.deployment_id.is_none() && run.work_queue_id.is_none() && run.parent_task_run_id.is_none() {
                    // The flow is all this run relates to, and it was just read.
                    let relations = FlowRunRelations { flow: Some((flow.id, flow.name, flow.tags)), ..Default::default() };
                    self.inner.relations.insert(run.id, (std::time::Instant::now(), relations));
                }
                self.after_flow_transition(&transition.run, transition.effects).await;
                Ok((transition.run, true))
            }
            Err(existing) => Ok((existing, false)),
        }
    }

    pub async fn read_flow_run(&self, id: Uuid) -> Result<FlowRun> {
        flow_runs::read(self.db().reader(), id, time::now()).await?.ok_or_else(|| Error::not_found("Flow run not found"))
    }

    pub async fn filter_flow_runs(&self, filters: &RunFilters, sort: FlowRunSort, limit: Option<u64>, offset: u64) -> Result<Vec<FlowRun>> {
        let limit = self.settings().limit(limit)?;
        Ok(flow_runs::filter(&self.db().reads(), self.db().backend(), filters, sort, limit, offset, time::now()).await?)
    }

    pub async fn count_flow_runs(&self, filters: &RunFilters) -> Result<u64> {
        Ok(flow_runs::count(self.db().reader(), self.db().backend(), filters).await?)
    }

    pub async fn paginate_flow_runs(&self, filters: &RunFilters, sort: FlowRunSort, limit: Option<u64>, page: u64) -> Result<Paginated<FlowRun>> {
        let limit = self.settings().limit(limit)?;
        let offset = Paginated::<FlowRun>::offset(page, limit);
        let reader = self.db().reader();
        let reads = self.db().reads();
        let (results, count) = tokio::try_join!(
            flow_runs::filter(&reads, self.db().backend(), filters, sort, limit, offset, time::now()),
            flow_runs::count(reader, self.db().backend(), filters)
        )?;
        Ok(Paginated::new(results, count, limit, page))
    }

    pub async fn update_flow_run(&self, id: Uuid, update: FlowRunUpdate) -> Result<()> {
        if let Some(parameters) = &update.parameters {
            self.check_parameters(parameters)?;
        }
        if let Some(job_variables) = &update.job_variables {
            self.check_updated_job_variables(id, job_variables).await?;
        }
        let txn = self.db().begin_write().await?;
        let updated = flow_runs::update(&txn, id, &update, time::now()).await?;
        prefect_storage::commit(txn).await?;
        if updated { Ok(()) } else { Err(Error::not_found("Flow run not found")) }
    }

    /// New job variables are for a Scheduled run of a deployment, checked as a new run's are.
    async fn check_updated_job_variables(&self, id: Uuid, job_variables: &Map<String, Value>) -> Result<()> {
        let run = self.read_flow_run(id).await?;
        let Some(state) = &run.state else {
            return Err(Error::BadRequest("Flow run state is required to update job variables but none exists".to_owned()));
        };
        if state.state_type != StateType::Scheduled {
            return Err(Error::BadRequest(format!("Job variables for a flow run in state {} cannot be updated", state.state_type.as_str())));
        }
        let no_deployment = || Error::BadRequest("A deployment for the flow run could not be found".to_owned());
        let deployment_id = run.deployment_id.ok_or_else(no_deployment)?;
        let deployment = prefect_storage::deployments::read(self.db().reader(), deployment_id, time::now()).await?.ok_or_else(no_deployment)?;
        self.check_run_job_variables(&deployment, Some(job_variables), "Error updating flow run").await
    }

    /// `POST /flow_runs/lateness`: average lateness in seconds of the matching runs, if any match.
    pub async fn average_flow_run_lateness(&self, filters: &RunFilters) -> Result<Option<f64>> {
        Ok(flow_runs::average_lateness(self.db().reader(), self.db().backend(), filters).await?)
    }

    /// Merges `labels` into the run's labels.
    pub async fn update_flow_run_labels(&self, id: Uuid, labels: KeyValueLabels) -> Result<()> {
        prefect_domain::labels::validate(&labels, "labels")?;
        let now = time::now();
        let txn = self.db().begin_write().await?;
        let run = flow_runs::read_for_update(&txn, self.db().backend(), id, now).await?.ok_or_else(|| Error::not_found("Flow run not found"))?;
        let mut merged = run.labels;
        merged.extend(labels);
        flow_runs::set_labels(&txn, id, &merged, now).await?;
        prefect_storage::commit(txn).await?;
        Ok(())
    }

    pub async fn delete_flow_run(&self, id: Uuid) -> Result<()> {
        let txn = self.db().begin_write().await?;
        let deleted = flow_runs::delete(&txn, id).await?;
        prefect_storage::commit(txn).await?;
        if deleted { Ok(()) } else { Err(Error::not_found("Flow run not found")) }
    }

    /// Deletes up to `limit` runs matching the filters; returns their ids.
    pub async fn bulk_delete_flow_runs(&self, filters: &RunFilters, limit: u64) -> Result<Vec<Uuid>> {
        let txn = self.db().begin_write().await?;
        let ids = flow_runs::ids_matching(&txn, self.db().backend(), filters, limit).await?;
        flow_runs::delete_many(&txn, &ids).await?;
        prefect_storage::commit(txn).await?;
        Ok(ids)
    }

    /// `POST /flow_runs/bulk_set_state`: proposes `state` for up to `limit` runs matching the
    /// filters, each in its own orchestrated transition; a run whose proposal fails outright
    /// reports why instead of stopping the others.
    pub async fn bulk_set_flow_run_state(
        &self,
        filters: &RunFilters,
        state: StateCreate,
        force: bool,
        limit: u64,
        client: &ClientInfo,
    ) -> Result<Vec<(Uuid, std::result::Result<OrchestrationResult, String>)>> {
        let ids = flow_runs::ids_matching(self.db().reader(), self.db().backend(), filters, limit).await?;
        let mut results = Vec::with_capacity(ids.len());
        for id in ids {
            let outcome = self.set_flow_run_state(id, state.clone(), force, client).await;
            results.push((id, outcome.map(|o| o.result).map_err(|e| e.to_string())));
        }
        Ok(results)
    }

    /// Proposes a state for a flow run (`POST /flow_runs/{id}/set_state`).
    pub async fn set_flow_run_state(&self, id: Uuid, state: StateCreate, force: bool, client: &ClientInfo) -> Result<SetStateOutcome> {
        self.propose_flow_run_state(id, state, force, None, client).await
    }

    /// Proposes a state under an explicit policy (services use `MarkLateRuns`).
    pub async fn propose_flow_run_state(
        &self,
        id: Uuid,
        state: StateCreate,
        force: bool,
        policy: Option<FlowPolicy>,
        client: &ClientInfo,
    ) -> Result<SetStateOutcome> {
        let t = self.transition_context(client);
        let proposed = state.into_state(t.now);
        let job = Arc::new((t, proposed, self.db().backend()));
        let direct_job = Arc::clone(&job);
        let direct = move |txn: &DirectTransaction<'_>| {
            let (t, proposed, _) = &*direct_job;
            orchestrate::set_flow_run_state_direct(txn, t, id, proposed.clone(), force, policy)
        };
        let transition = self
            .write_direct_or(Some(id), direct, move |txn| {
                let job = Arc::clone(&job);
                Box::pin(async move {
                    let (t, proposed, backend) = &*job;
                    orchestrate::set_flow_run_state(txn, *backend, t, id, proposed.clone(), force, policy).await
                })
            })
            .await?;
        self.after_flow_transition(&transition.run, transition.effects).await;
        Ok(SetStateOutcome { result: transition.result, created: transition.created })
    }

    /// Publishes what a committed flow transition produced.
    pub(crate) async fn after_flow_transition(&self, run: &FlowRun, effects: Vec<Effect>) {
        for effect in effects {
            if let Effect::FlowRunStateChanged { initial, validated } = effect {
                let relations = self.flow_run_relations(run).await.unwrap_or_default();
                let event = events::flow_run_state_change(run, &relations, initial.as_ref(), &validated, time::now());
                if let Err(error) = self.events().publish(event).await {
                    tracing::warn!(flow_run_id = %run.id, %error, "Could not publish a flow run state event.");
                }
            }
        }
    }

    /// The resources related to `run`, cached per run for
    /// `related_resource_cache_ttl_seconds` as Prefect does.
    async fn flow_run_relations(&self, run: &FlowRun) -> Result<FlowRunRelations> {
        let ttl = std::time::Duration::from_secs_f64(self.settings().related_resource_cache_ttl_seconds.max(0.0));
        if let Some((read_at, relations)) = self.inner.relations.get(&run.id)
            && read_at.elapsed() < ttl
        {
            return Ok(relations);
        }
        let relations = self.read_flow_run_relations(run).await?;
        if !ttl.is_zero() {
            self.inner.relations.insert(run.id, (std::time::Instant::now(), relations.clone()));
        }
        Ok(relations)
    }

    async fn read_flow_run_relations(&self, run: &FlowRun) -> Result<FlowRunRelations> {
        let reader = self.db().reader();
        let mut relations = FlowRunRelations::default();
        if let Some(flow) = flows::read(reader, run.flow_id).await? {
            relations.flow = Some((flow.id, flow.name, flow.tags));
        }
        if let Some(deployment_id) = run.deployment_id
            && let Some((name, tags)) = prefect_storage::deployments::read_name_and_tags(reader, deployment_id).await?
        {
            relations.deployment = Some((deployment_id, name, tags));
        }
        if let Some(queue_id) = run.work_queue_id
            && let Some((queue_name, pool_id, pool_name, pool_type)) = work_pools::read_queue_and_pool(reader, queue_id).await?
        {
            relations.work_queue = Some((queue_id, queue_name));
            relations.work_pool = Some((pool_id, pool_name, pool_type));
        }
        if let Some(task_run_id) = run.parent_task_run_id
            && let Some(task_run) = task_runs::read(reader, task_run_id, time::now()).await?
        {
            relations.parent_task_run = Some((task_run.id, task_run.name, task_run.tags));
        }
        Ok(relations)
    }

    pub async fn read_flow_run_state(&self, id: Uuid) -> Result<State> {
        flow_runs::read_state(self.db().reader(), id).await?.ok_or_else(|| Error::not_found("Flow run state not found"))
    }

    pub async fn flow_run_states(&self, flow_run_id: Uuid) -> Result<Vec<State>> {
        Ok(flow_runs::states_of(self.db().reader(), flow_run_id).await?)
    }

    /// Bucketed counts of runs by state (`POST /flow_runs/history`).
    pub async fn flow_run_history(&self, start: DateTime, end: DateTime, interval_seconds: f64, filters: &RunFilters) -> Result<Vec<HistoryResponse>> {
        let Some((count, end)) = history_window(start, end, interval_seconds)? else {
            return Ok(Vec::new());
        };
        let rows = flow_runs::history_rows(self.db().reader(), self.db().backend(), filters, start, end).await?;
        Ok(bucket_history(rows, start, interval_seconds, count, time::now()))
    }

    /// Creates an input for a paused run; a duplicate key is a conflict.
    pub async fn create_flow_run_input(&self, flow_run_id: Uuid, key: &str, value: &str, sender: Option<&str>) -> Result<()> {
        let txn = self.db().begin_write().await?;
        if flow_runs::read(&txn, flow_run_id, time::now()).await?.is_none() {
            return Err(Error::not_found("Flow run not found"));
        }
        match flow_run_inputs::create(&txn, flow_run_id, key, value, sender, time::now()).await {
            Ok(_) => {}
            Err(prefect_storage::Error::Conflict(_)) => {
                return Err(Error::Conflict("A flow run input with this key already exists.".to_owned()));
            }
            Err(e) => return Err(e.into()),
        }
        prefect_storage::commit(txn).await?;
        Ok(())
    }

    pub async fn read_flow_run_input(&self, flow_run_id: Uuid, key: &str) -> Result<FlowRunInput> {
        flow_run_inputs::read(self.db().reader(), flow_run_id, key).await?.map(Into::into).ok_or_else(|| Error::not_found("Flow run input not found"))
    }

    pub async fn filter_flow_run_inputs(&self, flow_run_id: Uuid, prefix: &str, limit: u64, exclude_keys: &[String]) -> Result<Vec<FlowRunInput>> {
        Ok(flow_run_inputs::filter(self.db().reader(), flow_run_id, prefix, limit, exclude_keys).await?.into_iter().map(Into::into).collect())
    }

    pub async fn delete_flow_run_input(&self, flow_run_id: Uuid, key: &str) -> Result<()> {
        let txn = self.db().begin_write().await?;
        let deleted = flow_run_inputs::delete(&txn, flow_run_id, key).await?;
        prefect_storage::commit(txn).await?;
        if deleted { Ok(()) } else { Err(Error::not_found("Flow run input not found")) }
    }
}

/// Validates a history request; returns the bucket count (at most 500) and the end of the last bucket.
pub(crate) fn history_window(start: DateTime, end: DateTime, interval_seconds: f64) -> Result<Option<(u64, DateTime)>> {
    if interval_seconds < 1.0 {
        return Err(Error::invalid("history_interval_seconds", "History interval must not be less than 1 second."));
    }
    let elapsed = time::seconds(end - start);
    if elapsed <= 0.0 {
        return Ok(None);
    }
    let count = ((elapsed / interval_seconds).ceil() as u64).min(500);
    let query_end = start + time::from_seconds(interval_seconds * count as f64);
    Ok(Some((count, query_end)))
}

pub(crate) fn bucket_history(rows: Vec<HistoryRow>, start: DateTime, interval_seconds: f64, count: u64, now: DateTime) -> Vec<HistoryResponse> {
    let mut buckets: HashMap<u64, HashMap<(StateType, String), HistoryResponseState>> = HashMap::new();
    for row in rows {
        let Some(state_type) = row.state_type else {
            continue;
        };
        let index = (time::seconds(row.expected_start_time - start) / interval_seconds).floor() as u64;
        let mut run_time = row.total_run_time;
        if state_type == StateType::Running
            && let Some(ts) = row.state_timestamp
        {
            run_time += time::seconds(now - ts).max(0.0);
        }
        let lateness = prefect_domain::flow_run::estimated_lateness(row.start_time, Some(row.expected_start_time), Some(state_type), now);
        let name = row.state_name.unwrap_or_else(|| state_type.default_name().to_owned());
        let entry = buckets.entry(index).or_default().entry((state_type, name.clone())).or_insert(HistoryResponseState {
            state_type,
            state_name: name,
            count_runs: 0,
            sum_estimated_run_time: 0.0,
            sum_estimated_lateness: 0.0,
        });
        entry.count_runs += 1;
        entry.sum_estimated_run_time += run_time.max(0.0);
        entry.sum_estimated_lateness += lateness.max(0.0);
    }
    (0..count)
        .map(|i| {
            let mut states: Vec<HistoryResponseState> = buckets.remove(&i).map(|m| m.into_values().collect()).unwrap_or_default();
            states.sort_by(|a, b| a.state_type.cmp(&b.state_type).then_with(|| a.state_name.cmp(&b.state_name)));
            HistoryResponse {
                interval_start: start + time::from_seconds(interval_seconds * i as f64),
                interval_end: start + time::from_seconds(interval_seconds * (i + 1) as f64),
                states,
            }
        })
        .collect()
}
