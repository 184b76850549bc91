//! Resuming paused flow runs (with run input validated against the schema the run
//! registered) and failing pauses that timed out.

use std::collections::HashMap;

use prefect_domain::state::{OrchestrationResult, SetStateStatus, State, StateCreate, StateResponseDetails, StateType};
use prefect_domain::time;
use prefect_storage::{flow_run_inputs, flow_runs, variables};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::flow_runs::SetStateOutcome;
use crate::orchestrate;
use crate::schema_tools::{self, HydrationContext};
use crate::{ClientInfo, Core, Error, Result};

/// The message a run gets when its pause expires.
pub const PAUSE_EXPIRED_MESSAGE: &str = "The flow was paused and never resumed.";

fn refused(status: SetStateStatus, state: Option<State>, reason: impl Into<String>) -> SetStateOutcome {
    // Prefect answers both refusals with abort details.
    SetStateOutcome {
        result: OrchestrationResult { state, status, details: StateResponseDetails::AbortDetails { reason: Some(reason.into()) } },
        created: false,
    }
}

impl Core {
    /// `POST /flow_runs/{id}/resume`: moves a paused run to Running (or, for a suspended
    /// run, to a `Resuming` Scheduled state). When the pause asked for input, `run_input` is
    /// hydrated, validated against the stored schema and saved under the response key.
    pub async fn resume_flow_run(&self, id: Uuid, run_input: Option<Map<String, Value>>, client: &ClientInfo) -> Result<SetStateOutcome> {
        let t = self.transition_context(client);
        let txn = self.db().begin_write().await?;
        let run = flow_runs::read(&txn, id, t.now).await?.ok_or_else(|| Error::not_found("Flow run not found"))?;
        let Some(state) = run.state.clone().filter(|s| s.state_type == StateType::Paused) else {
            return Ok(refused(SetStateStatus::Abort, None, "Cannot resume a flow run that is not paused."));
        };
        let keyset = state.state_details.run_input_keyset.clone().filter(|k| !k.is_empty());
        let mut hydrated_input = Map::new();
        if let Some(keyset) = &keyset {
            let workspace_variables: HashMap<String, Value> = variables::all_values(&txn).await?.into_iter().collect();
            let ctx = HydrationContext {
                workspace_variables,
                render_workspace_variables: true,
                render_jinja: true,
                raise_on_error: true,
                jinja_context: Value::Object(Default::default()),
            };
            let input = Value::Object(run_input.clone().unwrap_or_default());
            let hydrated = match schema_tools::hydrate(&input, &ctx) {
                Ok((Value::Object(map), _)) => map,
                Ok(_) => Map::new(),
                Err(e) => return Ok(refused(SetStateStatus::Reject, Some(state), format!("Error hydrating run input: {e}"))),
            };
            let schema_key = keyset.get("schema").and_then(Value::as_str).unwrap_or_default();
            let Some(schema_input) = flow_run_inputs::read(&txn, id, schema_key).await? else {
                return Ok(refused(SetStateStatus::Reject, Some(state), "Run input schema not found."));
            };
            let Ok(schema) = serde_json::from_str::<Value>(&schema_input.value) else {
                return Ok(refused(SetStateStatus::Reject, Some(state), "Run input schema is not valid JSON."));
            };
            let schema = schema_tools::preprocess_schema(&schema);
            match schema_tools::validate(&Value::Object(hydrated.clone()), &schema, &[]) {
                Ok(violations) => {
                    if let Some(reason) = schema_tools::describe_first(&violations) {
                        return Ok(refused(SetStateStatus::Reject, Some(state), format!("Reason: {reason}")));
                    }
                }
                Err(e) => return Ok(refused(SetStateStatus::Reject, Some(state), format!("Reason: Validation failed. Failure reason: {e}"))),
            }
            hydrated_input = hydrated;
        }
        let proposed = if state.state_details.pause_reschedule {
            let mut scheduled = StateCreate::of(StateType::Scheduled);
            scheduled.name = Some("Resuming".to_owned());
            scheduled.state_details.scheduled_time = Some(t.now);
            scheduled
        } else {
            StateCreate::of(StateType::Running)
        };
        let transition = orchestrate::set_flow_run_state(&txn, self.db().backend(), &t, id, proposed.into_state(t.now), false, None).await?;
        if let Some(keyset) = &keyset
            && !hydrated_input.is_empty()
            && transition.result.status == SetStateStatus::Accept
        {
            let response_key = keyset.get("response").and_then(Value::as_str).unwrap_or_default();
            let value = serde_json::to_string(&hydrated_input).map_err(|e| Error::Internal(e.to_string()))?;
            flow_run_inputs::create(&txn, id, response_key, &value, None, t.now).await?;
        }
        prefect_storage::commit(txn).await?;
        self.after_flow_transition(&transition.run, transition.effects).await;
        Ok(SetStateOutcome { result: transition.result, created: transition.created })
    }

    /// One page of paused runs (ids after `after`, in id order): the ids whose pause timed
    /// out, and the cursor of the next page (`None` when this was the last).
    pub async fn expired_pauses(&self, after: Uuid, limit: u64) -> Result<(Vec<Uuid>, Option<Uuid>)> {
        let now = time::now();
        let page = flow_runs::paused_after(&self.db().reads(), after, limit, now).await?;
        let next = if page.len() as u64 >= limit { page.last().map(|r| r.id) } else { None };
        let expired =
            page.into_iter().filter(|r| r.state.as_ref().and_then(|s| s.state_details.pause_timeout).is_some_and(|t| t < now)).map(|r| r.id).collect();
        Ok((expired, next))
    }

    /// Fails the run if it is still paused past its timeout; returns whether it did.
    pub async fn fail_expired_pause(&self, id: Uuid) -> Result<bool> {
        let t = self.transition_context(&ClientInfo::default());
        let txn = self.db().begin_write().await?;
        let Some(run) = flow_runs::read_for_update(&txn, self.db().backend(), id, t.now).await? else { return Ok(false) };
        let expired =
            run.state.as_ref().is_some_and(|s| s.state_type == StateType::Paused && s.state_details.pause_timeout.is_some_and(|timeout| timeout < t.now));
        if !expired {
            return Ok(false);
        }
        let mut failed = StateCreate::of(StateType::Failed);
        failed.message = Some(PAUSE_EXPIRED_MESSAGE.to_owned());
        let transition = orchestrate::set_flow_run_state(&txn, self.db().backend(), &t, id, failed.into_state(t.now), true, None).await?;
        prefect_storage::commit(txn).await?;
        self.after_flow_transition(&transition.run, transition.effects).await;
        Ok(true)
    }
}
