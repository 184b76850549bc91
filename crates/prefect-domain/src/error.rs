//! Validation errors raised by domain constructors.

/// A domain rule that an input broke. The API layer answers these with 422.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// A field holds a value Prefect does not accept.
    #[error("{field}: {message}")]
    InvalidField {
        /// Dotted location of the field, e.g. `name` or `state.type`.
        field: String,
        /// What is wrong with it.
        message: String,
    },
}

impl Error {
    /// Shorthand for [`Error::InvalidField`].
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidField { field: field.into(), message: message.into() }
    }
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;
