//! Saved search use cases, and the UI's schema and template checks.

use std::collections::HashMap;

use prefect_domain::saved_search::{SavedSearch, SavedSearchCreate};
use prefect_domain::time;
use prefect_storage::{saved_searches, variables};
use serde_json::Value;
use uuid::Uuid;

use crate::schema_tools::{self, HydrationContext};
use crate::{Core, Error, Result};

const NOT_FOUND: &str = "Saved search not found";

impl Core {
    /// Creates a saved search, or replaces the filters of the one with that name (`false`).
    pub async fn upsert_saved_search(&self, create: SavedSearchCreate) -> Result<(SavedSearch, bool)> {
        let txn = self.db().begin_write().await?;
        let saved = saved_searches::upsert(&txn, &create, time::now()).await?;
        prefect_storage::commit(txn).await?;
        Ok(saved)
    }

    pub async fn read_saved_search(&self, id: Uuid) -> Result<SavedSearch> {
        saved_searches::read(self.db().reader(), id).await?.ok_or_else(|| Error::not_found(NOT_FOUND))
    }

    pub async fn filter_saved_searches(&self, limit: Option<u64>, offset: u64) -> Result<Vec<SavedSearch>> {
        let limit = self.settings().limit(limit)?;
        Ok(saved_searches::filter(self.db().reader(), limit, offset).await?)
    }

    pub async fn delete_saved_search(&self, id: Uuid) -> Result<()> {
        let txn = self.db().begin_write().await?;
        let deleted = saved_searches::delete(&txn, id).await?;
        prefect_storage::commit(txn).await?;
        if deleted { Ok(()) } else { Err(Error::not_found(NOT_FOUND)) }
    }

    /// `POST /ui/schemas/validate`: hydrates `values` (workspace variables resolved, templates
    /// only checked) and validates them against `schema`; Prefect's `{"errors", "valid"}` object.
    pub async fn validate_schema_values(&self, schema: &Value, values: &Value) -> Result<Value> {
        let schema = schema_tools::preprocess_schema(schema);
        schema_tools::check_schema(&schema)?;
        let workspace_variables: HashMap<String, Value> = variables::all_values(self.db().reader()).await?.into_iter().collect();
        let ctx = HydrationContext {
            workspace_variables,
            render_workspace_variables: true,
            render_jinja: false,
            raise_on_error: false,
            jinja_context: Value::Object(Default::default()),
        };
        let (hydrated, placeholders) = schema_tools::hydrate(values, &ctx).map_err(|e| Error::unprocessable(e.to_string()))?;
        let violations = schema_tools::validate(&hydrated, &schema, &placeholders)?;
        Ok(schema_tools::error_object(&violations))
    }
}
