//! What happens when an automation fires: the `prefect.automation.triggered` event,
//! then each action in order, each announced by `prefect.automation.action.triggered`
//! and concluded by `prefect.automation.action.executed` or `.failed`, as Prefect does.
//!
//! Actions act through the same use cases as the API, with the automation recorded as
//! the creator of what they make.

use std::collections::BTreeMap;
use std::sync::Arc;

use prefect_domain::automation::{Action, Automation, Posture, Source, Trigger};
use prefect_domain::deployment::DeploymentFlowRunCreate;
use prefect_domain::events::{RESOURCE_NAME, RESOURCE_ROLE, ReceivedEvent, Resource};
use prefect_domain::flow_run::CreatedBy;
use prefect_domain::state::{SetStateStatus, StateCreate, StateResponseDetails};
use prefect_domain::time::{self, DateTime};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::schema_tools::{self, HydrationContext};
use crate::{ClientInfo, Core, Error, Result};
use crate::{outbound, templates};

/// One firing of a trigger.
#[derive(Debug, Clone)]
pub struct Firing {
    pub id: Uuid,
    /// The trigger that fired.
    pub trigger_id: Uuid,
    /// The posture of an event trigger's firing; `None` for a compound or sequence trigger.
    pub posture: Option<Posture>,
    /// When it fired (wall-clock time, which may be after the event occurred).
    pub triggered: DateTime,
    /// The `for_each` labels and their values (empty for composite triggers).
    pub triggering_labels: BTreeMap<String, String>,
    /// The event that made it fire, or the last matching one for a proactive trigger.
    pub triggering_event: Option<Arc<ReceivedEvent>>,
    /// For a composite trigger: the firings of its children that made it fire.
    pub triggering_firings: Vec<Firing>,
}

/// One action to take because an automation fired.
#[derive(Debug, Clone)]
struct TriggeredAction<'a> {
    automation: &'a Automation,
    /// The invocation id.
    id: Uuid,
    firing: &'a Firing,
    triggering_event: Option<Arc<ReceivedEvent>>,
    action: &'a Action,
    /// Position in `actions` followed by `actions_on_trigger`.
    action_index: usize,
    automation_triggered_event_id: Uuid,
}

/// Why an action did not do what it was asked, as the `failed` event's `reason`.
struct ActionFailed(String);

/// What a finished action reports: resources it touched and details for its event payload.
#[derive(Default)]
struct Outcome {
    related: Vec<Resource>,
    details: Map<String, Value>,
}

impl Outcome {
    fn relate(&mut self, resource: Resource) {
        self.related.push(resource);
    }
}

fn failed(reason: impl Into<String>) -> ActionFailed {
    ActionFailed(reason.into())
}

/// Actions that act on flow runs wait this long before a suspended run times out.
const SUSPEND_TIMEOUT_SECONDS: i64 = 3600;
/// Prefect links an action's events to the triggering event only when they are this close.
const FOLLOWS_WINDOW_SECONDS: i64 = 300;

impl Core {
    /// Announces the firing and runs the automation's actions, then its
    /// `actions_on_trigger`; each reports its own `executed` or `failed` event.
    pub async fn act_on_firing(&self, automation: &Automation, firing: &Firing) {
        let state_event = automation_triggered_event(automation, firing);
        let state_event_id = state_event.id;
        let state_event = Arc::new(state_event);
        self.emit((*state_event).clone()).await;

        let plain = automation.actions.iter().map(|a| (a, firing.triggering_event.clone()));
        let on_trigger = automation.actions_on_trigger.iter().map(|a| (a, Some(Arc::clone(&state_event))));
        for (action_index, (action, triggering_event)) in plain.chain(on_trigger).enumerate() {
            let triggered = TriggeredAction {
                automation,
                id: Uuid::now_v7(),
                firing,
                triggering_event,
                action,
                action_index,
                automation_triggered_event_id: state_event_id,
            };
            self.run_triggered_action(&triggered).await;
        }
    }

    async fn run_triggered_action(&self, ta: &TriggeredAction<'_>) {
        let mut outcome = Outcome::default();
        // Boxed: the action's future holds every action type's state, too large for callers' stacks.
        let result = Box::pin(self.perform(ta, &mut outcome)).await;
        if let Err(ActionFailed(reason)) = &result {
            tracing::warn!(automation = %ta.automation.id, action = ta.action.kind(), %reason, "Automation action failed.");
        }
        let resource = automation_resource(ta.automation);
        let mut related = outcome.related;
        related.push(Resource::with_id(format!("prefect.event.{}", ta.automation_triggered_event_id)).label(RESOURCE_ROLE, "automation-triggered-event"));
        if let Some(event) = &ta.triggering_event {
            related.push(Resource::with_id(format!("prefect.event.{}", event.id)).label(RESOURCE_ROLE, "triggering-event"));
        }
        let mut payload = Map::new();
        payload.insert("action_index".to_owned(), json!(ta.action_index));
        payload.insert("action_type".to_owned(), json!(ta.action.kind()));
        payload.insert("invocation".to_owned(), json!(ta.id.to_string()));

        let triggered_id = Uuid::now_v7();
        let follows = ta.triggering_event.as_ref().filter(|e| (ta.firing.triggered - e.occurred).num_seconds().abs() < FOLLOWS_WINDOW_SECONDS).map(|e| e.id);
        let now = time::now();
        self.emit(ReceivedEvent {
            occurred: ta.firing.triggered,
            event: "prefect.automation.action.triggered".to_owned(),
            resource: resource.clone(),
            related: related.clone(),
            payload: payload.clone(),
            id: triggered_id,
            follows,
            received: now,
        })
        .await;

        let name = match result {
            Ok(()) => "prefect.automation.action.executed",
            Err(ActionFailed(reason)) => {
                payload.insert("reason".to_owned(), json!(reason));
                "prefect.automation.action.failed"
            }
        };
        payload.extend(outcome.details);
        self.emit(ReceivedEvent {
            occurred: now,
            event: name.to_owned(),
            resource,
            related,
            payload,
            id: Uuid::now_v7(),
            follows: Some(triggered_id),
            received: now,
        })
        .await;
    }

    async fn perform(&self, ta: &TriggeredAction<'_>, out: &mut Outcome) -> std::result::Result<(), ActionFailed> {
        let automation_id = ta.automation.id;
        match ta.action {
            Action::DoNothing(_) => Ok(()),
            Action::RunDeployment(run) => {
                let deployment_id = target_of(ta, run.target.source, run.target.deployment_id, "prefect.deployment", "deployment")?;
                out.relate(target("deployment", deployment_id));
                let parameters = self
                    .render_parameters(ta, run.parameters.clone().unwrap_or_default())
                    .await
                    .map_err(|e| failed(format!("Unable to create flow run from deployment: {e}")))?;
                let scheduled_time = time::now() + time::from_seconds_signed(run.schedule_after);
                let state: StateCreate =
                    serde_json::from_value(json!({"type": "SCHEDULED", "name": "Scheduled", "state_details": {"scheduled_time": scheduled_time}}))
                        .map_err(|e| failed(format!("Unable to create flow run from deployment: {e}")))?;
                let create = DeploymentFlowRunCreate {
                    state: Some(state),
                    parameters,
                    idempotency_key: Some(format!("automation {automation_id}, action {}, invocation {}", ta.action_index, ta.id)),
                    job_variables: run.job_variables.clone(),
                    ..Default::default()
                };
                let created_by = CreatedBy { id: Some(automation_id), kind: Some("AUTOMATION".to_owned()), display_value: Some(ta.automation.name.clone()) };
                match self.create_flow_run_from_deployment(deployment_id, create, Some(created_by), &ClientInfo::default()).await {
                    Ok((flow_run, created)) => {
                        // 200 when the idempotency key found the run this invocation already made.
                        out.details.insert("status_code".to_owned(), json!(if created { 201 } else { 200 }));
                        out.relate(
                            Resource::with_id(format!("prefect.flow-run.{}", flow_run.id)).label(RESOURCE_ROLE, "flow-run").label(RESOURCE_NAME, flow_run.name),
                        );
                        Ok(())
                    }
                    Err(error) => Err(failed_call(out, ta.action.kind(), error)),
                }
            }
            Action::PauseDeployment(t) | Action::ResumeDeployment(t) => {
                let deployment_id = target_of(ta, t.source, t.deployment_id, "prefect.deployment", "deployment")?;
                out.relate(target("deployment", deployment_id));
                let paused = matches!(ta.action, Action::PauseDeployment(_));
                self.set_deployment_paused(deployment_id, paused).await.map_err(|e| failed_call(out, ta.action.kind(), e))?;
                out.details.insert("status_code".to_owned(), json!(204));
                Ok(())
            }
            Action::CancelFlowRun(_) => {
                let state = json!({"type": "CANCELLING", "name": "Cancelling", "message": format!("Cancelled by Automation {automation_id}")});
                self.change_flow_run_state(ta, out, state, false).await
            }
            Action::ChangeFlowRunState(change) => {
                let message = change.message.clone().unwrap_or_else(|| format!("State changed by Automation {automation_id}"));
                let mut state = json!({"type": change.state, "message": message});
                if let Some(name) = &change.name {
                    state["name"] = json!(name);
                }
                self.change_flow_run_state(ta, out, state, change.force).await
            }
            Action::SuspendFlowRun(_) => {
                let timeout = time::now() + chrono::Duration::seconds(SUSPEND_TIMEOUT_SECONDS);
                let state = json!({
                    "type": "PAUSED", "name": "Suspended", "message": format!("Suspended by Automation {automation_id}"),
                    "state_details": {"pause_timeout": timeout, "pause_reschedule": true, "pause_key": null},
                });
                self.change_flow_run_state(ta, out, state, false).await
            }
            Action::DeleteFlowRun(_) => {
                let flow_run_id = self.flow_run_target(ta, out)?;
                self.delete_flow_run(flow_run_id).await.map_err(|e| failed_call(out, ta.action.kind(), e))?;
                out.details.insert("status_code".to_owned(), json!(204));
                Ok(())
            }
            Action::ResumeFlowRun(_) => {
                let flow_run_id = self.flow_run_target(ta, out)?;
                let outcome = self.resume_flow_run(flow_run_id, None, &ClientInfo::default()).await.map_err(|e| failed_call(out, ta.action.kind(), e))?;
                match outcome.result.status {
                    SetStateStatus::Accept => Ok(()),
                    _ => Err(failed(format!("Failed to resume flow run: {}", reason_of(&outcome.result.details)))),
                }
            }
            Action::PauseWorkPool(t) | Action::ResumeWorkPool(t) => {
                let pool_id = target_of(ta, t.source, t.work_pool_id, "prefect.work-pool", "work pool")?;
                let pool = prefect_storage::work_pools::read_pool(self.db().reader(), pool_id)
                    .await
                    .map_err(|e| failed(e.to_string()))?
                    .ok_or_else(|| failed(format!("Work pool {pool_id} not found")))?;
                out.relate(target("work-pool", pool_id).label(RESOURCE_NAME, pool.name.clone()));
                let paused = matches!(ta.action, Action::PauseWorkPool(_));
                let update = serde_json::from_value(json!({"is_paused": paused})).map_err(|e| failed(e.to_string()))?;
                self.update_work_pool(&pool.name, update).await.map_err(|e| failed_call(out, ta.action.kind(), e))?;
                out.details.insert("status_code".to_owned(), json!(204));
                Ok(())
            }
            Action::PauseWorkQueue(t) | Action::ResumeWorkQueue(t) => {
                let queue_id = target_of(ta, t.source, t.work_queue_id, "prefect.work-queue", "work queue")?;
                out.relate(target("work-queue", queue_id));
                let paused = matches!(ta.action, Action::PauseWorkQueue(_));
                let update = serde_json::from_value(json!({"is_paused": paused})).map_err(|e| failed(e.to_string()))?;
                self.update_work_queue_by_id(queue_id, update).await.map_err(|e| failed_call(out, ta.action.kind(), e))?;
                out.details.insert("status_code".to_owned(), json!(204));
                Ok(())
            }
            Action::PauseAutomation(t) | Action::ResumeAutomation(t) => {
                let id = target_of(ta, t.source, t.automation_id, "prefect.automation", "automation")?;
                out.relate(target("automation", id));
                let enabled = matches!(ta.action, Action::ResumeAutomation(_));
                self.set_automation_enabled(id, enabled).await.map_err(|e| failed_call(out, ta.action.kind(), e))?;
                out.details.insert("status_code".to_owned(), json!(204));
                Ok(())
            }
            Action::CallWebhook(call) => {
                let block = self.action_block(ta, out, call.block_document_id).await?;
                if block.block_type.as_ref().map(|t| t.slug.as_str()) != Some("webhook") {
                    return Err(failed("The referenced block was not a webhook block"));
                }
                let context = self.template_context(ta, &[&call.payload]).await;
                let payload = render(out, &call.payload, &context)?;
                let data = &block.data;
                let request = outbound::Outgoing {
                    method: data.get("method").and_then(Value::as_str).unwrap_or("POST").to_owned(),
                    url: data.get("url").and_then(Value::as_str).unwrap_or_default().to_owned(),
                    headers: outbound::string_pairs(data.get("headers")),
                    query: Vec::new(),
                    body: outbound::Body::Text(payload),
                };
                // As in Prefect, any answer counts as executed; only no answer fails.
                let answer = outbound::send(request).await.map_err(|e| failed(format!("Webhook call failed: {e}")))?;
                out.details.extend(answer.details);
                Ok(())
            }
            Action::SendNotification(send) => {
                let block = self.action_block(ta, out, send.block_document_id).await?;
                let notifies = block.block_schema.as_ref().is_some_and(|schema| schema.capabilities.iter().any(|c| c == "notify"));
                if !notifies {
                    return Err(failed("The referenced block was not a notification block"));
                }
                let context = self.template_context(ta, &[&send.subject, &send.body]).await;
                let subject = render(out, &send.subject, &context)?;
                let body = render(out, &send.body, &context)?;
                let slug = block.block_type.as_ref().map(|t| t.slug.clone()).unwrap_or_default();
                let request = notification_request(&slug, &block.data, &subject, &body).map_err(|log| {
                    out.details.insert("notification_log".to_owned(), json!(log));
                    failed("Notification failed")
                })?;
                let answer = outbound::send(request).await.map_err(|e| {
                    out.details.insert("notification_log".to_owned(), json!(e));
                    failed("Notification failed")
                })?;
                if answer.status >= 400 {
                    out.details.insert("notification_log".to_owned(), json!(format!("The notification service answered {}", answer.status)));
                    return Err(failed("Notification failed"));
                }
                Ok(())
            }
        }
    }

    /// The block document an action sends through (secrets included), related to the action.
    async fn action_block(
        &self,
        ta: &TriggeredAction<'_>,
        out: &mut Outcome,
        id: Uuid,
    ) -> std::result::Result<prefect_domain::block::BlockDocument, ActionFailed> {
        let block = self.read_block_document(id, true).await.map_err(|e| failed_call(out, ta.action.kind(), e))?;
        let mut document = Resource::with_id(format!("prefect.block-document.{}", block.id)).label(RESOURCE_ROLE, "block");
        if let Some(name) = &block.name {
            document = document.label(RESOURCE_NAME, name.clone());
        }
        out.relate(document);
        if let Some(block_type) = &block.block_type {
            out.relate(Resource::with_id(format!("prefect.block-type.{}", block_type.slug)).label(RESOURCE_ROLE, "block-type"));
        }
        Ok(block)
    }

    /// What webhook and notification templates see: the automation, the triggering event,
    /// the firing's labels, and (only when a template names them) the objects the event is
    /// about and the workspace's variables.
    async fn template_context(&self, ta: &TriggeredAction<'_>, templates: &[&str]) -> Value {
        let mentions = |name: &str| templates.iter().any(|t| t.contains(name));
        let mut context = json!({
            "automation": ta.automation,
            "event": ta.triggering_event.as_deref().map(event_for_templates),
            "labels": ta.firing.triggering_labels,
        });
        if let Some(event) = ta.triggering_event.as_deref() {
            if mentions("flow_run")
                && let Some(id) = first_resource_of_kind(event, "prefect.flow-run")
                && let Ok(run) = self.read_flow_run(id).await
            {
                let mut run = serde_json::to_value(run).unwrap_or_default();
                // The state the event reports, not whatever the run has moved on to since.
                let labels = |l: &str| event.resource.get(l).map(str::to_owned);
                if let (Some(message), Some(name), Some(timestamp), Some(kind)) =
                    (labels("prefect.state-message"), labels("prefect.state-name"), labels("prefect.state-timestamp"), labels("prefect.state-type"))
                    && run["state"].is_object()
                {
                    run["state"]["message"] = json!(message);
                    run["state"]["name"] = json!(name);
                    run["state"]["timestamp"] = json!(timestamp);
                    run["state"]["type"] = json!(kind);
                }
                context["flow_run"] = run;
            }
            if mentions("flow")
                && let Some(id) = first_resource_of_kind(event, "prefect.flow")
                && let Ok(flow) = self.read_flow(id).await
            {
                context["flow"] = serde_json::to_value(flow).unwrap_or_default();
            }
            if mentions("deployment")
                && let Some(id) = first_resource_of_kind(event, "prefect.deployment")
                && let Ok(deployment) = self.read_deployment(id).await
            {
                context["deployment"] = serde_json::to_value(deployment).unwrap_or_default();
            }
            if mentions("work_queue")
                && let Some(id) = first_resource_of_kind(event, "prefect.work-queue")
                && let Ok(queue) = self.read_work_queue_by_id(id).await
            {
                context["work_queue"] = serde_json::to_value(queue).unwrap_or_default();
            }
            if mentions("work_pool")
                && let Some(id) = first_resource_of_kind(event, "prefect.work-pool")
                && let Ok(Some(pool)) = prefect_storage::work_pools::read_pool(self.db().reader(), id).await
            {
                context["work_pool"] = serde_json::to_value(pool).unwrap_or_default();
            }
        }
        if mentions("variables")
            && let Ok(all) = prefect_storage::variables::all_values(self.db().reader()).await
        {
            context["variables"] = Value::Object(all.into_iter().collect());
        }
        context
    }

    /// The flow run a flow-run action is about: named by the firing's labels (a proactive
    /// `for_each` trigger has no event), else the first flow run in the triggering event.
    fn flow_run_target(&self, ta: &TriggeredAction<'_>, out: &mut Outcome) -> std::result::Result<Uuid, ActionFailed> {
        let from_labels = ta
            .firing
            .triggering_labels
            .get(prefect_domain::events::RESOURCE_ID)
            .and_then(|id| id.strip_prefix("prefect.flow-run."))
            .and_then(|id| Uuid::parse_str(id).ok());
        let id = match from_labels {
            Some(id) => id,
            None => {
                let event = ta.triggering_event.as_ref().ok_or_else(|| failed("No event to infer the flow run"))?;
                first_resource_of_kind(event, "prefect.flow-run").ok_or_else(|| failed("No flow run could be inferred"))?
            }
        };
        out.relate(target("flow-run", id));
        Ok(id)
    }

    async fn change_flow_run_state(&self, ta: &TriggeredAction<'_>, out: &mut Outcome, state: Value, force: bool) -> std::result::Result<(), ActionFailed> {
        let flow_run_id = self.flow_run_target(ta, out)?;
        let state: StateCreate = serde_json::from_value(state).map_err(|e| failed(e.to_string()))?;
        let outcome = self.set_flow_run_state(flow_run_id, state, force, &ClientInfo::default()).await.map_err(|e| failed_call(out, ta.action.kind(), e))?;
        out.details.insert("status_code".to_owned(), json!(if outcome.created { 201 } else { 200 }));
        match outcome.result.status {
            SetStateStatus::Accept => Ok(()),
            _ => Err(failed(format!("Failed to set state: {}", reason_of(&outcome.result.details)))),
        }
    }

    /// Renders a run-deployment action's parameters: Prefect's templates (v1 strings with
    /// `{{ }}` included) see the automation, the triggering event and the firing's labels.
    async fn render_parameters(&self, ta: &TriggeredAction<'_>, parameters: Map<String, Value>) -> Result<Map<String, Value>> {
        if parameters.is_empty() {
            return Ok(parameters);
        }
        let upgraded = upgrade_v1_templates(Value::Object(parameters));
        let workspace_variables = prefect_storage::variables::all_values(self.db().reader()).await?.into_iter().collect();
        let jinja_context = json!({
            "automation": ta.automation,
            "event": ta.triggering_event.as_deref().map(event_for_templates),
            "labels": ta.firing.triggering_labels,
        });
        let ctx = HydrationContext { workspace_variables, render_workspace_variables: true, render_jinja: true, raise_on_error: true, jinja_context };
        let (hydrated, _) = schema_tools::hydrate(&upgraded, &ctx).map_err(|e| Error::unprocessable(e.to_string()))?;
        match hydrated {
            Value::Object(map) => Ok(map),
            _ => Ok(Map::new()),
        }
    }
}

/// Renders a webhook or notification template, reporting a failure as Prefect does.
fn render(out: &mut Outcome, template: &str, context: &Value) -> std::result::Result<String, ActionFailed> {
    templates::render_user_template(template, context).map_err(|e| {
        out.details.insert("template_error".to_owned(), json!(format!("Failed to render template due to the following error: {e}")));
        out.details.insert("template_source".to_owned(), json!(template));
        failed(format!("Template rendering failed: {e}"))
    })
}

/// The HTTP request that delivers a notification through a block of type `slug`; `Err`
/// says why this server cannot deliver through it.
fn notification_request(slug: &str, data: &Map<String, Value>, subject: &str, body: &str) -> std::result::Result<outbound::Outgoing, String> {
    let text = |key: &str| data.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
    match slug {
        // Prefect's Custom Webhook: `{{subject}}`, `{{body}}`, `{{name}}` and the block's secrets
        // fill the URL, query, headers, cookies and JSON or form data.
        "custom-webhook" => {
            let mut values = data.get("secrets").and_then(Value::as_object).cloned().unwrap_or_default();
            values.insert("subject".to_owned(), json!(subject));
            values.insert("body".to_owned(), json!(body));
            values.insert("name".to_owned(), json!(text("name")));
            let apply = |key: &str| data.get(key).filter(|v| !v.is_null()).and_then(|v| outbound::apply_values(v, &values));
            let url = apply("url").and_then(|u| u.as_str().map(str::to_owned)).ok_or("The custom webhook's URL has an unknown placeholder")?;
            let mut headers = outbound::string_pairs(apply("headers").as_ref());
            headers.push(("user-agent".to_owned(), "Prefect Notifications".to_owned()));
            let cookies = outbound::string_pairs(apply("cookies").as_ref());
            if !cookies.is_empty() {
                headers.push(("cookie".to_owned(), cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")));
            }
            let body = match (apply("json_data"), apply("form_data")) {
                (Some(_), Some(_)) => return Err("both `Form Data` and `JSON Data` provided".to_owned()),
                (Some(json), None) => outbound::Body::Json(json),
                (None, Some(Value::String(raw))) => outbound::Body::Text(raw),
                (None, Some(form)) => outbound::Body::Form(outbound::string_pairs(Some(&form))),
                (None, None) => outbound::Body::None,
            };
            // The blocks' default method is POST.
            let method = Some(text("method")).filter(|m| !m.is_empty()).unwrap_or_else(|| "POST".to_owned());
            Ok(outbound::Outgoing { method, url, headers, query: outbound::string_pairs(apply("params").as_ref()), body })
        }
        // A Slack incoming webhook takes a message as `text` (subject in bold above the body).
        "slack-webhook" => {
            let message = if subject.is_empty() { body.to_owned() } else { format!("*{subject}*\n{body}") };
            Ok(outbound::Outgoing {
                method: "POST".to_owned(),
                url: text("url"),
                headers: Vec::new(),
                query: Vec::new(),
                body: outbound::Body::Json(json!({"text": message})),
            })
        }
        other => Err(format!("Notifications through '{other}' blocks are not supported by this server; use a custom-webhook or slack-webhook block")),
    }
}

/// An event as templates see it: as stored, with each resource also answering `id`,
/// `name` and `role` (Prefect's `event.resource.id`).
fn event_for_templates(event: &ReceivedEvent) -> Value {
    let resource = |r: &Resource| {
        let mut labels: Map<String, Value> = r.0.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        labels.insert("id".to_owned(), json!(r.id()));
        labels.insert("name".to_owned(), json!(r.get(RESOURCE_NAME)));
        labels.insert("role".to_owned(), json!(r.get(RESOURCE_ROLE)));
        Value::Object(labels)
    };
    let mut view = serde_json::to_value(event).unwrap_or_default();
    view["resource"] = resource(&event.resource);
    view["related"] = Value::Array(event.related.iter().map(resource).collect());
    view
}

/// Prefect 2 style parameters put templates straight into strings; they become jinja
/// placeholders (a lone `{{ expr }}` keeps its JSON type through `tojson`).
fn upgrade_v1_templates(value: Value) -> Value {
    match value {
        Value::Object(map) if map.contains_key("__prefect_kind") => Value::Object(map),
        Value::Object(map) => Value::Object(map.into_iter().map(|(k, v)| (k, upgrade_v1_templates(v))).collect()),
        Value::Array(items) => Value::Array(items.into_iter().map(upgrade_v1_templates).collect()),
        Value::String(s) if s.contains("{{") || s.contains("{%") => {
            let trimmed = s.trim();
            if trimmed.starts_with("{{") && trimmed.ends_with("}}") && trimmed.matches("{{").count() == 1 {
                let expression = trimmed[2..trimmed.len() - 2].trim();
                json!({"__prefect_kind": "json", "value": {"__prefect_kind": "jinja", "template": format!("{{{{ {expression} | tojson }}}}")}})
            } else {
                json!({"__prefect_kind": "jinja", "template": s})
            }
        }
        other => other,
    }
}

/// The action's target: the selected id, or the first resource of `kind` in the triggering event.
fn target_of(ta: &TriggeredAction<'_>, source: Source, selected: Option<Uuid>, kind: &str, what: &str) -> std::result::Result<Uuid, ActionFailed> {
    if source == Source::Selected {
        return selected.ok_or_else(|| failed(format!("{what} id is required")));
    }
    let event = ta.triggering_event.as_ref().ok_or_else(|| failed(format!("No event to infer the {what}")))?;
    first_resource_of_kind(event, kind).ok_or_else(|| failed(format!("No {what} could be inferred")))
}

fn target(kind: &str, id: Uuid) -> Resource {
    Resource::with_id(format!("prefect.{kind}.{id}")).label(RESOURCE_ROLE, "target")
}

/// The first resource of the event (its own, then related) whose id is `<kind>.<uuid>`;
/// as in Prefect, only the first resource of that kind is considered.
fn first_resource_of_kind(event: &ReceivedEvent, kind: &str) -> Option<Uuid> {
    let resource = event.involved_resources().find(|r| r.id().rsplit_once('.').is_some_and(|(prefix, _)| prefix == kind))?;
    resource.prefect_object_id(kind)
}

fn reason_of(details: &StateResponseDetails) -> String {
    match details {
        StateResponseDetails::AcceptDetails => String::new(),
        StateResponseDetails::RejectDetails { reason } | StateResponseDetails::AbortDetails { reason } | StateResponseDetails::WaitDetails { reason, .. } => {
            reason.clone().unwrap_or_default()
        }
    }
}

/// An API-level refusal, worded as Prefect words an unsuccessful response.
fn failed_call(out: &mut Outcome, kind: &str, error: Error) -> ActionFailed {
    let status = match &error {
        Error::NotFound(_) => 404,
        Error::Conflict(_) => 409,
        Error::Invalid { .. } => 422,
        Error::BadRequest(_) => 400,
        Error::Forbidden(_) => 403,
        Error::Locked { .. } => 423,
        Error::Gone(_) => 410,
        Error::Busy(_) => 429,
        Error::Unavailable(_) => 503,
        Error::Internal(_) => 500,
    };
    out.details.insert("status_code".to_owned(), json!(status));
    match status {
        409 => {
            out.details.insert("validation_error".to_owned(), json!(error.to_string()));
            ActionFailed(format!("Validation error occurred for '{kind}' - {error}"))
        }
        422 => ActionFailed(format!("Validation error occurred for '{kind}' - {error}")),
        _ => ActionFailed(format!("Unexpected status from '{kind}' action: {status}")),
    }
}

fn automation_resource(automation: &Automation) -> Resource {
    let mut resource = Resource::with_id(format!("prefect.automation.{}", automation.id))
        .label(RESOURCE_NAME, automation.name.clone())
        .label("prefect.trigger-type", automation.trigger.kind());
    if let Trigger::Event(trigger) = &automation.trigger {
        resource = resource.label("prefect.posture", posture_name(trigger.posture));
    }
    resource
}

fn posture_name(posture: Posture) -> &'static str {
    match posture {
        Posture::Reactive => "Reactive",
        Posture::Proactive => "Proactive",
    }
}

/// `prefect.automation.triggered`, about the automation, pointing at the triggering event.
fn automation_triggered_event(automation: &Automation, firing: &Firing) -> ReceivedEvent {
    let mut resource = Resource::with_id(format!("prefect.automation.{}", automation.id)).label(RESOURCE_NAME, automation.name.clone());
    if let Some(posture) = firing.posture {
        resource = resource.label("prefect.posture", posture_name(posture));
    }
    let related =
        firing.triggering_event.iter().map(|e| Resource::with_id(format!("prefect.event.{}", e.id)).label(RESOURCE_ROLE, "triggering-event")).collect();
    let mut payload = Map::new();
    payload.insert("triggering_labels".to_owned(), json!(firing.triggering_labels));
    payload.insert("triggering_event".to_owned(), json!(firing.triggering_event.as_deref()));
    ReceivedEvent {
        occurred: firing.triggered,
        event: "prefect.automation.triggered".to_owned(),
        resource,
        related,
        payload,
        id: Uuid::now_v7(),
        follows: None,
        received: time::now(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_templates_become_placeholders_and_lone_expressions_keep_their_type() {
        let upgraded = upgrade_v1_templates(
            json!({"id": "{{ event.id }}", "text": "run {{ event.event }} now", "plain": "x", "kept": {"__prefect_kind": "none", "value": "{{ x }}"}}),
        );
        assert_eq!(upgraded["id"], json!({"__prefect_kind": "json", "value": {"__prefect_kind": "jinja", "template": "{{ event.id | tojson }}"}}));
        assert_eq!(upgraded["text"], json!({"__prefect_kind": "jinja", "template": "run {{ event.event }} now"}));
        assert_eq!(upgraded["plain"], "x");
        assert_eq!(upgraded["kept"]["value"], "{{ x }}");
    }

    #[test]
    fn only_the_first_resource_of_a_kind_is_inferred() {
        let now = time::now();
        let deployment = Uuid::new_v4();
        let event = ReceivedEvent {
            occurred: now,
            event: "x".to_owned(),
            resource: Resource::with_id("prefect.flow-run.not-a-uuid"),
            related: vec![
                Resource::with_id(format!("prefect.deployment.{deployment}")).label(RESOURCE_ROLE, "deployment"),
                Resource::with_id(format!("prefect.flow-run.{}", Uuid::new_v4())).label(RESOURCE_ROLE, "flow-run"),
            ],
            payload: Map::new(),
            id: Uuid::new_v4(),
            follows: None,
            received: now,
        };
        assert_eq!(first_resource_of_kind(&event, "prefect.deployment"), Some(deployment));
        assert_eq!(first_resource_of_kind(&event, "prefect.flow-run"), None);
        assert_eq!(first_resource_of_kind(&event, "prefect.work-pool"), None);
    }
}
