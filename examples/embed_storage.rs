//! Embedding the storage and orchestration layers in another Rust service, without HTTP.
//!
//! Creates a flow and a flow run in a SQLite file, then drives the run through
//! Pending → Running → Failed (retried: AwaitingRetry) → Running → Completed with
//! Prefect's core flow policy, writing each accepted state and the run's
//! bookkeeping in one transaction per transition.
//!
//! Run with `cargo run -p prefect-examples --example embed_storage`.

use prefect_domain::flow::FlowCreate;
use prefect_domain::flow_run::FlowRunPolicy;
use prefect_domain::state::{SetStateStatus, State, StateType};
use prefect_orchestration::testing::MemoryStore;
use prefect_orchestration::{Context, FlowPolicy, FlowRunData};
use prefect_storage::flow_runs::{NewFlowRun, RunBookkeeping};
use prefect_storage::{Database, DatabaseOptions, flow_runs, flows};
use uuid::Uuid;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Proposes `proposed` for the run and persists the outcome. Returns the status and the run's state afterwards.
async fn transition(db: &Database, run_id: Uuid, proposed: State) -> Result<(SetStateStatus, State), Error> {
    let now = prefect_domain::time::now();
    let txn = db.begin_write().await?;
    let run = flow_runs::read_for_update(&txn, db.backend(), run_id, now).await?.ok_or("flow run vanished")?;
    let data = FlowRunData {
        run_count: run.run_count,
        empirical_policy: run.empirical_policy.clone(),
        state_type: run.state_type,
        state_name: run.state_name.clone(),
        state_timestamp: run.state.as_ref().map(|s| s.timestamp),
        start_time: run.start_time,
        end_time: run.end_time,
        total_run_time: run.total_run_time,
        expected_start_time: run.expected_start_time,
        next_scheduled_start_time: run.next_scheduled_start_time,
        ..FlowRunData::new(run.id, run.flow_id)
    };
    let mut ctx = Context::new(data, run.state.clone(), Some(proposed), now);
    // No deployments or concurrency limits here, so an in-memory port is enough for the rules.
    prefect_orchestration::orchestrate_flow(&mut ctx, &mut MemoryStore::default(), FlowPolicy::Core).await?;

    let current = ctx.validated_state.clone().ok_or("no state")?;
    if ctx.proposed_state.is_some() {
        flow_runs::insert_state(&txn, run.id, &current, None, now).await?;
        let bookkeeping = RunBookkeeping {
            state_id: Some(current.id),
            state_type: ctx.run.state_type,
            state_name: ctx.run.state_name.clone(),
            state_timestamp: ctx.run.state_timestamp,
            run_count: ctx.run.run_count,
            start_time: ctx.run.start_time,
            end_time: ctx.run.end_time,
            total_run_time: ctx.run.total_run_time,
            expected_start_time: ctx.run.expected_start_time,
            next_scheduled_start_time: ctx.run.next_scheduled_start_time,
        };
        flow_runs::write_bookkeeping(&txn, run.id, &bookkeeping, &ctx.run.empirical_policy, now).await?;
    }
    prefect_storage::commit(txn).await?;
    Ok((ctx.response_status, current))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("embedded.db").display());
    let db = Database::connect(&DatabaseOptions { url, ..Default::default() }).await?;
    prefect_storage::migrate(&db).await?;

    let now = prefect_domain::time::now();
    let txn = db.begin_write().await?;
    let (flow, _) = flows::create_or_read(&txn, &FlowCreate { name: "embedded-etl".into(), tags: vec![], labels: None }, now).await?;
    let run_id = Uuid::now_v7();
    let new_run = NewFlowRun {
        id: run_id,
        name: "embedded-run".into(),
        flow_id: flow.id,
        flow_version: None,
        deployment_id: None,
        deployment_version: None,
        work_queue_id: None,
        work_queue_name: None,
        parameters: serde_json::Map::new(),
        idempotency_key: None,
        context: serde_json::Map::new(),
        empirical_policy: FlowRunPolicy { retries: Some(1), ..Default::default() },
        tags: vec!["embedded".into()],
        labels: serde_json::Map::new(),
        parent_task_run_id: None,
        infrastructure_document_id: None,
        job_variables: None,
        created_by: None,
        auto_scheduled: false,
    };
    flow_runs::insert(&txn, &new_run, &RunBookkeeping::default(), &new_run.empirical_policy, now).await?;
    prefect_storage::commit(txn).await?;

    let steps = [StateType::Pending, StateType::Running, StateType::Failed, StateType::Running, StateType::Completed];
    let mut names = Vec::new();
    for step in steps {
        let (status, state) = transition(&db, run_id, State::new(step, prefect_domain::time::now())).await?;
        println!("proposed {step:<9} -> {status:?}, now {} ({})", state.name(), state.state_type);
        names.push(state.name().to_owned());
    }
    assert_eq!(names, ["Pending", "Running", "AwaitingRetry", "Running", "Completed"], "the first failure is retried");

    let run = flow_runs::read(db.reader(), run_id, prefect_domain::time::now()).await?.ok_or("flow run vanished")?;
    let history = flow_runs::states_of(db.reader(), run_id).await?;
    println!("run {} finished {:?} after {} runs with {} states", run.name, run.state_type, run.run_count, history.len());
    assert_eq!((run.state_type, run.run_count, history.len()), (Some(StateType::Completed), 2, 5));
    Ok(())
}
