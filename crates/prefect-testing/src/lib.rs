//! Test helpers: a migrated throwaway database, and the real server on a random port.
//!
//! By default [`TestDb`] is a SQLite file in a temporary directory. When
//! `PREFECT_TEST_DATABASE_URL` points at PostgreSQL (for example
//! `postgres://postgres@127.0.0.1:5432/postgres`), each test gets its own
//! freshly created database, dropped when the test ends. The same tests thus
//! run on both backends (`just test`, `just test-pg`).

use std::net::TcpListener;
use std::sync::Arc;

use prefect_api::{ApiSettings, ApiState};
use prefect_core::{Core, CoreSettings};
use prefect_services::{EventPipeline, EventPipelineOptions, Triggers, TriggersOptions};
use prefect_storage::{Backend, Database, DatabaseOptions};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// The environment variable that selects PostgreSQL for tests.
pub const TEST_DATABASE_URL: &str = "PREFECT_TEST_DATABASE_URL";

enum Cleanup {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

/// A migrated database that disappears with the value.
pub struct TestDb {
    pub db: Database,
    pub url: String,
    cleanup: Option<Cleanup>,
}

impl TestDb {
    /// A fresh, migrated database on the backend chosen by `PREFECT_TEST_DATABASE_URL`.
    pub async fn new() -> TestDb {
        match std::env::var(TEST_DATABASE_URL).ok().filter(|u| !u.is_empty()) {
            Some(admin_url) if admin_url.starts_with("postgres") => Self::postgres(admin_url).await,
            _ => Self::sqlite().await,
        }
    }

    async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = format!("sqlite://{}", dir.path().join("prefect.db").display());
        let db = Database::connect(&DatabaseOptions { url: url.clone(), ..Default::default() }).await.expect("connect to SQLite");
        prefect_storage::migrate(&db).await.expect("migrate SQLite");
        TestDb { db, url, cleanup: Some(Cleanup::Sqlite(dir)) }
    }

    async fn postgres(admin_url: String) -> TestDb {
        let name = format!("prefect_test_{}", uuid::Uuid::new_v4().simple());
        let admin = Database::connect(&DatabaseOptions { url: admin_url.clone(), pool_size: 2, ..Default::default() }).await.expect("connect to PostgreSQL");
        use prefect_storage::ConnectionTrait;
        admin.writer().execute_unprepared(&format!("CREATE DATABASE \"{name}\"")).await.expect("create test database");
        admin.close().await.ok();
        let url = match admin_url.rfind('/') {
            Some(slash) => format!("{}/{name}", &admin_url[..slash]),
            None => panic!("{TEST_DATABASE_URL} must end with a database name"),
        };
        let db = Database::connect(&DatabaseOptions { url: url.clone(), pool_size: 10, ..Default::default() }).await.expect("connect to test database");
        prefect_storage::migrate(&db).await.expect("migrate PostgreSQL");
        TestDb { db, url, cleanup: Some(Cleanup::Postgres { admin_url, name }) }
    }

    pub fn backend(&self) -> Backend {
        self.db.backend()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(Cleanup::Postgres { admin_url, name }) = self.cleanup.take() {
            // Dropping needs async I/O; do it on a short-lived runtime of its own thread.
            let _ = std::thread::spawn(move || {
                let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
                runtime.block_on(async move {
                    if let Ok(admin) = Database::connect(&DatabaseOptions { url: admin_url, pool_size: 2, ..Default::default() }).await {
                        use prefect_storage::ConnectionTrait;
                        let _ = admin.writer().execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await;
                        let _ = admin.close().await;
                    }
                });
            })
            .join();
        }
    }
}

/// The real server, listening on a random local port, over a [`TestDb`].
pub struct TestApp {
    /// Base URL of the API, e.g. `http://127.0.0.1:41234/api`.
    pub api: String,
    pub client: reqwest::Client,
    pub core: Core,
    shutdown: CancellationToken,
    server: actix_web::dev::ServerHandle,
    pub db: Arc<TestDb>,
}

/// Options for [`spawn_app_with`].
#[derive(Default, Clone)]
pub struct AppOptions {
    pub core: CoreSettings,
    pub api: ApiSettings,
    /// Run no event pipeline (events then stay queued).
    pub without_event_pipeline: bool,
}

/// Server logs go to the test output when `PREFECT_TEST_LOG` holds a filter (e.g. `warn`).
fn init_logging() {
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| {
        if let Ok(filter) = std::env::var("PREFECT_TEST_LOG") {
            let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
        }
    });
}

/// Starts the server with default settings.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(AppOptions::default()).await
}

/// Starts the server with the given settings.
pub async fn spawn_app_with(options: AppOptions) -> TestApp {
    init_logging();
    // reqwest is built with TLS but no crypto provider of its own (prefect-core's webhooks
    // bring ring); the test client needs the process default.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let db = Arc::new(TestDb::new().await);
    let (core, events) = Core::new(db.db.clone(), options.core.clone());
    // The real server registers the block types it ships on start.
    core.install_system_block_types().await.expect("register the system block types");
    let shutdown = CancellationToken::new();
    if !options.without_event_pipeline {
        let (feed, batches) = prefect_services::triggers::feed(64);
        let pipeline = EventPipeline::new(EventPipelineOptions { flush_interval_ms: 5, ..Default::default() }, core.clone(), events).with_triggers(feed);
        tokio::spawn(pipeline.run(shutdown.clone()));
        // Proactive triggers are checked every second here (5 s in the server) so tests stay short.
        let triggers = TriggersOptions { proactive_granularity_seconds: 1.0, ..Default::default() };
        tokio::spawn(Triggers::new(triggers, core.clone(), batches).run(shutdown.clone()));
    }
    let state = ApiState::new(core.clone(), options.api.clone());
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a random port");
    let port = listener.local_addr().expect("local address").port();
    let server = actix_web::HttpServer::new(move || prefect_api::app(state.clone())).workers(2).disable_signals().listen(listener).expect("listen").run();
    let handle = server.handle();
    tokio::spawn(server);
    TestApp { api: format!("http://127.0.0.1:{port}/api"), client: reqwest::Client::new(), core, shutdown, server: handle, db }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.api, path.trim_start_matches('/'))
    }

    /// `GET`; returns status and JSON body (`Value::Null` when empty).
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self.client.get(self.url(path)).send().await.expect("GET");
        read(response).await
    }

    /// `POST` with a JSON body.
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let response = self.client.post(self.url(path)).json(&body).send().await.expect("POST");
        read(response).await
    }

    /// `PATCH` with a JSON body.
    pub async fn patch(&self, path: &str, body: Value) -> (u16, Value) {
        let response = self.client.patch(self.url(path)).json(&body).send().await.expect("PATCH");
        read(response).await
    }

    /// `PUT` with a JSON body.
    pub async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        let response = self.client.put(self.url(path)).json(&body).send().await.expect("PUT");
        read(response).await
    }

    /// `DELETE`.
    pub async fn delete(&self, path: &str) -> (u16, Value) {
        let response = self.client.delete(self.url(path)).send().await.expect("DELETE");
        read(response).await
    }

    /// `POST` of raw bytes (for malformed-body tests).
    pub async fn post_raw(&self, path: &str, body: &'static str) -> (u16, Value) {
        let response = self.client.post(self.url(path)).header("content-type", "application/json").body(body).send().await.expect("POST");
        read(response).await
    }

    /// Polls `probe` until it returns `Some`, for at most `seconds`.
    pub async fn eventually<T, F, Fut>(&self, seconds: u64, mut probe: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(seconds);
        loop {
            if let Some(value) = probe().await {
                return value;
            }
            assert!(tokio::time::Instant::now() < deadline, "condition not met within {seconds}s");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
        let server = self.server.clone();
        tokio::spawn(async move { server.stop(false).await });
    }
}

async fn read(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let bytes = response.bytes().await.expect("response body");
    let body =
        if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into_owned())) };
    (status, body)
}
