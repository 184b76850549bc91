//! `prefect-server`: a self-hosted Prefect 3 server.
//!
//! `prefect-server start` serves the API (and runs the background services);
//! `prefect-server database upgrade|downgrade|reset` manages the schema;
//! `prefect-server openapi` prints the OpenAPI document.

mod memory;
mod settings;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use prefect_api::{ApiState, app};
use prefect_core::Core;
use prefect_services::{
    CancellationCleanup, DatabaseMaintenance, DbVacuum, EventPipeline, Foreman, LateRuns, PauseExpirations, Repossessor, Scheduler, Triggers,
};
use prefect_storage::Database;
use settings::Settings;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(name = "prefect-server", version, about = "A self-hosted Prefect 3 server")]
struct Cli {
    /// A TOML settings file (also `PREFECT_SERVER_CONFIG_FILE`).
    #[arg(long, global = true, env = "PREFECT_SERVER_CONFIG_FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API and run the background services.
    Start {
        /// Bind address (default: PREFECT_SERVER_API_HOST or 127.0.0.1).
        #[arg(long)]
        host: Option<String>,
        /// Port (default: PREFECT_SERVER_API_PORT or 4200).
        #[arg(long)]
        port: Option<u16>,
        /// Serve the API only; run no background services.
        #[arg(long)]
        no_services: bool,
    },
    /// Manage the database schema.
    Database {
        #[command(subcommand)]
        action: DatabaseAction,
    },
    /// Print the OpenAPI document.
    Openapi,
}

#[derive(Subcommand)]
enum DatabaseAction {
    /// Apply pending migrations.
    Upgrade,
    /// Revert migrations (the last one, or all with --all).
    Downgrade {
        #[arg(long)]
        all: bool,
    },
    /// Drop everything and migrate from scratch.
    Reset {
        /// Do not ask for confirmation.
        #[arg(short, long)]
        yes: bool,
    },
}

fn init_tracing(level: &str) {
    let level = match level.to_ascii_uppercase().as_str() {
        "DEBUG" => "debug",
        "INFO" => "info",
        "ERROR" | "CRITICAL" => "error",
        _ => "warn",
    };
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new(format!("{level},sqlx=warn,sea_orm=warn")));
    tracing_subscriber::fmt().with_env_filter(filter).with_target(false).init();
}

fn main() -> anyhow::Result<()> {
    // Before the runtime starts any thread.
    memory::limit_arenas();
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")?.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let env: HashMap<String, String> = std::env::vars().collect();
    let mut settings = Settings::load(cli.config.as_deref(), &env)?;
    init_tracing(&settings.logging_level);

    match cli.command {
        Command::Openapi => {
            println!("{}", serde_json::to_string_pretty(&prefect_api::openapi())?);
            Ok(())
        }
        Command::Database { action } => {
            let db = Database::connect(&settings.database.connection).await.context("connecting to the database")?;
            match action {
                DatabaseAction::Upgrade => prefect_storage::migrate(&db).await?,
                DatabaseAction::Downgrade { all } => prefect_storage::downgrade(&db, if all { None } else { Some(1) }).await?,
                DatabaseAction::Reset { yes } => {
                    if !yes && !confirm("This drops every table of the Prefect database. Continue?")? {
                        anyhow::bail!("cancelled");
                    }
                    prefect_storage::reset(&db).await?;
                }
            }
            println!("Migrations applied: {}", prefect_storage::applied_migrations(&db).await?.join(", "));
            Ok(())
        }
        Command::Start { host, port, no_services } => {
            if let Some(host) = host {
                settings.server.host = host;
            }
            if let Some(port) = port {
                settings.server.port = port;
            }
            serve(settings, !no_services).await
        }
    }
}

fn confirm(question: &str) -> anyhow::Result<bool> {
    use std::io::Write;
    print!("{question} [y/N] ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

/// Event batches the triggers service may fall behind by before the pipeline waits for it.
const TRIGGER_FEED_BATCHES: usize = 16;

async fn serve(settings: Settings, services: bool) -> anyhow::Result<()> {
    let db = Database::connect(&settings.database.connection).await.context("connecting to the database")?;
    if settings.database.migrate_on_start {
        prefect_storage::migrate(&db).await.context("migrating the database")?;
    }
    let is_sqlite = db.backend() == prefect_storage::Backend::Sqlite;
    let mut core_settings = settings.core.clone();
    core_settings.schedule_limits = settings.services.scheduler.limits();
    let (core, events) = Core::new(db, core_settings);
    if settings.blocks.register_on_start {
        core.install_system_block_types().await.context("registering the system block types")?;
    }

    let shutdown = CancellationToken::new();
    let mut tasks = Vec::new();
    let mut pipeline = EventPipeline::new(settings.services.event_pipeline.clone(), core.clone(), events);
    if services && settings.services.triggers.enabled {
        let (feed, batches) = prefect_services::triggers::feed(TRIGGER_FEED_BATCHES);
        pipeline = pipeline.with_triggers(feed);
        tasks.push(tokio::spawn(Triggers::new(settings.services.triggers.clone(), core.clone(), batches).run(shutdown.clone())));
    }
    tasks.push(tokio::spawn(pipeline.run(shutdown.clone())));
    if settings.services.database_maintenance.enabled {
        let maintenance = DatabaseMaintenance::new(settings.services.database_maintenance.clone(), core.clone());
        tasks.push(tokio::spawn(maintenance.run(shutdown.clone())));
    }
    if services {
        let vacuum_options =
            prefect_services::DbVacuumOptions { events_persisted: settings.services.event_pipeline.persist, ..settings.services.db_vacuum.clone() };
        tasks.push(tokio::spawn(DbVacuum::new(vacuum_options, core.clone()).run(shutdown.clone())));
    }
    if services && settings.services.repossessor.enabled {
        tasks.push(tokio::spawn(Repossessor::new(settings.services.repossessor.clone(), core.clone()).run(shutdown.clone())));
    }
    if services && settings.services.pause_expirations.enabled {
        tasks.push(tokio::spawn(PauseExpirations::new(settings.services.pause_expirations.clone(), core.clone()).run(shutdown.clone())));
    }
    if services && settings.services.scheduler.enabled {
        tasks.push(tokio::spawn(Scheduler::new(settings.services.scheduler.clone(), core.clone()).run(shutdown.clone())));
    }
    if services && settings.services.late_runs.enabled {
        tasks.push(tokio::spawn(LateRuns::new(settings.services.late_runs.clone(), core.clone()).run(shutdown.clone())));
    }
    if services && settings.services.cancellation_cleanup.enabled {
        tasks.push(tokio::spawn(CancellationCleanup::new(settings.services.cancellation_cleanup.clone(), core.clone()).run(shutdown.clone())));
    }
    if services && settings.services.foreman.enabled {
        tasks.push(tokio::spawn(Foreman::new(settings.services.foreman.clone(), core.clone()).run(shutdown.clone())));
    }

    if settings.server.memory_trim_seconds > 0.0 {
        let interval = Duration::from_secs_f64(settings.server.memory_trim_seconds.max(1.0));
        tasks.push(tokio::spawn(memory::trim_periodically(interval, shutdown.clone())));
    }

    let mut api_settings = settings.api.clone();
    api_settings.settings_dump = settings.dump();
    if is_sqlite && api_settings.max_in_flight_requests.is_none() {
        // Prefect caps SQLite servers at 100 concurrent requests.
        api_settings.max_in_flight_requests = Some(100);
    }
    let state = ApiState::new(core, api_settings);
    let trim_memory = settings.server.memory_trim_seconds > 0.0;
    let mut server = actix_web::HttpServer::new(move || {
        let app = app(state.clone());
        // Building the app (its OpenAPI document above all) leaves megabytes freed in this
        // worker's malloc arena: hand them back before the first request.
        if trim_memory {
            memory::trim();
        }
        app
    })
    .keep_alive(Duration::from_secs(settings.server.keepalive_seconds.max(1)))
    .shutdown_timeout(10);
    if settings.server.workers > 0 {
        server = server.workers(settings.server.workers);
    }
    let server = server
        .bind((settings.server.host.as_str(), settings.server.port))
        .with_context(|| format!("binding {}:{}", settings.server.host, settings.server.port))?;
    tracing::warn!(host = %settings.server.host, port = settings.server.port, "Prefect server listening.");
    eprintln!("prefect-server {} listening on http://{}:{}/api", env!("CARGO_PKG_VERSION"), settings.server.host, settings.server.port);
    server.run().await?;

    shutdown.cancel();
    for task in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
    }
    Ok(())
}
