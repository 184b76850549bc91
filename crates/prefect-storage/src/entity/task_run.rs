//! The `task_run` table.

use prefect_domain::task_run::TaskRunPolicy;
use sea_orm::entity::prelude::*;

use super::TypedJson;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "task_run")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub created: DateTimeUtc,
    pub updated: DateTimeUtc,
    pub flow_run_id: Option<Uuid>,
    pub task_key: String,
    pub dynamic_key: String,
    pub cache_key: Option<String>,
    pub cache_expiration: Option<DateTimeUtc>,
    pub task_version: Option<String>,
    pub flow_run_run_count: i64,
    #[sea_orm(column_type = "JsonBinary")]
    pub empirical_policy: TypedJson<TaskRunPolicy>,
    #[sea_orm(column_type = "JsonBinary")]
    pub task_inputs: Json,
    #[sea_orm(column_type = "JsonBinary")]
    pub tags: TypedJson<Vec<String>>,
    #[sea_orm(column_type = "JsonBinary")]
    pub labels: Option<Json>,
    pub state_id: Option<Uuid>,
    pub name: String,
    pub state_type: Option<String>,
    pub state_name: Option<String>,
    pub state_timestamp: Option<DateTimeUtc>,
    pub run_count: i64,
    pub expected_start_time: Option<DateTimeUtc>,
    pub next_scheduled_start_time: Option<DateTimeUtc>,
    pub start_time: Option<DateTimeUtc>,
    pub end_time: Option<DateTimeUtc>,
    pub total_run_time: f64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// The current state (`state_id`); a plain column, not a foreign key.
    #[sea_orm(belongs_to = "super::task_run_state::Entity", from = "Column::StateId", to = "super::task_run_state::Column::Id")]
    CurrentState,
}

impl Related<super::task_run_state::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::CurrentState.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
