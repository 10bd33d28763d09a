//! Test support: one throwaway PostgreSQL cluster per test process (started by
//! `scripts/pg-cluster.sh`, stopped and removed when this process exits and the script's stdin
//! closes) and a fresh database per store. A cluster that cannot start fails the test.

#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use managed_agents_storage_postgres::{Options, PostgresStore};

/// The running cluster: its admin URL, and the script's stdin, held open for the process's life.
struct Cluster {
    url: String,
    _stdin: Mutex<ChildStdin>,
    _child: Mutex<Child>,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/pg-cluster.sh")
}

fn start() -> Cluster {
    let mut child = Command::new(script())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|error| panic!("cannot run {}: {error}", script().display()));
    let stdout = child.stdout.take().expect("the script's stdout");
    let mut url = String::new();
    BufReader::new(stdout)
        .read_line(&mut url)
        .expect("reading the cluster URL");
    let url = url.trim().to_owned();
    assert!(
        url.starts_with("postgres://"),
        "PostgreSQL did not start (scripts/pg-cluster.sh printed {url:?})"
    );
    let stdin = child.stdin.take().expect("the script's stdin");
    Cluster {
        url,
        _stdin: Mutex::new(stdin),
        _child: Mutex::new(child),
    }
}

fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(start)
}

/// Runs `work` on a one-off runtime with an admin connection to `url`.
pub fn admin<T>(
    url: &str,
    work: impl AsyncFnOnce(&tokio_postgres::Client) -> Result<T, tokio_postgres::Error>,
) -> T {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .expect("connecting to the test cluster");
        let driver = tokio::spawn(connection);
        let result = work(&client).await.expect("admin statement");
        drop(client);
        let _ = driver.await;
        result
    })
}

/// The URL of a new, empty database in this process's cluster.
pub fn fresh_database() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let cluster = cluster();
    let name = format!(
        "test_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    admin(&cluster.url, async |client| {
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
    });
    database_url(&cluster.url, &name)
}

/// `url` with its database replaced by `name`.
pub fn database_url(url: &str, name: &str) -> String {
    let base = url.rsplit_once('/').map_or(url, |(base, _)| base);
    format!("{base}/{name}")
}

/// A store on a fresh database.
pub fn fresh_store() -> PostgresStore {
    open(&fresh_database(), Options::new)
}

/// A store on the database at `url`, with `options` adjusted by `adjust`.
pub fn open(url: &str, options: impl FnOnce(String) -> Options) -> PostgresStore {
    futures::executor::block_on(PostgresStore::connect(options(url.to_owned())))
        .expect("opening the store")
}
