//! Block documents (the parts other features read; management arrives with blocks).

use sea_orm::{ConnectionTrait, EntityTrait};
use uuid::Uuid;

use crate::convert::string_list;
use crate::entity::{block_document, block_schema};
use crate::Result;

/// Capabilities of a block document's schema; `None` if the document does not exist.
pub async fn document_capabilities(c: &impl ConnectionTrait, id: Uuid) -> Result<Option<Vec<String>>> {
    let Some(document) = block_document::Entity::find_by_id(id).one(c).await? else { return Ok(None) };
    let schema = block_schema::Entity::find_by_id(document.block_schema_id).one(c).await?;
    Ok(Some(schema.map(|s| string_list(s.capabilities)).unwrap_or_default()))
}
