//! Server configuration kept in the database (e.g. the default result storage block).

use prefect_domain::time::DateTime;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use serde_json::Value;
use uuid::Uuid;

use crate::Result;
use crate::entity::configuration;

pub async fn read(c: &impl ConnectionTrait, key: &str) -> Result<Option<Value>> {
    Ok(configuration::Entity::find().filter(configuration::Column::Key.eq(key)).one(c).await?.map(|m| m.value))
}

pub async fn write(c: &impl ConnectionTrait, key: &str, value: Value, now: DateTime) -> Result<()> {
    let model = configuration::ActiveModel { id: Set(Uuid::now_v7()), created: Set(now), updated: Set(now), key: Set(key.to_owned()), value: Set(value) };
    configuration::Entity::insert(model)
        .on_conflict(OnConflict::column(configuration::Column::Key).update_columns([configuration::Column::Value, configuration::Column::Updated]).to_owned())
        .exec_without_returning(c)
        .await?;
    Ok(())
}

pub async fn delete(c: &impl ConnectionTrait, key: &str) -> Result<bool> {
    Ok(configuration::Entity::delete_many().filter(configuration::Column::Key.eq(key)).exec(c).await?.rows_affected > 0)
}
