//! The storage contract: versioned event streams, a catalog of objects, and gap-free
//! subscriptions.
//!
//! A *stream* is the append-only log of one object (an agent, a session, …) keyed by the
//! object's id. Events in a stream have dense versions starting at 1. Every append names the
//! version it expects, which fences concurrent writers without locks. The *catalog* indexes
//! objects for listing; a catalog entry is written atomically with the append that changes it.
//!
//! Payloads are opaque bytes to the store (the domain encodes them as JSON). Backends implement
//! [`Store`]; [`live::Hub`] gives every backend the same subscription semantics, and the
//! `conformance` feature holds the suite every backend must pass (fixed cases in `conformance`,
//! random command sequences against a reference model in `properties`).

mod catalog;
pub mod lease;
pub mod live;

#[cfg(feature = "conformance")]
pub mod conformance;
#[cfg(feature = "conformance")]
pub mod properties;

use std::fmt;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;

pub use catalog::{CatalogEntry, CatalogPage, CatalogQuery, Kind, Order, TimeRange};
pub use lease::{Grant, LocalLeases};

/// A version within one stream: the first event is 1; an absent or empty stream is at 0.
pub type Version = u64;

/// The key of one stream: the id of the object whose log it is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId(String);

impl StreamId {
    /// The stream of the object with id `id`.
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    /// The stream key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<T: AsRef<str>> From<&T> for StreamId {
    fn from(id: &T) -> Self {
        Self(id.as_ref().to_owned())
    }
}

/// What an appender believes the stream's current version is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    /// Append whatever the current version is.
    Any,
    /// The stream must be exactly at this version (0: it must not exist yet).
    Exactly(Version),
}

/// One stored event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Its version in its stream.
    pub version: Version,
    /// The encoded event.
    pub payload: Bytes,
}

/// A batch to append to one stream, all or nothing.
#[derive(Debug, Clone)]
pub struct Append {
    /// The stream to append to.
    pub stream: StreamId,
    /// The version the stream must be at.
    pub expected: Expected,
    /// The encoded events, in order. May be empty to update only the catalog.
    pub events: Vec<Bytes>,
    /// The object's catalog entry after this append, written in the same atomic batch.
    pub catalog: Option<CatalogEntry>,
}

/// The versions an append was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Version of the first appended event (equal to `last + 1` for an empty batch).
    pub first: Version,
    /// The stream's version after the append.
    pub last: Version,
}

/// Which way a range read walks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Ascending versions starting at `from` (inclusive).
    Forward,
    /// Descending versions starting at `from` (inclusive; `Version::MAX` means the end).
    Backward,
}

/// Everything that can go wrong in a store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The stream was not at the expected version; nothing was written.
    #[error("stream {stream} is at version {actual}, expected {expected}")]
    WrongExpectedVersion {
        /// The stream appended to.
        stream: StreamId,
        /// The version the append expected.
        expected: Version,
        /// The version the stream is actually at.
        actual: Version,
    },
    /// The stream was deleted while a subscription followed it.
    #[error("stream {0} was deleted")]
    Deleted(StreamId),
    /// The store is shut down.
    #[error("the store is closed")]
    Closed,
    /// The backend failed (disk, corruption, …).
    #[error("storage backend failure: {0}")]
    Backend(String),
    /// The backend's disk is full: nothing of the request was written.
    #[error("the store's disk is full: {0}")]
    Full(String),
}

impl Error {
    /// A backend failure from its message: [`Error::Full`] when the operating system said the
    /// disk is full (`ENOSPC`, as RocksDB and PostgreSQL report it), else [`Error::Backend`].
    pub fn backend(detail: impl Into<String>) -> Self {
        let detail = detail.into();
        if detail.contains("No space left on device") {
            Error::Full(detail)
        } else {
            Error::Backend(detail)
        }
    }
}

/// A stream of records that first replays history and then follows live appends.
pub type Subscription = futures::stream::BoxStream<'static, Result<Record, Error>>;

/// The storage contract every backend implements and the conformance suite checks.
///
/// Cheap to clone: implementations are handles around shared state.
pub trait Store: Clone + Send + Sync + 'static {
    /// Appends a batch to one stream if it is at the expected version. Resolves only once the
    /// batch is durable under the backend's sync policy; subscribers never see it before that.
    fn append(&self, append: Append) -> impl Future<Output = Result<Appended, Error>> + Send;

    /// Reads up to `limit` records of `stream` starting at `from` in `direction`.
    fn read(
        &self,
        stream: &StreamId,
        from: Version,
        direction: Direction,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Record>, Error>> + Send;

    /// The stream's current version (0 when it does not exist).
    fn head(&self, stream: &StreamId) -> impl Future<Output = Result<Version, Error>> + Send;

    /// The stream's head as this store already knows it, without IO: `Some(v)` only if no
    /// record above `v` was acknowledged to anyone before the call (every append and delete
    /// through this store included), so a reader holding a fold at `v` has nothing to read.
    /// `None` when the store cannot tell (the default; a store other processes write to).
    fn known_head(&self, _stream: &StreamId) -> Option<Version> {
        None
    }

    /// Every record after version `after`, exactly once and in order: history first, then live
    /// appends. A subscriber slower than the live buffer reads history instead of losing events.
    /// Ends with [`Error::Deleted`] when the stream is deleted.
    fn subscribe(&self, stream: &StreamId, after: Version) -> Subscription;

    /// One catalog entry by kind and id.
    fn entry(
        &self,
        kind: Kind,
        id: &str,
    ) -> impl Future<Output = Result<Option<CatalogEntry>, Error>> + Send;

    /// One page of catalog entries matching `query`.
    fn list(&self, query: &CatalogQuery)
        -> impl Future<Output = Result<CatalogPage, Error>> + Send;

    /// Deletes a stream, all its events and its catalog entry (of `kind`). Subscribers end.
    fn delete(
        &self,
        kind: Kind,
        stream: &StreamId,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Grants or renews the lease `name` to `holder` for `ttl`, by the store's clock: granted
    /// when nobody holds it, when its holder let it lapse, or when `holder` holds it already.
    /// `None` while another holder's lease runs. When the lease passes to another holder its
    /// token is greater than every token granted before, for any name (see [`lease`]).
    fn lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> impl Future<Output = Result<Option<Grant>, Error>> + Send;

    /// Ends `holder`'s lease `name` at once; nothing when another holds it.
    fn release(&self, name: &str, holder: &str) -> impl Future<Output = Result<(), Error>> + Send;
}

/// Reads a whole stream forward in pages of `page` records.
pub async fn read_all<S: Store>(store: &S, stream: &StreamId) -> Result<Vec<Record>, Error> {
    const PAGE: usize = 4096;
    let mut all = Vec::new();
    loop {
        let from = all.len() as Version + 1;
        let batch = store.read(stream, from, Direction::Forward, PAGE).await?;
        let done = batch.len() < PAGE;
        all.extend(batch);
        if done {
            return Ok(all);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Error;

    #[test]
    fn a_full_disk_is_told_apart_from_other_backend_failures() {
        let rocksdb = "IO error: No space left on device: While appending to file: db/000004.log: No space left on device";
        assert!(matches!(Error::backend(rocksdb), Error::Full(d) if d == rocksdb));
        let postgres = "could not extend file \"base/16384/2619\": No space left on device";
        assert!(matches!(Error::backend(postgres), Error::Full(_)));
        let other = "Corruption: block checksum mismatch";
        assert!(matches!(Error::backend(other), Error::Backend(d) if d == other));
    }
}
