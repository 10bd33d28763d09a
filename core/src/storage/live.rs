//! Gap-free subscriptions, shared by every backend.
//!
//! A backend calls [`Hub::publish`] after a batch is durable, in version order, and implements
//! [`crate::storage::Store::subscribe`] with [`Hub::subscribe`]. A subscription reads history
//! from the store until it reaches the published head, then serves records from a bounded live
//! buffer of the stream's latest records. A subscriber whose cursor falls out of the buffer
//! reads the missing range from the store again, so it is never skipped. Waiting uses
//! runtime-agnostic listeners: no tokio is needed here.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use event_listener::Event;

use super::{Direction, Error, Record, Store, StreamId, Subscription, Version};

/// How many of a stream's latest records stay in memory for live subscribers.
pub const LIVE_BUFFER: usize = 4096;
/// How many records one history read fetches.
const HISTORY_PAGE: usize = 512;

#[derive(Default)]
struct Tail {
    /// The latest published records, contiguous versions.
    buffer: VecDeque<Record>,
    /// The last published version, once anything was published while the channel existed.
    published: Option<Version>,
    deleted: bool,
}

/// One followed stream: its live tail and the event that wakes its subscribers.
#[derive(Default)]
struct Channel {
    tail: Mutex<Tail>,
    changed: Event,
}

impl Channel {
    fn lock(&self) -> MutexGuard<'_, Tail> {
        self.tail
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// What a subscriber should do next.
enum Step {
    Deliver(Vec<Record>),
    ReadHistory,
    Wait,
    End,
}

impl Tail {
    fn step(&self, cursor: Version) -> Step {
        let next = cursor + 1;
        if let Some(front) = self.buffer.front() {
            let back = front.version + self.buffer.len() as Version - 1;
            if front.version <= next && next <= back {
                let skip = (next - front.version) as usize;
                return Step::Deliver(self.buffer.iter().skip(skip).cloned().collect());
            }
        }
        if self.deleted {
            return Step::End;
        }
        match self.published {
            Some(head) if cursor >= head => Step::Wait,
            _ => Step::ReadHistory,
        }
    }
}

/// The registry of followed streams of one store. Cheap to share behind an `Arc`.
#[derive(Default)]
pub struct Hub {
    channels: Mutex<HashMap<StreamId, Weak<Channel>>>,
}

impl Hub {
    /// An empty hub.
    pub fn new() -> Self {
        Self::default()
    }

    fn channels(&self) -> MutexGuard<'_, HashMap<StreamId, Weak<Channel>>> {
        self.channels
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn existing(&self, stream: &StreamId) -> Option<Arc<Channel>> {
        let mut channels = self.channels();
        let channel = channels.get(stream).and_then(Weak::upgrade);
        if channel.is_none() {
            channels.remove(stream);
        }
        channel
    }

    fn channel(&self, stream: &StreamId) -> Arc<Channel> {
        let mut channels = self.channels();
        if let Some(channel) = channels.get(stream).and_then(Weak::upgrade) {
            return channel;
        }
        let channel = Arc::new(Channel::default());
        channels.insert(stream.clone(), Arc::downgrade(&channel));
        channel
    }

    /// Announces durable records of `stream` (contiguous, ascending, following what was
    /// published before). Streams nobody follows cost one map lookup.
    pub fn publish(&self, stream: &StreamId, records: &[Record]) {
        let Some(channel) = self.existing(stream) else {
            return;
        };
        let Some(last) = records.last() else { return };
        {
            let mut tail = channel.lock();
            if let Some(back) = tail.buffer.back() {
                if back.version + 1 != records[0].version {
                    tail.buffer.clear();
                }
            }
            tail.buffer.extend(records.iter().cloned());
            while tail.buffer.len() > LIVE_BUFFER {
                tail.buffer.pop_front();
            }
            tail.published = Some(last.version);
        }
        channel.changed.notify(usize::MAX);
    }

    /// Announces that `stream` was deleted: its subscribers end with [`Error::Deleted`].
    pub fn close(&self, stream: &StreamId) {
        if let Some(channel) = self.existing(stream) {
            channel.lock().deleted = true;
            channel.changed.notify(usize::MAX);
        }
        self.channels().remove(stream);
    }

    /// Follows `stream` after version `after`, reading history from `store`.
    pub fn subscribe<S: Store>(&self, store: S, stream: StreamId, after: Version) -> Subscription {
        let channel = self.channel(&stream);
        Box::pin(async_stream::stream! {
            let mut cursor = after;
            loop {
                let listener = channel.changed.listen();
                let step = channel.lock().step(cursor);
                match step {
                    Step::Deliver(records) => {
                        drop(listener);
                        for record in records {
                            cursor = record.version;
                            yield Ok(record);
                        }
                    }
                    Step::ReadHistory => {
                        match store.read(&stream, cursor + 1, Direction::Forward, HISTORY_PAGE).await {
                            Ok(records) if records.is_empty() => listener.await,
                            Ok(records) => {
                                for record in records {
                                    cursor = record.version;
                                    yield Ok(record);
                                }
                            }
                            Err(error) => {
                                yield Err(error);
                                return;
                            }
                        }
                    }
                    Step::Wait => listener.await,
                    Step::End => {
                        yield Err(Error::Deleted(stream.clone()));
                        return;
                    }
                }
            }
        })
    }
}
