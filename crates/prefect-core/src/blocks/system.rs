//! The block types the server ships and registers on start (as Prefect registers the
//! blocks of the `prefect` package): secrets, webhooks, file systems and notification
//! blocks. Their schemas are functional data kept in `data/system_block_types.json`;
//! checksums are computed on registration with [`super::checksum::checksum`], so a
//! client whose own schema differs simply registers its version beside ours.

use prefect_domain::block::{BlockSchemaCreate, BlockTypeCreate};
use prefect_domain::time;
use prefect_storage::blocks;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::{Core, Error, Result};

const DATA: &str = include_str!("../../data/system_block_types.json");

#[derive(Debug, Deserialize)]
struct SystemBlocks {
    block_types: Vec<SystemBlockType>,
}

#[derive(Debug, Deserialize)]
struct SystemBlockType {
    name: String,
    slug: String,
    logo_url: Option<String>,
    documentation_url: Option<String>,
    description: Option<String>,
    #[serde(default)]
    code_example: Option<String>,
    is_protected: bool,
    schema: SystemBlockSchema,
}

#[derive(Debug, Deserialize)]
struct SystemBlockSchema {
    version: String,
    capabilities: Vec<String>,
    fields: Map<String, Value>,
}

fn system_blocks() -> Result<SystemBlocks> {
    serde_json::from_str(DATA).map_err(|e| Error::Internal(format!("system block data: {e}")))
}

/// Slugs of the block types the server ships.
pub fn system_block_type_slugs() -> Vec<String> {
    system_blocks().map(|b| b.block_types.into_iter().map(|t| t.slug).collect()).unwrap_or_default()
}

impl Core {
    /// Registers (or refreshes) the shipped block types and their schemas. Idempotent: a
    /// schema already stored with the same checksum and version is left alone.
    ///
    /// All of them go in one transaction: one commit (on PostgreSQL, one WAL flush) instead
    /// of one per type, on the way from start to healthy. Instances starting together
    /// upsert in the same order, so they queue on each other's rows rather than deadlock.
    ///
    /// On a restart everything is usually in place already: two reads confirm it and the
    /// write transaction (about 120 statements) is skipped.
    pub async fn install_system_block_types(&self) -> Result<()> {
        let shipped = system_blocks()?.block_types;
        if self.system_block_types_current(&shipped).await? {
            return Ok(());
        }
        let now = time::now();
        let txn = self.db().begin_write().await?;
        for shipped in shipped {
            let create = BlockTypeCreate {
                name: shipped.name,
                slug: shipped.slug,
                logo_url: shipped.logo_url,
                documentation_url: shipped.documentation_url,
                description: shipped.description,
                code_example: shipped.code_example,
            };
            let (block_type, _) = blocks::upsert_type(&txn, &create, shipped.is_protected, now).await?;
            let schema = BlockSchemaCreate {
                fields: shipped.schema.fields,
                block_type_id: block_type.id,
                capabilities: shipped.schema.capabilities,
                version: shipped.schema.version,
            };
            super::create_schema_tree(&txn, &schema, None, now, 0).await?;
        }
        prefect_storage::commit(txn).await?;
        Ok(())
    }
}

impl Core {
    /// Whether registering `shipped` would change nothing but `updated` timestamps: every
    /// type is stored with the same fields, and every type's schema (checksum and version)
    /// is stored. A deleted schema or type, or a binary shipping different data, registers again.
    async fn system_block_types_current(&self, shipped: &[SystemBlockType]) -> Result<bool> {
        let reader = self.db().reader();
        let slugs: Vec<&str> = shipped.iter().map(|t| t.slug.as_str()).collect();
        let stored = blocks::read_types_by_slug(reader, &slugs).await?;
        let types_current = shipped.iter().all(|t| {
            stored.get(&t.slug).is_some_and(|s| {
                s.name == t.name
                    && s.logo_url == t.logo_url
                    && s.documentation_url == t.documentation_url
                    && s.description == t.description
                    && s.code_example == t.code_example
                    && s.is_protected == t.is_protected
            })
        });
        if !types_current {
            return Ok(false);
        }
        // A top-level schema's checksum is that of its fields as given, as `create_block_schema` also assumes.
        let checksums: Vec<String> = shipped.iter().map(|t| super::checksum::checksum(&t.schema.fields)).collect();
        let stored = blocks::schema_versions(reader, &checksums.iter().map(String::as_str).collect::<Vec<_>>()).await?;
        Ok(shipped.iter().zip(&checksums).all(|(t, checksum)| stored.contains(&(checksum.clone(), t.schema.version.clone()))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_data_is_well_formed() {
        let shipped = system_blocks().unwrap();
        let slugs: Vec<&str> = shipped.block_types.iter().map(|t| t.slug.as_str()).collect();
        for slug in ["secret", "local-file-system", "webhook", "remote-file-system", "smb", "slack-webhook"] {
            assert!(slugs.contains(&slug), "{slug} missing");
        }
        for t in &shipped.block_types {
            assert_eq!(t.schema.fields.get("block_type_slug").and_then(Value::as_str), Some(t.slug.as_str()));
            assert!(t.schema.fields.contains_key("secret_fields"), "{} has no secret_fields", t.slug);
        }
        let lfs = shipped.block_types.iter().find(|t| t.slug == "local-file-system").unwrap();
        assert!(lfs.schema.capabilities.iter().any(|c| c == "write-path"));
    }
}
