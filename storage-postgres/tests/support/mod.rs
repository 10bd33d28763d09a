//! Test support: one throwaway PostgreSQL cluster per test process (kept until the process
//! exits, when the cluster script's stdin closes and it removes the cluster) and a fresh
//! database per store. A cluster that cannot start fails the test.

#![allow(dead_code, unreachable_pub)]

use std::sync::OnceLock;

use managed_agents_storage_postgres::cluster::Cluster;
use managed_agents_storage_postgres::{Options, PostgresStore};

pub use managed_agents_storage_postgres::cluster::admin as try_admin;

fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| Cluster::start().unwrap_or_else(|error| panic!("{error}")))
}

/// Runs administrative statements against `url`.
pub fn admin<T>(
    url: &str,
    work: impl AsyncFnOnce(&tokio_postgres::Client) -> Result<T, tokio_postgres::Error>,
) -> T {
    try_admin(url, work).expect("admin statement")
}

/// The URL of a new, empty database in this process's cluster.
pub fn fresh_database() -> String {
    cluster().create_database().expect("creating a database")
}

/// A store on a fresh database.
pub fn fresh_store() -> PostgresStore {
    open(&fresh_database(), Options::new)
}

/// A store on the database at `url`, with the options `options` makes from it.
pub fn open(url: &str, options: impl FnOnce(String) -> Options) -> PostgresStore {
    futures::executor::block_on(PostgresStore::connect(options(url.to_owned())))
        .expect("opening the store")
}
