//! Multi-row reads on a SQLite file, stepped on read connections of our own.
//!
//! sqlx runs each SQLite connection on a worker thread and hands every row of a result
//! back to the calling task through a channel. The task takes each row as soon as it is
//! sent and parks again, so a read of N rows costs about N thread wake-ups: a worker poll
//! (100 runs, plus 100 rows of picks) measured ~68 context switches and ~6 ms of server CPU.
//! Here a read runs whole on one blocking-pool thread: bind, step every row, decode it,
//! and the task is woken once with the decoded rows. The statements are the ones SeaORM
//! builds (same SQL, same bound values as sqlx encodes them), on read-only connections
//! with the readers' settings.
//!
//! Only reads of a bounded page of rows go through here (run pages, worker polls); every
//! other read and all writes stay on SeaORM's pools.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use rusqlite::types::{Value as SqliteValue, ValueRef};
use sea_orm::{DbErr, Statement, TryGetError, Value};
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::direct_writes::{sqlite_error, timestamp_text};
use crate::entity::TypedJson;
use crate::error::{Error, Result};

/// Read-only connections to one SQLite file, at most `size` of them, opened when first needed.
#[derive(Clone)]
pub struct DirectReads {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    busy_timeout: Duration,
    idle: Mutex<Vec<rusqlite::Connection>>,
    /// One permit per connection: a read waits here (asynchronously) rather than open more.
    permits: Arc<Semaphore>,
    /// Whether a failure to open has been logged (once: every read would otherwise repeat it).
    open_failure_logged: AtomicBool,
}

impl std::fmt::Debug for DirectReads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectReads").field("path", &self.inner.path).field("available", &self.inner.permits.available_permits()).finish()
    }
}

/// Distinct statements kept prepared per connection (pages differ by filter and sort).
const STATEMENT_CACHE: usize = 64;

impl DirectReads {
    pub(crate) fn new(path: PathBuf, size: usize, busy_timeout: Duration) -> DirectReads {
        let size = size.max(1);
        DirectReads {
            inner: Arc::new(Inner {
                path,
                busy_timeout,
                idle: Mutex::new(Vec::with_capacity(size)),
                permits: Arc::new(Semaphore::new(size)),
                open_failure_logged: AtomicBool::new(false),
            }),
        }
    }

    /// Runs `statement` and decodes every row with `decode`, or `None` if a bound value
    /// has a type this path does not encode or no connection opens (the caller then
    /// reads through SeaORM).
    pub(crate) async fn all<T, F>(&self, statement: &Statement, decode: F) -> Result<Option<Vec<T>>>
    where
        T: Send + 'static,
        F: Fn(&rusqlite::Row<'_>) -> std::result::Result<T, TryGetError> + Send + 'static,
    {
        let Some(values) = statement.values.as_ref().map_or(Some(Vec::new()), |v| v.0.iter().map(bindable).collect::<Option<Vec<_>>>()) else {
            return Ok(None);
        };
        let sql = statement.sql.clone();
        // The permit moves into the blocking task: a request that gives up waiting does not
        // free a connection that is still stepping.
        let permit = self.inner.permits.clone().acquire_owned().await.map_err(|_| Error::Unavailable("direct reads closed".into()))?;
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            // A connection that cannot open (permissions, a file SQLite cannot open read-only)
            // leaves the read to SeaORM's pool, which opened the same file.
            let Some(conn) = inner.take() else {
                return Ok(None);
            };
            let rows = read_all(&conn, &sql, values, &decode);
            inner.give_back(conn, rows.as_ref().err());
            rows.map(Some)
        })
        .await
        .map_err(|e| Error::Database(DbErr::Custom(format!("direct read task failed: {e}"))))?
    }
}

impl Inner {
    fn take(&self) -> Option<rusqlite::Connection> {
        if let Some(conn) = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop() {
            return Some(conn);
        }
        self.open()
            .inspect_err(|error| {
                if !self.open_failure_logged.swap(true, Ordering::Relaxed) {
                    tracing::warn!(%error, path = %self.path.display(), "cannot open a direct SQLite reader; pages are read through the pool");
                }
            })
            .ok()
    }

    /// Returns a connection to the idle list, unless it failed in a way that may have left it unusable.
    fn give_back(&self, conn: rusqlite::Connection, error: Option<&Error>) {
        if matches!(error, None | Some(Error::Corrupt(_))) {
            self.idle.lock().unwrap_or_else(|e| e.into_inner()).push(conn);
        }
    }

    fn open(&self) -> rusqlite::Result<rusqlite::Connection> {
        use rusqlite::OpenFlags;
        let conn = rusqlite::Connection::open_with_flags(&self.path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
        crate::sqlite_tuning::configure_own_connection(&conn, self.busy_timeout, crate::db::READER_CACHE_KIB, STATEMENT_CACHE)?;
        Ok(conn)
    }
}

fn read_all<T>(
    conn: &rusqlite::Connection,
    sql: &str,
    values: Vec<SqliteValue>,
    decode: &dyn Fn(&rusqlite::Row<'_>) -> std::result::Result<T, TryGetError>,
) -> Result<Vec<T>> {
    let mut statement = conn.prepare_cached(sql).map_err(sqlite_error)?;
    for (index, value) in values.into_iter().enumerate() {
        statement.raw_bind_parameter(index + 1, value).map_err(sqlite_error)?;
    }
    let mut rows = statement.raw_query();
    let mut decoded = Vec::new();
    while let Some(row) = rows.next().map_err(sqlite_error)? {
        decoded.push(decode(row).map_err(|e| Error::Corrupt(DbErr::from(e).to_string()))?);
    }
    Ok(decoded)
}

/// A bound value as sqlx-sqlite encodes it (through sea-query-sqlx), so that comparisons
/// with stored values behave the same on both paths; `None` for types not handled here.
pub(crate) fn bindable(value: &Value) -> Option<SqliteValue> {
    use SqliteValue::{Blob, Integer, Null, Real, Text};
    Some(match value {
        Value::Bool(v) => v.map_or(Null, |b| Integer(b as i64)),
        Value::TinyInt(v) => v.map_or(Null, |i| Integer(i.into())),
        Value::SmallInt(v) => v.map_or(Null, |i| Integer(i.into())),
        Value::Int(v) => v.map_or(Null, |i| Integer(i.into())),
        Value::BigInt(v) => v.map_or(Null, Integer),
        Value::TinyUnsigned(v) => v.map_or(Null, |i| Integer(i.into())),
        Value::SmallUnsigned(v) => v.map_or(Null, |i| Integer(i.into())),
        Value::Unsigned(v) => v.map_or(Null, |i| Integer(i.into())),
        Value::BigUnsigned(v) => match v {
            None => Null,
            Some(i) => Integer(i64::try_from(*i).ok()?),
        },
        Value::Float(v) => v.map_or(Null, |f| Real(f.into())),
        Value::Double(v) => v.map_or(Null, Real),
        Value::String(v) => v.as_ref().map_or(Null, |s| Text(s.clone())),
        Value::Char(v) => v.map_or(Null, |c| Text(c.to_string())),
        Value::Bytes(v) => v.as_ref().map_or(Null, |b| Blob(b.clone())),
        Value::Uuid(v) => v.map_or(Null, |u| Blob(u.as_bytes().to_vec())),
        Value::Json(v) => v.as_ref().map_or(Null, |j| Text(j.to_string())),
        Value::ChronoDateTimeUtc(v) => v.map_or(Null, |t| Text(timestamp_text(&t))),
        Value::ChronoDateTimeWithTimeZone(v) => v.map_or(Null, |t| Text(t.to_rfc3339_opts(SecondsFormat::AutoSi, false))),
        Value::ChronoDateTimeLocal(v) => v.map_or(Null, |t| Text(t.to_rfc3339_opts(SecondsFormat::AutoSi, false))),
        Value::ChronoDateTime(v) => v.map_or(Null, |t| Text(t.format("%F %T%.f").to_string())),
        Value::ChronoDate(v) => v.map_or(Null, |d| Text(d.format("%F").to_string())),
        Value::ChronoTime(v) => v.map_or(Null, |t| Text(t.format("%T%.f").to_string())),
        _ => return None,
    })
}

/// A column type decoded from a SQLite value the way sqlx decodes it for SeaORM.
pub(crate) trait FromSqlite: Sized {
    fn from_sqlite(value: ValueRef<'_>) -> std::result::Result<Self, String>;
}

fn unexpected(value: ValueRef<'_>, wanted: &str) -> String {
    format!("expected {wanted}, found {:?}", value.data_type())
}

impl<T: FromSqlite> FromSqlite for Option<T> {
    fn from_sqlite(value: ValueRef<'_>) -> std::result::Result<Self, String> {
        match value {
            ValueRef::Null => Ok(None),
            value => T::from_sqlite(value).map(Some),
        }
    }
}

impl FromSqlite for Uuid {
    fn from_sqlite(value: ValueRef<'_>) -> std::result::Result<Self, String> {
        match value {
            ValueRef::Blob(bytes) => Uuid::from_slice(bytes).map_err(|e| e.to_string()),
            ValueRef::Text(text) => std::str::from_utf8(text).ok().and_then(|t| Uuid::parse_str(t).ok()).ok_or_else(|| "malformed uuid".to_owned()),
            other => Err(unexpected(other, "uuid")),
        }
    }
}

impl FromSqlite for String {
    fn from_sqlite(value: ValueRef<'_>) -> std::result::Result<Self, String> {
        match value {
            ValueRef::Text(text) => String::from_utf8(text.to_vec()).map_err(|e| e.to_string()),
            other => Err(unexpected(other, "text")),
        }
    }
}

impl FromSqlite for bool {
    fn from_sqlite(value: ValueRef<'_>) -> std::result::Result<Self, String> {
        match value {
            ValueRef::Integer(i) => Ok(i != 0),
            other => Err(unexpected(other, "boolean")),
        }
    }
}

impl FromSqlite for i64 {
    fn from_sqlite(value: ValueRef<'_>) -> std::result::Result<Self, String> {
        match value {
            ValueRef::Integer(i) => Ok(i),
            other => Err(unexpected(other, "integer")),
        }
    }
}

impl FromSqlite for f64 {
    fn from_sqlite(value: ValueRef<'_>) -> std::result::Result<Self, String> {
        match value {
            ValueRef::Real(f) => Ok(f),
            ValueRef::Integer(i) => Ok(i as f64),
            other => Err(unexpected(other, "real")),
        }
    }
}

impl FromSqlite for chrono::DateTime<Utc> {
    /// RFC 3339 text (what sqlx writes), or SQLite's own `YYYY-MM-DD HH:MM:SS[.fff]` (UTC).
    fn from_sqlite(value: ValueRef<'_>) -> std::result::Result<Self, String> {
        let ValueRef::Text(text) = value else {
            return Err(unexpected(value, "timestamp text"));
        };
        let text = std::str::from_utf8(text).map_err(|e| e.to_string())?;
        if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
            return Ok(t.with_timezone(&Utc));
        }
        ["%F %T%.f", "%FT%T%.f"]
            .iter()
            .find_map(|format| chrono::NaiveDateTime::parse_from_str(text, format).ok())
            .map(|t| t.and_utc())
            .ok_or_else(|| format!("invalid timestamp {text:?}"))
    }
}

fn json_text<'a>(value: ValueRef<'a>) -> std::result::Result<&'a [u8], String> {
    match value {
        ValueRef::Text(text) | ValueRef::Blob(text) => Ok(text),
        other => Err(unexpected(other, "JSON text")),
    }
}

impl FromSqlite for serde_json::Value {
    fn from_sqlite(value: ValueRef<'_>) -> std::result::Result<Self, String> {
        serde_json::from_slice(json_text(value)?).map_err(|e| e.to_string())
    }
}

impl<T: serde::de::DeserializeOwned> FromSqlite for TypedJson<T> {
    fn from_sqlite(value: ValueRef<'_>) -> std::result::Result<Self, String> {
        serde_json::from_slice(json_text(value)?).map(TypedJson).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_timestamps_and_uuids_as_sqlx_stores_them() {
        let t = chrono::DateTime::parse_from_rfc3339("2026-11-27T08:18:13.231942Z").unwrap().with_timezone(&Utc);
        assert_eq!(bindable(&Value::from(t)), Some(SqliteValue::Text("2026-11-27T08:18:13.231942+00:00".into())));
        let id = Uuid::now_v7();
        assert_eq!(bindable(&Value::from(id)), Some(SqliteValue::Blob(id.as_bytes().to_vec())));
        assert_eq!(bindable(&Value::Bool(Some(true))), Some(SqliteValue::Integer(1)));
        assert_eq!(bindable(&Value::String(None)), Some(SqliteValue::Null));
    }

    #[tokio::test]
    async fn a_reader_that_cannot_open_leaves_the_read_to_the_pool() {
        use crate::rows::PositionalRow;
        let dir = tempfile::tempdir().expect("tempdir");
        let direct = DirectReads::new(dir.path().join("missing.db"), 1, Duration::from_millis(10));
        let statement = Statement::from_string(sea_orm::DatabaseBackend::Sqlite, "SELECT 1");
        assert_eq!(direct.all(&statement, |row| row.at::<i64>(0)).await.unwrap(), None);
    }

    #[test]
    fn decodes_sqlite_timestamps_in_either_form() {
        let rfc: chrono::DateTime<Utc> = FromSqlite::from_sqlite(ValueRef::Text(b"2026-11-27T08:18:13.231942+00:00")).unwrap();
        let plain: chrono::DateTime<Utc> = FromSqlite::from_sqlite(ValueRef::Text(b"2026-11-27 08:18:13.231942")).unwrap();
        assert_eq!(rfc, plain);
        assert!(<chrono::DateTime<Utc>>::from_sqlite(ValueRef::Null).is_err());
        assert_eq!(<Option<i64>>::from_sqlite(ValueRef::Null), Ok(None));
    }
}
