//! Task run use cases.

use std::sync::Arc;

use prefect_domain::filters::RunFilters;
use prefect_domain::flow_run::HistoryResponse;
use prefect_domain::labels::KeyValueLabels;
use prefect_domain::pagination::Paginated;
use prefect_domain::sorts::TaskRunSort;
use prefect_domain::state::{State, StateCreate};
use prefect_domain::task_run::{TaskRun, TaskRunCreate, TaskRunUpdate};
use prefect_domain::time::{self, DateTime};
use prefect_orchestration::Effect;
use prefect_storage::direct_writes::DirectTransaction;
use prefect_storage::flow_runs;
use prefect_storage::task_runs::{self, NewTaskRun};
use serde_json::Value;
use uuid::Uuid;

use crate::flow_runs::{bucket_history, history_window, random_name};
use crate::orchestrate;
use crate::task_queue::Lane;
use crate::{ClientInfo, Core, Error, Result, SetStateOutcome};

impl Core {
    /// Creates a task run, or returns the existing one with the same
    /// `(flow_run_id, task_key, dynamic_key)` (`created` tells which).
    pub async fn create_task_run(&self, create: TaskRunCreate, client: &ClientInfo) -> Result<(TaskRun, bool)> {
        create.empirical_policy.validate()?;
        if let Some(key) = &create.cache_key
            && key.chars().count() > self.settings().max_cache_key_length
        {
            return Err(Error::invalid(
                "cache_key",
                format!("Cache key exceeded maximum allowed length of {} characters.", self.settings().max_cache_key_length),
            ));
        }
        if let Some(labels) = &create.labels {
            prefect_domain::labels::validate(labels, "labels")?;
        }
        let t = self.transition_context(client);
        let mut labels: KeyValueLabels = KeyValueLabels::new();
        if let Some(flow_run_id) = create.flow_run_id {
            labels = flow_runs::read_labels(self.db().reader(), flow_run_id).await?.ok_or_else(|| {
                Error::Conflict(
                    "Data integrity conflict. This usually means a unique or foreign key constraint was violated. See server logs for details.".to_owned(),
                )
            })?;
            labels.insert("prefect.flow-run.id".to_owned(), Value::String(flow_run_id.to_string()));
        }
        if let Some(user) = &create.labels {
            labels.extend(user.clone());
        }
        let new = NewTaskRun {
            id: create.id.unwrap_or_else(Uuid::now_v7),
            flow_run_id: create.flow_run_id,
            name: create.name.clone().filter(|n| !n.is_empty()).unwrap_or_else(random_name),
            task_key: create.task_key.clone(),
            dynamic_key: create.dynamic_key.clone(),
            cache_key: create.cache_key.clone(),
            cache_expiration: create.cache_expiration,
            task_version: create.task_version.clone(),
            empirical_policy: create.empirical_policy.clone().normalized(),
            tags: create.tags.clone(),
            labels: Some(labels),
            task_inputs: create.task_inputs.clone(),
        };
        let inserted = task_runs::inserted(&new, t.now);
        let initial = create.state.clone().map(|state| state.into_state(t.now));
        let job = Arc::new((new, inserted, initial, t, self.db().backend()));
        let direct_job = Arc::clone(&job);
        let direct = move |txn: &DirectTransaction<'_>| {
            let (new, inserted, initial, t, _) = &*direct_job;
            if let Some(existing) = task_runs::find_by_natural_key_direct(txn, new.flow_run_id, &new.task_key, &new.dynamic_key, t.now)? {
                return Ok(Some((existing, false, Vec::new())));
            }
            match initial {
                Some(state) => {
                    let transition = orchestrate::transition_task_run_direct(txn, t, inserted.clone(), state.clone(), true, Some(new))?;
                    Ok(transition.map(|transition| (transition.run, true, transition.effects)))
                }
                // A run without a state is rare: SeaORM inserts it.
                None => Ok(None),
            }
        };
        // Keyed by flow run: creations of one task in one flow run meet in order (dedupe).
        let outcome = self
            .write_direct_or(create.flow_run_id, direct, move |txn| {
                let job = Arc::clone(&job);
                Box::pin(async move {
                    let (new, inserted, initial, t, backend) = &*job;
                    if let Some(existing) = task_runs::find_by_natural_key(txn, new.flow_run_id, &new.task_key, &new.dynamic_key, t.now).await? {
                        return Ok((existing, false, Vec::new()));
                    }
                    match initial {
                        Some(state) => {
                            let transition = orchestrate::transition_task_run(txn, *backend, t, inserted.clone(), state.clone(), true, Some(new)).await?;
                            Ok((transition.run, true, transition.effects))
                        }
                        None => {
                            task_runs::insert(txn, new, &prefect_storage::flow_runs::RunBookkeeping::default(), 0, t.now).await?;
                            Ok((inserted.clone(), true, Vec::new()))
                        }
                    }
                })
            })
            .await?;
        let (run, created, effects) = outcome;
        self.after_task_transition(&run, effects).await;
        Ok((run, created))
    }

    /// Hands a scheduled background task run to task workers (after its commit, so a worker
    /// never sees a run the database does not have yet).
    pub(crate) async fn after_task_transition(&self, run: &TaskRun, effects: Vec<Effect>) {
        for effect in effects {
            if let Effect::TaskRunScheduled { task_run_id, task_key, retry } = effect {
                tracing::debug!(%task_run_id, %task_key, retry, "Background task run scheduled.");
                let lane = if retry { Lane::Retry } else { Lane::Scheduled };
                self.task_queues().put(run.clone(), lane).await;
            }
        }
    }

    pub async fn read_task_run(&self, id: Uuid) -> Result<TaskRun> {
        task_runs::read(self.db().reader(), id, time::now()).await?.ok_or_else(|| Error::not_found("Task run not found"))
    }

    pub async fn filter_task_runs(&self, filters: &RunFilters, sort: TaskRunSort, limit: Option<u64>, offset: u64) -> Result<Vec<TaskRun>> {
        let limit = self.settings().limit(limit)?;
        Ok(task_runs::filter(&self.db().reads(), self.db().backend(), filters, sort, limit, offset, time::now()).await?)
    }

    pub async fn count_task_runs(&self, filters: &RunFilters) -> Result<u64> {
        Ok(task_runs::count(self.db().reader(), self.db().backend(), filters).await?)
    }

    pub async fn paginate_task_runs(&self, filters: &RunFilters, sort: TaskRunSort, limit: Option<u64>, page: u64) -> Result<Paginated<TaskRun>> {
        let limit = self.settings().limit(limit)?;
        let offset = Paginated::<TaskRun>::offset(page, limit);
        let reader = self.db().reader();
        let reads = self.db().reads();
        let (results, count) = tokio::try_join!(
            task_runs::filter(&reads, self.db().backend(), filters, sort, limit, offset, time::now()),
            task_runs::count(reader, self.db().backend(), filters)
        )?;
        Ok(Paginated::new(results, count, limit, page))
    }

    pub async fn update_task_run(&self, id: Uuid, update: TaskRunUpdate) -> Result<()> {
        let name = update.name.unwrap_or_else(random_name);
        let txn = self.db().begin_write().await?;
        let updated = task_runs::update_name(&txn, id, &name, time::now()).await?;
        prefect_storage::commit(txn).await?;
        if updated { Ok(()) } else { Err(Error::not_found("Task run not found")) }
    }

    pub async fn delete_task_run(&self, id: Uuid) -> Result<()> {
        let txn = self.db().begin_write().await?;
        let deleted = task_runs::delete(&txn, id).await?;
        prefect_storage::commit(txn).await?;
        if deleted { Ok(()) } else { Err(Error::not_found("Task run not found")) }
    }

    /// Proposes a state for a task run (`POST /task_runs/{id}/set_state`).
    pub async fn set_task_run_state(&self, id: Uuid, state: StateCreate, force: bool, client: &ClientInfo) -> Result<SetStateOutcome> {
        let t = self.transition_context(client);
        let proposed = state.into_state(t.now);
        let job = Arc::new((t, proposed, self.db().backend()));
        let direct_job = Arc::clone(&job);
        let direct = move |txn: &DirectTransaction<'_>| {
            let (t, proposed, _) = &*direct_job;
            orchestrate::set_task_run_state_direct(txn, t, id, proposed.clone(), force)
        };
        let transition = self
            .write_direct_or(Some(id), direct, move |txn| {
                let job = Arc::clone(&job);
                Box::pin(async move {
                    let (t, proposed, backend) = &*job;
                    orchestrate::set_task_run_state(txn, *backend, t, id, proposed.clone(), force).await
                })
            })
            .await?;
        self.after_task_transition(&transition.run, transition.effects).await;
        Ok(SetStateOutcome { result: transition.result, created: transition.created })
    }

    pub async fn read_task_run_state(&self, id: Uuid) -> Result<State> {
        task_runs::read_state(self.db().reader(), id).await?.ok_or_else(|| Error::not_found("Task run state not found"))
    }

    pub async fn task_run_states(&self, task_run_id: Uuid) -> Result<Vec<State>> {
        Ok(task_runs::states_of(self.db().reader(), task_run_id).await?)
    }

    pub async fn task_run_history(&self, start: DateTime, end: DateTime, interval_seconds: f64, filters: &RunFilters) -> Result<Vec<HistoryResponse>> {
        let Some((count, end)) = history_window(start, end, interval_seconds)? else {
            return Ok(Vec::new());
        };
        let rows = task_runs::history_rows(self.db().reader(), self.db().backend(), filters, start, end).await?;
        Ok(bucket_history(rows, start, interval_seconds, count, time::now()))
    }
}
