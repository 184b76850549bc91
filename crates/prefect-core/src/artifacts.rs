//! Artifact use cases.

use prefect_domain::artifact::{Artifact, ArtifactCollection, ArtifactCreate, ArtifactUpdate};
use prefect_domain::filters::{ArtifactFilter, RunFilters};
use prefect_domain::sorts::{ArtifactCollectionSort, ArtifactSort};
use prefect_domain::time;
use prefect_storage::artifacts;
use uuid::Uuid;

use crate::{Core, Error, Result};

impl Core {
    pub async fn create_artifact(&self, create: ArtifactCreate) -> Result<Artifact> {
        create.validate()?;
        let txn = self.db().begin_write().await?;
        let artifact = artifacts::insert(&txn, &create, time::now()).await?;
        prefect_storage::commit(txn).await?;
        Ok(artifact)
    }

    pub async fn read_artifact(&self, id: Uuid) -> Result<Artifact> {
        artifacts::read(self.db().reader(), id).await?.ok_or_else(|| Error::not_found("Artifact not found."))
    }

    pub async fn read_latest_artifact(&self, key: &str) -> Result<Artifact> {
        artifacts::read_latest(self.db().reader(), key).await?.ok_or_else(|| Error::not_found("Artifact not found."))
    }

    pub async fn update_artifact(&self, id: Uuid, update: ArtifactUpdate) -> Result<()> {
        let txn = self.db().begin_write().await?;
        let updated = artifacts::update(&txn, id, &update, time::now()).await?;
        prefect_storage::commit(txn).await?;
        if updated { Ok(()) } else { Err(Error::not_found("Artifact not found.")) }
    }

    pub async fn delete_artifact(&self, id: Uuid) -> Result<()> {
        let txn = self.db().begin_write().await?;
        let deleted = artifacts::delete(&txn, id, time::now()).await?;
        prefect_storage::commit(txn).await?;
        if deleted { Ok(()) } else { Err(Error::not_found("Artifact not found.")) }
    }

    pub async fn filter_artifacts(
        &self,
        filter: Option<&ArtifactFilter>,
        runs: &RunFilters,
        sort: ArtifactSort,
        limit: Option<u64>,
        offset: u64,
    ) -> Result<Vec<Artifact>> {
        let limit = self.settings().limit(limit)?;
        Ok(artifacts::filter(self.db().reader(), self.db().backend(), filter, runs, sort, limit, offset).await?)
    }

    pub async fn count_artifacts(&self, filter: Option<&ArtifactFilter>, runs: &RunFilters) -> Result<u64> {
        Ok(artifacts::count(self.db().reader(), self.db().backend(), filter, runs).await?)
    }

    pub async fn filter_latest_artifacts(
        &self,
        filter: Option<&ArtifactFilter>,
        runs: &RunFilters,
        sort: ArtifactCollectionSort,
        limit: Option<u64>,
        offset: u64,
    ) -> Result<Vec<ArtifactCollection>> {
        let limit = self.settings().limit(limit)?;
        Ok(artifacts::filter_latest(self.db().reader(), self.db().backend(), filter, runs, sort, limit, offset).await?)
    }

    pub async fn count_latest_artifacts(&self, filter: Option<&ArtifactFilter>, runs: &RunFilters) -> Result<u64> {
        Ok(artifacts::count_latest(self.db().reader(), self.db().backend(), filter, runs).await?)
    }
}
