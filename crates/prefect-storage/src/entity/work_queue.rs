//! The `work_queue` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "work_queue")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub created: DateTimeUtc,
    pub updated: DateTimeUtc,
    pub name: String,
    #[sea_orm(column_type = "JsonBinary")]
    pub filter: Option<Json>,
    pub description: String,
    pub is_paused: bool,
    pub concurrency_limit: Option<i64>,
    pub priority: i64,
    pub last_polled: Option<DateTimeUtc>,
    pub status: String,
    pub work_pool_id: Uuid,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(belongs_to = "super::work_pool::Entity", from = "Column::WorkPoolId", to = "super::work_pool::Column::Id")]
    WorkPool,
}

impl Related<super::work_pool::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::WorkPool.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
