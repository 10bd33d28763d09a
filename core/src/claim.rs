//! Uniqueness rules as records in the store: a *name claim* is a stream of its own, keyed by
//! what must be unique (say, an environment name within a workspace), whose fold names the
//! object holding the name. Claims are written at the expected version like every stream, so
//! they hold across processes sharing a store.
//!
//! The store appends to one stream at a time, so taking a name is *claim, then write the
//! object*, and giving it up (rename, delete) is *write the object, then release*:
//!
//! - [`acquire`] appends `claim.claimed` for the new owner when the claim is free. When another
//!   object holds it, the name is taken if that object's current state still carries the name
//!   ([`Owner::holds`]) or the claim is younger than the lease (its owner may be creating or
//!   renaming right now).
//! - A claim older than the lease whose owner does not carry the name is stale: a process died
//!   between claim and write, or between write and release. Before taking it over, [`acquire`]
//!   *fences* the old owner's stream: it appends [`Owner::fence`] (a record that changes
//!   nothing) at the version it read, so a write the old owner still has in flight fails with
//!   `WrongExpectedVersion` instead of landing with the name; a writer that retries lost races
//!   (as [`crate::stream::write`] does) compares the object's fence count (`fences` of
//!   [`crate::object::Lifecycled`]) from before its claim and refuses when it moved. An object
//!   that was never created keeps the fence as its first record, so its creation (at expected
//!   version 0) fails.
//! - [`release`] appends `claim.released` if the object still holds the claim.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::object;
use crate::storage::{self, Append, CatalogEntry, Expected, Store, StreamId};
use crate::stream::{self, Fold, Head};
use crate::time::Timestamp;

/// How long a claim whose owner does not carry the name yet is honoured (milliseconds).
pub const LEASE_MS: i64 = 60_000;

/// One record of a claim stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Record {
    /// `owner` took the name.
    #[serde(rename = "claim.claimed")]
    Claimed {
        /// The id of the object holding the name.
        owner: String,
        /// When.
        at: Timestamp,
    },
    /// `owner` gave the name up.
    #[serde(rename = "claim.released")]
    Released {
        /// The id of the object that held the name.
        owner: String,
        /// When.
        at: Timestamp,
    },
}

/// A claim folded from its stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Claim {
    /// Who holds it, since when.
    pub holder: Option<(String, Timestamp)>,
}

impl Fold for Claim {
    type Record = Record;

    fn decode(bytes: &[u8]) -> Result<Record, String> {
        object::decode(bytes).map_err(|e| e.0)
    }

    fn encode(record: &Record) -> Bytes {
        object::encode(record)
    }

    fn apply(&mut self, record: &Record) {
        match record {
            Record::Claimed { owner, at } => self.holder = Some((owner.clone(), *at)),
            Record::Released { owner, .. } => {
                if self.holder.as_ref().is_some_and(|(o, _)| o == owner) {
                    self.holder = None;
                }
            }
        }
    }

    fn catalog_entry(&self) -> Option<CatalogEntry> {
        None
    }
}

/// The stream of a claim: `claim:<rule>:<scope>:<hex of the name>` (hex keeps any name, NUL
/// included, a plain key).
pub fn stream_id(rule: &str, scope: &str, name: &str) -> StreamId {
    let hex: String = name.bytes().map(|b| format!("{b:02x}")).collect();
    StreamId::new(format!("claim:{rule}:{scope}:{hex}"))
}

/// The state of an object that can hold a claimed name.
pub trait Owner: Fold + Default {
    /// Whether the object, in this state, carries `name`.
    fn holds(&self, name: &str) -> bool;
    /// A record that changes nothing but moves the stream's version.
    fn fence(at: Timestamp) -> Self::Record;
}

/// Why a name could not be claimed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Another object holds the name; carries its id.
    #[error("the name is held by {0}")]
    Taken(String),
    /// Reading or writing failed, or other writers kept winning.
    #[error(transparent)]
    Stream(#[from] stream::Error<std::convert::Infallible>),
}

impl From<storage::Error> for Error {
    fn from(error: storage::Error) -> Self {
        Error::Stream(stream::Error::Store(error))
    }
}

/// Whether the claim stream has ever been written (claims did not exist before; callers may
/// then check older objects another way).
pub async fn is_new<S: Store>(store: &S, claim: &StreamId) -> Result<bool, Error> {
    Ok(store.head(claim).await? == 0)
}

/// Claims `name` (the claim stream `claim`) for object `owner` of type `O`, as described in
/// the module header. `Ok` when `owner` holds the claim afterwards.
pub async fn acquire<S: Store, O: Owner>(
    store: &S,
    claim: &StreamId,
    name: &str,
    owner: &str,
    now: Timestamp,
) -> Result<(), Error> {
    for _ in 0..=stream::RETRIES {
        let head: Head<Claim> = stream::load(store, claim).await?;
        let expected = head.version;
        match head.state.holder {
            Some((holder, _)) if holder == owner => return Ok(()),
            Some((holder, since)) => {
                let held: Head<O> = stream::load(store, &StreamId::new(holder.as_str())).await?;
                if held.state.holds(name) || now.millis() - since.millis() < LEASE_MS {
                    return Err(Error::Taken(holder));
                }
                // Stale: fence the old owner so nothing it has in flight lands with the name.
                let mut fenced = held.state;
                let fence = O::fence(now);
                fenced.apply(&fence);
                let appended = store
                    .append(Append {
                        stream: StreamId::new(holder.as_str()),
                        expected: Expected::Exactly(held.version),
                        events: vec![O::encode(&fence)],
                        catalog: fenced.catalog_entry(),
                    })
                    .await;
                match appended {
                    Ok(_) => {}
                    Err(storage::Error::WrongExpectedVersion { .. }) => continue,
                    Err(other) => return Err(other.into()),
                }
            }
            None => {}
        }
        let claimed = Record::Claimed {
            owner: owner.to_owned(),
            at: now,
        };
        let appended = store
            .append(Append {
                stream: claim.clone(),
                expected: Expected::Exactly(expected),
                events: vec![Claim::encode(&claimed)],
                catalog: None,
            })
            .await;
        match appended {
            Ok(_) => return Ok(()),
            Err(storage::Error::WrongExpectedVersion { .. }) => continue,
            Err(other) => return Err(other.into()),
        }
    }
    Err(storage::Error::Backend(format!(
        "{claim}: gave up after {} lost races",
        stream::RETRIES
    ))
    .into())
}

/// Gives the claim up if `owner` still holds it.
pub async fn release<S: Store>(
    store: &S,
    claim: &StreamId,
    owner: &str,
    now: Timestamp,
) -> Result<(), Error> {
    let mut head = Head::<Claim>::default();
    stream::write(store, claim, &mut head, |claim| {
        Ok::<_, std::convert::Infallible>(match &claim.holder {
            Some((holder, _)) if holder == owner => vec![Record::Released {
                owner: owner.to_owned(),
                at: now,
            }],
            _ => Vec::new(),
        })
    })
    .await
    .map_err(|e| match e {
        stream::Error::Rejected(never) => match never {},
        stream::Error::Decode {
            stream,
            version,
            message,
        } => Error::Stream(stream::Error::Decode {
            stream,
            version,
            message,
        }),
        stream::Error::Store(e) => e.into(),
    })?;
    Ok(())
}
