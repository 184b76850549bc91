//! Helpers for the storage crate's tests.

use crate::{Database, DatabaseOptions};

/// A migrated SQLite database in a file under `dir` (with direct readers, as the server has).
pub(crate) async fn migrated_sqlite(dir: &tempfile::TempDir) -> Database {
    let url = format!("sqlite://{}", dir.path().join("prefect.db").display());
    let db = Database::connect(&DatabaseOptions { url, ..Default::default() }).await.expect("connect");
    crate::migrate(&db).await.expect("migrate");
    db
}
