//! Automation use cases: create, read, update and delete, with the lifecycle events
//! Prefect emits and a change signal for the triggers service.

use prefect_domain::automation::{Action, Automation, AutomationCreate, AutomationFilter, AutomationUpdate};
use prefect_domain::sorts::AutomationSort;
use prefect_domain::time;
use prefect_storage::automations;
use uuid::Uuid;

use crate::events::lifecycle;
use crate::{Core, Error, Result};

const NOT_FOUND: &str = "Automation not found";

fn event(action: &str, automation: &Automation) -> prefect_domain::events::ReceivedEvent {
    let payload = serde_json::to_value(automation).unwrap_or_default();
    lifecycle("automation", action, automation.id, Some(&automation.name), payload, Vec::new())
}

impl Core {
    /// `POST /automations/`: trigger ids are the server's own, as in Prefect.
    pub async fn create_automation(&self, create: AutomationCreate) -> Result<Automation> {
        let mut definition = create.definition();
        definition.trigger.reset_ids();
        self.check_automation(&definition).await?;
        let txn = self.db().begin_write().await?;
        let automation = automations::insert(&txn, &definition, create.owner_resource.as_deref(), time::now()).await?;
        prefect_storage::commit(txn).await?;
        self.automations_changed();
        self.emit(event("created", &automation)).await;
        Ok(automation)
    }

    pub async fn read_automation(&self, id: Uuid) -> Result<Automation> {
        automations::read(self.db().reader(), id).await?.ok_or_else(|| Error::not_found(NOT_FOUND))
    }

    /// `PUT /automations/{id}`: replaces the whole definition.
    pub async fn update_automation(&self, id: Uuid, mut definition: AutomationUpdate) -> Result<()> {
        definition.trigger.reset_ids();
        self.check_automation(&definition).await?;
        let txn = self.db().begin_write().await?;
        if !automations::update(&txn, id, &definition, time::now()).await? {
            return Err(Error::not_found(NOT_FOUND));
        }
        let updated = automations::read(&txn, id).await?;
        prefect_storage::commit(txn).await?;
        self.automations_changed();
        if let Some(updated) = updated {
            self.emit(event("updated", &updated)).await;
        }
        Ok(())
    }

    /// `PATCH /automations/{id}` (and the pause/resume-automation actions): turns it on or off.
    /// Turning one on is checked as a whole, since only enabled automations can loop.
    pub async fn set_automation_enabled(&self, id: Uuid, enabled: bool) -> Result<()> {
        let existing = self.read_automation(id).await?;
        if enabled && !existing.enabled {
            let mut definition = definition_of(existing);
            definition.enabled = true;
            definition.validate()?;
        }
        let txn = self.db().begin_write().await?;
        if !automations::set_enabled(&txn, id, enabled, time::now()).await? {
            return Err(Error::not_found(NOT_FOUND));
        }
        let updated = automations::read(&txn, id).await?;
        prefect_storage::commit(txn).await?;
        self.automations_changed();
        if let Some(updated) = updated {
            self.emit(event("updated", &updated)).await;
        }
        Ok(())
    }

    pub async fn delete_automation(&self, id: Uuid) -> Result<()> {
        let txn = self.db().begin_write().await?;
        let existing = automations::read(&txn, id).await?.ok_or_else(|| Error::not_found(NOT_FOUND))?;
        automations::delete(&txn, id).await?;
        prefect_storage::commit(txn).await?;
        self.automations_changed();
        self.emit(event("deleted", &existing)).await;
        Ok(())
    }

    pub async fn filter_automations(
        &self,
        filter: Option<&AutomationFilter>,
        sort: AutomationSort,
        limit: Option<u64>,
        offset: u64,
    ) -> Result<Vec<Automation>> {
        let limit = self.settings().limit(limit)?;
        Ok(automations::filter(self.db().reader(), self.db().backend(), filter, sort, limit, offset).await?)
    }

    pub async fn count_automations(&self, filter: Option<&AutomationFilter>) -> Result<u64> {
        Ok(automations::count(self.db().reader(), self.db().backend(), filter).await?)
    }

    /// `GET /automations/related-to/{resource_id}`.
    pub async fn automations_related_to(&self, resource_id: &str) -> Result<Vec<Automation>> {
        Ok(automations::related_to(self.db().reader(), resource_id, false).await?)
    }

    /// `DELETE /automations/owned-by/{resource_id}`: deletes what the resource owns (a
    /// deployment's triggers, before it is deployed again).
    pub async fn delete_automations_owned_by(&self, resource_id: &str) -> Result<()> {
        let txn = self.db().begin_write().await?;
        let deleted = automations::delete_owned_by(&txn, resource_id, time::now()).await?;
        prefect_storage::commit(txn).await?;
        if !deleted.is_empty() {
            self.automations_changed();
        }
        for automation in &deleted {
            self.emit(event("deleted", automation)).await;
        }
        Ok(())
    }

    /// Every enabled automation, for the triggers service.
    pub async fn enabled_automations(&self) -> Result<Vec<Automation>> {
        Ok(automations::enabled(self.db().reader()).await?)
    }

    /// Prefect's checks: the definition's own rules, and the job variables of runs a
    /// `selected` run-deployment action would start against the deployment's work pool.
    async fn check_automation(&self, definition: &AutomationUpdate) -> Result<()> {
        definition.validate()?;
        let mut errors = Vec::new();
        for action in &definition.actions {
            let Action::RunDeployment(run) = action else { continue };
            let (Some(deployment_id), Some(job_variables)) = (run.target.deployment_id, run.job_variables.as_ref()) else { continue };
            if job_variables.is_empty() {
                continue;
            }
            // A deployment that does not exist (yet) has nothing to check against.
            let Ok(deployment) = self.read_deployment(deployment_id).await else { continue };
            if let Err(Error::Invalid { message, .. }) = self.check_run_job_variables(&deployment, Some(job_variables), "job variables").await {
                errors.push(message);
            }
        }
        if errors.is_empty() { Ok(()) } else { Err(Error::unprocessable(format!("Error creating automation: {}", errors.join(" ")))) }
    }

    /// Tells the triggers service to read the automations again.
    fn automations_changed(&self) {
        self.inner.automations_version.send_modify(|version| *version += 1);
    }

    /// A signal that changes whenever this server changes an automation.
    pub fn watch_automations(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.automations_version.subscribe()
    }
}

fn definition_of(a: Automation) -> AutomationUpdate {
    AutomationUpdate {
        name: a.name,
        description: a.description,
        enabled: a.enabled,
        tags: a.tags,
        trigger: a.trigger,
        actions: a.actions,
        actions_on_trigger: a.actions_on_trigger,
        actions_on_resolve: a.actions_on_resolve,
    }
}
