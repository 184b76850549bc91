//! The storage error type.

use sea_orm::{DbErr, RuntimeErr, SqlErr};

/// What went wrong talking to the database.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The row does not exist.
    #[error("{entity} not found")]
    NotFound { entity: &'static str },
    /// A unique constraint was violated.
    #[error("Data integrity conflict: {0}")]
    Conflict(String),
    /// A foreign key points at nothing.
    #[error("invalid reference: {0}")]
    InvalidReference(String),
    /// Transient contention or an unreachable database; the client should retry.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The connection URL is not one we understand.
    #[error("unsupported database URL {0:?}")]
    InvalidUrl(String),
    /// Stored data could not be decoded.
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
    /// A value could not be encoded for the database.
    #[error("could not encode a value for storage: {0}")]
    Encode(String),
    /// A filesystem problem (creating the SQLite directory).
    #[error("io error: {0}")]
    Io(String),
    /// Any other database error.
    #[error(transparent)]
    Database(DbErr),
}

impl Error {
    /// Sorts a SeaORM error into conflicts, bad references, transient failures and the rest.
    pub fn from_db(err: DbErr) -> Error {
        match err.sql_err() {
            Some(SqlErr::UniqueConstraintViolation(msg)) => return Error::Conflict(msg),
            Some(SqlErr::ForeignKeyConstraintViolation(msg)) => return Error::InvalidReference(msg),
            _ => {}
        }
        if is_transient(&err) {
            return Error::Unavailable(err.to_string());
        }
        Error::Database(err)
    }

    /// Whether the client should simply retry (503).
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Unavailable(_))
    }
}

impl From<DbErr> for Error {
    fn from(err: DbErr) -> Self {
        Error::from_db(err)
    }
}

impl From<serde_json::Error> for Error {
    fn from(err: serde_json::Error) -> Self {
        Error::Corrupt(err.to_string())
    }
}

fn is_transient(err: &DbErr) -> bool {
    use sea_orm::sqlx::Error as SqlxError;
    let sqlx = match err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => return true,
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => e,
        _ => {
            let text = err.to_string();
            return text.contains("database is locked") || text.contains("SQLITE_BUSY");
        }
    };
    match sqlx.as_ref() {
        SqlxError::PoolTimedOut | SqlxError::PoolClosed | SqlxError::Io(_) | SqlxError::WorkerCrashed => true,
        SqlxError::Database(db) => {
            let code = db.code().unwrap_or_default();
            // SQLite BUSY/LOCKED (5, 6 and extended codes); PostgreSQL serialization
            // failure, deadlock, lock timeout, too many connections, shutdown.
            matches!(code.as_ref(), "5" | "6" | "261" | "262" | "517" | "40001" | "40P01" | "55P03" | "53300" | "57P01" | "57P03")
                || db.message().contains("database is locked")
        }
        _ => false,
    }
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;
