//! Concurrency limits (global "V2" limits, the tag-limit "V1" view) and leases.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::time::DateTime;

/// Prefix of the V2 limit that backs a tag limit: `tag:<tag>`.
pub const TAG_LIMIT_PREFIX: &str = "tag:";
/// Prefix of the V2 limit that backs a deployment limit: `deployment:<id>`.
pub const DEPLOYMENT_LIMIT_PREFIX: &str = "deployment:";

/// A global concurrency limit as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConcurrencyLimitV2 {
    pub id: Uuid,
    pub created: DateTime,
    pub updated: DateTime,
    pub active: bool,
    pub name: String,
    pub limit: i64,
    pub active_slots: i64,
    pub denied_slots: i64,
    pub slot_decay_per_second: f64,
    pub avg_slot_occupancy_seconds: f64,
}

/// How a limit is read back (`GlobalConcurrencyLimitResponse`): active slots after decay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GlobalConcurrencyLimitResponse {
    pub id: Uuid,
    pub created: DateTime,
    pub updated: DateTime,
    pub active: bool,
    pub name: String,
    pub limit: i64,
    pub active_slots: i64,
    pub slot_decay_per_second: f64,
}

/// Body of `POST /v2/concurrency_limits/`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ConcurrencyLimitV2Create {
    #[serde(default = "default_true")]
    pub active: bool,
    pub name: String,
    pub limit: i64,
    #[serde(default)]
    pub active_slots: i64,
    #[serde(default)]
    pub denied_slots: i64,
    #[serde(default)]
    pub slot_decay_per_second: f64,
}

fn default_true() -> bool {
    true
}

impl ConcurrencyLimitV2Create {
    pub fn validate(&self) -> crate::Result<()> {
        crate::flow::validate_name(&self.name, "name")?;
        non_negative(self.limit as f64, "limit")?;
        non_negative(self.active_slots as f64, "active_slots")?;
        non_negative(self.denied_slots as f64, "denied_slots")?;
        non_negative(self.slot_decay_per_second, "slot_decay_per_second")
    }
}

/// Body of `PATCH /v2/concurrency_limits/{id_or_name}`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ConcurrencyLimitV2Update {
    #[serde(default)]
    pub active: Option<bool>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub limit: Option<i64>,
    #[serde(default)]
    pub active_slots: Option<i64>,
    #[serde(default)]
    pub denied_slots: Option<i64>,
    #[serde(default)]
    pub slot_decay_per_second: Option<f64>,
}

impl ConcurrencyLimitV2Update {
    pub fn validate(&self) -> crate::Result<()> {
        if let Some(name) = &self.name {
            crate::flow::validate_name(name, "name")?;
        }
        for (value, field) in [(self.limit, "limit"), (self.active_slots, "active_slots"), (self.denied_slots, "denied_slots")] {
            if let Some(v) = value {
                non_negative(v as f64, field)?;
            }
        }
        if let Some(v) = self.slot_decay_per_second {
            non_negative(v, "slot_decay_per_second")?;
        }
        Ok(())
    }
}

fn non_negative(value: f64, field: &str) -> crate::Result<()> {
    if value < 0.0 { Err(crate::Error::invalid(field, "Input should be greater than or equal to 0")) } else { Ok(()) }
}

/// The id, name and size of a limit a caller acquired or released.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MinimalConcurrencyLimitResponse {
    pub id: Uuid,
    pub name: String,
    pub limit: i64,
}

/// Response of `increment-with-lease`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConcurrencyLimitWithLeaseResponse {
    pub lease_id: Uuid,
    pub limits: Vec<MinimalConcurrencyLimitResponse>,
}

/// What kind of object holds a lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum LeaseHolderType {
    FlowRun,
    TaskRun,
    Deployment,
}

impl LeaseHolderType {
    pub const fn as_str(self) -> &'static str {
        match self {
            LeaseHolderType::FlowRun => "flow_run",
            LeaseHolderType::TaskRun => "task_run",
            LeaseHolderType::Deployment => "deployment",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "flow_run" => Some(LeaseHolderType::FlowRun),
            "task_run" => Some(LeaseHolderType::TaskRun),
            "deployment" => Some(LeaseHolderType::Deployment),
            _ => None,
        }
    }
}

/// The holder of a lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ConcurrencyLeaseHolder {
    #[serde(rename = "type")]
    pub kind: LeaseHolderType,
    pub id: Uuid,
}

/// A lease on slots of one or more limits; slots return when it is revoked or expires.
#[derive(Debug, Clone, PartialEq)]
pub struct ConcurrencyLease {
    pub id: Uuid,
    pub resource_ids: Vec<Uuid>,
    pub slots: i64,
    pub holder: Option<ConcurrencyLeaseHolder>,
    pub created: DateTime,
    pub expiration: DateTime,
}

/// `concurrency` (hold slots) or `rate_limit` (slots decay on their own).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ConcurrencyMode {
    #[default]
    Concurrency,
    RateLimit,
}

/// The tag-limit view of a `tag:<tag>` V2 limit (the V1 API).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = ConcurrencyLimit))]
pub struct TagConcurrencyLimit {
    pub id: Uuid,
    pub created: DateTime,
    pub updated: DateTime,
    pub tag: String,
    pub concurrency_limit: i64,
    /// Task runs holding a slot.
    pub active_slots: Vec<Uuid>,
}

/// Body of `POST /concurrency_limits/`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = ConcurrencyLimitCreate))]
#[serde(deny_unknown_fields)]
pub struct TagConcurrencyLimitCreate {
    pub tag: String,
    pub concurrency_limit: i64,
}

/// Slot arithmetic shared by every acquire and release, with Prefect's decay rules.
pub mod slots {
    /// Occupancy samples are averaged over `limit * 2` releases.
    pub const OCCUPANCY_SAMPLES_MULTIPLIER: f64 = 2.0;
    /// The smallest occupancy a slot is assumed to have.
    pub const MINIMUM_OCCUPANCY_SECONDS_PER_SLOT: f64 = 0.1;

    /// Active slots left after `elapsed` seconds of decay.
    pub fn active_after_decay(active_slots: i64, slot_decay_per_second: f64, elapsed: f64) -> i64 {
        (active_slots - (slot_decay_per_second * elapsed.max(0.0)).floor() as i64).max(0)
    }

    /// Denied slots left after `elapsed` seconds; they decay at the slot rate, or one per average occupancy.
    pub fn denied_after_decay(denied_slots: i64, slot_decay_per_second: f64, avg_slot_occupancy_seconds: f64, max_wait_seconds: f64, elapsed: f64) -> i64 {
        let rate = if slot_decay_per_second > 0.0 {
            slot_decay_per_second
        } else {
            1.0 / avg_slot_occupancy_seconds.min(max_wait_seconds).max(MINIMUM_OCCUPANCY_SECONDS_PER_SLOT)
        };
        (denied_slots - (rate * elapsed.max(0.0)).floor() as i64).max(0)
    }

    /// The moving average of slot occupancy after one release.
    pub fn updated_avg_occupancy(avg: f64, limit: i64, occupancy_seconds: f64, slots: i64) -> f64 {
        let per_slot = (occupancy_seconds / slots.max(1) as f64).max(MINIMUM_OCCUPANCY_SECONDS_PER_SLOT);
        let samples = (limit.max(1) as f64) * OCCUPANCY_SAMPLES_MULTIPLIER;
        avg + per_slot / samples - avg / samples
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn decay_never_goes_negative() {
            assert_eq!(active_after_decay(3, 1.0, 10.0), 0);
            assert_eq!(active_after_decay(3, 0.0, 10.0), 3);
            assert_eq!(active_after_decay(3, 0.5, 2.9), 2);
        }

        #[test]
        fn denied_slots_decay_by_occupancy_when_not_rate_limited() {
            assert_eq!(denied_after_decay(10, 0.0, 2.0, 30.0, 4.0), 8);
            assert_eq!(denied_after_decay(10, 2.0, 2.0, 30.0, 4.0), 2);
        }

        #[test]
        fn occupancy_moves_towards_samples() {
            let avg = updated_avg_occupancy(2.0, 1, 4.0, 1);
            assert!((avg - 3.0).abs() < 1e-9);
        }
    }
}
