//! Variable use cases.

use prefect_domain::sorts::VariableSort;
use prefect_domain::time;
use prefect_domain::variable::{Variable, VariableCreate, VariableFilter, VariableUpdate};
use prefect_storage::variables;
use serde_json::json;
use uuid::Uuid;

use crate::events::lifecycle;
use crate::{Core, Error, Result};

const NOT_FOUND: &str = "Variable not found.";

/// Which variable a request names.
#[derive(Debug, Clone, Copy)]
pub enum VariableRef<'a> {
    Id(Uuid),
    Name(&'a str),
}

fn event(action: &str, v: &Variable) -> prefect_domain::events::ReceivedEvent {
    lifecycle("variable", action, v.id, Some(&v.name), json!({"name": v.name, "value": v.value, "tags": v.tags}), Vec::new())
}

impl Core {
    pub async fn create_variable(&self, create: VariableCreate) -> Result<Variable> {
        create.validate()?;
        let txn = self.db().begin_write().await?;
        let variable = match variables::insert(&txn, &create, time::now()).await {
            Ok(v) => v,
            Err(prefect_storage::Error::Conflict(_)) => {
                return Err(Error::Conflict(format!("A variable with the name {} already exists.", py_repr(&create.name))));
            }
            Err(e) => return Err(e.into()),
        };
        prefect_storage::commit(txn).await?;
        self.emit(event("created", &variable)).await;
        Ok(variable)
    }

    pub async fn read_variable(&self, which: VariableRef<'_>) -> Result<Variable> {
        let reader = self.db().reader();
        let found = match which {
            VariableRef::Id(id) => variables::read(reader, id).await?,
            VariableRef::Name(name) => variables::read_by_name(reader, name).await?,
        };
        found.ok_or_else(|| Error::not_found(NOT_FOUND))
    }

    pub async fn update_variable(&self, which: VariableRef<'_>, update: VariableUpdate) -> Result<()> {
        update.validate()?;
        let txn = self.db().begin_write().await?;
        let existing = match which {
            VariableRef::Id(id) => variables::read(&txn, id).await?,
            VariableRef::Name(name) => variables::read_by_name(&txn, name).await?,
        }
        .ok_or_else(|| Error::not_found(NOT_FOUND))?;
        match variables::update(&txn, existing.id, &update, time::now()).await {
            Ok(_) => {}
            Err(prefect_storage::Error::Conflict(_)) => {
                let name = update.name.as_deref().unwrap_or(&existing.name);
                return Err(Error::Conflict(format!("A variable with the name {} already exists.", py_repr(name))));
            }
            Err(e) => return Err(e.into()),
        }
        let updated = variables::read(&txn, existing.id).await?.ok_or_else(|| Error::not_found(NOT_FOUND))?;
        prefect_storage::commit(txn).await?;
        self.emit(event("updated", &updated)).await;
        Ok(())
    }

    pub async fn delete_variable(&self, which: VariableRef<'_>) -> Result<()> {
        let txn = self.db().begin_write().await?;
        let existing = match which {
            VariableRef::Id(id) => variables::read(&txn, id).await?,
            VariableRef::Name(name) => variables::read_by_name(&txn, name).await?,
        }
        .ok_or_else(|| Error::not_found(NOT_FOUND))?;
        variables::delete(&txn, existing.id).await?;
        prefect_storage::commit(txn).await?;
        self.emit(event("deleted", &existing)).await;
        Ok(())
    }

    pub async fn filter_variables(&self, filter: Option<&VariableFilter>, sort: VariableSort, limit: Option<u64>, offset: u64) -> Result<Vec<Variable>> {
        let limit = self.settings().limit(limit)?;
        Ok(variables::filter(self.db().reader(), self.db().backend(), filter, sort, limit, offset).await?)
    }

    pub async fn count_variables(&self, filter: Option<&VariableFilter>) -> Result<u64> {
        Ok(variables::count(self.db().reader(), self.db().backend(), filter).await?)
    }
}

/// A string quoted the way Python's `repr` quotes it (Prefect puts `{name!r}` in messages).
pub(crate) fn py_repr(s: &str) -> String {
    if s.contains('\'') && !s.contains('"') { format!("\"{s}\"") } else { format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'")) }
}
