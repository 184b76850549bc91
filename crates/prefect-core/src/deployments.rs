//! Deployment use cases: the upsert, updates with schedule reconciliation, runs created
//! from a deployment, pause/resume, and the scheduler's pass over active schedules.

use std::collections::{HashMap, HashSet};

use prefect_domain::deployment::{
    BULK_CREATE_LIMIT, BULK_DELETE_LIMIT, Deployment, DeploymentBulkDeleteResponse, DeploymentCreate, DeploymentFlowRunCreate, DeploymentSchedule,
    DeploymentScheduleCreate, DeploymentScheduleUpdate, DeploymentUpdate, FlowRunCreateResult, ScheduleRequest,
};
use prefect_domain::filters::{DateTimeFilter, DeploymentFilter, FlowRunFilter, IdFilter, RunFilters, StateFilter, StateTypeFilter};
use prefect_domain::flow_run::{CreatedBy, FlowRun};
use prefect_domain::labels::KeyValueLabels;
use prefect_domain::pagination::Paginated;
use prefect_domain::sorts::{DeploymentSort, FlowRunSort};
use prefect_domain::state::{State, StateCreate, StateType};
use prefect_domain::time::{self, DateTime};
use prefect_domain::work_pool::{DEFAULT_QUEUE_NAME, WorkPool, WorkQueueCreate};
use prefect_storage::deployments::{self, DeploymentChanges, ScheduleKey, ScheduledRun};
use prefect_storage::flow_runs::NewFlowRun;
use prefect_storage::{ConnectionTrait, flow_runs, flows, variables, work_pools};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::events::lifecycle;
use crate::flow_runs::random_name;
use crate::job_variables::{self, Rules};
use crate::schema_tools::{self, HydrationContext};
use crate::{ClientInfo, Core, Error, Result};

const NOT_FOUND: &str = "Deployment not found";
/// The pool legacy deployments (a queue name without a pool) land in.
pub const DEFAULT_AGENT_WORK_POOL_NAME: &str = crate::work_pools::DEFAULT_AGENT_POOL_NAME;

/// Scheduler knobs (Prefect's `PREFECT_SERVER_SERVICES_SCHEDULER_*`).
#[derive(Debug, Clone, Copy)]
pub struct ScheduleLimits {
    pub max_runs: usize,
    pub min_runs: usize,
    pub max_scheduled_time: chrono::TimeDelta,
    pub min_scheduled_time: chrono::TimeDelta,
}

impl Default for ScheduleLimits {
    fn default() -> Self {
        ScheduleLimits { max_runs: 100, min_runs: 3, max_scheduled_time: chrono::TimeDelta::days(100), min_scheduled_time: chrono::TimeDelta::hours(1) }
    }
}

/// Where and how many runs one scheduling pass creates.
#[derive(Debug, Clone)]
struct ScheduleWindow {
    start: DateTime,
    end: DateTime,
    min_time: chrono::TimeDelta,
    min_runs: usize,
    max_runs: usize,
}

fn event(action: &str, d: &Deployment) -> prefect_domain::events::ReceivedEvent {
    let related = vec![prefect_domain::events::Resource::with_id(format!("prefect.flow.{}", d.flow_id)).label("prefect.resource.role", "flow")];
    lifecycle("deployment", action, d.id, Some(&d.name), json!({}), related)
}

async fn read_pool(c: &impl ConnectionTrait, pool_name: &str) -> Result<WorkPool> {
    work_pools::read_pool_by_name(c, pool_name).await?.ok_or_else(|| Error::not_found(format!("Work pool \"{pool_name}\" not found.")))
}

/// Resolves a (pool, queue) pair to a queue id, creating the queue in the pool when missing.
async fn queue_in_pool(c: &impl ConnectionTrait, pool_name: &str, queue_name: Option<&str>, now: DateTime) -> Result<Uuid> {
    let pool = read_pool(c, pool_name).await?;
    match queue_name {
        None => pool.default_queue_id.ok_or_else(|| Error::not_found(format!("Work pool \"{pool_name}\" has no default queue."))),
        Some(name) => {
            if let Some(q) = work_pools::read_queue_by_name(c, pool.id, name).await? {
                return Ok(q.id);
            }
            let taken: Vec<i64> = work_pools::queue_priorities(c, pool.id).await?.into_iter().map(|(_, p)| p).collect();
            let priority = prefect_domain::work_pool::next_free_priority(&taken);
            Ok(work_pools::insert_queue(c, pool.id, &WorkQueueCreate::named(name, ""), priority, now).await?.id)
        }
    }
}

/// Prefect's `ensure_work_queue_exists`: a queue named `name` in the default agent pool
/// (created on first use), for deployments that name a queue but no pool.
async fn ensure_agent_queue(c: &impl ConnectionTrait, name: &str, now: DateTime) -> Result<Uuid> {
    crate::work_pools::agent_pool(c, now).await?;
    queue_in_pool(c, DEFAULT_AGENT_WORK_POOL_NAME, if name == DEFAULT_QUEUE_NAME { None } else { Some(name) }, now).await
}

async fn hydration_context(c: &impl ConnectionTrait) -> Result<HydrationContext> {
    let workspace_variables: HashMap<String, Value> = variables::all_values(c).await?.into_iter().collect();
    Ok(HydrationContext {
        workspace_variables,
        render_workspace_variables: true,
        render_jinja: true,
        raise_on_error: true,
        jinja_context: Value::Object(Default::default()),
    })
}

/// First violation of `parameters` against `schema`, in Prefect's words.
fn parameter_violation(parameters: &Map<String, Value>, schema: &Map<String, Value>, ignore_required: bool) -> Result<Option<String>> {
    let mut schema = schema_tools::preprocess_schema(&Value::Object(schema.clone()));
    if ignore_required && let Value::Object(m) = &mut schema {
        m.remove("required");
    }
    match schema_tools::validate(&Value::Object(parameters.clone()), &schema, &[]) {
        Ok(v) => Ok(schema_tools::describe_first(&v)),
        Err(e) => Err(Error::invalid("parameter_openapi_schema", e.to_string())),
    }
}

impl Core {
    /// `POST /deployments/`: creates or updates deployment `(flow_id, name)`; true when created.
    /// `fields_set` names the body's keys: on update only those change, as in Prefect.
    pub async fn create_deployment(&self, create: DeploymentCreate, fields_set: &HashSet<String>, created_by: Option<CreatedBy>) -> Result<(Deployment, bool)> {
        let create = create.validated()?;
        if create.enforce_parameter_schema
            && let Some(schema) = &create.parameter_openapi_schema
        {
            schema_tools::check_schema(&Value::Object(schema.clone()))
                .map_err(|e| Error::invalid("", format!("Value error, The provided schema is not a valid json schema. Schema error: {e}")))?;
            if let Some(reason) = parameter_violation(&create.parameters, schema, true)? {
                return Err(Error::invalid("", format!("Value error, {reason}")));
            }
        }
        let has = |f: &str| fields_set.contains(f);
        let now = time::now();
        let txn = self.db().begin_write().await?;
        let flow = flows::read(&txn, create.flow_id).await?.ok_or_else(|| {
            Error::Conflict(
                "Data integrity conflict. This usually means a unique or foreign key constraint was violated. See server logs for details.".to_owned(),
            )
        })?;
        if let Some(pool_name) = create.work_pool_name.as_deref().filter(|p| *p != DEFAULT_AGENT_WORK_POOL_NAME)
            && !create.job_variables.is_empty()
        {
            let pool = read_pool(&txn, pool_name).await?;
            let layers = [Some(&create.job_variables)];
            if let Some(reason) = job_variables::violation(&txn, &pool.base_job_template, &layers, Rules::DEPLOYMENT).await? {
                return Err(Error::unprocessable(format!("Error creating deployment: {reason}")));
            }
        }
        let work_queue_id = match (create.work_pool_name.as_deref(), create.work_queue_name.as_deref()) {
            (Some(pool), queue) => Some(queue_in_pool(&txn, pool, queue, now).await?),
            (None, Some(queue)) => Some(ensure_agent_queue(&txn, queue, now).await?),
            (None, None) => None,
        };
        if let Some(Some(limit_id)) = create.global_concurrency_limit_id
            && prefect_storage::concurrency::read(&txn, limit_id).await?.is_none()
        {
            return Err(Error::not_found("Concurrency limit not found"));
        }
        for (id, what) in [(create.infrastructure_document_id, "infrastructure"), (create.storage_document_id, "storage")] {
            if let Some(id) = id
                && prefect_storage::blocks::read_document(&txn, id).await?.is_none()
            {
                return Err(Error::Conflict(format!(
                    "Error creating deployment. Could not find {what} block with id: {id}. This usually occurs when applying a deployment specification that was built against a different Prefect database / workspace."
                )));
            }
        }
        // Labels: the flow's, then the system label, then the user's.
        let mut labels: KeyValueLabels = flow.labels.clone().unwrap_or_default();
        labels.insert("prefect.flow.id".to_owned(), Value::String(flow.id.to_string()));
        if let Some(user) = &create.labels {
            labels.extend(user.clone());
        }
        let existing = deployments::find_by_flow_and_name(&txn, self.db().backend(), create.flow_id, &create.name).await?;
        let opt = |f: &str| has(f);
        let mut changes = DeploymentChanges {
            version: opt("version").then(|| create.version.clone()),
            version_info: opt("version_info").then(|| create.version_info.clone()),
            description: opt("description").then(|| create.description.clone()),
            work_queue_name: opt("work_queue_name").then(|| create.work_queue_name.clone()),
            work_queue_id: (work_queue_id.is_some() || existing.is_none()).then_some(work_queue_id),
            job_variables: opt("job_variables").then(|| create.job_variables.clone()),
            path: opt("path").then(|| create.path.clone()),
            entrypoint: opt("entrypoint").then(|| create.entrypoint.clone()),
            paused: opt("paused").then_some(create.paused),
            concurrency_limit_id: create.global_concurrency_limit_id,
            concurrency_options: opt("concurrency_options").then(|| create.concurrency_options.clone()),
            tags: opt("tags").then(|| create.tags.clone()),
            labels: Some(labels),
            parameters: opt("parameters").then(|| create.parameters.clone()),
            pull_steps: if opt("pull_steps") { Some(create.pull_steps.clone()) } else { existing.is_none().then(|| Some(Vec::new())) },
            // Prefect stores `{}` when the body has no schema (the ORM model's default).
            parameter_openapi_schema: Some(if opt("parameter_openapi_schema") { create.parameter_openapi_schema.clone() } else { Some(Map::new()) }),
            enforce_parameter_schema: opt("enforce_parameter_schema").then_some(create.enforce_parameter_schema),
            created_by: None,
            updated_by: Some(created_by.clone()),
            infrastructure_document_id: opt("infrastructure_document_id").then_some(create.infrastructure_document_id),
            storage_document_id: opt("storage_document_id").then_some(create.storage_document_id),
        };
        let (id, created) = match existing {
            Some(id) => {
                if !opt("parameter_openapi_schema") {
                    changes.parameter_openapi_schema = None;
                }
                deployments::update(&txn, id, &changes, now).await?;
                (id, false)
            }
            None => {
                let id = Uuid::now_v7();
                changes.created_by = Some(created_by);
                deployments::insert(&txn, id, create.flow_id, &create.name, &changes, now).await?;
                (id, true)
            }
        };
        deployments::delete_scheduled_runs(&txn, id, true, Some(now)).await?;
        deployments::delete_schedules_of(&txn, id).await?;
        deployments::insert_schedules(&txn, id, &create.schedules, now).await?;
        if let Some(limit) = create.concurrency_limit {
            let current = deployments::read_concurrency(&txn, id).await?.and_then(|(l, _)| l);
            let limit_id = deployments::sync_concurrency_limit(&txn, id, current, limit, now).await?;
            if limit_id != current {
                deployments::update(&txn, id, &DeploymentChanges { concurrency_limit_id: Some(limit_id), ..Default::default() }, now).await?;
            }
        }
        let deployment = deployments::read(&txn, id, now).await?.ok_or_else(|| Error::not_found(NOT_FOUND))?;
        prefect_storage::commit(txn).await?;
        self.emit(event(if created { "created" } else { "updated" }, &deployment)).await;
        Ok((deployment, created))
    }

    pub async fn read_deployment(&self, id: Uuid) -> Result<Deployment> {
        deployments::read(self.db().reader(), id, time::now()).await?.ok_or_else(|| Error::not_found(NOT_FOUND))
    }

    pub async fn read_deployment_by_name(&self, flow_name: &str, name: &str) -> Result<Deployment> {
        deployments::read_by_name(self.db().reader(), flow_name, name, time::now()).await?.ok_or_else(|| Error::not_found(NOT_FOUND))
    }

    pub async fn filter_deployments(&self, filters: &RunFilters, sort: DeploymentSort, limit: Option<u64>, offset: u64) -> Result<Vec<Deployment>> {
        let limit = self.settings().limit(limit)?;
        Ok(deployments::filter(self.db().reader(), self.db().backend(), filters, sort, limit, offset, time::now()).await?)
    }

    pub async fn count_deployments(&self, filters: &RunFilters) -> Result<u64> {
        Ok(deployments::count(self.db().reader(), self.db().backend(), filters).await?)
    }

    pub async fn paginate_deployments(&self, filters: &RunFilters, sort: DeploymentSort, limit: Option<u64>, page: u64) -> Result<Paginated<Deployment>> {
        let limit = self.settings().limit(limit)?;
        let offset = Paginated::<Deployment>::offset(page, limit);
        let reader = self.db().reader();
        let results = deployments::filter(reader, self.db().backend(), filters, sort, limit, offset, time::now()).await?;
        let count = deployments::count(reader, self.db().backend(), filters).await?;
        Ok(Paginated::new(results, count, limit, page))
    }

    /// `PATCH /deployments/{id}`.
    pub async fn update_deployment(&self, id: Uuid, update: DeploymentUpdate) -> Result<()> {
        let mut update = update.validated()?;
        let now = time::now();
        let txn = self.db().begin_write().await?;
        let existing = deployments::read(&txn, id, now).await?.ok_or_else(|| Error::not_found("Deployment not found."))?;

        // Schedules: targeted updates by slug when every schedule has one, else a replacement.
        let mut to_patch: Vec<DeploymentScheduleUpdate> = Vec::new();
        let mut to_create: Vec<DeploymentScheduleUpdate> = Vec::new();
        let provided = update.schedules.clone().unwrap_or_default();
        let all_provided_have_slugs = provided.iter().all(|s| s.slug.is_some());
        let all_existing_have_slugs = !existing.schedules.is_empty() && existing.schedules.iter().all(|s| s.slug.is_some());
        if all_provided_have_slugs && all_existing_have_slugs {
            let current: Vec<&str> = existing.schedules.iter().filter_map(|s| s.slug.as_deref()).collect();
            let mut replaced: HashSet<String> = HashSet::new();
            for s in &provided {
                if let Some(r) = &s.replaces
                    && !replaced.insert(r.clone())
                {
                    return Err(Error::unprocessable(format!("Multiple schedules have 'replaces' targeting the same slug: {r}")));
                }
            }
            for s in &provided {
                if let (Some(slug), Some(r)) = (&s.slug, &s.replaces)
                    && current.contains(&slug.as_str())
                    && !replaced.contains(slug)
                {
                    return Err(Error::unprocessable(format!("Cannot rename schedule from '{r}' to '{slug}': a schedule with slug '{slug}' already exists.")));
                }
            }
            for s in provided {
                let target = s.replaces.clone().or_else(|| s.slug.clone()).unwrap_or_default();
                if current.contains(&target.as_str()) {
                    to_patch.push(s);
                } else if s.schedule.is_some() {
                    to_create.push(s);
                } else {
                    return Err(Error::unprocessable("Unable to create new deployment schedules without a schedule configuration."));
                }
            }
            update.schedules = None;
        } else if !all_provided_have_slugs && all_existing_have_slugs && update.schedules.is_some() {
            return Err(Error::unprocessable("Please provide a slug for each schedule in your request to ensure schedules are updated correctly."));
        }

        if let Some(Some(pool_name)) = &update.work_pool_name {
            let pool = read_pool(&txn, pool_name).await?;
            if let Some(job_variables) = &update.job_variables
                && let Some(v) = job_variables::update_violation(&pool.base_job_template, job_variables)?
            {
                // Prefect words this one with the repr of jsonschema's error, and "creating".
                return Err(Error::Conflict(format!("Error creating deployment: <ValidationError: {}>", schema_tools::py_repr(&Value::String(v.message)))));
            }
        }

        let mut parameters = existing.parameters.clone();
        if let Some(p) = &update.parameters {
            let ctx = hydration_context(&txn).await?;
            match schema_tools::hydrate(&Value::Object(p.clone()), &ctx) {
                Ok((Value::Object(h), _)) => parameters = h,
                Ok(_) => parameters = Map::new(),
                Err(e) => {
                    return Err(Error::BadRequest(format!("Error hydrating deployment parameters: {e}")));
                }
            }
            update.parameters = Some(parameters.clone());
        }
        let enforce = update.enforce_parameter_schema.unwrap_or(existing.enforce_parameter_schema);
        if enforce {
            let schema = update.parameter_openapi_schema.clone().filter(|s| !s.is_empty()).or_else(|| existing.parameter_openapi_schema.clone());
            let Some(schema) = schema else {
                return Err(Error::Conflict(
                    "Error updating deployment: Cannot update parameters because parameter schema enforcement is enabled and the deployment does not have a valid parameter schema.".to_owned(),
                ));
            };
            if let Some(reason) = parameter_violation(&parameters, &schema, true)? {
                return Err(Error::Conflict(format!("Error updating deployment: {reason}")));
            }
        }
        if let Some(Some(limit_id)) = update.global_concurrency_limit_id
            && prefect_storage::concurrency::read(&txn, limit_id).await?.is_none()
        {
            return Err(Error::not_found("Concurrency limit not found"));
        }
        let work_queue_id = match (&update.work_pool_name, &update.work_queue_name) {
            (Some(Some(pool)), queue) => Some(Some(queue_in_pool(&txn, pool, queue.clone().flatten().as_deref(), now).await?)),
            (Some(None), _) => Some(None),
            (None, Some(Some(queue))) => Some(Some(ensure_agent_queue(&txn, queue, now).await?)),
            _ => None,
        };
        let changes = DeploymentChanges {
            version: update.version.clone(),
            version_info: update.version_info.clone().map(Some),
            description: update.description.clone(),
            work_queue_name: update.work_queue_name.clone(),
            work_queue_id,
            job_variables: update.job_variables.clone(),
            path: update.path.clone(),
            entrypoint: update.entrypoint.clone(),
            paused: update.paused,
            concurrency_limit_id: update.global_concurrency_limit_id,
            concurrency_options: update.concurrency_options.clone(),
            tags: update.tags.clone(),
            labels: None,
            parameters: update.parameters.clone(),
            pull_steps: update.pull_steps.clone(),
            parameter_openapi_schema: update.parameter_openapi_schema.clone().map(Some),
            enforce_parameter_schema: update.enforce_parameter_schema,
            created_by: None,
            updated_by: None,
            infrastructure_document_id: update.infrastructure_document_id,
            storage_document_id: update.storage_document_id,
        };
        deployments::update(&txn, id, &changes, now).await?;
        deployments::delete_scheduled_runs(&txn, id, true, Some(now)).await?;
        if let Some(schedules) = &update.schedules {
            deployments::delete_schedules_of(&txn, id).await?;
            let creates: Vec<DeploymentScheduleCreate> = schedules
                .iter()
                .filter_map(|s| {
                    s.schedule.clone().map(|schedule| DeploymentScheduleCreate {
                        active: s.active.unwrap_or(true),
                        schedule,
                        max_scheduled_runs: s.max_scheduled_runs,
                        parameters: s.parameters.clone().unwrap_or_default(),
                        slug: s.slug.clone(),
                        replaces: None,
                    })
                })
                .collect();
            deployments::insert_schedules(&txn, id, &creates, now).await?;
        }
        if let Some(limit) = update.concurrency_limit {
            let current = deployments::read_concurrency(&txn, id).await?.and_then(|(l, _)| l);
            let limit_id = deployments::sync_concurrency_limit(&txn, id, current, limit, now).await?;
            if limit_id != current {
                deployments::update(&txn, id, &DeploymentChanges { concurrency_limit_id: Some(limit_id), ..Default::default() }, now).await?;
            }
        }
        // Renames first clear the old slugs so the (deployment, slug) index allows the swap.
        let mut renamed: HashMap<String, Uuid> = HashMap::new();
        for s in &to_patch {
            if let Some(r) = &s.replaces {
                let sid = deployments::schedule_id_by_slug(&txn, id, r)
                    .await?
                    .ok_or_else(|| Error::not_found(format!("Schedule with slug '{r}' no longer exists.")))?;
                renamed.insert(r.clone(), sid);
            }
        }
        if !renamed.is_empty() {
            let slugs: Vec<String> = renamed.keys().cloned().collect();
            deployments::clear_slugs(&txn, id, &slugs).await?;
        }
        for s in &to_patch {
            let key = match &s.replaces {
                Some(r) => ScheduleKey::Id(renamed[r]),
                None => ScheduleKey::Slug(s.slug.as_deref().unwrap_or_default()),
            };
            deployments::update_schedule(&txn, id, key, s, now).await?;
        }
        if !to_create.is_empty() {
            let creates: Vec<DeploymentScheduleCreate> = to_create
                .into_iter()
                .filter_map(|s| {
                    s.schedule.map(|schedule| DeploymentScheduleCreate {
                        active: s.active.unwrap_or(true),
                        schedule,
                        max_scheduled_runs: s.max_scheduled_runs,
                        parameters: s.parameters.unwrap_or_default(),
                        slug: s.slug,
                        replaces: None,
                    })
                })
                .collect();
            deployments::insert_schedules(&txn, id, &creates, now).await?;
        }
        let updated = deployments::read(&txn, id, now).await?.ok_or_else(|| Error::not_found("Deployment not found."))?;
        prefect_storage::commit(txn).await?;
        self.emit(event("updated", &updated)).await;
        Ok(())
    }

    pub async fn delete_deployment(&self, id: Uuid) -> Result<()> {
        let txn = self.db().begin_write().await?;
        let existing = deployments::read(&txn, id, time::now()).await?.ok_or_else(|| Error::not_found(NOT_FOUND))?;
        deployments::delete_scheduled_runs(&txn, id, false, None).await?;
        deployments::delete_concurrency_limit(&txn, existing.global_concurrency_limit.as_ref().map(|g| g.id)).await?;
        deployments::delete(&txn, id).await?;
        prefect_storage::commit(txn).await?;
        self.emit(event("deleted", &existing)).await;
        Ok(())
    }

    /// `POST /deployments/bulk_delete`: deletes up to `limit` (≤ 50) matching deployments.
    pub async fn bulk_delete_deployments(&self, filter: Option<DeploymentFilter>, limit: Option<u64>) -> Result<DeploymentBulkDeleteResponse> {
        let limit = limit.unwrap_or(BULK_DELETE_LIMIT);
        if limit == 0 {
            return Err(Error::invalid("limit", "Input should be greater than or equal to 1"));
        }
        if limit > BULK_DELETE_LIMIT {
            return Err(Error::invalid("limit", format!("Input should be less than or equal to {BULK_DELETE_LIMIT}")));
        }
        let filters = RunFilters { deployments: filter, ..Default::default() };
        let now = time::now();
        let txn = self.db().begin_write().await?;
        let ids = deployments::ids_matching(&txn, self.db().backend(), &filters, limit).await?;
        let mut deleted = Vec::new();
        let mut events = Vec::new();
        for id in ids {
            let Some(d) = deployments::read(&txn, id, now).await? else {
                continue;
            };
            deployments::delete_scheduled_runs(&txn, id, false, None).await?;
            deployments::delete_concurrency_limit(&txn, d.global_concurrency_limit.as_ref().map(|g| g.id)).await?;
            deployments::delete(&txn, id).await?;
            deleted.push(id);
            events.push(event("deleted", &d));
        }
        prefect_storage::commit(txn).await?;
        for e in events {
            self.emit(e).await;
        }
        Ok(DeploymentBulkDeleteResponse { deleted })
    }

    /// `POST /deployments/{id}/pause_deployment` and `/resume_deployment`.
    pub async fn set_deployment_paused(&self, id: Uuid, paused: bool) -> Result<()> {
        let now = time::now();
        let txn = self.db().begin_write().await?;
        if !deployments::exists(&txn, id).await? {
            return Err(Error::not_found(NOT_FOUND));
        }
        deployments::update(&txn, id, &DeploymentChanges { paused: Some(paused), ..Default::default() }, now).await?;
        if paused {
            deployments::delete_scheduled_runs(&txn, id, true, None).await?;
        }
        prefect_storage::commit(txn).await?;
        Ok(())
    }

    /// Checks and merges the parameters of a run created from `deployment`; `Err(message)`
    /// carries the status the single-run route answers with.
    async fn run_parameters(
        &self,
        c: &impl ConnectionTrait,
        d: &Deployment,
        overrides: &Map<String, Value>,
        enforce: Option<bool>,
    ) -> Result<std::result::Result<Map<String, Value>, Error>> {
        let mut params = d.parameters.clone();
        params.extend(overrides.clone());
        let ctx = hydration_context(c).await?;
        let params = match schema_tools::hydrate(&Value::Object(params), &ctx) {
            Ok((Value::Object(m), _)) => m,
            Ok(_) => Map::new(),
            Err(e) => {
                return Ok(Err(Error::BadRequest(format!("Error hydrating flow run parameters: {e}"))));
            }
        };
        if enforce.unwrap_or(d.enforce_parameter_schema) {
            let Some(schema) = &d.parameter_openapi_schema else {
                return Ok(Err(Error::Conflict(
                    "Error updating deployment: Cannot update parameters because parameter schema enforcement is enabled and the deployment does not have a valid parameter schema.".to_owned(),
                )));
            };
            if let Some(reason) = parameter_violation(&params, schema, false)? {
                return Ok(Err(Error::Conflict(format!("Error creating flow run: {reason}"))));
            }
        }
        Ok(Ok(params))
    }

    async fn new_deployment_run(
        &self,
        d: &Deployment,
        create: DeploymentFlowRunCreate,
        parameters: Map<String, Value>,
        created_by: Option<CreatedBy>,
        client: &ClientInfo,
    ) -> Result<(FlowRun, bool)> {
        if let Some(labels) = &create.labels {
            prefect_domain::labels::validate(labels, "labels")?;
        }
        self.check_run_job_variables(d, create.job_variables.as_ref(), "Error creating flow run").await?;
        let now = time::now();
        let (mut work_queue_id, mut work_queue_name) = (d.work_queue_id, d.work_queue_name.clone());
        if let Some(queue) = create.work_queue_name.as_deref() {
            let Some(pool) = d.work_pool_name.as_deref() else {
                return Err(Error::BadRequest(format!(
                    "Cannot create flow run in work queue {queue} because deployment {} is not associated with a work pool. Please remove work_pool_name and try again.",
                    d.id
                )));
            };
            let txn = self.db().begin_write().await?;
            work_queue_id = Some(queue_in_pool(&txn, pool, Some(queue), now).await?);
            prefect_storage::commit(txn).await?;
            work_queue_name = Some(queue.to_owned());
        }
        let work_pool = match work_queue_id {
            Some(q) => flow_runs::work_pools_of_queues(self.db().reader(), vec![q]).await?.remove(&q),
            None => None,
        };
        let flow = flows::read(self.db().reader(), d.flow_id).await?.ok_or_else(|| Error::not_found("Flow not found"))?;
        let mut tags = d.tags.clone();
        for t in create.tags {
            if !tags.contains(&t) {
                tags.push(t);
            }
        }
        let mut labels = d.labels.clone();
        labels.insert("prefect.flow.id".to_owned(), Value::String(d.flow_id.to_string()));
        labels.insert("prefect.deployment.id".to_owned(), Value::String(d.id.to_string()));
        if let Some(user) = create.labels {
            labels.extend(user);
        }
        let t = self.transition_context(client);
        let new = NewFlowRun {
            id: Uuid::now_v7(),
            name: create.name.filter(|n| !n.is_empty()).unwrap_or_else(random_name),
            flow_id: d.flow_id,
            flow_version: None,
            deployment_id: Some(d.id),
            deployment_version: d.version.clone(),
            work_queue_id,
            work_queue_name,
            parameters,
            idempotency_key: create.idempotency_key,
            context: create.context,
            empirical_policy: create.empirical_policy.normalized(),
            tags,
            labels,
            parent_task_run_id: create.parent_task_run_id,
            infrastructure_document_id: create.infrastructure_document_id.or(d.infrastructure_document_id),
            job_variables: Some(create.job_variables.unwrap_or_default()),
            created_by,
            auto_scheduled: false,
        };
        let initial = create.state.unwrap_or_else(|| StateCreate::of(StateType::Scheduled)).into_state(t.now);
        self.insert_flow_run(new, work_pool, initial, t, flow).await
    }

    /// Checks a run's job variables over its deployment's and its pool's defaults (the full set,
    /// `required` included); a deployment without a pool has nothing to check against.
    pub(crate) async fn check_run_job_variables(&self, d: &Deployment, run_variables: Option<&Map<String, Value>>, context: &str) -> Result<()> {
        let Some(pool_name) = d.work_pool_name.as_deref() else {
            return Ok(());
        };
        let reader = self.db().reader();
        let Some(pool) = work_pools::read_pool_by_name(reader, pool_name).await? else {
            return Ok(());
        };
        let layers = [Some(&d.job_variables), run_variables];
        match job_variables::violation(reader, &pool.base_job_template, &layers, Rules::FLOW_RUN).await? {
            Some(reason) => Err(Error::unprocessable(format!("{context}: {reason}"))),
            None => Ok(()),
        }
    }

    /// `POST /ui/flows/count-deployments`: deployments per flow, 0 for flows without any.
    pub async fn count_deployments_by_flow(&self, flow_ids: &[Uuid]) -> Result<Vec<(Uuid, u64)>> {
        let counts = deployments::count_by_flow(self.db().reader(), flow_ids).await?;
        Ok(flow_ids.iter().map(|id| (*id, counts.get(id).copied().unwrap_or(0))).collect())
    }

    /// `POST /ui/flows/next-runs`: each flow's soonest Scheduled run, `None` for flows without one.
    pub async fn next_runs_by_flow(&self, flow_ids: &[Uuid]) -> Result<Vec<(Uuid, Option<prefect_domain::flow_run::SimpleNextFlowRun>)>> {
        let mut next: HashMap<Uuid, _> =
            flow_runs::next_scheduled_of_flows(self.db().reader(), self.db().backend(), flow_ids).await?.into_iter().map(|r| (r.flow_id, r)).collect();
        Ok(flow_ids.iter().map(|id| (*id, next.remove(id))).collect())
    }

    /// `POST /deployments/{id}/create_flow_run`.
    pub async fn create_flow_run_from_deployment(
        &self,
        id: Uuid,
        create: DeploymentFlowRunCreate,
        created_by: Option<CreatedBy>,
        client: &ClientInfo,
    ) -> Result<(FlowRun, bool)> {
        let d = self.read_deployment(id).await?;
        let parameters = self.run_parameters(self.db().reader(), &d, &create.parameters, create.enforce_parameter_schema).await??;
        self.new_deployment_run(&d, create, parameters, created_by, client).await
    }

    /// `POST /deployments/{id}/create_flow_run/bulk`: each run succeeds or fails on its own.
    pub async fn bulk_create_flow_runs_from_deployment(
        &self,
        id: Uuid,
        creates: Vec<DeploymentFlowRunCreate>,
        created_by: Option<CreatedBy>,
        client: &ClientInfo,
    ) -> Result<Vec<FlowRunCreateResult>> {
        if creates.len() > BULK_CREATE_LIMIT {
            return Err(Error::BadRequest(format!("Cannot create more than {BULK_CREATE_LIMIT} flow runs at once.")));
        }
        let d = self.read_deployment(id).await?;
        let mut results = Vec::with_capacity(creates.len());
        for create in creates {
            let failed = |error: String| FlowRunCreateResult { flow_run_id: None, status: "FAILED".to_owned(), error: Some(error) };
            let parameters = match self.run_parameters(self.db().reader(), &d, &create.parameters, create.enforce_parameter_schema).await? {
                Ok(p) => p,
                Err(e) => {
                    results.push(failed(e.to_string()));
                    continue;
                }
            };
            match self.new_deployment_run(&d, create, parameters, created_by.clone(), client).await {
                Ok((run, _)) => results.push(FlowRunCreateResult { flow_run_id: Some(run.id), status: "CREATED".to_owned(), error: None }),
                Err(e) => results.push(failed(e.to_string())),
            }
        }
        Ok(results)
    }

    /// `POST /deployments/get_scheduled_flow_runs`: a runner's poll; marks the deployments READY.
    pub async fn scheduled_runs_of_deployments(&self, ids: Vec<Uuid>, scheduled_before: Option<DateTime>, limit: Option<u64>) -> Result<Vec<FlowRun>> {
        let filters = RunFilters {
            deployments: Some(DeploymentFilter { id: Some(IdFilter { any_: Some(ids.clone()), ..Default::default() }), ..Default::default() }),
            flow_runs: Some(FlowRunFilter {
                next_scheduled_start_time: scheduled_before.map(|b| DateTimeFilter { before_: Some(b), ..Default::default() }),
                state: Some(StateFilter {
                    state_type: Some(StateTypeFilter { any_: Some(vec![StateType::Scheduled]), ..Default::default() }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let runs = self.filter_flow_runs(&filters, FlowRunSort::NextScheduledStartTimeAsc, limit, 0).await?;
        let now = time::now();
        let txn = self.db().begin_write().await?;
        let became_ready = deployments::mark_ready(&txn, &ids, now).await?;
        prefect_storage::commit(txn).await?;
        for id in became_ready {
            let resource = format!("prefect.deployment.{id}");
            let mut e = lifecycle("deployment", "ready", id, None, json!({}), Vec::new());
            e.resource = prefect_domain::events::Resource::with_id(resource);
            self.emit(e).await;
        }
        Ok(runs)
    }

    // -------------------------------------------------------------- schedules

    pub async fn read_deployment_schedules(&self, id: Uuid) -> Result<Vec<DeploymentSchedule>> {
        let reader = self.db().reader();
        if !deployments::exists(reader, id).await? {
            return Err(Error::not_found("Deployment not found."));
        }
        Ok(deployments::read_schedules(reader, id, false).await?)
    }

    pub async fn create_deployment_schedules(&self, id: Uuid, schedules: Vec<DeploymentScheduleCreate>) -> Result<Vec<DeploymentSchedule>> {
        let schedules = schedules.into_iter().enumerate().map(|(i, s)| s.validated(&format!("{i}."))).collect::<prefect_domain::Result<Vec<_>>>()?;
        let now = time::now();
        let txn = self.db().begin_write().await?;
        if !deployments::exists(&txn, id).await? {
            return Err(Error::not_found("Deployment not found."));
        }
        let created = match deployments::insert_schedules(&txn, id, &schedules, now).await {
            Ok(c) => c,
            Err(prefect_storage::Error::Conflict(_)) => {
                return Err(Error::Conflict("Schedule slugs must be unique within a deployment.".to_owned()));
            }
            Err(e) => return Err(e.into()),
        };
        // Touch the deployment so the recent-deployments scheduler picks the new schedules up.
        deployments::update(&txn, id, &DeploymentChanges::default(), now).await?;
        prefect_storage::commit(txn).await?;
        Ok(created)
    }

    pub async fn update_deployment_schedule(&self, id: Uuid, schedule_id: Uuid, update: DeploymentScheduleUpdate) -> Result<()> {
        let update = update.validated("")?;
        let now = time::now();
        let txn = self.db().begin_write().await?;
        if !deployments::exists(&txn, id).await? {
            return Err(Error::not_found("Deployment not found."));
        }
        if !deployments::update_schedule(&txn, id, ScheduleKey::Id(schedule_id), &update, now).await? {
            return Err(Error::not_found("Schedule not found."));
        }
        deployments::delete_scheduled_runs(&txn, id, true, Some(now)).await?;
        deployments::update(&txn, id, &DeploymentChanges::default(), now).await?;
        prefect_storage::commit(txn).await?;
        Ok(())
    }

    pub async fn delete_deployment_schedule(&self, id: Uuid, schedule_id: Uuid) -> Result<()> {
        let now = time::now();
        let txn = self.db().begin_write().await?;
        if !deployments::exists(&txn, id).await? {
            return Err(Error::not_found("Deployment not found."));
        }
        if !deployments::delete_schedule(&txn, id, schedule_id).await? {
            return Err(Error::not_found("Schedule not found."));
        }
        deployments::delete_scheduled_runs(&txn, id, true, None).await?;
        deployments::update(&txn, id, &DeploymentChanges::default(), now).await?;
        prefect_storage::commit(txn).await?;
        Ok(())
    }

    // -------------------------------------------------------------- scheduler

    /// Deployments whose active schedules need more runs (fewer than `min_runs` future
    /// auto-scheduled runs, or none far enough ahead); with `updated_since`, every
    /// recently updated deployment with an active schedule instead.
    pub async fn deployments_to_schedule(&self, limits: &ScheduleLimits, updated_since: Option<DateTime>) -> Result<Vec<Uuid>> {
        let reader = self.db().reader();
        let now = time::now();
        let schedules = deployments::active_schedules(reader, updated_since).await?;
        let mut out: Vec<Uuid> = Vec::new();
        if updated_since.is_some() {
            for (_, d) in schedules {
                if out.last() != Some(&d) {
                    out.push(d);
                }
            }
            return Ok(out);
        }
        let stats = deployments::future_run_stats(reader, self.db().backend(), now).await?;
        for (sid, d) in schedules {
            let needs = match stats.get(&sid) {
                None => true,
                Some((n, latest)) => (*n as usize) < limits.min_runs || *latest < now + limits.min_scheduled_time,
            };
            if needs && out.last() != Some(&d) {
                out.push(d);
            }
        }
        Ok(out)
    }

    /// The runs a deployment's active schedules call for from now on (Prefect's
    /// `_generate_scheduled_flow_runs`); none for an unknown deployment.
    pub async fn runs_to_schedule(&self, deployment_id: Uuid, limits: &ScheduleLimits) -> Result<Vec<ScheduledRun>> {
        let start = time::now();
        let window = ScheduleWindow {
            start,
            end: start + limits.max_scheduled_time,
            min_time: limits.min_scheduled_time,
            min_runs: limits.min_runs,
            max_runs: limits.max_runs,
        };
        self.runs_in_window(deployment_id, &window).await
    }

    /// `POST /deployments/{id}/schedule`: schedules the runs of the deployment's active schedules
    /// in a window (a past window backfills); unset bounds come from the scheduler's settings.
    /// Runs already scheduled for the same schedule and time are kept, not duplicated.
    pub async fn schedule_deployment_runs(&self, deployment_id: Uuid, request: ScheduleRequest) -> Result<usize> {
        let limits = &self.settings().schedule_limits;
        let start = request.start_time.unwrap_or_else(time::now);
        let window = ScheduleWindow {
            start,
            end: request.end_time.unwrap_or(start + limits.max_scheduled_time),
            min_time: request.min_time_seconds.map(|s| chrono::TimeDelta::milliseconds((s * 1000.0) as i64)).unwrap_or(limits.min_scheduled_time),
            min_runs: request.min_runs.unwrap_or(limits.min_runs),
            max_runs: request.max_runs.unwrap_or(limits.max_runs),
        };
        let runs = self.runs_in_window(deployment_id, &window).await?;
        self.insert_scheduled_runs(&runs).await
    }

    /// The runs each active schedule of the deployment wants in `window`: starting at
    /// `window.start`, at most `max_runs` and none after `end`, stopping once both `min_runs`
    /// and `start + min_time` are reached.
    async fn runs_in_window(&self, deployment_id: Uuid, window: &ScheduleWindow) -> Result<Vec<ScheduledRun>> {
        let reader = self.db().reader();
        let now = time::now();
        let Some(d) = deployments::read(reader, deployment_id, now).await? else {
            return Ok(Vec::new());
        };
        let schedules = deployments::read_schedules(reader, deployment_id, true).await?;
        let mut runs = Vec::new();
        let mut tags = vec!["auto-scheduled".to_owned()];
        tags.extend(d.tags.iter().cloned());
        let mut labels = d.labels.clone();
        labels.insert("prefect.flow.id".to_owned(), Value::String(d.flow_id.to_string()));
        labels.insert("prefect.deployment.id".to_owned(), Value::String(d.id.to_string()));
        for s in schedules {
            let mut dates = Vec::new();
            for date in s.schedule.get_dates(Some(window.max_runs), window.start, Some(window.end)) {
                dates.push(date);
                if dates.len() >= window.min_runs && date >= window.start + window.min_time {
                    break;
                }
            }
            let mut parameters = d.parameters.clone();
            parameters.extend(s.parameters.clone());
            let created_by = CreatedBy { id: Some(s.id), kind: Some("SCHEDULE".to_owned()), display_value: Some(s.display_value()) };
            for date in dates {
                let mut state = StateCreate::of(StateType::Scheduled);
                state.message = Some("Flow run scheduled".to_owned());
                state.state_details.scheduled_time = Some(date);
                let state: State = state.into_state(now);
                runs.push(ScheduledRun {
                    run: NewFlowRun {
                        id: Uuid::now_v7(),
                        name: random_name(),
                        flow_id: d.flow_id,
                        flow_version: None,
                        deployment_id: Some(d.id),
                        deployment_version: d.version.clone(),
                        work_queue_id: d.work_queue_id,
                        work_queue_name: d.work_queue_name.clone(),
                        parameters: parameters.clone(),
                        idempotency_key: Some(format!("scheduled {} {} {}", d.id, s.id, python_datetime(date))),
                        context: Map::new(),
                        empirical_policy: Default::default(),
                        tags: tags.clone(),
                        labels: labels.clone(),
                        parent_task_run_id: None,
                        infrastructure_document_id: d.infrastructure_document_id,
                        job_variables: None,
                        created_by: Some(created_by.clone()),
                        auto_scheduled: true,
                    },
                    state,
                });
            }
        }
        Ok(runs)
    }

    /// Inserts scheduled runs whose idempotency key is free; returns how many were inserted.
    pub async fn insert_scheduled_runs(&self, runs: &[ScheduledRun]) -> Result<usize> {
        if runs.is_empty() {
            return Ok(0);
        }
        let txn = self.db().begin_write().await?;
        let inserted = deployments::insert_scheduled_runs(&txn, runs, time::now()).await?;
        prefect_storage::commit(txn).await?;
        Ok(inserted.len())
    }
}

/// A UTC time as Python's `str(datetime)` writes it (`2026-01-01 00:00:00+00:00`), the
/// form Prefect puts in scheduled runs' idempotency keys.
fn python_datetime(t: DateTime) -> String {
    use chrono::Timelike;
    if t.nanosecond() / 1000 == 0 { t.format("%Y-%m-%d %H:%M:%S+00:00").to_string() } else { t.format("%Y-%m-%d %H:%M:%S%.6f+00:00").to_string() }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn idempotency_key_dates_look_like_python() {
        let t = chrono::DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z").unwrap().with_timezone(&chrono::Utc);
        assert_eq!(python_datetime(t), "2026-01-02 03:04:05+00:00");
        let t = chrono::DateTime::parse_from_rfc3339("2026-01-02T03:04:05.5Z").unwrap().with_timezone(&chrono::Utc);
        assert_eq!(python_datetime(t), "2026-01-02 03:04:05.500000+00:00");
    }
}
