//! The `artifact_collection` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "artifact_collection")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub created: DateTimeUtc,
    pub updated: DateTimeUtc,
    pub key: String,
    pub latest_id: Uuid,
    pub task_run_id: Option<Uuid>,
    pub flow_run_id: Option<Uuid>,
    #[sea_orm(column_name = "type")]
    pub kind: Option<String>,
    #[sea_orm(column_type = "JsonBinary")]
    pub data: Option<Json>,
    pub description: Option<String>,
    #[sea_orm(column_type = "JsonBinary", column_name = "metadata_")]
    pub metadata_: Option<Json>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
