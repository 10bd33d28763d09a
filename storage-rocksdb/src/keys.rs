//! Key layouts of every column family.
//!
//! **Byte layouts never change once released.** A store written by one release is read by every
//! later one; a layout change needs a new format version in `meta` and a migration.
//!
//! Stream ids and workspaces are ASCII tokens without `0x00`, so `0x00` separates a variable
//! field from what follows and sorts before every byte a token can hold. Integers are big-endian
//! so byte order is numeric order.
//!
//! | column family | key                                          | value                   |
//! |---------------|----------------------------------------------|-------------------------|
//! | `events`      | stream id, `0x00`, version (u64 BE)          | event payload           |
//! | `catalog`     | kind code (u8), workspace, `0x00`, object id | JSON `CatalogEntry`     |
//! | `catalog_ids` | kind code (u8), object id                    | workspace (owner of id) |
//! | `meta`        | `b"format"`                                  | format version (u32 BE) |
//!
//! One stream's events are the contiguous range `[stream, 0x00] .. [stream, 0x01]`, in version
//! order; one workspace's objects of one kind are the contiguous range
//! `[kind, workspace, 0x00] .. [kind, workspace, 0x01]`, in id (= creation) order. A stream's
//! head is the version in its last event key; it is never stored separately, so it cannot
//! disagree with the events.

use managed_agents_core::storage::{Kind, StreamId, Version};

/// Column family of stream events.
pub(crate) const EVENTS: &str = "events";
/// Column family of catalog entries, ordered for listing.
pub(crate) const CATALOG: &str = "catalog";
/// Column family indexing catalog entries by (kind, id).
pub(crate) const CATALOG_IDS: &str = "catalog_ids";
/// Column family of store metadata.
pub(crate) const META: &str = "meta";
/// Every column family this crate creates.
pub(crate) const FAMILIES: [&str; 4] = [EVENTS, CATALOG, CATALOG_IDS, META];

/// The `meta` key holding the format version.
pub(crate) const FORMAT_KEY: &[u8] = b"format";
/// The on-disk format this build writes and reads.
pub(crate) const FORMAT_VERSION: u32 = 1;

const SEPARATOR: u8 = 0x00;
const PAST_SEPARATOR: u8 = 0x01;

/// The key of event `version` of `stream`.
pub(crate) fn event(stream: &StreamId, version: Version) -> Vec<u8> {
    let mut key = stream_start(stream);
    key.extend_from_slice(&version.to_be_bytes());
    key
}

/// The first possible key of `stream`'s events (inclusive lower bound).
pub(crate) fn stream_start(stream: &StreamId) -> Vec<u8> {
    let id = stream.as_str().as_bytes();
    let mut key = Vec::with_capacity(id.len() + 9);
    key.extend_from_slice(id);
    key.push(SEPARATOR);
    key
}

/// The first key after all of `stream`'s events (exclusive upper bound).
pub(crate) fn stream_end(stream: &StreamId) -> Vec<u8> {
    let mut key = stream_start(stream);
    if let Some(last) = key.last_mut() {
        *last = PAST_SEPARATOR;
    }
    key
}

/// The version encoded in an event key, if the key is well formed.
pub(crate) fn event_version(key: &[u8]) -> Option<Version> {
    let split = key.len().checked_sub(8)?;
    let bytes: [u8; 8] = key[split..].try_into().ok()?;
    Some(Version::from_be_bytes(bytes))
}

/// The first possible catalog key of `kind` objects in `workspace` (inclusive lower bound).
pub(crate) fn catalog_start(kind: Kind, workspace: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(workspace.len() + 32);
    key.push(kind.code());
    key.extend_from_slice(workspace.as_bytes());
    key.push(SEPARATOR);
    key
}

/// The first catalog key after all `kind` objects of `workspace` (exclusive upper bound).
pub(crate) fn catalog_end(kind: Kind, workspace: &str) -> Vec<u8> {
    let mut key = catalog_start(kind, workspace);
    if let Some(last) = key.last_mut() {
        *last = PAST_SEPARATOR;
    }
    key
}

/// The catalog key of object `id` of `kind` in `workspace`.
pub(crate) fn catalog(kind: Kind, workspace: &str, id: &str) -> Vec<u8> {
    let mut key = catalog_start(kind, workspace);
    key.extend_from_slice(id.as_bytes());
    key
}

/// The `catalog_ids` key of object `id` of `kind`.
pub(crate) fn catalog_id(kind: Kind, id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(id.len() + 1);
    key.push(kind.code());
    key.extend_from_slice(id.as_bytes());
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_keys_sort_by_stream_then_version() {
        let a = StreamId::new("sesn_a");
        let ab = StreamId::new("sesn_ab");
        let mut keys = vec![
            event(&ab, 1),
            event(&a, 256),
            event(&a, 2),
            event(&a, 1),
            stream_end(&a),
            stream_start(&a),
        ];
        keys.sort();
        assert_eq!(
            keys,
            vec![
                stream_start(&a),
                event(&a, 1),
                event(&a, 2),
                event(&a, 256),
                stream_end(&a),
                event(&ab, 1),
            ]
        );
        assert_eq!(event_version(&event(&a, 256)), Some(256));
    }

    #[test]
    fn layouts_are_frozen() {
        assert_eq!(
            event(&StreamId::new("s"), 258),
            vec![b's', 0, 0, 0, 0, 0, 0, 0, 1, 2]
        );
        assert_eq!(
            catalog(Kind::Session, "ws", "id"),
            vec![3, b'w', b's', 0, b'i', b'd']
        );
        assert_eq!(catalog_end(Kind::Agent, "w"), vec![1, b'w', 1]);
        assert_eq!(catalog_id(Kind::File, "f"), vec![6, b'f']);
    }
}
