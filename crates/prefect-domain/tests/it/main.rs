//! Integration tests of prefect-domain (one test binary for the crate).

mod schedules;
