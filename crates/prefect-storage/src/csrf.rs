//! CSRF tokens issued to UI clients when CSRF protection is on.

use prefect_domain::time::DateTime;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use uuid::Uuid;

use crate::Result;
use crate::entity::csrf_token;

/// Stores (or replaces) the token of `client`.
pub async fn upsert(c: &impl ConnectionTrait, client: &str, token: &str, expiration: DateTime, now: DateTime) -> Result<()> {
    let model = csrf_token::ActiveModel {
        id: Set(Uuid::now_v7()),
        created: Set(now),
        updated: Set(now),
        token: Set(token.to_owned()),
        client: Set(client.to_owned()),
        expiration: Set(expiration),
    };
    csrf_token::Entity::insert(model)
        .on_conflict(
            OnConflict::column(csrf_token::Column::Client)
                .update_columns([csrf_token::Column::Token, csrf_token::Column::Expiration, csrf_token::Column::Updated])
                .to_owned(),
        )
        .exec_without_returning(c)
        .await?;
    Ok(())
}

/// The unexpired token of `client`, if any.
pub async fn read(c: &impl ConnectionTrait, client: &str, now: DateTime) -> Result<Option<String>> {
    Ok(csrf_token::Entity::find().filter(csrf_token::Column::Client.eq(client)).filter(csrf_token::Column::Expiration.gt(now)).one(c).await?.map(|m| m.token))
}
