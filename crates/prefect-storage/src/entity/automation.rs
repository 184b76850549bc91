//! The `automation` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "automation")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub created: DateTimeUtc,
    pub updated: DateTimeUtc,
    pub name: String,
    pub description: String,
    pub enabled: bool,
    #[sea_orm(column_type = "JsonBinary")]
    pub tags: Json,
    #[sea_orm(column_type = "JsonBinary")]
    pub trigger: Json,
    #[sea_orm(column_type = "JsonBinary")]
    pub actions: Json,
    #[sea_orm(column_type = "JsonBinary")]
    pub actions_on_trigger: Json,
    #[sea_orm(column_type = "JsonBinary")]
    pub actions_on_resolve: Json,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
