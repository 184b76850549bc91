//! An in-memory [`OrchestrationStore`], for unit tests and for embedding the
//! rules where there is no database.

use std::collections::{HashMap, HashSet};

use prefect_domain::concurrency::{ConcurrencyLease, ConcurrencyLeaseHolder, ConcurrencyLimitV2};
use prefect_domain::state::State;
use prefect_domain::time::DateTime;
use uuid::Uuid;

use crate::store::{DeploymentConcurrency, OrchestrationStore, ParentFlowRun, StoreError};

/// Everything a rule can observe, kept in plain collections.
#[derive(Debug, Default, Clone)]
pub struct MemoryStore {
    pub limits: HashMap<Uuid, ConcurrencyLimitV2>,
    pub leases: HashMap<Uuid, ConcurrencyLease>,
    pub deployments: HashMap<Uuid, DeploymentConcurrency>,
    pub flow_runs: HashMap<Uuid, ParentFlowRun>,
    /// `(cache_key, expiration, state)` in insertion order.
    pub cache: Vec<(String, Option<DateTime>, State)>,
    pub taken_timestamps: HashSet<(Uuid, DateTime)>,
    pub deleted_inputs: Vec<(Uuid, String)>,
    pub subflow_parent_states: Vec<(Uuid, State)>,
    /// The clock used for lease expiry.
    pub now: Option<DateTime>,
}

impl MemoryStore {
    /// Adds a limit and returns its id.
    pub fn add_limit(&mut self, name: &str, limit: i64) -> Uuid {
        let now = prefect_domain::time::now();
        let id = Uuid::now_v7();
        self.limits.insert(
            id,
            ConcurrencyLimitV2 {
                id,
                created: now,
                updated: now,
                active: true,
                name: name.to_owned(),
                limit,
                active_slots: 0,
                denied_slots: 0,
                slot_decay_per_second: 0.0,
                avg_slot_occupancy_seconds: 2.0,
            },
        );
        id
    }

    pub fn limit_named(&self, name: &str) -> Option<&ConcurrencyLimitV2> {
        self.limits.values().find(|l| l.name == name)
    }

    fn clock(&self) -> DateTime {
        self.now.unwrap_or_else(prefect_domain::time::now)
    }
}

impl OrchestrationStore for MemoryStore {
    async fn flow_run_state_timestamp_taken(&mut self, flow_run_id: Uuid, timestamp: DateTime) -> Result<bool, StoreError> {
        Ok(self.taken_timestamps.contains(&(flow_run_id, timestamp)))
    }

    async fn deployment_concurrency(&mut self, deployment_id: Uuid) -> Result<Option<DeploymentConcurrency>, StoreError> {
        let mut found = self.deployments.get(&deployment_id).cloned();
        if let Some(d) = &mut found
            && let Some(limit) = &mut d.limit
            && let Some(current) = self.limits.get(&limit.id)
        {
            *limit = current.clone();
        }
        Ok(found)
    }

    async fn read_limits_by_name(&mut self, names: &[String]) -> Result<Vec<ConcurrencyLimitV2>, StoreError> {
        Ok(self.limits.values().filter(|l| names.contains(&l.name)).cloned().collect())
    }

    async fn increment_slots(&mut self, limit_ids: &[Uuid], slots: i64) -> Result<bool, StoreError> {
        let fits = limit_ids.iter().all(|id| self.limits.get(id).is_some_and(|l| l.active && l.active_slots + slots <= l.limit));
        if fits {
            for id in limit_ids {
                if let Some(l) = self.limits.get_mut(id) {
                    l.active_slots += slots;
                }
            }
        }
        Ok(fits)
    }

    async fn decrement_slots(&mut self, limit_ids: &[Uuid], slots: i64) -> Result<(), StoreError> {
        for id in limit_ids {
            if let Some(l) = self.limits.get_mut(id)
                && l.active
            {
                l.active_slots = (l.active_slots - slots).max(0);
            }
        }
        Ok(())
    }

    async fn create_lease(&mut self, limit_ids: &[Uuid], slots: i64, ttl_seconds: f64, holder: Option<ConcurrencyLeaseHolder>) -> Result<Uuid, StoreError> {
        let now = self.clock();
        let id = Uuid::now_v7();
        self.leases.insert(
            id,
            ConcurrencyLease {
                id,
                resource_ids: limit_ids.to_vec(),
                slots,
                holder,
                created: now,
                expiration: now + prefect_domain::time::from_seconds(ttl_seconds),
            },
        );
        Ok(id)
    }

    async fn read_lease(&mut self, lease_id: Uuid) -> Result<Option<ConcurrencyLease>, StoreError> {
        Ok(self.leases.get(&lease_id).cloned())
    }

    async fn renew_lease(&mut self, lease_id: Uuid, ttl_seconds: f64) -> Result<bool, StoreError> {
        let now = self.clock();
        // Like Prefect's lease stores: a lease not yet reclaimed can be renewed even past its expiry.
        match self.leases.get_mut(&lease_id) {
            Some(lease) => {
                lease.expiration = now + prefect_domain::time::from_seconds(ttl_seconds);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn revoke_lease(&mut self, lease_id: Uuid) -> Result<(), StoreError> {
        self.leases.remove(&lease_id);
        Ok(())
    }

    async fn leases_held_by(&mut self, limit_ids: &[Uuid], holder_id: Uuid) -> Result<Vec<ConcurrencyLease>, StoreError> {
        Ok(self
            .leases
            .values()
            .filter(|l| l.holder.is_some_and(|h| h.id == holder_id) && l.resource_ids.iter().any(|r| limit_ids.contains(r)))
            .cloned()
            .collect())
    }

    async fn read_cached_state(&mut self, cache_key: &str, now: DateTime) -> Result<Option<State>, StoreError> {
        Ok(self.cache.iter().rev().find(|(key, expiration, _)| key == cache_key && expiration.is_none_or(|e| e > now)).map(|(_, _, state)| state.clone()))
    }

    async fn insert_cache_entry(&mut self, state: &State) -> Result<(), StoreError> {
        if let Some(key) = &state.state_details.cache_key {
            self.cache.push((key.clone(), state.state_details.cache_expiration, state.clone()));
        }
        Ok(())
    }

    async fn read_parent_flow_run(&mut self, flow_run_id: Uuid) -> Result<Option<ParentFlowRun>, StoreError> {
        Ok(self.flow_runs.get(&flow_run_id).cloned())
    }

    async fn delete_flow_run_inputs(&mut self, flow_run_id: Uuid, keys: &[String]) -> Result<(), StoreError> {
        self.deleted_inputs.extend(keys.iter().map(|k| (flow_run_id, k.clone())));
        Ok(())
    }

    async fn set_subflow_parent_task_state(&mut self, task_run_id: Uuid, state: State) -> Result<(), StoreError> {
        self.subflow_parent_states.push((task_run_id, state));
        Ok(())
    }
}
