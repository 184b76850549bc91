//! The `flow_run` table.

use prefect_domain::flow_run::FlowRunPolicy;
use sea_orm::entity::prelude::*;

use super::TypedJson;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "flow_run")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub created: DateTimeUtc,
    pub updated: DateTimeUtc,
    pub flow_id: Uuid,
    pub deployment_id: Option<Uuid>,
    pub deployment_version: Option<String>,
    pub work_queue_name: Option<String>,
    pub work_queue_id: Option<Uuid>,
    pub flow_version: Option<String>,
    #[sea_orm(column_type = "JsonBinary")]
    pub parameters: Json,
    pub idempotency_key: Option<String>,
    #[sea_orm(column_type = "JsonBinary")]
    pub context: Json,
    #[sea_orm(column_type = "JsonBinary")]
    pub empirical_policy: TypedJson<FlowRunPolicy>,
    #[sea_orm(column_type = "JsonBinary")]
    pub tags: TypedJson<Vec<String>>,
    #[sea_orm(column_type = "JsonBinary")]
    pub labels: Json,
    #[sea_orm(column_type = "JsonBinary")]
    pub created_by: Option<Json>,
    pub infrastructure_pid: Option<String>,
    #[sea_orm(column_type = "JsonBinary")]
    pub job_variables: Option<Json>,
    pub infrastructure_document_id: Option<Uuid>,
    pub parent_task_run_id: Option<Uuid>,
    pub auto_scheduled: bool,
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
    #[sea_orm(belongs_to = "super::flow_run_state::Entity", from = "Column::StateId", to = "super::flow_run_state::Column::Id")]
    CurrentState,
    #[sea_orm(belongs_to = "super::work_queue::Entity", from = "Column::WorkQueueId", to = "super::work_queue::Column::Id")]
    WorkQueue,
}

impl Related<super::flow_run_state::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::CurrentState.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
