//! Rows decoded by column position, from SeaORM's results or from the direct readers.
//!
//! SeaORM's derived decoding reads a row by name: for every column a
//! `format!("{prefix}{column}")` and a lookup by name, and for every NULL column an error
//! string (`format!("{name:?}")`) before it becomes `None`. For pages of runs and worker
//! polls that was 57 % of the async work of a request (callgrind, read-filter at 100k).
//! The hot reads decode by position instead, with decoders written once against
//! [`PositionalRow`], so the same code reads a SeaORM result and a row stepped on the
//! direct readers ([`crate::direct_reads`]).

use sea_orm::{ConnectionTrait, DbBackend, DbErr, QueryTrait, Statement, TryGetError};

use crate::db::ReadConnection;
use crate::direct_reads::FromSqlite;
use crate::error::Result;

/// A column type both row sources decode.
pub(crate) trait Column: sea_orm::TryGetable + FromSqlite {}
impl<T: sea_orm::TryGetable + FromSqlite> Column for T {}

/// A row whose columns are read by position: a SeaORM result or a row stepped here.
pub(crate) trait PositionalRow {
    fn at<T: Column>(&self, index: usize) -> std::result::Result<T, TryGetError>;
}

impl PositionalRow for sea_orm::QueryResult {
    fn at<T: Column>(&self, index: usize) -> std::result::Result<T, TryGetError> {
        T::try_get_by_index(self, index)
    }
}

impl PositionalRow for rusqlite::Row<'_> {
    fn at<T: Column>(&self, index: usize) -> std::result::Result<T, TryGetError> {
        let value = self.get_ref(index).map_err(|e| TryGetError::DbErr(DbErr::Type(e.to_string())))?;
        T::from_sqlite(value).map_err(|e| TryGetError::DbErr(DbErr::Type(format!("column {index}: {e}"))))
    }
}

/// What one row of a statement decodes into, by position.
pub(crate) trait Decoded: Sized + Send + 'static {
    fn decode(row: &impl PositionalRow) -> std::result::Result<Self, TryGetError>;
}

/// A row of two plain columns, in order.
impl<A: Column + Send + 'static, B: Column + Send + 'static> Decoded for (A, B) {
    fn decode(row: &impl PositionalRow) -> std::result::Result<Self, TryGetError> {
        Ok((row.at(0)?, row.at(1)?))
    }
}

/// A row of three plain columns, in order.
impl<A: Column + Send + 'static, B: Column + Send + 'static, C: Column + Send + 'static> Decoded for (A, B, C) {
    fn decode(row: &impl PositionalRow) -> std::result::Result<Self, TryGetError> {
        Ok((row.at(0)?, row.at(1)?, row.at(2)?))
    }
}

/// The SQL text of a statement that depends on the backend only: one slot per backend.
pub(crate) type BuiltOnce = [std::sync::OnceLock<String>; 3];

/// An empty [`BuiltOnce`].
pub(crate) const fn built_once_cache() -> BuiltOnce {
    [std::sync::OnceLock::new(), std::sync::OnceLock::new(), std::sync::OnceLock::new()]
}

/// A statement whose text depends on the backend only (a read by key on a hot path): its
/// SQL is built once per backend by `build` (sea-query took longer to build such a read
/// than SQLite to run it), and `values` are bound in the order the SQL takes them. Each
/// use has a test that the result is the statement sea-query builds.
pub(crate) fn built_once(
    cache: &'static BuiltOnce,
    backend: DbBackend,
    build: impl FnOnce() -> Statement,
    values: impl IntoIterator<Item = sea_orm::Value>,
) -> Statement {
    let slot = match backend {
        DbBackend::Sqlite => 0,
        DbBackend::Postgres => 1,
        _ => 2,
    };
    let sql = cache[slot].get_or_init(|| build().sql);
    Statement::from_sql_and_values(backend, sql.clone(), values)
}

/// Every row of a SeaORM select (see [`all`]).
pub(crate) async fn select_all<D: Decoded>(c: &impl ReadConnection, select: &impl QueryTrait) -> Result<Vec<D>> {
    all(c, select.build(c.get_database_backend())).await
}

/// The first row of a SeaORM select by key (see [`one`]).
pub(crate) async fn select_one<D: Decoded>(c: &impl ConnectionTrait, select: &impl QueryTrait) -> Result<Option<D>> {
    one(c, select.build(c.get_database_backend())).await
}

/// Every row of `statement`: stepped on the direct readers where `c` has them, else through SeaORM.
pub(crate) async fn all<D: Decoded>(c: &impl ReadConnection, statement: Statement) -> Result<Vec<D>> {
    if let Some(direct) = c.direct()
        && let Some(rows) = direct.all(&statement, |row| D::decode(row)).await?
    {
        return Ok(rows);
    }
    let rows = c.query_all_raw(statement).await?;
    Ok(rows.iter().map(D::decode).collect::<std::result::Result<_, _>>().map_err(DbErr::from)?)
}

/// The first row of `statement`, if any (a read by key: through SeaORM on any connection).
pub(crate) async fn one<D: Decoded>(c: &impl ConnectionTrait, statement: Statement) -> Result<Option<D>> {
    let Some(row) = c.query_one_raw(statement).await? else {
        return Ok(None);
    };
    Ok(Some(D::decode(&row).map_err(DbErr::from)?))
}
