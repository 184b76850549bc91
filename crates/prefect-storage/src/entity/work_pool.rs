//! The `work_pool` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "work_pool")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub created: DateTimeUtc,
    pub updated: DateTimeUtc,
    pub name: String,
    pub description: Option<String>,
    #[sea_orm(column_name = "type")]
    pub kind: String,
    #[sea_orm(column_type = "JsonBinary")]
    pub base_job_template: Json,
    pub is_paused: bool,
    pub default_queue_id: Option<Uuid>,
    pub concurrency_limit: Option<i64>,
    pub status: String,
    pub last_transitioned_status_at: Option<DateTimeUtc>,
    pub last_status_event_id: Option<Uuid>,
    #[sea_orm(column_type = "JsonBinary")]
    pub storage_configuration: Json,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
