//! Bulk inserts whose statements are prepared once and reused.
//!
//! A multi-row `INSERT … VALUES (…), (…)` sized to each batch has a new text
//! for every batch size, so every batch is parsed and planned again. Here each
//! table has a fixed set of statements:
//!
//! - SQLite: `VALUES` lists of a few fixed sizes ([`SQLITE_TIERS`] rows); a
//!   batch is cut into the largest tiers that fit, so any batch reuses at most
//!   five cached statements, each one a round trip to the driver's thread.
//!   This path serves callers inside a SeaORM transaction; the server's own
//!   event and log writes on SQLite step row by row on the writer's connection
//!   instead ([`crate::direct_writes`]), and the tests there compare the rows
//!   both paths store.
//! - PostgreSQL: one statement for any batch size; the rows travel as one
//!   JSON parameter that `jsonb_array_elements` unpacks (PostgreSQL parses it
//!   once; SQLite's `json_each` re-parses every value and was slower than the
//!   tiers).
//!
//! Values are stored exactly as SeaORM stores them, so rows written here read
//! back like any other.

use chrono::SecondsFormat;
use prefect_domain::time::DateTime;
use sea_orm::{ConnectionTrait, Statement, Value as DbValue};
use serde::ser::{Serialize, Serializer};
use uuid::Uuid;

use crate::Result;
use crate::db::Backend;

/// Rows per SQLite statement, largest first; the last must be 1.
const SQLITE_TIERS: [usize; 5] = [256, 64, 16, 4, 1];

/// How a column's value is converted in PostgreSQL's JSON path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Uuid,
    Timestamp,
    Text,
    Json,
    BigInt,
}

/// A table and the columns a bulk insert fills, in row order.
#[derive(Debug)]
pub(crate) struct BulkTable {
    pub name: &'static str,
    pub columns: &'static [(&'static str, Kind)],
    /// Skip rows whose value of this (unique) column already exists.
    pub skip_conflicts_on: Option<&'static str>,
}

/// One cell of a bulk row: a database value for SQLite's `VALUES` path, and
/// JSON for PostgreSQL's.
pub(crate) trait Cell: Serialize {
    fn db_value(&self) -> DbValue;
}

/// A row of cells in column order (tuples of [`Cell`]s).
pub(crate) trait Row: Serialize {
    const WIDTH: usize;
    fn push_values(&self, out: &mut Vec<DbValue>);
}

macro_rules! tuple_row {
    ($width:literal; $($name:ident $index:tt),+) => {
        impl<$($name: Cell),+> Row for ($($name,)+) {
            const WIDTH: usize = $width;
            fn push_values(&self, out: &mut Vec<DbValue>) {
                $(out.push(self.$index.db_value());)+
            }
        }
    };
}
tuple_row!(8; A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7);
tuple_row!(9; A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8);
tuple_row!(13; A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10, L 11, M 12);

impl BulkTable {
    fn column_list(&self) -> String {
        self.columns.iter().map(|(name, _)| format!("\"{name}\"")).collect::<Vec<_>>().join(", ")
    }

    fn suffix(&self, returning: Option<&str>) -> String {
        let mut sql = String::new();
        if let Some(column) = self.skip_conflicts_on {
            sql.push_str(&format!(" ON CONFLICT (\"{column}\") DO NOTHING"));
        }
        if let Some(column) = returning {
            sql.push_str(&format!(" RETURNING \"{column}\""));
        }
        sql
    }

    /// SQLite: an insert of exactly `rows` rows.
    fn sqlite_sql(&self, rows: usize, returning: Option<&str>) -> String {
        let one = format!("({})", vec!["?"; self.columns.len()].join(", "));
        let values = vec![one; rows].join(", ");
        format!("INSERT INTO \"{}\" ({}) VALUES {values}{}", self.name, self.column_list(), self.suffix(returning))
    }

    /// PostgreSQL: an insert of any number of rows, sent as one JSON array of arrays.
    fn postgres_sql(&self, returning: Option<&str>) -> String {
        let values: Vec<String> = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, (_, kind))| match kind {
                Kind::Uuid => format!("(value ->> {i})::uuid"),
                Kind::Timestamp => format!("(value ->> {i})::timestamptz"),
                Kind::Text => format!("value ->> {i}"),
                Kind::Json => format!("value -> {i}"),
                Kind::BigInt => format!("(value ->> {i})::bigint"),
            })
            .collect();
        format!(
            "INSERT INTO \"{}\" ({}) SELECT {} FROM jsonb_array_elements($1::jsonb) AS rows(value){}",
            self.name,
            self.column_list(),
            values.join(", "),
            self.suffix(returning)
        )
    }

    /// The statements that insert `rows`.
    fn statements<R: Row>(&self, c: &impl ConnectionTrait, backend: Backend, rows: &[R], returning: Option<&str>) -> Result<Vec<Statement>> {
        debug_assert_eq!(R::WIDTH, self.columns.len(), "a row of {} does not match its columns", self.name);
        let db_backend = c.get_database_backend();
        match backend {
            Backend::Postgres => {
                let json = serde_json::to_string(rows).map_err(|e| crate::Error::Encode(e.to_string()))?;
                Ok(vec![Statement::from_sql_and_values(db_backend, self.postgres_sql(returning), [DbValue::from(json)])])
            }
            Backend::Sqlite => {
                let mut statements = Vec::new();
                let mut rest = rows;
                for tier in SQLITE_TIERS {
                    while rest.len() >= tier {
                        let (chunk, tail) = rest.split_at(tier);
                        let mut values = Vec::with_capacity(tier * R::WIDTH);
                        for row in chunk {
                            row.push_values(&mut values);
                        }
                        statements.push(Statement::from_sql_and_values(db_backend, self.sqlite_sql(tier, returning), values));
                        rest = tail;
                    }
                }
                Ok(statements)
            }
        }
    }

    /// Inserts `rows`; returns how many were inserted.
    pub(crate) async fn insert<R: Row>(&self, c: &impl ConnectionTrait, backend: Backend, rows: &[R]) -> Result<u64> {
        let mut inserted = 0;
        if rows.is_empty() {
            return Ok(inserted);
        }
        for statement in self.statements(c, backend, rows, None)? {
            inserted += c.execute_raw(statement).await?.rows_affected();
        }
        Ok(inserted)
    }

    /// Inserts `rows`; returns the UUID column `returning` of each row actually inserted.
    pub(crate) async fn insert_returning_ids<R: Row>(&self, c: &impl ConnectionTrait, backend: Backend, rows: &[R], returning: &str) -> Result<Vec<Uuid>> {
        let mut ids = Vec::with_capacity(rows.len());
        if rows.is_empty() {
            return Ok(ids);
        }
        for statement in self.statements(c, backend, rows, Some(returning))? {
            for row in c.query_all_raw(statement).await? {
                ids.push(row.try_get_by_index::<Uuid>(0)?);
            }
        }
        Ok(ids)
    }
}

/// A UUID: 32 hex digits in JSON (PostgreSQL parses it), a UUID value for SQLite.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HexUuid(pub Uuid);

impl Serialize for HexUuid {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.0.simple().encode_lower(&mut Uuid::encode_buffer()))
    }
}

impl Cell for HexUuid {
    fn db_value(&self) -> DbValue {
        DbValue::Uuid(Some(self.0))
    }
}

impl Cell for Option<HexUuid> {
    fn db_value(&self) -> DbValue {
        DbValue::Uuid(self.map(|u| u.0))
    }
}

/// A timestamp.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timestamp(pub DateTime);

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_rfc3339_opts(SecondsFormat::AutoSi, false))
    }
}

impl Cell for Timestamp {
    fn db_value(&self) -> DbValue {
        DbValue::ChronoDateTimeUtc(Some(self.0))
    }
}

impl Cell for &str {
    fn db_value(&self) -> DbValue {
        DbValue::String(Some((*self).to_owned()))
    }
}

impl Cell for i64 {
    fn db_value(&self) -> DbValue {
        DbValue::BigInt(Some(*self))
    }
}

/// A JSON column: nested JSON in PostgreSQL's rows, JSON text for SQLite (as SeaORM stores it).
pub(crate) struct Json<T>(pub T);

impl<T: Serialize> Serialize for Json<T> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<T: Serialize> Cell for Json<T> {
    fn db_value(&self) -> DbValue {
        // Serializing maps and lists of strings cannot fail.
        DbValue::String(Some(serde_json::to_string(&self.0).unwrap_or_else(|_| "null".to_owned())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: BulkTable = BulkTable {
        name: "log",
        columns: &[("id", Kind::Uuid), ("created", Kind::Timestamp), ("name", Kind::Text), ("level", Kind::BigInt)],
        skip_conflicts_on: Some("id"),
    };

    #[test]
    fn statements_have_fixed_shapes() {
        assert_eq!(
            TABLE.sqlite_sql(2, Some("id")),
            "INSERT INTO \"log\" (\"id\", \"created\", \"name\", \"level\") VALUES (?, ?, ?, ?), (?, ?, ?, ?) \
             ON CONFLICT (\"id\") DO NOTHING RETURNING \"id\""
        );
        assert_eq!(
            TABLE.postgres_sql(None),
            "INSERT INTO \"log\" (\"id\", \"created\", \"name\", \"level\") SELECT (value ->> 0)::uuid, (value ->> 1)::timestamptz, \
             value ->> 2, (value ->> 3)::bigint FROM jsonb_array_elements($1::jsonb) AS rows(value) ON CONFLICT (\"id\") DO NOTHING"
        );
    }

    #[test]
    fn json_rows_encode_values_for_postgres() {
        let id = Uuid::parse_str("01a216ce-1d82-735e-b756-c608b2bd4a3a").unwrap();
        let at = chrono::DateTime::parse_from_rfc3339("2026-11-26T07:42:16.498729Z").unwrap().to_utc();
        let text = serde_json::to_string(&(HexUuid(id), Timestamp(at), Json(vec!["a"]))).unwrap();
        assert_eq!(text, r#"["01a216ce1d82735eb756c608b2bd4a3a","2026-11-26T07:42:16.498729+00:00",["a"]]"#);
    }
}
