//! The `block_schema` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "block_schema")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub created: DateTimeUtc,
    pub updated: DateTimeUtc,
    pub checksum: String,
    #[sea_orm(column_type = "JsonBinary")]
    pub fields: Json,
    #[sea_orm(column_type = "JsonBinary")]
    pub capabilities: Json,
    pub version: String,
    pub block_type_id: Uuid,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
