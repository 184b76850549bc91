//! The database vacuum (Prefect's `db_vacuum` services): keeps the database from
//! growing without bound.
//!
//! - `events` (on by default, and only while events are persisted): deletes events and
//!   their resource rows older than the events retention period (7 days), and events
//!   of the types in `event_retention_overrides` older than their own, shorter period.
//! - `flow_runs` (opt-in, since it deletes runs for good): top-level runs that ended
//!   in a final state longer than `retention_period` (90 days) ago, with their logs
//!   and artifacts. Enabling it also enables `orphans`.
//! - `orphans`: logs and artifacts whose flow run is gone, and artifact collections
//!   whose latest artifact is gone; daily rather than hourly, since it reads the whole
//!   `flow_run_id` indexes of logs and artifacts.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use prefect_core::Core;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

/// The kinds of vacuum, as `PREFECT_SERVER_SERVICES_DB_VACUUM_ENABLED` names them.
pub const VACUUM_TYPES: [&str; 3] = ["events", "flow_runs", "orphans"];

/// Settings (`PREFECT_SERVER_SERVICES_DB_VACUUM_*`, and `PREFECT_SERVER_EVENTS_RETENTION_PERIOD`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct DbVacuumOptions {
    /// Which vacuums run (see [`DbVacuumOptions::enabled_types`]).
    pub enabled: VacuumEnabled,
    /// How often the events and flow run vacuums run.
    pub loop_seconds: f64,
    /// How often the orphan vacuum runs.
    pub orphan_cleanup_loop_seconds: f64,
    /// How long ago a flow run must have ended to be deleted.
    #[serde(deserialize_with = "crate::duration_setting")]
    pub retention_period_seconds: f64,
    /// Rows deleted per transaction.
    pub batch_size: u64,
    /// Shorter retention periods for some event types, capped by the events retention.
    #[serde(deserialize_with = "retention_overrides")]
    pub event_retention_overrides: BTreeMap<String, f64>,
    /// How long events are kept (`PREFECT_SERVER_EVENTS_RETENTION_PERIOD`).
    #[serde(deserialize_with = "crate::duration_setting")]
    pub events_retention_seconds: f64,
    /// Whether events are persisted at all; without the event persister there is
    /// nothing of the server's to trim, and Prefect leaves events alone.
    pub events_persisted: bool,
}

impl Default for DbVacuumOptions {
    fn default() -> Self {
        DbVacuumOptions {
            enabled: VacuumEnabled::Types(BTreeSet::from(["events".to_owned()])),
            loop_seconds: 3600.0,
            orphan_cleanup_loop_seconds: 86_400.0,
            retention_period_seconds: 90.0 * 86_400.0,
            batch_size: 200,
            event_retention_overrides: BTreeMap::from([("prefect.flow-run.heartbeat".to_owned(), 7.0 * 86_400.0)]),
            events_retention_seconds: 7.0 * 86_400.0,
            events_persisted: true,
        }
    }
}

/// `PREFECT_SERVER_SERVICES_DB_VACUUM_ENABLED`: a comma-separated set of vacuum types,
/// or, as older Prefect versions took it, a boolean (`true`: events and flow runs;
/// `false`: events only, the old default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VacuumEnabled {
    Legacy(bool),
    Types(BTreeSet<String>),
}

impl<'de> Deserialize<'de> for VacuumEnabled {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Flag(bool),
            List(Vec<String>),
            Text(String),
        }
        let types = match Raw::deserialize(deserializer)? {
            Raw::Flag(flag) => return Ok(VacuumEnabled::Legacy(flag)),
            Raw::Text(text) => match text.trim().to_ascii_lowercase().as_str() {
                "true" | "1" => return Ok(VacuumEnabled::Legacy(true)),
                "false" | "0" | "" => return Ok(VacuumEnabled::Legacy(false)),
                _ => text.split(',').map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()).collect::<BTreeSet<_>>(),
            },
            Raw::List(list) => list.into_iter().map(|t| t.trim().to_owned()).collect(),
        };
        if let Some(unknown) = types.iter().find(|t| !VACUUM_TYPES.contains(&t.as_str())) {
            return Err(serde::de::Error::custom(format!("invalid vacuum type {unknown:?}; valid values are {}", VACUUM_TYPES.join(", "))));
        }
        Ok(VacuumEnabled::Types(types))
    }
}

impl DbVacuumOptions {
    /// The vacuum types that run, with Prefect's implications (`flow_runs` brings
    /// `orphans`; `events` needs persisted events).
    pub fn enabled_types(&self) -> BTreeSet<&'static str> {
        let named = |t: &str| match &self.enabled {
            VacuumEnabled::Legacy(all) => t == "events" || (*all && t == "flow_runs"),
            VacuumEnabled::Types(types) => types.contains(t),
        };
        let mut out = BTreeSet::new();
        if named("events") && self.events_persisted {
            out.insert("events");
        }
        if named("flow_runs") {
            out.extend(["flow_runs", "orphans"]);
        }
        if named("orphans") {
            out.insert("orphans");
        }
        out
    }
}

/// Event type to retention seconds: a map (from a settings file) or a JSON object (from
/// an environment variable); each period must be positive.
fn retention_overrides<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<BTreeMap<String, f64>, D::Error> {
    use serde::de::Error;
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Map(BTreeMap<String, f64>),
        Text(String),
    }
    let map = match Raw::deserialize(deserializer)? {
        Raw::Map(map) => map,
        Raw::Text(text) => {
            serde_json::from_str(&text).map_err(|e| D::Error::custom(format!("event retention overrides must be a JSON object of seconds: {e}")))?
        }
    };
    if let Some((event, seconds)) = map.iter().find(|(_, seconds)| **seconds <= 0.0) {
        return Err(D::Error::custom(format!("retention override for {event:?} must be positive, got {seconds}")));
    }
    Ok(map)
}

pub struct DbVacuum {
    options: DbVacuumOptions,
    core: Core,
}

impl DbVacuum {
    pub fn new(options: DbVacuumOptions, core: Core) -> Self {
        DbVacuum { options, core }
    }

    pub async fn run(self, shutdown: CancellationToken) {
        let types = self.options.enabled_types();
        let every = Duration::from_secs_f64(self.options.loop_seconds.max(0.05));
        let orphans_every = Duration::from_secs_f64(self.options.orphan_cleanup_loop_seconds.max(0.05));
        let main = async {
            if types.contains("events") || types.contains("flow_runs") {
                crate::run_periodically("db vacuum", every, shutdown.clone(), || self.vacuum(&types)).await;
            }
        };
        let orphans = async {
            if types.contains("orphans") {
                crate::run_periodically("db vacuum (orphans)", orphans_every, shutdown.clone(), || self.vacuum_orphans()).await;
            }
        };
        tokio::join!(main, orphans);
    }

    /// One pass of the events and flow run vacuums.
    pub async fn vacuum(&self, types: &BTreeSet<&'static str>) -> prefect_core::Result<()> {
        let batch = self.options.batch_size.max(1);
        let now = prefect_domain::time::now();
        if types.contains("events") {
            for (event_type, seconds) in &self.options.event_retention_overrides {
                let cutoff = now - crate::seconds(seconds.min(self.options.events_retention_seconds));
                let (events, resources) = self.core.vacuum_events_of_type_before(event_type, cutoff, batch).await?;
                if events + resources > 0 {
                    tracing::info!(events, resources, event_type = event_type.as_str(), "Database vacuum: deleted old events of one type and their resources.");
                }
            }
            let cutoff = now - crate::seconds(self.options.events_retention_seconds);
            let (events, resources) = self.core.vacuum_events_before(cutoff, batch).await?;
            if events + resources > 0 {
                tracing::info!(events, resources, "Database vacuum: deleted old events and their resources.");
            }
        }
        if types.contains("flow_runs") {
            let cutoff = now - crate::seconds(self.options.retention_period_seconds);
            let deleted = self.core.vacuum_flow_runs_before(cutoff, batch).await?;
            if deleted.flow_runs > 0 {
                tracing::info!(flow_runs = deleted.flow_runs, logs = deleted.logs, artifacts = deleted.artifacts, "Database vacuum: deleted old flow runs.");
            }
        }
        Ok(())
    }

    /// One pass of the orphan vacuum.
    pub async fn vacuum_orphans(&self) -> prefect_core::Result<()> {
        let (logs, artifacts, collections) = self.core.vacuum_orphans(self.options.batch_size.max(1)).await?;
        if logs + artifacts + collections > 0 {
            tracing::info!(logs, artifacts, collections, "Database vacuum: deleted orphaned logs and artifacts, mended artifact collections.");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(enabled: serde_json::Value) -> DbVacuumOptions {
        serde_json::from_value(serde_json::json!({ "enabled": enabled })).unwrap()
    }

    #[test]
    fn enabled_types_follow_prefect() {
        let names = |o: &DbVacuumOptions| o.enabled_types().into_iter().collect::<Vec<_>>();
        assert_eq!(names(&DbVacuumOptions::default()), ["events"]);
        assert_eq!(names(&options(serde_json::json!("events,flow_runs"))), ["events", "flow_runs", "orphans"]);
        assert_eq!(names(&options(serde_json::json!(" orphans "))), ["orphans"]);
        assert_eq!(names(&options(serde_json::json!(["flow_runs"]))), ["flow_runs", "orphans"]);
        assert_eq!(names(&options(serde_json::json!(true))), ["events", "flow_runs", "orphans"]);
        assert_eq!(names(&options(serde_json::json!(false))), ["events"]);
        assert_eq!(names(&options(serde_json::json!("false"))), ["events"]);
        let without_persister = DbVacuumOptions { events_persisted: false, ..DbVacuumOptions::default() };
        assert!(names(&without_persister).is_empty(), "no event vacuum without the event persister");
        assert!(serde_json::from_value::<DbVacuumOptions>(serde_json::json!({"enabled": "events,logs"})).is_err());
    }

    #[test]
    fn retention_overrides_take_json_and_must_be_positive() {
        let parsed: DbVacuumOptions = serde_json::from_value(serde_json::json!({"event_retention_overrides": "{\"a.b\": 60}"})).unwrap();
        assert_eq!(parsed.event_retention_overrides, BTreeMap::from([("a.b".to_owned(), 60.0)]));
        assert!(serde_json::from_value::<DbVacuumOptions>(serde_json::json!({"event_retention_overrides": {"a": 0}})).is_err());
    }
}
