//! `/block_types`, `/block_schemas`, `/block_documents` and `/block_capabilities` routes.

use actix_web::web::{Data, Path, Query};
use actix_web::{HttpResponse, delete, get, patch, post};
use prefect_domain::block::{
    BlockDocument, BlockDocumentCreate, BlockDocumentFilter, BlockDocumentUpdate, BlockSchema, BlockSchemaCreate, BlockSchemaFilter, BlockType,
    BlockTypeCreate, BlockTypeFilter, BlockTypeUpdate,
};
use prefect_domain::sorts::BlockDocumentSort;
use serde::{Deserialize, Deserializer};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::ApiState;
use crate::error::ApiResult;
use crate::extract::Json;
use crate::routes::{created, created_or_ok, no_content, ok};

/// A boolean query parameter spelled as FastAPI accepts it (`true`, `1`, `yes`, `on`, …).
fn lax_bool<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    let text = String::deserialize(deserializer)?;
    match text.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" | "t" | "y" => Ok(true),
        "false" | "0" | "no" | "off" | "f" | "n" => Ok(false),
        _ => Err(serde::de::Error::custom("Input should be a valid boolean, unable to interpret input")),
    }
}

/// `?include_secrets=true` reveals secret values.
#[derive(Debug, Default, Deserialize, IntoParams)]
pub struct IncludeSecrets {
    #[serde(default, deserialize_with = "lax_bool")]
    pub include_secrets: bool,
}

/// `?version=` of a schema looked up by checksum.
#[derive(Debug, Default, Deserialize, IntoParams)]
pub struct SchemaVersion {
    #[serde(default)]
    pub version: Option<String>,
}

/// Body of `POST /block_types/filter`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct BlockTypeFilterBody {
    #[serde(default)]
    pub block_types: Option<BlockTypeFilter>,
    #[serde(default)]
    pub block_schemas: Option<BlockSchemaFilter>,
    #[serde(default)]
    pub limit: Option<u64>,
    #[serde(default, deserialize_with = "crate::extract::null_as_default")]
    pub offset: u64,
}

/// Body of `POST /block_schemas/filter`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct BlockSchemaFilterBody {
    #[serde(default)]
    pub block_schemas: Option<BlockSchemaFilter>,
    #[serde(default)]
    pub limit: Option<u64>,
    #[serde(default, deserialize_with = "crate::extract::null_as_default")]
    pub offset: u64,
}

/// Body of `POST /block_documents/filter`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct BlockDocumentFilterBody {
    #[serde(default)]
    pub block_documents: Option<BlockDocumentFilter>,
    #[serde(default)]
    pub block_types: Option<BlockTypeFilter>,
    #[serde(default)]
    pub block_schemas: Option<BlockSchemaFilter>,
    #[serde(default, deserialize_with = "crate::extract::null_as_default")]
    pub include_secrets: bool,
    #[serde(default)]
    pub sort: Option<BlockDocumentSort>,
    #[serde(default)]
    pub limit: Option<u64>,
    #[serde(default, deserialize_with = "crate::extract::null_as_default")]
    pub offset: u64,
}

/// Body of `POST /block_documents/count`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct BlockDocumentCountBody {
    #[serde(default)]
    pub block_documents: Option<BlockDocumentFilter>,
    #[serde(default)]
    pub block_types: Option<BlockTypeFilter>,
    #[serde(default)]
    pub block_schemas: Option<BlockSchemaFilter>,
}

// ------------------------------------------------------------------ block types

#[utoipa::path(tag = "Block types", request_body = BlockTypeCreate, responses((status = 201, body = BlockType), (status = 403), (status = 409)))]
#[post("/")]
pub async fn create_block_type(state: Data<ApiState>, body: Json<BlockTypeCreate>) -> ApiResult<HttpResponse> {
    Ok(created(&state.core.create_block_type(body.0).await?))
}

#[utoipa::path(tag = "Block types", request_body = BlockTypeFilterBody, responses((status = 200, body = Vec<BlockType>)))]
#[post("/filter")]
pub async fn filter_block_types(state: Data<ApiState>, body: Json<BlockTypeFilterBody>) -> ApiResult<HttpResponse> {
    let b = body.0;
    Ok(ok(&state.core.filter_block_types(b.block_types.as_ref(), b.block_schemas.as_ref(), b.limit, b.offset).await?))
}

/// Registers the block types the server ships (done on start as well).
#[utoipa::path(tag = "Block types", responses((status = 200)))]
#[post("/install_system_block_types")]
pub async fn install_system_block_types(state: Data<ApiState>) -> ApiResult<HttpResponse> {
    state.core.install_system_block_types().await?;
    Ok(ok(&serde_json::Value::Null))
}

#[utoipa::path(tag = "Block types", params(("slug" = String, Path)), responses((status = 200, body = BlockType), (status = 404)))]
#[get("")]
pub async fn read_block_type_by_slug(state: Data<ApiState>, slug: Path<String>) -> ApiResult<HttpResponse> {
    Ok(ok(&state.core.read_block_type_by_slug(&slug).await?))
}

#[utoipa::path(tag = "Block types", params(IncludeSecrets, ("slug" = String, Path)), responses((status = 200, body = Vec<BlockDocument>), (status = 404)))]
#[get("/block_documents")]
pub async fn read_block_documents_of_type(state: Data<ApiState>, slug: Path<String>, query: Query<IncludeSecrets>) -> ApiResult<HttpResponse> {
    Ok(ok(&state.core.read_block_documents_of_type(&slug, query.include_secrets).await?))
}

#[utoipa::path(
    tag = "Block types",
    params(IncludeSecrets, ("slug" = String, Path), ("block_document_name" = String, Path)),
    responses((status = 200, body = BlockDocument), (status = 404))
)]
#[get("/block_documents/name/{block_document_name}")]
pub async fn read_block_document_by_name(state: Data<ApiState>, path: Path<(String, String)>, query: Query<IncludeSecrets>) -> ApiResult<HttpResponse> {
    let (slug, name) = path.into_inner();
    Ok(ok(&state.core.read_block_document_by_name(&slug, &name, query.include_secrets).await?))
}

#[utoipa::path(tag = "Block types", params(("id" = Uuid, Path)), responses((status = 200, body = BlockType), (status = 404)))]
#[get("")]
pub async fn read_block_type(state: Data<ApiState>, id: Path<Uuid>) -> ApiResult<HttpResponse> {
    Ok(ok(&state.core.read_block_type(*id).await?))
}

#[utoipa::path(tag = "Block types", params(("id" = Uuid, Path)), request_body = BlockTypeUpdate, responses((status = 204), (status = 404)))]
#[patch("")]
pub async fn update_block_type(state: Data<ApiState>, id: Path<Uuid>, body: Json<BlockTypeUpdate>) -> ApiResult<HttpResponse> {
    state.core.update_block_type(*id, body.0).await?;
    Ok(no_content())
}

#[utoipa::path(tag = "Block types", params(("id" = Uuid, Path)), responses((status = 204), (status = 403), (status = 404)))]
#[delete("")]
pub async fn delete_block_type(state: Data<ApiState>, id: Path<Uuid>) -> ApiResult<HttpResponse> {
    state.core.delete_block_type(*id).await?;
    Ok(no_content())
}

// ------------------------------------------------------------------ block schemas

/// Creates a block schema (201), or returns the identical one already stored (200).
#[utoipa::path(tag = "Block schemas", request_body = BlockSchemaCreate, responses((status = 201, body = BlockSchema), (status = 200, body = BlockSchema), (status = 404)))]
#[post("/")]
pub async fn create_block_schema(state: Data<ApiState>, body: Json<BlockSchemaCreate>) -> ApiResult<HttpResponse> {
    let (schema, created) = state.core.create_block_schema(body.0).await?;
    Ok(created_or_ok(created, &schema))
}

#[utoipa::path(tag = "Block schemas", request_body = BlockSchemaFilterBody, responses((status = 200, body = Vec<BlockSchema>)))]
#[post("/filter")]
pub async fn filter_block_schemas(state: Data<ApiState>, body: Json<BlockSchemaFilterBody>) -> ApiResult<HttpResponse> {
    let b = body.0;
    Ok(ok(&state.core.filter_block_schemas(b.block_schemas.as_ref(), b.limit, b.offset).await?))
}

#[utoipa::path(tag = "Block schemas", params(SchemaVersion), responses((status = 200, body = BlockSchema), (status = 404)))]
#[get("/checksum/{checksum}")]
pub async fn read_block_schema_by_checksum(state: Data<ApiState>, checksum: Path<String>, query: Query<SchemaVersion>) -> ApiResult<HttpResponse> {
    Ok(ok(&state.core.read_block_schema_by_checksum(&checksum, query.version.as_deref()).await?))
}

#[utoipa::path(tag = "Block schemas", params(("id" = Uuid, Path)), responses((status = 200, body = BlockSchema), (status = 404)))]
#[get("")]
pub async fn read_block_schema(state: Data<ApiState>, id: Path<Uuid>) -> ApiResult<HttpResponse> {
    Ok(ok(&state.core.read_block_schema(*id).await?))
}

#[utoipa::path(tag = "Block schemas", params(("id" = Uuid, Path)), responses((status = 204), (status = 403), (status = 404)))]
#[delete("")]
pub async fn delete_block_schema(state: Data<ApiState>, id: Path<Uuid>) -> ApiResult<HttpResponse> {
    state.core.delete_block_schema(*id).await?;
    Ok(no_content())
}

#[utoipa::path(tag = "Block capabilities", responses((status = 200, body = Vec<String>)))]
#[get("/block_capabilities/")]
pub async fn read_block_capabilities(state: Data<ApiState>) -> ApiResult<HttpResponse> {
    Ok(ok(&state.core.block_capabilities().await?))
}

// ------------------------------------------------------------------ block documents

#[utoipa::path(tag = "Block documents", request_body = BlockDocumentCreate, responses((status = 201, body = BlockDocument), (status = 409)))]
#[post("/")]
pub async fn create_block_document(state: Data<ApiState>, body: Json<BlockDocumentCreate>) -> ApiResult<HttpResponse> {
    Ok(created(&state.core.create_block_document(body.0).await?))
}

#[utoipa::path(tag = "Block documents", request_body = BlockDocumentFilterBody, responses((status = 200, body = Vec<BlockDocument>)))]
#[post("/filter")]
pub async fn filter_block_documents(state: Data<ApiState>, body: Json<BlockDocumentFilterBody>) -> ApiResult<HttpResponse> {
    let b = body.0;
    let documents = state
        .core
        .filter_block_documents(
            b.block_documents.as_ref(),
            b.block_types.as_ref(),
            b.block_schemas.as_ref(),
            b.include_secrets,
            b.sort.unwrap_or_default(),
            b.limit,
            b.offset,
        )
        .await?;
    Ok(ok(&documents))
}

#[utoipa::path(tag = "Block documents", request_body = BlockDocumentCountBody, responses((status = 200, body = u64)))]
#[post("/count")]
pub async fn count_block_documents(state: Data<ApiState>, body: Json<BlockDocumentCountBody>) -> ApiResult<HttpResponse> {
    let b = body.0;
    Ok(ok(&state.core.count_block_documents(b.block_documents.as_ref(), b.block_types.as_ref(), b.block_schemas.as_ref()).await?))
}

#[utoipa::path(tag = "Block documents", params(IncludeSecrets, ("id" = Uuid, Path)), responses((status = 200, body = BlockDocument), (status = 404)))]
#[get("")]
pub async fn read_block_document(state: Data<ApiState>, id: Path<Uuid>, query: Query<IncludeSecrets>) -> ApiResult<HttpResponse> {
    Ok(ok(&state.core.read_block_document(*id, query.include_secrets).await?))
}

#[utoipa::path(tag = "Block documents", params(("id" = Uuid, Path)), request_body = BlockDocumentUpdate, responses((status = 204), (status = 400), (status = 404)))]
#[patch("")]
pub async fn update_block_document(state: Data<ApiState>, id: Path<Uuid>, body: Json<BlockDocumentUpdate>) -> ApiResult<HttpResponse> {
    state.core.update_block_document(*id, body.0).await?;
    Ok(no_content())
}

#[utoipa::path(tag = "Block documents", params(("id" = Uuid, Path)), responses((status = 204), (status = 404)))]
#[delete("")]
pub async fn delete_block_document(state: Data<ApiState>, id: Path<Uuid>) -> ApiResult<HttpResponse> {
    state.core.delete_block_document(*id).await?;
    Ok(no_content())
}
