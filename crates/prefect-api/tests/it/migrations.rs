//! Schema migrations run down and up again, and a reset rebuilds the schema, on both
//! databases (`prefect-server database downgrade|upgrade|reset`).

use prefect_storage::{applied_migrations, downgrade, migrate, reset};
use prefect_testing::TestDb;

#[tokio::test]
async fn migrations_go_down_and_up_and_reset_rebuilds() {
    let test_db = TestDb::new().await;
    let db = &test_db.db;
    let all = applied_migrations(db).await.unwrap();
    assert!(all.len() >= 3, "{all:?}");

    downgrade(db, Some(1)).await.unwrap();
    assert_eq!(applied_migrations(db).await.unwrap(), all[..all.len() - 1]);
    downgrade(db, None).await.unwrap();
    assert!(applied_migrations(db).await.unwrap().is_empty());
    migrate(db).await.unwrap();
    assert_eq!(applied_migrations(db).await.unwrap(), all);

    // A reset drops the tables only; what lives outside them (PostgreSQL's trigger
    // functions) must not stop the migrations from running again.
    reset(db).await.unwrap();
    assert_eq!(applied_migrations(db).await.unwrap(), all);
}
