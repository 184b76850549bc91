//! Bookkeeping transforms applied to every transition, forced or not.
//!
//! Each keeps a denormalized run field in step with the state being written.
//! All of them skip nullified transitions (no proposed state).

use prefect_domain::state::StateType;

use crate::context::{Context, RunData};

/// Copies the proposed state's type onto the run.
pub fn set_run_state_type<R: RunData>(ctx: &mut Context<R>) {
    if let Some(proposed) = &ctx.proposed_state {
        *ctx.run.bookkeeping().state_type = Some(proposed.state_type);
    }
}

/// Copies the proposed state's name onto the run.
pub fn set_run_state_name<R: RunData>(ctx: &mut Context<R>) {
    if let Some(proposed) = &ctx.proposed_state {
        *ctx.run.bookkeeping().state_name = proposed.name.clone();
    }
}

/// Copies the proposed state's timestamp onto the run.
pub fn set_run_state_timestamp<R: RunData>(ctx: &mut Context<R>) {
    if let Some(proposed) = &ctx.proposed_state {
        *ctx.run.bookkeeping().state_timestamp = Some(proposed.timestamp);
    }
}

/// The first RUNNING state sets `start_time`.
pub fn set_start_time<R: RunData>(ctx: &mut Context<R>) {
    if let Some(proposed) = &ctx.proposed_state
        && proposed.state_type == StateType::Running
    {
        let start_time = ctx.run.bookkeeping().start_time;
        if start_time.is_none() {
            *start_time = Some(proposed.timestamp);
        }
    }
}

/// Entering a final state sets `end_time` (and `start_time` if never started);
/// leaving a final state for a non-final one clears it.
pub fn set_end_time<R: RunData>(ctx: &mut Context<R>) {
    let Some(proposed) = &ctx.proposed_state else { return };
    let initial_final = ctx.initial_state.as_ref().is_some_and(|s| s.is_final());
    let b = ctx.run.bookkeeping();
    if initial_final && !proposed.is_final() {
        *b.end_time = None;
    }
    if proposed.is_final() && b.end_time.is_none() {
        if b.start_time.is_none() {
            *b.start_time = Some(proposed.timestamp);
        }
        *b.end_time = Some(proposed.timestamp);
    }
}

/// Leaving RUNNING adds the time spent there to `total_run_time`.
pub fn increment_run_time<R: RunData>(ctx: &mut Context<R>) {
    let (Some(proposed), Some(initial)) = (&ctx.proposed_state, &ctx.initial_state) else { return };
    if initial.state_type == StateType::Running {
        let spent = prefect_domain::time::seconds(proposed.timestamp - initial.timestamp);
        *ctx.run.bookkeeping().total_run_time += spent;
    }
}

/// The first state sets `expected_start_time`: its scheduled time if SCHEDULED, else its timestamp.
pub fn set_expected_start_time<R: RunData>(ctx: &mut Context<R>) {
    let Some(proposed) = &ctx.proposed_state else { return };
    let b = ctx.run.bookkeeping();
    if b.expected_start_time.is_none() {
        *b.expected_start_time = if proposed.state_type == StateType::Scheduled { proposed.state_details.scheduled_time } else { Some(proposed.timestamp) };
    }
}

/// Leaving SCHEDULED clears `next_scheduled_start_time`; entering SCHEDULED sets it.
pub fn set_next_scheduled_start_time<R: RunData>(ctx: &mut Context<R>) {
    if ctx.proposed_state.is_none() {
        return;
    }
    let leaving_scheduled = ctx.initial_type() == Some(StateType::Scheduled);
    let entering = ctx.proposed_state.as_ref().filter(|p| p.state_type == StateType::Scheduled).map(|p| p.state_details.scheduled_time);
    let b = ctx.run.bookkeeping();
    if leaving_scheduled {
        *b.next_scheduled_start_time = None;
    }
    if let Some(scheduled_time) = entering {
        *b.next_scheduled_start_time = scheduled_time;
    }
}

/// Runs the common transforms in Prefect's order.
pub fn common_before<R: RunData>(ctx: &mut Context<R>) {
    if ctx.proposed_state.is_none() {
        return;
    }
    set_run_state_type(ctx);
    set_run_state_name(ctx);
    set_run_state_timestamp(ctx);
    set_start_time(ctx);
    set_end_time(ctx);
    increment_run_time(ctx);
    set_expected_start_time(ctx);
    set_next_scheduled_start_time(ctx);
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;
    use prefect_domain::state::State;
    use uuid::Uuid;

    use super::*;
    use crate::context::FlowRunData;

    fn ctx(initial: Option<State>, proposed: State) -> Context<FlowRunData> {
        Context::new(FlowRunData::new(Uuid::now_v7(), Uuid::now_v7()), initial, Some(proposed), prefect_domain::time::now())
    }

    #[test]
    fn running_sets_start_time_once() {
        let now = prefect_domain::time::now();
        let mut c = ctx(None, State::new(StateType::Running, now));
        common_before(&mut c);
        assert_eq!(c.run.start_time, Some(now));
        assert_eq!(c.run.state_type, Some(StateType::Running));
        assert_eq!(c.run.state_name.as_deref(), Some("Running"));
        assert_eq!(c.run.expected_start_time, Some(now));
        let later = now + TimeDelta::seconds(5);
        c.initial_state = c.proposed_state.take();
        c.proposed_state = Some(State::new(StateType::Running, later));
        common_before(&mut c);
        assert_eq!(c.run.start_time, Some(now));
    }

    #[test]
    fn leaving_running_adds_run_time_and_final_sets_end_time() {
        let now = prefect_domain::time::now();
        let mut c = ctx(Some(State::new(StateType::Running, now)), State::new(StateType::Completed, now + TimeDelta::milliseconds(1500)));
        common_before(&mut c);
        assert!((c.run.total_run_time - 1.5).abs() < 1e-9);
        assert_eq!(c.run.end_time, Some(now + TimeDelta::milliseconds(1500)));
        assert_eq!(c.run.start_time, Some(now + TimeDelta::milliseconds(1500)), "a run finished without starting gets a start time");
    }

    #[test]
    fn leaving_final_clears_end_time() {
        let now = prefect_domain::time::now();
        let mut c = ctx(Some(State::new(StateType::Failed, now)), State::new(StateType::Running, now));
        c.run.end_time = Some(now);
        common_before(&mut c);
        assert_eq!(c.run.end_time, None);
    }

    #[test]
    fn scheduled_sets_expected_and_next_start() {
        let now = prefect_domain::time::now();
        let at = now + TimeDelta::hours(1);
        let mut c = ctx(None, State::scheduled("Scheduled", at, now));
        common_before(&mut c);
        assert_eq!(c.run.expected_start_time, Some(at));
        assert_eq!(c.run.next_scheduled_start_time, Some(at));
        c.initial_state = c.proposed_state.take();
        c.proposed_state = Some(State::new(StateType::Pending, now));
        common_before(&mut c);
        assert_eq!(c.run.next_scheduled_start_time, None);
        assert_eq!(c.run.expected_start_time, Some(at));
    }

    #[test]
    fn nullified_transitions_change_nothing() {
        let now = prefect_domain::time::now();
        let mut c = ctx(Some(State::new(StateType::Running, now)), State::new(StateType::Completed, now));
        c.proposed_state = None;
        common_before(&mut c);
        assert_eq!(c.run, FlowRunData { id: c.run.id, flow_id: c.run.flow_id, ..FlowRunData::new(c.run.id, c.run.flow_id) });
    }
}
