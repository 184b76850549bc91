use prefect_testing::spawn_app;
use serde_json::json;

use crate::support::unique;

#[tokio::test]
async fn flows_upsert_by_name_and_read_back() {
    let app = spawn_app().await;
    let name = unique("etl");
    let (first, created) = app.post("flows/", json!({"name": name, "tags": ["a"]})).await;
    let (second, existing) = app.post("flows/", json!({"name": name})).await;
    assert_eq!((first, second), (201, 200));
    assert_eq!(created["id"], existing["id"]);
    assert_eq!(created["tags"], json!(["a"]));

    let id = created["id"].as_str().unwrap();
    assert_eq!(app.get(&format!("flows/{id}")).await.1["name"], name);
    assert_eq!(app.get(&format!("flows/name/{name}")).await.1["id"], id);

    assert_eq!(app.patch(&format!("flows/{id}"), json!({"tags": ["x", "y"]})).await.0, 204);
    assert_eq!(app.get(&format!("flows/{id}")).await.1["tags"], json!(["x", "y"]));

    let (_, found) = app.post("flows/filter", json!({"flows": {"tags": {"all_": ["x", "y"]}}})).await;
    assert_eq!(found.as_array().unwrap().len(), 1);
    let (_, count) = app.post("flows/count", json!({"flows": {"name": {"any_": [name]}}})).await;
    assert_eq!(count, json!(1));

    assert_eq!(app.delete(&format!("flows/{id}")).await.0, 204);
    assert_eq!(app.get(&format!("flows/{id}")).await.0, 404);
    assert_eq!(app.delete(&format!("flows/{id}")).await.0, 404);
}

#[tokio::test]
async fn flows_sort_and_paginate() {
    let app = spawn_app().await;
    let tag = unique("page");
    for name in ["b", "a", "c"] {
        app.post("flows/", json!({"name": format!("{tag}-{name}"), "tags": [tag]})).await;
    }
    let (_, page) = app.post("flows/paginate", json!({"flows": {"tags": {"all_": [tag]}}, "limit": 2, "page": 2, "sort": "NAME_ASC"})).await;
    assert_eq!((page["count"].as_u64(), page["pages"].as_u64(), page["page"].as_u64()), (Some(3), Some(2), Some(2)));
    assert_eq!(page["results"][0]["name"], format!("{tag}-c"));
    let (_, desc) = app.post("flows/filter", json!({"flows": {"tags": {"all_": [tag]}}, "sort": "NAME_DESC", "limit": 1})).await;
    assert_eq!(desc[0]["name"], format!("{tag}-c"));
    let (_, deleted) = app.post("flows/bulk_delete", json!({"flows": {"tags": {"all_": [tag]}}})).await;
    assert_eq!(deleted["deleted"].as_array().unwrap().len(), 3);
}
