//! The single writer thread and its group commit.
//!
//! Appenders and deleters send requests over a channel and await a oneshot ack; each request
//! holds a place of the bounded queue (`Options::max_queue`) until the writer takes it into a
//! batch, so appenders wait for room instead of queuing without bound. The writer
//! blocks for one request, drains whatever else is queued (never waiting on a timer), checks
//! each request against its head cache, builds one `WriteBatch` of everything it accepted,
//! writes it with one sync, then acknowledges every request and publishes the new records to the
//! [`Hub`] in version order. A rejected request never affects the others in its batch.
//!
//! Besides stream heads the writer caches catalog owners (which workspace an object's entry is
//! filed under), so re-filing an entry on each append costs no read. Both caches change only
//! after a batch is durable; a failed write clears them.
//!
//! A write that fails for a full disk leaves RocksDB refusing writes; the writer then reopens
//! the database before its next batch, once the disk has room ([`crate::handle`]). Until then
//! every batch is refused with [`storage::Error::Full`] without touching the database.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::Arc;

use async_lock::SemaphoreGuardArc;
use futures::channel::oneshot;
use managed_agents_core::storage::live::Hub;
use managed_agents_core::storage::{
    self, Append, Appended, Expected, Kind, Record, StreamId, Version,
};
use rocksdb::{ColumnFamily, WriteBatch, WriteOptions, DB};

use crate::handle::Handle;
use crate::known::Known;
use crate::stats::Counters;
use crate::{db, keys, Error};

/// A write the writer thread performs.
// Appends are nearly all the traffic; boxing them would add an allocation to each.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Request {
    /// Append a batch to one stream.
    Append {
        append: Append,
        ack: oneshot::Sender<Result<Appended, storage::Error>>,
    },
    /// Delete a stream, its events and its catalog entry of `kind`.
    Delete {
        kind: Kind,
        stream: StreamId,
        ack: oneshot::Sender<Result<(), storage::Error>>,
    },
    /// Stop after the requests queued before this one (sent when the store is dropped).
    Shutdown,
}

/// A request on its way to the writer, holding its place in the queue (none for the shutdown
/// the store sends as it drops).
pub(crate) struct Queued {
    pub(crate) request: Request,
    /// Given back when dropped.
    pub(crate) _place: Option<SemaphoreGuardArc>,
}

/// An accepted request waiting for its batch to be written.
enum Pending {
    Appended {
        stream: StreamId,
        records: Vec<Record>,
        appended: Appended,
        ack: oneshot::Sender<Result<Appended, storage::Error>>,
    },
    Deleted {
        stream: StreamId,
        ack: oneshot::Sender<Result<(), storage::Error>>,
    },
}

/// The writer thread's state.
pub(crate) struct Writer {
    pub(crate) db: Arc<Handle>,
    pub(crate) hub: Arc<Hub>,
    pub(crate) known: Arc<Known>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) requests: Receiver<Queued>,
    pub(crate) sync: bool,
    pub(crate) max_batch: usize,
    /// A write failed for a full disk: reopen before the next batch.
    pub(crate) broken: Cell<bool>,
}

/// Heads (and catalog owners) cached beyond this many streams are dropped and reloaded lazily.
const MAX_CACHED_HEADS: usize = 100_000;

/// An object's catalog owner: its workspace, `None` once its entry is removed.
type Owners = HashMap<(Kind, String), Option<String>>;

/// What one batch is building: the write, the heads and catalog owners it changes.
struct Batch<'a> {
    db: &'a DB,
    events_family: &'a ColumnFamily,
    catalog_family: &'a ColumnFamily,
    ids_family: &'a ColumnFamily,
    heads: &'a mut HashMap<StreamId, Version>,
    /// Catalog owners as of the last durable batch (a cache of `CATALOG_IDS`).
    owners: &'a Owners,
    /// Catalog owners changed by earlier requests of this batch (`None`: removed).
    staged_owners: Owners,
    write: WriteBatch,
    pending: Vec<Pending>,
    events: usize,
}

impl Writer {
    /// Runs until the store is dropped.
    pub(crate) fn run(self) {
        let mut heads = HashMap::new();
        let mut owners = Owners::new();
        let mut queue = Vec::with_capacity(self.max_batch);
        loop {
            match self.requests.recv() {
                Ok(request) => queue.push(request),
                Err(_) => return,
            }
            let mut stop = false;
            while queue.len() < self.max_batch {
                match self.requests.try_recv() {
                    Ok(request) => queue.push(request),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        stop = true;
                        break;
                    }
                }
            }
            if heads.len() > MAX_CACHED_HEADS {
                heads.clear();
            }
            if owners.len() > MAX_CACHED_HEADS {
                owners.clear();
            }
            // The batch takes its requests off the queue: their places go to waiting appenders.
            let requests = queue.drain(..).map(|q| q.request);
            stop |= match self.recover() {
                Ok(()) => self.commit(&mut heads, &mut owners, requests),
                Err(error) => self.fail_all(requests, &error),
            };
            if stop {
                return;
            }
        }
    }

    /// After a write failed for a full disk: reopens the database if the disk has room again.
    /// `Err`: the batch is refused (still no room, or the reopen failed).
    fn recover(&self) -> Result<(), storage::Error> {
        if !self.broken.get() {
            return Ok(());
        }
        self.db.reopen()?;
        self.broken.set(false);
        Ok(())
    }

    /// Writes one batch; returns whether a shutdown was requested.
    fn commit(
        &self,
        heads: &mut HashMap<StreamId, Version>,
        owners: &mut Owners,
        requests: impl Iterator<Item = Request>,
    ) -> bool {
        let db = match self.db.get() {
            Ok(db) => db,
            Err(error) => return self.fail_all(requests, &error),
        };
        let db = &*db;
        let families = (
            db::family(db, keys::EVENTS),
            db::family(db, keys::CATALOG),
            db::family(db, keys::CATALOG_IDS),
        );
        let (Ok(events_family), Ok(catalog_family), Ok(ids_family)) = families else {
            // Unreachable after a successful open, which creates every family.
            let error = storage::Error::Backend("a column family is missing".into());
            return self.fail_all(requests, &error);
        };
        let mut batch = Batch {
            db,
            events_family,
            catalog_family,
            ids_family,
            heads,
            owners,
            staged_owners: Owners::new(),
            write: WriteBatch::default(),
            pending: Vec::new(),
            events: 0,
        };
        let mut stop = false;
        for request in requests {
            match request {
                Request::Append { append, ack } => match batch.append(append) {
                    Ok((stream, records, appended)) => batch.pending.push(Pending::Appended {
                        stream,
                        records,
                        appended,
                        ack,
                    }),
                    Err(error) => {
                        self.counters.rejected();
                        let _ = ack.send(Err(error));
                    }
                },
                Request::Delete { kind, stream, ack } => match batch.delete(kind, &stream) {
                    Ok(()) => batch.pending.push(Pending::Deleted { stream, ack }),
                    Err(error) => {
                        self.counters.rejected();
                        let _ = ack.send(Err(error));
                    }
                },
                Request::Shutdown => stop = true,
            }
        }
        let Batch {
            write,
            pending,
            events,
            heads,
            staged_owners,
            ..
        } = batch;
        if pending.is_empty() {
            return stop;
        }
        let written = if write.is_empty() {
            Ok(())
        } else {
            let mut options = WriteOptions::default();
            options.set_sync(self.sync);
            db.write_opt(write, &options)
        };
        match written {
            Ok(()) => {
                owners.extend(staged_owners);
                self.counters.batch(pending.len(), events);
                // Known before anyone hears of the batch (`Store::known_head`).
                let mut known = self.known.record();
                for done in &pending {
                    match done {
                        Pending::Appended {
                            stream, appended, ..
                        } => known.appended(stream, appended.last),
                        Pending::Deleted { stream, .. } => known.deleted(stream),
                    }
                }
                drop(known);
                for done in pending {
                    self.acknowledge(done);
                }
            }
            Err(error) => {
                // Nothing of the batch was applied; reload heads and owners from the database.
                heads.clear();
                owners.clear();
                let error = storage::Error::backend(error.to_string());
                if matches!(error, storage::Error::Full(_)) {
                    self.broken.set(true);
                }
                for done in pending {
                    match done {
                        Pending::Appended { ack, .. } => {
                            let _ = ack.send(Err(error.clone()));
                        }
                        Pending::Deleted { ack, .. } => {
                            let _ = ack.send(Err(error.clone()));
                        }
                    }
                }
            }
        }
        stop
    }

    /// Fails every request (used when the batch cannot even be built); returns whether a
    /// shutdown was requested.
    fn fail_all(&self, requests: impl Iterator<Item = Request>, error: &storage::Error) -> bool {
        let mut stop = false;
        for request in requests {
            self.counters.rejected();
            match request {
                Request::Append { ack, .. } => {
                    let _ = ack.send(Err(error.clone()));
                }
                Request::Delete { ack, .. } => {
                    let _ = ack.send(Err(error.clone()));
                }
                Request::Shutdown => stop = true,
            }
        }
        stop
    }

    fn acknowledge(&self, done: Pending) {
        match done {
            Pending::Appended {
                stream,
                records,
                appended,
                ack,
            } => {
                let _ = ack.send(Ok(appended));
                self.hub.publish(&stream, &records);
            }
            Pending::Deleted { stream, ack } => {
                // Subscribers open now end before the deleter hears back: one that opens once
                // the delete returned follows the stream created again, and is not ended.
                self.hub.close(&stream);
                let _ = ack.send(Ok(()));
            }
        }
    }
}

impl Batch<'_> {
    fn head(&mut self, stream: &StreamId) -> Result<Version, storage::Error> {
        if let Some(head) = self.heads.get(stream) {
            return Ok(*head);
        }
        let head = db::head(self.db, stream)?;
        self.heads.insert(stream.clone(), head);
        Ok(head)
    }

    fn owner(&mut self, kind: Kind, id: &str) -> Result<Option<String>, storage::Error> {
        let key = (kind, id.to_owned());
        if let Some(owner) = self
            .staged_owners
            .get(&key)
            .or_else(|| self.owners.get(&key))
        {
            return Ok(owner.clone());
        }
        let owner = db::owner(self.db, kind, id)?;
        // Read from the database, so true whatever this batch does: keep it.
        self.staged_owners.insert(key, owner.clone());
        Ok(owner)
    }

    /// Checks and stages one append; returns its stream, records and versions.
    fn append(
        &mut self,
        append: Append,
    ) -> Result<(StreamId, Vec<Record>, Appended), storage::Error> {
        let head = self.head(&append.stream)?;
        if let Expected::Exactly(expected) = append.expected {
            if expected != head {
                return Err(storage::Error::WrongExpectedVersion {
                    stream: append.stream,
                    expected,
                    actual: head,
                });
            }
        }
        if let Some(entry) = &append.catalog {
            let encoded = serde_json::to_vec(entry)
                .map_err(|e| storage::Error::Backend(format!("encoding catalog entry: {e}")))?;
            let previous = self.owner(entry.kind, &entry.id)?;
            let (catalog, ids) = (self.catalog_family, self.ids_family);
            if let Some(previous) = previous.filter(|owner| *owner != entry.workspace) {
                self.write
                    .delete_cf(catalog, keys::catalog(entry.kind, &previous, &entry.id));
            }
            self.write.put_cf(
                catalog,
                keys::catalog(entry.kind, &entry.workspace, &entry.id),
                encoded,
            );
            self.write.put_cf(
                ids,
                keys::catalog_id(entry.kind, &entry.id),
                entry.workspace.as_bytes(),
            );
            self.staged_owners.insert(
                (entry.kind, entry.id.clone()),
                Some(entry.workspace.clone()),
            );
        }
        let events = self.events_family;
        let first = head + 1;
        let mut records = Vec::with_capacity(append.events.len());
        for (offset, payload) in append.events.into_iter().enumerate() {
            let version = first + offset as Version;
            self.write
                .put_cf(events, keys::event(&append.stream, version), &payload);
            records.push(Record { version, payload });
        }
        let last = head + records.len() as Version;
        self.events += records.len();
        // `head` above cached the stream, so this only updates (no key clone per append).
        match self.heads.get_mut(&append.stream) {
            Some(cached) => *cached = last,
            None => {
                self.heads.insert(append.stream.clone(), last);
            }
        }
        Ok((append.stream, records, Appended { first, last }))
    }

    /// Stages the deletion of a stream's events and its catalog entry of `kind`.
    fn delete(&mut self, kind: Kind, stream: &StreamId) -> Result<(), storage::Error> {
        let id = stream.as_str();
        let owner = self.owner(kind, id)?;
        let (events, catalog, ids) = (self.events_family, self.catalog_family, self.ids_family);
        self.write
            .delete_range_cf(events, keys::stream_start(stream), keys::stream_end(stream));
        if let Some(owner) = owner {
            self.write
                .delete_cf(catalog, keys::catalog(kind, &owner, id));
        }
        self.write.delete_cf(ids, keys::catalog_id(kind, id));
        self.staged_owners.insert((kind, id.to_owned()), None);
        self.heads.insert(stream.clone(), 0);
        Ok(())
    }
}

impl From<Error> for storage::Error {
    fn from(error: Error) -> Self {
        storage::Error::Backend(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use bytes::Bytes;
    use futures::executor::block_on;
    use managed_agents_core::storage::{CatalogEntry, Direction};
    use managed_agents_core::time::Timestamp;

    use super::*;

    fn append(stream: &str, expected: Expected, event: &str) -> (Request, AppendAck) {
        let (ack, acked) = oneshot::channel();
        let append = Append {
            stream: StreamId::new(stream),
            expected,
            events: vec![Bytes::from(event.to_owned())],
            catalog: Some(CatalogEntry::new(
                Kind::Session,
                stream,
                "ws",
                Timestamp::from_millis(1),
            )),
        };
        (Request::Append { append, ack }, acked)
    }

    type AppendAck = oneshot::Receiver<Result<Appended, storage::Error>>;

    /// One batch mixing accepted, rejected and deleting requests: each is judged against the
    /// state left by the requests before it, and a rejection leaves the others alone.
    #[test]
    fn one_batch_judges_each_request_in_order() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let settings = crate::handle::Settings {
            path: dir.path().to_owned(),
            compression: crate::Compression::default(),
            memtable_budget: None,
            block_cache: 1 << 20,
        };
        let handle = Arc::new(Handle::open(settings).expect("open"));
        let db = handle.get().expect("open");
        let (_tx, requests) = mpsc::channel();
        let writer = Writer {
            db: handle.clone(),
            hub: Arc::new(Hub::new()),
            known: Arc::default(),
            counters: Arc::new(Counters::default()),
            requests,
            sync: true,
            max_batch: 64,
            broken: Cell::new(false),
        };
        let (first, first_ack) = append("sesn_a", Expected::Exactly(0), "a1");
        let (stale, stale_ack) = append("sesn_a", Expected::Exactly(0), "stale");
        let (second, second_ack) = append("sesn_a", Expected::Exactly(1), "a2");
        let (other, other_ack) = append("sesn_b", Expected::Any, "b1");
        let (ack, deleted_ack) = oneshot::channel();
        let delete = Request::Delete {
            kind: Kind::Session,
            stream: StreamId::new("sesn_b"),
            ack,
        };
        let (again, again_ack) = append("sesn_b", Expected::Exactly(0), "b1 again");
        let mut heads = HashMap::new();
        let mut owners = Owners::new();
        let stop = writer.commit(
            &mut heads,
            &mut owners,
            vec![first, stale, second, other, delete, again].into_iter(),
        );
        assert!(!stop);

        let versions = |acked: AppendAck| {
            let appended = block_on(acked).expect("acked").expect("appended");
            (appended.first, appended.last)
        };
        assert_eq!(versions(first_ack), (1, 1));
        assert!(matches!(
            block_on(stale_ack).expect("acked"),
            Err(storage::Error::WrongExpectedVersion { actual: 1, .. })
        ));
        assert_eq!(versions(second_ack), (2, 2));
        assert_eq!(versions(other_ack), (1, 1));
        block_on(deleted_ack).expect("acked").expect("deleted");
        assert_eq!(versions(again_ack), (1, 1));

        let stats = writer.counters.snapshot();
        assert_eq!((stats.batches, stats.requests, stats.rejected), (1, 5, 1));
        let payloads = |stream: &str| -> Vec<Bytes> {
            db::read(&db, &StreamId::new(stream), 1, Direction::Forward, 10)
                .expect("read")
                .into_iter()
                .map(|r| r.payload)
                .collect()
        };
        assert_eq!(
            payloads("sesn_a"),
            vec![Bytes::from("a1"), Bytes::from("a2")]
        );
        assert_eq!(payloads("sesn_b"), vec![Bytes::from("b1 again")]);
        assert!(db::entry(&db, Kind::Session, "sesn_b")
            .expect("entry")
            .is_some());
        // The owners cache holds what the database holds once the batch is durable.
        for id in ["sesn_a", "sesn_b"] {
            assert_eq!(
                owners.get(&(Kind::Session, id.to_owned())),
                Some(&db::owner(&db, Kind::Session, id).expect("owner")),
                "{id}"
            );
        }
    }
}
