use prefect_testing::spawn_app;
use serde_json::json;

use crate::support::unique;

#[tokio::test]
async fn variables_by_id_and_by_name() {
    let app = spawn_app().await;
    let name = unique("var").replace('-', "_");
    let (status, created) = app.post("variables/", json!({"name": name, "value": {"a": [1, 2]}, "tags": ["t1"]})).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["value"], json!({"a": [1, 2]}));
    assert_eq!(app.get(&format!("variables/{id}")).await.1["name"], name);
    assert_eq!(app.get(&format!("variables/name/{name}")).await.1["id"], id);

    let (status, body) = app.post("variables/", json!({"name": name, "value": 1})).await;
    assert_eq!(status, 409);
    assert_eq!(body["detail"], format!("A variable with the name '{name}' already exists."));

    assert_eq!(app.patch(&format!("variables/name/{name}"), json!({"value": null})).await.0, 204);
    let (_, read) = app.get(&format!("variables/{id}")).await;
    assert_eq!(read["value"], json!(null));
    assert_eq!(read["tags"], json!(["t1"]), "fields not sent stay as they were");
    assert_eq!(app.patch(&format!("variables/{id}"), json!({"value": "x", "tags": ["t2"]})).await.0, 204);
    let (_, read) = app.get(&format!("variables/name/{name}")).await;
    assert_eq!((read["value"].clone(), read["tags"].clone()), (json!("x"), json!(["t2"])));

    assert_eq!(app.delete(&format!("variables/name/{name}")).await.0, 204);
    assert_eq!(app.get(&format!("variables/{id}")).await.0, 404);
    assert_eq!(app.delete(&format!("variables/{id}")).await.0, 404);
    assert_eq!(app.patch(&format!("variables/name/{name}"), json!({"value": 1})).await.0, 404);
    let (status, body) = app.get(&format!("variables/name/{name}")).await;
    assert_eq!((status, body), (404, json!({"detail": "Variable not found."})));
}

#[tokio::test]
async fn variable_names_values_and_tags_are_validated() {
    let app = spawn_app().await;
    let (status, body) = app.post("variables/", json!({"name": "Not Valid", "value": 1})).await;
    assert_eq!(status, 422);
    assert_eq!(body["exception_detail"][0]["loc"], json!(["body", "name"]));
    let (status, _) = app.post("variables/", json!({"name": "big", "value": "a".repeat(4999)})).await;
    assert_eq!(status, 422, "values serialize to at most 5000 bytes");
    assert_eq!(app.post("variables/", json!({"name": "fits", "value": "a".repeat(4998)})).await.0, 201);
    assert_eq!(app.post("variables/", json!({"name": "no_value"})).await.0, 422);
    assert_eq!(app.post("variables/", json!({"name": "tags", "value": 1, "tags": "x"})).await.0, 422);
    assert_eq!(app.post("variables/", json!({"name": "extra", "value": 1, "bogus": 1})).await.0, 422);
    assert_eq!(app.patch("variables/name/fits", json!({"name": "Bad Name"})).await.0, 422);
}

#[tokio::test]
async fn variables_filter_count_and_sort() {
    let app = spawn_app().await;
    for (name, tags) in [("alpha_one", json!(["x", "y"])), ("beta_two", json!(["x"])), ("gamma_three", json!([]))] {
        assert_eq!(app.post("variables/", json!({"name": name, "value": name, "tags": tags})).await.0, 201);
    }
    let names = |v: &serde_json::Value| v.as_array().unwrap().iter().map(|x| x["name"].as_str().unwrap().to_owned()).collect::<Vec<_>>();
    let (_, all) = app.post("variables/filter", json!({})).await;
    assert_eq!(names(&all), ["alpha_one", "beta_two", "gamma_three"], "NAME_ASC by default");
    let (_, desc) = app.post("variables/filter", json!({"sort": "NAME_DESC", "limit": 2})).await;
    assert_eq!(names(&desc), ["gamma_three", "beta_two"]);
    let (_, like) = app.post("variables/filter", json!({"variables": {"name": {"like_": "TWO"}}})).await;
    assert_eq!(names(&like), ["beta_two"], "like_ is a case-insensitive substring");
    let (_, tagged) = app.post("variables/filter", json!({"variables": {"tags": {"all_": ["x", "y"]}}})).await;
    assert_eq!(names(&tagged), ["alpha_one"]);
    let (_, untagged) = app.post("variables/filter", json!({"variables": {"tags": {"is_null_": true}}})).await;
    assert_eq!(names(&untagged), ["gamma_three"]);
    let (_, by_name) = app.post("variables/filter", json!({"variables": {"name": {"any_": ["beta_two", "nope"]}}})).await;
    assert_eq!(names(&by_name), ["beta_two"]);
    assert_eq!(app.post("variables/count", json!({"variables": {"tags": {"all_": ["x"]}}})).await.1, json!(2));
    assert_eq!(app.post("variables/count", json!({})).await.1, json!(3));
    assert_eq!(app.post("variables/filter", json!({"variables": {"bogus": {}}})).await.0, 422);
}
