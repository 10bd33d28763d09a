//! The managed-agents storage trait on RocksDB.
//!
//! Durable by default: an append resolves only after its batch's WAL write was fsynced. One
//! writer thread does group commit (see [`writer`](crate::writer)); reads go straight to
//! RocksDB on the caller's thread; subscriptions use the shared [`Hub`]. No async runtime is
//! needed: appends await a `futures` oneshot that any executor can drive. Key layouts are in
//! [`keys`](crate::keys).
//!
//! ```
//! use futures::executor::block_on;
//! use managed_agents_core::storage::{Append, Expected, Store, StreamId};
//! use managed_agents_storage_rocksdb::{Options, RocksStore};
//!
//! let dir = tempfile::tempdir()?;
//! let store = RocksStore::open(Options::new(dir.path()))?;
//! let stream = StreamId::new("sesn_doc");
//! let appended = block_on(store.append(Append {
//!     stream: stream.clone(),
//!     expected: Expected::Exactly(0),
//!     events: vec!["hello".into()],
//!     catalog: None,
//! }))?;
//! assert_eq!(appended.last, 1);
//! assert_eq!(block_on(store.head(&stream))?, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod db;
mod handle;
mod keys;
mod known;
mod memory;
mod stats;
mod writer;

use std::any::Any;
use std::path::PathBuf;
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use futures::channel::oneshot;
use managed_agents_core::storage::live::Hub;
use managed_agents_core::storage::{
    self, Append, Appended, CatalogEntry, CatalogPage, CatalogQuery, Direction, Kind, Record,
    Store, StreamId, Subscription, Version,
};

pub use memory::Memory;
pub use stats::{Stats, BUCKETS};

use async_lock::Semaphore;
use writer::{Queued, Request, Writer};

/// Failures opening a store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// RocksDB failed.
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    /// The store was written in a format this build does not read.
    #[error("store format version {found} is not supported (this build reads {supported})")]
    UnsupportedFormat {
        /// The format found on disk.
        found: u32,
        /// The format this build reads.
        supported: u32,
    },
    /// Stored data is not what this crate writes.
    #[error("corrupt store: {0}")]
    Corrupt(String),
    /// The database is closed: reopening it after a full disk failed.
    #[error("{0}")]
    Unavailable(String),
    /// The writer thread could not be started.
    #[error("starting the writer thread: {0}")]
    Spawn(#[from] std::io::Error),
}

/// How to open a [`RocksStore`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Options {
    /// The database directory (created if missing).
    pub path: PathBuf,
    /// Fsync the WAL before acknowledging an append (default true). Without it an
    /// acknowledged append survives a process crash but not a power loss.
    pub sync: bool,
    /// The most requests one group commit takes (default 4096).
    pub max_batch: usize,
    /// The most write requests (appends and deletes) waiting for the writer, queued or in the
    /// batch it is building (default 16384). An appender beyond it waits, without blocking
    /// its thread, until the writer takes a request off the queue: back-pressure instead of a
    /// queue that grows with whatever the writers send while the disk is slow.
    pub max_queue: usize,
    /// How SST files are compressed (default [`Compression::LogStore`]). Changing it on an
    /// existing store is safe: files are rewritten with the new setting as they compact.
    pub compression: Compression,
    /// Bytes the memtables of all column families may hold together before they are flushed
    /// (RocksDB's `db_write_buffer_size`); `None`: RocksDB's default, a flush per column family
    /// at 64 MiB. The process's memory grows with unflushed writes up to this.
    pub memtable_budget: Option<usize>,
    /// Bytes of the one LRU block cache every column family shares (default 32 MiB; RocksDB's
    /// own default is a cache of 32 MiB per column family). The process's memory grows with
    /// the SST blocks it reads up to this.
    pub block_cache: usize,
}

/// How SST files are compressed. The write-ahead log is never compressed, so the choice costs
/// nothing on the append path; it costs CPU in flushes, compactions and reads of cold blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Compression {
    /// No compression.
    None,
    /// LZ4 on every level.
    Lz4,
    /// Zstandard on every level.
    Zstd,
    /// LZ4 on the recent levels (fast flushes and reads of what sessions are reading) and
    /// Zstandard on the bottommost level, where a log store keeps nearly all of its bytes.
    #[default]
    LogStore,
}

impl Options {
    /// Durable defaults for a database at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            sync: true,
            max_batch: 4096,
            max_queue: 16_384,
            compression: Compression::default(),
            memtable_budget: None,
            block_cache: 32 << 20,
        }
    }
}

/// A store on RocksDB. Cheap to clone; clones share the database and the writer thread, which
/// stops when the last clone (including live subscriptions) is dropped.
#[derive(Clone)]
pub struct RocksStore {
    inner: Arc<Inner>,
}

struct Inner {
    requests: Sender<Queued>,
    /// Places in the writer's queue (`Options::max_queue`).
    room: Arc<Semaphore>,
    writer: Mutex<Option<JoinHandle<()>>>,
    db: Arc<handle::Handle>,
    hub: Arc<Hub>,
    /// Heads as of the last acknowledged appends.
    known: Arc<known::Known>,
    counters: Arc<stats::Counters>,
    /// Leases (one process opens the database, so they live in memory).
    leases: storage::LocalLeases,
    /// Dropped after the database closes (a test's temporary directory).
    _guard: Option<Box<dyn Any + Send + Sync>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let _ = self.requests.send(Queued {
            request: Request::Shutdown,
            _place: None,
        });
        let handle = self
            .writer
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }
}

impl RocksStore {
    /// Opens (or creates) the store at `options.path` and starts its writer thread. A store
    /// left by a killed process opens normally: RocksDB replays its WAL, and stream heads are
    /// read from the last event keys.
    pub fn open(options: Options) -> Result<Self, Error> {
        Self::open_guarded(options, None)
    }

    fn open_guarded(
        options: Options,
        guard: Option<Box<dyn Any + Send + Sync>>,
    ) -> Result<Self, Error> {
        let db = Arc::new(handle::Handle::open(handle::Settings {
            path: options.path.clone(),
            compression: options.compression,
            memtable_budget: options.memtable_budget,
            block_cache: options.block_cache,
        })?);
        let hub = Arc::new(Hub::new());
        let counters = Arc::new(stats::Counters::default());
        let known = Arc::new(known::Known::default());
        let (requests, receiver) = mpsc::channel();
        let writer = Writer {
            db: db.clone(),
            hub: hub.clone(),
            known: known.clone(),
            counters: counters.clone(),
            requests: receiver,
            sync: options.sync,
            max_batch: options.max_batch.max(1),
            broken: std::cell::Cell::new(false),
        };
        let handle = std::thread::Builder::new()
            .name("rocksdb-writer".into())
            .spawn(move || writer.run())?;
        Ok(Self {
            inner: Arc::new(Inner {
                requests,
                room: Arc::new(Semaphore::new(options.max_queue.max(1))),
                writer: Mutex::new(Some(handle)),
                db,
                hub,
                known,
                counters,
                leases: storage::LocalLeases::default(),
                _guard: guard,
            }),
        })
    }

    /// The writer's group-commit counters since the store was opened.
    pub fn stats(&self) -> Stats {
        self.inner.counters.snapshot()
    }

    /// RocksDB's own memory figures (memtables, block cache, table readers, SST files).
    pub fn memory(&self) -> Result<Memory, Error> {
        memory::read(&*self.db()?)
    }

    /// Writes the memtables out as SST files (the WAL already made every acknowledged append
    /// durable; this only moves it). For maintenance and measurement.
    pub fn flush(&self) -> Result<(), Error> {
        db::flush(&*self.db()?)
    }

    /// Flushes the memtables and compacts every column family down to the bottommost level,
    /// so that the files on disk hold every event once, in its final compression. For
    /// maintenance and measurement; the store compacts by itself in the background.
    pub fn compact(&self) -> Result<(), Error> {
        db::compact(&*self.db()?)
    }

    fn db(&self) -> Result<Arc<rocksdb::DB>, Error> {
        self.inner
            .db
            .get()
            .map_err(|e| Error::Unavailable(e.to_string()))
    }

    /// Queues `request` for the writer once the queue has room (see `Options::max_queue`).
    async fn send(&self, request: Request) -> Result<(), storage::Error> {
        let place = self.inner.room.acquire_arc().await;
        self.inner
            .requests
            .send(Queued {
                request,
                _place: Some(place),
            })
            .map_err(|_| storage::Error::Closed)
    }
}

impl Store for RocksStore {
    async fn append(&self, append: Append) -> Result<Appended, storage::Error> {
        let (ack, acked) = oneshot::channel();
        self.send(Request::Append { append, ack }).await?;
        acked.await.map_err(|_| storage::Error::Closed)?
    }

    async fn read(
        &self,
        stream: &StreamId,
        from: Version,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<Record>, storage::Error> {
        Ok(db::read(
            &*self.inner.db.get()?,
            stream,
            from,
            direction,
            limit,
        )?)
    }

    async fn head(&self, stream: &StreamId) -> Result<Version, storage::Error> {
        Ok(db::head(&*self.inner.db.get()?, stream)?)
    }

    fn known_head(&self, stream: &StreamId) -> Option<Version> {
        self.inner.known.get(stream)
    }

    fn subscribe(&self, stream: &StreamId, after: Version) -> Subscription {
        self.inner
            .hub
            .subscribe(self.clone(), stream.clone(), after)
    }

    async fn entry(&self, kind: Kind, id: &str) -> Result<Option<CatalogEntry>, storage::Error> {
        Ok(db::entry(&*self.inner.db.get()?, kind, id)?)
    }

    async fn list(&self, query: &CatalogQuery) -> Result<CatalogPage, storage::Error> {
        Ok(db::list(&*self.inner.db.get()?, query)?)
    }

    async fn delete(&self, kind: Kind, stream: &StreamId) -> Result<(), storage::Error> {
        let (ack, acked) = oneshot::channel();
        self.send(Request::Delete {
            kind,
            stream: stream.clone(),
            ack,
        })
        .await?;
        acked.await.map_err(|_| storage::Error::Closed)?
    }

    // The database's lock file keeps every other process out, so this process's table is
    // every lease there is.
    async fn lease(
        &self,
        name: &str,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<Option<storage::Grant>, storage::Error> {
        Ok(self.inner.leases.acquire(name, holder, ttl))
    }

    async fn release(&self, name: &str, holder: &str) -> Result<(), storage::Error> {
        self.inner.leases.release(name, holder);
        Ok(())
    }
}

#[cfg(test)]
mod conformance {
    use super::{Options, RocksStore};

    /// A store in a fresh temporary directory, removed when the store is dropped.
    fn fresh() -> RocksStore {
        let dir = tempfile::tempdir().expect("temporary directory");
        let options = Options::new(dir.path());
        RocksStore::open_guarded(options, Some(Box::new(dir))).expect("open store")
    }

    managed_agents_core::conformance_tests!(fresh());
}
