//! Block use cases: block types, block schemas, block documents, the system
//! block types the server registers on start, and capabilities.

pub mod checksum;
pub mod secrets;
pub mod system;

use std::collections::{HashMap, HashSet};

use prefect_domain::block::{
    BlockDocument, BlockDocumentCreate, BlockDocumentFilter, BlockDocumentUpdate, BlockSchema, BlockSchemaCreate, BlockSchemaFilter, BlockType,
    BlockTypeCreate, BlockTypeFilter, BlockTypeUpdate,
};
use prefect_domain::events::{RESOURCE_NAME, RESOURCE_ROLE, Resource};
use prefect_domain::sorts::BlockDocumentSort;
use prefect_domain::time::{self, DateTime};
use prefect_storage::ConnectionTrait;
use prefect_storage::blocks::{self, DocumentRow, NewDocument, NewSchema, SchemaRow};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::events::lifecycle;
use crate::{Core, Error, Result};

const TYPE_NOT_FOUND: &str = "Block type not found";
const SCHEMA_NOT_FOUND: &str = "Block schema not found";
const DOCUMENT_NOT_FOUND: &str = "Block document not found";
/// Documents nest documents at most this deep (a guard against corrupt reference graphs).
const MAX_REFERENCE_DEPTH: usize = 50;

/// Escapes `&`, `<` and `>` as Prefect does for block type descriptions and code examples.
fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

fn type_event(action: &str, t: &BlockType) -> prefect_domain::events::ReceivedEvent {
    let payload = json!({
        "name": t.name, "slug": t.slug, "logo_url": t.logo_url, "documentation_url": t.documentation_url,
        "description": t.description, "code_example": t.code_example, "is_protected": t.is_protected,
    });
    lifecycle("block-type", action, t.id, Some(&t.name), payload, Vec::new())
}

/// The event of a document: string values only, and never its secrets.
fn document_event(action: &str, d: &BlockDocument) -> prefect_domain::events::ReceivedEvent {
    let secret: HashSet<String> = d.block_schema.as_ref().map(BlockSchema::secret_fields).unwrap_or_default().into_iter().collect();
    let data: Map<String, Value> = d.data.iter().filter(|(k, v)| !secret.contains(*k) && v.is_string()).map(|(k, v)| (k.clone(), v.clone())).collect();
    let schema = d
        .block_schema
        .as_ref()
        .map(|s| json!({"capabilities": s.capabilities, "block_type": {"id": d.block_type_id, "name": d.block_type_name.clone().unwrap_or_default()}}));
    let mut block_type = Resource::with_id(format!("prefect.block-type.{}", d.block_type_id)).label(RESOURCE_ROLE, "block-type");
    if let Some(name) = &d.block_type_name {
        block_type = block_type.label(RESOURCE_NAME, name.clone());
    }
    let related = vec![block_type, Resource::with_id(format!("prefect.block-schema.{}", d.block_schema_id)).label(RESOURCE_ROLE, "block-schema")];
    lifecycle("block-document", action, d.id, d.name.as_deref(), json!({"name": d.name, "data": data, "block_schema": schema}), related)
}

/// Fields of a document's data that nest another document: (field name, document id).
type DocumentReferences = Vec<(String, Uuid)>;

/// Splits `{"$ref": {"block_document_id": …}}` fields off a document's data.
fn separate_references(data: &Map<String, Value>) -> Result<(Map<String, Value>, DocumentReferences)> {
    let mut own = Map::new();
    let mut references = Vec::new();
    for (key, value) in data {
        match value.as_object().and_then(|o| o.get("$ref")) {
            Some(reference) => {
                let id = reference
                    .get("block_document_id")
                    .filter(|v| !v.is_null())
                    .ok_or_else(|| Error::BadRequest(format!("Received block reference without a block_document_id in key {key}")))?;
                let id = id
                    .as_str()
                    .and_then(|s| Uuid::parse_str(s).ok())
                    .ok_or_else(|| Error::BadRequest(format!("Invalid block_document_id in the block reference of key {key}")))?;
                references.push((key.clone(), id));
            }
            None => {
                own.insert(key.clone(), value.clone());
            }
        }
    }
    Ok((own, references))
}

/// The data of block document `id` as a read without secrets shows it (nested documents merged),
/// or `None` when there is no such document.
pub(crate) async fn document_data(c: &impl ConnectionTrait, id: Uuid) -> Result<Option<Map<String, Value>>> {
    Ok(Assembler::new(c).documents(&[id], false).await?.pop().map(|d| d.data))
}

/// Reads schemas and documents with everything they nest, caching what it has read.
struct Assembler<'c, C> {
    c: &'c C,
    types: HashMap<Uuid, BlockType>,
    schemas: HashMap<Uuid, SchemaRow>,
    schema_refs: HashMap<Uuid, Vec<blocks::Reference>>,
}

impl<'c, C: ConnectionTrait> Assembler<'c, C> {
    fn new(c: &'c C) -> Self {
        Assembler { c, types: HashMap::new(), schemas: HashMap::new(), schema_refs: HashMap::new() }
    }

    /// Loads the rows of `roots` and of every schema they nest, with their block types.
    async fn load_schemas(&mut self, roots: &[Uuid]) -> Result<()> {
        let mut frontier: Vec<Uuid> = roots.iter().copied().filter(|id| !self.schemas.contains_key(id)).collect();
        while !frontier.is_empty() {
            let rows = blocks::read_schemas(self.c, &frontier).await?;
            let references = blocks::schema_references(self.c, &frontier).await?;
            let type_ids: Vec<Uuid> = rows.values().map(|r| r.block_type_id).filter(|id| !self.types.contains_key(id)).collect();
            self.types.extend(blocks::read_types(self.c, &type_ids).await?);
            for id in &frontier {
                self.schema_refs.entry(*id).or_default();
            }
            self.schemas.extend(rows);
            let mut next = Vec::new();
            for reference in references {
                if !self.schemas.contains_key(&reference.child) && !next.contains(&reference.child) {
                    next.push(reference.child);
                }
                self.schema_refs.entry(reference.parent).or_default().push(reference);
            }
            next.retain(|id| !frontier.contains(id));
            frontier = next;
        }
        Ok(())
    }

    /// The schema as the API shows it: stored fields plus `block_schema_references` and the
    /// definitions of the nested schemas.
    fn schema(&self, id: Uuid) -> Option<BlockSchema> {
        self.schema_at(id, 0)
    }

    fn schema_at(&self, id: Uuid, depth: usize) -> Option<BlockSchema> {
        let row = self.schemas.get(&id)?.clone();
        let mut fields = row.fields.clone();
        let mut references = Map::new();
        let mut definitions = Map::new();
        let mut children_seen = HashSet::new();
        for reference in self.schema_refs.get(&id).into_iter().flatten() {
            let Some(child) = self.schemas.get(&reference.child) else {
                continue;
            };
            let slug = self.types.get(&child.block_type_id).map(|t| t.slug.clone()).unwrap_or_default();
            let entry = json!({"block_schema_checksum": child.checksum, "block_type_slug": slug});
            match references.get_mut(&reference.name) {
                None => {
                    references.insert(reference.name.clone(), entry);
                }
                Some(Value::Array(list)) => {
                    if !list.contains(&entry) {
                        list.push(entry);
                    }
                }
                Some(existing) => {
                    if *existing != entry {
                        *existing = Value::Array(vec![existing.clone(), entry]);
                    }
                }
            }
            if depth < MAX_REFERENCE_DEPTH
                && children_seen.insert(child.checksum.clone())
                && let Some(mut nested) = self.schema_at(reference.child, depth + 1)
                && let Some(title) = nested.fields.get("title").and_then(Value::as_str).map(str::to_owned)
            {
                let nested_definitions = nested.fields.remove("definitions");
                definitions.insert(title, Value::Object(nested.fields));
                if let Some(Value::Object(more)) = nested_definitions {
                    definitions.extend(more);
                }
            }
        }
        fields.insert("block_schema_references".to_owned(), Value::Object(references));
        if !definitions.is_empty() || fields.contains_key("definitions") {
            let mut all = fields.get("definitions").and_then(Value::as_object).cloned().unwrap_or_default();
            all.extend(definitions);
            fields.insert("definitions".to_owned(), Value::Object(all));
        }
        let block_type = self.types.get(&row.block_type_id).cloned();
        Some(row.into_schema(fields, block_type))
    }

    /// Full documents for `ids` (in that order), nested documents merged into their data.
    async fn documents(&mut self, ids: &[Uuid], include_secrets: bool) -> Result<Vec<BlockDocument>> {
        let mut rows: HashMap<Uuid, DocumentRow> = HashMap::new();
        let mut references: HashMap<Uuid, Vec<blocks::Reference>> = HashMap::new();
        let mut frontier: Vec<Uuid> = ids.to_vec();
        let mut depth = 0;
        while !frontier.is_empty() && depth <= MAX_REFERENCE_DEPTH {
            rows.extend(blocks::read_documents(self.c, &frontier).await?);
            for id in &frontier {
                references.entry(*id).or_default();
            }
            let mut next = Vec::new();
            for reference in blocks::document_references(self.c, &frontier).await? {
                if !rows.contains_key(&reference.child) && !next.contains(&reference.child) {
                    next.push(reference.child);
                }
                references.entry(reference.parent).or_default().push(reference);
            }
            frontier = next;
            depth += 1;
        }
        let schema_ids: Vec<Uuid> = rows.values().map(|r| r.block_schema_id).collect::<HashSet<_>>().into_iter().collect();
        self.load_schemas(&schema_ids).await?;
        let type_ids: Vec<Uuid> = rows.values().map(|r| r.block_type_id).filter(|id| !self.types.contains_key(id)).collect();
        self.types.extend(blocks::read_types(self.c, &type_ids).await?);
        Ok(ids.iter().filter_map(|id| self.document(*id, &rows, &references, include_secrets, 0)).collect())
    }

    fn document(
        &self,
        id: Uuid,
        rows: &HashMap<Uuid, DocumentRow>,
        references: &HashMap<Uuid, Vec<blocks::Reference>>,
        include_secrets: bool,
        depth: usize,
    ) -> Option<BlockDocument> {
        let row = rows.get(&id)?;
        let schema = self.schema(row.block_schema_id);
        let mut data = row.data.clone();
        if !include_secrets {
            let secret_fields = self.schemas.get(&row.block_schema_id).map(|s| secret_fields_of(&s.fields)).unwrap_or_default();
            secrets::obfuscate(&mut data, &secret_fields);
        }
        let mut nested = Map::new();
        if depth < MAX_REFERENCE_DEPTH {
            for reference in references.get(&id).into_iter().flatten() {
                let Some(child) = self.document(reference.child, rows, references, include_secrets, depth + 1) else {
                    continue;
                };
                data.insert(reference.name.clone(), Value::Object(child.data.clone()));
                nested.insert(
                    reference.name.clone(),
                    json!({"block_document": {
                        "id": child.id, "name": child.name, "block_type": child.block_type,
                        "is_anonymous": child.is_anonymous, "block_document_references": child.block_document_references,
                    }}),
                );
            }
        }
        Some(BlockDocument {
            id: row.id,
            created: row.created,
            updated: row.updated,
            name: Some(row.name.clone()),
            data,
            block_schema_id: row.block_schema_id,
            block_schema: schema,
            block_type_id: row.block_type_id,
            block_type_name: row.block_type_name.clone(),
            block_type: self.types.get(&row.block_type_id).cloned(),
            block_document_references: nested,
            is_anonymous: row.is_anonymous,
        })
    }
}

fn secret_fields_of(fields: &Map<String, Value>) -> Vec<String> {
    fields.get("secret_fields").and_then(Value::as_array).map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect()).unwrap_or_default()
}

/// Creates a schema (and, from `definitions`, any nested schema not yet known) unless one with
/// the same checksum and version exists; returns its id.
async fn create_schema_tree(
    c: &impl ConnectionTrait,
    create: &BlockSchemaCreate,
    definitions: Option<&Map<String, Value>>,
    now: DateTime,
    depth: usize,
) -> Result<Uuid> {
    if depth > MAX_REFERENCE_DEPTH {
        return Err(Error::unprocessable("Block schema references are nested too deeply.".to_owned()));
    }
    let mut fields = create.fields.clone();
    let definitions = definitions.cloned().or_else(|| fields.get("definitions").and_then(Value::as_object).cloned()).filter(|d| !d.is_empty());
    if let Some(definitions) = &definitions {
        fields.insert("definitions".to_owned(), Value::Object(definitions.clone()));
    }
    let checksum = checksum::checksum(&fields);
    if let Some(existing) = blocks::read_schema_by_checksum(c, &checksum, Some(&create.version)).await? {
        return Ok(existing.id);
    }
    if let Some(definitions) = &definitions {
        let kept = checksum::non_block_definitions(&Value::Object(fields.clone()), definitions);
        if kept.is_empty() {
            fields.remove("definitions");
        } else {
            fields.insert("definitions".to_owned(), Value::Object(kept));
        }
    }
    let references = match fields.remove("block_schema_references") {
        Some(Value::Object(map)) => map,
        _ => Map::new(),
    };
    let row = blocks::insert_schema(
        c,
        &NewSchema { checksum: &checksum, fields: &fields, capabilities: &create.capabilities, version: &create.version, block_type_id: create.block_type_id },
        now,
    )
    .await?;
    for (name, entries) in &references {
        let entries: Vec<&Value> = match entries {
            Value::Array(list) => list.iter().collect(),
            one => vec![one],
        };
        for entry in entries {
            let slug = entry.get("block_type_slug").and_then(Value::as_str).unwrap_or_default();
            let block_type = blocks::read_type_by_slug(c, slug).await?.ok_or_else(|| {
                Error::Conflict(format!(
                    "Cannot create block schema because block type {} was not found.Did you forget to register the block type?",
                    crate::variables::py_repr(slug)
                ))
            })?;
            let child_checksum = entry.get("block_schema_checksum").and_then(Value::as_str).unwrap_or_default();
            let child = match blocks::read_schema_by_checksum(c, child_checksum, None).await? {
                Some(child) => child.id,
                None => {
                    let definitions = definitions.as_ref().ok_or_else(|| Error::Invalid {
                        field: None,
                        message: "Unable to create nested block schema due to missing definitions in root block schema fields".to_owned(),
                    })?;
                    let child_fields = child_fields(definitions, &fields, name, &block_type.slug).ok_or_else(|| Error::Invalid {
                        field: None,
                        message: format!(
                            "Unable to create nested block schema for block type {} due to missing definition.",
                            crate::variables::py_repr(&block_type.name)
                        ),
                    })?;
                    let nested = BlockSchemaCreate {
                        fields: child_fields,
                        block_type_id: block_type.id,
                        capabilities: Vec::new(),
                        version: prefect_domain::block::DEFAULT_BLOCK_SCHEMA_VERSION.to_owned(),
                    };
                    Box::pin(create_schema_tree(c, &nested, Some(definitions), now, depth + 1)).await?
                }
            };
            blocks::insert_schema_reference(c, row.id, child, name, now).await?;
        }
    }
    Ok(row.id)
}

/// The definition a property of the parent points at for a nested block of type `slug`.
fn child_fields(definitions: &Map<String, Value>, parent: &Map<String, Value>, property: &str, slug: &str) -> Option<Map<String, Value>> {
    let spec = parent.get("properties")?.get(property)?;
    let references = checksum::reference_strings(spec);
    let key = |r: &String| r.replace("#/definitions/", "");
    if references.len() == 1 {
        return definitions.get(&key(&references[0]))?.as_object().cloned();
    }
    references
        .iter()
        .filter_map(|r| definitions.get(&key(r)))
        .find(|d| d.get("block_type_slug").and_then(Value::as_str) == Some(slug))
        .and_then(Value::as_object)
        .cloned()
}

impl Core {
    // -------------------------------------------------------------- block types

    pub async fn create_block_type(&self, create: BlockTypeCreate) -> Result<BlockType> {
        create.validate()?;
        if create.name.to_lowercase().starts_with("prefect") {
            return Err(Error::Forbidden("Block type names beginning with 'Prefect' are reserved.".to_owned()));
        }
        let create = BlockTypeCreate {
            description: create.description.as_deref().map(html_escape),
            code_example: create.code_example.as_deref().map(html_escape),
            ..create
        };
        let txn = self.db().begin_write().await?;
        let block_type = match blocks::insert_type(&txn, &create, false, time::now()).await {
            Ok(t) => t,
            Err(prefect_storage::Error::Conflict(_)) => {
                return Err(Error::Conflict(format!("Block type with name \"{}\" already exists", create.name)));
            }
            Err(e) => return Err(e.into()),
        };
        prefect_storage::commit(txn).await?;
        self.emit(type_event("created", &block_type)).await;
        Ok(block_type)
    }

    pub async fn read_block_type(&self, id: Uuid) -> Result<BlockType> {
        blocks::read_type(self.db().reader(), id).await?.ok_or_else(|| Error::not_found(TYPE_NOT_FOUND))
    }

    pub async fn read_block_type_by_slug(&self, slug: &str) -> Result<BlockType> {
        blocks::read_type_by_slug(self.db().reader(), slug).await?.ok_or_else(|| Error::not_found(TYPE_NOT_FOUND))
    }

    pub async fn filter_block_types(
        &self,
        types: Option<&BlockTypeFilter>,
        schemas: Option<&BlockSchemaFilter>,
        limit: Option<u64>,
        offset: u64,
    ) -> Result<Vec<BlockType>> {
        let limit = self.settings().limit(limit)?;
        Ok(blocks::filter_types(self.db().reader(), self.db().backend(), types, schemas, limit, offset).await?)
    }

    /// Updates the descriptive fields of a block type (when they differ).
    pub async fn update_block_type(&self, id: Uuid, update: BlockTypeUpdate) -> Result<()> {
        let txn = self.db().begin_write().await?;
        let current = blocks::read_type(&txn, id).await?.ok_or_else(|| Error::not_found(TYPE_NOT_FOUND))?;
        if !update.changes(&current) {
            return Ok(());
        }
        blocks::update_type(&txn, id, &update, time::now()).await?;
        let updated = blocks::read_type(&txn, id).await?.ok_or_else(|| Error::not_found(TYPE_NOT_FOUND))?;
        prefect_storage::commit(txn).await?;
        self.emit(type_event("updated", &updated)).await;
        Ok(())
    }

    /// Deletes a block type, its schemas and documents; protected types cannot be deleted.
    pub async fn delete_block_type(&self, id: Uuid) -> Result<()> {
        let txn = self.db().begin_write().await?;
        let current = blocks::read_type(&txn, id).await?.ok_or_else(|| Error::not_found(TYPE_NOT_FOUND))?;
        if current.is_protected {
            return Err(Error::Forbidden("protected block types cannot be deleted.".to_owned()));
        }
        if let Some(default) = self.default_storage_document(&txn).await?
            && default.block_type_id == id
        {
            self.clear_default_result_storage_in(&txn).await?;
        }
        blocks::delete_type(&txn, id).await?;
        prefect_storage::commit(txn).await?;
        self.emit(type_event("deleted", &current)).await;
        Ok(())
    }

    // -------------------------------------------------------------- block schemas

    /// Creates a block schema; an identical one (same checksum and version) is returned as is
    /// (`false`: nothing was created).
    pub async fn create_block_schema(&self, create: BlockSchemaCreate) -> Result<(BlockSchema, bool)> {
        let txn = self.db().begin_write().await?;
        if blocks::read_type(&txn, create.block_type_id).await?.is_none() {
            return Err(Error::not_found(format!("Block type {} not found.", create.block_type_id)));
        }
        let checksum = checksum::checksum(&create.fields);
        let (id, created) = match blocks::read_schema_by_checksum(&txn, &checksum, Some(&create.version)).await? {
            Some(existing) => (existing.id, false),
            None => (create_schema_tree(&txn, &create, None, time::now(), 0).await?, true),
        };
        let mut assembler = Assembler::new(&txn);
        assembler.load_schemas(&[id]).await?;
        let schema = assembler.schema(id).ok_or_else(|| Error::not_found(SCHEMA_NOT_FOUND))?;
        prefect_storage::commit(txn).await?;
        Ok((schema, created))
    }

    pub async fn read_block_schema(&self, id: Uuid) -> Result<BlockSchema> {
        let mut assembler = Assembler::new(self.db().reader());
        assembler.load_schemas(&[id]).await?;
        assembler.schema(id).ok_or_else(|| Error::not_found(SCHEMA_NOT_FOUND))
    }

    /// The newest schema with `checksum` (and `version`, when given).
    pub async fn read_block_schema_by_checksum(&self, checksum: &str, version: Option<&str>) -> Result<BlockSchema> {
        let reader = self.db().reader();
        let row = blocks::read_schema_by_checksum(reader, checksum, version).await?.ok_or_else(|| Error::not_found(SCHEMA_NOT_FOUND))?;
        let mut assembler = Assembler::new(reader);
        assembler.load_schemas(&[row.id]).await?;
        assembler.schema(row.id).ok_or_else(|| Error::not_found(SCHEMA_NOT_FOUND))
    }

    pub async fn filter_block_schemas(&self, filter: Option<&BlockSchemaFilter>, limit: Option<u64>, offset: u64) -> Result<Vec<BlockSchema>> {
        let limit = self.settings().limit(limit)?;
        let reader = self.db().reader();
        let rows = blocks::filter_schemas(reader, self.db().backend(), filter, Some(limit), offset).await?;
        let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
        let mut assembler = Assembler::new(reader);
        assembler.load_schemas(&ids).await?;
        Ok(ids.into_iter().filter_map(|id| assembler.schema(id)).collect())
    }

    /// Deletes a schema (and its documents); schemas of protected types cannot be deleted.
    pub async fn delete_block_schema(&self, id: Uuid) -> Result<()> {
        let txn = self.db().begin_write().await?;
        let schema = blocks::read_schema(&txn, id).await?.ok_or_else(|| Error::not_found(SCHEMA_NOT_FOUND))?;
        if blocks::read_type(&txn, schema.block_type_id).await?.is_some_and(|t| t.is_protected) {
            return Err(Error::Forbidden("Block schemas for protected block types cannot be deleted.".to_owned()));
        }
        if let Some(default) = self.default_storage_document(&txn).await?
            && default.block_schema_id == id
        {
            self.clear_default_result_storage_in(&txn).await?;
        }
        blocks::delete_schema(&txn, id).await?;
        prefect_storage::commit(txn).await?;
        Ok(())
    }

    /// Every capability some block schema declares.
    pub async fn block_capabilities(&self) -> Result<Vec<String>> {
        Ok(blocks::capabilities(self.db().reader()).await?)
    }

    // -------------------------------------------------------------- block documents

    pub async fn create_block_document(&self, create: BlockDocumentCreate) -> Result<BlockDocument> {
        create.validate()?;
        let now = time::now();
        let (data, references) = separate_references(&create.data)?;
        let txn = self.db().begin_write().await?;
        let block_type =
            blocks::read_type(&txn, create.block_type_id).await?.ok_or_else(|| Error::not_found(format!("Block type {} not found.", create.block_type_id)))?;
        let name = match create.name.as_deref().filter(|n| !n.is_empty()) {
            Some(name) => {
                if blocks::document_name_taken(&txn, create.block_type_id, name).await? {
                    return Err(Error::Conflict("Block already exists".to_owned()));
                }
                name.to_owned()
            }
            None => format!("anonymous-{}", Uuid::new_v4()),
        };
        let new = NewDocument {
            name: &name,
            data: &data,
            is_anonymous: create.is_anonymous,
            block_type_name: &block_type.name,
            block_type_id: create.block_type_id,
            block_schema_id: create.block_schema_id,
        };
        let id = blocks::insert_document(&txn, &new, now).await?;
        for (key, child) in &references {
            blocks::insert_document_reference(&txn, id, *child, key, now).await?;
        }
        let document = Assembler::new(&txn).documents(&[id], false).await?.pop().ok_or_else(|| Error::not_found(DOCUMENT_NOT_FOUND))?;
        prefect_storage::commit(txn).await?;
        if !document.is_anonymous {
            self.emit(document_event("created", &document)).await;
        }
        Ok(document)
    }

    pub async fn read_block_document(&self, id: Uuid, include_secrets: bool) -> Result<BlockDocument> {
        Assembler::new(self.db().reader()).documents(&[id], include_secrets).await?.pop().ok_or_else(|| Error::not_found(DOCUMENT_NOT_FOUND))
    }

    /// The document of the block type `slug` named `name` (anonymous ones included).
    pub async fn read_block_document_by_name(&self, slug: &str, name: &str, include_secrets: bool) -> Result<BlockDocument> {
        let types = BlockTypeFilter { slug: Some(prefect_domain::block::BlockTypeFilterSlug { any_: Some(vec![slug.to_owned()]) }), name: None };
        let documents = BlockDocumentFilter {
            name: Some(prefect_domain::block::BlockDocumentFilterName { any_: Some(vec![name.to_owned()]), like_: None }),
            is_anonymous: None,
            ..Default::default()
        };
        let mut found =
            self.filter_block_documents_unlimited(Some(&documents), Some(&types), None, include_secrets, BlockDocumentSort::NameAsc, Some(1), 0).await?;
        found.pop().ok_or_else(|| Error::not_found(DOCUMENT_NOT_FOUND))
    }

    /// The named documents of the block type `slug`.
    pub async fn read_block_documents_of_type(&self, slug: &str, include_secrets: bool) -> Result<Vec<BlockDocument>> {
        let block_type = self.read_block_type_by_slug(slug).await?;
        let documents =
            BlockDocumentFilter { block_type_id: Some(prefect_domain::block::AnyIdFilter { any_: Some(vec![block_type.id]) }), ..Default::default() };
        self.filter_block_documents_unlimited(Some(&documents), None, None, include_secrets, BlockDocumentSort::NameAsc, None, 0).await
    }

    #[allow(clippy::too_many_arguments)] // one argument per criterion of the route
    pub async fn filter_block_documents(
        &self,
        documents: Option<&BlockDocumentFilter>,
        types: Option<&BlockTypeFilter>,
        schemas: Option<&BlockSchemaFilter>,
        include_secrets: bool,
        sort: BlockDocumentSort,
        limit: Option<u64>,
        offset: u64,
    ) -> Result<Vec<BlockDocument>> {
        let limit = self.settings().limit(limit)?;
        self.filter_block_documents_unlimited(documents, types, schemas, include_secrets, sort, Some(limit), offset).await
    }

    #[allow(clippy::too_many_arguments)]
    async fn filter_block_documents_unlimited(
        &self,
        documents: Option<&BlockDocumentFilter>,
        types: Option<&BlockTypeFilter>,
        schemas: Option<&BlockSchemaFilter>,
        include_secrets: bool,
        sort: BlockDocumentSort,
        limit: Option<u64>,
        offset: u64,
    ) -> Result<Vec<BlockDocument>> {
        let reader = self.db().reader();
        let ids = blocks::filter_document_ids(reader, self.db().backend(), documents, types, schemas, sort, limit, offset).await?;
        Assembler::new(reader).documents(&ids, include_secrets).await
    }

    pub async fn count_block_documents(
        &self,
        documents: Option<&BlockDocumentFilter>,
        types: Option<&BlockTypeFilter>,
        schemas: Option<&BlockSchemaFilter>,
    ) -> Result<u64> {
        Ok(blocks::count_documents(self.db().reader(), self.db().backend(), documents, types, schemas).await?)
    }

    /// Updates a document's data (merged into or replacing the stored data) and schema.
    /// Secret values sent back as `********` keep their stored value.
    pub async fn update_block_document(&self, id: Uuid, update: BlockDocumentUpdate) -> Result<()> {
        let now = time::now();
        let txn = self.db().begin_write().await?;
        let current = blocks::read_document(&txn, id).await?.ok_or_else(|| Error::not_found(DOCUMENT_NOT_FOUND))?;
        let data = match (update.data, update.merge_existing_data) {
            (Some(data), _) => Some(data),
            (None, false) => Some(Map::new()),
            (None, true) => None,
        };
        if let Some(mut data) = data {
            let schema = blocks::read_schema(&txn, current.block_schema_id).await?;
            let secret_fields = schema.map(|s| secret_fields_of(&s.fields)).unwrap_or_default();
            secrets::restore(&mut data, &current.data, &secret_fields);
            if update.merge_existing_data {
                let mut merged = current.data.clone();
                merged.extend(data);
                data = merged;
            }
            let (own, new_references) = separate_references(&data)?;
            let mut new_schema = None;
            if let Some(schema_id) = update.block_schema_id
                && schema_id != current.block_schema_id
            {
                let proposed = blocks::read_schema(&txn, schema_id).await?.ok_or_else(|| Error::not_found(format!("Block schema {schema_id} not found")))?;
                if proposed.block_type_id != current.block_type_id {
                    return Err(Error::BadRequest("Must migrate block document to a block schema of the same block type.".to_owned()));
                }
                new_schema = Some(schema_id);
            }
            blocks::update_document(&txn, id, &own, new_schema, now).await?;
            let existing = blocks::document_references(&txn, &[id]).await?;
            let mut kept = HashSet::new();
            for (name, child) in &new_references {
                match existing.iter().find(|r| &r.name == name && r.child == *child) {
                    Some(reference) => {
                        kept.insert(reference.id);
                    }
                    None => {
                        if blocks::document_reference_would_cycle(&txn, id, *child).await? {
                            return Err(Error::BadRequest(format!(
                                "Cannot create block document reference: it would introduce a cycle into the block_document_reference graph (parent={id}, reference={child})."
                            )));
                        }
                        blocks::insert_document_reference(&txn, id, *child, name, now).await?;
                    }
                }
            }
            for reference in existing.iter().filter(|r| !kept.contains(&r.id)) {
                blocks::delete_document_reference(&txn, reference.id).await?;
            }
        } else {
            blocks::touch_document(&txn, id, now).await?;
        }
        let document = Assembler::new(&txn).documents(&[id], false).await?.pop();
        prefect_storage::commit(txn).await?;
        if let Some(document) = document.filter(|d| !d.is_anonymous) {
            self.emit(document_event("updated", &document)).await;
        }
        Ok(())
    }

    pub async fn delete_block_document(&self, id: Uuid) -> Result<()> {
        let txn = self.db().begin_write().await?;
        let document = Assembler::new(&txn).documents(&[id], false).await?.pop().ok_or_else(|| Error::not_found(DOCUMENT_NOT_FOUND))?;
        blocks::delete_document(&txn, id).await?;
        if self.read_default_result_storage_in(&txn).await?.default_result_storage_block_id == Some(id) {
            self.clear_default_result_storage_in(&txn).await?;
        }
        prefect_storage::commit(txn).await?;
        if !document.is_anonymous {
            self.emit(document_event("deleted", &document)).await;
        }
        Ok(())
    }

    /// The row of the server's default result storage document, if one is set and exists.
    async fn default_storage_document(&self, c: &impl ConnectionTrait) -> Result<Option<DocumentRow>> {
        match self.read_default_result_storage_in(c).await?.default_result_storage_block_id {
            Some(id) => Ok(blocks::read_document(c, id).await?),
            None => Ok(None),
        }
    }
}
