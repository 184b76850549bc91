//! Rules that govern flow and task runs alike.

use chrono::TimeDelta;
use prefect_domain::concurrency::ConcurrencyLease;
use prefect_domain::state::StateType;
use uuid::Uuid;

use crate::context::{Context, RunData};
use crate::store::{OrchestrationStore, StoreError};

/// SCHEDULED → PENDING: the pending state keeps the scheduled time unless it brings its own.
pub fn copy_scheduled_time<R>(ctx: &mut Context<R>) {
    let scheduled_time = ctx.initial_state.as_ref().and_then(|s| s.state_details.scheduled_time);
    if let Some(proposed) = &mut ctx.proposed_state
        && proposed.state_details.scheduled_time.is_none()
    {
        proposed.state_details.scheduled_time = scheduled_time;
    }
}

/// SCHEDULED/PENDING → RUNNING before the scheduled time: WAIT until then.
pub fn wait_for_scheduled_time<R>(ctx: &mut Context<R>) {
    if ctx.proposed_state.is_none() {
        return;
    }
    let Some(scheduled_time) = ctx.initial_state.as_ref().and_then(|s| s.state_details.scheduled_time) else { return };
    let delay = scheduled_time - ctx.now;
    let delay_seconds = rounded_seconds(delay);
    if delay_seconds > 0 {
        ctx.delay(delay_seconds, "Scheduled time is in the future");
    }
}

/// Whole seconds of a delay, rounded as Prefect does (floor, plus one when the fraction exceeds one half).
pub(crate) fn rounded_seconds(delay: TimeDelta) -> i64 {
    let micros = delay.num_microseconds().unwrap_or(i64::MAX);
    let whole = micros.div_euclid(1_000_000);
    let fraction = micros.rem_euclid(1_000_000);
    whole + i64::from(fraction > 500_000)
}

/// → PENDING from PENDING, RUNNING, CANCELLING or CANCELLED: abort, so two
/// workers can never both submit a run. A renamed PENDING (e.g. `Submitting`)
/// is allowed and keeps the scheduled time and lease.
pub fn prevent_pending_transitions<R>(ctx: &mut Context<R>) {
    let (Some(initial), Some(proposed)) = (&ctx.initial_state, &mut ctx.proposed_state) else { return };
    if initial.state_type == StateType::Pending
        && proposed.state_type == StateType::Pending
        && initial.name != proposed.name
        && proposed.name.as_deref() != Some("Pending")
    {
        proposed.state_details.scheduled_time = initial.state_details.scheduled_time;
        proposed.state_details.deployment_concurrency_lease_id = initial.state_details.deployment_concurrency_lease_id;
        return;
    }
    let reason = format!("This run is in a {} state and cannot transition to a PENDING state.", initial.state_type);
    ctx.abort(reason);
}

/// → RUNNING for a run that ran before: `Retrying` after AwaitingRetry, else `Rerunning`.
pub fn rename_reruns<R: RunData>(ctx: &mut Context<R>) {
    let (Some(initial), Some(_)) = (&ctx.initial_state, &ctx.proposed_state) else { return };
    if ctx.run.run_count() > 0 {
        let name = if initial.name() == "AwaitingRetry" { "Retrying" } else { "Rerunning" };
        ctx.rename(name);
    }
}

/// Returns a lease's slots and deletes it. Without the lease record, returns
/// `fallback_slots` on `fallback_limit_ids` instead (if any).
pub async fn release_concurrency_lease<S: OrchestrationStore>(
    store: &mut S,
    lease_id: Uuid,
    fallback_limit_ids: Option<&[Uuid]>,
    fallback_slots: i64,
) -> Result<(), StoreError> {
    match store.read_lease(lease_id).await? {
        Some(ConcurrencyLease { id, resource_ids, slots, .. }) => {
            store.decrement_slots(&resource_ids, slots).await?;
            store.revoke_lease(id).await
        }
        None => {
            if let Some(ids) = fallback_limit_ids.filter(|ids| !ids.is_empty()) {
                store.decrement_slots(ids, fallback_slots).await?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_matches_prefect() {
        assert_eq!(rounded_seconds(TimeDelta::milliseconds(2600)), 3);
        assert_eq!(rounded_seconds(TimeDelta::milliseconds(2400)), 2);
        assert_eq!(rounded_seconds(TimeDelta::milliseconds(500)), 0);
        assert_eq!(rounded_seconds(TimeDelta::milliseconds(-400)), 0);
        assert_eq!(rounded_seconds(TimeDelta::milliseconds(-600)), -1);
    }
}
