//! Artifacts and the latest-artifact-per-key collection.

use prefect_domain::artifact::{Artifact, ArtifactCollection, ArtifactCreate, ArtifactUpdate};
use prefect_domain::filters::{ArtifactFilter, RunFilters};
use prefect_domain::sorts::{ArtifactCollectionSort, ArtifactSort};
use prefect_domain::time::DateTime;
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, EntityTrait, Order, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};
use serde_json::Value;
use uuid::Uuid;

use crate::Result;
use crate::convert;
use crate::db::Backend;
use crate::entity::{artifact, artifact_collection};
use crate::query;
use crate::writes::RowWrites;

/// Inserts an artifact; a keyed artifact also becomes the latest of its key.
pub async fn insert(c: &impl ConnectionTrait, create: &ArtifactCreate, now: DateTime) -> Result<Artifact> {
    let id = Uuid::now_v7();
    let model = artifact::ActiveModel {
        id: Set(id),
        created: Set(now),
        updated: Set(now),
        key: Set(create.key.clone()),
        task_run_id: Set(create.task_run_id),
        flow_run_id: Set(create.flow_run_id),
        kind: Set(create.kind.clone()),
        data: Set(create.data.clone()),
        description: Set(create.description.clone()),
        metadata_: Set(create.metadata_.clone().map(Value::Object)),
    };
    artifact::Entity::insert(model.clone()).exec_without_returning(c).await?;
    if let Some(key) = &create.key {
        let latest = artifact_collection::ActiveModel {
            id: Set(Uuid::now_v7()),
            created: Set(now),
            updated: Set(now),
            key: Set(key.clone()),
            latest_id: Set(id),
            task_run_id: Set(create.task_run_id),
            flow_run_id: Set(create.flow_run_id),
            kind: Set(create.kind.clone()),
            data: Set(create.data.clone()),
            description: Set(create.description.clone()),
            metadata_: Set(create.metadata_.clone().map(Value::Object)),
        };
        use artifact_collection::Column as C;
        artifact_collection::Entity::insert(latest)
            .on_conflict(
                OnConflict::column(C::Key)
                    .update_columns([C::Updated, C::LatestId, C::TaskRunId, C::FlowRunId, C::Kind, C::Data, C::Description, C::Metadata])
                    .to_owned(),
            )
            .exec_without_returning(c)
            .await?;
    }
    Ok(Artifact {
        id,
        created: now,
        updated: now,
        key: create.key.clone(),
        kind: create.kind.clone(),
        description: create.description.clone(),
        data: create.data.clone(),
        metadata_: create.metadata_.clone(),
        flow_run_id: create.flow_run_id,
        task_run_id: create.task_run_id,
    })
}

/// Inserts a `result` artifact for a persisted result; returns its id.
/// Queues the result artifact of a state in `writes`; its id.
pub fn push_insert_result(writes: &mut RowWrites, data: &Value, flow_run_id: Option<Uuid>, task_run_id: Option<Uuid>, now: DateTime) -> Uuid {
    let id = Uuid::now_v7();
    let model = artifact::ActiveModel {
        id: Set(id),
        created: Set(now),
        updated: Set(now),
        key: Set(None),
        task_run_id: Set(task_run_id),
        flow_run_id: Set(flow_run_id),
        kind: Set(Some("result".to_owned())),
        data: Set(Some(data.clone())),
        description: Set(None),
        metadata_: Set(None),
    };
    writes.insert(&artifact::Entity::insert(model));
    id
}

pub async fn read(c: &impl ConnectionTrait, id: Uuid) -> Result<Option<Artifact>> {
    Ok(artifact::Entity::find_by_id(id).one(c).await?.map(convert::artifact))
}

/// The newest artifact with `key`.
pub async fn read_latest(c: &impl ConnectionTrait, key: &str) -> Result<Option<Artifact>> {
    Ok(artifact::Entity::find()
        .filter(artifact::Column::Key.eq(key))
        .order_by(artifact::Column::Created, Order::Desc)
        .order_by(artifact::Column::Id, Order::Desc)
        .one(c)
        .await?
        .map(convert::artifact))
}

/// Applies a `PATCH` (and refreshes the collection entry when this is the latest of its key).
pub async fn update(c: &impl ConnectionTrait, id: Uuid, update: &ArtifactUpdate, now: DateTime) -> Result<bool> {
    let model = artifact::ActiveModel {
        updated: Set(now),
        data: update.data.clone().map_or(NotSet, |d| Set(Some(d))),
        description: update.description.clone().map_or(NotSet, |d| Set(Some(d))),
        metadata_: update.metadata_.clone().map_or(NotSet, |m| Set(Some(Value::Object(m)))),
        ..Default::default()
    };
    let affected = artifact::Entity::update_many().set(model).filter(artifact::Column::Id.eq(id)).exec(c).await?.rows_affected;
    if affected == 0 {
        return Ok(false);
    }
    let latest = artifact_collection::ActiveModel {
        updated: Set(now),
        data: update.data.clone().map_or(NotSet, |d| Set(Some(d))),
        description: update.description.clone().map_or(NotSet, |d| Set(Some(d))),
        metadata_: update.metadata_.clone().map_or(NotSet, |m| Set(Some(Value::Object(m)))),
        ..Default::default()
    };
    artifact_collection::Entity::update_many().set(latest).filter(artifact_collection::Column::LatestId.eq(id)).exec(c).await?;
    Ok(true)
}

/// Deletes an artifact; if it was the latest of its key, the previous one becomes the latest.
pub async fn delete(c: &impl ConnectionTrait, id: Uuid, now: DateTime) -> Result<bool> {
    let Some(existing) = artifact::Entity::find_by_id(id).one(c).await? else { return Ok(false) };
    artifact::Entity::delete_by_id(id).exec(c).await?;
    if let Some(key) = existing.key {
        let was_latest = artifact_collection::Entity::find().filter(artifact_collection::Column::LatestId.eq(id)).one(c).await?;
        if let Some(entry) = was_latest {
            repoint_collection(c, entry.id, &key, now).await?;
        }
    }
    Ok(true)
}

/// Points the collection entry `entry_id` of `key` at the newest artifact of that key;
/// deletes the entry when none is left. Returns whether an artifact was left.
pub(crate) async fn repoint_collection(c: &impl ConnectionTrait, entry_id: Uuid, key: &str, now: DateTime) -> Result<bool> {
    match read_latest(c, key).await? {
        Some(previous) => {
            let model = artifact_collection::ActiveModel {
                id: Set(entry_id),
                updated: Set(now),
                latest_id: Set(previous.id),
                task_run_id: Set(previous.task_run_id),
                flow_run_id: Set(previous.flow_run_id),
                kind: Set(previous.kind),
                data: Set(previous.data),
                description: Set(previous.description),
                metadata_: Set(previous.metadata_.map(Value::Object)),
                ..Default::default()
            };
            artifact_collection::Entity::update(model).exec(c).await?;
            Ok(true)
        }
        None => {
            artifact_collection::Entity::delete_by_id(entry_id).exec(c).await?;
            Ok(false)
        }
    }
}

pub async fn filter(
    c: &impl ConnectionTrait,
    backend: Backend,
    artifacts: Option<&ArtifactFilter>,
    runs: &RunFilters,
    sort: ArtifactSort,
    limit: u64,
    offset: u64,
) -> Result<Vec<Artifact>> {
    use artifact::Column as C;
    let (column, order) = match sort {
        ArtifactSort::CreatedDesc => (C::Created, Order::Desc),
        ArtifactSort::UpdatedDesc => (C::Updated, Order::Desc),
        ArtifactSort::IdDesc => (C::Id, Order::Desc),
        ArtifactSort::KeyDesc => (C::Key, Order::Desc),
        ArtifactSort::KeyAsc => (C::Key, Order::Asc),
    };
    Ok(artifact::Entity::find()
        .filter(query::artifacts_matching(backend, artifacts, runs))
        .order_by(column, order)
        .order_by(C::Id, Order::Desc)
        .limit(limit)
        .offset(offset)
        .all(c)
        .await?
        .into_iter()
        .map(convert::artifact)
        .collect())
}

pub async fn count(c: &impl ConnectionTrait, backend: Backend, artifacts: Option<&ArtifactFilter>, runs: &RunFilters) -> Result<u64> {
    Ok(artifact::Entity::find().filter(query::artifacts_matching(backend, artifacts, runs)).count(c).await?)
}

fn collection_condition(backend: Backend, filter: Option<&ArtifactFilter>, runs: &RunFilters) -> sea_orm::Condition {
    // The collection has the same columns as artifacts (plus latest_id): reuse the artifact
    // criteria by selecting collection rows whose latest artifact matches.
    let artifacts = artifact::Entity::find().select_only().column(artifact::Column::Id).filter(query::artifacts_matching(
        backend,
        filter.map(|f| ArtifactFilter { latest_id: None, ..f.clone() }).as_ref(),
        runs,
    ));
    let mut cond = sea_orm::Condition::all().add(artifact_collection::Column::LatestId.in_subquery(sea_orm::QueryTrait::into_query(artifacts)));
    if let Some(latest) = filter.and_then(|f| f.latest_id.as_ref()) {
        if let Some(any) = &latest.any_ {
            cond = cond.add(artifact_collection::Column::LatestId.is_in(any.iter().copied()));
        }
        if let Some(not_any) = &latest.not_any_ {
            cond = cond.add(artifact_collection::Column::LatestId.is_not_in(not_any.iter().copied()));
        }
    }
    cond
}

pub async fn filter_latest(
    c: &impl ConnectionTrait,
    backend: Backend,
    filter: Option<&ArtifactFilter>,
    runs: &RunFilters,
    sort: ArtifactCollectionSort,
    limit: u64,
    offset: u64,
) -> Result<Vec<ArtifactCollection>> {
    use artifact_collection::Column as C;
    let (column, order) = match sort {
        ArtifactCollectionSort::CreatedDesc => (C::Created, Order::Desc),
        ArtifactCollectionSort::UpdatedDesc => (C::Updated, Order::Desc),
        ArtifactCollectionSort::IdDesc => (C::Id, Order::Desc),
        ArtifactCollectionSort::KeyDesc => (C::Key, Order::Desc),
        ArtifactCollectionSort::KeyAsc => (C::Key, Order::Asc),
    };
    Ok(artifact_collection::Entity::find()
        .filter(collection_condition(backend, filter, runs))
        .order_by(column, order)
        .order_by(C::Id, Order::Desc)
        .limit(limit)
        .offset(offset)
        .all(c)
        .await?
        .into_iter()
        .map(convert::artifact_collection)
        .collect())
}

pub async fn count_latest(c: &impl ConnectionTrait, backend: Backend, filter: Option<&ArtifactFilter>, runs: &RunFilters) -> Result<u64> {
    Ok(artifact_collection::Entity::find().filter(collection_condition(backend, filter, runs)).count(c).await?)
}
