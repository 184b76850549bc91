//! Integration tests of prefect-domain (one test binary for the crate).

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod schedules;
