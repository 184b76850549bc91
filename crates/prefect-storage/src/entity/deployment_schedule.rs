//! The `deployment_schedule` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "deployment_schedule")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub created: DateTimeUtc,
    pub updated: DateTimeUtc,
    pub deployment_id: Uuid,
    #[sea_orm(column_type = "JsonBinary")]
    pub schedule: Json,
    pub active: bool,
    pub max_scheduled_runs: Option<i64>,
    #[sea_orm(column_type = "JsonBinary")]
    pub parameters: Json,
    pub slug: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
