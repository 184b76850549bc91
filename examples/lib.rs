//! Example programs that embed the prefect-rs layers; see `embed_storage.rs`.
//! `cargo test -p prefect-examples` builds and runs them.
