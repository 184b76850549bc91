//! Flow use cases.

use prefect_domain::filters::RunFilters;
use prefect_domain::flow::{Flow, FlowCreate, FlowUpdate};
use prefect_domain::pagination::Paginated;
use prefect_domain::sorts::FlowSort;
use prefect_domain::time;
use prefect_storage::flows;
use uuid::Uuid;

use crate::{Core, Error, Result};

impl Core {
    /// Creates a flow, or returns the existing one with the same name (`created` tells which).
    pub async fn create_flow(&self, create: FlowCreate) -> Result<(Flow, bool)> {
        create.validate()?;
        let txn = self.db().begin_write().await?;
        let (flow, created) = flows::create_or_read(&txn, &create, time::now()).await?;
        prefect_storage::commit(txn).await?;
        Ok((flow, created))
    }

    pub async fn read_flow(&self, id: Uuid) -> Result<Flow> {
        flows::read(self.db().reader(), id).await?.ok_or_else(|| Error::not_found("Flow not found"))
    }

    pub async fn read_flow_by_name(&self, name: &str) -> Result<Flow> {
        flows::read_by_name(self.db().reader(), name).await?.ok_or_else(|| Error::not_found("Flow not found"))
    }

    pub async fn filter_flows(&self, filters: &RunFilters, sort: FlowSort, limit: Option<u64>, offset: u64) -> Result<Vec<Flow>> {
        let limit = self.settings().limit(limit)?;
        Ok(flows::filter(self.db().reader(), self.db().backend(), filters, sort, limit, offset).await?)
    }

    pub async fn count_flows(&self, filters: &RunFilters) -> Result<u64> {
        Ok(flows::count(self.db().reader(), self.db().backend(), filters).await?)
    }

    pub async fn paginate_flows(&self, filters: &RunFilters, sort: FlowSort, limit: Option<u64>, page: u64) -> Result<Paginated<Flow>> {
        let limit = self.settings().limit(limit)?;
        let offset = Paginated::<Flow>::offset(page, limit);
        let reader = self.db().reader();
        let (results, count) =
            tokio::try_join!(flows::filter(reader, self.db().backend(), filters, sort, limit, offset), flows::count(reader, self.db().backend(), filters))?;
        Ok(Paginated::new(results, count, limit, page))
    }

    pub async fn update_flow(&self, id: Uuid, update: FlowUpdate) -> Result<()> {
        let txn = self.db().begin_write().await?;
        let found = match &update.tags {
            Some(tags) => flows::update_tags(&txn, id, tags, time::now()).await?,
            None => flows::read(&txn, id).await?.is_some(),
        };
        prefect_storage::commit(txn).await?;
        if found { Ok(()) } else { Err(Error::not_found("Flow not found")) }
    }

    pub async fn delete_flow(&self, id: Uuid) -> Result<()> {
        let txn = self.db().begin_write().await?;
        let deleted = flows::delete(&txn, id).await?;
        prefect_storage::commit(txn).await?;
        if deleted { Ok(()) } else { Err(Error::not_found("Flow not found")) }
    }

    pub async fn bulk_delete_flows(&self, filters: &RunFilters, limit: u64) -> Result<Vec<Uuid>> {
        let txn = self.db().begin_write().await?;
        let ids = flows::delete_matching(&txn, self.db().backend(), filters, limit).await?;
        prefect_storage::commit(txn).await?;
        Ok(ids)
    }
}
