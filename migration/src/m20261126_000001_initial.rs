//! The initial schema: every table of the Prefect server.

use sea_orm_migration::prelude::*;

use crate::builders::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261126_000001_initial"
    }
}

/// Tables in creation order (referenced tables first); dropped in reverse.
const TABLES: &[&str] = &[
    "configuration",
    "csrf_token",
    "flow",
    "work_pool",
    "work_queue",
    "worker",
    "concurrency_limit_v2",
    "concurrency_lease",
    "block_type",
    "block_schema",
    "block_schema_reference",
    "block_document",
    "block_document_reference",
    "deployment",
    "deployment_schedule",
    "flow_run",
    "flow_run_state",
    "task_run",
    "task_run_state",
    "task_run_state_cache",
    "flow_run_input",
    "log",
    "artifact",
    "artifact_collection",
    "variable",
    "saved_search",
    "events",
    "event_resources",
    "automation",
    "automation_related_resource",
];

fn tables() -> Vec<TableCreateStatement> {
    use ForeignKeyAction::{Cascade, SetNull};
    vec![
        table("configuration").col(text("key")).col(json("value")).to_owned(),
        table("csrf_token").col(text("token")).col(text("client")).col(timestamp("expiration")).to_owned(),
        table("flow").col(text("name")).col(json("tags")).col(json_null("labels")).to_owned(),
        table("work_pool")
            .col(text("name"))
            .col(text_null("description"))
            .col(text("type"))
            .col(json("base_job_template"))
            .col(boolean("is_paused", false))
            .col(uuid_null("default_queue_id"))
            .col(integer_null("concurrency_limit"))
            .col(text("status"))
            .col(timestamp_null("last_transitioned_status_at"))
            .col(uuid_null("last_status_event_id"))
            .col(json("storage_configuration"))
            .to_owned(),
        table("work_queue")
            .col(text("name"))
            .col(json_null("filter"))
            .col(text("description"))
            .col(boolean("is_paused", false))
            .col(integer_null("concurrency_limit"))
            .col(integer("priority", 1))
            .col(timestamp_null("last_polled"))
            .col(text("status"))
            .col(uuid("work_pool_id"))
            .foreign_key(&mut fk("work_queue", "work_pool_id", "work_pool", Cascade))
            .to_owned(),
        table("worker")
            .col(uuid("work_pool_id"))
            .col(text("name"))
            .col(timestamp("last_heartbeat_time"))
            .col(integer_null("heartbeat_interval_seconds"))
            .col(text("status"))
            .foreign_key(&mut fk("worker", "work_pool_id", "work_pool", Cascade))
            .to_owned(),
        table("concurrency_limit_v2")
            .col(boolean("active", true))
            .col(text("name"))
            .col(integer("limit", 0))
            .col(integer("active_slots", 0))
            .col(integer("denied_slots", 0))
            .col(double("slot_decay_per_second", 0.0))
            .col(double("avg_slot_occupancy_seconds", 2.0))
            .to_owned(),
        table("concurrency_lease")
            .col(timestamp("expiration"))
            .col(json("resource_ids"))
            .col(integer("slots", 1))
            .col(text_null("holder_type"))
            .col(uuid_null("holder_id"))
            .to_owned(),
        table("block_type")
            .col(text("name"))
            .col(text("slug"))
            .col(text_null("logo_url"))
            .col(text_null("documentation_url"))
            .col(text_null("description"))
            .col(text_null("code_example"))
            .col(boolean("is_protected", false))
            .to_owned(),
        table("block_schema")
            .col(text("checksum"))
            .col(json("fields"))
            .col(json("capabilities"))
            .col(text("version"))
            .col(uuid("block_type_id"))
            .foreign_key(&mut fk("block_schema", "block_type_id", "block_type", Cascade))
            .to_owned(),
        table("block_schema_reference")
            .col(text("name"))
            .col(uuid("parent_block_schema_id"))
            .col(uuid("reference_block_schema_id"))
            .foreign_key(&mut fk("block_schema_reference", "parent_block_schema_id", "block_schema", Cascade))
            .foreign_key(&mut fk("block_schema_reference", "reference_block_schema_id", "block_schema", Cascade))
            .to_owned(),
        table("block_document")
            .col(text("name"))
            .col(json("data"))
            .col(boolean("is_anonymous", false))
            .col(text_null("block_type_name"))
            .col(uuid("block_type_id"))
            .col(uuid("block_schema_id"))
            .foreign_key(&mut fk("block_document", "block_type_id", "block_type", Cascade))
            .foreign_key(&mut fk("block_document", "block_schema_id", "block_schema", Cascade))
            .to_owned(),
        table("block_document_reference")
            .col(text("name"))
            .col(uuid("parent_block_document_id"))
            .col(uuid("reference_block_document_id"))
            .foreign_key(&mut fk("block_document_reference", "parent_block_document_id", "block_document", Cascade))
            .foreign_key(&mut fk("block_document_reference", "reference_block_document_id", "block_document", Cascade))
            .to_owned(),
        table("deployment")
            .col(text("name"))
            .col(text_null("version"))
            .col(json_null("version_info"))
            .col(text_null("description"))
            .col(text_null("work_queue_name"))
            .col(json("job_variables"))
            .col(text_null("path"))
            .col(text_null("entrypoint"))
            .col(timestamp_null("last_polled"))
            .col(text("status"))
            .col(uuid("flow_id"))
            .col(uuid_null("work_queue_id"))
            .col(boolean("paused", false))
            .col(integer_null("concurrency_limit"))
            .col(uuid_null("concurrency_limit_id"))
            .col(json_null("concurrency_options"))
            .col(json("tags"))
            .col(json_null("labels"))
            .col(json("parameters"))
            .col(json_null("pull_steps"))
            .col(json_null("parameter_openapi_schema"))
            .col(boolean("enforce_parameter_schema", true))
            .col(json_null("created_by"))
            .col(json_null("updated_by"))
            .col(uuid_null("infrastructure_document_id"))
            .col(uuid_null("storage_document_id"))
            .foreign_key(&mut fk("deployment", "flow_id", "flow", Cascade))
            .foreign_key(&mut fk("deployment", "work_queue_id", "work_queue", SetNull))
            .foreign_key(&mut fk("deployment", "concurrency_limit_id", "concurrency_limit_v2", SetNull))
            .foreign_key(&mut fk("deployment", "infrastructure_document_id", "block_document", SetNull))
            .foreign_key(&mut fk("deployment", "storage_document_id", "block_document", SetNull))
            .to_owned(),
        table("deployment_schedule")
            .col(uuid("deployment_id"))
            .col(json("schedule"))
            .col(boolean("active", true))
            .col(integer_null("max_scheduled_runs"))
            .col(json("parameters"))
            .col(text_null("slug"))
            .foreign_key(&mut fk("deployment_schedule", "deployment_id", "deployment", Cascade))
            .to_owned(),
        table("flow_run")
            .col(uuid("flow_id"))
            .col(uuid_null("deployment_id"))
            .col(text_null("deployment_version"))
            .col(text_null("work_queue_name"))
            .col(uuid_null("work_queue_id"))
            .col(text_null("flow_version"))
            .col(json("parameters"))
            .col(text_null("idempotency_key"))
            .col(json("context"))
            .col(json("empirical_policy"))
            .col(json("tags"))
            .col(json("labels"))
            .col(json_null("created_by"))
            .col(text_null("infrastructure_pid"))
            .col(json_null("job_variables"))
            .col(uuid_null("infrastructure_document_id"))
            .col(uuid_null("parent_task_run_id"))
            .col(boolean("auto_scheduled", false))
            .col(uuid_null("state_id"))
            .col(text("name"))
            .col(text_null("state_type"))
            .col(text_null("state_name"))
            .col(timestamp_null("state_timestamp"))
            .col(integer("run_count", 0))
            .col(timestamp_null("expected_start_time"))
            .col(timestamp_null("next_scheduled_start_time"))
            .col(timestamp_null("start_time"))
            .col(timestamp_null("end_time"))
            .col(double("total_run_time", 0.0))
            .foreign_key(&mut fk("flow_run", "flow_id", "flow", Cascade))
            .foreign_key(&mut fk("flow_run", "work_queue_id", "work_queue", SetNull))
            .to_owned(),
        table("flow_run_state")
            .col(uuid("flow_run_id"))
            .col(text("type"))
            .col(timestamp("timestamp"))
            .col(text("name"))
            .col(text_null("message"))
            .col(json("state_details"))
            .col(json_null("data"))
            .col(uuid_null("result_artifact_id"))
            .foreign_key(&mut fk("flow_run_state", "flow_run_id", "flow_run", Cascade))
            .to_owned(),
        table("task_run")
            .col(uuid_null("flow_run_id"))
            .col(text("task_key"))
            .col(text("dynamic_key"))
            .col(text_null("cache_key"))
            .col(timestamp_null("cache_expiration"))
            .col(text_null("task_version"))
            .col(integer("flow_run_run_count", 0))
            .col(json("empirical_policy"))
            .col(json("task_inputs"))
            .col(json("tags"))
            .col(json_null("labels"))
            .col(uuid_null("state_id"))
            .col(text("name"))
            .col(text_null("state_type"))
            .col(text_null("state_name"))
            .col(timestamp_null("state_timestamp"))
            .col(integer("run_count", 0))
            .col(timestamp_null("expected_start_time"))
            .col(timestamp_null("next_scheduled_start_time"))
            .col(timestamp_null("start_time"))
            .col(timestamp_null("end_time"))
            .col(double("total_run_time", 0.0))
            .foreign_key(&mut fk("task_run", "flow_run_id", "flow_run", Cascade))
            .to_owned(),
        table("task_run_state")
            .col(uuid("task_run_id"))
            .col(text("type"))
            .col(timestamp("timestamp"))
            .col(text("name"))
            .col(text_null("message"))
            .col(json("state_details"))
            .col(json_null("data"))
            .col(uuid_null("result_artifact_id"))
            .foreign_key(&mut fk("task_run_state", "task_run_id", "task_run", Cascade))
            .to_owned(),
        table("task_run_state_cache").col(text("cache_key")).col(timestamp_null("cache_expiration")).col(uuid("task_run_state_id")).to_owned(),
        table("flow_run_input")
            .col(uuid("flow_run_id"))
            .col(text("key"))
            .col(text("value"))
            .col(text_null("sender"))
            .foreign_key(&mut fk("flow_run_input", "flow_run_id", "flow_run", Cascade))
            .to_owned(),
        // Logs may arrive before the task run recorder writes their task run, so no foreign keys.
        table("log")
            .col(text("name"))
            .col(integer("level", 0))
            .col(uuid_null("flow_run_id"))
            .col(uuid_null("task_run_id"))
            .col(text("message"))
            .col(timestamp("timestamp"))
            .to_owned(),
        table("artifact")
            .col(text_null("key"))
            .col(uuid_null("task_run_id"))
            .col(uuid_null("flow_run_id"))
            .col(text_null("type"))
            .col(json_null("data"))
            .col(text_null("description"))
            .col(json_null("metadata_"))
            .to_owned(),
        table("artifact_collection")
            .col(text("key"))
            .col(uuid("latest_id"))
            .col(uuid_null("task_run_id"))
            .col(uuid_null("flow_run_id"))
            .col(text_null("type"))
            .col(json_null("data"))
            .col(text_null("description"))
            .col(json_null("metadata_"))
            .to_owned(),
        table("variable").col(text("name")).col(json_null("value")).col(json("tags")).to_owned(),
        table("saved_search").col(text("name")).col(json("filters")).to_owned(),
        table("events")
            .col(timestamp("occurred"))
            .col(text("event"))
            .col(text("resource_id"))
            .col(json("resource"))
            .col(json("related_resource_ids"))
            .col(json("related"))
            .col(json("payload"))
            .col(timestamp("received"))
            .col(timestamp("recorded"))
            .col(uuid_null("follows"))
            .to_owned(),
        table("event_resources")
            .col(timestamp("occurred"))
            .col(text("resource_id"))
            .col(text("resource_role"))
            .col(json("resource"))
            .col(uuid("event_id"))
            .to_owned(),
        table("automation")
            .col(text("name"))
            .col(text("description"))
            .col(boolean("enabled", true))
            .col(json("tags"))
            .col(json("trigger"))
            .col(json("actions"))
            .col(json("actions_on_trigger"))
            .col(json("actions_on_resolve"))
            .to_owned(),
        table("automation_related_resource")
            .col(uuid("automation_id"))
            .col(text("resource_id"))
            .col(boolean("automation_owned_by_resource", false))
            .foreign_key(&mut fk("automation_related_resource", "automation_id", "automation", Cascade))
            .to_owned(),
    ]
}

fn indexes() -> Vec<IndexCreateStatement> {
    vec![
        index("configuration", &["key"], true),
        index("csrf_token", &["client"], true),
        index("flow", &["name"], true),
        index("flow", &["created"], false),
        index("work_pool", &["name"], true),
        index("work_pool", &["type"], false),
        index("work_queue", &["work_pool_id", "name"], true),
        index("work_queue", &["work_pool_id", "priority"], false),
        index("worker", &["work_pool_id", "name"], true),
        index("worker", &["work_pool_id", "last_heartbeat_time"], false),
        index("concurrency_limit_v2", &["name"], true),
        index("concurrency_lease", &["expiration"], false),
        index("concurrency_lease", &["holder_id"], false),
        index("block_type", &["slug"], true),
        index("block_schema", &["checksum", "version"], true),
        index("block_schema", &["block_type_id"], false),
        index("block_schema", &["created"], false),
        index("block_schema_reference", &["parent_block_schema_id"], false),
        index("block_document", &["block_type_id", "name"], true),
        index("block_document", &["block_type_name", "name"], false),
        index("block_document", &["is_anonymous"], false),
        index("block_document", &["name"], false),
        index("block_document_reference", &["parent_block_document_id"], false),
        index("block_document_reference", &["reference_block_document_id"], false),
        index("deployment", &["flow_id", "name"], true),
        index("deployment", &["created"], false),
        index("deployment", &["paused"], false),
        index("deployment", &["work_queue_id"], false),
        index("deployment", &["work_queue_name"], false),
        index("deployment", &["concurrency_limit_id"], false),
        index("deployment_schedule", &["deployment_id", "slug"], true),
        index("deployment_schedule", &["slug"], false),
        index("flow_run", &["flow_id", "idempotency_key"], true),
        index("flow_run", &["flow_id"], false),
        index("flow_run", &["deployment_id", "auto_scheduled", "next_scheduled_start_time"], false),
        index("flow_run", &["deployment_version"], false),
        index("flow_run", &["end_time"], false),
        index("flow_run", &["expected_start_time"], false),
        index("flow_run", &["state_type", "expected_start_time"], false),
        index("flow_run", &["flow_version"], false),
        index("flow_run", &["infrastructure_document_id"], false),
        index("flow_run", &["name"], false),
        index("flow_run", &["next_scheduled_start_time"], false),
        index("flow_run", &["parent_task_run_id"], false),
        index("flow_run", &["start_time"], false),
        index("flow_run", &["state_name"], false),
        index("flow_run", &["state_timestamp"], false),
        index("flow_run", &["work_queue_id", "state_type", "next_scheduled_start_time"], false),
        index("flow_run", &["work_queue_name"], false),
        index("flow_run_state", &["flow_run_id", "timestamp"], true),
        index("flow_run_state", &["name"], false),
        index("flow_run_state", &["result_artifact_id"], false),
        index("flow_run_state", &["type", "name", "timestamp"], false),
        index("task_run", &["flow_run_id", "task_key", "dynamic_key"], true),
        index("task_run", &["end_time"], false),
        index("task_run", &["expected_start_time"], false),
        index("task_run", &["name"], false),
        index("task_run", &["next_scheduled_start_time"], false),
        index("task_run", &["start_time"], false),
        index("task_run", &["state_name"], false),
        index("task_run", &["state_timestamp"], false),
        index("task_run", &["state_type", "start_time"], false),
        index("task_run_state", &["task_run_id", "timestamp"], true),
        index("task_run_state", &["name"], false),
        index("task_run_state", &["result_artifact_id"], false),
        index("task_run_state", &["type", "name", "timestamp"], false),
        index("task_run_state_cache", &["cache_key", "created"], false),
        index("flow_run_input", &["flow_run_id", "key"], true),
        index("log", &["flow_run_id", "timestamp"], false),
        index("log", &["level"], false),
        index("log", &["task_run_id"], false),
        index("log", &["timestamp"], false),
        index("artifact", &["flow_run_id"], false),
        index("artifact", &["key", "created"], false),
        index("artifact", &["task_run_id"], false),
        index("artifact", &["type"], false),
        index("artifact_collection", &["key"], true),
        index("artifact_collection", &["latest_id"], false),
        index("variable", &["name"], true),
        index("saved_search", &["name"], true),
        index("events", &["occurred", "id"], false),
        index("events", &["event", "occurred"], false),
        index("events", &["resource_id", "occurred"], false),
        index("event_resources", &["resource_id", "occurred"], false),
        index("event_resources", &["event_id"], false),
        index("event_resources", &["occurred"], false),
        index("automation", &["name"], false),
        index("automation_related_resource", &["automation_id", "resource_id"], true),
        index("automation_related_resource", &["resource_id"], false),
    ]
}

// The trait's signatures elide `SchemaManager`'s lifetime; impls must match them exactly.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let mut batch = Batch::new(manager);
        for table in tables() {
            batch.push(&table);
        }
        for index in indexes() {
            batch.push(&index);
        }
        batch.run(manager).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let mut batch = Batch::new(manager);
        for name in TABLES.iter().rev() {
            batch.push(&Table::drop().table(*name).if_exists().to_owned());
        }
        batch.run(manager).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_is_dropped_on_down() {
        let mut created: Vec<String> = tables()
            .iter()
            .filter_map(|t| match t.get_table_name() {
                Some(TableRef::Table(TableName(_, name), _)) => Some(name.to_string()),
                _ => None,
            })
            .collect();
        let mut dropped: Vec<String> = TABLES.iter().map(|name| (*name).to_owned()).collect();
        created.sort();
        dropped.sort();
        assert_eq!(created, dropped);
    }
}
