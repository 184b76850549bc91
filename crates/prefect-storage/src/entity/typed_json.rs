//! A JSON column decoded straight into its Rust type.
//!
//! A `Json` (`serde_json::Value`) column is parsed into a tree of maps and strings and then
//! deserialized a second time into the domain type. For the columns every run read carries
//! (state details, run policies, tags) that double pass showed up in profiles of worker
//! polls and UI pages. `TypedJson<T>` lets sqlx parse the stored text (SQLite) or JSONB
//! (PostgreSQL) into `T` in one pass. Writing still goes through `serde_json::Value`,
//! which is what sea-query binds.

use sea_orm::sea_query::{ArrayType, ColumnType, Nullable, ValueType, ValueTypeErr};
use sea_orm::{ActiveValue, IntoActiveValue, TryGetableFromJson, Value};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A JSON column holding a `T`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TypedJson<T>(pub T);

impl<T: Serialize> TypedJson<T> {
    /// The value as sea-query binds it.
    fn to_value(&self) -> Value {
        // Serializing plain data types (no maps with non-string keys) cannot fail.
        Value::Json(Some(Box::new(serde_json::to_value(&self.0).unwrap_or(serde_json::Value::Null))))
    }
}

impl<T: DeserializeOwned> TryGetableFromJson for TypedJson<T> {}

impl<T: Serialize> From<TypedJson<T>> for Value {
    fn from(source: TypedJson<T>) -> Self {
        source.to_value()
    }
}

impl<T: DeserializeOwned> ValueType for TypedJson<T> {
    fn try_from(v: Value) -> Result<Self, ValueTypeErr> {
        match v {
            Value::Json(Some(json)) => serde_json::from_value(*json).map(TypedJson).map_err(|_| ValueTypeErr),
            _ => Err(ValueTypeErr),
        }
    }

    fn type_name() -> String {
        format!("TypedJson<{}>", std::any::type_name::<T>())
    }

    fn array_type() -> ArrayType {
        ArrayType::Json
    }

    fn column_type() -> ColumnType {
        ColumnType::JsonBinary
    }
}

impl<T> Nullable for TypedJson<T> {
    fn null() -> Value {
        Value::Json(None)
    }
}

impl<T: Serialize> IntoActiveValue<TypedJson<T>> for TypedJson<T> {
    fn into_active_value(self) -> ActiveValue<TypedJson<T>> {
        ActiveValue::Set(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prefect_domain::state::StateDetails;

    #[test]
    fn round_trips_through_the_bound_value() {
        let details = StateDetails { pause_key: Some("k".into()), ..Default::default() };
        let bound: Value = TypedJson(details.clone()).into();
        let back: TypedJson<StateDetails> = ValueType::try_from(bound).unwrap();
        assert_eq!(back.0, details);
    }
}
