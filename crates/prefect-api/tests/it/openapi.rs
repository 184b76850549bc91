//! The checked-in OpenAPI document (docs/openapi.json) must match the routes.

#[test]
fn checked_in_openapi_document_is_current() {
    let generated = serde_json::to_value(prefect_api::openapi()).unwrap();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
    let checked_in: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert!(generated == checked_in, "docs/openapi.json is stale: run `just openapi` (cargo run -p prefect-server -- openapi > docs/openapi.json)");
}

#[test]
fn every_operation_has_responses_and_ids() {
    let api = serde_json::to_value(prefect_api::openapi()).unwrap();
    let mut ids = std::collections::HashSet::new();
    for (path, item) in api["paths"].as_object().unwrap() {
        assert!(path.starts_with("/api/"), "{path}");
        for (method, op) in item.as_object().unwrap() {
            let id = op["operationId"].as_str().unwrap_or_else(|| panic!("{method} {path} has no operationId"));
            assert!(ids.insert(id.to_owned()), "duplicate operationId {id}");
            assert!(op["responses"].as_object().is_some_and(|r| !r.is_empty()), "{method} {path} has no responses");
        }
    }
}
