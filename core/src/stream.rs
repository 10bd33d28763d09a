//! The one write primitive every stream shares: catch a folded head up from the log, decide,
//! append at the expected version with the refreshed catalog entry, and retry a lost race a
//! bounded number of times.
//!
//! Sessions, agents, environments, vaults, credentials and name claims are all folds over
//! their streams ([`Fold`]). A writer keeps (or loads) a [`Head`]: the folded state at a
//! stream version. [`write`] reads only the records after the head's version, hands the
//! caught-up state to the caller's `decide`, appends its records at exactly the head's
//! version and, when another writer got there first (`WrongExpectedVersion`), catches up and
//! decides again, at most [`RETRIES`] times. The store publishes an append to subscribers once
//! it is durable, so publishing needs nothing more here.
//!
//! Everything is generic over [`Store`] and needs no async runtime: the HTTP server, the
//! harness and embedded programs write through the same function.
//!
//! ```
//! use managed_agents_core::environment::{self, Environment};
//! use managed_agents_core::ids::{EnvironmentId, WorkspaceId};
//! use managed_agents_core::storage::{Store, StreamId};
//! use managed_agents_core::stream::{self, Head};
//! use managed_agents_core::time::Timestamp;
//!
//! # async fn demo<S: Store>(store: &S) -> Result<(), Box<dyn std::error::Error>> {
//! let now = Timestamp::now();
//! let id = EnvironmentId::generate(now);
//! let workspace = WorkspaceId::parse("wrkspc_01demo")?;
//! let params: environment::EnvironmentCreateParams = serde_json::from_value(serde_json::json!({"name": "local"}))?;
//! let mut head: Head<Option<Environment>> = Head::default();
//! stream::write(store, &StreamId::from(&id), &mut head, |env| match env {
//!     None => environment::create(params.clone(), id.clone(), workspace.clone(), now),
//!     Some(_) => Ok(Vec::new()),
//! })
//! .await?;
//! assert_eq!(head.version, 1);
//! # Ok(())
//! # }
//! ```

use bytes::Bytes;

use crate::storage::{self, Append, CatalogEntry, Direction, Expected, Store, StreamId, Version};

/// How often [`write`] catches up and decides again after losing an append race.
pub const RETRIES: usize = 16;

/// How many records one catch-up read fetches.
const PAGE: usize = 1024;

/// A state folded from a stream of records.
pub trait Fold {
    /// One record of the stream.
    type Record;

    /// Parses a stored record.
    fn decode(bytes: &[u8]) -> Result<Self::Record, String>;

    /// The record as stored.
    fn encode(record: &Self::Record) -> Bytes;

    /// Folds one more record in.
    fn apply(&mut self, record: &Self::Record);

    /// The catalog entry to write with an append that leads to this state (`None`: no entry).
    fn catalog_entry(&self) -> Option<CatalogEntry>;
}

/// A folded state at a stream version.
#[derive(Debug, Clone, Default)]
pub struct Head<F> {
    /// The folded state.
    pub state: F,
    /// The stream version it reflects (0: nothing folded).
    pub version: Version,
}

impl<F> Head<F> {
    /// A head that has folded nothing yet, starting from `state`.
    pub fn new(state: F) -> Self {
        Self { state, version: 0 }
    }
}

/// Why a write failed.
#[derive(Debug, thiserror::Error)]
pub enum Error<R> {
    /// `decide` refused.
    #[error("rejected")]
    Rejected(R),
    /// A stored record could not be decoded.
    #[error("stream {stream} version {version}: undecodable record: {message}")]
    Decode {
        /// The stream.
        stream: StreamId,
        /// The record's version.
        version: Version,
        /// What went wrong.
        message: String,
    },
    /// The store failed, or another writer won [`RETRIES`] races in a row
    /// ([`storage::Error::WrongExpectedVersion`]).
    #[error(transparent)]
    Store(#[from] storage::Error),
}

/// What [`write`] appended.
#[derive(Debug, Clone)]
pub struct Written<T> {
    /// The appended records (empty: `decide` had nothing to write).
    pub records: Vec<T>,
    /// The version of the first appended record (the head's version + 1 when none).
    pub first_version: Version,
}

/// Brings `head` up to the latest version of `stream` by reading only the records after it
/// (nothing at all when the store knows the stream's head is the head's version:
/// [`Store::known_head`]).
pub async fn catch_up<S: Store, F: Fold>(
    store: &S,
    stream: &StreamId,
    head: &mut Head<F>,
) -> Result<(), Error<std::convert::Infallible>> {
    if store.known_head(stream) == Some(head.version) {
        return Ok(());
    }
    loop {
        let batch = store
            .read(stream, head.version + 1, Direction::Forward, PAGE)
            .await?;
        for stored in &batch {
            let record = F::decode(&stored.payload).map_err(|message| Error::Decode {
                stream: stream.clone(),
                version: stored.version,
                message,
            })?;
            head.state.apply(&record);
            head.version = stored.version;
        }
        if batch.len() < PAGE {
            return Ok(());
        }
    }
}

/// Reads and folds the whole of `stream` (a stream that does not exist folds nothing).
pub async fn load<S: Store, F: Fold + Default>(
    store: &S,
    stream: &StreamId,
) -> Result<Head<F>, Error<std::convert::Infallible>> {
    let mut head = Head::default();
    catch_up(store, stream, &mut head).await?;
    Ok(head)
}

fn widen<R>(error: Error<std::convert::Infallible>) -> Error<R> {
    match error {
        Error::Rejected(never) => match never {},
        Error::Decode {
            stream,
            version,
            message,
        } => Error::Decode {
            stream,
            version,
            message,
        },
        Error::Store(e) => Error::Store(e),
    }
}

/// The records one write stages, each folded into the head's state as it is pushed, so that a
/// decision sees what the earlier decisions of the same write did. [`write_staged`] hands it
/// to its `stage` closure; [`crate::session::heads`] decides several writers' commands in turn
/// on one and appends them together.
pub struct Staged<'a, F: Fold> {
    state: &'a mut F,
    base: Version,
    records: Vec<F::Record>,
}

impl<F: Fold> Staged<'_, F> {
    /// The state with every record staged so far applied.
    pub fn state(&self) -> &F {
        self.state
    }

    /// The records staged so far, in order: record `i` gets version [`Staged::version_of`]`(i)`.
    pub fn records(&self) -> &[F::Record] {
        &self.records
    }

    /// The stream version record `index` of this write gets once appended.
    pub fn version_of(&self, index: usize) -> Version {
        self.base + 1 + index as Version
    }

    /// Stages `record` after the others and folds it into the state.
    pub fn push(&mut self, record: F::Record) {
        self.state.apply(&record);
        self.records.push(record);
    }
}

/// Catches `head` up, lets `decide` turn the current state into records (or refuse), and
/// appends them at exactly the head's version with the catalog entry of the resulting state.
/// A lost race catches up and decides again, at most [`RETRIES`] times. On success `head`
/// holds the state after the append; after a failure it is reset (the next use reloads).
pub async fn write<S: Store, F: Fold + Default, R>(
    store: &S,
    stream: &StreamId,
    head: &mut Head<F>,
    mut decide: impl FnMut(&F) -> Result<Vec<F::Record>, R>,
) -> Result<Written<F::Record>, Error<R>> {
    write_staged(store, stream, head, |staged| {
        for record in decide(staged.state())? {
            staged.push(record);
        }
        Ok(())
    })
    .await
}

/// [`write`] with the decision made record by record: `stage` pushes records onto a
/// [`Staged`] whose state follows them (no copy of the state is made). Everything staged is
/// appended as one batch at the head's version; a lost race catches up and stages again from
/// scratch, at most [`RETRIES`] times. A refusal after records were staged resets `head`.
pub async fn write_staged<S: Store, F: Fold + Default, R>(
    store: &S,
    stream: &StreamId,
    head: &mut Head<F>,
    mut stage: impl FnMut(&mut Staged<'_, F>) -> Result<(), R>,
) -> Result<Written<F::Record>, Error<R>> {
    let mut attempt = 0;
    loop {
        catch_up(store, stream, head).await.map_err(widen)?;
        let expected = head.version;
        let first_version = expected + 1;
        // The entry the store holds now: the last append wrote the entry of this state.
        let filed = (expected > 0).then(|| head.state.catalog_entry()).flatten();
        // Staged records are applied in place (no clone of the state); a refusal after some
        // were staged, or a failed append, resets the head.
        let mut staged = Staged {
            state: &mut head.state,
            base: expected,
            records: Vec::new(),
        };
        let decided = stage(&mut staged);
        let records = staged.records;
        if let Err(rejection) = decided {
            if !records.is_empty() {
                *head = Head::default();
            }
            return Err(Error::Rejected(rejection));
        }
        if records.is_empty() {
            return Ok(Written {
                records,
                first_version,
            });
        }
        let appended = store
            .append(Append {
                stream: stream.clone(),
                expected: Expected::Exactly(expected),
                events: records.iter().map(F::encode).collect(),
                catalog: refiled(filed, head.state.catalog_entry()),
            })
            .await;
        match appended {
            Ok(done) => {
                head.version = done.last;
                return Ok(Written {
                    records,
                    first_version,
                });
            }
            Err(error) => {
                *head = Head::default();
                match error {
                    storage::Error::WrongExpectedVersion { .. } if attempt < RETRIES => {
                        attempt += 1;
                    }
                    other => return Err(Error::Store(other)),
                }
            }
        }
    }
}

/// The catalog entry an append must write: `after`, unless it is the entry already filed (most
/// appends change nothing the catalog shows, and rewriting an entry costs the store an encode
/// and two writes).
fn refiled(filed: Option<CatalogEntry>, after: Option<CatalogEntry>) -> Option<CatalogEntry> {
    match (filed, after) {
        (Some(filed), Some(after)) if filed == after => None,
        (_, after) => after,
    }
}

/// Appends the records creating a new object: `stream` must not exist yet (expected version
/// 0), and nothing is retried (a fresh id cannot lose a race, except to a fence; see
/// [`crate::claim`]).
pub async fn create<S: Store, F: Fold + Default>(
    store: &S,
    stream: &StreamId,
    records: Vec<F::Record>,
) -> Result<Head<F>, storage::Error> {
    let mut head = Head::<F>::default();
    for record in &records {
        head.state.apply(record);
    }
    let done = store
        .append(Append {
            stream: stream.clone(),
            expected: Expected::Exactly(0),
            events: records.iter().map(F::encode).collect(),
            catalog: head.state.catalog_entry(),
        })
        .await?;
    head.version = done.last;
    Ok(head)
}

#[cfg(test)]
mod tests {
    use super::refiled;
    use crate::storage::{CatalogEntry, Kind};
    use crate::time::Timestamp;

    fn entry(status: &str) -> CatalogEntry {
        let mut entry = CatalogEntry::new(Kind::Session, "sesn_1", "ws", Timestamp::from_millis(1));
        entry.status = Some(status.to_owned());
        entry
    }

    #[test]
    fn an_unchanged_entry_is_not_written_again_and_a_changed_one_is() {
        assert_eq!(refiled(Some(entry("idle")), Some(entry("idle"))), None);
        assert_eq!(
            refiled(Some(entry("idle")), Some(entry("running"))),
            Some(entry("running"))
        );
        assert_eq!(refiled(None, Some(entry("idle"))), Some(entry("idle")));
        assert_eq!(refiled(Some(entry("idle")), None), None);
    }
}
