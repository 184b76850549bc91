//! The triggers service: evaluates automations' triggers against every processed
//! event (reactive), and periodically for the absence of events (proactive), then
//! hands each firing to the actions worker, which runs the automation's actions.
//!
//! Evaluation follows Prefect's bucket model. Each event trigger keeps one bucket per
//! `for_each` key: a window `[start, end)` and a count of the matching events in it.
//! A reactive trigger fires when the count reaches `threshold`; a proactive one when the
//! window closes short of it. Composite triggers collect their children's firings.
//!
//! State is held in memory by each server instance, so buckets and composite progress
//! start afresh on restart, and with several instances each evaluates the events it
//! received itself (as Prefect's servers do without a shared message broker).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use prefect_core::Core;
use prefect_core::automation_actions::Firing;
use prefect_domain::automation::{Automation, EventTrigger, Posture, Trigger};
use prefect_domain::events::ReceivedEvent;
use prefect_domain::time::{self, DateTime};
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// A batch of processed events, as the event pipeline hands it on.
pub type EventBatch = Arc<[Arc<ReceivedEvent>]>;

/// Settings of the service.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct TriggersOptions {
    /// `PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED`.
    pub enabled: bool,
    /// `PREFECT_SERVER_EVENTS_PROACTIVE_GRANULARITY`: how often proactive triggers are checked.
    #[serde(deserialize_with = "crate::duration_setting")]
    pub proactive_granularity_seconds: f64,
    /// How often automations are read again, to see changes made through other servers.
    #[serde(deserialize_with = "crate::duration_setting")]
    pub reload_seconds: f64,
    /// Firings waiting for the actions worker; beyond this, firings are dropped (and logged).
    pub pending_firings: usize,
    /// Open trigger windows held at once, over all automations (memory stays bounded: a
    /// trigger whose `for_each` splits it per run keeps a window per run). Past this, new
    /// windows are not opened until old ones close, and a warning is logged.
    pub max_buckets: usize,
}

impl Default for TriggersOptions {
    fn default() -> Self {
        TriggersOptions { enabled: true, proactive_granularity_seconds: 5.0, reload_seconds: 10.0, pending_firings: 10_000, max_buckets: DEFAULT_MAX_BUCKETS }
    }
}

/// The pipeline's end of the feed: batches wait here until the service takes them.
pub fn feed(capacity: usize) -> (mpsc::Sender<EventBatch>, mpsc::Receiver<EventBatch>) {
    mpsc::channel(capacity.max(1))
}

/// The running service.
pub struct Triggers {
    options: TriggersOptions,
    core: Core,
    batches: mpsc::Receiver<EventBatch>,
}

impl Triggers {
    pub fn new(options: TriggersOptions, core: Core, batches: mpsc::Receiver<EventBatch>) -> Self {
        Triggers { options, core, batches }
    }

    /// Evaluates until shutdown. The actions worker runs beside it, so evaluation never
    /// waits for an action (whose events come back through the pipeline to this service).
    pub async fn run(mut self, shutdown: CancellationToken) {
        let (firings, mut pending) = mpsc::channel::<(Arc<Automation>, Firing)>(self.options.pending_firings.max(1));
        let core = self.core.clone();
        let actions = tokio::spawn(async move {
            while let Some((automation, firing)) = pending.recv().await {
                core.act_on_firing(&automation, &firing).await;
            }
        });

        let mut evaluator = Evaluator::with_max_buckets(self.options.max_buckets);
        let mut refused_reported = 0;
        let mut changes = self.core.watch_automations();
        self.reload(&mut evaluator).await;
        let mut proactive = tokio::time::interval(Duration::from_secs_f64(self.options.proactive_granularity_seconds.max(0.1)));
        proactive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut reload = tokio::time::interval(Duration::from_secs_f64(self.options.reload_seconds.max(1.0)));
        reload.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut fired = Vec::new();
        loop {
            tokio::select! {
                // Changes first: an event sent after an automation was saved must see it.
                biased;
                _ = shutdown.cancelled() => break,
                changed = changes.changed() => {
                    if changed.is_err() { break }
                    self.reload(&mut evaluator).await;
                }
                batch = self.batches.recv() => match batch {
                    Some(batch) => {
                        for event in batch.iter() {
                            evaluator.on_event(event, &mut fired);
                        }
                    }
                    None => break,
                },
                _ = proactive.tick() => {
                    evaluator.on_tick(time::now(), &mut fired);
                    if evaluator.refused_buckets() > refused_reported {
                        tracing::warn!(
                            refused = evaluator.refused_buckets() - refused_reported,
                            max_buckets = self.options.max_buckets,
                            "Automation triggers hold the most open windows allowed; events that would open new ones were not counted."
                        );
                        refused_reported = evaluator.refused_buckets();
                    }
                }
                _ = reload.tick() => self.reload(&mut evaluator).await,
            }
            for (automation, firing) in fired.drain(..) {
                if let Err(error) = firings.try_send((automation, firing)) {
                    tracing::error!(%error, "Too many automation firings are waiting for their actions; this one is dropped.");
                }
            }
        }
        drop(firings);
        // Let actions already decided finish, but not hold shutdown up for long.
        let _ = tokio::time::timeout(Duration::from_secs(5), actions).await;
        tracing::debug!(service = "triggers", "Service stopped.");
    }

    async fn reload(&self, evaluator: &mut Evaluator) {
        match self.core.enabled_automations().await {
            Ok(automations) => evaluator.load(automations),
            Err(error) => tracing::warn!(service = "triggers", %error, "Could not read automations; keeping the ones loaded."),
        }
    }
}

/// Events arriving this long before a bucket's first event still count in it.
const PRECEDING_EVENT_LOOKBACK_SECONDS: i64 = 15 * 60;
/// Closed buckets are forgotten this long after their window ends.
const EXPIRED_BUCKET_BUFFER_SECONDS: i64 = 60;
/// Event ids remembered to ignore redelivered events.
const SEEN_EVENTS: usize = 10_000;
/// Open windows held at once by default (a few hundred bytes each).
const DEFAULT_MAX_BUCKETS: usize = 100_000;

/// One window of one trigger for one `for_each` key.
#[derive(Debug, Clone)]
struct Bucket {
    start: DateTime,
    end: DateTime,
    count: i64,
    last_event: Option<Arc<ReceivedEvent>>,
}

/// A loaded event trigger and where it sits in its automation.
#[derive(Debug, Clone)]
struct Leaf {
    automation_id: Uuid,
    trigger: EventTrigger,
}

/// The pure part of the service: loaded automations, buckets and composite progress.
/// Events are judged by their own time and ticks by the time given, so tests drive it
/// with any clock.
#[derive(Debug)]
pub struct Evaluator {
    automations: HashMap<Uuid, Arc<Automation>>,
    leaves: Vec<Leaf>,
    /// Child trigger id -> its compound or sequence parent's id.
    parents: HashMap<Uuid, Uuid>,
    /// Compound and sequence triggers by id.
    composites: HashMap<Uuid, Trigger>,
    /// Trigger id -> `for_each` key -> bucket.
    buckets: HashMap<Uuid, HashMap<Vec<String>, Bucket>>,
    /// Composite trigger id -> the latest firing of each child that has fired.
    child_firings: HashMap<Uuid, Vec<Firing>>,
    /// Proactive trigger id -> when it is next checked.
    next_proactive: HashMap<Uuid, DateTime>,
    seen: HashSet<Uuid>,
    seen_order: VecDeque<Uuid>,
    /// Most buckets held at once, and how many were not opened for want of room.
    max_buckets: usize,
    refused_buckets: u64,
}

impl Default for Evaluator {
    fn default() -> Self {
        Evaluator::with_max_buckets(DEFAULT_MAX_BUCKETS)
    }
}

impl Evaluator {
    pub fn with_max_buckets(max_buckets: usize) -> Self {
        Evaluator {
            automations: HashMap::new(),
            leaves: Vec::new(),
            parents: HashMap::new(),
            composites: HashMap::new(),
            buckets: HashMap::new(),
            child_firings: HashMap::new(),
            next_proactive: HashMap::new(),
            seen: HashSet::new(),
            seen_order: VecDeque::new(),
            max_buckets,
            refused_buckets: 0,
        }
    }

    /// Windows that were not opened because `max_buckets` were open already.
    pub fn refused_buckets(&self) -> u64 {
        self.refused_buckets
    }

    /// Replaces the loaded automations. Buckets and progress of triggers that are still
    /// there are kept (turning an automation off and on keeps its trigger ids); those of
    /// triggers that are gone (deleted, or replaced by a full update) are dropped.
    pub fn load(&mut self, automations: Vec<Automation>) {
        let previous: HashSet<Uuid> = self.leaves.iter().map(|l| l.trigger.id).collect();
        self.automations.clear();
        self.leaves.clear();
        self.parents.clear();
        self.composites.clear();
        for automation in automations.into_iter().filter(|a| a.enabled) {
            let automation = Arc::new(automation);
            self.register(&automation, &automation.trigger);
            self.automations.insert(automation.id, automation);
        }
        let live: HashSet<Uuid> = self.leaves.iter().map(|l| l.trigger.id).chain(self.composites.keys().copied()).collect();
        self.buckets.retain(|id, _| live.contains(id));
        self.child_firings.retain(|id, _| live.contains(id));
        self.next_proactive.retain(|id, _| live.contains(id) && previous.contains(id));
    }

    fn register(&mut self, automation: &Arc<Automation>, trigger: &Trigger) {
        match trigger {
            Trigger::Event(event_trigger) => self.leaves.push(Leaf { automation_id: automation.id, trigger: event_trigger.clone() }),
            Trigger::Compound(_) | Trigger::Sequence(_) => {
                self.composites.insert(trigger.id(), trigger.clone());
                for child in trigger.children() {
                    self.parents.insert(child.id(), trigger.id());
                    self.register(automation, child);
                }
            }
        }
    }

    /// Evaluates one processed event against every loaded trigger. Windows are measured in
    /// the events' own time (`occurred`), so a backlog is judged as it happened.
    pub fn on_event(&mut self, event: &Arc<ReceivedEvent>, fired: &mut Vec<(Arc<Automation>, Firing)>) {
        if self.leaves.is_empty() || event.event == "prefect.log.write" || !self.first_sighting(event.id) {
            return;
        }
        let covering: Vec<usize> = (0..self.leaves.len()).filter(|&i| self.leaves[i].trigger.covers(event)).collect();
        for i in covering {
            let leaf = self.leaves[i].clone();
            self.reactive(&leaf, event, fired);
        }
    }

    /// Checks proactive triggers that are due, and forgets long-closed buckets.
    pub fn on_tick(&mut self, now: DateTime, fired: &mut Vec<(Arc<Automation>, Firing)>) {
        let due: Vec<Leaf> = self
            .leaves
            .iter()
            .filter(|l| l.trigger.posture == Posture::Proactive && self.next_proactive.get(&l.trigger.id).is_none_or(|next| *next <= now))
            .cloned()
            .collect();
        for leaf in due {
            self.proactive(&leaf, now, fired);
        }
        let expired_before = now - chrono::Duration::seconds(EXPIRED_BUCKET_BUFFER_SECONDS);
        for buckets in self.buckets.values_mut() {
            buckets.retain(|_, b| b.end > expired_before);
        }
        self.buckets.retain(|_, b| !b.is_empty());
    }

    /// Whether this event id is new (redelivered events are evaluated once).
    fn first_sighting(&mut self, id: Uuid) -> bool {
        if !self.seen.insert(id) {
            return false;
        }
        self.seen_order.push_back(id);
        if self.seen_order.len() > SEEN_EVENTS
            && let Some(oldest) = self.seen_order.pop_front()
        {
            self.seen.remove(&oldest);
        }
        true
    }

    fn reactive(&mut self, leaf: &Leaf, event: &Arc<ReceivedEvent>, fired: &mut Vec<(Arc<Automation>, Firing)>) {
        let trigger = &leaf.trigger;
        let key = trigger.bucketing_key(event);
        let within = seconds(trigger.within);
        let expected = trigger.expects(&event.event);
        let mut has_bucket = false;
        if !trigger.after.is_empty() && trigger.starts_after(&event.event) {
            // An `after` event opens a window (an open one is not restarted); when it is also
            // expected, it does not count itself.
            let initial = if expected { -1 } else { 0 };
            self.ensure_bucket(trigger.id, &key, event.occurred, event.occurred + within, kept(trigger, event), initial);
            has_bucket = true;
        }
        if !has_bucket && trigger.after.is_empty() && expected {
            let start = event.occurred - chrono::Duration::seconds(PRECEDING_EVENT_LOOKBACK_SECONDS);
            self.ensure_bucket(trigger.id, &key, start, event.occurred + within, kept(trigger, event), 0);
            has_bucket = true;
        }
        if !expected {
            return;
        }
        if !has_bucket && !self.bucket_exists(trigger.id, &key) {
            // An expected event with no `after` event before it.
            return;
        }
        self.evaluate(leaf, key, event.occurred, Some(event), fired);
    }

    fn proactive(&mut self, leaf: &Leaf, as_of: DateTime, fired: &mut Vec<(Arc<Automation>, Firing)>) {
        let trigger = &leaf.trigger;
        let within = seconds(trigger.within);
        let mut run_again = as_of + within;
        if trigger.for_each.is_empty() {
            self.ensure_bucket(trigger.id, &[], as_of, as_of + within, None, 0);
        }
        let threshold = trigger.threshold;
        let mut keys: Vec<(DateTime, Vec<String>)> = match self.buckets.get_mut(&trigger.id) {
            Some(buckets) => {
                // Satisfied windows can never fire.
                buckets.retain(|_, b| b.count < threshold);
                buckets.iter().map(|(k, b)| (b.start, k.clone())).collect()
            }
            None => Vec::new(),
        };
        keys.sort();
        for (_, key) in keys {
            self.evaluate(leaf, key.clone(), as_of, None, fired);
            if let Some(bucket) = self.buckets.get(&trigger.id).and_then(|b| b.get(&key))
                && bucket.end > as_of
            {
                run_again = run_again.min(bucket.end);
            }
        }
        self.next_proactive.insert(trigger.id, run_again);
    }

    fn bucket_exists(&self, trigger_id: Uuid, key: &[String]) -> bool {
        self.buckets.get(&trigger_id).is_some_and(|b| b.contains_key(key))
    }

    /// Opens a window unless one is open for this key already, or `max_buckets` are open.
    fn ensure_bucket(&mut self, trigger_id: Uuid, key: &[String], start: DateTime, end: DateTime, last_event: Option<&Arc<ReceivedEvent>>, count: i64) {
        if self.bucket_exists(trigger_id, key) {
            return;
        }
        if self.buckets.values().map(HashMap::len).sum::<usize>() >= self.max_buckets {
            self.refused_buckets += 1;
            return;
        }
        self.buckets.entry(trigger_id).or_default().insert(key.to_vec(), Bucket { start, end, count, last_event: last_event.cloned() });
    }

    fn put_bucket(&mut self, trigger_id: Uuid, key: Vec<String>, bucket: Bucket) {
        self.buckets.entry(trigger_id).or_default().insert(key, bucket);
    }

    /// Counts the event (if any) in the key's window and fires when the window's count
    /// says so; then keeps, rolls or drops the window.
    fn evaluate(&mut self, leaf: &Leaf, key: Vec<String>, now: DateTime, event: Option<&Arc<ReceivedEvent>>, fired: &mut Vec<(Arc<Automation>, Firing)>) {
        let trigger = &leaf.trigger;
        let Some(mut bucket) = self.buckets.get_mut(&trigger.id).and_then(|b| b.remove(&key)) else { return };
        let mut uncounted = i64::from(event.is_some());
        if now < bucket.start {
            // Late or redundant (e.g. in the quiet period after a firing).
            self.put_bucket(trigger.id, key, bucket);
            return;
        }
        if uncounted == 1 && (trigger.immediate() || (bucket.start <= now && now < bucket.end)) {
            bucket.count += 1;
            bucket.last_event = event.and_then(|e| kept(trigger, e)).cloned();
            uncounted = 0;
        }
        let ready = trigger.posture == Posture::Reactive || bucket.end <= now;
        let meets = trigger.meets_threshold(bucket.count);
        let mut did_fire = false;
        if ready && meets {
            let mut labels: Vec<&String> = trigger.for_each.iter().collect();
            labels.sort();
            let triggering_labels: BTreeMap<String, String> = labels.into_iter().cloned().zip(key.iter().cloned()).collect();
            let firing = Firing {
                id: Uuid::now_v7(),
                trigger_id: trigger.id,
                posture: Some(trigger.posture),
                triggered: time::now(),
                triggering_labels,
                triggering_event: event.cloned().or_else(|| bucket.last_event.clone()),
                triggering_firings: Vec::new(),
            };
            self.fire(leaf.automation_id, firing, fired);
            did_fire = true;
        } else if now < bucket.end {
            if let Some(event) = event
                && trigger.posture == Posture::Proactive
                && !meets
                && trigger.starts_after(&event.event)
                && trigger.expects(&event.event)
            {
                // A heartbeat (both the `after` and the expected event) restarts the window.
                let keep_previous = bucket
                    .last_event
                    .as_ref()
                    .is_some_and(|last| trigger.expects(&last.event) && !trigger.starts_after(&last.event) && last.occurred >= event.occurred);
                let last_event = if keep_previous { bucket.last_event.clone() } else { Some(Arc::clone(event)) };
                let restarted = Bucket { start: event.occurred, end: event.occurred + seconds(trigger.within), count: 0, last_event };
                self.put_bucket(trigger.id, key, restarted);
                return;
            }
            self.put_bucket(trigger.id, key, bucket);
            return;
        }

        if !trigger.after.is_empty() {
            // A new `after` event is needed to open another window.
            return;
        }
        if trigger.within == 0.0 {
            if !did_fire {
                self.put_bucket(trigger.id, key, bucket);
            }
            return;
        }
        let start = bucket.end.max(now);
        let next = Bucket { start, end: start + seconds(trigger.within), count: 0, last_event: None };
        if trigger.posture == Posture::Reactive && uncounted == 1 {
            // The event fell after the window: it opens the next one and counts there.
            self.put_bucket(trigger.id, key.clone(), next);
            self.evaluate(leaf, key, now, event, fired);
        } else {
            self.put_bucket(trigger.id, key, Bucket { count: uncounted, ..next });
        }
    }

    /// A trigger fired: its automation acts, or its compound or sequence parent counts it.
    fn fire(&mut self, automation_id: Uuid, firing: Firing, fired: &mut Vec<(Arc<Automation>, Firing)>) {
        let Some(parent_id) = self.parents.get(&firing.trigger_id).copied() else {
            if let Some(automation) = self.automations.get(&automation_id) {
                fired.push((Arc::clone(automation), firing));
            }
            return;
        };
        let Some(parent) = self.composites.get(&parent_id).cloned() else { return };
        let children: Vec<Uuid> = parent.children().iter().map(Trigger::id).collect();
        let (needed, within) = match &parent {
            Trigger::Compound(c) => (c.require.needed(children.len()), c.within),
            Trigger::Sequence(s) => (children.len(), s.within),
            Trigger::Event(_) => return,
        };
        let parent_firing = |triggering_firings: Vec<Firing>, triggering_event| Firing {
            id: Uuid::now_v7(),
            trigger_id: parent_id,
            posture: None,
            triggered: time::now(),
            triggering_labels: BTreeMap::new(),
            triggering_event,
            triggering_firings,
        };
        if needed <= 1 {
            let event = firing.triggering_event.clone();
            self.fire(automation_id, parent_firing(vec![firing], event), fired);
            return;
        }
        let collected = self.child_firings.entry(parent_id).or_default();
        if let Some(within) = within {
            let oldest = firing.triggered - seconds(within);
            collected.retain(|f| f.triggered >= oldest);
        }
        // One firing per child: a newer one replaces the older.
        collected.retain(|f| f.trigger_id != firing.trigger_id);
        collected.push(firing.clone());
        let ready = match &parent {
            Trigger::Sequence(_) => {
                let mut in_order = collected.clone();
                in_order.sort_by_key(|f| f.triggered);
                in_order.iter().map(|f| f.trigger_id).collect::<Vec<_>>() == children
            }
            _ => collected.len() >= needed,
        };
        if ready {
            let firings = std::mem::take(collected);
            self.fire(automation_id, parent_firing(firings, firing.triggering_event.clone()), fired);
        }
    }
}

/// The event a window remembers as its last: only proactive triggers need it (they fire
/// without an event of their own); reactive ones fire on the event at hand, so their
/// windows hold no event and stay small.
fn kept<'e>(trigger: &EventTrigger, event: &'e Arc<ReceivedEvent>) -> Option<&'e Arc<ReceivedEvent>> {
    (trigger.posture == Posture::Proactive).then_some(event)
}

fn seconds(s: f64) -> chrono::Duration {
    chrono::Duration::microseconds((s * 1_000_000.0) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prefect_domain::events::Resource;
    use serde_json::json;

    fn automation(trigger: serde_json::Value) -> Automation {
        let create: prefect_domain::automation::AutomationCreate =
            serde_json::from_value(json!({"name": "a", "trigger": trigger, "actions": [{"type": "do-nothing"}]})).expect("valid automation");
        create.definition().into_automation(Uuid::new_v4(), time::now(), time::now())
    }

    fn event(name: &str, resource: &str, occurred: DateTime) -> Arc<ReceivedEvent> {
        Arc::new(ReceivedEvent {
            occurred,
            event: name.to_owned(),
            resource: Resource::with_id(resource),
            related: Vec::new(),
            payload: Default::default(),
            id: Uuid::new_v4(),
            follows: None,
            received: occurred,
        })
    }

    fn loaded(automations: Vec<Automation>) -> Evaluator {
        let mut evaluator = Evaluator::default();
        evaluator.load(automations);
        evaluator
    }

    #[test]
    fn an_immediate_reactive_trigger_fires_on_every_matching_event_once() {
        let mut e = loaded(vec![automation(json!({"posture": "Reactive", "expect": ["x.*"], "match": {"prefect.resource.id": "thing.*"}}))]);
        let now = time::now();
        let mut fired = Vec::new();
        let first = event("x.happened", "thing.1", now);
        e.on_event(&first, &mut fired);
        e.on_event(&first, &mut fired); // redelivered: ignored
        e.on_event(&event("y.happened", "thing.1", now), &mut fired);
        e.on_event(&event("x.happened", "other.1", now), &mut fired);
        e.on_event(&event("x.again", "thing.2", now), &mut fired);
        assert_eq!(fired.len(), 2);
        assert_eq!(fired[0].1.triggering_event.as_ref().map(|ev| ev.id), Some(first.id));
        assert_eq!(fired[0].1.posture, Some(Posture::Reactive));
    }

    #[test]
    fn a_threshold_within_a_window_fires_once_per_bucket_then_stays_quiet_for_the_window() {
        let mut e =
            loaded(vec![automation(json!({"posture": "Reactive", "expect": ["x"], "threshold": 3, "within": 60, "for_each": ["prefect.resource.id"]}))]);
        let t0 = time::now();
        let mut fired = Vec::new();
        for i in 0..3 {
            e.on_event(&event("x", "a", t0 + seconds(i as f64)), &mut fired);
            e.on_event(&event("x", "b", t0 + seconds(i as f64)), &mut fired);
            assert_eq!(fired.len(), if i < 2 { 0 } else { 2 });
        }
        assert_eq!(fired[0].1.triggering_labels["prefect.resource.id"], "a");
        assert_eq!(fired[1].1.triggering_labels["prefect.resource.id"], "b");
        // Events before the first window's end fall in the quiet period.
        for i in 3..6 {
            e.on_event(&event("x", "a", t0 + seconds(i as f64)), &mut fired);
        }
        assert_eq!(fired.len(), 2);
        // The next window opens when the first one ends.
        for i in 0..3 {
            e.on_event(&event("x", "a", t0 + seconds(61.0 + i as f64)), &mut fired);
        }
        assert_eq!(fired.len(), 3);
    }

    #[test]
    fn a_proactive_trigger_fires_when_the_window_closes_without_enough_events() {
        let mut e = loaded(vec![automation(json!({"posture": "Proactive", "expect": ["heartbeat"], "threshold": 1, "within": 30}))]);
        let t0 = time::now();
        let mut fired = Vec::new();
        e.on_tick(t0, &mut fired); // arms [t0, t0+30)
        e.on_event(&event("heartbeat", "svc", t0 + seconds(5.0)), &mut fired);
        e.on_tick(t0 + seconds(31.0), &mut fired);
        assert!(fired.is_empty(), "the heartbeat arrived in time");
        // The next window passes in silence.
        e.on_tick(t0 + seconds(62.0), &mut fired);
        e.on_tick(t0 + seconds(93.0), &mut fired);
        assert_eq!(fired.len(), 1);
        assert!(fired[0].1.triggering_event.is_none());
        assert_eq!(fired[0].1.posture, Some(Posture::Proactive));
    }

    #[test]
    fn after_events_open_the_window_that_expected_events_must_land_in() {
        let mut e = loaded(vec![automation(
            json!({"posture": "Reactive", "after": ["started"], "expect": ["finished"], "within": 60, "for_each": ["prefect.resource.id"]}),
        )]);
        let t0 = time::now();
        let mut fired = Vec::new();
        e.on_event(&event("finished", "job.1", t0), &mut fired);
        assert!(fired.is_empty(), "nothing opened a window");
        e.on_event(&event("started", "job.1", t0 + seconds(1.0)), &mut fired);
        e.on_event(&event("finished", "job.2", t0 + seconds(2.0)), &mut fired);
        assert!(fired.is_empty(), "job.2 never started");
        e.on_event(&event("finished", "job.1", t0 + seconds(3.0)), &mut fired);
        assert_eq!(fired.len(), 1);
        e.on_event(&event("finished", "job.1", t0 + seconds(4.0)), &mut fired);
        assert_eq!(fired.len(), 1, "the window closed with the firing");
    }

    #[test]
    fn compound_and_sequence_triggers_collect_their_childrens_firings() {
        let compound = automation(json!({"type": "compound", "require": "all", "within": 60, "triggers": [
            {"posture": "Reactive", "expect": ["a"]}, {"posture": "Reactive", "expect": ["b"]}]}));
        let sequence = automation(json!({"type": "sequence", "within": null, "triggers": [
            {"posture": "Reactive", "expect": ["a"]}, {"posture": "Reactive", "expect": ["b"]}]}));
        let (compound_id, sequence_id) = (compound.id, sequence.id);
        let mut e = loaded(vec![compound, sequence]);
        let t0 = time::now();
        let mut fired = Vec::new();
        e.on_event(&event("b", "r", t0), &mut fired);
        assert!(fired.is_empty());
        e.on_event(&event("a", "r", t0), &mut fired);
        // The compound has both now; the sequence saw b before a.
        assert_eq!(fired.iter().map(|(a, _)| a.id).collect::<Vec<_>>(), [compound_id]);
        assert_eq!(fired[0].1.triggering_firings.len(), 2);
        assert_eq!(fired[0].1.posture, None);
        std::thread::sleep(Duration::from_millis(2));
        e.on_event(&event("b", "r", t0), &mut fired);
        assert_eq!(fired.iter().map(|(a, _)| a.id).collect::<Vec<_>>(), [compound_id, sequence_id]);
    }

    #[test]
    fn windows_beyond_the_limit_are_not_opened_until_others_close() {
        let mut e = Evaluator::with_max_buckets(2);
        e.load(vec![automation(json!({"posture": "Reactive", "expect": ["x"], "threshold": 2, "within": 60, "for_each": ["prefect.resource.id"]}))]);
        let t0 = time::now();
        let mut fired = Vec::new();
        for r in ["a", "b", "c"] {
            e.on_event(&event("x", r, t0), &mut fired);
        }
        assert_eq!(e.refused_buckets(), 1, "c found no room");
        e.on_event(&event("x", "a", t0 + seconds(1.0)), &mut fired);
        assert_eq!(fired.len(), 1, "open windows still count");
        // Once the windows close and are swept, new ones open again.
        e.on_tick(t0 + seconds(300.0), &mut fired);
        e.on_event(&event("x", "c", t0 + seconds(301.0)), &mut fired);
        assert_eq!(e.refused_buckets(), 1);
    }

    #[test]
    fn reloading_keeps_progress_of_unchanged_triggers_and_forgets_removed_ones() {
        let a = automation(json!({"posture": "Reactive", "expect": ["x"], "threshold": 2, "within": 60}));
        let mut e = loaded(vec![a.clone()]);
        let t0 = time::now();
        let mut fired = Vec::new();
        e.on_event(&event("x", "r", t0), &mut fired);
        e.load(vec![a.clone()]);
        e.on_event(&event("x", "r", t0 + seconds(1.0)), &mut fired);
        assert_eq!(fired.len(), 1, "the count survived the reload");
        e.load(Vec::new());
        assert!(e.buckets.is_empty() && e.leaves.is_empty());
        let disabled = Automation { enabled: false, ..a };
        e.load(vec![disabled]);
        e.on_event(&event("x", "r", t0 + seconds(2.0)), &mut fired);
        assert_eq!(fired.len(), 1);
    }
}
