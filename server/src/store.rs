//! [`AnyStore`]: the storage backend chosen at start-up, behind one concrete type that
//! implements [`Store`] by delegation, so handlers are not generic over the backend.

use managed_agents_core::storage::{
    Append, Appended, CatalogEntry, CatalogPage, CatalogQuery, Direction, Error, Kind, Record,
    Store, StreamId, Subscription, Version,
};
use managed_agents_storage_memory::MemoryStore;
use managed_agents_storage_postgres::PostgresStore;
use managed_agents_storage_rocksdb::{Memory, Options, RocksStore, Stats};

/// One of the storage backends.
#[derive(Clone)]
pub enum AnyStore {
    /// Everything in memory; nothing survives the process.
    Memory(MemoryStore),
    /// Durable RocksDB with group commit.
    Rocks(RocksStore),
    /// A PostgreSQL database several processes may share.
    Postgres(PostgresStore),
}

/// What bounds a RocksDB store's memory (`serve --rocksdb-memtable-budget`,
/// `--rocksdb-block-cache`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RocksMemory {
    /// See `Options::memtable_budget` (`None`: RocksDB's default).
    pub memtable_budget: Option<usize>,
    /// See `Options::block_cache`.
    pub block_cache: usize,
}

impl AnyStore {
    /// Opens (or creates) a RocksDB store in `dir` whose memory `memory` bounds.
    pub fn open_rocks(
        dir: &std::path::Path,
        memory: RocksMemory,
    ) -> Result<Self, managed_agents_storage_rocksdb::Error> {
        let mut options = Options::new(dir);
        options.memtable_budget = memory.memtable_budget;
        options.block_cache = memory.block_cache;
        RocksStore::open(options).map(AnyStore::Rocks)
    }

    /// Connects to the PostgreSQL database at `url` and migrates its schema.
    pub async fn open_postgres(url: &str) -> Result<Self, managed_agents_storage_postgres::Error> {
        PostgresStore::connect(managed_agents_storage_postgres::Options::new(url))
            .await
            .map(AnyStore::Postgres)
    }

    /// Group-commit counters, for RocksDB.
    pub fn stats(&self) -> Option<Stats> {
        match self {
            AnyStore::Memory(_) | AnyStore::Postgres(_) => None,
            AnyStore::Rocks(store) => Some(store.stats()),
        }
    }

    /// RocksDB's own memory figures, for RocksDB (`None` otherwise, or when they cannot be
    /// read: the database is closed).
    pub fn rocks_memory(&self) -> Option<Memory> {
        match self {
            AnyStore::Memory(_) | AnyStore::Postgres(_) => None,
            AnyStore::Rocks(store) => store.memory().ok(),
        }
    }
}

macro_rules! delegate {
    ($self:ident, $store:ident => $call:expr) => {
        match $self {
            AnyStore::Memory($store) => $call,
            AnyStore::Rocks($store) => $call,
            AnyStore::Postgres($store) => $call,
        }
    };
}

impl Store for AnyStore {
    async fn append(&self, append: Append) -> Result<Appended, Error> {
        delegate!(self, s => s.append(append).await)
    }

    async fn read(
        &self,
        stream: &StreamId,
        from: Version,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<Record>, Error> {
        delegate!(self, s => s.read(stream, from, direction, limit).await)
    }

    async fn head(&self, stream: &StreamId) -> Result<Version, Error> {
        delegate!(self, s => s.head(stream).await)
    }

    fn known_head(&self, stream: &StreamId) -> Option<Version> {
        delegate!(self, s => s.known_head(stream))
    }

    fn subscribe(&self, stream: &StreamId, after: Version) -> Subscription {
        delegate!(self, s => s.subscribe(stream, after))
    }

    async fn entry(&self, kind: Kind, id: &str) -> Result<Option<CatalogEntry>, Error> {
        delegate!(self, s => s.entry(kind, id).await)
    }

    async fn list(&self, query: &CatalogQuery) -> Result<CatalogPage, Error> {
        delegate!(self, s => s.list(query).await)
    }

    async fn delete(&self, kind: Kind, stream: &StreamId) -> Result<(), Error> {
        delegate!(self, s => s.delete(kind, stream).await)
    }

    async fn lease(
        &self,
        name: &str,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<Option<managed_agents_core::storage::Grant>, Error> {
        delegate!(self, s => s.lease(name, holder, ttl).await)
    }

    async fn release(&self, name: &str, holder: &str) -> Result<(), Error> {
        delegate!(self, s => s.release(name, holder).await)
    }
}
