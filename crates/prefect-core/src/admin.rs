//! Server administration: the default result storage block.

use prefect_domain::time;
use prefect_domain::time::DateTime;
use prefect_storage::{ConnectionTrait, blocks, configuration, csrf};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{Core, Error, Result};

const DEFAULT_RESULT_STORAGE_KEY: &str = "server-default-result-storage";

/// Where clients persist results when they have no storage of their own.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerDefaultResultStorage {
    pub default_result_storage_block_id: Option<Uuid>,
}

impl Core {
    pub async fn read_default_result_storage(&self) -> Result<ServerDefaultResultStorage> {
        self.read_default_result_storage_in(self.db().reader()).await
    }

    pub(crate) async fn read_default_result_storage_in(&self, c: &impl ConnectionTrait) -> Result<ServerDefaultResultStorage> {
        let value = configuration::read(c, DEFAULT_RESULT_STORAGE_KEY).await?;
        Ok(value.and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default())
    }

    pub(crate) async fn clear_default_result_storage_in(&self, c: &impl ConnectionTrait) -> Result<()> {
        configuration::delete(c, DEFAULT_RESULT_STORAGE_KEY).await?;
        Ok(())
    }

    /// Sets the default; the block must exist and be able to write results.
    pub async fn set_default_result_storage(&self, block_document_id: Uuid) -> Result<ServerDefaultResultStorage> {
        let txn = self.db().begin_write().await?;
        let capabilities = blocks::document_capabilities(&txn, block_document_id)
            .await?
            .ok_or_else(|| Error::not_found(format!("Block document {block_document_id} not found.")))?;
        if !capabilities.iter().any(|c| c == "write-path") {
            return Err(Error::unprocessable(format!("Block document {block_document_id} cannot be used for result storage.")));
        }
        let value = ServerDefaultResultStorage { default_result_storage_block_id: Some(block_document_id) };
        configuration::write(&txn, DEFAULT_RESULT_STORAGE_KEY, serde_json::to_value(&value).unwrap_or_default(), time::now()).await?;
        prefect_storage::commit(txn).await?;
        Ok(value)
    }

    pub async fn clear_default_result_storage(&self) -> Result<()> {
        let txn = self.db().begin_write().await?;
        self.clear_default_result_storage_in(&txn).await?;
        prefect_storage::commit(txn).await?;
        Ok(())
    }
}

/// A CSRF token for a UI client.
#[derive(Debug, Clone, Serialize)]
pub struct CsrfToken {
    pub token: String,
    pub client: String,
    pub expiration: DateTime,
}

impl Core {
    /// Issues (or replaces) the CSRF token of `client`.
    pub async fn issue_csrf_token(&self, client: &str, ttl_seconds: f64) -> Result<CsrfToken> {
        use rand::Rng;
        let now = time::now();
        let token: String = rand::rng().sample_iter(rand::distr::Alphanumeric).take(64).map(char::from).collect();
        let expiration = now + time::from_seconds(ttl_seconds);
        let txn = self.db().begin_write().await?;
        csrf::upsert(&txn, client, &token, expiration, now).await?;
        prefect_storage::commit(txn).await?;
        Ok(CsrfToken { token, client: client.to_owned(), expiration })
    }

    /// Whether `token` is the unexpired token of `client`.
    pub async fn check_csrf_token(&self, client: &str, token: &str) -> Result<bool> {
        let stored = csrf::read(self.db().reader(), client, time::now()).await?;
        Ok(stored.is_some_and(|s| s == token))
    }
}
