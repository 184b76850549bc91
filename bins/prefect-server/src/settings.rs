//! Server settings: defaults, then an optional TOML file, then Prefect's environment variables.
//!
//! Prefect's variable names (`PREFECT_SERVER_API_PORT`, the legacy
//! `PREFECT_API_DATABASE_CONNECTION_URL`, …) contain underscores inside field
//! names, so they are mapped through an explicit table rather than a separator.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::Context;
use config::{Config, File, FileFormat};
use prefect_api::ApiSettings;
use prefect_core::CoreSettings;
use prefect_services::ServicesOptions;
use prefect_storage::DatabaseOptions;
use serde::Deserialize;

/// Where and how the HTTP server listens.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ServerOptions {
    pub host: String,
    pub port: u16,
    /// HTTP worker threads (0: one per CPU).
    pub workers: usize,
    /// Seconds to keep idle keep-alive connections.
    pub keepalive_seconds: u64,
    /// Seconds between returns of freed heap memory to the OS (0: never); see `memory.rs`.
    pub memory_trim_seconds: f64,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions { host: "127.0.0.1".to_owned(), port: 4200, workers: 0, keepalive_seconds: 5, memory_trim_seconds: 10.0 }
    }
}

/// The `database` settings: how to connect, and whether to migrate at start.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct DatabaseSettings {
    /// Read from the same `database` table by `Settings::load`, not through `#[serde(flatten)]`:
    /// a flattened struct gets its values through serde's buffered content, which has no
    /// string-to-number conversion, so `PREFECT_SERVER_DATABASE_SQLALCHEMY_POOL_SIZE=12` (a
    /// string, like every environment value) would be refused.
    #[serde(skip)]
    pub connection: DatabaseOptions,
    pub migrate_on_start: bool,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        DatabaseSettings { connection: DatabaseOptions { url: String::new(), ..Default::default() }, migrate_on_start: true }
    }
}

/// Block settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct BlocksSettings {
    /// Register the block types the server ships when it starts.
    pub register_on_start: bool,
}

impl Default for BlocksSettings {
    fn default() -> Self {
        BlocksSettings { register_on_start: true }
    }
}

/// Everything the binary configures.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// `PREFECT_HOME`: holds the default SQLite database.
    pub home: PathBuf,
    pub server: ServerOptions,
    pub database: DatabaseSettings,
    /// `PREFECT_SERVER_LOGGING_LEVEL`: DEBUG, INFO, WARNING, ERROR, CRITICAL.
    pub logging_level: String,
    pub core: CoreSettings,
    pub api: ApiSettings,
    pub services: ServicesOptions,
    pub blocks: BlocksSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            home: default_home(),
            server: ServerOptions::default(),
            database: DatabaseSettings::default(),
            logging_level: "WARNING".to_owned(),
            core: CoreSettings::default(),
            api: ApiSettings::default(),
            services: ServicesOptions::default(),
            blocks: BlocksSettings::default(),
        }
    }
}

fn default_home() -> PathBuf {
    std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(".")).join(".prefect")
}

/// Prefect environment variables and the setting each one sets. The first
/// name of a key wins when several are set (canonical names come first).
const ENV_TABLE: &[(&str, &str)] = &[
    ("PREFECT_HOME", "home"),
    ("PREFECT_SERVER_API_HOST", "server.host"),
    ("PREFECT_SERVER_API_PORT", "server.port"),
    ("PREFECT_SERVER_API_KEEPALIVE_TIMEOUT", "server.keepalive_seconds"),
    ("PREFECT_SERVER_MEMORY_TRIM_SECONDS", "server.memory_trim_seconds"),
    ("PREFECT_SERVER_WORKERS", "server.workers"),
    ("PREFECT_SERVER_DATABASE_CONNECTION_URL", "database.url"),
    ("PREFECT_API_DATABASE_CONNECTION_URL", "database.url"),
    ("PREFECT_SERVER_DATABASE_MIGRATE_ON_START", "database.migrate_on_start"),
    ("PREFECT_API_DATABASE_MIGRATE_ON_START", "database.migrate_on_start"),
    ("PREFECT_SERVER_DATABASE_TIMEOUT", "database.statement_timeout_seconds"),
    ("PREFECT_API_DATABASE_TIMEOUT", "database.statement_timeout_seconds"),
    ("PREFECT_SERVER_DATABASE_CONNECTION_TIMEOUT", "database.connect_timeout_seconds"),
    ("PREFECT_API_DATABASE_CONNECTION_TIMEOUT", "database.connect_timeout_seconds"),
    ("PREFECT_SERVER_DATABASE_SQLALCHEMY_POOL_SIZE", "database.pool_size"),
    ("PREFECT_SQLALCHEMY_POOL_SIZE", "database.pool_size"),
    ("PREFECT_SERVER_DATABASE_SQLALCHEMY_POOL_TIMEOUT", "database.pool_timeout_seconds"),
    ("PREFECT_SERVER_LOGGING_LEVEL", "logging_level"),
    ("PREFECT_LOGGING_SERVER_LEVEL", "logging_level"),
    ("PREFECT_SERVER_API_AUTH_STRING", "api.auth_string"),
    ("PREFECT_SERVER_API_CSRF_PROTECTION_ENABLED", "api.csrf_protection_enabled"),
    ("PREFECT_SERVER_CSRF_PROTECTION_ENABLED", "api.csrf_protection_enabled"),
    ("PREFECT_SERVER_API_CSRF_TOKEN_EXPIRATION", "api.csrf_token_expiration_seconds"),
    ("PREFECT_SERVER_CSRF_TOKEN_EXPIRATION", "api.csrf_token_expiration_seconds"),
    ("PREFECT_SERVER_API_CORS_ALLOWED_ORIGINS", "api.cors_allowed_origins"),
    ("PREFECT_SERVER_CORS_ALLOWED_ORIGINS", "api.cors_allowed_origins"),
    ("PREFECT_SERVER_API_CORS_ALLOWED_METHODS", "api.cors_allowed_methods"),
    ("PREFECT_SERVER_CORS_ALLOWED_METHODS", "api.cors_allowed_methods"),
    ("PREFECT_SERVER_API_CORS_ALLOWED_HEADERS", "api.cors_allowed_headers"),
    ("PREFECT_SERVER_CORS_ALLOWED_HEADERS", "api.cors_allowed_headers"),
    ("PREFECT_SERVER_API_DEFAULT_LIMIT", "core.default_limit"),
    ("PREFECT_API_DEFAULT_LIMIT", "core.default_limit"),
    ("PREFECT_SERVER_API_MAX_PARAMETER_SIZE", "core.max_parameter_size"),
    ("PREFECT_SERVER_TASKS_TAG_CONCURRENCY_SLOT_WAIT_SECONDS", "core.tag_concurrency_slot_wait_seconds"),
    ("PREFECT_TASK_RUN_TAG_CONCURRENCY_SLOT_WAIT_SECONDS", "core.tag_concurrency_slot_wait_seconds"),
    ("PREFECT_SERVER_CONCURRENCY_MAXIMUM_CONCURRENCY_SLOT_WAIT_SECONDS", "core.maximum_concurrency_slot_wait_seconds"),
    ("PREFECT_SERVER_TASKS_MAX_CACHE_KEY_LENGTH", "core.max_cache_key_length"),
    ("PREFECT_API_TASK_CACHE_KEY_MAX_LENGTH", "core.max_cache_key_length"),
    ("PREFECT_SERVER_DEPLOYMENTS_CONCURRENCY_SLOT_WAIT_SECONDS", "core.deployment_concurrency_slot_wait_seconds"),
    ("PREFECT_SERVER_CONCURRENCY_INITIAL_DEPLOYMENT_LEASE_DURATION", "core.initial_deployment_lease_duration_seconds"),
    ("PREFECT_SERVER_FLOW_RUN_GRAPH_MAX_NODES", "core.max_flow_run_graph_nodes"),
    ("PREFECT_API_MAX_FLOW_RUN_GRAPH_NODES", "core.max_flow_run_graph_nodes"),
    ("PREFECT_SERVER_FLOW_RUN_GRAPH_MAX_ARTIFACTS", "core.max_flow_run_graph_artifacts"),
    ("PREFECT_API_MAX_FLOW_RUN_GRAPH_ARTIFACTS", "core.max_flow_run_graph_artifacts"),
    ("PREFECT_SERVER_EVENTS_RELATED_RESOURCE_CACHE_TTL", "core.related_resource_cache_ttl_seconds"),
    ("PREFECT_API_EVENTS_RELATED_RESOURCE_CACHE_TTL", "core.related_resource_cache_ttl_seconds"),
    ("PREFECT_SERVER_TASKS_SCHEDULING_MAX_SCHEDULED_QUEUE_SIZE", "core.task_scheduled_queue_size"),
    ("PREFECT_TASK_SCHEDULING_MAX_SCHEDULED_QUEUE_SIZE", "core.task_scheduled_queue_size"),
    ("PREFECT_SERVER_TASKS_SCHEDULING_MAX_RETRY_QUEUE_SIZE", "core.task_retry_queue_size"),
    ("PREFECT_TASK_SCHEDULING_MAX_RETRY_QUEUE_SIZE", "core.task_retry_queue_size"),
    ("PREFECT_SERVER_SERVICES_EVENT_PERSISTER_ENABLED", "services.event_pipeline.persist"),
    ("PREFECT_SERVER_SERVICES_EVENT_PERSISTER_BATCH_SIZE", "services.event_pipeline.batch_size"),
    ("PREFECT_API_SERVICES_EVENT_PERSISTER_BATCH_SIZE", "services.event_pipeline.batch_size"),
    ("PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_ENABLED", "services.event_pipeline.record_task_runs"),
    ("PREFECT_SERVER_EVENTS_STREAM_OUT_ENABLED", "services.event_pipeline.stream_out"),
    ("PREFECT_API_EVENTS_STREAM_OUT_ENABLED", "services.event_pipeline.stream_out"),
    ("PREFECT_SERVER_SERVICES_DB_VACUUM_ENABLED", "services.db_vacuum.enabled"),
    ("PREFECT_SERVER_SERVICES_DB_VACUUM_LOOP_SECONDS", "services.db_vacuum.loop_seconds"),
    ("PREFECT_SERVER_SERVICES_DB_VACUUM_ORPHAN_CLEANUP_LOOP_SECONDS", "services.db_vacuum.orphan_cleanup_loop_seconds"),
    ("PREFECT_SERVER_SERVICES_DB_VACUUM_RETENTION_PERIOD", "services.db_vacuum.retention_period_seconds"),
    ("PREFECT_SERVER_SERVICES_DB_VACUUM_BATCH_SIZE", "services.db_vacuum.batch_size"),
    ("PREFECT_SERVER_SERVICES_DB_VACUUM_EVENT_RETENTION_OVERRIDES", "services.db_vacuum.event_retention_overrides"),
    ("PREFECT_SERVER_EVENTS_RETENTION_PERIOD", "services.db_vacuum.events_retention_seconds"),
    ("PREFECT_EVENTS_RETENTION_PERIOD", "services.db_vacuum.events_retention_seconds"),
    ("PREFECT_SERVER_SERVICES_REPOSSESSOR_ENABLED", "services.repossessor.enabled"),
    ("PREFECT_SERVER_SERVICES_REPOSSESSOR_LOOP_SECONDS", "services.repossessor.loop_seconds"),
    ("PREFECT_SERVER_SERVICES_PAUSE_EXPIRATIONS_ENABLED", "services.pause_expirations.enabled"),
    ("PREFECT_SERVER_SERVICES_PAUSE_EXPIRATIONS_LOOP_SECONDS", "services.pause_expirations.loop_seconds"),
    ("PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED", "services.late_runs.enabled"),
    ("PREFECT_SERVER_SERVICES_LATE_RUNS_LOOP_SECONDS", "services.late_runs.loop_seconds"),
    ("PREFECT_SERVER_SERVICES_LATE_RUNS_AFTER_SECONDS", "services.late_runs.after_seconds"),
    ("PREFECT_SERVER_SERVICES_CANCELLATION_CLEANUP_ENABLED", "services.cancellation_cleanup.enabled"),
    ("PREFECT_SERVER_SERVICES_CANCELLATION_CLEANUP_LOOP_SECONDS", "services.cancellation_cleanup.loop_seconds"),
    ("PREFECT_SERVER_SERVICES_CANCELLATION_CLEANUP_CANCELLING_TIMEOUT_SECONDS", "services.cancellation_cleanup.cancelling_timeout_seconds"),
    ("PREFECT_SERVER_SERVICES_FOREMAN_ENABLED", "services.foreman.enabled"),
    ("PREFECT_SERVER_SERVICES_FOREMAN_LOOP_SECONDS", "services.foreman.loop_seconds"),
    ("PREFECT_SERVER_SERVICES_FOREMAN_WORK_QUEUE_LAST_POLLED_TIMEOUT_SECONDS", "services.foreman.work_queue_last_polled_timeout_seconds"),
    ("PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED", "services.triggers.enabled"),
    ("PREFECT_SERVER_EVENTS_PROACTIVE_GRANULARITY", "services.triggers.proactive_granularity_seconds"),
    ("PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED", "services.scheduler.enabled"),
    ("PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS", "services.scheduler.loop_seconds"),
    ("PREFECT_SERVER_SERVICES_SCHEDULER_DEPLOYMENT_BATCH_SIZE", "services.scheduler.deployment_batch_size"),
    ("PREFECT_SERVER_SERVICES_SCHEDULER_MAX_RUNS", "services.scheduler.max_runs"),
    ("PREFECT_SERVER_SERVICES_SCHEDULER_MIN_RUNS", "services.scheduler.min_runs"),
    ("PREFECT_SERVER_SERVICES_SCHEDULER_MAX_SCHEDULED_TIME", "services.scheduler.max_scheduled_time_seconds"),
    ("PREFECT_SERVER_SERVICES_SCHEDULER_MIN_SCHEDULED_TIME", "services.scheduler.min_scheduled_time_seconds"),
    ("PREFECT_SERVER_SERVICES_SCHEDULER_INSERT_BATCH_SIZE", "services.scheduler.insert_batch_size"),
    ("PREFECT_SERVER_SERVICES_SCHEDULER_RECENT_DEPLOYMENTS_LOOP_SECONDS", "services.scheduler.recent_deployments_loop_seconds"),
    ("PREFECT_SERVER_BLOCKS_REGISTER_ON_START", "blocks.register_on_start"),
    ("PREFECT_API_BLOCKS_REGISTER_ON_START", "blocks.register_on_start"),
];

/// Maps a legacy `PREFECT_API_SERVICES_*` name to its `PREFECT_SERVER_SERVICES_*` twin.
fn canonical(name: &str) -> String {
    match name.strip_prefix("PREFECT_API_SERVICES_") {
        Some(rest) => format!("PREFECT_SERVER_SERVICES_{rest}"),
        None => name.to_owned(),
    }
}

impl Settings {
    /// Loads settings from `file` (if any) and the given environment.
    pub fn load(file: Option<&std::path::Path>, env: &HashMap<String, String>) -> anyhow::Result<Settings> {
        // No URL means the SQLite file under `PREFECT_HOME` (filled in below), not
        // `DatabaseOptions`' own default.
        let mut builder = Config::builder().set_default("database.url", "").context("invalid setting")?;
        if let Some(path) = file {
            builder = builder.add_source(File::from(path).format(FileFormat::Toml).required(true));
        }
        let mut set: HashMap<&str, &str> = HashMap::new();
        let env: HashMap<String, &String> = env.iter().map(|(k, v)| (canonical(k), v)).collect();
        for (name, key) in ENV_TABLE {
            if let Some(value) = env.get(*name)
                && !set.contains_key(key)
            {
                set.insert(key, value.as_str());
            }
        }
        for (key, value) in set {
            let value = match value.to_ascii_lowercase().as_str() {
                "true" | "false" => config::Value::from(value.eq_ignore_ascii_case("true")),
                _ => config::Value::from(value),
            };
            builder = builder.set_override(key, value).context("invalid setting")?;
        }
        let config = builder.build()?;
        let mut settings: Settings = config.clone().try_deserialize().context("invalid settings")?;
        settings.home = expand_home(&settings.home);
        settings.database.connection = config.get("database").context("invalid database settings")?;
        if settings.database.connection.url.is_empty() {
            settings.database.connection.url = format!("sqlite+aiosqlite:///{}", settings.home.join("prefect.db").display());
        }
        Ok(settings)
    }

    /// What `GET /admin/settings` shows: the effective settings with secrets hidden.
    pub fn dump(&self) -> serde_json::Value {
        let url = &self.database.connection.url;
        let masked_url = match (url.find("://"), url.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => match url[scheme + 3..at].split_once(':') {
                Some((user, _)) => format!("{}{}:********{}", &url[..scheme + 3], user, &url[at..]),
                None => url.clone(),
            },
            _ => url.clone(),
        };
        serde_json::json!({
            "home": self.home,
            "server": {
                "api": {
                    "host": self.server.host,
                    "port": self.server.port,
                    "auth_string": self.api.auth_string.as_ref().map(|_| "********"),
                    "csrf_protection_enabled": self.api.csrf_protection_enabled,
                    "default_limit": self.core.default_limit,
                },
                "database": {"connection_url": masked_url, "migrate_on_start": self.database.migrate_on_start},
                "logging_level": self.logging_level,
            }
        })
    }
}

fn expand_home(path: &std::path::Path) -> PathBuf {
    match path.to_str().and_then(|p| p.strip_prefix("~/")) {
        Some(rest) => std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default().join(rest),
        None => path.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn defaults_put_sqlite_under_home() {
        let s = Settings::load(None, &env(&[("PREFECT_HOME", "/tmp/ph")])).unwrap();
        assert_eq!(s.database.connection.url, "sqlite+aiosqlite:////tmp/ph/prefect.db");
        assert_eq!(s.server.port, 4200);
        assert_eq!(s.server.host, "127.0.0.1");
    }

    #[test]
    fn prefect_variables_and_legacy_aliases() {
        let s = Settings::load(
            None,
            &env(&[
                ("PREFECT_SERVER_API_PORT", "4321"),
                ("PREFECT_API_DATABASE_CONNECTION_URL", "postgresql+asyncpg://u@h:5432/db"),
                ("PREFECT_API_SERVICES_REPOSSESSOR_ENABLED", "false"),
                ("PREFECT_SERVER_LOGGING_LEVEL", "DEBUG"),
            ]),
        )
        .unwrap();
        assert_eq!(s.server.port, 4321);
        assert_eq!(s.database.connection.url, "postgresql+asyncpg://u@h:5432/db");
        assert!(!s.services.repossessor.enabled);
        assert!(s.services.pause_expirations.enabled);
        assert_eq!(s.logging_level, "DEBUG");
    }

    #[test]
    fn pause_expiration_settings() {
        let s = Settings::load(
            None,
            &env(&[("PREFECT_API_SERVICES_PAUSE_EXPIRATIONS_ENABLED", "false"), ("PREFECT_SERVER_SERVICES_PAUSE_EXPIRATIONS_LOOP_SECONDS", "0.5")]),
        )
        .unwrap();
        assert!(!s.services.pause_expirations.enabled);
        assert_eq!(s.services.pause_expirations.loop_seconds, 0.5);
    }

    #[test]
    fn scheduler_settings() {
        let s = Settings::load(
            None,
            &env(&[
                ("PREFECT_API_SERVICES_SCHEDULER_ENABLED", "false"),
                ("PREFECT_SERVER_SERVICES_SCHEDULER_MIN_RUNS", "5"),
                ("PREFECT_SERVER_SERVICES_SCHEDULER_RECENT_DEPLOYMENTS_LOOP_SECONDS", "2"),
            ]),
        )
        .unwrap();
        assert!(!s.services.scheduler.enabled);
        assert_eq!(s.services.scheduler.min_runs, 5);
        assert_eq!(s.services.scheduler.recent_deployments_loop_seconds, 2.0);
        assert_eq!(s.services.scheduler.max_runs, 100, "Prefect's default");
    }

    #[test]
    fn duration_settings_take_seconds_or_iso_8601() {
        let s = Settings::load(
            None,
            &env(&[
                ("PREFECT_SERVER_SERVICES_SCHEDULER_MAX_SCHEDULED_TIME", "P7D"),
                ("PREFECT_SERVER_SERVICES_SCHEDULER_MIN_SCHEDULED_TIME", "PT30M"),
                ("PREFECT_SERVER_SERVICES_LATE_RUNS_AFTER_SECONDS", "20.5"),
            ]),
        )
        .unwrap();
        assert_eq!(s.services.scheduler.max_scheduled_time_seconds, 7.0 * 86_400.0);
        assert_eq!(s.services.scheduler.min_scheduled_time_seconds, 1800.0);
        assert_eq!(s.services.late_runs.after_seconds, 20.5);
        assert!(Settings::load(None, &env(&[("PREFECT_SERVER_SERVICES_LATE_RUNS_AFTER_SECONDS", "soon")])).is_err());
    }

    #[test]
    fn db_vacuum_settings() {
        let s = Settings::load(
            None,
            &env(&[
                ("PREFECT_SERVER_SERVICES_DB_VACUUM_ENABLED", "events,flow_runs"),
                ("PREFECT_SERVER_SERVICES_DB_VACUUM_RETENTION_PERIOD", "P30D"),
                ("PREFECT_SERVER_SERVICES_DB_VACUUM_EVENT_RETENTION_OVERRIDES", r#"{"prefect.flow-run.heartbeat": 3600}"#),
                ("PREFECT_EVENTS_RETENTION_PERIOD", "86400"),
            ]),
        )
        .unwrap();
        let vacuum = &s.services.db_vacuum;
        assert_eq!(vacuum.enabled_types().into_iter().collect::<Vec<_>>(), ["events", "flow_runs", "orphans"]);
        assert_eq!(vacuum.retention_period_seconds, 30.0 * 86_400.0);
        assert_eq!(vacuum.event_retention_overrides.get("prefect.flow-run.heartbeat"), Some(&3600.0));
        assert_eq!(vacuum.events_retention_seconds, 86_400.0);
        let legacy = Settings::load(None, &env(&[("PREFECT_API_SERVICES_DB_VACUUM_ENABLED", "true")])).unwrap();
        assert_eq!(legacy.services.db_vacuum.enabled_types().into_iter().collect::<Vec<_>>(), ["events", "flow_runs", "orphans"]);
        let defaults = Settings::load(None, &env(&[])).unwrap();
        assert_eq!(defaults.services.db_vacuum.enabled_types().into_iter().collect::<Vec<_>>(), ["events"]);
        assert!(Settings::load(None, &env(&[("PREFECT_SERVER_SERVICES_DB_VACUUM_ENABLED", "logs")])).is_err());
    }

    #[test]
    fn numeric_database_settings_from_the_environment() {
        let s = Settings::load(
            None,
            &env(&[
                ("PREFECT_SERVER_DATABASE_SQLALCHEMY_POOL_SIZE", "12"),
                ("PREFECT_SERVER_DATABASE_SQLALCHEMY_POOL_TIMEOUT", "7.5"),
                ("PREFECT_API_DATABASE_TIMEOUT", "10"),
                ("PREFECT_SERVER_DATABASE_CONNECTION_TIMEOUT", "2.5"),
                ("PREFECT_SERVER_DATABASE_MIGRATE_ON_START", "false"),
                ("PREFECT_HOME", "/tmp/ph"),
            ]),
        )
        .unwrap();
        let db = &s.database.connection;
        assert_eq!((db.pool_size, db.pool_timeout_seconds, db.statement_timeout_seconds, db.connect_timeout_seconds), (12, 7.5, 10.0, 2.5));
        assert!(!s.database.migrate_on_start);
        assert_eq!(db.url, "sqlite+aiosqlite:////tmp/ph/prefect.db", "no URL given: the database under PREFECT_HOME");
        assert_eq!(db.sqlite_busy_timeout_seconds, DatabaseOptions::default().sqlite_busy_timeout_seconds);
        assert!(Settings::load(None, &env(&[("PREFECT_SQLALCHEMY_POOL_SIZE", "many")])).is_err());
    }

    #[test]
    fn database_settings_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("settings.toml");
        std::fs::write(&path, "[database]\nurl = \"sqlite:///f.db\"\npool_size = 16\nmigrate_on_start = false\n").unwrap();
        let s = Settings::load(Some(&path), &env(&[("PREFECT_SERVER_DATABASE_SQLALCHEMY_POOL_TIMEOUT", "3")])).unwrap();
        let db = &s.database.connection;
        assert_eq!((db.url.as_str(), db.pool_size, db.pool_timeout_seconds), ("sqlite:///f.db", 16, 3.0));
        assert!(!s.database.migrate_on_start);
    }

    #[test]
    fn canonical_names_win_over_legacy_ones() {
        let s = Settings::load(
            None,
            &env(&[("PREFECT_SERVER_DATABASE_CONNECTION_URL", "sqlite:///a.db"), ("PREFECT_API_DATABASE_CONNECTION_URL", "sqlite:///b.db")]),
        )
        .unwrap();
        assert_eq!(s.database.connection.url, "sqlite:///a.db");
    }

    #[test]
    fn passwords_are_masked() {
        let s = Settings::load(None, &env(&[("PREFECT_SERVER_DATABASE_CONNECTION_URL", "postgresql+asyncpg://u:secret@h/db")])).unwrap();
        assert!(!s.dump().to_string().contains("secret"));
    }
}
