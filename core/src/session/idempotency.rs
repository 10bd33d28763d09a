//! Idempotent sends (an extension of ours): `POST /v1/sessions/{id}/events` with an
//! `Idempotency-Key` header.
//!
//! The key table is part of the session's log state: a keyed send that appends writes an
//! `internal.idempotency_key` fact right before its events, carrying the key, the SHA-256 of
//! the normalized request body ([`request_hash`]: the typed events re-serialized, so spacing,
//! key order and `null` vs absent do not count) and the ids of the echoed client events. The
//! fold keeps a [`KeyEntry`] per key, with the stream version of the first record after the
//! fact, so the first response can be rebuilt from the log ([`crate::session::log::replay`]).
//!
//! `decide` on a keyed send: a key first used less than [`WINDOW_MILLIS`] ago with the same
//! hash is an accepted no-op (the caller answers from the table); with a different hash it is
//! a 409. An older key is forgotten: the send appends as if new and its fact replaces the
//! entry. Entries older than the window are dropped from the table as later keyed sends are
//! folded, so the table holds at most a day of keys. Concurrent sends with one key are
//! decided one after the other on the state the earlier one left (the expected-version append
//! and the session's group commit), so exactly one appends.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::event::EventParams;
use crate::ids::EventId;
use crate::storage::Version;
use crate::time::Timestamp;
use crate::validate::FieldError;

/// How long a key is remembered, from its first use: 24 hours.
pub const WINDOW_MILLIS: i64 = 24 * 60 * 60 * 1000;

/// The longest key, in characters.
pub const MAX_KEY_LEN: usize = 255;

/// The header's name, as the errors name it.
pub const HEADER: &str = "Idempotency-Key";

/// A valid `Idempotency-Key`: 1–255 printable ASCII characters (space to `~`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Checks a header value (its raw bytes).
    pub fn parse(value: &[u8]) -> Result<Self, FieldError> {
        if value.is_empty() || value.len() > MAX_KEY_LEN {
            return Err(FieldError::new(
                HEADER,
                format!("must be 1 to {MAX_KEY_LEN} characters long"),
            ));
        }
        if !value.iter().all(|b| (0x20..=0x7e).contains(b)) {
            return Err(FieldError::new(
                HEADER,
                "must contain only printable ASCII characters",
            ));
        }
        // Printable ASCII is UTF-8.
        Ok(Self(String::from_utf8_lossy(value).into_owned()))
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The SHA-256 (hex) of a send's events, normalized by re-serializing the typed params.
pub fn request_hash(events: &[EventParams]) -> String {
    let json = serde_json::to_vec(events).unwrap_or_default();
    let digest = Sha256::digest(&json);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// What the session remembers of one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyEntry {
    /// The hash of the first request's body.
    pub request_hash: String,
    /// The client events the first request appended (its response), in order.
    pub event_ids: Vec<EventId>,
    /// The stream version of the first record after the key's fact (its first event).
    pub first_version: Version,
    /// When the key was first used.
    pub at: Timestamp,
}

impl KeyEntry {
    /// Whether the key is still remembered at `now`.
    pub fn live(&self, now: Timestamp) -> bool {
        now.millis() < self.at.millis().saturating_add(WINDOW_MILLIS)
    }
}
