//! Rule-by-rule tests of the orchestration policies, driven through the public API
//! against the in-memory store.

mod engine;
mod flow_rules;
mod global;
mod support;
mod task_rules;
