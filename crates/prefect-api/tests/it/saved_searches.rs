use prefect_testing::spawn_app;
use serde_json::json;

#[tokio::test]
async fn saved_searches_upsert_read_filter_delete() {
    let app = spawn_app().await;
    let filters = json!([{"object": "flow", "property": "name", "type": "string", "operation": "equals", "value": "etl"}]);
    let (status, created) = app.put("saved_searches/", json!({"name": "mine", "filters": filters})).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["filters"], filters);
    let id = created["id"].as_str().unwrap().to_owned();
    let (status, replaced) = app.put("saved_searches/", json!({"name": "mine", "filters": []})).await;
    assert_eq!((status, replaced["id"].clone(), replaced["filters"].clone()), (200, json!(id), json!([])), "same name: filters replaced");
    assert_eq!(app.put("saved_searches/", json!({"name": "another"})).await.0, 201);
    assert_eq!(app.get(&format!("saved_searches/{id}")).await.1["name"], "mine");
    let (_, all) = app.post("saved_searches/filter", json!({"offset": null})).await;
    let names: Vec<&str> = all.as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["another", "mine"]);
    assert_eq!(app.post("saved_searches/filter", json!({"limit": 1, "offset": 1})).await.1[0]["name"], "mine");
    assert_eq!(app.put("saved_searches/", json!({"name": "bad", "filters": [{"object": "flow"}]})).await.0, 422);
    assert_eq!(app.delete(&format!("saved_searches/{id}")).await.0, 204);
    assert_eq!(app.get(&format!("saved_searches/{id}")).await, (404, json!({"detail": "Saved search not found"})));
    assert_eq!(app.delete(&format!("saved_searches/{id}")).await.0, 404);
}

#[tokio::test]
async fn templates_are_validated() {
    let app = spawn_app().await;
    for path in ["templates/validate", "automations/templates/validate"] {
        assert_eq!(app.post(path, json!("Hello {{ flow_run.name }}")).await.0, 204);
        let (status, body) = app.post(path, json!("first line\n{{ broken ")).await;
        assert_eq!(status, 422);
        assert_eq!(body["error"]["line"], 2);
        assert_eq!(body["error"]["source"], "first line\n{{ broken ");
        let nested = "{% for a in x %}{% for b in a %}{% for c in b %}{% endfor %}{% endfor %}{% endfor %}";
        assert_eq!(app.post(path, json!(nested)).await.0, 422, "loops nest at most two deep");
    }
    assert_eq!(app.post("templates/validate", json!({"template": "x"})).await.0, 422, "the body is a bare string");
}

#[tokio::test]
async fn ui_schema_validation() {
    let app = spawn_app().await;
    let schema = json!({"type": "object", "properties": {"n": {"type": "integer"}, "s": {"type": "string"}, "l": {"type": "array", "items": {"type": "integer"}}}, "required": ["n"]});
    let (status, result) = app.post("ui/schemas/validate", json!({"schema": schema, "values": {"s": 1, "l": [1, "a"]}})).await;
    assert_eq!(status, 200);
    assert_eq!(
        result,
        json!({"errors": [
            {"property": "l", "errors": [{"index": 1, "errors": ["'a' is not of type 'integer'"]}]},
            {"property": "s", "errors": ["1 is not valid under any of the given schemas"]},
            {"property": "n", "errors": ["'n' is a required property"]},
        ], "valid": false})
    );
    assert_eq!(app.post("variables/", json!({"name": "count", "value": 3})).await.0, 201);
    let values = json!({"n": {"__prefect_kind": "workspace_variable", "variable_name": "count"}, "s": {"__prefect_kind": "jinja", "template": "{{ x }}"}});
    assert_eq!(app.post("ui/schemas/validate", json!({"schema": schema, "values": values})).await.1, json!({"errors": [], "valid": true}));
    let values = json!({"n": {"__prefect_kind": "workspace_variable", "variable_name": "missing"}});
    let (_, result) = app.post("ui/schemas/validate", json!({"schema": schema, "values": values})).await;
    assert_eq!(result["errors"], json!([{"property": "n", "errors": ["Variable 'missing' not found in workspace."]}]));
    let (status, body) = app.post("ui/schemas/validate", json!({"schema": {"type": "nonsense"}, "values": {}})).await;
    assert_eq!((status, body), (422, json!({"detail": "Invalid schema: 'nonsense' is not valid under any of the given schemas"})));
    assert_eq!(app.post("ui/schemas/validate", json!({"values": {}})).await.0, 422);
}
