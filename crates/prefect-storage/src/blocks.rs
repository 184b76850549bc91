//! Block types, block schemas, block documents and the references between them.
//!
//! Rows only: assembling a schema with its nested schemas, or a document with
//! the documents it references, is done by `prefect-core` from these pieces.

use std::collections::{HashMap, HashSet};

use prefect_domain::block::{BlockDocumentFilter, BlockSchema, BlockSchemaFilter, BlockType, BlockTypeCreate, BlockTypeFilter, BlockTypeUpdate};
use prefect_domain::filters::Operator;
use prefect_domain::sorts::BlockDocumentSort;
use prefect_domain::time::DateTime;
use sea_orm::sea_query::{Condition, Expr, ExprTrait, OnConflict};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, EntityTrait, Order, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, QueryTrait,
};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::Result;
use crate::convert::{json_object, string_list};
use crate::db::Backend;
use crate::entity::{block_document, block_document_reference, block_schema, block_schema_reference, block_type};
use crate::query;

/// Capabilities of a block document's schema; `None` if the document does not exist.
pub async fn document_capabilities(c: &impl ConnectionTrait, id: Uuid) -> Result<Option<Vec<String>>> {
    let Some(document) = block_document::Entity::find_by_id(id).one(c).await? else { return Ok(None) };
    let schema = block_schema::Entity::find_by_id(document.block_schema_id).one(c).await?;
    Ok(Some(schema.map(|s| string_list(s.capabilities)).unwrap_or_default()))
}

// ------------------------------------------------------------------ block types

fn block_type_of(m: block_type::Model) -> BlockType {
    BlockType {
        id: m.id,
        created: m.created,
        updated: m.updated,
        name: m.name,
        slug: m.slug,
        logo_url: m.logo_url,
        documentation_url: m.documentation_url,
        description: m.description,
        code_example: m.code_example,
        is_protected: m.is_protected,
    }
}

/// Inserts a block type; a taken slug is a `Conflict`.
pub async fn insert_type(c: &impl ConnectionTrait, create: &BlockTypeCreate, is_protected: bool, now: DateTime) -> Result<BlockType> {
    let model = block_type::ActiveModel {
        id: Set(Uuid::now_v7()),
        created: Set(now),
        updated: Set(now),
        name: Set(create.name.clone()),
        slug: Set(create.slug.clone()),
        logo_url: Set(create.logo_url.clone()),
        documentation_url: Set(create.documentation_url.clone()),
        description: Set(create.description.clone()),
        code_example: Set(create.code_example.clone()),
        is_protected: Set(is_protected),
    };
    Ok(block_type_of(block_type::Entity::insert(model).exec_with_returning(c).await?))
}

/// Inserts or overwrites (by slug) a block type the server ships; returns it and whether it is new.
pub async fn upsert_type(c: &impl ConnectionTrait, create: &BlockTypeCreate, is_protected: bool, now: DateTime) -> Result<(BlockType, bool)> {
    use block_type::Column as C;
    let existed = read_type_by_slug(c, &create.slug).await?.is_some();
    let model = block_type::ActiveModel {
        id: Set(Uuid::now_v7()),
        created: Set(now),
        updated: Set(now),
        name: Set(create.name.clone()),
        slug: Set(create.slug.clone()),
        logo_url: Set(create.logo_url.clone()),
        documentation_url: Set(create.documentation_url.clone()),
        description: Set(create.description.clone()),
        code_example: Set(create.code_example.clone()),
        is_protected: Set(is_protected),
    };
    block_type::Entity::insert(model)
        .on_conflict(
            OnConflict::column(C::Slug)
                .update_columns([C::Name, C::LogoUrl, C::DocumentationUrl, C::Description, C::CodeExample, C::IsProtected, C::Updated])
                .to_owned(),
        )
        .exec_without_returning(c)
        .await?;
    let stored = read_type_by_slug(c, &create.slug).await?.ok_or(crate::Error::NotFound { entity: "Block type" })?;
    Ok((stored, !existed))
}

pub async fn read_type(c: &impl ConnectionTrait, id: Uuid) -> Result<Option<BlockType>> {
    Ok(block_type::Entity::find_by_id(id).one(c).await?.map(block_type_of))
}

pub async fn read_type_by_slug(c: &impl ConnectionTrait, slug: &str) -> Result<Option<BlockType>> {
    Ok(block_type::Entity::find().filter(block_type::Column::Slug.eq(slug)).one(c).await?.map(block_type_of))
}

/// Block types by slug.
pub async fn read_types_by_slug(c: &impl ConnectionTrait, slugs: &[&str]) -> Result<HashMap<String, BlockType>> {
    if slugs.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = block_type::Entity::find().filter(block_type::Column::Slug.is_in(slugs.iter().copied())).all(c).await?;
    Ok(rows.into_iter().map(|m| (m.slug.clone(), block_type_of(m))).collect())
}

/// Block types by id, for attaching to schemas and documents.
pub async fn read_types(c: &impl ConnectionTrait, ids: &[Uuid]) -> Result<HashMap<Uuid, BlockType>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = block_type::Entity::find().filter(block_type::Column::Id.is_in(ids.iter().copied())).all(c).await?;
    Ok(rows.into_iter().map(|m| (m.id, block_type_of(m))).collect())
}

/// Block types matching both filters, by name.
pub async fn filter_types(
    c: &impl ConnectionTrait,
    backend: Backend,
    types: Option<&BlockTypeFilter>,
    schemas: Option<&BlockSchemaFilter>,
    limit: u64,
    offset: u64,
) -> Result<Vec<BlockType>> {
    let mut select = block_type::Entity::find();
    if let Some(f) = types {
        select = select.filter(block_type_condition(backend, f));
    }
    if let Some(f) = schemas {
        let with_schema =
            block_schema::Entity::find().select_only().column(block_schema::Column::BlockTypeId).filter(block_schema_condition(backend, f)).into_query();
        select = select.filter(block_type::Column::Id.in_subquery(with_schema));
    }
    Ok(select
        .order_by(block_type::Column::Name, Order::Asc)
        .order_by(block_type::Column::Id, Order::Asc)
        .limit(limit)
        .offset(offset)
        .all(c)
        .await?
        .into_iter()
        .map(block_type_of)
        .collect())
}

pub async fn update_type(c: &impl ConnectionTrait, id: Uuid, update: &BlockTypeUpdate, now: DateTime) -> Result<bool> {
    let model = block_type::ActiveModel {
        updated: Set(now),
        logo_url: update.logo_url.clone().map_or(NotSet, Set),
        documentation_url: update.documentation_url.clone().map_or(NotSet, Set),
        description: update.description.clone().map_or(NotSet, Set),
        code_example: update.code_example.clone().map_or(NotSet, Set),
        ..Default::default()
    };
    Ok(block_type::Entity::update_many().set(model).filter(block_type::Column::Id.eq(id)).exec(c).await?.rows_affected > 0)
}

/// Deletes a block type with its schemas and documents (foreign keys cascade).
pub async fn delete_type(c: &impl ConnectionTrait, id: Uuid) -> Result<bool> {
    Ok(block_type::Entity::delete_by_id(id).exec(c).await?.rows_affected > 0)
}

fn block_type_condition(backend: Backend, f: &BlockTypeFilter) -> Condition {
    let mut cond = Condition::all();
    if let Some(needle) = f.name.as_ref().and_then(|n| n.like_.as_deref()).filter(|n| !n.is_empty()) {
        cond = cond.add(query::ilike(backend, "block_type", "name", needle));
    }
    if let Some(any) = f.slug.as_ref().and_then(|s| s.any_.as_ref()) {
        cond = cond.add(block_type::Column::Slug.is_in(any.iter().cloned()));
    }
    cond
}

// ------------------------------------------------------------------ block schemas

/// A stored block schema row: `fields` as stored (without `block_schema_references`).
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaRow {
    pub id: Uuid,
    pub created: DateTime,
    pub updated: DateTime,
    pub checksum: String,
    pub fields: Map<String, Value>,
    pub capabilities: Vec<String>,
    pub version: String,
    pub block_type_id: Uuid,
}

impl SchemaRow {
    /// The schema as the API shows it, given its (already assembled) fields and block type.
    pub fn into_schema(self, fields: Map<String, Value>, block_type: Option<BlockType>) -> BlockSchema {
        BlockSchema {
            id: self.id,
            created: self.created,
            updated: self.updated,
            checksum: self.checksum,
            fields,
            block_type_id: self.block_type_id,
            block_type,
            capabilities: self.capabilities,
            version: self.version,
        }
    }
}

fn schema_row(m: block_schema::Model) -> SchemaRow {
    SchemaRow {
        id: m.id,
        created: m.created,
        updated: m.updated,
        checksum: m.checksum,
        fields: json_object(m.fields),
        capabilities: string_list(m.capabilities),
        version: m.version,
        block_type_id: m.block_type_id,
    }
}

/// What a new schema row holds.
#[derive(Debug, Clone)]
pub struct NewSchema<'a> {
    pub checksum: &'a str,
    pub fields: &'a Map<String, Value>,
    pub capabilities: &'a [String],
    pub version: &'a str,
    pub block_type_id: Uuid,
}

/// Inserts a schema unless one with the same checksum and version exists; returns the stored row.
pub async fn insert_schema(c: &impl ConnectionTrait, new: &NewSchema<'_>, now: DateTime) -> Result<SchemaRow> {
    use block_schema::Column as C;
    let model = block_schema::ActiveModel {
        id: Set(Uuid::now_v7()),
        created: Set(now),
        updated: Set(now),
        checksum: Set(new.checksum.to_owned()),
        fields: Set(Value::Object(new.fields.clone())),
        capabilities: Set(Value::from(new.capabilities.to_vec())),
        version: Set(new.version.to_owned()),
        block_type_id: Set(new.block_type_id),
    };
    block_schema::Entity::insert(model).on_conflict(OnConflict::columns([C::Checksum, C::Version]).do_nothing().to_owned()).exec_without_returning(c).await?;
    read_schema_by_checksum(c, new.checksum, Some(new.version)).await?.ok_or(crate::Error::NotFound { entity: "Block schema" })
}

pub async fn read_schema(c: &impl ConnectionTrait, id: Uuid) -> Result<Option<SchemaRow>> {
    Ok(block_schema::Entity::find_by_id(id).one(c).await?.map(schema_row))
}

/// Schema rows by id.
pub async fn read_schemas(c: &impl ConnectionTrait, ids: &[Uuid]) -> Result<HashMap<Uuid, SchemaRow>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = block_schema::Entity::find().filter(block_schema::Column::Id.is_in(ids.iter().copied())).all(c).await?;
    Ok(rows.into_iter().map(|m| (m.id, schema_row(m))).collect())
}

/// The newest schema with `checksum` (and `version`, when given).
pub async fn read_schema_by_checksum(c: &impl ConnectionTrait, checksum: &str, version: Option<&str>) -> Result<Option<SchemaRow>> {
    let mut select = block_schema::Entity::find().filter(block_schema::Column::Checksum.eq(checksum));
    if let Some(version) = version {
        select = select.filter(block_schema::Column::Version.eq(version));
    }
    Ok(select.order_by(block_schema::Column::Created, Order::Desc).one(c).await?.map(schema_row))
}

/// The (checksum, version) pairs stored among schemas with one of `checksums`.
pub async fn schema_versions(c: &impl ConnectionTrait, checksums: &[&str]) -> Result<HashSet<(String, String)>> {
    if checksums.is_empty() {
        return Ok(HashSet::new());
    }
    let rows: Vec<(String, String)> = block_schema::Entity::find()
        .select_only()
        .columns([block_schema::Column::Checksum, block_schema::Column::Version])
        .filter(block_schema::Column::Checksum.is_in(checksums.iter().copied()))
        .into_tuple()
        .all(c)
        .await?;
    Ok(rows.into_iter().collect())
}

/// Schemas matching the filter, newest first.
pub async fn filter_schemas(
    c: &impl ConnectionTrait,
    backend: Backend,
    filter: Option<&BlockSchemaFilter>,
    limit: Option<u64>,
    offset: u64,
) -> Result<Vec<SchemaRow>> {
    let mut select = block_schema::Entity::find();
    if let Some(f) = filter {
        select = select.filter(block_schema_condition(backend, f));
    }
    let mut select = select.order_by(block_schema::Column::Created, Order::Desc).order_by(block_schema::Column::Id, Order::Desc);
    // SQLite accepts OFFSET only after a LIMIT.
    if let Some(limit) = limit {
        select = select.limit(limit).offset(offset);
    }
    Ok(select.all(c).await?.into_iter().map(schema_row).collect())
}

pub async fn delete_schema(c: &impl ConnectionTrait, id: Uuid) -> Result<bool> {
    Ok(block_schema::Entity::delete_by_id(id).exec(c).await?.rows_affected > 0)
}

/// Every capability some schema has.
pub async fn capabilities(c: &impl ConnectionTrait) -> Result<Vec<String>> {
    let rows: Vec<Value> = block_schema::Entity::find().select_only().column(block_schema::Column::Capabilities).into_tuple().all(c).await?;
    let mut all: Vec<String> = rows.into_iter().flat_map(string_list).collect::<HashSet<_>>().into_iter().collect();
    all.sort();
    Ok(all)
}

fn block_schema_condition(backend: Backend, f: &BlockSchemaFilter) -> Condition {
    use block_schema::Column as C;
    let mut out = match f.operator {
        Operator::And => Condition::all(),
        Operator::Or => Condition::any(),
    };
    if let Some(any) = f.block_type_id.as_ref().and_then(|x| x.any_.as_ref()) {
        out = out.add(C::BlockTypeId.is_in(any.iter().copied()));
    }
    if let Some(all) = f.block_capabilities.as_ref().and_then(|x| x.all_.as_ref()).filter(|a| !a.is_empty()) {
        let mut every = Condition::all();
        for capability in all {
            every = every.add(query::json_array_contains(backend, "\"block_schema\".\"capabilities\"", capability));
        }
        out = out.add(every);
    }
    if let Some(any) = f.id.as_ref().and_then(|x| x.any_.as_ref()) {
        out = out.add(C::Id.is_in(any.iter().copied()));
    }
    if let Some(any) = f.version.as_ref().and_then(|x| x.any_.as_ref()) {
        out = out.add(C::Version.is_in(any.iter().cloned()));
    }
    out
}

/// A reference from a schema (or document) to a nested one, under a field name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub id: Uuid,
    pub name: String,
    pub parent: Uuid,
    pub child: Uuid,
}

/// Records that `parent` nests `child` under `name` (once).
pub async fn insert_schema_reference(c: &impl ConnectionTrait, parent: Uuid, child: Uuid, name: &str, now: DateTime) -> Result<()> {
    use block_schema_reference::Column as C;
    let exists = block_schema_reference::Entity::find()
        .filter(C::ParentBlockSchemaId.eq(parent))
        .filter(C::ReferenceBlockSchemaId.eq(child))
        .filter(C::Name.eq(name))
        .count(c)
        .await?
        > 0;
    if !exists {
        let model = block_schema_reference::ActiveModel {
            id: Set(Uuid::now_v7()),
            created: Set(now),
            updated: Set(now),
            name: Set(name.to_owned()),
            parent_block_schema_id: Set(parent),
            reference_block_schema_id: Set(child),
        };
        block_schema_reference::Entity::insert(model).exec_without_returning(c).await?;
    }
    Ok(())
}

/// The references of the given parent schemas, oldest first.
pub async fn schema_references(c: &impl ConnectionTrait, parents: &[Uuid]) -> Result<Vec<Reference>> {
    if parents.is_empty() {
        return Ok(Vec::new());
    }
    use block_schema_reference::Column as C;
    let rows = block_schema_reference::Entity::find()
        .filter(C::ParentBlockSchemaId.is_in(parents.iter().copied()))
        .order_by(C::Created, Order::Asc)
        .order_by(C::Id, Order::Asc)
        .all(c)
        .await?;
    Ok(rows.into_iter().map(|m| Reference { id: m.id, name: m.name, parent: m.parent_block_schema_id, child: m.reference_block_schema_id }).collect())
}

// ------------------------------------------------------------------ block documents

/// A stored block document row: its own data, without the documents it references.
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentRow {
    pub id: Uuid,
    pub created: DateTime,
    pub updated: DateTime,
    pub name: String,
    pub data: Map<String, Value>,
    pub is_anonymous: bool,
    pub block_type_name: Option<String>,
    pub block_type_id: Uuid,
    pub block_schema_id: Uuid,
}

fn document_row(m: block_document::Model) -> DocumentRow {
    DocumentRow {
        id: m.id,
        created: m.created,
        updated: m.updated,
        name: m.name,
        data: json_object(m.data),
        is_anonymous: m.is_anonymous,
        block_type_name: m.block_type_name,
        block_type_id: m.block_type_id,
        block_schema_id: m.block_schema_id,
    }
}

/// What a new document row holds.
#[derive(Debug, Clone)]
pub struct NewDocument<'a> {
    pub name: &'a str,
    pub data: &'a Map<String, Value>,
    pub is_anonymous: bool,
    pub block_type_name: &'a str,
    pub block_type_id: Uuid,
    pub block_schema_id: Uuid,
}

/// Inserts a document; a taken (type, name) is a `Conflict`, an unknown schema an `InvalidReference`.
pub async fn insert_document(c: &impl ConnectionTrait, new: &NewDocument<'_>, now: DateTime) -> Result<Uuid> {
    let id = Uuid::now_v7();
    let model = block_document::ActiveModel {
        id: Set(id),
        created: Set(now),
        updated: Set(now),
        name: Set(new.name.to_owned()),
        data: Set(Value::Object(new.data.clone())),
        is_anonymous: Set(new.is_anonymous),
        block_type_name: Set(Some(new.block_type_name.to_owned())),
        block_type_id: Set(new.block_type_id),
        block_schema_id: Set(new.block_schema_id),
    };
    block_document::Entity::insert(model).exec_without_returning(c).await?;
    Ok(id)
}

/// Whether a document of `block_type_id` is named `name`.
pub async fn document_name_taken(c: &impl ConnectionTrait, block_type_id: Uuid, name: &str) -> Result<bool> {
    Ok(block_document::Entity::find()
        .filter(block_document::Column::BlockTypeId.eq(block_type_id))
        .filter(block_document::Column::Name.eq(name))
        .count(c)
        .await?
        > 0)
}

pub async fn read_document(c: &impl ConnectionTrait, id: Uuid) -> Result<Option<DocumentRow>> {
    Ok(block_document::Entity::find_by_id(id).one(c).await?.map(document_row))
}

/// Document rows by id.
pub async fn read_documents(c: &impl ConnectionTrait, ids: &[Uuid]) -> Result<HashMap<Uuid, DocumentRow>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = block_document::Entity::find().filter(block_document::Column::Id.is_in(ids.iter().copied())).all(c).await?;
    Ok(rows.into_iter().map(|m| (m.id, document_row(m))).collect())
}

/// Replaces a document's own data (and schema, when given).
pub async fn update_document(c: &impl ConnectionTrait, id: Uuid, data: &Map<String, Value>, block_schema_id: Option<Uuid>, now: DateTime) -> Result<()> {
    let model = block_document::ActiveModel {
        updated: Set(now),
        data: Set(Value::Object(data.clone())),
        block_schema_id: block_schema_id.map_or(NotSet, Set),
        ..Default::default()
    };
    block_document::Entity::update_many().set(model).filter(block_document::Column::Id.eq(id)).exec(c).await?;
    Ok(())
}

pub async fn touch_document(c: &impl ConnectionTrait, id: Uuid, now: DateTime) -> Result<()> {
    let model = block_document::ActiveModel { updated: Set(now), ..Default::default() };
    block_document::Entity::update_many().set(model).filter(block_document::Column::Id.eq(id)).exec(c).await?;
    Ok(())
}

pub async fn delete_document(c: &impl ConnectionTrait, id: Uuid) -> Result<bool> {
    Ok(block_document::Entity::delete_by_id(id).exec(c).await?.rows_affected > 0)
}

/// Ids of the documents matching all three filters, in `sort` order.
#[allow(clippy::too_many_arguments)] // one argument per criterion of the route
pub async fn filter_document_ids(
    c: &impl ConnectionTrait,
    backend: Backend,
    documents: Option<&BlockDocumentFilter>,
    types: Option<&BlockTypeFilter>,
    schemas: Option<&BlockSchemaFilter>,
    sort: BlockDocumentSort,
    limit: Option<u64>,
    offset: u64,
) -> Result<Vec<Uuid>> {
    use block_document::Column as C;
    let mut select = block_document::Entity::find().select_only().column(C::Id).filter(documents_condition(backend, documents, types, schemas));
    select = match sort {
        BlockDocumentSort::NameAsc => select.order_by(C::Name, Order::Asc),
        BlockDocumentSort::NameDesc => select.order_by(C::Name, Order::Desc),
        BlockDocumentSort::BlockTypeAndNameAsc => select.order_by(C::BlockTypeName, Order::Asc).order_by(C::Name, Order::Asc),
    };
    let mut select = select.order_by(C::Id, Order::Asc);
    // SQLite accepts OFFSET only after a LIMIT.
    if let Some(limit) = limit {
        select = select.limit(limit).offset(offset);
    }
    Ok(select.into_tuple::<Uuid>().all(c).await?)
}

pub async fn count_documents(
    c: &impl ConnectionTrait,
    backend: Backend,
    documents: Option<&BlockDocumentFilter>,
    types: Option<&BlockTypeFilter>,
    schemas: Option<&BlockSchemaFilter>,
) -> Result<u64> {
    Ok(block_document::Entity::find().filter(documents_condition(backend, documents, types, schemas)).count(c).await?)
}

fn documents_condition(
    backend: Backend,
    documents: Option<&BlockDocumentFilter>,
    types: Option<&BlockTypeFilter>,
    schemas: Option<&BlockSchemaFilter>,
) -> Condition {
    use block_document::Column as C;
    let default = BlockDocumentFilter::default();
    let f = documents.unwrap_or(&default);
    let mut own = match f.operator {
        Operator::And => Condition::all(),
        Operator::Or => Condition::any(),
    };
    if let Some(any) = f.id.as_ref().and_then(|x| x.any_.as_ref()) {
        own = own.add(C::Id.is_in(any.iter().copied()));
    }
    if let Some(eq) = f.is_anonymous.as_ref().and_then(|x| x.eq_) {
        own = own.add(C::IsAnonymous.eq(eq));
    }
    if let Some(any) = f.block_type_id.as_ref().and_then(|x| x.any_.as_ref()) {
        own = own.add(C::BlockTypeId.is_in(any.iter().copied()));
    }
    if let Some(name) = &f.name {
        if let Some(any) = &name.any_ {
            own = own.add(C::Name.is_in(any.iter().cloned()));
        }
        if let Some(needle) = name.like_.as_deref().filter(|n| !n.is_empty()) {
            own = own.add(query::ilike(backend, "block_document", "name", needle));
        }
    }
    let mut cond = Condition::all().add(own);
    if let Some(t) = types {
        let ids = block_type::Entity::find().select_only().column(block_type::Column::Id).filter(block_type_condition(backend, t)).into_query();
        cond = cond.add(Expr::col((block_document::Entity, C::BlockTypeId)).in_subquery(ids));
    }
    if let Some(s) = schemas {
        let ids = block_schema::Entity::find().select_only().column(block_schema::Column::Id).filter(block_schema_condition(backend, s)).into_query();
        cond = cond.add(Expr::col((block_document::Entity, C::BlockSchemaId)).in_subquery(ids));
    }
    cond
}

/// Records that document `parent` nests `child` under `name`.
pub async fn insert_document_reference(c: &impl ConnectionTrait, parent: Uuid, child: Uuid, name: &str, now: DateTime) -> Result<()> {
    let model = block_document_reference::ActiveModel {
        id: Set(Uuid::now_v7()),
        created: Set(now),
        updated: Set(now),
        name: Set(name.to_owned()),
        parent_block_document_id: Set(parent),
        reference_block_document_id: Set(child),
    };
    block_document_reference::Entity::insert(model).exec_without_returning(c).await?;
    Ok(())
}

pub async fn delete_document_reference(c: &impl ConnectionTrait, id: Uuid) -> Result<()> {
    block_document_reference::Entity::delete_by_id(id).exec(c).await?;
    Ok(())
}

/// The references of the given parent documents.
pub async fn document_references(c: &impl ConnectionTrait, parents: &[Uuid]) -> Result<Vec<Reference>> {
    if parents.is_empty() {
        return Ok(Vec::new());
    }
    use block_document_reference::Column as C;
    let rows = block_document_reference::Entity::find()
        .filter(C::ParentBlockDocumentId.is_in(parents.iter().copied()))
        .order_by(C::Created, Order::Asc)
        .order_by(C::Id, Order::Asc)
        .all(c)
        .await?;
    Ok(rows.into_iter().map(|m| Reference { id: m.id, name: m.name, parent: m.parent_block_document_id, child: m.reference_block_document_id }).collect())
}

/// Whether `child`, or anything it nests, is `parent` (a reference would close a cycle).
pub async fn document_reference_would_cycle(c: &impl ConnectionTrait, parent: Uuid, child: Uuid) -> Result<bool> {
    let mut seen = HashSet::new();
    let mut frontier = vec![child];
    while !frontier.is_empty() {
        if frontier.contains(&parent) {
            return Ok(true);
        }
        frontier.retain(|id| seen.insert(*id));
        frontier = document_references(c, &frontier).await?.into_iter().map(|r| r.child).collect();
    }
    Ok(false)
}
