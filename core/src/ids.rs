//! Typed, prefixed, time-ordered identifiers.
//!
//! Every id is `<prefix>01` followed by 22 base62 digits encoding a 128-bit number whose top 48
//! bits are the creation time in milliseconds and whose low 80 bits are random. The digits are
//! fixed-width and the alphabet is in ASCII order, so comparing two ids of one kind as strings
//! compares their creation times. Ids made by one process are strictly increasing: within one
//! millisecond the random part is incremented instead of drawn again.

use std::fmt;
use std::sync::Mutex;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::time::Timestamp;

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const DIGITS: usize = 22;
const RANDOM_BITS: u32 = 80;
const MARKER: &str = "01";

/// A string that is not an id of the expected kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a valid {kind} id (expected the prefix `{prefix}`)")]
pub struct Error {
    /// What kind of id was expected, e.g. `session`.
    pub kind: &'static str,
    /// The prefix that kind carries, e.g. `sesn_`.
    pub prefix: &'static str,
    /// The rejected text.
    pub value: String,
}

static LAST: Mutex<u128> = Mutex::new(0);

/// The 128-bit body of a new id: `now` in the top 48 bits, fresh randomness below, and strictly
/// greater than any body this process generated before.
fn next_body(now: Timestamp) -> u128 {
    let millis = u128::from(now.millis().max(0) as u64) & ((1 << 48) - 1);
    let random = (u128::from(fastrand::u64(..)) << 16 | u128::from(fastrand::u16(..)))
        & ((1 << RANDOM_BITS) - 1);
    let candidate = millis << RANDOM_BITS | random;
    let mut last = LAST.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let body = if candidate > *last {
        candidate
    } else {
        *last + 1
    };
    *last = body;
    body
}

fn encode(mut body: u128) -> String {
    let mut digits = [b'0'; DIGITS];
    for slot in digits.iter_mut().rev() {
        *slot = ALPHABET[(body % 62) as usize];
        body /= 62;
    }
    digits.iter().map(|&b| b as char).collect()
}

fn decode(digits: &str) -> Option<u128> {
    if digits.len() != DIGITS {
        return None;
    }
    digits.bytes().try_fold(0u128, |acc, b| {
        let value = ALPHABET.iter().position(|&a| a == b)? as u128;
        acc.checked_mul(62)?.checked_add(value)
    })
}

/// Generates the text of a new id with `prefix`, created at `now`.
pub fn generate(prefix: &str, now: Timestamp) -> String {
    format!("{prefix}{MARKER}{}", encode(next_body(now)))
}

/// The creation time encoded in an id's text, if it is one of ours.
pub fn created_at(id: &str) -> Option<Timestamp> {
    let (_, rest) = id.split_once('_')?;
    let body = decode(rest.strip_prefix(MARKER)?)?;
    Some(Timestamp::from_millis((body >> RANDOM_BITS) as i64))
}

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// The prefix every id of this kind starts with.
            pub const PREFIX: &'static str = $prefix;
            /// The human name of this kind of id, used in error messages.
            pub const KIND: &'static str = $kind;

            /// A new id created at `now`.
            pub fn generate(now: Timestamp) -> Self {
                Self(generate(Self::PREFIX, now))
            }

            /// Accepts any non-empty id with the right prefix. Ids are opaque to clients, so
            /// the body is not checked beyond being a plain token.
            pub fn parse(text: &str) -> Result<Self, Error> {
                let body = text.strip_prefix(Self::PREFIX).unwrap_or("");
                let plain = body.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                if body.is_empty() || !plain || text.len() > 128 {
                    return Err(Error { kind: Self::KIND, prefix: Self::PREFIX, value: text.to_owned() });
                }
                Ok(Self(text.to_owned()))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                Self::parse(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}

typed_id!(/// An agent (`agent_…`).
    AgentId, "agent", "agent_");
typed_id!(/// An environment (`env_…`).
    EnvironmentId, "environment", "env_");
typed_id!(/// A session (`sesn_…`).
    SessionId, "session", "sesn_");
typed_id!(/// A session event (`sevt_…`).
    EventId, "event", "sevt_");
typed_id!(/// A session thread (`sthr_…`).
    ThreadId, "session thread", "sthr_");
typed_id!(/// A vault (`vlt_…`).
    VaultId, "vault", "vlt_");
typed_id!(/// A vault credential (`vcrd_…`).
    CredentialId, "credential", "vcrd_");
typed_id!(/// A skill uploaded through the Skills API (`skill_…`).
    SkillId, "skill", "skill_");
typed_id!(/// An uploaded file (`file_…`).
    FileId, "file", "file_");
typed_id!(/// A memory store (`memstore_…`).
    MemoryStoreId, "memory store", "memstore_");
typed_id!(/// A memory inside a memory store (`mem_…`).
    MemoryId, "memory", "mem_");
typed_id!(/// One version of a memory (`memver_…`).
    MemoryVersionId, "memory version", "memver_");
typed_id!(/// A session resource (`sesrsc_…`).
    ResourceId, "session resource", "sesrsc_");
typed_id!(/// An outcome defined by `user.define_outcome` (`outc_…`).
    OutcomeId, "outcome", "outc_");
typed_id!(/// A self-hosted environment's work item (`work_…`).
    WorkId, "work item", "work_");
typed_id!(/// A workspace, the tenant every object belongs to (`wrkspc_…`).
    WorkspaceId, "workspace", "wrkspc_");
typed_id!(/// An API key (`apikey_…`).
    ApiKeyId, "API key", "apikey_");
typed_id!(/// A request, echoed in the `request-id` header (`req_…`).
    RequestId, "request", "req_");

impl SessionId {
    /// The stream of child thread `thread`: `sesn_` followed by the thread id's body (the
    /// inverse of [`ThreadId::primary_of`], so a child stream's own primary thread id is the
    /// child thread's id).
    pub fn of_thread(thread: &ThreadId) -> Self {
        let body = thread
            .as_str()
            .strip_prefix(ThreadId::PREFIX)
            .unwrap_or(thread.as_str());
        Self(format!("{}{body}", Self::PREFIX))
    }
}

impl ThreadId {
    /// The primary thread of session `session`: `sthr_` followed by the session id's body (a
    /// plain token, so always a valid thread id).
    pub fn primary_of(session: &SessionId) -> Self {
        let body = session
            .as_str()
            .strip_prefix(SessionId::PREFIX)
            .unwrap_or(session.as_str());
        Self(format!("{}{body}", Self::PREFIX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_creation_and_round_trip_their_time() {
        let early = SessionId::generate(Timestamp::from_millis(1_900_000_000_000));
        let late = SessionId::generate(Timestamp::from_millis(1_900_000_000_001));
        assert!(early < late);
        assert!(early.as_str().starts_with("sesn_01"));
        assert_eq!(
            created_at(early.as_str()),
            Some(Timestamp::from_millis(1_900_000_000_000))
        );
    }

    #[test]
    fn ids_in_one_millisecond_are_strictly_increasing() {
        let now = Timestamp::from_millis(1_800_000_000_000);
        let ids: Vec<_> = (0..1000).map(|_| EventId::generate(now)).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn parse_checks_the_prefix() {
        assert!(AgentId::parse("agent_01abc").is_ok());
        let err = AgentId::parse("sesn_01abc").expect_err("wrong prefix");
        assert!(err.to_string().contains("agent_"));
        assert!(AgentId::parse("agent_").is_err());
        assert!(AgentId::parse("agent_a/b").is_err());
    }
}
