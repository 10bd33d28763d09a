//! The managed-agents storage trait on PostgreSQL, for several processes sharing one database.
//!
//! Every append is one statement (one transaction) that advances the stream's head row only if it is at the
//! expected version (so the database, not a process, fences writers), inserts the events under
//! the `(stream, version)` primary key and writes the catalog entry; a `NOTIFY` follows the
//! commit. The
//! schema is migrated at start-up ([`schema`](crate::schema)). Subscriptions read the table
//! from their cursor whenever a notification, a local commit or the safety poll wakes them
//! ([`subscription`](crate::subscription), [`notify`](crate::notify)).
//!
//! The store owns a small tokio runtime for its connections: its futures and subscriptions are
//! plain channels that any executor can drive, like the other backends'.

mod catalog;
#[cfg(feature = "cluster")]
pub mod cluster;
mod events;
mod leases;
mod notify;
mod schema;
mod subscription;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use managed_agents_core::storage::{
    self, Append, Appended, CatalogEntry, CatalogPage, CatalogQuery, Direction, Kind, Record,
    Store, StreamId, Subscription, Version,
};
use tokio_postgres::NoTls;

use notify::Wakers;

pub use schema::LATEST as SCHEMA_VERSION;

/// Failures opening a store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database URL does not parse.
    #[error("invalid database URL: {0}")]
    Url(#[source] tokio_postgres::Error),
    /// The store's runtime could not be started.
    #[error("starting the database runtime: {0}")]
    Runtime(#[from] std::io::Error),
    /// The connection pool could not be built.
    #[error("building the connection pool: {0}")]
    Pool(String),
    /// Connecting, migrating or listening failed.
    #[error("database: {0}")]
    Database(#[from] storage::Error),
}

/// How to open a [`PostgresStore`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Options {
    /// The connection URL (`postgres://user:password@host:port/database`); TLS is not used.
    pub url: String,
    /// The most connections the pool opens (default 16), besides the one that listens.
    pub max_connections: usize,
    /// How often an idle subscription reads the table even without a notification (default 5
    /// s): the bound on delivery delay should a notification be lost.
    pub safety_poll: Duration,
}

impl Options {
    /// Defaults for the database at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            max_connections: 16,
            safety_poll: Duration::from_secs(5),
        }
    }
}

/// The runtime the store's connections run on; shut down without waiting when the last store
/// handle is dropped (which may happen inside another runtime).
struct OwnedRuntime(Option<tokio::runtime::Runtime>);

impl Drop for OwnedRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// What the tasks on the runtime share (never the runtime itself).
struct Shared {
    pool: Pool,
    wakers: Arc<Wakers>,
    /// Streams to notify other processes about (see [`notify::spawn_notifier`]).
    notifier: tokio::sync::mpsc::UnboundedSender<StreamId>,
    safety_poll: Duration,
}

impl Shared {
    /// After a commit that changed `stream`: wakes this process's subscribers now and queues the
    /// notification for other processes.
    fn changed(&self, stream: StreamId) {
        self.wakers.wake(&stream);
        // Fails only once the notifier is gone, i.e. the store is shutting down.
        let _ = self.notifier.send(stream);
    }
}

/// A [`Store`] on a PostgreSQL database. Cheap to clone.
#[derive(Clone)]
pub struct PostgresStore {
    shared: Arc<Shared>,
    handle: tokio::runtime::Handle,
    _runtime: Arc<OwnedRuntime>,
}

impl PostgresStore {
    /// Connects to the database, applies pending migrations and starts listening for
    /// notifications. Any executor may drive it.
    pub async fn connect(options: Options) -> Result<Self, Error> {
        let config: tokio_postgres::Config = options.url.parse().map_err(Error::Url)?;
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 4));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .thread_name("postgres-store")
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        let runtime = Arc::new(OwnedRuntime(Some(runtime)));
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.max_connections.max(1))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|error| Error::Pool(error.to_string()))?;
        let wakers = Arc::new(Wakers::default());
        let notifier = {
            let _entered = handle.enter();
            notify::spawn_notifier(pool.clone())
        };
        let shared = Arc::new(Shared {
            pool,
            wakers: wakers.clone(),
            notifier,
            safety_poll: options.safety_poll,
        });
        let store = Self {
            shared,
            handle,
            _runtime: runtime,
        };
        let pool = store.shared.pool.clone();
        store
            .run(async move {
                let mut client = pool.get().await.map_err(pool_error)?;
                schema::migrate(&mut client).await.map_err(backend)?;
                Ok(())
            })
            .await?;
        let (ready_tx, ready) = tokio::sync::oneshot::channel();
        store
            .handle
            .spawn(notify::listen(config, Arc::downgrade(&wakers), ready_tx));
        ready
            .await
            .map_err(|_| storage::Error::Closed)
            .and_then(|ready| ready)?;
        Ok(store)
    }

    /// The backend pid of the connection that listens for notifications (for operators and
    /// tests: terminating it makes the store reconnect), `None` while it reconnects.
    pub fn listener_pid(&self) -> Option<i32> {
        self.shared.wakers.listener_pid()
    }

    /// Runs `work` on the store's runtime and awaits it from any executor.
    async fn run<T: Send + 'static>(
        &self,
        work: impl Future<Output = Result<T, storage::Error>> + Send + 'static,
    ) -> Result<T, storage::Error> {
        match self.handle.spawn(work).await {
            Ok(result) => result,
            Err(error) if error.is_cancelled() => Err(storage::Error::Closed),
            Err(error) => Err(storage::Error::Backend(format!(
                "a database task failed: {error}"
            ))),
        }
    }
}

/// A database error as the store contract's backend failure.
fn backend(error: impl std::fmt::Display) -> storage::Error {
    storage::Error::backend(error.to_string())
}

/// A pool failure (no connection to be had) as a backend failure.
fn pool_error(error: deadpool_postgres::PoolError) -> storage::Error {
    storage::Error::Backend(format!("no database connection: {error}"))
}

impl Store for PostgresStore {
    async fn append(&self, append: Append) -> Result<Appended, storage::Error> {
        let shared = self.shared.clone();
        self.run(async move {
            let client = shared.pool.get().await.map_err(pool_error)?;
            let appended = events::append(&client, &append).await?;
            if appended.last >= appended.first {
                shared.changed(append.stream);
            }
            Ok(appended)
        })
        .await
    }

    async fn read(
        &self,
        stream: &StreamId,
        from: Version,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<Record>, storage::Error> {
        let shared = self.shared.clone();
        let stream = stream.clone();
        self.run(async move {
            let client = shared.pool.get().await.map_err(pool_error)?;
            events::read(&client, &stream, from, direction, limit).await
        })
        .await
    }

    async fn head(&self, stream: &StreamId) -> Result<Version, storage::Error> {
        let shared = self.shared.clone();
        let stream = stream.clone();
        self.run(async move {
            let client = shared.pool.get().await.map_err(pool_error)?;
            Ok(events::head_row(&client, &stream).await?.unwrap_or(0))
        })
        .await
    }

    fn subscribe(&self, stream: &StreamId, after: Version) -> Subscription {
        let _entered = self.handle.enter();
        let receiver = subscription::spawn(
            self.shared.pool.clone(),
            self.shared.wakers.clone(),
            stream.clone(),
            after,
            self.shared.safety_poll,
        );
        Box::pin(futures::stream::unfold(
            receiver,
            |mut receiver| async move { receiver.recv().await.map(|item| (item, receiver)) },
        ))
    }

    async fn entry(&self, kind: Kind, id: &str) -> Result<Option<CatalogEntry>, storage::Error> {
        let shared = self.shared.clone();
        let id = id.to_owned();
        self.run(async move {
            let client = shared.pool.get().await.map_err(pool_error)?;
            catalog::get(&client, kind, &id).await
        })
        .await
    }

    async fn list(&self, query: &CatalogQuery) -> Result<CatalogPage, storage::Error> {
        let shared = self.shared.clone();
        let query = query.clone();
        self.run(async move {
            let client = shared.pool.get().await.map_err(pool_error)?;
            let mut entries = catalog::list(&client, &query).await?;
            let has_more = entries.len() > query.limit;
            entries.truncate(query.limit);
            Ok(CatalogPage { entries, has_more })
        })
        .await
    }

    async fn delete(&self, kind: Kind, stream: &StreamId) -> Result<(), storage::Error> {
        let shared = self.shared.clone();
        let stream = stream.clone();
        self.run(async move {
            let mut client = shared.pool.get().await.map_err(pool_error)?;
            events::delete(&mut client, kind, &stream).await?;
            // This store's subscribers of the stream end before the delete returns.
            shared.wakers.deleted(&stream);
            shared.changed(stream);
            Ok(())
        })
        .await
    }

    async fn lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<storage::Grant>, storage::Error> {
        let shared = self.shared.clone();
        let (name, holder) = (name.to_owned(), holder.to_owned());
        self.run(async move {
            let client = shared.pool.get().await.map_err(pool_error)?;
            leases::acquire(&client, &name, &holder, ttl).await
        })
        .await
    }

    async fn release(&self, name: &str, holder: &str) -> Result<(), storage::Error> {
        let shared = self.shared.clone();
        let (name, holder) = (name.to_owned(), holder.to_owned());
        self.run(async move {
            let client = shared.pool.get().await.map_err(pool_error)?;
            leases::release(&client, &name, &holder).await
        })
        .await
    }
}
