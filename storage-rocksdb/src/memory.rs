//! RocksDB's own account of its memory, read from its properties for metrics and the soak run:
//! what the memtables hold, what the shared block cache holds (and its bound), what open SST
//! files keep outside the cache, and how many SST files there are.
//!
//! These are RocksDB's figures, not the allocator's: how much of the process's heap RocksDB
//! holds in each of its bounded structures (the server's `malloc` is jemalloc, so its
//! statistics count all of them too).

use rocksdb::DB;

use crate::{db, keys, Error};

/// Deepest LSM level counted in [`Memory::sst_files`] (RocksDB's default `num_levels` is 7).
const LEVELS: usize = 7;

/// A snapshot of RocksDB's memory figures, summed over the column families.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Memory {
    /// Bytes in the active and immutable memtables (`rocksdb.cur-size-all-mem-tables`);
    /// bounded by `Options::memtable_budget` when set.
    pub memtables: u64,
    /// Bytes the shared block cache holds (`rocksdb.block-cache-usage`), index and filter
    /// blocks included.
    pub block_cache_usage: u64,
    /// Of those, bytes pinned (`rocksdb.block-cache-pinned-usage`): level 0's index and
    /// filter blocks and blocks under a live iterator.
    pub block_cache_pinned: u64,
    /// The block cache's bound (`rocksdb.block-cache-capacity`, `Options::block_cache`).
    pub block_cache_capacity: u64,
    /// Bytes open SST files keep outside the block cache (`rocksdb.estimate-table-readers-mem`).
    pub table_readers: u64,
    /// Live SST files (`rocksdb.num-files-at-level<N>`, every level).
    pub sst_files: u64,
}

/// Reads the figures from `db`.
pub(crate) fn read(db: &DB) -> Result<Memory, Error> {
    let mut memory = Memory::default();
    for (i, name) in keys::FAMILIES.iter().enumerate() {
        let family = db::family(db, name)?;
        let int = |property: &str| -> Result<u64, Error> {
            Ok(db.property_int_value_cf(family, property)?.unwrap_or(0))
        };
        memory.memtables += int("rocksdb.cur-size-all-mem-tables")?;
        memory.table_readers += int("rocksdb.estimate-table-readers-mem")?;
        for level in 0..LEVELS {
            memory.sst_files += int(&format!("rocksdb.num-files-at-level{level}"))?;
        }
        // Every family shares one block cache: read it once.
        if i == 0 {
            memory.block_cache_usage = int("rocksdb.block-cache-usage")?;
            memory.block_cache_pinned = int("rocksdb.block-cache-pinned-usage")?;
            memory.block_cache_capacity = int("rocksdb.block-cache-capacity")?;
        }
    }
    Ok(memory)
}

#[cfg(test)]
mod tests {
    use crate::{Options, RocksStore};
    use futures::executor::block_on;
    use managed_agents_core::storage::{Append, Expected, Store, StreamId};

    #[test]
    fn figures_follow_writes_flushes_and_the_cache_bound() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut options = Options::new(dir.path());
        options.block_cache = 3 << 20;
        let store = RocksStore::open(options).expect("the store opens");
        let empty = store.memory().expect("figures");
        assert_eq!(empty.block_cache_capacity, 3 << 20);
        assert_eq!(empty.sst_files, 0);
        let stream = StreamId::new("sesn_memory");
        block_on(store.append(Append {
            stream: stream.clone(),
            expected: Expected::Exactly(0),
            events: vec!["x".repeat(100_000).into()],
            catalog: None,
        }))
        .expect("the append");
        let written = store.memory().expect("figures");
        assert!(written.memtables > empty.memtables + 100_000, "{written:?}");
        store.flush().expect("the flush");
        let flushed = store.memory().expect("figures");
        assert!(flushed.sst_files >= 1, "{flushed:?}");
        assert!(flushed.memtables < written.memtables, "{flushed:?}");
    }
}
