//! The `flow_run_state` table.

use prefect_domain::state::StateDetails;
use sea_orm::entity::prelude::*;

use super::TypedJson;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "flow_run_state")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub created: DateTimeUtc,
    pub updated: DateTimeUtc,
    pub flow_run_id: Uuid,
    #[sea_orm(column_name = "type")]
    pub kind: String,
    pub timestamp: DateTimeUtc,
    pub name: String,
    pub message: Option<String>,
    #[sea_orm(column_type = "JsonBinary")]
    pub state_details: TypedJson<StateDetails>,
    #[sea_orm(column_type = "JsonBinary")]
    pub data: Option<Json>,
    pub result_artifact_id: Option<Uuid>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
