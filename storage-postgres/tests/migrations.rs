//! Migrations: applied to an empty database, re-applied idempotently, and safe when several
//! processes' stores start on one fresh database at once.

mod support;

use std::thread;

fn applied_versions(url: &str) -> Vec<i32> {
    support::admin(url, async |client| {
        let rows = client
            .query(
                "SELECT version FROM schema_migrations ORDER BY version",
                &[],
            )
            .await?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    })
}

fn tables(url: &str) -> Vec<String> {
    support::admin(url, async |client| {
        let rows = client
            .query(
                "SELECT table_name::text FROM information_schema.tables
                 WHERE table_schema = 'public' ORDER BY table_name",
                &[],
            )
            .await?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    })
}

#[test]
fn applied_to_an_empty_database_then_reapplied_without_change() {
    let url = support::fresh_database();
    assert!(tables(&url).is_empty());
    drop(support::open(
        &url,
        managed_agents_storage_postgres::Options::new,
    ));
    let every: Vec<i32> = (1..=managed_agents_storage_postgres::SCHEMA_VERSION).collect();
    assert_eq!(applied_versions(&url), every);
    assert_eq!(
        tables(&url),
        [
            "catalog",
            "deleted_tails",
            "events",
            "leases",
            "schema_migrations",
            "streams"
        ]
    );
    drop(support::open(
        &url,
        managed_agents_storage_postgres::Options::new,
    ));
    assert_eq!(applied_versions(&url), every);
}

#[test]
fn stores_starting_at_once_migrate_once() {
    let url = support::fresh_database();
    thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| support::open(&url, managed_agents_storage_postgres::Options::new));
        }
    });
    let every: Vec<i32> = (1..=managed_agents_storage_postgres::SCHEMA_VERSION).collect();
    assert_eq!(applied_versions(&url), every);
}
