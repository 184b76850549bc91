use prefect_testing::{TestApp, spawn_app};
use serde_json::{Value, json};

use crate::support::unique;

fn schema_fields(slug: &str, secret_fields: Value) -> Value {
    json!({
        "title": slug, "type": "object", "block_type_slug": slug, "secret_fields": secret_fields,
        "properties": {"token": {"type": "string", "format": "password", "writeOnly": true}, "headers": {"type": "object"}, "url": {"type": "string"}},
    })
}

/// Creates a block type and a schema with the given secret fields; returns (type id, schema id).
async fn block_type_with_schema(app: &TestApp, slug: &str, secret_fields: Value, capabilities: Value) -> (String, String) {
    let (status, block_type) = app.post("block_types/", json!({"name": slug, "slug": slug})).await;
    assert_eq!(status, 201, "{block_type}");
    let fields = schema_fields(slug, secret_fields);
    let (status, schema) = app.post("block_schemas/", json!({"fields": fields, "block_type_id": block_type["id"], "capabilities": capabilities})).await;
    assert_eq!(status, 201, "{schema}");
    (block_type["id"].as_str().unwrap().to_owned(), schema["id"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn system_block_types_are_registered_on_start() {
    let app = spawn_app().await;
    for slug in ["secret", "local-file-system", "webhook", "remote-file-system", "smb", "slack-webhook", "custom-webhook"] {
        let (status, block_type) = app.get(&format!("block_types/slug/{slug}")).await;
        assert_eq!(status, 200, "{slug}: {block_type}");
    }
    let (_, secret) = app.get("block_types/slug/secret").await;
    assert_eq!(secret["is_protected"], true);
    let (_, schemas) = app.post("block_schemas/filter", json!({"block_schemas": {"block_type_id": {"any_": [secret["id"]]}}})).await;
    assert_eq!(schemas.as_array().unwrap().len(), 1);
    assert!(schemas[0]["fields"]["secret_fields"].as_array().unwrap().contains(&json!("value")));
    assert!(schemas[0]["checksum"].as_str().unwrap().starts_with("sha256:"));
    let (status, _) = app.post("block_types/install_system_block_types", json!({})).await;
    assert_eq!(status, 200);
    let (_, again) = app.post("block_schemas/filter", json!({"block_schemas": {"block_type_id": {"any_": [secret["id"]]}}})).await;
    assert_eq!(again.as_array().unwrap().len(), 1, "registration is idempotent");
    let (_, capabilities) = app.get("block_capabilities/").await;
    for capability in ["write-path", "read-path", "notify"] {
        assert!(capabilities.as_array().unwrap().contains(&json!(capability)), "{capabilities}");
    }
    assert_eq!(app.delete(&format!("block_types/{}", secret["id"].as_str().unwrap())).await.0, 403, "protected types stay");
    assert_eq!(app.delete(&format!("block_schemas/{}", schemas[0]["id"].as_str().unwrap())).await.0, 403);
}

/// Registering again writes nothing while every shipped type and schema is stored as shipped,
/// and restores whatever differs.
#[tokio::test]
async fn system_block_types_register_again_only_what_differs() {
    use prefect_storage::ConnectionTrait;
    let app = spawn_app().await;
    let (_, secret) = app.get("block_types/slug/secret").await;
    assert_eq!(app.post("block_types/install_system_block_types", json!({})).await.0, 200);
    let (_, unchanged) = app.get("block_types/slug/secret").await;
    assert_eq!(unchanged["updated"], secret["updated"], "nothing was written");

    let db = app.core.db();
    let txn = db.begin_write().await.unwrap();
    for sql in [
        "UPDATE block_type SET description = 'changed' WHERE slug = 'secret'",
        "DELETE FROM block_schema WHERE block_type_id IN (SELECT id FROM block_type WHERE slug = 'webhook')",
    ] {
        txn.execute_unprepared(sql).await.unwrap();
    }
    prefect_storage::commit(txn).await.unwrap();
    let (_, webhook) = app.get("block_types/slug/webhook").await;
    let webhook_schemas = || app.post("block_schemas/filter", json!({"block_schemas": {"block_type_id": {"any_": [webhook["id"]]}}}));
    assert_eq!(webhook_schemas().await.1.as_array().unwrap().len(), 0);

    assert_eq!(app.post("block_types/install_system_block_types", json!({})).await.0, 200);
    let (_, restored) = app.get("block_types/slug/secret").await;
    assert_eq!(restored["description"], secret["description"]);
    assert_ne!(restored["updated"], secret["updated"]);
    assert_eq!(webhook_schemas().await.1.as_array().unwrap().len(), 1, "the deleted schema is registered again");
}

#[tokio::test]
async fn block_types_create_read_update_filter_delete() {
    let app = spawn_app().await;
    let slug = unique("bt");
    let (status, created) = app.post("block_types/", json!({"name": format!("My {slug}"), "slug": slug, "description": "a <b>"})).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["description"], "a &lt;b&gt;");
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(app.post("block_types/", json!({"name": format!("My {slug}"), "slug": slug})).await.0, 409);
    assert_eq!(app.post("block_types/", json!({"name": "PrefectThing", "slug": unique("p")})).await.0, 403);
    assert_eq!(app.post("block_types/", json!({"name": "x", "slug": "Not A Slug"})).await.0, 422);
    assert_eq!(app.get(&format!("block_types/{id}")).await.1["slug"], slug);
    assert_eq!(app.get(&format!("block_types/slug/{slug}")).await.1["id"], id);
    assert_eq!(app.patch(&format!("block_types/{id}"), json!({"logo_url": "https://x.invalid/logo.png", "description": null})).await.0, 204);
    let (_, updated) = app.get(&format!("block_types/{id}")).await;
    assert_eq!((updated["logo_url"].clone(), updated["description"].clone()), (json!("https://x.invalid/logo.png"), Value::Null));
    let (_, found) = app.post("block_types/filter", json!({"block_types": {"name": {"like_": slug.to_uppercase()}}})).await;
    assert_eq!(found.as_array().unwrap().len(), 1);
    let (_, found) = app.post("block_types/filter", json!({"block_types": {"slug": {"any_": [slug, "secret"]}}})).await;
    assert_eq!(found.as_array().unwrap().len(), 2);
    assert_eq!(app.delete(&format!("block_types/{id}")).await.0, 204);
    assert_eq!(app.get(&format!("block_types/{id}")).await.0, 404);
    assert_eq!(app.get(&format!("block_types/slug/{slug}")).await.1, json!({"detail": "Block type not found"}));
    assert_eq!(app.patch(&format!("block_types/{id}"), json!({})).await.0, 404);
}

#[tokio::test]
async fn block_schemas_by_checksum_version_and_capabilities() {
    let app = spawn_app().await;
    let slug = unique("bs");
    let (type_id, schema_id) = block_type_with_schema(&app, &slug, json!(["token"]), json!(["read-path", "x-cap"])).await;
    let (_, schema) = app.get(&format!("block_schemas/{schema_id}")).await;
    assert_eq!(schema["version"], "non-versioned");
    assert_eq!(schema["block_type"]["slug"], slug);
    assert_eq!(schema["fields"]["block_schema_references"], json!({}));
    let checksum = schema["checksum"].as_str().unwrap().to_owned();
    assert_eq!(app.get(&format!("block_schemas/checksum/{checksum}")).await.1["id"], schema_id);
    assert_eq!(app.get(&format!("block_schemas/checksum/{checksum}?version=2.0")).await.0, 404);
    let fields = schema_fields(&slug, json!(["token"]));
    let (status, same) = app.post("block_schemas/", json!({"fields": fields, "block_type_id": type_id})).await;
    assert_eq!((status, same["id"].clone()), (200, json!(schema_id)), "an identical schema is returned, not duplicated");
    let (status, v2) = app.post("block_schemas/", json!({"fields": fields, "block_type_id": type_id, "version": "2.0"})).await;
    assert_eq!(status, 201);
    assert_eq!(v2["checksum"], checksum, "same fields, same checksum");
    assert_eq!(app.get(&format!("block_schemas/checksum/{checksum}?version=2.0")).await.1["id"], v2["id"]);
    let (_, with_cap) = app.post("block_schemas/filter", json!({"block_schemas": {"block_capabilities": {"all_": ["x-cap", "read-path"]}}})).await;
    assert_eq!(with_cap.as_array().unwrap().len(), 1);
    let (_, versions) = app.post("block_schemas/filter", json!({"block_schemas": {"version": {"any_": ["2.0"]}}})).await;
    assert_eq!(versions.as_array().unwrap().len(), 1);
    let (_, types) = app.post("block_types/filter", json!({"block_schemas": {"block_capabilities": {"all_": ["x-cap"]}}})).await;
    assert_eq!(types[0]["slug"], slug);
    assert!(app.get("block_capabilities/").await.1.as_array().unwrap().contains(&json!("x-cap")));
    let (status, body) = app.post("block_schemas/", json!({"fields": {}, "block_type_id": uuid::Uuid::new_v4()})).await;
    assert_eq!(status, 404, "{body}");
    let missing_reference =
        json!({"properties": {}, "block_schema_references": {"inner": {"block_type_slug": "no-such-type", "block_schema_checksum": "sha256:0"}}});
    assert_eq!(app.post("block_schemas/", json!({"fields": missing_reference, "block_type_id": type_id})).await.0, 409);
    assert_eq!(app.delete(&format!("block_schemas/{}", v2["id"].as_str().unwrap())).await.0, 204);
    assert_eq!(app.get(&format!("block_schemas/{}", v2["id"].as_str().unwrap())).await.0, 404);
}

#[tokio::test]
async fn secrets_are_hidden_unless_asked_for() {
    let app = spawn_app().await;
    let slug = unique("sec");
    let (type_id, schema_id) = block_type_with_schema(&app, &slug, json!(["token", "headers.*"]), json!([])).await;
    let data = json!({"token": "hunter2", "headers": {"Authorization": "Bearer abc", "X-Other": "def"}, "url": "https://x.invalid"});
    let (status, created) = app.post("block_documents/", json!({"name": "doc", "data": data, "block_schema_id": schema_id, "block_type_id": type_id})).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let hidden = json!({"token": "********", "headers": {"Authorization": "********", "X-Other": "********"}, "url": "https://x.invalid"});
    assert_eq!(created["data"], hidden);
    assert!(!created.to_string().contains("hunter2"));
    assert_eq!(app.get(&format!("block_documents/{id}")).await.1["data"], hidden);
    assert_eq!(app.get(&format!("block_documents/{id}?include_secrets=true")).await.1["data"], data);
    assert_eq!(app.get(&format!("block_types/slug/{slug}/block_documents/name/doc")).await.1["data"], hidden);
    assert_eq!(app.get(&format!("block_types/slug/{slug}/block_documents/name/doc?include_secrets=true")).await.1["data"], data);
    assert_eq!(app.get(&format!("block_types/slug/{slug}/block_documents")).await.1[0]["data"], hidden);
    let (_, listed) = app.post("block_documents/filter", json!({"block_types": {"slug": {"any_": [slug]}}})).await;
    assert_eq!(listed[0]["data"], hidden);
    let (_, listed) = app.post("block_documents/filter", json!({"block_types": {"slug": {"any_": [slug]}}, "include_secrets": true})).await;
    assert_eq!(listed[0]["data"], data);

    // Sending the hidden values back keeps the stored secrets.
    let update = json!({"data": {"token": "********", "headers": {"Authorization": "********", "X-Other": "new"}, "url": "https://y.invalid"}});
    assert_eq!(app.patch(&format!("block_documents/{id}"), update).await.0, 204);
    let (_, revealed) = app.get(&format!("block_documents/{id}?include_secrets=true")).await;
    assert_eq!(revealed["data"], json!({"token": "hunter2", "headers": {"Authorization": "Bearer abc", "X-Other": "new"}, "url": "https://y.invalid"}));

    // A secret system block with a JSON value is hidden as a whole.
    let (_, secret_type) = app.get("block_types/slug/secret").await;
    let (_, secret_schemas) = app.post("block_schemas/filter", json!({"block_schemas": {"block_type_id": {"any_": [secret_type["id"]]}}})).await;
    let value = json!({"user": "me", "password": "p4ss"});
    let (status, secret) = app
        .post(
            "block_documents/",
            json!({"name": "json-secret", "data": {"value": value}, "block_schema_id": secret_schemas[0]["id"], "block_type_id": secret_type["id"]}),
        )
        .await;
    assert_eq!(status, 201, "{secret}");
    assert_eq!(secret["data"], json!({"value": "********"}));
    assert_eq!(app.get(&format!("block_documents/{}?include_secrets=true", secret["id"].as_str().unwrap())).await.1["data"]["value"], value);
}

#[tokio::test]
async fn block_documents_crud_filter_count_and_errors() {
    let app = spawn_app().await;
    let slug = unique("doc");
    let (type_id, schema_id) = block_type_with_schema(&app, &slug, json!([]), json!([])).await;
    let create = |name: Value, anonymous: bool| json!({"name": name, "data": {"url": "u"}, "block_schema_id": schema_id, "block_type_id": type_id, "is_anonymous": anonymous});
    let (_, b) = app.post("block_documents/", create(json!("bravo"), false)).await;
    let (_, a) = app.post("block_documents/", create(json!("alpha"), false)).await;
    let (status, anonymous) = app.post("block_documents/", create(Value::Null, true)).await;
    assert_eq!(status, 201);
    assert!(anonymous["name"].as_str().unwrap().starts_with("anonymous-"));
    assert_eq!(app.post("block_documents/", create(json!("alpha"), false)).await, (409, json!({"detail": "Block already exists"})));
    assert_eq!(app.post("block_documents/", create(Value::Null, false)).await.0, 422, "named unless anonymous");
    assert_eq!(app.post("block_documents/", create(json!("Not Valid"), false)).await.0, 422);

    let names = |v: &Value| v.as_array().unwrap().iter().map(|d| d["name"].as_str().unwrap().to_owned()).collect::<Vec<_>>();
    let by_type = json!({"block_types": {"slug": {"any_": [slug]}}});
    assert_eq!(names(&app.post("block_documents/filter", by_type.clone()).await.1), ["alpha", "bravo"], "named only, NAME_ASC");
    let (_, desc) = app.post("block_documents/filter", json!({"block_types": {"slug": {"any_": [slug]}}, "sort": "NAME_DESC", "limit": 1})).await;
    assert_eq!(names(&desc), ["bravo"]);
    let (_, all) = app.post("block_documents/filter", json!({"block_types": {"slug": {"any_": [slug]}}, "block_documents": {"is_anonymous": null}})).await;
    assert_eq!(all.as_array().unwrap().len(), 3);
    let (_, like) = app.post("block_documents/filter", json!({"block_documents": {"name": {"like_": "ALP"}, "block_type_id": {"any_": [type_id]}}})).await;
    assert_eq!(names(&like), ["alpha"]);
    assert_eq!(app.post("block_documents/count", by_type.clone()).await.1, json!(2));
    assert_eq!(
        app.post("block_documents/count", json!({"block_documents": {"is_anonymous": {"eq_": true}, "block_type_id": {"any_": [type_id]}}})).await.1,
        json!(1)
    );

    let a_id = a["id"].as_str().unwrap();
    assert_eq!(app.patch(&format!("block_documents/{a_id}"), json!({"data": {"extra": 1}})).await.0, 204);
    assert_eq!(app.get(&format!("block_documents/{a_id}")).await.1["data"], json!({"url": "u", "extra": 1}), "merged by default");
    assert_eq!(app.patch(&format!("block_documents/{a_id}"), json!({"data": {"only": 2}, "merge_existing_data": false})).await.0, 204);
    assert_eq!(app.get(&format!("block_documents/{a_id}")).await.1["data"], json!({"only": 2}));
    let other_type = unique("other");
    let (_, other_schema) = block_type_with_schema(&app, &other_type, json!([]), json!([])).await;
    let (status, _) = app.patch(&format!("block_documents/{a_id}"), json!({"data": {}, "block_schema_id": other_schema})).await;
    assert_eq!(status, 400, "a document keeps its block type");

    assert_eq!(app.delete(&format!("block_documents/{}", b["id"].as_str().unwrap())).await.0, 204);
    assert_eq!(app.get(&format!("block_documents/{}", b["id"].as_str().unwrap())).await, (404, json!({"detail": "Block document not found"})));
    assert_eq!(app.delete(&format!("block_documents/{}", b["id"].as_str().unwrap())).await.0, 404);
    assert_eq!(app.patch(&format!("block_documents/{}", uuid::Uuid::new_v4()), json!({"data": {}})).await.0, 404);
    assert_eq!(app.get(&format!("block_types/slug/{slug}/block_documents/name/bravo")).await.0, 404);
    let unknown_schema = json!({"name": "x", "data": {}, "block_schema_id": uuid::Uuid::new_v4(), "block_type_id": type_id});
    assert_eq!(app.post("block_documents/", unknown_schema).await.0, 409);
    let bad_reference = json!({"name": "y", "data": {"inner": {"$ref": {}}}, "block_schema_id": schema_id, "block_type_id": type_id});
    assert_eq!(app.post("block_documents/", bad_reference).await.0, 400);
}

#[tokio::test]
async fn nested_blocks_resolve_references() {
    let app = spawn_app().await;
    let inner_slug = unique("inner");
    let outer_slug = unique("outer");
    let (inner_type, inner_schema) = block_type_with_schema(&app, &inner_slug, json!(["token"]), json!([])).await;
    let inner_checksum = app.get(&format!("block_schemas/{inner_schema}")).await.1["checksum"].clone();
    let (_, outer_type) = app.post("block_types/", json!({"name": outer_slug, "slug": outer_slug})).await;
    let outer_fields = json!({
        "title": "Outer", "type": "object", "block_type_slug": outer_slug, "secret_fields": ["creds.token"],
        "properties": {"creds": {"$ref": "#/definitions/Inner"}, "label": {"type": "string"}},
        "block_schema_references": {"creds": {"block_type_slug": inner_slug, "block_schema_checksum": inner_checksum}},
        "definitions": {"Inner": {"title": inner_slug, "block_type_slug": inner_slug, "type": "object"}},
    });
    let (status, outer_schema) = app.post("block_schemas/", json!({"fields": outer_fields, "block_type_id": outer_type["id"]})).await;
    assert_eq!(status, 201, "{outer_schema}");
    assert_eq!(outer_schema["fields"]["block_schema_references"]["creds"], json!({"block_schema_checksum": inner_checksum, "block_type_slug": inner_slug}));
    assert!(outer_schema["fields"]["definitions"][&inner_slug].is_object(), "nested schemas appear as definitions");

    let (_, inner) = app
        .post("block_documents/", json!({"name": "inner", "data": {"token": "t0p", "url": "u"}, "block_schema_id": inner_schema, "block_type_id": inner_type}))
        .await;
    let (status, outer) = app
        .post(
            "block_documents/",
            json!({"name": "outer", "data": {"label": "L", "creds": {"$ref": {"block_document_id": inner["id"]}}},
                   "block_schema_id": outer_schema["id"], "block_type_id": outer_type["id"]}),
        )
        .await;
    assert_eq!(status, 201, "{outer}");
    assert_eq!(outer["data"], json!({"label": "L", "creds": {"token": "********", "url": "u"}}));
    assert_eq!(outer["block_document_references"]["creds"]["block_document"]["id"], inner["id"]);
    assert_eq!(outer["block_document_references"]["creds"]["block_document"]["block_type"]["slug"], inner_slug);
    let outer_id = outer["id"].as_str().unwrap();
    let (_, revealed) = app.get(&format!("block_documents/{outer_id}?include_secrets=true")).await;
    assert_eq!(revealed["data"]["creds"]["token"], "t0p");
    let missing = json!({"name": "dangling", "data": {"creds": {"$ref": {"block_document_id": uuid::Uuid::new_v4()}}},
                         "block_schema_id": outer_schema["id"], "block_type_id": outer_type["id"]});
    assert_eq!(app.post("block_documents/", missing).await.0, 409);
    // Updating without the reference drops it, as Prefect does.
    assert_eq!(app.patch(&format!("block_documents/{outer_id}"), json!({"data": {"label": "M"}, "merge_existing_data": false})).await.0, 204);
    let (_, updated) = app.get(&format!("block_documents/{outer_id}")).await;
    assert_eq!(updated["data"], json!({"label": "M"}));
    assert_eq!(updated["block_document_references"], json!({}));
}

#[tokio::test]
async fn default_result_storage_needs_a_writable_block() {
    let app = spawn_app().await;
    let (_, fs_type) = app.get("block_types/slug/local-file-system").await;
    let (_, fs_schemas) = app.post("block_schemas/filter", json!({"block_schemas": {"block_type_id": {"any_": [fs_type["id"]]}}})).await;
    let (status, storage) = app
        .post(
            "block_documents/",
            json!({"name": "results", "data": {"basepath": "/tmp/results"}, "block_schema_id": fs_schemas[0]["id"], "block_type_id": fs_type["id"]}),
        )
        .await;
    assert_eq!(status, 201, "{storage}");
    let (status, set) = app.put("admin/storage", json!({"default_result_storage_block_id": storage["id"]})).await;
    assert_eq!(status, 200, "{set}");
    assert_eq!(app.get("admin/storage").await.1["default_result_storage_block_id"], storage["id"]);

    let (_, secret_type) = app.get("block_types/slug/secret").await;
    let (_, secret_schemas) = app.post("block_schemas/filter", json!({"block_schemas": {"block_type_id": {"any_": [secret_type["id"]]}}})).await;
    let (_, secret) = app
        .post("block_documents/", json!({"name": "s", "data": {"value": "v"}, "block_schema_id": secret_schemas[0]["id"], "block_type_id": secret_type["id"]}))
        .await;
    assert_eq!(app.put("admin/storage", json!({"default_result_storage_block_id": secret["id"]})).await.0, 422, "a secret cannot store results");
    assert_eq!(app.put("admin/storage", json!({"default_result_storage_block_id": uuid::Uuid::new_v4()})).await.0, 404);

    assert_eq!(app.delete(&format!("block_documents/{}", storage["id"].as_str().unwrap())).await.0, 204);
    assert_eq!(app.get("admin/storage").await.1["default_result_storage_block_id"], Value::Null, "deleting the block clears the default");
}
