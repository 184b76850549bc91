//! Events: what happened to which resource, and the filters that read them back.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::time::DateTime;

/// The label every resource must carry.
pub const RESOURCE_ID: &str = "prefect.resource.id";
/// The label every related resource must carry.
pub const RESOURCE_ROLE: &str = "prefect.resource.role";
/// The label with a resource's display name.
pub const RESOURCE_NAME: &str = "prefect.resource.name";

/// Limits Prefect applies to incoming events.
#[derive(Debug, Clone, Copy)]
pub struct EventLimits {
    pub max_labels_per_resource: usize,
    pub max_related_resources: usize,
    pub max_event_name_length: usize,
    pub max_size_bytes: usize,
}

impl Default for EventLimits {
    fn default() -> Self {
        EventLimits { max_labels_per_resource: 500, max_related_resources: 100, max_event_name_length: 1024, max_size_bytes: 1_500_000 }
    }
}

/// A resource: a flat map of string labels that includes `prefect.resource.id`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct Resource(pub BTreeMap<String, String>);

impl Resource {
    /// A resource with only an id.
    pub fn with_id(id: impl Into<String>) -> Self {
        let mut labels = BTreeMap::new();
        labels.insert(RESOURCE_ID.to_owned(), id.into());
        Resource(labels)
    }

    /// Adds a label, builder style.
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.0.insert(key.into(), value.into());
        self
    }

    /// `prefect.resource.id` (empty if missing, which validation rejects).
    pub fn id(&self) -> &str {
        self.0.get(RESOURCE_ID).map_or("", String::as_str)
    }

    /// `prefect.resource.role` of a related resource.
    pub fn role(&self) -> &str {
        self.0.get(RESOURCE_ROLE).map_or("", String::as_str)
    }

    pub fn get(&self, label: &str) -> Option<&str> {
        self.0.get(label).map(String::as_str)
    }

    /// The object id of a `prefect.<kind>.<uuid>` resource, e.g. kind `prefect.task-run`.
    pub fn prefect_object_id(&self, kind: &str) -> Option<Uuid> {
        let rest = self.id().strip_prefix(kind)?.strip_prefix('.')?;
        Uuid::parse_str(rest).ok()
    }
}

/// An event as sent by a client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Event {
    pub occurred: DateTime,
    pub event: String,
    pub resource: Resource,
    #[serde(default)]
    pub related: Vec<Resource>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub payload: Map<String, Value>,
    pub id: Uuid,
    #[serde(default)]
    pub follows: Option<Uuid>,
}

impl Event {
    /// Applies Prefect's validation: resource ids and roles present, label and size limits.
    pub fn validate(&self, limits: &EventLimits) -> crate::Result<()> {
        if self.event.chars().count() > limits.max_event_name_length {
            return Err(crate::Error::invalid("event", format!("Event name must be at most {} characters", limits.max_event_name_length)));
        }
        validate_resource(&self.resource, "resource", limits)?;
        if self.related.len() > limits.max_related_resources {
            return Err(crate::Error::invalid("related", format!("The maximum number of related resources is {}", limits.max_related_resources)));
        }
        for (i, related) in self.related.iter().enumerate() {
            let field = format!("related.{i}");
            validate_resource(related, &field, limits)?;
            if related.role().is_empty() {
                return Err(crate::Error::invalid(field, "Related Resources must include the prefect.resource.role label"));
            }
        }
        Ok(())
    }

    /// Stamps the time the server received the event.
    pub fn receive(self, received: DateTime) -> ReceivedEvent {
        ReceivedEvent {
            occurred: self.occurred,
            event: self.event,
            resource: self.resource,
            related: self.related,
            payload: self.payload,
            id: self.id,
            follows: self.follows,
            received,
        }
    }
}

fn validate_resource(resource: &Resource, field: &str, limits: &EventLimits) -> crate::Result<()> {
    if resource.0.len() > limits.max_labels_per_resource {
        return Err(crate::Error::invalid(field, format!("The maximum number of labels per resource is {}", limits.max_labels_per_resource)));
    }
    if resource.id().is_empty() {
        return Err(crate::Error::invalid(field, "Resources must include the prefect.resource.id label"));
    }
    Ok(())
}

/// An event with the time the server received it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReceivedEvent {
    pub occurred: DateTime,
    pub event: String,
    pub resource: Resource,
    #[serde(default)]
    pub related: Vec<Resource>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub payload: Map<String, Value>,
    pub id: Uuid,
    #[serde(default)]
    pub follows: Option<Uuid>,
    pub received: DateTime,
}

impl ReceivedEvent {
    /// The first related resource with `role` (Prefect's `resource_in_role` picks the first).
    pub fn related_in_role(&self, role: &str) -> Option<&Resource> {
        self.related.iter().find(|r| r.role() == role)
    }

    /// Every resource the event involves: its own, then the related ones.
    pub fn involved_resources(&self) -> impl Iterator<Item = &Resource> {
        std::iter::once(&self.resource).chain(self.related.iter())
    }
}

/// Label matching: `label -> value | [values]`, with `*` suffix wildcards and `!` negation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct ResourceSpecification(pub BTreeMap<String, StringOrList>);

/// One value or a list of values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum StringOrList {
    One(String),
    Many(Vec<String>),
}

impl StringOrList {
    pub fn values(&self) -> Vec<&str> {
        match self {
            StringOrList::One(v) => vec![v.as_str()],
            StringOrList::Many(vs) => vs.iter().map(String::as_str).collect(),
        }
    }
}

impl ResourceSpecification {
    /// Whether `resource` satisfies every label of the specification.
    pub fn matches(&self, resource: &Resource) -> bool {
        self.0.iter().all(|(label, expected)| {
            let actual = resource.get(label);
            let values = expected.values();
            let (negative, positive): (Vec<&str>, Vec<&str>) = values.iter().partition(|v| v.starts_with('!'));
            if !positive.is_empty() && !positive.iter().any(|p| label_value_matches(p, actual)) {
                return false;
            }
            negative.iter().all(|n| !label_value_matches(&n[1..], actual))
        })
    }
}

/// Prefect's label matcher: exact, or a trailing `*` wildcard (`*` alone matches anything present).
pub fn label_value_matches(expected: &str, value: Option<&str>) -> bool {
    let Some(value) = value else { return false };
    match expected.strip_suffix('*') {
        Some(prefix) => value.starts_with(prefix),
        None => value == expected,
    }
}

/// An empty list in a filter filters nothing, as in Prefect (its filters test truthiness):
/// clients send `"id": {"id": []}` in every event subscription.
fn empty_list_is_none<'de, D, T>(deserializer: D) -> Result<Option<Vec<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(deserializer)?.filter(|items| !items.is_empty()))
}

/// `occurred` bounds, inclusive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EventOccurredFilter {
    pub since: DateTime,
    pub until: DateTime,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EventNameFilter {
    #[serde(default, deserialize_with = "empty_list_is_none")]
    pub prefix: Option<Vec<String>>,
    #[serde(default, deserialize_with = "empty_list_is_none")]
    pub exclude_prefix: Option<Vec<String>>,
    #[serde(default, deserialize_with = "empty_list_is_none")]
    pub name: Option<Vec<String>>,
    #[serde(default, deserialize_with = "empty_list_is_none")]
    pub exclude_name: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EventResourceFilter {
    #[serde(default, deserialize_with = "empty_list_is_none")]
    pub id: Option<Vec<String>>,
    #[serde(default, deserialize_with = "empty_list_is_none")]
    pub id_prefix: Option<Vec<String>>,
    #[serde(default)]
    pub labels: Option<ResourceSpecification>,
    #[serde(default)]
    pub distinct: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EventRelatedFilter {
    #[serde(default, deserialize_with = "empty_list_is_none")]
    pub id: Option<Vec<String>>,
    #[serde(default, deserialize_with = "empty_list_is_none")]
    pub role: Option<Vec<String>>,
    #[serde(default, deserialize_with = "empty_list_is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<Vec<Object>>>))]
    pub resources_in_roles: Option<Vec<(String, String)>>,
    #[serde(default)]
    pub labels: Option<ResourceSpecification>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EventAnyResourceFilter {
    #[serde(default, deserialize_with = "empty_list_is_none")]
    pub id: Option<Vec<String>>,
    #[serde(default, deserialize_with = "empty_list_is_none")]
    pub id_prefix: Option<Vec<String>>,
    #[serde(default)]
    pub labels: Option<ResourceSpecification>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EventIdFilter {
    #[serde(default, deserialize_with = "empty_list_is_none")]
    pub id: Option<Vec<Uuid>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EventTextFilter {
    pub query: String,
}

/// One filter or a list of them (all must hold).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    pub fn as_slice(&self) -> &[T] {
        match self {
            OneOrMany::One(one) => std::slice::from_ref(one),
            OneOrMany::Many(many) => many,
        }
    }
}

/// Newest first (`DESC`, the default) or oldest first.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum EventOrder {
    #[serde(rename = "ASC")]
    Asc,
    #[default]
    #[serde(rename = "DESC")]
    Desc,
}

/// Filter over events. `occurred` defaults to the last 180 days up to now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EventFilter {
    #[serde(default)]
    pub occurred: Option<EventOccurredFilter>,
    #[serde(default)]
    pub event: Option<EventNameFilter>,
    #[serde(default)]
    pub resource: Option<EventResourceFilter>,
    #[serde(default)]
    pub related: Option<OneOrMany<EventRelatedFilter>>,
    #[serde(default)]
    pub any_resource: Option<OneOrMany<EventAnyResourceFilter>>,
    #[serde(default)]
    pub id: Option<EventIdFilter>,
    #[serde(default)]
    pub text: Option<EventTextFilter>,
    #[serde(default)]
    pub order: EventOrder,
}

impl Default for EventFilter {
    fn default() -> Self {
        EventFilter { occurred: None, event: None, resource: None, related: None, any_resource: None, id: None, text: None, order: EventOrder::Desc }
    }
}

impl EventFilter {
    /// The effective time window (Prefect's default: since 180 days before today began, until now).
    pub fn window(&self, now: DateTime) -> (DateTime, DateTime) {
        match &self.occurred {
            Some(o) => (o.since, o.until),
            None => {
                let start_of_day = now.date_naive().and_hms_opt(0, 0, 0).map_or(now, |d| d.and_utc());
                (start_of_day - chrono::TimeDelta::days(180), now)
            }
        }
    }

    /// Evaluates the filter against one event in memory (used for live websocket streams).
    pub fn includes(&self, event: &ReceivedEvent, now: DateTime) -> bool {
        let (since, until) = self.window(now);
        if event.occurred < since || event.occurred > until {
            return false;
        }
        if let Some(name) = &self.event {
            if let Some(prefixes) = &name.prefix
                && !prefixes.iter().any(|p| event.event.starts_with(p.as_str()))
            {
                return false;
            }
            if let Some(prefixes) = &name.exclude_prefix
                && prefixes.iter().any(|p| event.event.starts_with(p.as_str()))
            {
                return false;
            }
            if let Some(names) = &name.name
                && !names.contains(&event.event)
            {
                return false;
            }
            if let Some(names) = &name.exclude_name
                && names.contains(&event.event)
            {
                return false;
            }
        }
        if let Some(resource) = &self.resource
            && !resource_matches(&event.resource, resource.id.as_deref(), resource.id_prefix.as_deref(), resource.labels.as_ref())
        {
            return false;
        }
        if let Some(related) = &self.related {
            for filter in related.as_slice() {
                let ok = event.related.iter().any(|r| {
                    filter.role.as_ref().is_none_or(|roles| roles.iter().any(|role| role == r.role()))
                        && resource_matches(r, filter.id.as_deref(), None, filter.labels.as_ref())
                }) && filter
                    .resources_in_roles
                    .as_ref()
                    .is_none_or(|pairs| pairs.iter().all(|(id, role)| event.related.iter().any(|r| r.id() == id && r.role() == role)));
                if !ok {
                    return false;
                }
            }
        }
        if let Some(any) = &self.any_resource {
            for filter in any.as_slice() {
                if !event.involved_resources().any(|r| resource_matches(r, filter.id.as_deref(), filter.id_prefix.as_deref(), filter.labels.as_ref())) {
                    return false;
                }
            }
        }
        if let Some(ids) = self.id.as_ref().and_then(|f| f.id.as_ref())
            && !ids.contains(&event.id)
        {
            return false;
        }
        if let Some(text) = &self.text {
            let needle = text.query.to_lowercase();
            let haystack = format!("{} {} {}", event.event, event.resource.id(), Value::Object(event.payload.clone()));
            if !haystack.to_lowercase().contains(&needle) {
                return false;
            }
        }
        true
    }
}

fn resource_matches(resource: &Resource, ids: Option<&[String]>, prefixes: Option<&[String]>, labels: Option<&ResourceSpecification>) -> bool {
    ids.is_none_or(|ids| ids.iter().any(|id| id == resource.id()))
        && prefixes.is_none_or(|ps| ps.iter().any(|p| resource.id().starts_with(p.as_str())))
        && labels.is_none_or(|spec| spec.matches(resource))
}

/// One page of events; `next_page` is an absolute URL to the next page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventPage {
    pub events: Vec<ReceivedEvent>,
    pub total: u64,
    pub next_page: Option<String>,
}

/// A count of events in one bucket of `POST /events/count-by/{countable}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventCount {
    pub value: String,
    pub label: String,
    pub count: u64,
    pub start_time: DateTime,
    pub end_time: DateTime,
}

/// What `count-by` groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Countable {
    Day,
    Time,
    Event,
    Resource,
}

/// Bucket width unit for time counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum TimeUnit {
    Week,
    #[default]
    Day,
    Hour,
    Minute,
    Second,
}

impl TimeUnit {
    /// Seconds in one unit.
    pub const fn seconds(self) -> f64 {
        match self {
            TimeUnit::Week => 604_800.0,
            TimeUnit::Day => 86_400.0,
            TimeUnit::Hour => 3_600.0,
            TimeUnit::Minute => 60.0,
            TimeUnit::Second => 1.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(name: &str) -> ReceivedEvent {
        let now = crate::time::now();
        Event {
            occurred: now,
            event: name.to_owned(),
            resource: Resource::with_id("prefect.flow-run.1").label("prefect.state-type", "COMPLETED"),
            related: vec![Resource::with_id("prefect.flow.2").label(RESOURCE_ROLE, "flow")],
            payload: Map::new(),
            id: Uuid::now_v7(),
            follows: None,
        }
        .receive(now)
    }

    #[test]
    fn empty_lists_filter_nothing() {
        // What `prefect.events.filters.EventFilter(event=EventNameFilter(name=[...]))` sends.
        let filter: EventFilter = serde_json::from_value(serde_json::json!({
            "occurred": {"since": "2026-01-01T00:00:00Z", "until": "2099-01-01T00:00:00Z"},
            "event": {"prefix": null, "exclude_prefix": [], "name": ["prefect.task-run.Completed"], "exclude_name": null},
            "resource": null, "related": null, "any_resource": null, "id": {"id": []}, "text": null, "order": "DESC"
        }))
        .unwrap();
        let now = crate::time::now();
        assert!(filter.includes(&event("prefect.task-run.Completed"), now));
        assert!(!filter.includes(&event("prefect.task-run.Running"), now));
    }

    #[test]
    fn validation_requires_ids_and_roles() {
        let mut e = event("x");
        assert!(
            Event {
                occurred: e.occurred,
                event: e.event.clone(),
                resource: e.resource.clone(),
                related: e.related.clone(),
                payload: Map::new(),
                id: e.id,
                follows: None
            }
            .validate(&EventLimits::default())
            .is_ok()
        );
        e.related[0].0.remove(RESOURCE_ROLE);
        let bad = Event { occurred: e.occurred, event: e.event, resource: e.resource, related: e.related, payload: Map::new(), id: e.id, follows: None };
        assert!(bad.validate(&EventLimits::default()).is_err());
    }

    #[test]
    fn label_wildcards_and_negation() {
        let r = Resource::with_id("prefect.flow-run.abc");
        let spec: ResourceSpecification = serde_json::from_str(r#"{"prefect.resource.id": "prefect.flow-run.*"}"#).unwrap();
        assert!(spec.matches(&r));
        let spec: ResourceSpecification = serde_json::from_str(r#"{"prefect.resource.id": ["!prefect.flow-run.*"]}"#).unwrap();
        assert!(!spec.matches(&r));
    }

    #[test]
    fn in_memory_filter() {
        let e = event("prefect.flow-run.Completed");
        let now = crate::time::now();
        let f: EventFilter = serde_json::from_str(r#"{"event": {"prefix": ["prefect.flow-run."]}, "related": {"role": ["flow"]}}"#).unwrap();
        assert!(f.includes(&e, now));
        let f: EventFilter = serde_json::from_str(r#"{"event": {"name": ["other"]}}"#).unwrap();
        assert!(!f.includes(&e, now));
    }

    #[test]
    fn object_ids_from_resource_ids() {
        let id = Uuid::now_v7();
        let r = Resource::with_id(format!("prefect.task-run.{id}"));
        assert_eq!(r.prefect_object_id("prefect.task-run"), Some(id));
        assert_eq!(r.prefect_object_id("prefect.flow-run"), None);
    }
}
