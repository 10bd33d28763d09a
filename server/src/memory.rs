//! Memory figures for `/metrics`, so that a growing resident set can be told apart: live heap
//! (jemalloc's `allocated`), pages the allocator keeps without live data in them (`active`,
//! `resident`, `retained` beyond `allocated`), and RocksDB's bounded caches and memtables.
//!
//! jemalloc is the binary's global allocator (`main.rs`) and, its symbols unprefixed, the C
//! library's `malloc` as well, so its statistics cover every allocation of the process: Rust's
//! and RocksDB's C++ (whose memtables and block cache are therefore part of `allocated`;
//! RocksDB's own figures say how much).

use managed_agents_storage_rocksdb::Memory;
use tikv_jemalloc_ctl::{epoch, stats};

use crate::metrics::sample;

/// jemalloc's statistics, in bytes, as of one refresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allocator {
    /// Bytes in live allocations.
    pub allocated: usize,
    /// Bytes in the pages that hold live allocations (`allocated` plus their free slots).
    pub active: usize,
    /// Bytes of jemalloc's metadata.
    pub metadata: usize,
    /// Bytes in physically resident pages jemalloc maps (active, metadata and dirty pages not
    /// yet returned to the system).
    pub resident: usize,
    /// Bytes in active extents jemalloc maps.
    pub mapped: usize,
    /// Bytes of virtual memory jemalloc kept after returning its pages to the system (not
    /// resident).
    pub retained: usize,
}

impl Allocator {
    /// Refreshes jemalloc's statistics (they are cached until the epoch advances) and reads
    /// them.
    pub fn read() -> Result<Self, tikv_jemalloc_ctl::Error> {
        epoch::advance()?;
        Ok(Self {
            allocated: stats::allocated::read()?,
            active: stats::active::read()?,
            metadata: stats::metadata::read()?,
            resident: stats::resident::read()?,
            mapped: stats::mapped::read()?,
            retained: stats::retained::read()?,
        })
    }
}

/// `managed_agents_jemalloc_*_bytes` gauges (nothing, with a warning, when jemalloc does not
/// answer).
pub fn render_allocator() -> String {
    let figures = match Allocator::read() {
        Ok(figures) => figures,
        Err(e) => {
            tracing::warn!(error = %e, "/metrics: jemalloc statistics not read");
            return String::new();
        }
    };
    let mut out = String::new();
    for (name, help, value) in [
        (
            "allocated",
            "Bytes in live allocations (jemalloc stats.allocated).",
            figures.allocated,
        ),
        (
            "active",
            "Bytes in pages holding live allocations (jemalloc stats.active).",
            figures.active,
        ),
        (
            "metadata",
            "Bytes of allocator metadata (jemalloc stats.metadata).",
            figures.metadata,
        ),
        (
            "resident",
            "Bytes in resident pages the allocator maps, dirty pages not yet returned included (jemalloc stats.resident).",
            figures.resident,
        ),
        (
            "mapped",
            "Bytes in active extents the allocator maps (jemalloc stats.mapped).",
            figures.mapped,
        ),
        (
            "retained",
            "Bytes of virtual memory the allocator kept after returning its pages to the system (jemalloc stats.retained).",
            figures.retained,
        ),
    ] {
        let name = format!("managed_agents_jemalloc_{name}_bytes");
        sample(&mut out, &name, "gauge", help, value);
    }
    out
}

/// `managed_agents_rocksdb_*` gauges from RocksDB's own figures.
pub fn render_rocksdb(memory: &Memory) -> String {
    let mut out = String::new();
    for (name, help, value) in [
        (
            "managed_agents_rocksdb_memtable_bytes",
            "Bytes in RocksDB's memtables, every column family (rocksdb.cur-size-all-mem-tables).",
            memory.memtables,
        ),
        (
            "managed_agents_rocksdb_block_cache_usage_bytes",
            "Bytes in RocksDB's shared block cache, index and filter blocks included (rocksdb.block-cache-usage).",
            memory.block_cache_usage,
        ),
        (
            "managed_agents_rocksdb_block_cache_pinned_bytes",
            "Bytes pinned in RocksDB's block cache (rocksdb.block-cache-pinned-usage).",
            memory.block_cache_pinned,
        ),
        (
            "managed_agents_rocksdb_block_cache_capacity_bytes",
            "The bound of RocksDB's block cache (rocksdb.block-cache-capacity).",
            memory.block_cache_capacity,
        ),
        (
            "managed_agents_rocksdb_table_readers_bytes",
            "Bytes open SST files keep outside the block cache (rocksdb.estimate-table-readers-mem).",
            memory.table_readers,
        ),
        (
            "managed_agents_rocksdb_sst_files",
            "Live SST files, every column family and level.",
            memory.sst_files,
        ),
    ] {
        sample(&mut out, name, "gauge", help, value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocator_figures_are_ordered_and_rendered() {
        let figures = Allocator::read().expect("jemalloc answers");
        // One refresh: a consistent snapshot.
        assert!(figures.allocated <= figures.active, "{figures:?}");
        assert!(figures.active <= figures.mapped, "{figures:?}");
        let text = render_allocator();
        for name in [
            "allocated",
            "active",
            "metadata",
            "resident",
            "mapped",
            "retained",
        ] {
            let series = format!("managed_agents_jemalloc_{name}_bytes ");
            assert!(
                text.lines().any(|l| l.starts_with(&series)),
                "{name}: {text}"
            );
        }
    }

    #[test]
    fn rocksdbs_heap_is_inside_jemallocs_figures() {
        use futures::executor::block_on;
        use managed_agents_core::storage::{Append, Expected, Store, StreamId};
        use managed_agents_storage_rocksdb::{Options, RocksStore};

        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = RocksStore::open(Options::new(dir.path())).expect("the store opens");
        block_on(store.append(Append {
            stream: StreamId::new("sesn_heap"),
            expected: Expected::Exactly(0),
            events: vec!["x".repeat(1 << 20).into()],
            catalog: None,
        }))
        .expect("the append");
        let rocks = store.memory().expect("RocksDB's figures");
        let heap = Allocator::read().expect("jemalloc answers");
        assert!(rocks.memtables >= 1 << 20, "{rocks:?}");
        // RocksDB's memtables are live C++ allocations: jemalloc counts them only if it is the
        // C library's `malloc` (a prefixed jemalloc would leave them to glibc's).
        assert!(
            heap.allocated as u64 >= rocks.memtables + rocks.block_cache_usage,
            "{heap:?} {rocks:?}"
        );
    }

    #[test]
    fn rocksdb_figures_are_rendered_as_gauges() {
        let text = render_rocksdb(&Memory {
            memtables: 1,
            block_cache_usage: 2,
            block_cache_pinned: 3,
            block_cache_capacity: 4,
            table_readers: 5,
            sst_files: 6,
        });
        assert!(
            text.contains("\nmanaged_agents_rocksdb_memtable_bytes 1\n"),
            "{text}"
        );
        assert!(text.contains("\nmanaged_agents_rocksdb_block_cache_capacity_bytes 4\n"));
        assert!(text.contains("\nmanaged_agents_rocksdb_sst_files 6\n"));
        assert_eq!(text.matches("# TYPE ").count(), 6);
    }
}
