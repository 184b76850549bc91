//! Runs every example to completion; each asserts its own outcome.

use std::process::Command;

#[test]
fn embed_storage_drives_a_flow_run_through_its_states() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo).args(["run", "--quiet", "-p", "prefect-examples", "--example", "embed_storage"]).output().expect("run the example");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "example failed:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("finished Some(Completed) after 2 runs with 5 states"), "{stdout}");
}
