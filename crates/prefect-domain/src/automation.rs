//! Automations: a trigger over events, and the actions taken when it fires.
//!
//! The shapes follow Prefect's server schemas: an [`AutomationCreate`] names a
//! [`Trigger`] (an event trigger, or a compound or sequence of triggers) and lists
//! [`Action`]s. Trigger matching is pure and lives here too, so the triggers
//! service and its tests share one definition of "this event counts".

use std::collections::BTreeMap;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::events::{ReceivedEvent, Resource, ResourceSpecification};
use crate::filters::{Operator, TagsFilter};
use crate::state::StateType;
use crate::time::DateTime;

/// A stored automation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Automation {
    pub name: String,
    pub description: String,
    pub enabled: bool,
    pub tags: Vec<String>,
    pub trigger: Trigger,
    pub actions: Vec<Action>,
    pub actions_on_trigger: Vec<Action>,
    pub actions_on_resolve: Vec<Action>,
    pub id: Uuid,
    pub created: DateTime,
    pub updated: DateTime,
}

/// What an automation is, without its identity: the body of `PUT /automations/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AutomationUpdate {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    #[serde(default)]
    pub tags: Vec<String>,
    pub trigger: Trigger,
    pub actions: Vec<Action>,
    #[serde(default)]
    pub actions_on_trigger: Vec<Action>,
    #[serde(default)]
    pub actions_on_resolve: Vec<Action>,
}

/// Body of `POST /automations/`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AutomationCreate {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    #[serde(default)]
    pub tags: Vec<String>,
    pub trigger: Trigger,
    pub actions: Vec<Action>,
    #[serde(default)]
    pub actions_on_trigger: Vec<Action>,
    #[serde(default)]
    pub actions_on_resolve: Vec<Action>,
    /// The resource (e.g. `prefect.deployment.<id>`) this automation belongs to; it is
    /// deleted with `DELETE /automations/owned-by/{resource_id}`.
    #[serde(default)]
    pub owner_resource: Option<String>,
}

impl AutomationCreate {
    /// The automation's definition, without its owner.
    pub fn definition(&self) -> AutomationUpdate {
        AutomationUpdate {
            name: self.name.clone(),
            description: self.description.clone(),
            enabled: self.enabled,
            tags: self.tags.clone(),
            trigger: self.trigger.clone(),
            actions: self.actions.clone(),
            actions_on_trigger: self.actions_on_trigger.clone(),
            actions_on_resolve: self.actions_on_resolve.clone(),
        }
    }
}

/// Body of `PATCH /automations/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AutomationPartialUpdate {
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
}

fn enabled_by_default() -> bool {
    true
}

impl AutomationUpdate {
    /// Prefect's checks beyond the field types: actions name their targets as their
    /// `source` requires, compound triggers can be satisfied, and an enabled automation
    /// cannot start a run of a deployment for every run it starts.
    pub fn validate(&self) -> crate::Result<()> {
        self.trigger.validate("trigger")?;
        for (list, actions) in [("actions", &self.actions), ("actions_on_trigger", &self.actions_on_trigger), ("actions_on_resolve", &self.actions_on_resolve)]
        {
            for (i, action) in actions.iter().enumerate() {
                action.validate(&format!("{list}.{i}"))?;
            }
        }
        self.prevent_run_deployment_loops()
    }

    /// Deployments run by `selected` run-deployment actions: the automation is related to them.
    pub fn selected_deployments(&self) -> Vec<Uuid> {
        let mut ids: Vec<Uuid> = self
            .actions
            .iter()
            .filter_map(|a| match a {
                Action::RunDeployment(run) if run.target.source == Source::Selected => run.target.deployment_id,
                _ => None,
            })
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }

    fn prevent_run_deployment_loops(&self) -> crate::Result<()> {
        let Trigger::Event(trigger) = &self.trigger else { return Ok(()) };
        if !self.enabled || trigger.posture != Posture::Reactive || !trigger.expect.iter().any(|e| e.starts_with("prefect.flow-run.")) {
            return Ok(());
        }
        const EVERY_DEPLOYMENT_RUN_SEES: [&str; 4] =
            ["prefect.flow-run.Scheduled", "prefect.flow-run.Pending", "prefect.flow-run.Running", "prefect.flow-run.*"];
        if !trigger.expect.iter().any(|e| EVERY_DEPLOYMENT_RUN_SEES.contains(&e.as_str())) {
            return Ok(());
        }
        for action in &self.actions {
            let Action::RunDeployment(run) = action else { continue };
            match run.target.source {
                Source::Inferred => {
                    return Err(crate::Error::invalid(
                        "actions",
                        "Running an inferred deployment from a flow run state change event will lead to an infinite loop of flow runs.  Please choose a specific deployment and add additional filtering labels to the match or match_related for this automation's trigger.",
                    ));
                }
                Source::Selected => {
                    if matches_every_resource_of_kind(&trigger.match_, "prefect.flow-run")
                        && trigger.match_related.specs().iter().any(|s| matches_every_resource_of_kind(s, "prefect.flow-run"))
                    {
                        return Err(crate::Error::invalid(
                            "actions",
                            "Running a selected deployment from a flow run state change event may lead to an infinite loop of flow runs.  Please include additional filtering labels on either match or match_related to narrow down which flow runs will trigger this automation to exclude flow runs from the deployment you've selected.",
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// The stored automation this definition describes.
    pub fn into_automation(self, id: Uuid, created: DateTime, updated: DateTime) -> Automation {
        Automation {
            name: self.name,
            description: self.description,
            enabled: self.enabled,
            tags: self.tags,
            trigger: self.trigger,
            actions: self.actions,
            actions_on_trigger: self.actions_on_trigger,
            actions_on_resolve: self.actions_on_resolve,
            id,
            created,
            updated,
        }
    }
}

fn matches_every_resource_of_kind(spec: &ResourceSpecification, kind: &str) -> bool {
    if spec.0.is_empty() {
        return true;
    }
    let wildcard = format!("{kind}.*");
    spec.0.len() == 1 && spec.0.get(crate::events::RESOURCE_ID).is_some_and(|ids| ids.values().contains(&wildcard.as_str()))
}

// ---------------------------------------------------------------------------- triggers

/// Whether a trigger responds to the presence of events or to their absence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Posture {
    Reactive,
    Proactive,
}

/// The criteria an automation waits for.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type")]
pub enum Trigger {
    #[serde(rename = "event")]
    Event(EventTrigger),
    #[serde(rename = "compound")]
    Compound(CompoundTrigger),
    #[serde(rename = "sequence")]
    Sequence(SequenceTrigger),
}

impl<'de> Deserialize<'de> for Trigger {
    /// `type` may be left out for an event trigger, as Prefect's schema defaults it.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut value = Map::<String, Value>::deserialize(deserializer)?;
        let kind = match value.remove("type") {
            None => "event".to_owned(),
            Some(Value::String(kind)) => kind,
            Some(other) => return Err(D::Error::custom(format!("invalid trigger type {other}"))),
        };
        let value = Value::Object(value);
        match kind.as_str() {
            "event" => EventTrigger::deserialize(value).map(Trigger::Event),
            "compound" => CompoundTrigger::deserialize(value).map(Trigger::Compound),
            "sequence" => SequenceTrigger::deserialize(value).map(Trigger::Sequence),
            other => return Err(D::Error::custom(format!("unknown variant `{other}`, expected one of `event`, `compound`, `sequence`"))),
        }
        .map_err(D::Error::custom)
    }
}

impl Trigger {
    pub fn id(&self) -> Uuid {
        match self {
            Trigger::Event(t) => t.id,
            Trigger::Compound(t) => t.id,
            Trigger::Sequence(t) => t.id,
        }
    }

    /// `event`, `compound` or `sequence`.
    pub fn kind(&self) -> &'static str {
        match self {
            Trigger::Event(_) => "event",
            Trigger::Compound(_) => "compound",
            Trigger::Sequence(_) => "sequence",
        }
    }

    /// The child triggers of a compound or sequence trigger.
    pub fn children(&self) -> &[Trigger] {
        match self {
            Trigger::Event(_) => &[],
            Trigger::Compound(t) => &t.triggers,
            Trigger::Sequence(t) => &t.triggers,
        }
    }

    /// Gives this trigger and every child a new id (the server ignores client-chosen ids).
    pub fn reset_ids(&mut self) {
        match self {
            Trigger::Event(t) => t.id = Uuid::new_v4(),
            Trigger::Compound(t) => {
                t.id = Uuid::new_v4();
                t.triggers.iter_mut().for_each(Trigger::reset_ids);
            }
            Trigger::Sequence(t) => {
                t.id = Uuid::new_v4();
                t.triggers.iter_mut().for_each(Trigger::reset_ids);
            }
        }
    }

    /// Every event trigger in this trigger, depth first.
    pub fn event_triggers(&self) -> Vec<&EventTrigger> {
        match self {
            Trigger::Event(t) => vec![t],
            Trigger::Compound(_) | Trigger::Sequence(_) => self.children().iter().flat_map(Trigger::event_triggers).collect(),
        }
    }

    fn validate(&self, field: &str) -> crate::Result<()> {
        if let Trigger::Compound(t) = self
            && let Require::Count(n) = t.require
        {
            if n < 1 {
                return Err(crate::Error::invalid(field, "Value error, require must be at least 1"));
            }
            if n as usize > t.triggers.len() {
                return Err(crate::Error::invalid(field, "Value error, require must be less than or equal to the number of triggers"));
            }
        }
        for (i, child) in self.children().iter().enumerate() {
            child.validate(&format!("{field}.triggers.{i}"))?;
        }
        Ok(())
    }
}

/// `match_related`: one specification, or several that must all be satisfied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum RelatedSpecification {
    One(ResourceSpecification),
    All(Vec<ResourceSpecification>),
}

impl Default for RelatedSpecification {
    fn default() -> Self {
        RelatedSpecification::One(ResourceSpecification::default())
    }
}

impl RelatedSpecification {
    pub fn specs(&self) -> &[ResourceSpecification] {
        match self {
            RelatedSpecification::One(spec) => std::slice::from_ref(spec),
            RelatedSpecification::All(specs) => specs,
        }
    }
}

/// Fires on the presence (Reactive) or absence (Proactive) of matching events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(try_from = "EventTriggerInput")]
pub struct EventTrigger {
    pub id: Uuid,
    /// Labels the event's own resource must carry.
    #[serde(rename = "match")]
    pub match_: ResourceSpecification,
    /// Labels some related resource must carry (each specification, when a list).
    pub match_related: RelatedSpecification,
    /// Events that must be seen before the trigger counts (Proactive: arm it).
    pub after: Vec<String>,
    /// Events that count; empty counts every event.
    pub expect: Vec<String>,
    /// Labels whose values split the trigger into independent buckets.
    pub for_each: Vec<String>,
    pub posture: Posture,
    pub threshold: i64,
    /// Seconds.
    pub within: f64,
}

/// [`EventTrigger`] as a client may send it: defaults and Prefect's coercions apply.
#[derive(Deserialize)]
struct EventTriggerInput {
    #[serde(default = "Uuid::new_v4")]
    id: Uuid,
    #[serde(default, rename = "match")]
    match_: ResourceSpecification,
    #[serde(default)]
    match_related: RelatedSpecification,
    #[serde(default)]
    after: Vec<String>,
    #[serde(default)]
    expect: Vec<String>,
    #[serde(default)]
    for_each: Vec<String>,
    posture: String,
    #[serde(default = "one")]
    threshold: i64,
    #[serde(default, deserialize_with = "optional_seconds")]
    within: Option<Option<f64>>,
}

fn one() -> i64 {
    1
}

/// Proactive triggers wait at least this long (and by default exactly this long).
const MIN_PROACTIVE_WITHIN_SECONDS: f64 = 10.0;

impl TryFrom<EventTriggerInput> for EventTrigger {
    type Error = String;

    fn try_from(input: EventTriggerInput) -> Result<Self, String> {
        let posture = match input.posture.as_str() {
            "Reactive" => Posture::Reactive,
            "Proactive" => Posture::Proactive,
            "Metric" => return Err("Metric triggers are not available in Prefect's open-source server".to_owned()),
            other => return Err(format!("unknown variant `{other}`, expected `Reactive` or `Proactive`")),
        };
        let within = match input.within {
            Some(None) => return Err("`within` should be a valid timedelta".to_owned()),
            Some(Some(w)) if w < 0.0 => return Err("`within` should be greater than or equal to 0".to_owned()),
            Some(Some(w)) => w,
            None => 0.0,
        };
        let within = match posture {
            Posture::Proactive if within == 0.0 => MIN_PROACTIVE_WITHIN_SECONDS,
            Posture::Proactive if within < MIN_PROACTIVE_WITHIN_SECONDS => {
                return Err("`within` for Proactive triggers must be greater than or equal to 10 seconds".to_owned());
            }
            _ => within,
        };
        Ok(EventTrigger {
            id: input.id,
            match_: input.match_,
            match_related: input.match_related,
            after: dedup(input.after),
            expect: dedup(input.expect),
            for_each: dedup(input.for_each),
            posture,
            threshold: input.threshold,
            within,
        })
    }
}

/// Prefect keeps these as sets: duplicates collapse, the first order is kept.
fn dedup(values: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    values.into_iter().filter(|v| seen.insert(v.clone())).collect()
}

impl EventTrigger {
    /// Whether the event's name is one this trigger counts (every event when `expect` is empty).
    pub fn expects(&self, event: &str) -> bool {
        self.expect.is_empty() || self.expect.iter().any(|pattern| label_matches(pattern, Some(event)))
    }

    /// Whether the event's name is one that arms this trigger (never when `after` is empty).
    pub fn starts_after(&self, event: &str) -> bool {
        self.after.iter().any(|pattern| label_matches(pattern, Some(event)))
    }

    /// Whether the event is about resources this trigger covers (`match` and `match_related`).
    pub fn covers_resources(&self, event: &ReceivedEvent) -> bool {
        spec_includes(&self.match_, std::iter::once(&event.resource)) && self.match_related.specs().iter().all(|spec| spec_includes(spec, event.related.iter()))
    }

    /// Whether the event could matter to this trigger at all: its name is expected or
    /// arms the trigger, and its resources are covered.
    pub fn covers(&self, event: &ReceivedEvent) -> bool {
        (self.expects(&event.event) || self.starts_after(&event.event)) && self.covers_resources(event)
    }

    /// The bucket an event falls in: the values of the `for_each` labels, sorted by label.
    pub fn bucketing_key(&self, event: &ReceivedEvent) -> Vec<String> {
        let mut labels: Vec<&String> = self.for_each.iter().collect();
        labels.sort();
        labels.into_iter().map(|label| find_resource_label(event, label).unwrap_or_default().to_owned()).collect()
    }

    /// The `for_each` labels and their values in an event, as a firing reports them.
    pub fn triggering_labels(&self, event: &ReceivedEvent) -> BTreeMap<String, String> {
        self.for_each.iter().map(|label| (label.clone(), find_resource_label(event, label).unwrap_or_default().to_owned())).collect()
    }

    /// Whether `count` events in a window fire the trigger.
    pub fn meets_threshold(&self, count: i64) -> bool {
        match self.posture {
            Posture::Reactive => count >= self.threshold,
            Posture::Proactive => count < self.threshold,
        }
    }

    /// A reactive trigger with no window fires on each event that reaches the threshold.
    pub fn immediate(&self) -> bool {
        self.posture == Posture::Reactive && self.within == 0.0
    }
}

/// A label's value in the event's resource, or with `related:<role>:<label>`, in the
/// first related resource with that role.
pub fn find_resource_label<'e>(event: &'e ReceivedEvent, label: &str) -> Option<&'e str> {
    if let Some(rest) = label.strip_prefix("related:")
        && let Some((role, related_label)) = rest.rsplit_once(':')
    {
        return event.related.iter().find(|r| r.role() == role).and_then(|r| r.get(related_label));
    }
    event.resource.get(label)
}

/// A specification holds for one of `candidates` (an empty one holds for anything).
pub fn spec_includes<'r>(spec: &ResourceSpecification, mut candidates: impl Iterator<Item = &'r Resource>) -> bool {
    spec.0.is_empty() || candidates.any(|resource| spec_matches(spec, resource))
}

/// Every label of the specification has one of its patterns match the resource's value.
pub fn spec_matches(spec: &ResourceSpecification, resource: &Resource) -> bool {
    spec.0.iter().all(|(label, patterns)| patterns.values().iter().any(|pattern| label_matches(pattern, resource.get(label))))
}

/// Prefect's trigger pattern: a shell-style glob (`*`, `?`, `[...]`) that a leading `!`
/// negates; a missing value never matches.
pub fn label_matches(pattern: &str, value: Option<&str>) -> bool {
    let Some(value) = value else { return false };
    let (negated, pattern) = match pattern.strip_prefix('!') {
        Some(rest) => (true, rest),
        None => (false, pattern),
    };
    glob_matches(pattern, value) != negated
}

/// `fnmatch.fnmatchcase`: `*` any run of characters, `?` one character, `[abc]`, `[a-z]`
/// and `[!abc]` one character of (or not of) a set; anything else matches itself.
fn glob_matches(pattern: &str, value: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let value: Vec<char> = value.chars().collect();
    // Iterative matching with one backtrack point for the last `*` (linear in practice).
    let (mut p, mut v) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while v < value.len() {
        if p < pattern.len() {
            match pattern[p] {
                '*' => {
                    star = Some((p, v));
                    p += 1;
                    continue;
                }
                '?' => {
                    p += 1;
                    v += 1;
                    continue;
                }
                '[' => {
                    if let Some((matched, next)) = class_matches(&pattern, p, value[v]) {
                        if matched {
                            p = next;
                            v += 1;
                            continue;
                        }
                    } else if value[v] == '[' {
                        // An unclosed `[` is a literal.
                        p += 1;
                        v += 1;
                        continue;
                    }
                }
                c if c == value[v] => {
                    p += 1;
                    v += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((star_p, star_v)) => {
                p = star_p + 1;
                v = star_v + 1;
                star = Some((star_p, star_v + 1));
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

/// Whether `c` is in the `[...]` class starting at `pattern[start]`, and the index after
/// the class; `None` when the class is not closed.
fn class_matches(pattern: &[char], start: usize, c: char) -> Option<(bool, usize)> {
    let mut i = start + 1;
    let negated = pattern.get(i) == Some(&'!');
    if negated {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    while i < pattern.len() {
        let ch = pattern[i];
        if ch == ']' && !first {
            return Some((matched != negated, i + 1));
        }
        first = false;
        if pattern.get(i + 1) == Some(&'-') && pattern.get(i + 2).is_some_and(|&end| end != ']') {
            if ch <= c && c <= pattern[i + 2] {
                matched = true;
            }
            i += 3;
        } else {
            if ch == c {
                matched = true;
            }
            i += 1;
        }
    }
    None
}

/// Fires when enough of its child triggers fire within `within` seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CompoundTrigger {
    #[serde(default = "Uuid::new_v4")]
    pub id: Uuid,
    #[cfg_attr(feature = "openapi", schema(no_recursion))]
    pub triggers: Vec<Trigger>,
    /// Seconds; `null` for no limit. Required, as in Prefect.
    #[serde(deserialize_with = "nullable_seconds")]
    pub within: Option<f64>,
    /// An integer, `"any"` or `"all"`.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub require: Require,
}

/// Fires when its child triggers fire in order within `within` seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SequenceTrigger {
    #[serde(default = "Uuid::new_v4")]
    pub id: Uuid,
    #[cfg_attr(feature = "openapi", schema(no_recursion))]
    pub triggers: Vec<Trigger>,
    /// Seconds; `null` for no limit. Required, as in Prefect.
    #[serde(deserialize_with = "nullable_seconds")]
    pub within: Option<f64>,
}

/// How many child triggers of a compound trigger must fire: a number, `any` or `all`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Require {
    Count(i64),
    Any,
    All,
}

impl Require {
    /// Child firings needed out of `children`.
    pub fn needed(self, children: usize) -> usize {
        match self {
            Require::Any => 1,
            Require::All => children,
            Require::Count(n) => usize::try_from(n).unwrap_or(0),
        }
    }
}

impl Serialize for Require {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Require::Count(n) => s.serialize_i64(*n),
            Require::Any => s.serialize_str("any"),
            Require::All => s.serialize_str("all"),
        }
    }
}

impl<'de> Deserialize<'de> for Require {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::String(s) if s == "any" => Ok(Require::Any),
            Value::String(s) if s == "all" => Ok(Require::All),
            Value::Number(n) if n.is_i64() => Ok(Require::Count(n.as_i64().unwrap_or_default())),
            other => Err(D::Error::custom(format!("require should be an integer, 'any' or 'all', not {other}"))),
        }
    }
}

/// A duration as Prefect accepts it: seconds (number or numeric string) or ISO 8601.
fn seconds_value(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok().or_else(|| crate::time::iso_duration_seconds(s.trim())),
        _ => None,
    }
}

fn nullable_seconds<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<f64>, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::Null => Ok(None),
        value => seconds_value(&value).map(Some).ok_or_else(|| D::Error::custom(format!("invalid duration {value}"))),
    }
}

/// Present-but-null is kept apart from absent (`Some(None)`), for Prefect's message.
fn optional_seconds<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Option<f64>>, D::Error> {
    nullable_seconds(deserializer).map(Some)
}

fn default_seconds<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    let value = Value::deserialize(deserializer)?;
    match seconds_value(&value) {
        Some(s) if s >= 0.0 => Ok(s),
        _ => Err(D::Error::custom(format!("invalid non-negative duration {value}"))),
    }
}

// ---------------------------------------------------------------------------- actions

/// Whether an action's target is chosen (`selected`, with its id) or taken from the
/// triggering event (`inferred`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Source {
    #[default]
    Selected,
    Inferred,
}

/// What an automation does when it fires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type")]
pub enum Action {
    #[serde(rename = "do-nothing")]
    DoNothing(NoFields),
    #[serde(rename = "run-deployment")]
    RunDeployment(RunDeployment),
    #[serde(rename = "pause-deployment")]
    PauseDeployment(DeploymentTarget),
    #[serde(rename = "resume-deployment")]
    ResumeDeployment(DeploymentTarget),
    #[serde(rename = "cancel-flow-run")]
    CancelFlowRun(NoFields),
    #[serde(rename = "change-flow-run-state")]
    ChangeFlowRunState(ChangeFlowRunState),
    #[serde(rename = "delete-flow-run")]
    DeleteFlowRun(NoFields),
    #[serde(rename = "suspend-flow-run")]
    SuspendFlowRun(NoFields),
    #[serde(rename = "resume-flow-run")]
    ResumeFlowRun(NoFields),
    #[serde(rename = "call-webhook")]
    CallWebhook(CallWebhook),
    #[serde(rename = "send-notification")]
    SendNotification(SendNotification),
    #[serde(rename = "pause-work-pool")]
    PauseWorkPool(WorkPoolTarget),
    #[serde(rename = "resume-work-pool")]
    ResumeWorkPool(WorkPoolTarget),
    #[serde(rename = "pause-work-queue")]
    PauseWorkQueue(WorkQueueTarget),
    #[serde(rename = "resume-work-queue")]
    ResumeWorkQueue(WorkQueueTarget),
    #[serde(rename = "pause-automation")]
    PauseAutomation(AutomationTarget),
    #[serde(rename = "resume-automation")]
    ResumeAutomation(AutomationTarget),
}

impl Action {
    /// The wire name of the action's type, e.g. `run-deployment`.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::DoNothing(_) => "do-nothing",
            Action::RunDeployment(_) => "run-deployment",
            Action::PauseDeployment(_) => "pause-deployment",
            Action::ResumeDeployment(_) => "resume-deployment",
            Action::CancelFlowRun(_) => "cancel-flow-run",
            Action::ChangeFlowRunState(_) => "change-flow-run-state",
            Action::DeleteFlowRun(_) => "delete-flow-run",
            Action::SuspendFlowRun(_) => "suspend-flow-run",
            Action::ResumeFlowRun(_) => "resume-flow-run",
            Action::CallWebhook(_) => "call-webhook",
            Action::SendNotification(_) => "send-notification",
            Action::PauseWorkPool(_) => "pause-work-pool",
            Action::ResumeWorkPool(_) => "resume-work-pool",
            Action::PauseWorkQueue(_) => "pause-work-queue",
            Action::ResumeWorkQueue(_) => "resume-work-queue",
            Action::PauseAutomation(_) => "pause-automation",
            Action::ResumeAutomation(_) => "resume-automation",
        }
    }

    fn validate(&self, field: &str) -> crate::Result<()> {
        let (source, has_id, id_field) = match self {
            Action::RunDeployment(RunDeployment { target, .. }) | Action::PauseDeployment(target) | Action::ResumeDeployment(target) => {
                (target.source, target.deployment_id.is_some(), "deployment_id")
            }
            Action::PauseWorkPool(t) | Action::ResumeWorkPool(t) => (t.source, t.work_pool_id.is_some(), "work_pool_id"),
            Action::PauseWorkQueue(t) | Action::ResumeWorkQueue(t) => (t.source, t.work_queue_id.is_some(), "work_queue_id"),
            Action::PauseAutomation(t) | Action::ResumeAutomation(t) => (t.source, t.automation_id.is_some(), "automation_id"),
            _ => return Ok(()),
        };
        match (source, has_id) {
            (Source::Selected, false) => Err(crate::Error::invalid(field, format!("Value error, {id_field} is required"))),
            (Source::Inferred, true) => Err(crate::Error::invalid(field, format!("Value error, {id_field} is not allowed"))),
            _ => Ok(()),
        }
    }
}

/// An action with no settings of its own (the flow run is the triggering event's).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NoFields {}

/// The deployment an action is about.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeploymentTarget {
    #[serde(default)]
    pub source: Source,
    #[serde(default)]
    pub deployment_id: Option<Uuid>,
}

/// `run-deployment`: creates a flow run of the deployment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunDeployment {
    #[serde(flatten)]
    pub target: DeploymentTarget,
    /// Parameters (values may be Prefect templates); `null` uses the deployment's.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub parameters: Option<Map<String, Value>>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub job_variables: Option<Map<String, Value>>,
    /// Seconds after the firing that the run is scheduled for.
    #[serde(default, deserialize_with = "default_seconds")]
    pub schedule_after: f64,
}

/// `change-flow-run-state`: proposes a state for the triggering event's flow run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChangeFlowRunState {
    #[serde(default)]
    pub name: Option<String>,
    pub state: StateType,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub force: bool,
}

/// `call-webhook`: posts the rendered payload through a webhook block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CallWebhook {
    pub block_document_id: Uuid,
    #[serde(default, deserialize_with = "string_or_json")]
    pub payload: String,
}

/// Older clients send the payload as a JSON object; Prefect keeps it as indented text.
fn string_or_json<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    Ok(match Value::deserialize(deserializer)? {
        Value::Null => String::new(),
        Value::String(s) => s,
        other => serde_json::to_string_pretty(&other).map_err(D::Error::custom)?,
    })
}

/// `send-notification`: sends the rendered subject and body through a notification block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SendNotification {
    pub block_document_id: Uuid,
    #[serde(default = "default_subject")]
    pub subject: String,
    pub body: String,
}

fn default_subject() -> String {
    "Prefect automated notification".to_owned()
}

/// The work pool an action is about.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkPoolTarget {
    #[serde(default)]
    pub source: Source,
    #[serde(default)]
    pub work_pool_id: Option<Uuid>,
}

/// The work queue an action is about.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkQueueTarget {
    #[serde(default)]
    pub source: Source,
    #[serde(default)]
    pub work_queue_id: Option<Uuid>,
}

/// The automation an action is about.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AutomationTarget {
    #[serde(default)]
    pub source: Source,
    #[serde(default)]
    pub automation_id: Option<Uuid>,
}

// ---------------------------------------------------------------------------- filters

/// `automations` of `POST /automations/filter` and `/count`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct AutomationFilter {
    pub operator: Operator,
    pub id: Option<AutomationFilterId>,
    pub name: Option<AutomationFilterName>,
    pub created: Option<AutomationFilterCreated>,
    pub tags: Option<TagsFilter>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct AutomationFilterId {
    pub any_: Option<Vec<Uuid>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct AutomationFilterName {
    pub any_: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct AutomationFilterCreated {
    /// Created at or before.
    pub before_: Option<DateTime>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn create(body: Value) -> AutomationCreate {
        serde_json::from_value(body).expect("valid automation")
    }

    #[test]
    fn defaults_fill_in_as_prefect_serializes_them() {
        let created = create(json!({
            "name": "a",
            "trigger": {"match": {"prefect.resource.id": "prefect.flow-run.*"}, "expect": ["x", "x"], "posture": "Reactive"},
            "actions": [{"type": "run-deployment", "source": "inferred"}, {"type": "send-notification", "block_document_id": Uuid::nil(), "body": "b"}],
        }));
        let stored = created.definition().into_automation(Uuid::nil(), crate::time::now(), crate::time::now());
        let out = serde_json::to_value(&stored).expect("serializes");
        assert_eq!(out["description"], "");
        assert_eq!(out["enabled"], true);
        assert_eq!(out["trigger"]["type"], "event");
        assert_eq!(out["trigger"]["expect"], json!(["x"]));
        assert_eq!(out["trigger"]["match_related"], json!({}));
        assert_eq!(out["trigger"]["within"], json!(0.0));
        assert_eq!(out["trigger"]["threshold"], 1);
        assert_eq!(
            out["actions"][0],
            json!({"type": "run-deployment", "source": "inferred", "deployment_id": null, "parameters": null, "job_variables": null, "schedule_after": 0.0})
        );
        assert_eq!(out["actions"][1]["subject"], "Prefect automated notification");
        let back: Automation = serde_json::from_value(out).expect("reads back");
        assert_eq!(back, stored);
    }

    #[test]
    fn proactive_windows_default_to_ten_seconds_and_may_not_be_shorter() {
        let t: Trigger = serde_json::from_value(json!({"posture": "Proactive", "expect": ["a"]})).unwrap();
        assert!(matches!(t, Trigger::Event(ref e) if e.within == 10.0));
        assert!(serde_json::from_value::<Trigger>(json!({"posture": "Proactive", "within": 5})).is_err());
        let t: Trigger = serde_json::from_value(json!({"posture": "Reactive", "within": "PT1M"})).unwrap();
        assert!(matches!(t, Trigger::Event(ref e) if e.within == 60.0));
        assert!(serde_json::from_value::<Trigger>(json!({"posture": "Metric"})).is_err());
        assert!(serde_json::from_value::<Trigger>(json!({"posture": "Reactive", "within": null})).is_err());
    }

    #[test]
    fn composite_triggers_need_a_satisfiable_require_and_an_explicit_within() {
        let body = |require: Value| {
            json!({"name": "c", "actions": [{"type": "do-nothing"}],
                   "trigger": {"type": "compound", "require": require, "within": null, "triggers": [{"posture": "Reactive"}, {"posture": "Reactive"}]}})
        };
        assert!(create(body(json!("all"))).definition().validate().is_ok());
        assert!(create(body(json!(2))).definition().validate().is_ok());
        assert!(create(body(json!(3))).definition().validate().is_err());
        assert!(create(body(json!(0))).definition().validate().is_err());
        let missing_within = json!({"type": "sequence", "triggers": []});
        assert!(serde_json::from_value::<Trigger>(missing_within).is_err());
    }

    #[test]
    fn actions_name_their_target_as_their_source_requires() {
        let with = |action: Value| create(json!({"name": "a", "trigger": {"posture": "Reactive"}, "actions": [action]})).definition().validate();
        assert!(with(json!({"type": "pause-deployment"})).unwrap_err().to_string().contains("deployment_id is required"));
        assert!(with(json!({"type": "pause-work-queue", "source": "inferred", "work_queue_id": Uuid::nil()})).unwrap_err().to_string().contains("not allowed"));
        assert!(with(json!({"type": "pause-work-pool", "source": "inferred"})).is_ok());
        assert!(with(json!({"type": "resume-automation", "automation_id": Uuid::nil()})).is_ok());
        assert!(serde_json::from_value::<Action>(json!({"type": "change-flow-run-state"})).is_err());
        assert!(serde_json::from_value::<Action>(json!({"type": "launch-rocket"})).is_err());
    }

    #[test]
    fn runs_of_a_deployment_for_every_flow_run_event_are_refused() {
        let body = |action: Value, matching: Value| {
            create(json!({"name": "loop", "trigger": {"posture": "Reactive", "expect": ["prefect.flow-run.Running"], "match": matching}, "actions": [action]}))
        };
        let selected = json!({"type": "run-deployment", "deployment_id": Uuid::nil()});
        assert!(body(json!({"type": "run-deployment", "source": "inferred"}), json!({})).definition().validate().is_err());
        assert!(body(selected.clone(), json!({"prefect.resource.id": "prefect.flow-run.*"})).definition().validate().is_err());
        assert!(body(selected, json!({"prefect.resource.name": "nightly"})).definition().validate().is_ok());
    }

    #[test]
    fn patterns_are_globs_that_a_bang_negates() {
        assert!(label_matches("prefect.flow-run.*", Some("prefect.flow-run.123")));
        assert!(!label_matches("prefect.flow-run.*", Some("prefect.task-run.123")));
        assert!(label_matches("*.Completed", Some("prefect.flow-run.Completed")));
        assert!(label_matches("a?c", Some("abc")));
        assert!(label_matches("[ab]x", Some("bx")) && !label_matches("[!ab]x", Some("bx")));
        assert!(label_matches("[a-c]*", Some("beta")));
        assert!(label_matches("!prod", Some("dev")) && !label_matches("!prod", Some("prod")));
        assert!(!label_matches("!prod", None) && !label_matches("*", None));
        assert!(label_matches("*", Some("")));
    }

    fn event(name: &str, resource: Resource, related: Vec<Resource>) -> ReceivedEvent {
        let now = crate::time::now();
        ReceivedEvent { occurred: now, event: name.to_owned(), resource, related, payload: Map::new(), id: Uuid::new_v4(), follows: None, received: now }
    }

    #[test]
    fn triggers_cover_events_by_name_resource_and_related_resources() {
        let trigger: Trigger = serde_json::from_value(json!({
            "posture": "Reactive", "expect": ["prefect.flow-run.Failed"], "after": ["prefect.flow-run.Running"],
            "match": {"prefect.resource.id": "prefect.flow-run.*"},
            "match_related": [{"prefect.resource.role": "flow"}, {"prefect.resource.id": ["prefect.tag.a", "prefect.tag.b"]}],
            "for_each": ["related:flow:prefect.resource.name", "prefect.resource.id"],
        }))
        .unwrap();
        let Trigger::Event(trigger) = trigger else { unreachable!() };
        let run = Resource::with_id("prefect.flow-run.1");
        let flow = Resource::with_id("prefect.flow.9").label("prefect.resource.role", "flow").label("prefect.resource.name", "etl");
        let tag = Resource::with_id("prefect.tag.b").label("prefect.resource.role", "tag");
        let failed = event("prefect.flow-run.Failed", run.clone(), vec![flow.clone(), tag.clone()]);
        assert!(trigger.covers(&failed) && trigger.expects(&failed.event) && !trigger.starts_after(&failed.event));
        assert!(trigger.starts_after("prefect.flow-run.Running"));
        assert!(!trigger.covers(&event("prefect.flow-run.Failed", run.clone(), vec![flow.clone()])), "every related spec must hold");
        assert!(!trigger.covers(&event("prefect.flow-run.Completed", run, vec![flow, tag])));
        assert_eq!(trigger.bucketing_key(&failed), ["prefect.flow-run.1", "etl"]);
        assert_eq!(trigger.triggering_labels(&failed)["related:flow:prefect.resource.name"], "etl");
    }
}
