use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use prefect_testing::spawn_app;
use serde_json::json;

use crate::support::unique;

#[tokio::test]
async fn global_limits_crud_and_errors() {
    let app = spawn_app().await;
    let name = unique("gcl");
    let (status, limit) = app.post("v2/concurrency_limits/", json!({"name": name, "limit": 2})).await;
    assert_eq!(status, 201, "{limit}");
    assert_eq!(app.post("v2/concurrency_limits/", json!({"name": name, "limit": 2})).await.0, 409);
    assert_eq!(app.get(&format!("v2/concurrency_limits/{name}")).await.1["id"], limit["id"]);
    assert_eq!(app.get(&format!("v2/concurrency_limits/{}", limit["id"].as_str().unwrap())).await.1["name"], name);
    assert_eq!(app.patch(&format!("v2/concurrency_limits/{name}"), json!({"limit": 5})).await.0, 204);
    assert_eq!(app.get(&format!("v2/concurrency_limits/{name}")).await.1["limit"], 5);
    let (_, all) = app.post("v2/concurrency_limits/filter", json!({})).await;
    assert!(all.as_array().unwrap().iter().any(|l| l["name"] == name));
    assert_eq!(app.post("v2/concurrency_limits/", json!({"name": unique("neg"), "limit": -1})).await.0, 422);
    let (status, _) = app.post("v2/concurrency_limits/increment", json!({"names": [name], "slots": 6})).await;
    assert_eq!(status, 422, "more slots than the limit");
    assert_eq!(app.delete(&format!("v2/concurrency_limits/{name}")).await.0, 204);
    assert_eq!(app.get(&format!("v2/concurrency_limits/{name}")).await.0, 404);
}

#[tokio::test]
async fn full_limits_answer_423_with_retry_after_and_leases_renew_or_410() {
    let app = spawn_app().await;
    let name = unique("gcl");
    app.post("v2/concurrency_limits/", json!({"name": name, "limit": 1})).await;
    let body = json!({"names": [name], "slots": 1, "mode": "concurrency", "lease_duration": 60});
    let (status, lease) = app.post("v2/concurrency_limits/increment-with-lease", body.clone()).await;
    assert_eq!(status, 200, "{lease}");
    assert_eq!(lease["limits"][0]["name"], name);
    let response = app.client.post(app.url("v2/concurrency_limits/increment-with-lease")).json(&body).send().await.unwrap();
    assert_eq!(response.status(), 423);
    let retry_after: f64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry_after >= 0.0);

    let lease_id = lease["lease_id"].as_str().unwrap();
    assert_eq!(app.post(&format!("v2/concurrency_limits/leases/{lease_id}/renew"), json!({"lease_duration": 120})).await.0, 204);
    assert_eq!(app.post("v2/concurrency_limits/decrement-with-lease", json!({"lease_id": lease_id})).await.0, 204);
    assert_eq!(app.get(&format!("v2/concurrency_limits/{name}")).await.1["active_slots"], 0);
    assert_eq!(app.post(&format!("v2/concurrency_limits/leases/{lease_id}/renew"), json!({})).await.0, 410);
    assert_eq!(app.post("v2/concurrency_limits/decrement-with-lease", json!({"lease_id": lease_id})).await.0, 204, "unknown leases are a no-op");

    // Unknown names acquire nothing, but a lease id is still returned.
    let (status, empty) = app.post("v2/concurrency_limits/increment-with-lease", json!({"names": [unique("none")], "slots": 1})).await;
    assert_eq!(status, 200);
    assert!(empty["lease_id"].is_string() && empty["limits"] == json!([]));
}

#[tokio::test]
async fn expired_leases_are_reclaimed() {
    let app = spawn_app().await;
    let name = unique("gcl");
    app.post("v2/concurrency_limits/", json!({"name": name, "limit": 1})).await;
    app.post("v2/concurrency_limits/increment-with-lease", json!({"names": [name], "slots": 1, "lease_duration": 60})).await;
    assert_eq!(app.core.reclaim_expired_leases(100).await.unwrap(), 0, "the lease is still valid");
    assert_eq!(app.get(&format!("v2/concurrency_limits/{name}")).await.1["active_slots"], 1);
}

#[tokio::test]
async fn tag_limit_view_and_v1_slots() {
    let app = spawn_app().await;
    let tag = unique("tag");
    let (status, created) = app.post("concurrency_limits/", json!({"tag": tag, "concurrency_limit": 2})).await;
    assert_eq!(status, 201);
    let (status, _) = app.post("concurrency_limits/", json!({"tag": tag, "concurrency_limit": 3})).await;
    assert_eq!(status, 200, "an existing tag is resized");
    assert_eq!(app.get(&format!("v2/concurrency_limits/tag:{tag}")).await.1["limit"], 3);
    let task = uuid::Uuid::new_v4();
    let (status, acquired) = app.post("concurrency_limits/increment", json!({"names": [tag], "task_run_id": task})).await;
    assert_eq!(status, 200);
    assert_eq!(acquired[0]["name"], tag);
    let (_, view) = app.get(&format!("concurrency_limits/{}", created["id"].as_str().unwrap())).await;
    assert_eq!(view["active_slots"], json!([task]));
    app.post("concurrency_limits/decrement", json!({"names": [tag], "task_run_id": task})).await;
    assert_eq!(app.get(&format!("concurrency_limits/tag/{tag}")).await.1["active_slots"], json!([]));
    let (_, all) = app.post("concurrency_limits/filter", json!({})).await;
    assert!(all.as_array().unwrap().iter().any(|l| l["tag"] == tag));
    assert_eq!(app.post(&format!("concurrency_limits/tag/{tag}/reset"), json!({"slot_override": [task]})).await.0, 200);
    assert_eq!(app.get(&format!("concurrency_limits/tag/{tag}")).await.1["active_slots"], json!([task]));
    assert_eq!(app.delete(&format!("concurrency_limits/tag/{tag}")).await.0, 200);
    assert_eq!(app.get(&format!("concurrency_limits/tag/{tag}")).await.0, 404);
}

/// Many clients race for a limit of 3: at no moment do more than 3 hold a slot,
/// and every slot comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hammered_limit_never_exceeds_its_size_or_goes_negative() {
    let app = Arc::new(spawn_app().await);
    let name = unique("hammer");
    app.post("v2/concurrency_limits/", json!({"name": name, "limit": 3})).await;
    let holders = Arc::new(AtomicI64::new(0));
    let max_seen = Arc::new(AtomicI64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..24 {
        let (app, name, holders, max_seen) = (app.clone(), name.clone(), holders.clone(), max_seen.clone());
        tasks.push(tokio::spawn(async move {
            let mut acquired = 0;
            while acquired < 5 {
                let body = json!({"names": [name], "slots": 1, "lease_duration": 60});
                let (status, lease) = app.post("v2/concurrency_limits/increment-with-lease", body).await;
                match status {
                    200 => {
                        let now = holders.fetch_add(1, Ordering::SeqCst) + 1;
                        max_seen.fetch_max(now, Ordering::SeqCst);
                        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                        holders.fetch_sub(1, Ordering::SeqCst);
                        let (status, _) = app.post("v2/concurrency_limits/decrement-with-lease", json!({"lease_id": lease["lease_id"]})).await;
                        assert_eq!(status, 204);
                        acquired += 1;
                    }
                    423 => tokio::time::sleep(std::time::Duration::from_millis(3)).await,
                    other => panic!("unexpected {other}: {lease}"),
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert!(max_seen.load(Ordering::SeqCst) <= 3, "more than 3 holders at once: {}", max_seen.load(Ordering::SeqCst));
    assert!(max_seen.load(Ordering::SeqCst) >= 1);
    let (_, limit) = app.get(&format!("v2/concurrency_limits/{name}")).await;
    assert_eq!(limit["active_slots"], 0, "every slot came back: {limit}");
}
