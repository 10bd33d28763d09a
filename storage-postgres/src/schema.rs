//! The schema: migrations embedded in the binary, applied in order at start-up.
//!
//! The pending migrations run in one transaction together with the rows recording them in
//! `schema_migrations`, under a transaction-level advisory lock taken first, so processes
//! starting at once apply each migration exactly once and re-applying to a migrated database
//! changes nothing.

use tokio_postgres::Client;

/// One schema change: its version (ascending, never reused) and its SQL.
struct Migration {
    version: i32,
    name: &'static str,
    sql: &'static str,
}

/// Every migration, oldest first.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "streams_events_catalog",
        sql: include_str!("../migrations/0001_streams_events_catalog.sql"),
    },
    Migration {
        version: 2,
        name: "deleted_tails",
        sql: include_str!("../migrations/0002_deleted_tails.sql"),
    },
    Migration {
        version: 3,
        name: "leases",
        sql: include_str!("../migrations/0003_leases.sql"),
    },
];

/// The advisory lock key that serialises migrating processes (any constant, unique to us).
const MIGRATION_LOCK: i64 = 0x6d61_5f73_6368_656d;

/// The newest schema version this build knows.
pub const LATEST: i32 = MIGRATIONS[MIGRATIONS.len() - 1].version;

/// Brings the database's schema to [`LATEST`] in one transaction; returns the versions it
/// applied (empty when the schema was current).
pub(crate) async fn migrate(client: &mut Client) -> Result<Vec<i32>, tokio_postgres::Error> {
    let transaction = client.transaction().await?;
    transaction
        .execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    transaction
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version INTEGER PRIMARY KEY,
                 name TEXT NOT NULL,
                 applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
             )",
        )
        .await?;
    let done: Vec<i32> = transaction
        .query("SELECT version FROM schema_migrations", &[])
        .await?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()?;
    let mut applied = Vec::new();
    for migration in MIGRATIONS {
        if done.contains(&migration.version) {
            continue;
        }
        transaction.batch_execute(migration.sql).await?;
        transaction
            .execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                &[&migration.version, &migration.name],
            )
            .await?;
        applied.push(migration.version);
    }
    transaction.commit().await?;
    Ok(applied)
}
