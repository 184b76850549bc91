//! Small builders that keep the table definitions readable.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend, StatementBuilder};

/// A table with Prefect's common columns: `id` (UUID primary key), `created`, `updated`.
pub fn table(name: &'static str) -> TableCreateStatement {
    Table::create()
        .table(name)
        .if_not_exists()
        .col(ColumnDef::new("id").uuid().not_null().primary_key())
        .col(timestamp("created"))
        .col(timestamp("updated"))
        .to_owned()
}

pub fn uuid(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).uuid().not_null().to_owned()
}

pub fn uuid_null(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).uuid().null().to_owned()
}

pub fn text(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).text().not_null().to_owned()
}

pub fn text_null(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).text().null().to_owned()
}

pub fn json(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).json_binary().not_null().to_owned()
}

pub fn json_null(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).json_binary().null().to_owned()
}

pub fn timestamp(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).timestamp_with_time_zone().not_null().to_owned()
}

pub fn timestamp_null(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).timestamp_with_time_zone().null().to_owned()
}

pub fn integer(name: &'static str, default: i64) -> ColumnDef {
    ColumnDef::new(name).big_integer().not_null().default(default).to_owned()
}

pub fn integer_null(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).big_integer().null().to_owned()
}

pub fn double(name: &'static str, default: f64) -> ColumnDef {
    ColumnDef::new(name).double().not_null().default(default).to_owned()
}

pub fn boolean(name: &'static str, default: bool) -> ColumnDef {
    ColumnDef::new(name).boolean().not_null().default(default).to_owned()
}

/// A foreign key from `table.column` to `target.id`.
pub fn fk(table: &'static str, column: &'static str, target: &'static str, on_delete: ForeignKeyAction) -> ForeignKeyCreateStatement {
    ForeignKey::create().name(format!("fk_{table}__{column}__{target}")).from(table, column).to(target, "id").on_delete(on_delete).to_owned()
}

/// The name [`index`] gives: `ix_<table>__<cols>`, or `uq_…` when unique.
pub fn index_name(table: &str, columns: &[&str], unique: bool) -> String {
    let prefix = if unique { "uq" } else { "ix" };
    format!("{prefix}_{table}__{}", columns.join("__"))
}

/// A (possibly unique) index named by [`index_name`].
pub fn index(table: &'static str, columns: &[&'static str], unique: bool) -> IndexCreateStatement {
    let mut stmt = Index::create();
    stmt.name(index_name(table, columns, unique)).table(table).if_not_exists();
    for column in columns {
        stmt.col(*column);
    }
    if unique {
        stmt.unique();
    }
    stmt.to_owned()
}

/// Schema statements sent to the database together, in order.
///
/// `SchemaManager` prepares each statement (on PostgreSQL a parse-and-describe round
/// trip, then a bind-and-execute one), and the schema is a few hundred statements: on
/// an empty PostgreSQL database those round trips were a third of the time to healthy.
/// A batch sends its SQL as one unprepared script instead: on PostgreSQL a single
/// simple query (one round trip, run in the migration's transaction), on SQLite one call
/// that steps through the statements. The SQL is what `SchemaManager` would have sent.
#[must_use = "a batch does nothing until it is run"]
pub struct Batch {
    backend: DbBackend,
    statements: Vec<String>,
}

impl Batch {
    pub fn new(manager: &SchemaManager<'_>) -> Self {
        Batch::for_backend(manager.get_database_backend())
    }

    pub fn for_backend(backend: DbBackend) -> Self {
        Batch { backend, statements: Vec::new() }
    }

    /// Adds a statement built with sea-query.
    pub fn push(&mut self, statement: &impl StatementBuilder) -> &mut Self {
        self.statements.push(self.backend.build(statement).sql);
        self
    }

    /// Adds a statement written as SQL.
    pub fn push_sql(&mut self, sql: &str) -> &mut Self {
        self.statements.push(sql.to_owned());
        self
    }

    /// Drops the non-unique index on `columns` of `table` (named by [`index_name`]), if
    /// there is one.
    pub fn drop_index(&mut self, table: &'static str, columns: &[&str]) -> &mut Self {
        self.push(&Index::drop().name(index_name(table, columns, false)).table(table).if_exists().to_owned())
    }

    /// Drops the non-unique index on `columns` of `table`, if there is one, and creates
    /// `create` in its place: a migration that reshapes an index it keeps the name of
    /// (or renames) swaps it this way, in its transaction.
    pub fn replace_index(&mut self, table: &'static str, columns: &[&str], create: &IndexCreateStatement) -> &mut Self {
        self.drop_index(table, columns).push(create)
    }

    /// The script the batch sends.
    pub fn script(&self) -> String {
        self.statements.join(";\n")
    }

    pub async fn run(&self, manager: &SchemaManager<'_>) -> Result<(), DbErr> {
        if self.statements.is_empty() {
            return Ok(());
        }
        manager.get_connection().execute_unprepared(&self.script()).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_sends_its_statements_in_order_as_one_script() {
        let mut batch = Batch::for_backend(DbBackend::Postgres);
        batch.replace_index("flow_run", &["name"], &index("flow_run", &["name", "id"], false)).push_sql("SELECT 1");
        assert_eq!(
            batch.script(),
            "DROP INDEX IF EXISTS \"ix_flow_run__name\";\n\
             CREATE INDEX IF NOT EXISTS \"ix_flow_run__name__id\" ON \"flow_run\" (\"name\", \"id\");\n\
             SELECT 1"
        );
    }
}
