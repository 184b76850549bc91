//! How a policy's rules are applied to one transition.
//!
//! Rules are entered in policy order (their `before` hooks may mutate, reject,
//! delay or abort the proposal), the transition is validated, then rules are
//! exited in reverse order. On exit a rule whose transition still stands runs
//! `after`; a rule whose transition was changed by a later rule has *fizzled*
//! and runs `cleanup` instead (this is how acquired slots are given back). A
//! rule that no longer matches the transition when it is reached is skipped
//! entirely, and so is, on exit, a rule whose own decision took the transition
//! outside the states it governs (Prefect's `invalid()` check). Universal
//! transforms run on every transition and decide for themselves whether a
//! nullified transition (no proposed state) matters.

use std::future::Future;

use prefect_domain::state::{SetStateStatus, StateResponseDetails, StateType};

use crate::context::Context;
use crate::store::{OrchestrationStore, StoreError};

/// A set of "from"/"to" state types; bit 9 stands for "no state".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateSet(u16);

impl StateSet {
    /// Every type and "no state".
    pub const ALL: StateSet = StateSet(0x3ff);
    /// The terminal types.
    pub const TERMINAL: StateSet = StateSet::of(&[StateType::Completed, StateType::Failed, StateType::Cancelled, StateType::Crashed]);

    const fn bit(t: StateType) -> u16 {
        1 << (t as u16)
    }

    /// Exactly these types (not "no state").
    pub const fn of(types: &[StateType]) -> StateSet {
        let mut bits = 0;
        let mut i = 0;
        while i < types.len() {
            bits |= Self::bit(types[i]);
            i += 1;
        }
        StateSet(bits)
    }

    /// This set without the given types.
    pub const fn without(self, types: &[StateType]) -> StateSet {
        StateSet(self.0 & !Self::of(types).0)
    }

    pub const fn contains(self, t: Option<StateType>) -> bool {
        match t {
            Some(t) => self.0 & Self::bit(t) != 0,
            None => self.0 & (1 << 9) != 0,
        }
    }
}

/// One orchestration rule or universal transform.
pub trait Rule<R, S: OrchestrationStore>: Send {
    /// The rule's name, as in Prefect's policies.
    fn name(&self) -> &'static str;
    /// Transitions the rule governs; universal transforms govern all.
    #[allow(clippy::wrong_self_convention)] // Prefect's FROM_STATES, paired with `to_states`
    fn from_states(&self) -> StateSet {
        StateSet::ALL
    }
    fn to_states(&self) -> StateSet {
        StateSet::ALL
    }
    /// Universal transforms run on every transition and never fizzle.
    fn is_universal(&self) -> bool {
        false
    }
    fn before(&mut self, ctx: &mut Context<R>, store: &mut S) -> impl Future<Output = Result<(), StoreError>>;
    fn after(&mut self, ctx: &mut Context<R>, store: &mut S) -> impl Future<Output = Result<(), StoreError>>;
    fn cleanup(&mut self, ctx: &mut Context<R>, store: &mut S) -> impl Future<Output = Result<(), StoreError>>;
}

/// Orchestration failed because a rule or the store failed; the caller rolls back.
#[derive(Debug, thiserror::Error)]
#[error("orchestration rule {rule} failed: {source}")]
pub struct Error {
    pub rule: &'static str,
    #[source]
    pub source: StoreError,
}

struct Entered<P> {
    rule: P,
    /// The transition the rule was entered for did not match when it was reached.
    invalid: bool,
    /// The proposed type the rule expects on exit (its own reject/delay/abort updates it).
    to_state_type: Option<StateType>,
}

/// Applies `rules` (a policy followed by its global transforms) to the transition in `ctx`.
///
/// On return `ctx.validated_state` holds the state to write (a new state) or the
/// current state (nothing to write), and `ctx.response_*` the answer to give.
pub async fn orchestrate<R, S, P>(ctx: &mut Context<R>, store: &mut S, rules: Vec<P>) -> Result<(), Error>
where
    R: Send,
    S: OrchestrationStore,
    P: Rule<R, S>,
{
    let from = ctx.initial_type();
    let to = ctx.proposed_type();
    let mut entered: Vec<Entered<P>> = Vec::with_capacity(rules.len());
    let mut failure: Option<Error> = None;

    for mut rule in rules {
        if !(rule.from_states().contains(from) && rule.to_states().contains(to)) {
            continue;
        }
        if rule.is_universal() {
            if failure.is_none()
                && let Err(source) = rule.before(ctx, store).await
            {
                failure = Some(abort_on_error(ctx, rule.name(), source));
            }
            entered.push(Entered { rule, invalid: false, to_state_type: to });
            continue;
        }
        let invalid = from != ctx.initial_type() || to != ctx.proposed_type();
        let mut entry = Entered { rule, invalid, to_state_type: to };
        if !invalid {
            let decisions = ctx.decisions;
            if let Err(source) = entry.rule.before(ctx, store).await {
                let name = entry.rule.name();
                failure.get_or_insert_with(|| abort_on_error(ctx, name, source));
            }
            if ctx.decisions != decisions {
                // A rule that changed the transition itself does not fizzle.
                entry.to_state_type = ctx.proposed_type();
            }
        }
        entered.push(entry);
    }

    ctx.validated_state = match &ctx.proposed_state {
        Some(proposed) => Some(proposed.clone()),
        None => ctx.initial_state.clone(),
    };

    for mut entry in entered.into_iter().rev() {
        let result = if entry.rule.is_universal() {
            if failure.is_some() { Ok(()) } else { entry.rule.after(ctx, store).await }
        } else if entry.invalid || !entry.rule.to_states().contains(entry.to_state_type) {
            // Prefect re-checks TO_STATES on exit: a rule whose own reject/delay/abort
            // moved the transition outside the states it governs runs neither hook.
            Ok(())
        } else if from != ctx.initial_type() || entry.to_state_type != ctx.proposed_type() {
            entry.rule.cleanup(ctx, store).await
        } else {
            entry.rule.after(ctx, store).await
        };
        if let Err(source) = result {
            return Err(Error { rule: entry.rule.name(), source });
        }
    }

    match failure {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

fn abort_on_error<R>(ctx: &mut Context<R>, rule: &'static str, source: StoreError) -> Error {
    ctx.proposed_state = None;
    ctx.response_status = SetStateStatus::Abort;
    ctx.response_details = StateResponseDetails::AbortDetails { reason: Some(format!("Aborting orchestration due to error in {rule}: !{source}")) };
    Error { rule, source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_sets() {
        assert!(StateSet::ALL.contains(None));
        assert!(StateSet::ALL.contains(Some(StateType::Cancelling)));
        assert!(!StateSet::TERMINAL.contains(None));
        assert!(StateSet::TERMINAL.contains(Some(StateType::Crashed)));
        let s = StateSet::ALL.without(&[StateType::Pending]);
        assert!(!s.contains(Some(StateType::Pending)));
        assert!(s.contains(None));
    }
}
