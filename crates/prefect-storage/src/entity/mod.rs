//! SeaORM entities, one module per table. Models never leave this crate.
//!
//! Tables whose repositories arrive with later features have no reader yet.
#![allow(dead_code)]

pub mod artifact;
pub mod artifact_collection;
pub mod automation;
pub mod automation_related_resource;
pub mod block_document;
pub mod block_document_reference;
pub mod block_schema;
pub mod block_schema_reference;
pub mod block_type;
pub mod concurrency_lease;
pub mod concurrency_limit_v2;
pub mod configuration;
pub mod csrf_token;
pub mod deployment;
pub mod deployment_schedule;
pub mod event_resources;
pub mod events;
pub mod flow;
pub mod flow_run;
pub mod flow_run_input;
pub mod flow_run_state;
pub mod log;
pub mod saved_search;
pub mod task_run;
pub mod task_run_state;
pub mod task_run_state_cache;
mod typed_json;
pub mod variable;
pub mod work_pool;
pub mod work_queue;
pub mod worker;

pub use typed_json::TypedJson;
