//! The in-process event bus, and the events the server emits itself.
//!
//! Every event — from `/events/in`, `POST /events` or the server — goes into a
//! bounded queue. The event pipeline (in `prefect-services`) drains it in
//! batches: it persists them, feeds the task run recorder, then hands them to
//! live subscribers (`/events/out`). A full queue pushes back on producers
//! instead of growing memory or dropping what was accepted.
//!
//! Clients' events and the server's own (state changes and the like) wait in two
//! queues, and the pipeline takes the server's first. A state transition publishes
//! its event before it answers, so with one shared queue a flood of client events
//! made every transition wait behind it; now clients are pushed back (429) while
//! orchestration waits only for its own events.

use std::sync::Arc;
use std::time::Duration;

use prefect_domain::events::{Event, EventLimits, RESOURCE_NAME, RESOURCE_ROLE, ReceivedEvent, Resource};
use prefect_domain::flow_run::FlowRun;
use prefect_domain::state::State;
use prefect_domain::time::{self, DateTime};
use prefect_storage::Backend;
use serde_json::{Map, Value, json};
use tokio::sync::{broadcast, mpsc};

use crate::{Error, Result};

/// Producers' side of the bus. Cheap to clone.
#[derive(Debug, Clone)]
pub struct EventBus {
    clients: mpsc::Sender<ReceivedEvent>,
    server: mpsc::Sender<ReceivedEvent>,
    live: broadcast::Sender<Arc<ReceivedEvent>>,
    limits: EventLimits,
}

/// The pipeline's side of the bus: the server's events first, then clients'.
#[derive(Debug)]
pub struct EventReceiver {
    server: mpsc::Receiver<ReceivedEvent>,
    clients: mpsc::Receiver<ReceivedEvent>,
}

impl EventReceiver {
    /// Waits for events and moves up to `limit` into `buffer`, the server's first;
    /// 0 once the bus is closed and empty (or `limit` is 0).
    pub async fn recv_many(&mut self, buffer: &mut Vec<ReceivedEvent>, limit: usize) -> usize {
        if limit == 0 {
            return 0;
        }
        let start = buffer.len();
        if self.take_waiting(buffer, limit) == 0 {
            let (mut server_open, mut clients_open) = (true, true);
            let first = loop {
                tokio::select! {
                    biased;
                    e = self.server.recv(), if server_open => match e { Some(e) => break e, None => server_open = false },
                    e = self.clients.recv(), if clients_open => match e { Some(e) => break e, None => clients_open = false },
                    else => return 0,
                }
            };
            buffer.push(first);
            self.take_waiting(buffer, limit - 1);
        }
        buffer.len() - start
    }

    /// Moves up to `limit` events that are already waiting into `buffer`, the server's first.
    fn take_waiting(&mut self, buffer: &mut Vec<ReceivedEvent>, limit: usize) -> usize {
        let mut taken = 0;
        for queue in [&mut self.server, &mut self.clients] {
            while taken < limit {
                let Ok(event) = queue.try_recv() else { break };
                buffer.push(event);
                taken += 1;
            }
        }
        taken
    }

    /// Stops accepting events; those already queued can still be received.
    pub fn close(&mut self) {
        self.server.close();
        self.clients.close();
    }
}

impl EventBus {
    /// A bus holding at most `capacity` unprocessed client events and a quarter as
    /// many of the server's own.
    pub fn new(capacity: usize, limits: EventLimits) -> (EventBus, EventReceiver) {
        let (clients, client_events) = mpsc::channel(capacity.max(1));
        let (server, server_events) = mpsc::channel((capacity / 4).max(1));
        let (live, _) = broadcast::channel(4096);
        (EventBus { clients, server, live, limits }, EventReceiver { server: server_events, clients: client_events })
    }

    /// Validation limits for incoming events.
    pub fn limits(&self) -> &EventLimits {
        &self.limits
    }

    /// Queues one event the server emits, waiting for room.
    pub async fn publish(&self, event: ReceivedEvent) -> Result<()> {
        self.server.send(event).await.map_err(|_| stopped())
    }

    /// Queues one client event (from `/events/in`), waiting for room.
    pub async fn publish_client(&self, event: ReceivedEvent) -> Result<()> {
        self.clients.send(event).await.map_err(|_| stopped())
    }

    /// Queues a batch of client events all-or-nothing, waiting up to `wait` for room;
    /// `Busy` when the queue stays full.
    pub async fn publish_batch(&self, events: Vec<ReceivedEvent>, wait: Duration) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let capacity = self.clients.max_capacity();
        if events.len() > capacity {
            // Larger than the whole queue: feed it in pieces, waiting as the pipeline drains.
            for event in events {
                self.publish_client(event).await?;
            }
            return Ok(());
        }
        let permits = match tokio::time::timeout(wait, self.clients.reserve_many(events.len())).await {
            Ok(Ok(permits)) => permits,
            Ok(Err(_)) => return Err(stopped()),
            Err(_) => return Err(Error::Busy("The event queue is full; retry later.".to_owned())),
        };
        for (permit, event) in permits.zip(events) {
            permit.send(event);
        }
        Ok(())
    }

    /// Hands processed events to live subscribers (called by the pipeline after persisting).
    pub fn broadcast(&self, event: Arc<ReceivedEvent>) {
        // No subscribers is fine: live streams only see events while connected.
        let _ = self.live.send(event);
    }

    /// A live stream of processed events.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<ReceivedEvent>> {
        self.live.subscribe()
    }

    /// Events waiting to be processed.
    pub fn backlog(&self) -> usize {
        let waiting = |q: &mpsc::Sender<ReceivedEvent>| q.max_capacity() - q.capacity();
        waiting(&self.clients) + waiting(&self.server)
    }
}

fn stopped() -> Error {
    Error::Unavailable("the event pipeline has stopped".to_owned())
}

/// Validates client events and stamps them as received now.
pub fn receive(events: Vec<Event>, limits: &EventLimits) -> Result<Vec<ReceivedEvent>> {
    let received = time::now();
    events
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            e.validate(limits).map_err(|err| match err {
                prefect_domain::Error::InvalidField { field, message } => Error::Invalid { field: Some(format!("{i}.{field}")), message },
            })?;
            Ok(e.receive(received))
        })
        .collect()
}

/// What a flow run's state-change event says about the objects around it.
#[derive(Debug, Clone, Default)]
pub struct FlowRunRelations {
    pub flow: Option<(uuid::Uuid, String, Vec<String>)>,
    pub deployment: Option<(uuid::Uuid, String, Vec<String>)>,
    pub work_queue: Option<(uuid::Uuid, String)>,
    pub work_pool: Option<(uuid::Uuid, String, String)>,
    pub parent_task_run: Option<(uuid::Uuid, String, Vec<String>)>,
}

/// Prefect truncates state messages in events to this many characters.
const TRUNCATE_STATE_MESSAGES_AT: usize = 100_000;

fn truncated(message: Option<&str>) -> Option<String> {
    message.map(|m| if m.chars().count() > TRUNCATE_STATE_MESSAGES_AT { m.chars().take(TRUNCATE_STATE_MESSAGES_AT).collect() } else { m.to_owned() })
}

fn state_payload(state: &State) -> Value {
    let mut payload = Map::new();
    payload.insert("type".to_owned(), json!(state.state_type));
    if let Some(name) = &state.name {
        payload.insert("name".to_owned(), json!(name));
    }
    if let Some(message) = truncated(state.message.as_deref()).filter(|m| !m.is_empty()) {
        payload.insert("message".to_owned(), json!(message));
    }
    if state.state_type == prefect_domain::state::StateType::Paused {
        payload.insert("pause_reschedule".to_owned(), json!(state.state_details.pause_reschedule.to_string()));
    }
    Value::Object(payload)
}

fn related(kind: &str, role: &str, id: uuid::Uuid, name: &str) -> Resource {
    Resource::with_id(format!("prefect.{kind}.{id}")).label(RESOURCE_ROLE, role).label(RESOURCE_NAME, name)
}

/// `prefect.flow-run.<state name>` for a transition of `run`.
pub fn flow_run_state_change(run: &FlowRun, relations: &FlowRunRelations, initial: Option<&State>, validated: &State, received: DateTime) -> ReceivedEvent {
    let resource = Resource::with_id(format!("prefect.flow-run.{}", run.id))
        .label(RESOURCE_NAME, run.name.clone())
        .label("prefect.run-count", run.run_count.to_string())
        .label("prefect.state-message", truncated(validated.message.as_deref()).unwrap_or_default())
        .label("prefect.state-name", validated.name())
        .label("prefect.state-timestamp", validated.timestamp.to_rfc3339_opts(chrono::SecondsFormat::Micros, false))
        .label("prefect.state-type", validated.state_type.as_str());

    let mut related_resources = Vec::new();
    let mut tags: Vec<String> = run.tags.clone();
    if let Some((id, name, flow_tags)) = &relations.flow {
        related_resources.push(related("flow", "flow", *id, name));
        tags.extend(flow_tags.iter().cloned());
    }
    if let Some((id, name, dep_tags)) = &relations.deployment {
        related_resources.push(related("deployment", "deployment", *id, name));
        tags.extend(dep_tags.iter().cloned());
    }
    if let Some((id, name)) = &relations.work_queue {
        related_resources.push(related("work-queue", "work-queue", *id, name));
    }
    if let Some((id, name, kind)) = &relations.work_pool {
        related_resources.push(related("work-pool", "work-pool", *id, name).label("prefect.work-pool.type", kind.clone()));
    }
    if let Some((id, name, task_tags)) = &relations.parent_task_run {
        related_resources.push(related("task-run", "task-run", *id, name));
        tags.extend(task_tags.iter().cloned());
    }
    tags.sort();
    tags.dedup();
    for tag in tags {
        related_resources.push(Resource::with_id(format!("prefect.tag.{tag}")).label(RESOURCE_ROLE, "tag"));
    }
    if let Some(created_by) = &run.created_by
        && let (Some(id), Some(kind)) = (created_by.id, created_by.kind.as_deref())
    {
        let kind = match kind {
            "DEPLOYMENT" => Some("deployment"),
            "AUTOMATION" => Some("automation"),
            _ => None,
        };
        if let Some(kind) = kind {
            let mut creator = Resource::with_id(format!("prefect.{kind}.{id}")).label(RESOURCE_ROLE, "creator");
            if let Some(display) = &created_by.display_value {
                creator = creator.label(RESOURCE_NAME, display.clone());
            }
            related_resources.push(creator);
        }
    }

    let mut payload = Map::new();
    payload.insert("intended".to_owned(), json!({"from": initial.map(|s| s.state_type), "to": validated.state_type}));
    payload.insert("initial_state".to_owned(), initial.map_or(Value::Null, state_payload));
    payload.insert("validated_state".to_owned(), state_payload(validated));

    // Prefect links an event to the previous one only when they are close in time.
    let follows = initial.filter(|i| (validated.timestamp - i.timestamp).num_seconds().abs() < 300).map(|i| i.id);
    ReceivedEvent {
        occurred: validated.timestamp,
        event: format!("prefect.flow-run.{}", validated.name()),
        resource,
        related: related_resources,
        payload,
        id: validated.id,
        follows,
        received,
    }
}

/// A page token: everything needed to read the next page of a query.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PageToken {
    pub filter: prefect_domain::events::EventFilter,
    pub count: u64,
    pub page_size: u64,
    pub offset: u64,
}

impl PageToken {
    /// The token for the page after the one at `offset`, if there is one.
    fn next(filter: &prefect_domain::events::EventFilter, count: u64, page_size: u64, offset: u64) -> Option<PageToken> {
        (offset + page_size < count).then(|| PageToken { filter: filter.clone(), count, page_size, offset: offset + page_size })
    }
}

/// A page of events and the token for the next.
#[derive(Debug, Clone)]
pub struct EventPageResult {
    pub events: Vec<ReceivedEvent>,
    pub total: u64,
    pub next: Option<PageToken>,
}

/// Events per write job when persisting (see [`crate::Core::persist_events`]).
pub const PERSIST_JOB_EVENTS: usize = 500;

impl crate::Core {
    /// Stores a batch of events (duplicates by id are ignored); returns how many were new.
    ///
    /// The batch goes to the writers' bulk lane in jobs of [`PERSIST_JOB_EVENTS`], all
    /// queued at once: the writer runs them back to back, and with state transitions
    /// waiting it alternates them with one job, so a transition never waits for a
    /// whole large batch.
    ///
    /// On SQLite each job's rows are encoded here, before they queue for the single
    /// writer, which then only steps them (see `prefect_storage::direct_writes`).
    pub async fn persist_events(&self, batch: &[Arc<ReceivedEvent>]) -> Result<usize> {
        let backend = self.db().backend();
        let jobs = batch.chunks(PERSIST_JOB_EVENTS).map(|chunk| async move {
            match backend {
                Backend::Sqlite => {
                    let rows = prefect_storage::events::SqliteEventRows::new(chunk.to_vec())?;
                    Ok::<_, Error>(self.db().write_direct(move |txn| rows.insert(txn, time::now())).await?)
                }
                Backend::Postgres => {
                    let shared: Arc<Vec<Arc<ReceivedEvent>>> = Arc::new(chunk.to_vec());
                    self.write_bulk(move |txn| {
                        let shared = Arc::clone(&shared);
                        Box::pin(async move { Ok(prefect_storage::events::insert_many(txn, backend, &shared, time::now()).await?) })
                    })
                    .await
                }
            }
        });
        Ok(futures_util::future::try_join_all(jobs).await?.into_iter().sum())
    }

    /// The first page of events matching `filter`.
    pub async fn query_events(&self, filter: prefect_domain::events::EventFilter, page_size: u64) -> Result<EventPageResult> {
        let mut filter = filter;
        // Pin the default window so later pages see the same events.
        let (since, until) = filter.window(time::now());
        filter.occurred = Some(prefect_domain::events::EventOccurredFilter { since, until });
        self.events_page(filter, page_size, 0).await
    }

    /// The page a token points at.
    pub async fn query_events_page(&self, token: PageToken) -> Result<EventPageResult> {
        self.events_page(token.filter, token.page_size, token.offset).await
    }

    async fn events_page(&self, filter: prefect_domain::events::EventFilter, page_size: u64, offset: u64) -> Result<EventPageResult> {
        let (events, total) = prefect_storage::events::query(self.db().reader(), self.db().backend(), &filter, page_size, offset, time::now()).await?;
        let next = PageToken::next(&filter, total, page_size, offset);
        Ok(EventPageResult { events, total, next })
    }

    /// Counts events grouped by day, time bucket, event name or resource.
    pub async fn count_events(
        &self,
        filter: prefect_domain::events::EventFilter,
        countable: prefect_domain::events::Countable,
        time_unit: prefect_domain::events::TimeUnit,
        time_interval: f64,
    ) -> Result<Vec<prefect_domain::events::EventCount>> {
        use prefect_domain::events::{Countable, EventCount, TimeUnit};
        let now = time::now();
        let mut filter = filter;
        let (since, until) = filter.window(now);
        filter.occurred = Some(prefect_domain::events::EventOccurredFilter { since, until });
        let reader = self.db().reader();
        let backend = self.db().backend();
        match countable {
            Countable::Event | Countable::Resource => {
                let rows = prefect_storage::events::count_by_column(reader, backend, &filter, countable == Countable::Resource, now).await?;
                Ok(rows.into_iter().map(|(value, label, count, start_time, end_time)| EventCount { value, label, count, start_time, end_time }).collect())
            }
            Countable::Day | Countable::Time => {
                let (unit, interval) = if countable == Countable::Day { (TimeUnit::Day, 1.0) } else { (time_unit, time_interval) };
                if interval < 0.01 {
                    return Err(Error::invalid("time_interval", "The minimum interval is 0.01"));
                }
                let width = unit.seconds() * interval;
                let pivot = chrono::DateTime::parse_from_rfc3339("2024-04-01T00:00:00Z").map(|d| d.to_utc()).unwrap_or(since);
                let buckets = (time::seconds(until - since) / width).ceil();
                if buckets > 1000.0 {
                    return Err(Error::Invalid {
                        field: None,
                        message: format!(
                            "The given interval would create {buckets} buckets, which is too many. Please increase the interval or reduce the time range to produce 1000 buckets or fewer."
                        ),
                    });
                }
                let end = until.min(now);
                let first = (time::seconds(since - pivot) / width).floor() as i64;
                let mut spans = Vec::new();
                let mut index = first;
                loop {
                    let start = pivot + time::from_seconds_signed(width * index as f64);
                    if start >= end && !spans.is_empty() {
                        break;
                    }
                    let stop = pivot + time::from_seconds_signed(width * (index + 1) as f64) - chrono::TimeDelta::microseconds(1);
                    spans.push((start, stop, 0u64));
                    index += 1;
                    if start >= end {
                        break;
                    }
                }
                for occurred in prefect_storage::events::occurrences(reader, backend, &filter, now).await? {
                    let i = (time::seconds(occurred - pivot) / width).floor() as i64 - first;
                    if let Some(span) = usize::try_from(i).ok().and_then(|i| spans.get_mut(i)) {
                        span.2 += 1;
                    }
                }
                Ok(spans
                    .into_iter()
                    .enumerate()
                    .map(|(i, (start, stop, count))| EventCount {
                        value: i.to_string(),
                        label: start.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false),
                        count,
                        start_time: start,
                        end_time: stop,
                    })
                    .collect())
            }
        }
    }
}

/// `prefect.<kind>.<action>` for an object the server created, updated or deleted
/// (variables, block types, block documents), as Prefect's lifecycle events.
pub fn lifecycle(kind: &str, action: &str, id: uuid::Uuid, name: Option<&str>, payload: Value, related: Vec<Resource>) -> ReceivedEvent {
    let now = time::now();
    let mut resource = Resource::with_id(format!("prefect.{kind}.{id}"));
    if let Some(name) = name {
        resource = resource.label(RESOURCE_NAME, name);
    }
    ReceivedEvent {
        occurred: now,
        event: format!("prefect.{kind}.{action}"),
        resource,
        related,
        payload: match payload {
            Value::Object(map) => map,
            _ => Map::new(),
        },
        id: uuid::Uuid::now_v7(),
        follows: None,
        received: now,
    }
}

impl crate::Core {
    /// Publishes a server-made event; a stopped pipeline is logged, never fatal to the caller.
    pub(crate) async fn emit(&self, event: ReceivedEvent) {
        let name = event.event.clone();
        if let Err(error) = self.events().publish(event).await {
            tracing::warn!(event = %name, %error, "Could not publish a lifecycle event.");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: usize) -> ReceivedEvent {
        lifecycle("bench", "emitted", uuid::Uuid::now_v7(), Some(&format!("event {n}")), Value::Null, Vec::new())
    }

    #[tokio::test]
    async fn a_full_client_queue_answers_busy_and_leaves_room_for_the_servers_events() {
        let (bus, mut receiver) = EventBus::new(8, EventLimits::default());
        let wait = Duration::from_millis(20);
        bus.publish_batch((0..8).map(event).collect(), wait).await.expect("room for the first batch");

        // Clients are pushed back (the API answers 429 with Retry-After) rather than queued without bound.
        assert!(matches!(bus.publish_batch(vec![event(8)], wait).await, Err(Error::Busy(_))));
        // The server's own events still get in, and the pipeline takes them first.
        bus.publish(event(100)).await.expect("the server's queue is separate");
        assert_eq!(bus.backlog(), 9);

        let mut received = Vec::new();
        assert_eq!(receiver.recv_many(&mut received, 4).await, 4);
        let names: Vec<&str> = received.iter().map(|e| e.resource.get(RESOURCE_NAME).unwrap_or("")).collect();
        assert_eq!(names, ["event 100", "event 0", "event 1", "event 2"]);

        // Nothing accepted is lost: the rest arrive in order once there is room, and a retry is accepted.
        bus.publish_batch(vec![event(8)], wait).await.expect("room again after draining");
        while received.len() < 10 {
            assert!(receiver.recv_many(&mut received, 10).await > 0);
        }
        let last: Vec<&str> = received[4..].iter().map(|e| e.resource.get(RESOURCE_NAME).unwrap_or("")).collect();
        assert_eq!(last, ["event 3", "event 4", "event 5", "event 6", "event 7", "event 8"]);
    }
}
