//! Wire and domain types of the Prefect 3 API.
//!
//! This crate is the vocabulary every other layer speaks: states and their
//! details, flows, flow runs, task runs, logs, artifacts, concurrency limits,
//! events, and the filter and sort grammar of the `…/filter` routes. It does no
//! I/O and depends on no runtime, database or web framework, so a client-only
//! program can use it to build or read Prefect payloads.
//!
//! Field names, JSON shapes and defaults follow what the `prefect` 3.9.1 client
//! sends and expects (see `docs/ARCHITECTURE.md`). Request ("action") models
//! reject unknown fields the way Prefect's do; response models are plain data.
//!
//! The `openapi` feature (on by default) derives `utoipa::ToSchema` so the API
//! crate can publish an OpenAPI document from the same types.
//!
//! ```
//! use prefect_domain::state::{StateCreate, StateType};
//!
//! let proposed: StateCreate = serde_json::from_str(r#"{"type": "RUNNING"}"#).unwrap();
//! assert_eq!(proposed.state_type, StateType::Running);
//! let state = proposed.into_state(prefect_domain::time::now());
//! assert_eq!(state.name.as_deref(), Some("Running"));
//! ```

pub mod artifact;
pub mod automation;
pub mod block;
pub mod concurrency;
pub mod deployment;
pub mod error;
pub mod events;
pub mod filters;
pub mod flow;
pub mod flow_run;
pub mod graph;
pub mod labels;
pub mod log;
pub mod names;
pub mod pagination;
pub mod saved_search;
pub mod schedule;
pub mod sorts;
pub mod state;
pub mod task_run;
pub mod time;
pub mod variable;
pub mod work_pool;

pub use error::{Error, Result};

/// The API version the server speaks (`GET /version`, `X-PREFECT-API-VERSION`).
pub const API_VERSION: &str = "0.8.4";
/// The Prefect release whose server behaviour this crate mirrors (`GET /admin/version`).
pub const PREFECT_VERSION: &str = "3.9.1";
