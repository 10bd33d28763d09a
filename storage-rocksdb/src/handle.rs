//! The open database, shared by the readers and the writer thread, which can close and reopen it.
//!
//! RocksDB refuses every write after one failed for a full disk (it records a background error
//! and stays read-only until the database is reopened; the crate exposes neither `Resume` nor an
//! `SstFileManager`, which would let RocksDB recover by itself). So after a write fails with
//! [`storage::Error::Full`] the writer marks the database broken, and before its next batch it
//! checks that the disk has room again (a probe file written, synced and removed) and reopens
//! the database in place: the same as a restart of the store, without one. Every acknowledged
//! append is in the synced WAL, which the reopen replays; the write that failed was never
//! acknowledged, and its torn WAL tail is dropped by RocksDB's point-in-time recovery.
//!
//! Readers take the current database for the length of one read ([`Handle::get`]). A reopen
//! holds the slot's write lock: new reads wait for it, reads in progress finish on the old
//! database, which closes once the last of them let go. If the reopen fails (the disk filled
//! again), the database is opened read-only so reads go on, and the next write tries again.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use managed_agents_core::storage;
use rocksdb::DB;

use crate::{db, Compression, Error};

/// The probe written before a reopen: room for RocksDB's new MANIFEST and WAL headers and the
/// flush of what the WAL replays, with margin.
const PROBE_BYTES: usize = 1 << 20;
/// The probe's name inside the database directory (RocksDB ignores files it does not know).
const PROBE: &str = "managed-agents-space-probe";
/// How long a reopen waits for reads still using the old database.
const DRAIN: Duration = Duration::from_secs(30);

/// How to open the database again.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) path: PathBuf,
    pub(crate) compression: Compression,
    pub(crate) memtable_budget: Option<usize>,
    pub(crate) block_cache: usize,
}

impl Settings {
    pub(crate) fn open(&self) -> Result<DB, Error> {
        db::open(self)
    }
}

/// The current database (`None` only while neither a writable nor a read-only open succeeded).
pub(crate) struct Handle {
    slot: RwLock<Option<Arc<DB>>>,
    settings: Settings,
}

impl Handle {
    /// Opens the database.
    pub(crate) fn open(settings: Settings) -> Result<Self, Error> {
        let db = settings.open()?;
        Ok(Self::new(db, settings))
    }

    /// A handle over an already open `db`.
    pub(crate) fn new(db: DB, settings: Settings) -> Self {
        Self {
            slot: RwLock::new(Some(Arc::new(db))),
            settings,
        }
    }

    /// The database to read (or write) now.
    pub(crate) fn get(&self) -> Result<Arc<DB>, storage::Error> {
        self.slot
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| {
                storage::Error::Full(
                    "the database could not be reopened after a full disk; the next write \
                     tries again"
                        .into(),
                )
            })
    }

    /// Closes and reopens the database if the disk has room; `Err` with the reason otherwise.
    /// On failure the database is left open read-only when possible.
    pub(crate) fn reopen(&self) -> Result<(), storage::Error> {
        probe(&self.settings.path).map_err(|e| storage::Error::backend(e.to_string()))?;
        let mut slot = self.slot.write().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = slot.take() {
            close(old);
        }
        match self.settings.open() {
            Ok(db) => {
                *slot = Some(Arc::new(db));
                Ok(())
            }
            Err(error) => {
                let families = crate::keys::FAMILIES;
                *slot = DB::open_cf_for_read_only(
                    &rocksdb::Options::default(),
                    &self.settings.path,
                    families,
                    false,
                )
                .ok()
                .map(Arc::new);
                Err(storage::Error::backend(error.to_string()))
            }
        }
    }
}

/// Drops `db` once no read holds it any more (bounded by [`DRAIN`]; a read that outlives it
/// keeps the old database open, and the reopen then fails on RocksDB's lock and is retried).
fn close(db: Arc<DB>) {
    let started = Instant::now();
    while Arc::strong_count(&db) > 1 && started.elapsed() < DRAIN {
        std::thread::sleep(Duration::from_millis(1));
    }
    drop(db);
}

/// Whether `dir`'s disk has room: writes, syncs and removes [`PROBE_BYTES`].
fn probe(dir: &Path) -> std::io::Result<()> {
    let path = dir.join(PROBE);
    let written = (|| {
        let mut file = std::fs::File::create(&path)?;
        file.write_all(&vec![0u8; PROBE_BYTES])?;
        file.sync_all()
    })();
    let removed = std::fs::remove_file(&path);
    written?;
    removed
}

#[cfg(test)]
mod tests {
    use super::*;
    use managed_agents_core::storage::{Direction, StreamId};

    fn put(db: &DB, stream: &str, version: u64, payload: &str) {
        let family = db::family(db, crate::keys::EVENTS).expect("family");
        let mut sync = rocksdb::WriteOptions::default();
        sync.set_sync(true);
        let mut batch = rocksdb::WriteBatch::default();
        batch.put_cf(
            family,
            crate::keys::event(&StreamId::new(stream), version),
            payload,
        );
        db.write_opt(batch, &sync).expect("write");
    }

    #[test]
    fn a_reopen_keeps_every_synced_write_and_waits_for_reads_on_the_old_database() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let handle = Arc::new(
            Handle::open(Settings {
                path: dir.path().to_owned(),
                compression: Compression::default(),
                memtable_budget: None,
                block_cache: 1 << 20,
            })
            .expect("open"),
        );
        put(&handle.get().expect("db"), "sesn_a", 1, "one");
        // A read in progress holds the old database through the reopen.
        let reading = handle.get().expect("db");
        let reopening = {
            let handle = Arc::clone(&handle);
            std::thread::spawn(move || handle.reopen())
        };
        std::thread::sleep(Duration::from_millis(20));
        let read = db::read(
            &reading,
            &StreamId::new("sesn_a"),
            1,
            Direction::Forward,
            10,
        );
        assert_eq!(read.expect("read").len(), 1);
        drop(reading);
        reopening.join().expect("thread").expect("reopened");
        let db = handle.get().expect("db");
        put(&db, "sesn_a", 2, "two");
        let records =
            db::read(&db, &StreamId::new("sesn_a"), 1, Direction::Forward, 10).expect("read");
        let payloads: Vec<_> = records.iter().map(|r| r.payload.clone()).collect();
        assert_eq!(payloads, ["one", "two"]);
        assert!(!dir.path().join(PROBE).exists(), "the probe is removed");
    }
}
