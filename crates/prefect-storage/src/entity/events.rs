//! The `events` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub created: DateTimeUtc,
    pub updated: DateTimeUtc,
    pub occurred: DateTimeUtc,
    pub event: String,
    pub resource_id: String,
    #[sea_orm(column_type = "JsonBinary")]
    pub resource: Json,
    #[sea_orm(column_type = "JsonBinary")]
    pub related_resource_ids: Json,
    #[sea_orm(column_type = "JsonBinary")]
    pub related: Json,
    #[sea_orm(column_type = "JsonBinary")]
    pub payload: Json,
    pub received: DateTimeUtc,
    pub recorded: DateTimeUtc,
    pub follows: Option<Uuid>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
