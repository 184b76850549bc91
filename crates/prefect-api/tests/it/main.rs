//! HTTP integration tests: the real server on a random port, over SQLite (or
//! PostgreSQL when `PREFECT_TEST_DATABASE_URL` is set).

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod artifacts;
mod automations;
mod blocks;
mod cancellation;
mod concurrency;
mod deployments;
mod errors;
mod events;
mod flow_runs;
mod flows;
mod logs;
mod migrations;
mod openapi;
mod pause;
mod saved_searches;
mod support;
mod task_runs;
mod ui;
mod vacuum;
mod variables;
mod work_pools;
