//! Small builders that keep the table definitions readable.

use sea_orm_migration::prelude::*;

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

/// Drops the non-unique index on `columns` of `table`, if there is one, and creates
/// `create` in its place: a migration that reshapes an index it keeps the name of
/// (or renames) swaps it this way, in its transaction.
pub async fn replace_index(manager: &SchemaManager<'_>, table: &'static str, columns: &[&str], create: IndexCreateStatement) -> Result<(), DbErr> {
    manager.drop_index(Index::drop().name(index_name(table, columns, false)).table(table).if_exists().to_owned()).await?;
    manager.create_index(create).await
}
