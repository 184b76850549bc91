//! The `concurrency_limit_v2` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "concurrency_limit_v2")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub created: DateTimeUtc,
    pub updated: DateTimeUtc,
    pub active: bool,
    pub name: String,
    pub limit: i64,
    pub active_slots: i64,
    pub denied_slots: i64,
    pub slot_decay_per_second: f64,
    pub avg_slot_occupancy_seconds: f64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
