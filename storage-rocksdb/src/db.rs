//! Opening the RocksDB database and every read: event ranges, stream heads and the catalog.
//!
//! Reads run on the caller's thread straight against RocksDB (memtable, block cache, page
//! cache); only writes go through the writer thread. A read never sees an event before its
//! batch is durable: RocksDB makes a write visible only after its WAL write (and fsync, with
//! sync on) returned.

use bytes::Bytes;
use managed_agents_core::storage::{
    CatalogEntry, CatalogPage, CatalogQuery, Direction, Kind, Order, Record, StreamId, Version,
};
use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, DBCompressionType, ReadOptions,
    DB,
};

use crate::handle::Settings;
use crate::keys;
use crate::{Compression, Error};

/// Opens (creating if needed) the database `settings` name and checks its format version.
/// Every column family reads through one LRU block cache of `settings.block_cache` bytes,
/// which holds the SST files' index and filter blocks too.
pub(crate) fn open(settings: &Settings) -> Result<DB, Error> {
    let compression = settings.compression;
    let mut options = rocksdb::Options::default();
    options.create_if_missing(true);
    if let Some(bytes) = settings.memtable_budget {
        options.set_db_write_buffer_size(bytes);
    }
    options.create_missing_column_families(true);
    compress(&mut options, compression);
    options.set_keep_log_file_num(4);
    let cache = Cache::new_lru_cache(settings.block_cache);
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(&cache);
    // Index and filter blocks count against the cache too (otherwise every open SST file keeps
    // its own outside any bound); level 0's stay pinned, as they are read on every lookup.
    table.set_cache_index_and_filter_blocks(true);
    table.set_pin_l0_filter_and_index_blocks_in_cache(true);
    options.set_block_based_table_factory(&table);
    let families = keys::FAMILIES.map(|name| {
        let mut family = rocksdb::Options::default();
        compress(&mut family, compression);
        family.set_block_based_table_factory(&table);
        ColumnFamilyDescriptor::new(name, family)
    });
    let db = DB::open_cf_descriptors(&options, &settings.path, families)?;
    let meta = family(&db, keys::META)?;
    match db.get_pinned_cf(meta, keys::FORMAT_KEY)? {
        Some(found) => {
            let found = <[u8; 4]>::try_from(&found[..])
                .map(u32::from_be_bytes)
                .map_err(|_| Error::Corrupt("format version is not a u32".into()))?;
            if found != keys::FORMAT_VERSION {
                return Err(Error::UnsupportedFormat {
                    found,
                    supported: keys::FORMAT_VERSION,
                });
            }
        }
        None => {
            let mut sync = rocksdb::WriteOptions::default();
            sync.set_sync(true);
            let mut batch = rocksdb::WriteBatch::default();
            batch.put_cf(meta, keys::FORMAT_KEY, keys::FORMAT_VERSION.to_be_bytes());
            db.write_opt(batch, &sync)?;
        }
    }
    Ok(db)
}

/// Applies `compression` to the options of a database or column family.
fn compress(options: &mut rocksdb::Options, compression: Compression) {
    let (recent, bottommost) = match compression {
        Compression::None => (DBCompressionType::None, DBCompressionType::None),
        Compression::Lz4 => (DBCompressionType::Lz4, DBCompressionType::Lz4),
        Compression::Zstd => (DBCompressionType::Zstd, DBCompressionType::Zstd),
        Compression::LogStore => (DBCompressionType::Lz4, DBCompressionType::Zstd),
    };
    options.set_compression_type(recent);
    options.set_bottommost_compression_type(bottommost);
}

/// Flushes every column family's memtable into SST files.
pub(crate) fn flush(db: &DB) -> Result<(), Error> {
    for name in keys::FAMILIES {
        db.flush_cf(family(db, name)?)?;
    }
    Ok(())
}

/// Flushes every column family's memtable and compacts its whole key range into the bottommost
/// level.
pub(crate) fn compact(db: &DB) -> Result<(), Error> {
    let mut compact = rocksdb::CompactOptions::default();
    compact.set_bottommost_level_compaction(rocksdb::BottommostLevelCompaction::Force);
    flush(db)?;
    for name in keys::FAMILIES {
        let family = family(db, name)?;
        db.compact_range_cf_opt(family, None::<&[u8]>, None::<&[u8]>, &compact);
    }
    Ok(())
}

/// The handle of column family `name`, which [`open`] created.
pub(crate) fn family<'a>(db: &'a DB, name: &str) -> Result<&'a ColumnFamily, Error> {
    db.cf_handle(name)
        .ok_or_else(|| Error::Corrupt(format!("column family {name} is missing")))
}

fn bounded(lower: Vec<u8>, upper: Vec<u8>) -> ReadOptions {
    let mut options = ReadOptions::default();
    options.set_iterate_lower_bound(lower);
    options.set_iterate_upper_bound(upper);
    options
}

fn record(key: &[u8], value: &[u8]) -> Result<Record, Error> {
    let version = keys::event_version(key)
        .ok_or_else(|| Error::Corrupt(format!("malformed event key {key:?}")))?;
    Ok(Record {
        version,
        payload: Bytes::copy_from_slice(value),
    })
}

/// Up to `limit` records of `stream` starting at `from` (inclusive) in `direction`.
pub(crate) fn read(
    db: &DB,
    stream: &StreamId,
    from: Version,
    direction: Direction,
    limit: usize,
) -> Result<Vec<Record>, Error> {
    let events = family(db, keys::EVENTS)?;
    let mut records = Vec::new();
    if limit == 0 {
        return Ok(records);
    }
    match direction {
        Direction::Forward => {
            let lower = keys::event(stream, from.max(1));
            let mut iter = db.raw_iterator_cf_opt(events, bounded(lower, keys::stream_end(stream)));
            iter.seek_to_first();
            while let (Some(key), Some(value)) = (iter.key(), iter.value()) {
                records.push(record(key, value)?);
                if records.len() == limit {
                    break;
                }
                iter.next();
            }
            iter.status()?;
        }
        Direction::Backward => {
            if from == 0 {
                return Ok(records);
            }
            let upper = match from.checked_add(1) {
                Some(next) => keys::event(stream, next),
                None => keys::stream_end(stream),
            };
            let mut iter =
                db.raw_iterator_cf_opt(events, bounded(keys::stream_start(stream), upper));
            iter.seek_to_last();
            while let (Some(key), Some(value)) = (iter.key(), iter.value()) {
                records.push(record(key, value)?);
                if records.len() == limit {
                    break;
                }
                iter.prev();
            }
            iter.status()?;
        }
    }
    Ok(records)
}

/// The version of `stream`'s last event (0 when it has none), from its last event key.
pub(crate) fn head(db: &DB, stream: &StreamId) -> Result<Version, Error> {
    let events = family(db, keys::EVENTS)?;
    let options = bounded(keys::stream_start(stream), keys::stream_end(stream));
    let mut iter = db.raw_iterator_cf_opt(events, options);
    iter.seek_to_last();
    let head = match iter.key() {
        Some(key) => keys::event_version(key)
            .ok_or_else(|| Error::Corrupt(format!("malformed event key {key:?}")))?,
        None => 0,
    };
    iter.status()?;
    Ok(head)
}

/// The workspace that owns object `id` of `kind`, if the catalog holds it.
pub(crate) fn owner(db: &DB, kind: Kind, id: &str) -> Result<Option<String>, Error> {
    let ids = family(db, keys::CATALOG_IDS)?;
    match db.get_pinned_cf(ids, keys::catalog_id(kind, id))? {
        Some(workspace) => String::from_utf8(workspace.to_vec())
            .map(Some)
            .map_err(|_| Error::Corrupt(format!("workspace of {id} is not UTF-8"))),
        None => Ok(None),
    }
}

fn decode(value: &[u8]) -> Result<CatalogEntry, Error> {
    serde_json::from_slice(value).map_err(|e| Error::Corrupt(format!("catalog entry: {e}")))
}

/// The catalog entry of object `id` of `kind`: an index lookup and one point read.
pub(crate) fn entry(db: &DB, kind: Kind, id: &str) -> Result<Option<CatalogEntry>, Error> {
    let Some(workspace) = owner(db, kind, id)? else {
        return Ok(None);
    };
    let catalog = family(db, keys::CATALOG)?;
    match db.get_pinned_cf(catalog, keys::catalog(kind, &workspace, id))? {
        Some(value) => decode(&value).map(Some),
        None => Err(Error::Corrupt(format!(
            "catalog index names {id} in {workspace} but the entry is missing"
        ))),
    }
}

/// One page of `query`: walks the (kind, workspace) range from the cursor in the query's order.
pub(crate) fn list(db: &DB, query: &CatalogQuery) -> Result<CatalogPage, Error> {
    let catalog = family(db, keys::CATALOG)?;
    let options = bounded(
        keys::catalog_start(query.kind, &query.workspace),
        keys::catalog_end(query.kind, &query.workspace),
    );
    let mut iter = db.raw_iterator_cf_opt(catalog, options);
    let cursor = query
        .after
        .as_ref()
        .map(|id| keys::catalog(query.kind, &query.workspace, id));
    let forward = query.order == Order::Asc;
    match (&cursor, forward) {
        (None, true) => iter.seek_to_first(),
        (None, false) => iter.seek_to_last(),
        (Some(cursor), true) => iter.seek(cursor),
        (Some(cursor), false) => iter.seek_for_prev(cursor),
    }
    if let (Some(cursor), Some(key)) = (&cursor, iter.key()) {
        if key == cursor.as_slice() {
            step(&mut iter, forward);
        }
    }
    let mut entries = Vec::new();
    let mut has_more = false;
    while let Some(value) = iter.value() {
        let entry = decode(value)?;
        if query.is_after_cursor(&entry.id) && query.matches(&entry) {
            if entries.len() == query.limit {
                has_more = true;
                break;
            }
            entries.push(entry);
        }
        step(&mut iter, forward);
    }
    iter.status()?;
    Ok(CatalogPage { entries, has_more })
}

fn step(iter: &mut rocksdb::DBRawIterator<'_>, forward: bool) {
    if forward {
        iter.next();
    } else {
        iter.prev();
    }
}
