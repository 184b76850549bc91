//! The core error type: what a use case can refuse or fail with.

use std::time::Duration;

/// Why a use case did not succeed. The API layer maps each variant to one HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The object does not exist (404).
    #[error("{0}")]
    NotFound(String),
    /// The object conflicts with existing data (409).
    #[error("{0}")]
    Conflict(String),
    /// The request is well-formed but its values are unacceptable (422).
    #[error("{message}")]
    Invalid {
        /// Dotted location of the offending value, when known.
        field: Option<String>,
        message: String,
    },
    /// The request cannot be honoured as asked (400).
    #[error("{0}")]
    BadRequest(String),
    /// The caller may not do this (403).
    #[error("{0}")]
    Forbidden(String),
    /// A concurrency limit is full; retry after the given delay (423).
    #[error("{}", detail.as_deref().unwrap_or("Concurrency limit reached"))]
    Locked { detail: Option<String>, retry_after: Option<Duration> },
    /// The thing asked for existed once but is gone (410).
    #[error("{0}")]
    Gone(String),
    /// Too much load; retry later (429).
    #[error("{0}")]
    Busy(String),
    /// Transient storage trouble; retry (503).
    #[error("{0}")]
    Unavailable(String),
    /// Anything else (500).
    #[error("{0}")]
    Internal(String),
}

impl Error {
    pub fn not_found(what: impl Into<String>) -> Self {
        Error::NotFound(what.into())
    }

    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid { field: Some(field.into()), message: message.into() }
    }

    /// A 422 whose body is Prefect's `{"detail": ...}` (an `HTTPException`, not a model error).
    pub fn unprocessable(message: impl Into<String>) -> Self {
        Error::Invalid { field: None, message: message.into() }
    }
}

/// An unusable JSON schema is the request's fault (422).
impl From<crate::schema_tools::SchemaError> for Error {
    fn from(err: crate::schema_tools::SchemaError) -> Self {
        Error::unprocessable(err.to_string())
    }
}

impl From<prefect_storage::Error> for Error {
    fn from(err: prefect_storage::Error) -> Self {
        use prefect_storage::Error as S;
        match err {
            S::NotFound { entity } => Error::NotFound(format!("{entity} not found")),
            S::Conflict(_) | S::InvalidReference(_) => Error::Conflict(
                "Data integrity conflict. This usually means a unique or foreign key constraint was violated. See server logs for details.".to_owned(),
            ),
            S::Unavailable(msg) => Error::Unavailable(msg),
            other => Error::Internal(other.to_string()),
        }
    }
}

impl From<prefect_domain::Error> for Error {
    fn from(err: prefect_domain::Error) -> Self {
        match err {
            prefect_domain::Error::InvalidField { field, message } => Error::Invalid { field: Some(field), message },
        }
    }
}

impl From<prefect_orchestration::Error> for Error {
    fn from(err: prefect_orchestration::Error) -> Self {
        // A storage failure inside a rule keeps its meaning (e.g. 503 for contention).
        let source = match err.source.downcast::<prefect_storage::Error>() {
            Ok(storage) => return Error::from(*storage),
            Err(other) => other,
        };
        match source.downcast::<Error>() {
            Ok(core) => *core,
            Err(other) => Error::Internal(format!("orchestration rule {} failed: {other}", err.rule)),
        }
    }
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;
