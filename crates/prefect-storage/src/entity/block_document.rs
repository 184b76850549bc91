//! The `block_document` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "block_document")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub created: DateTimeUtc,
    pub updated: DateTimeUtc,
    pub name: String,
    #[sea_orm(column_type = "JsonBinary")]
    pub data: Json,
    pub is_anonymous: bool,
    pub block_type_name: Option<String>,
    pub block_type_id: Uuid,
    pub block_schema_id: Uuid,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
