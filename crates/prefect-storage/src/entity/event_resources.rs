//! The `event_resources` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "event_resources")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub created: DateTimeUtc,
    pub updated: DateTimeUtc,
    pub occurred: DateTimeUtc,
    pub resource_id: String,
    pub resource_role: String,
    #[sea_orm(column_type = "JsonBinary")]
    pub resource: Json,
    pub event_id: Uuid,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
