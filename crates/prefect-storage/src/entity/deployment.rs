//! The `deployment` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "deployment")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub created: DateTimeUtc,
    pub updated: DateTimeUtc,
    pub name: String,
    pub version: Option<String>,
    #[sea_orm(column_type = "JsonBinary")]
    pub version_info: Option<Json>,
    pub description: Option<String>,
    pub work_queue_name: Option<String>,
    #[sea_orm(column_type = "JsonBinary")]
    pub job_variables: Json,
    pub path: Option<String>,
    pub entrypoint: Option<String>,
    pub last_polled: Option<DateTimeUtc>,
    pub status: String,
    pub flow_id: Uuid,
    pub work_queue_id: Option<Uuid>,
    pub paused: bool,
    pub concurrency_limit: Option<i64>,
    pub concurrency_limit_id: Option<Uuid>,
    #[sea_orm(column_type = "JsonBinary")]
    pub concurrency_options: Option<Json>,
    #[sea_orm(column_type = "JsonBinary")]
    pub tags: Json,
    #[sea_orm(column_type = "JsonBinary")]
    pub labels: Option<Json>,
    #[sea_orm(column_type = "JsonBinary")]
    pub parameters: Json,
    #[sea_orm(column_type = "JsonBinary")]
    pub pull_steps: Option<Json>,
    #[sea_orm(column_type = "JsonBinary")]
    pub parameter_openapi_schema: Option<Json>,
    pub enforce_parameter_schema: bool,
    #[sea_orm(column_type = "JsonBinary")]
    pub created_by: Option<Json>,
    #[sea_orm(column_type = "JsonBinary")]
    pub updated_by: Option<Json>,
    pub infrastructure_document_id: Option<Uuid>,
    pub storage_document_id: Option<Uuid>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
