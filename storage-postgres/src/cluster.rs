//! A throwaway PostgreSQL cluster for tests and benchmarks (feature `cluster`): runs
//! `scripts/pg-cluster.sh` of this repository (initdb in a temporary directory as an
//! unprivileged user, a server on a free loopback port) and keeps its stdin open; dropping the
//! [`Cluster`], or this process ending, closes it, and the script stops the server and removes
//! the directory.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Failures starting a cluster or creating a database in it.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The script could not be run or read.
    #[error("running {script}: {source}")]
    Script {
        /// The script's path.
        script: String,
        /// What failed.
        source: std::io::Error,
    },
    /// The script ended without printing a URL (its stderr says why).
    #[error("PostgreSQL did not start (scripts/pg-cluster.sh printed {0:?})")]
    NotStarted(String),
    /// An administrative statement failed.
    #[error("{0}")]
    Admin(String),
}

/// A running throwaway cluster.
pub struct Cluster {
    url: String,
    child: Child,
}

impl Cluster {
    /// The script that starts clusters.
    pub fn script() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/pg-cluster.sh")
    }

    /// Starts a cluster and waits until it accepts connections.
    pub fn start() -> Result<Self, ClusterError> {
        let script = Self::script();
        let io = |source| ClusterError::Script {
            script: script.display().to_string(),
            source,
        };
        let mut child = Command::new(&script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(io)?;
        let mut url = String::new();
        if let Some(stdout) = child.stdout.take() {
            BufReader::new(stdout).read_line(&mut url).map_err(io)?;
        }
        let url = url.trim().to_owned();
        let cluster = Self { url, child };
        if !cluster.url.starts_with("postgres://") {
            return Err(ClusterError::NotStarted(cluster.url.clone()));
        }
        Ok(cluster)
    }

    /// The URL of the cluster's `postgres` database (superuser `postgres`, no password).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Creates a new, empty database and returns its URL.
    pub fn create_database(&self) -> Result<String, ClusterError> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "db_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let statement = format!("CREATE DATABASE {name}");
        admin(&self.url, async |client| {
            client.batch_execute(&statement).await
        })?;
        Ok(database_url(&self.url, &name))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Closing stdin tells the script to stop the server and remove its directory.
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// `url` with its database replaced by `name`.
pub fn database_url(url: &str, name: &str) -> String {
    let base = url.rsplit_once('/').map_or(url, |(base, _)| base);
    format!("{base}/{name}")
}

/// Runs `work` with a fresh connection to `url` on a one-off runtime (for administrative
/// statements from synchronous code).
pub fn admin<T>(
    url: &str,
    work: impl AsyncFnOnce(&tokio_postgres::Client) -> Result<T, tokio_postgres::Error>,
) -> Result<T, ClusterError> {
    let fail = |error: &dyn std::fmt::Display| ClusterError::Admin(error.to_string());
    // The server's own message ("db error" alone says nothing).
    let failed = |error: tokio_postgres::Error| match error.as_db_error() {
        Some(db) => ClusterError::Admin(format!("{}: {}", db.code().code(), db.message())),
        None => fail(&error),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| fail(&error))?;
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .map_err(failed)?;
        let driver = tokio::spawn(connection);
        let result = work(&client).await.map_err(failed);
        drop(client);
        let _ = driver.await;
        result
    })
}
