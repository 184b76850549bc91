//! The orchestration context: one proposed transition and everything rules may read or change.

use prefect_domain::flow_run::FlowRunPolicy;
use prefect_domain::state::{SetStateStatus, State, StateResponseDetails, StateType};
use prefect_domain::task_run::TaskRunPolicy;
use prefect_domain::time::DateTime;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

/// The parts of a flow run that orchestration reads and changes.
///
/// The caller loads these from storage before orchestrating and writes the
/// changed values back afterwards, in the same transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowRunData {
    pub id: Uuid,
    pub flow_id: Uuid,
    pub name: String,
    pub deployment_id: Option<Uuid>,
    pub parent_task_run_id: Option<Uuid>,
    pub infrastructure_pid: Option<String>,
    pub run_count: i64,
    pub empirical_policy: FlowRunPolicy,
    pub state_type: Option<StateType>,
    pub state_name: Option<String>,
    pub state_timestamp: Option<DateTime>,
    pub start_time: Option<DateTime>,
    pub end_time: Option<DateTime>,
    /// Seconds spent RUNNING.
    pub total_run_time: f64,
    pub expected_start_time: Option<DateTime>,
    pub next_scheduled_start_time: Option<DateTime>,
}

impl FlowRunData {
    /// A fresh run of `flow_id` with no state, for tests and embedding.
    pub fn new(id: Uuid, flow_id: Uuid) -> Self {
        FlowRunData {
            id,
            flow_id,
            name: String::new(),
            deployment_id: None,
            parent_task_run_id: None,
            infrastructure_pid: None,
            run_count: 0,
            empirical_policy: FlowRunPolicy::default(),
            state_type: None,
            state_name: None,
            state_timestamp: None,
            start_time: None,
            end_time: None,
            total_run_time: 0.0,
            expected_start_time: None,
            next_scheduled_start_time: None,
        }
    }
}

/// The parts of a task run that orchestration reads and changes.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskRunData {
    pub id: Uuid,
    pub flow_run_id: Option<Uuid>,
    pub task_key: String,
    pub tags: Vec<String>,
    pub run_count: i64,
    pub flow_run_run_count: i64,
    pub empirical_policy: TaskRunPolicy,
    pub state_type: Option<StateType>,
    pub state_name: Option<String>,
    pub state_timestamp: Option<DateTime>,
    pub start_time: Option<DateTime>,
    pub end_time: Option<DateTime>,
    pub total_run_time: f64,
    pub expected_start_time: Option<DateTime>,
    pub next_scheduled_start_time: Option<DateTime>,
}

impl TaskRunData {
    /// A fresh task run with no state, for tests and embedding.
    pub fn new(id: Uuid, flow_run_id: Option<Uuid>) -> Self {
        TaskRunData {
            id,
            flow_run_id,
            task_key: String::new(),
            tags: Vec::new(),
            run_count: 0,
            flow_run_run_count: 0,
            empirical_policy: TaskRunPolicy::default(),
            state_type: None,
            state_name: None,
            state_timestamp: None,
            start_time: None,
            end_time: None,
            total_run_time: 0.0,
            expected_start_time: None,
            next_scheduled_start_time: None,
        }
    }
}

/// Run bookkeeping shared by flow and task runs (the global transforms work on this).
pub trait RunData {
    fn run_count(&self) -> i64;
    fn set_run_count(&mut self, count: i64);
    fn bookkeeping(&mut self) -> Bookkeeping<'_>;
}

/// Mutable views of the denormalized run fields.
pub struct Bookkeeping<'a> {
    pub state_type: &'a mut Option<StateType>,
    pub state_name: &'a mut Option<String>,
    pub state_timestamp: &'a mut Option<DateTime>,
    pub start_time: &'a mut Option<DateTime>,
    pub end_time: &'a mut Option<DateTime>,
    pub total_run_time: &'a mut f64,
    pub expected_start_time: &'a mut Option<DateTime>,
    pub next_scheduled_start_time: &'a mut Option<DateTime>,
}

macro_rules! impl_run_data {
    ($t:ty) => {
        impl RunData for $t {
            fn run_count(&self) -> i64 {
                self.run_count
            }
            fn set_run_count(&mut self, count: i64) {
                self.run_count = count;
            }
            fn bookkeeping(&mut self) -> Bookkeeping<'_> {
                Bookkeeping {
                    state_type: &mut self.state_type,
                    state_name: &mut self.state_name,
                    state_timestamp: &mut self.state_timestamp,
                    start_time: &mut self.start_time,
                    end_time: &mut self.end_time,
                    total_run_time: &mut self.total_run_time,
                    expected_start_time: &mut self.expected_start_time,
                    next_scheduled_start_time: &mut self.next_scheduled_start_time,
                }
            }
        }
    };
}
impl_run_data!(FlowRunData);
impl_run_data!(TaskRunData);

/// A dotted `major.minor.patch` version (client and API versions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u32, pub u32, pub u32);

impl Version {
    /// Parses `3.9.1`, `0.8.4`, or the release part of `3.0.0rc20` (pre-releases sort as their release).
    pub fn parse(s: &str) -> Option<Version> {
        let mut parts = s.trim().splitn(3, '.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        let patch_text = parts.next().unwrap_or("0");
        let digits: String = patch_text.chars().take_while(char::is_ascii_digit).collect();
        let patch = digits.parse().ok()?;
        Some(Version(major, minor, patch))
    }
}

/// The first client that renews deployment concurrency leases.
pub const MIN_CLIENT_VERSION_FOR_CONCURRENCY_LIMIT_LEASING: Version = Version(3, 4, 11);
/// Clients that manage deployment concurrency themselves (the server skips slot handling).
pub const WORKER_VERSIONS_THAT_MANAGE_DEPLOYMENT_CONCURRENCY: [&str; 5] = ["3.0.0rc20", "3.0.0", "3.0.1", "3.0.2", "3.0.3"];

/// Server settings the rules depend on.
#[derive(Debug, Clone)]
pub struct OrchestrationSettings {
    /// Upper bound for WAIT delays on tag limits (`PREFECT_SERVER_TASKS_TAG_CONCURRENCY_SLOT_WAIT_SECONDS`).
    pub tag_concurrency_slot_wait_seconds: f64,
    /// `PREFECT_SERVER_TASKS_MAX_CACHE_KEY_LENGTH`.
    pub max_cache_key_length: usize,
    /// Delay before a run waiting for a deployment slot tries again.
    pub deployment_concurrency_slot_wait_seconds: f64,
    /// TTL of a deployment concurrency lease when the deployment sets no grace period.
    pub initial_deployment_lease_duration_seconds: f64,
}

impl Default for OrchestrationSettings {
    fn default() -> Self {
        OrchestrationSettings {
            tag_concurrency_slot_wait_seconds: 10.0,
            max_cache_key_length: 2000,
            deployment_concurrency_slot_wait_seconds: 30.0,
            initial_deployment_lease_duration_seconds: 300.0,
        }
    }
}

/// Something that happened during orchestration that the caller acts on after committing.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)] // a handful per transition, consumed right after commit
pub enum Effect {
    /// A flow run entered a new state: emit `prefect.flow-run.<state name>`.
    FlowRunStateChanged { initial: Option<State>, validated: State },
    /// A deferred task run was scheduled: hand it to task workers subscribed to its key.
    TaskRunScheduled { task_run_id: Uuid, task_key: String, retry: bool },
}

/// One transition being orchestrated.
pub struct Context<R> {
    pub run: R,
    pub initial_state: Option<State>,
    pub proposed_state: Option<State>,
    /// Set once the transition is validated: the new state, or the current one if nothing was written.
    pub validated_state: Option<State>,
    pub response_status: SetStateStatus,
    pub response_details: StateResponseDetails,
    /// The clock of this transition.
    pub now: DateTime,
    /// The client's `prefect` version (from `User-Agent`), when known.
    pub client_version: Option<String>,
    /// The client's API version (`X-PREFECT-API-VERSION`), when sent.
    pub api_version: Option<Version>,
    pub settings: OrchestrationSettings,
    pub effects: Vec<Effect>,
    /// Bumped by every reject/delay/abort, so the engine knows which rule changed the transition.
    pub(crate) decisions: u32,
    pub(crate) rng: SmallRng,
}

impl<R> Context<R> {
    /// A context for proposing `proposed` over `initial` on `run` at `now`.
    pub fn new(run: R, initial: Option<State>, proposed: Option<State>, now: DateTime) -> Self {
        Context {
            run,
            initial_state: initial,
            proposed_state: proposed,
            validated_state: None,
            response_status: SetStateStatus::Accept,
            response_details: StateResponseDetails::AcceptDetails,
            now,
            client_version: None,
            api_version: None,
            settings: OrchestrationSettings::default(),
            effects: Vec::new(),
            decisions: 0,
            rng: SmallRng::from_os_rng(),
        }
    }

    /// Makes random draws (retry jitter, wait times) repeatable.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.rng = SmallRng::seed_from_u64(seed);
        self
    }

    pub fn initial_type(&self) -> Option<StateType> {
        self.initial_state.as_ref().map(|s| s.state_type)
    }

    pub fn proposed_type(&self) -> Option<StateType> {
        self.proposed_state.as_ref().map(|s| s.state_type)
    }

    /// Rejects the proposal: `state` is written instead, or with `None` nothing is
    /// written and the current state is returned.
    pub fn reject(&mut self, state: Option<State>, reason: impl Into<String>) {
        self.proposed_state = state;
        self.response_status = SetStateStatus::Reject;
        self.response_details = StateResponseDetails::RejectDetails { reason: Some(reason.into()) };
        self.decisions += 1;
    }

    /// Asks the client to propose again after `delay_seconds`; nothing is written.
    pub fn delay(&mut self, delay_seconds: i64, reason: impl Into<String>) {
        self.proposed_state = None;
        self.response_status = SetStateStatus::Wait;
        self.response_details = StateResponseDetails::WaitDetails { delay_seconds, reason: Some(reason.into()) };
        self.decisions += 1;
    }

    /// Stops the transition; nothing is written and the client gives up.
    pub fn abort(&mut self, reason: impl Into<String>) {
        self.proposed_state = None;
        self.response_status = SetStateStatus::Abort;
        self.response_details = StateResponseDetails::AbortDetails { reason: Some(reason.into()) };
        self.decisions += 1;
    }

    /// Renames the proposed state (the type is unchanged, so no rule fizzles).
    pub fn rename(&mut self, name: &str) {
        if let Some(state) = &mut self.proposed_state {
            state.name = Some(name.to_owned());
        }
    }

    /// Whether the client's API version is at least 0.8.4 (or unknown, which Prefect treats as current).
    pub fn api_at_least_0_8_4(&self) -> bool {
        self.api_version.is_none_or(|v| v >= Version(0, 8, 4))
    }

    /// A uniform random number in `[0, 1)`.
    pub fn random(&mut self) -> f64 {
        self.rng.random::<f64>()
    }

    /// Prefect's `clamped_poisson_interval`: a random wait around `average` seconds.
    pub fn clamped_poisson_interval(&mut self, average: f64, clamping_factor: f64) -> f64 {
        let uniform = self.random();
        crate::math::clamped_poisson_interval(average, clamping_factor, uniform)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_and_order() {
        assert_eq!(Version::parse("3.9.1"), Some(Version(3, 9, 1)));
        assert_eq!(Version::parse("3.0.0rc20"), Some(Version(3, 0, 0)));
        assert!(Version::parse("x").is_none());
        assert!(Version(0, 8, 4) > Version(0, 8, 3));
    }
}
