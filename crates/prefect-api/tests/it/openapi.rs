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

#[tokio::test]
async fn the_server_serves_its_document_and_swagger_ui() {
    let app = prefect_testing::spawn_app().await;
    let (status, doc) = app.get("openapi.json").await;
    assert_eq!(status, 200);
    assert!(doc["paths"]["/api/work_pools/"].is_object(), "the served document lists the routes");
    let root = app.api.trim_end_matches("/api").to_owned();
    let top = reqwest::get(format!("{root}/openapi.json")).await.unwrap();
    assert_eq!(top.status(), 200);
    let ui = reqwest::get(format!("{root}/docs/")).await.unwrap();
    assert_eq!(ui.status(), 200);
    let config = reqwest::get(format!("{root}/docs/swagger-initializer.js")).await.unwrap().text().await.unwrap();
    assert!(config.contains("/api/openapi.json"), "Swagger UI loads our document: {config}");
}
