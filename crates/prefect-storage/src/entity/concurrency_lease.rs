//! The `concurrency_lease` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "concurrency_lease")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub created: DateTimeUtc,
    pub updated: DateTimeUtc,
    pub expiration: DateTimeUtc,
    #[sea_orm(column_type = "JsonBinary")]
    pub resource_ids: Json,
    pub slots: i64,
    pub holder_type: Option<String>,
    pub holder_id: Option<Uuid>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
