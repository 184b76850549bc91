//! Delivery of background task runs (`task.delay()`) to task workers.
//!
//! When a deferred task run is scheduled, orchestration hands it here; task workers
//! subscribed to its task key over `/task_runs/subscriptions/scheduled` take it. As in
//! Prefect, the queues live in the server's memory: bounded per task key (scheduled and
//! retry queues apart, retries first), with producers waiting for room rather than the
//! queue growing without bound. The runs themselves are stored, so a restart loses
//! only their delivery, not the runs.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::Instant;

use prefect_domain::task_run::{TaskRun, TaskWorkerResponse};
use prefect_domain::time;
use tokio::sync::Notify;

/// The per-task-key queues of scheduled background task runs.
#[derive(Debug)]
pub struct TaskQueues {
    scheduled_capacity: usize,
    retry_capacity: usize,
    queues: Mutex<HashMap<String, KeyQueue>>,
    /// Signalled when a run is added: subscribers look again.
    added: Notify,
    /// Signalled when a run is taken: producers waiting for room look again.
    taken: Notify,
}

#[derive(Debug, Default)]
struct KeyQueue {
    // Boxed: a task run is large, and waiting runs move between queue and caller.
    scheduled: VecDeque<Box<TaskRun>>,
    retry: VecDeque<Box<TaskRun>>,
}

/// Which of a key's two queues a run goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    Scheduled,
    /// Retries, and runs a worker disconnected before acknowledging: served first.
    Retry,
}

impl TaskQueues {
    pub fn new(scheduled_capacity: usize, retry_capacity: usize) -> Self {
        TaskQueues {
            scheduled_capacity: scheduled_capacity.max(1),
            retry_capacity: retry_capacity.max(1),
            queues: Mutex::new(HashMap::new()),
            added: Notify::new(),
            taken: Notify::new(),
        }
    }

    /// The queues; a panic elsewhere while holding the lock leaves them usable (every change
    /// under the lock is a single push or pop).
    fn locked(&self) -> std::sync::MutexGuard<'_, HashMap<String, KeyQueue>> {
        self.queues.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds `run` to its task key's `lane`, waiting while that lane is full.
    pub async fn put(&self, run: TaskRun, lane: Lane) {
        let mut run = Some(Box::new(run));
        loop {
            let room = self.taken.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            if let Some(r) = run.take() {
                match self.try_put(r, lane) {
                    Ok(()) => {
                        self.added.notify_waiters();
                        return;
                    }
                    Err(r) => run = Some(r),
                }
            }
            room.await;
        }
    }

    fn try_put(&self, run: Box<TaskRun>, lane: Lane) -> Result<(), Box<TaskRun>> {
        let mut queues = self.locked();
        let queue = queues.entry(run.task_key.clone()).or_default();
        let (items, capacity) = match lane {
            Lane::Scheduled => (&mut queue.scheduled, self.scheduled_capacity),
            Lane::Retry => (&mut queue.retry, self.retry_capacity),
        };
        if items.len() >= capacity {
            return Err(run);
        }
        items.push_back(run);
        Ok(())
    }

    /// The next run for any of `keys` (in the order given; a key's retries before its
    /// scheduled runs), if one is waiting.
    pub fn try_take(&self, keys: &[String]) -> Option<TaskRun> {
        let taken = {
            let mut queues = self.locked();
            keys.iter().find_map(|key| {
                let queue = queues.get_mut(key)?;
                queue.retry.pop_front().or_else(|| queue.scheduled.pop_front())
            })
        };
        if taken.is_some() {
            self.taken.notify_waiters();
        }
        taken.map(|run| *run)
    }

    /// Waits for the next run for any of `keys`.
    pub async fn take(&self, keys: &[String]) -> TaskRun {
        loop {
            let added = self.added.notified();
            tokio::pin!(added);
            added.as_mut().enable();
            if let Some(run) = self.try_take(keys) {
                return run;
            }
            added.await;
        }
    }

    /// Runs waiting for `key` (both lanes).
    pub fn waiting(&self, key: &str) -> usize {
        let queues = self.locked();
        queues.get(key).map_or(0, |q| q.scheduled.len() + q.retry.len())
    }
}

/// The task workers connected to this server, by client id.
#[derive(Debug, Default)]
pub struct TaskWorkers {
    workers: Mutex<HashMap<String, SeenWorker>>,
}

#[derive(Debug)]
struct SeenWorker {
    task_keys: HashSet<String>,
    last_seen: Instant,
}

impl TaskWorkers {
    fn locked(&self) -> std::sync::MutexGuard<'_, HashMap<String, SeenWorker>> {
        self.workers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records that worker `id` is connected and serves `task_keys` (added to what it served).
    pub fn observe(&self, id: &str, task_keys: &[String]) {
        let mut workers = self.locked();
        let worker = workers.entry(id.to_owned()).or_insert_with(|| SeenWorker { task_keys: HashSet::new(), last_seen: Instant::now() });
        worker.task_keys.extend(task_keys.iter().cloned());
        worker.last_seen = Instant::now();
    }

    /// Worker `id` disconnected.
    pub fn forget(&self, id: &str) {
        self.locked().remove(id);
    }

    /// The workers serving any of `task_keys`; all of them when `task_keys` is empty.
    pub fn list(&self, task_keys: &[String]) -> Vec<TaskWorkerResponse> {
        let now = time::now();
        let workers = self.locked();
        let mut out: Vec<TaskWorkerResponse> = workers
            .iter()
            .filter(|(_, w)| task_keys.is_empty() || task_keys.iter().any(|k| w.task_keys.contains(k)))
            .map(|(id, w)| {
                let mut keys: Vec<String> = w.task_keys.iter().cloned().collect();
                keys.sort();
                let age = chrono::TimeDelta::from_std(w.last_seen.elapsed()).unwrap_or_default();
                TaskWorkerResponse { identifier: id.clone(), task_keys: keys, timestamp: now - age }
            })
            .collect();
        out.sort_by(|a, b| a.identifier.cmp(&b.identifier));
        out
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    fn run(key: &str) -> TaskRun {
        serde_json::from_value(serde_json::json!({
            "id": uuid::Uuid::now_v7(), "created": time::now(), "updated": time::now(),
            "name": "t", "flow_run_id": null, "task_key": key, "dynamic_key": "0", "cache_key": null,
            "cache_expiration": null, "task_version": null, "empirical_policy": {}, "tags": [], "labels": null,
            "state_id": null, "task_inputs": {}, "state_type": null, "state_name": null, "run_count": 0,
            "flow_run_run_count": 0, "expected_start_time": null, "next_scheduled_start_time": null,
            "start_time": null, "end_time": null, "total_run_time": 0.0, "estimated_run_time": 0.0,
            "estimated_start_time_delta": 0.0, "state": null
        }))
        .expect("a task run")
    }

    fn keys(k: &[&str]) -> Vec<String> {
        k.iter().map(|s| (*s).to_owned()).collect()
    }

    #[tokio::test]
    async fn retries_come_first_and_keys_are_kept_apart() {
        let q = TaskQueues::new(10, 10);
        let (a1, a2, b) = (run("a"), run("a"), run("b"));
        q.put(a1.clone(), Lane::Scheduled).await;
        q.put(b.clone(), Lane::Scheduled).await;
        q.put(a2.clone(), Lane::Retry).await;
        assert_eq!(q.try_take(&keys(&["c"])), None);
        assert_eq!(q.try_take(&keys(&["a"])).map(|r| r.id), Some(a2.id));
        assert_eq!(q.try_take(&keys(&["a", "b"])).map(|r| r.id), Some(a1.id));
        assert_eq!(q.try_take(&keys(&["a", "b"])).map(|r| r.id), Some(b.id));
        assert_eq!(q.try_take(&keys(&["a", "b"])), None);
    }

    #[tokio::test]
    async fn a_waiting_subscriber_is_woken() {
        let q = Arc::new(TaskQueues::new(10, 10));
        let waiter = tokio::spawn({
            let q = Arc::clone(&q);
            async move { q.take(&keys(&["a"])).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let r = run("a");
        q.put(r.clone(), Lane::Scheduled).await;
        let got = tokio::time::timeout(Duration::from_secs(5), waiter).await.expect("woken").expect("joined");
        assert_eq!(got.id, r.id);
    }

    #[tokio::test]
    async fn a_full_lane_makes_the_producer_wait_until_a_run_is_taken() {
        let q = Arc::new(TaskQueues::new(1, 1));
        q.put(run("a"), Lane::Scheduled).await;
        let producer = tokio::spawn({
            let q = Arc::clone(&q);
            async move { q.put(run("a"), Lane::Scheduled).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!producer.is_finished(), "the second run waits for room");
        assert_eq!(q.waiting("a"), 1);
        assert!(q.try_take(&keys(&["a"])).is_some());
        tokio::time::timeout(Duration::from_secs(5), producer).await.expect("room made").expect("joined");
        assert_eq!(q.waiting("a"), 1, "nothing lost, nothing extra");
    }

    #[test]
    fn workers_are_listed_by_key_until_forgotten() {
        let w = TaskWorkers::default();
        w.observe("w1", &keys(&["a", "b"]));
        w.observe("w2", &keys(&["c"]));
        assert_eq!(w.list(&[]).len(), 2);
        let for_b = w.list(&keys(&["b"]));
        assert_eq!(for_b.len(), 1);
        assert_eq!(for_b[0].identifier, "w1");
        assert_eq!(for_b[0].task_keys, keys(&["a", "b"]));
        w.forget("w1");
        assert!(w.list(&keys(&["a"])).is_empty());
    }
}
