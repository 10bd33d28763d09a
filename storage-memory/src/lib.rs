//! The storage trait held in memory. Nothing survives the process; everything else behaves as
//! the conformance suite demands, so it stands in for RocksDB in tests and `--storage memory`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use managed_agents_core::storage::live::Hub;
use managed_agents_core::storage::{
    Append, Appended, CatalogEntry, CatalogPage, CatalogQuery, Direction, Error, Expected, Grant,
    Kind, LocalLeases, Order, Record, Store, StreamId, Subscription, Version,
};

#[derive(Default)]
struct State {
    streams: HashMap<StreamId, Vec<Bytes>>,
    catalog: BTreeMap<(Kind, String), CatalogEntry>,
}

/// An in-memory store. Clones share the same data.
#[derive(Clone, Default)]
pub struct MemoryStore {
    state: Arc<Mutex<State>>,
    hub: Arc<Hub>,
    leases: Arc<LocalLeases>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn to_record(index: usize, payload: &Bytes) -> Record {
    Record {
        version: index as Version + 1,
        payload: payload.clone(),
    }
}

impl Store for MemoryStore {
    async fn append(&self, append: Append) -> Result<Appended, Error> {
        // Publishing happens under the state lock so records reach the hub in version order.
        let mut state = self.state();
        let events = state.streams.entry(append.stream.clone()).or_default();
        let actual = events.len() as Version;
        if let Expected::Exactly(expected) = append.expected {
            if expected != actual {
                if actual == 0 {
                    state.streams.remove(&append.stream);
                }
                return Err(Error::WrongExpectedVersion {
                    stream: append.stream,
                    expected,
                    actual,
                });
            }
        }
        let first = actual + 1;
        let records: Vec<Record> = append
            .events
            .into_iter()
            .enumerate()
            .map(|(i, payload)| Record {
                version: first + i as Version,
                payload,
            })
            .collect();
        events.extend(records.iter().map(|r| r.payload.clone()));
        let last = events.len() as Version;
        if last == 0 {
            state.streams.remove(&append.stream);
        }
        if let Some(entry) = append.catalog {
            state.catalog.insert((entry.kind, entry.id.clone()), entry);
        }
        self.hub.publish(&append.stream, &records);
        Ok(Appended { first, last })
    }

    async fn read(
        &self,
        stream: &StreamId,
        from: Version,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<Record>, Error> {
        let state = self.state();
        let Some(events) = state.streams.get(stream) else {
            return Ok(Vec::new());
        };
        let records = match direction {
            Direction::Forward => {
                let start = from.max(1) as usize - 1;
                events
                    .iter()
                    .enumerate()
                    .skip(start)
                    .take(limit)
                    .map(|(i, p)| to_record(i, p))
                    .collect()
            }
            Direction::Backward => {
                let end = (from.min(events.len() as Version)) as usize;
                events[..end]
                    .iter()
                    .enumerate()
                    .rev()
                    .take(limit)
                    .map(|(i, p)| to_record(i, p))
                    .collect()
            }
        };
        Ok(records)
    }

    async fn head(&self, stream: &StreamId) -> Result<Version, Error> {
        Ok(self
            .state()
            .streams
            .get(stream)
            .map_or(0, |events| events.len() as Version))
    }

    fn known_head(&self, stream: &StreamId) -> Option<Version> {
        // Appends and deletes take effect under the state lock: the head is always known.
        Some(
            self.state()
                .streams
                .get(stream)
                .map_or(0, |events| events.len() as Version),
        )
    }

    fn subscribe(&self, stream: &StreamId, after: Version) -> Subscription {
        self.hub.subscribe(self.clone(), stream.clone(), after)
    }

    async fn entry(&self, kind: Kind, id: &str) -> Result<Option<CatalogEntry>, Error> {
        Ok(self.state().catalog.get(&(kind, id.to_owned())).cloned())
    }

    async fn list(&self, query: &CatalogQuery) -> Result<CatalogPage, Error> {
        let state = self.state();
        let of_kind = state
            .catalog
            .range((query.kind, String::new())..)
            .take_while(|((kind, _), _)| *kind == query.kind)
            .map(|(_, entry)| entry);
        let ordered: Box<dyn Iterator<Item = &CatalogEntry>> = match query.order {
            Order::Asc => Box::new(of_kind),
            Order::Desc => Box::new(of_kind.collect::<Vec<_>>().into_iter().rev()),
        };
        let mut matching = ordered.filter(|e| query.is_after_cursor(&e.id) && query.matches(e));
        let entries: Vec<CatalogEntry> = matching.by_ref().take(query.limit).cloned().collect();
        let has_more = matching.next().is_some();
        Ok(CatalogPage { entries, has_more })
    }

    async fn delete(&self, kind: Kind, stream: &StreamId) -> Result<(), Error> {
        let mut state = self.state();
        state.streams.remove(stream);
        state.catalog.remove(&(kind, stream.as_str().to_owned()));
        self.hub.close(stream);
        Ok(())
    }

    async fn lease(
        &self,
        name: &str,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<Option<Grant>, Error> {
        Ok(self.leases.acquire(name, holder, ttl))
    }

    async fn release(&self, name: &str, holder: &str) -> Result<(), Error> {
        self.leases.release(name, holder);
        Ok(())
    }
}

#[cfg(test)]
mod conformance {
    managed_agents_core::conformance_tests!(crate::MemoryStore::new());
}
