//! Sort orders accepted by the filter routes.

use serde::{Deserialize, Serialize};

macro_rules! sort_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $wire:literal),+ $(,)? } default $default:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        pub enum $name {
            $(#[serde(rename = $wire)] $variant,)+
        }

        impl<'de> Deserialize<'de> for $name {
            /// `null` is the default order: the Python client sends `"sort": null` when the
            /// caller does not choose one (`read_flow_runs()`, `read_deployments()`, ...).
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                match Option::<String>::deserialize(deserializer)?.as_deref() {
                    None => Ok($name::$default),
                    $(Some($wire) => Ok($name::$variant),)+
                    Some(other) => Err(serde::de::Error::unknown_variant(other, &[$($wire),+])),
                }
            }
        }

        impl Default for $name {
            fn default() -> Self {
                $name::$default
            }
        }
    };
}

sort_enum!(
    /// Orders of `POST /flows/filter`.
    FlowSort { CreatedDesc = "CREATED_DESC", UpdatedDesc = "UPDATED_DESC", NameAsc = "NAME_ASC", NameDesc = "NAME_DESC" } default NameAsc
);
sort_enum!(
    /// Orders of `POST /flow_runs/filter`.
    FlowRunSort {
        IdDesc = "ID_DESC",
        StartTimeAsc = "START_TIME_ASC",
        StartTimeDesc = "START_TIME_DESC",
        ExpectedStartTimeAsc = "EXPECTED_START_TIME_ASC",
        ExpectedStartTimeDesc = "EXPECTED_START_TIME_DESC",
        NameAsc = "NAME_ASC",
        NameDesc = "NAME_DESC",
        NextScheduledStartTimeAsc = "NEXT_SCHEDULED_START_TIME_ASC",
        EndTimeDesc = "END_TIME_DESC",
    } default IdDesc
);
sort_enum!(
    /// Orders of `POST /task_runs/filter`.
    TaskRunSort {
        IdDesc = "ID_DESC",
        ExpectedStartTimeAsc = "EXPECTED_START_TIME_ASC",
        ExpectedStartTimeDesc = "EXPECTED_START_TIME_DESC",
        NameAsc = "NAME_ASC",
        NameDesc = "NAME_DESC",
        NextScheduledStartTimeAsc = "NEXT_SCHEDULED_START_TIME_ASC",
        EndTimeDesc = "END_TIME_DESC",
        DurationAsc = "DURATION_ASC",
        DurationDesc = "DURATION_DESC",
    } default IdDesc
);
sort_enum!(
    /// Orders of `POST /logs/filter`.
    LogSort { TimestampAsc = "TIMESTAMP_ASC", TimestampDesc = "TIMESTAMP_DESC" } default TimestampAsc
);
sort_enum!(
    /// Orders of `POST /artifacts/filter`.
    ArtifactSort { CreatedDesc = "CREATED_DESC", UpdatedDesc = "UPDATED_DESC", IdDesc = "ID_DESC", KeyDesc = "KEY_DESC", KeyAsc = "KEY_ASC" } default IdDesc
);
sort_enum!(
    /// Orders of `POST /artifacts/latest/filter`.
    ArtifactCollectionSort { CreatedDesc = "CREATED_DESC", UpdatedDesc = "UPDATED_DESC", IdDesc = "ID_DESC", KeyDesc = "KEY_DESC", KeyAsc = "KEY_ASC" } default IdDesc
);
sort_enum!(
    /// Orders of `POST /deployments/filter`.
    DeploymentSort { CreatedDesc = "CREATED_DESC", UpdatedDesc = "UPDATED_DESC", NameAsc = "NAME_ASC", NameDesc = "NAME_DESC" } default NameAsc
);
sort_enum!(
    /// Orders of `POST /variables/filter`.
    VariableSort { CreatedDesc = "CREATED_DESC", UpdatedDesc = "UPDATED_DESC", NameDesc = "NAME_DESC", NameAsc = "NAME_ASC" } default NameAsc
);
sort_enum!(
    /// Orders of `POST /block_documents/filter`.
    BlockDocumentSort { NameDesc = "NAME_DESC", NameAsc = "NAME_ASC", BlockTypeAndNameAsc = "BLOCK_TYPE_AND_NAME_ASC" } default NameAsc
);
sort_enum!(
    /// Orders of `POST /automations/filter`.
    AutomationSort { CreatedDesc = "CREATED_DESC", UpdatedDesc = "UPDATED_DESC", NameAsc = "NAME_ASC", NameDesc = "NAME_DESC" } default NameAsc
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_sorts_are_rejected() {
        assert!(serde_json::from_str::<FlowRunSort>(r#""NOT_A_SORT""#).is_err());
        assert_eq!(serde_json::from_str::<FlowRunSort>(r#""NAME_ASC""#).unwrap(), FlowRunSort::NameAsc);
    }
}
