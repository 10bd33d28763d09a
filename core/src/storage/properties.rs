//! The storage property suite: random command sequences run against a backend and against a
//! reference model kept in plain maps, which must agree after every command.
//!
//! Two properties, generated for a backend by [`conformance_tests!`](crate::conformance_tests)
//! next to the fixed cases, each case on a fresh store:
//! - [`commands_follow_the_model`]: appends with every kind of expected version (any, no
//!   stream, exact, off by some), reads both ways with any bounds, heads, catalog entries and
//!   listings with filters (workspace, archived, status, creation time) and cursors, and
//!   deletes. Versions stay dense, a rejected append
//!   writes nothing, the catalog says what the appends said.
//! - [`subscriptions_resume_exactly_once`]: subscribers opened at random cursors (fresh, or
//!   resuming where a dropped one stopped) while appends and deletes go on; each sees every
//!   version after its cursor exactly once, in order, with the right payload, and nothing else.
//!
//! Like the fixed cases the suite drives futures with `futures::executor::block_on`, so it
//! needs no runtime. The case count follows [`crate::cases::property_cases`].

use std::collections::BTreeMap;
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::executor::block_on;
use futures::{FutureExt, StreamExt};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use super::{
    Append, Appended, CatalogEntry, CatalogQuery, Direction, Error, Expected, Kind, Order, Record,
    Store, StreamId, Subscription, TimeRange, Version,
};
use crate::cases::property_cases;
use crate::time::Timestamp;

/// Stream ids; two share a prefix so key layouts that confuse them show.
const STREAMS: [&str; 3] = ["sesn_a", "sesn_ab", "sesn_b"];
/// Workspaces catalog entries move between.
const WORKSPACES: [&str; 2] = ["wrkspc_1", "wrkspc_2"];
/// Session statuses catalog entries carry.
const STATUSES: [&str; 2] = ["idle", "running"];
/// Listing cursors: every stream id, and ids that fall between or around them.
const CURSORS: [&str; 5] = ["sesn_", "sesn_a", "sesn_aa", "sesn_ab", "sesn_c"];
/// How long a subscriber may take to deliver a record the model says is there.
const PATIENCE: Duration = Duration::from_secs(20);
/// Commands per sequence.
const MAX_COMMANDS: usize = 40;

/// How an append states the version it expects, resolved against the model's head.
#[derive(Debug, Clone, Copy)]
enum Expectation {
    Any,
    NoStream,
    Current,
    Off(i8),
}

/// The catalog facts an append writes with its events.
#[derive(Debug, Clone)]
struct Facts {
    workspace: usize,
    archived: bool,
    status: Option<usize>,
    created_second: u8,
}

#[derive(Debug, Clone)]
enum Command {
    Append {
        stream: usize,
        expected: Expectation,
        events: u8,
        catalog: Option<Facts>,
    },
    Read {
        stream: usize,
        from: Version,
        backward: bool,
        limit: usize,
    },
    Head {
        stream: usize,
    },
    Entry {
        stream: usize,
    },
    List {
        workspace: usize,
        include_archived: bool,
        status: Option<usize>,
        ascending: bool,
        after: Option<usize>,
        limit: usize,
        /// Created at or after this second (of the entries' `created_second`s).
        created_from: Option<u8>,
        /// Created strictly before this second.
        created_before: Option<u8>,
    },
    Delete {
        stream: usize,
    },
}

fn expectation() -> impl Strategy<Value = Expectation> {
    prop_oneof![
        1 => Just(Expectation::Any),
        1 => Just(Expectation::NoStream),
        3 => Just(Expectation::Current),
        1 => (-2i8..=2).prop_map(Expectation::Off),
    ]
}

fn facts() -> impl Strategy<Value = Facts> {
    (
        0..WORKSPACES.len(),
        any::<bool>(),
        proptest::option::of(0..STATUSES.len()),
        0u8..4,
    )
        .prop_map(|(workspace, archived, status, created_second)| Facts {
            workspace,
            archived,
            status,
            created_second,
        })
}

fn version_bound() -> impl Strategy<Value = Version> {
    prop_oneof![4 => 0u64..12, 1 => Just(Version::MAX)]
}

fn command() -> impl Strategy<Value = Command> {
    let stream = 0..STREAMS.len();
    prop_oneof![
        6 => (stream.clone(), expectation(), 0u8..4, proptest::option::of(facts())).prop_map(
            |(stream, expected, events, catalog)| Command::Append { stream, expected, events, catalog }
        ),
        3 => (stream.clone(), version_bound(), any::<bool>(), 0usize..6).prop_map(
            |(stream, from, backward, limit)| Command::Read { stream, from, backward, limit }
        ),
        1 => stream.clone().prop_map(|stream| Command::Head { stream }),
        1 => stream.clone().prop_map(|stream| Command::Entry { stream }),
        2 => (
            0..WORKSPACES.len(),
            any::<bool>(),
            proptest::option::of(0..STATUSES.len()),
            any::<bool>(),
            proptest::option::of(0..CURSORS.len()),
            0usize..4,
            proptest::option::of(0u8..5),
            proptest::option::of(0u8..5),
        )
            .prop_map(|(workspace, include_archived, status, ascending, after, limit, created_from, created_before)| {
                Command::List {
                    workspace, include_archived, status, ascending, after, limit, created_from,
                    created_before,
                }
            }),
        1 => stream.prop_map(|stream| Command::Delete { stream }),
    ]
}

/// The reference: every stream's payloads and every catalog entry, in plain maps.
#[derive(Default)]
struct Model {
    streams: BTreeMap<usize, Vec<Bytes>>,
    catalog: BTreeMap<String, CatalogEntry>,
    appended: u64,
}

impl Model {
    fn head(&self, stream: usize) -> Version {
        self.streams
            .get(&stream)
            .map_or(0, |events| events.len() as Version)
    }

    fn expected(&self, stream: usize, expectation: Expectation) -> Expected {
        let head = self.head(stream);
        match expectation {
            Expectation::Any => Expected::Any,
            Expectation::NoStream => Expected::Exactly(0),
            Expectation::Current => Expected::Exactly(head),
            Expectation::Off(by) => Expected::Exactly(head.saturating_add_signed(i64::from(by))),
        }
    }

    /// Fresh payloads naming their stream and a global sequence number.
    fn payloads(&mut self, stream: usize, count: u8) -> Vec<Bytes> {
        (0..count)
            .map(|_| {
                self.appended += 1;
                Bytes::from(format!("{}#{}", STREAMS[stream], self.appended))
            })
            .collect()
    }

    fn append(
        &mut self,
        stream: usize,
        expected: Expected,
        events: &[Bytes],
        catalog: Option<&CatalogEntry>,
    ) -> Result<Appended, Error> {
        let head = self.head(stream);
        if let Expected::Exactly(version) = expected {
            if version != head {
                return Err(Error::WrongExpectedVersion {
                    stream: StreamId::new(STREAMS[stream]),
                    expected: version,
                    actual: head,
                });
            }
        }
        if !events.is_empty() {
            self.streams
                .entry(stream)
                .or_default()
                .extend(events.iter().cloned());
        }
        if let Some(entry) = catalog {
            self.catalog.insert(entry.id.clone(), entry.clone());
        }
        Ok(Appended {
            first: head + 1,
            last: self.head(stream),
        })
    }

    fn read(&self, stream: usize, from: Version, backward: bool, limit: usize) -> Vec<Record> {
        let events = self.streams.get(&stream).map(Vec::as_slice).unwrap_or(&[]);
        let record = |version: Version| Record {
            version,
            payload: events[version as usize - 1].clone(),
        };
        let head = events.len() as Version;
        if backward {
            (1..=from.min(head)).rev().take(limit).map(record).collect()
        } else {
            (from.max(1)..=head).take(limit).map(record).collect()
        }
    }

    fn list(&self, query: &CatalogQuery) -> (Vec<CatalogEntry>, bool) {
        let mut matching: Vec<&CatalogEntry> = self
            .catalog
            .values()
            .filter(|e| e.workspace == query.workspace)
            .filter(|e| query.include_archived || !e.archived)
            .filter(|e| {
                query.statuses.is_empty()
                    || e.status
                        .as_ref()
                        .is_some_and(|s| query.statuses.contains(s))
            })
            .filter(|e| query.created.gte.is_none_or(|from| e.created_at >= from))
            .filter(|e| query.created.lt.is_none_or(|before| e.created_at < before))
            .filter(|e| match (&query.after, query.order) {
                (None, _) => true,
                (Some(cursor), Order::Asc) => e.id > *cursor,
                (Some(cursor), Order::Desc) => e.id < *cursor,
            })
            .collect();
        if query.order == Order::Desc {
            matching.reverse();
        }
        let has_more = matching.len() > query.limit;
        let entries = matching.into_iter().take(query.limit).cloned().collect();
        (entries, has_more)
    }

    fn delete(&mut self, stream: usize) {
        self.streams.remove(&stream);
        self.catalog.remove(STREAMS[stream]);
    }
}

/// The creation time `n` seconds into the suite's epoch.
fn second(n: u8) -> Timestamp {
    Timestamp::from_millis(1_775_536_063_000 + i64::from(n) * 1000)
}

fn entry(stream: usize, facts: &Facts) -> CatalogEntry {
    let mut entry = CatalogEntry::new(
        Kind::Session,
        STREAMS[stream],
        WORKSPACES[facts.workspace],
        second(facts.created_second),
    );
    entry.archived = facts.archived;
    entry.status = facts.status.map(|s| STATUSES[s].to_owned());
    entry
}

fn config(default_cases: u32) -> Config {
    Config {
        cases: property_cases(default_cases),
        // Cases that once failed are kept as named regression tests, not in files.
        failure_persistence: None,
        ..Config::default()
    }
}

/// Runs `property` on `strategy`'s values, panicking with the smallest failing value.
fn check<T: Strategy>(
    default_cases: u32,
    strategy: T,
    property: impl Fn(T::Value) -> Result<(), TestCaseError>,
) {
    let mut runner = TestRunner::new(config(default_cases));
    if let Err(failure) = runner.run(&strategy, property) {
        panic!("{failure}");
    }
}

fn ensure_eq<T: PartialEq + std::fmt::Debug>(
    got: T,
    want: T,
    what: impl FnOnce() -> String,
) -> Result<(), TestCaseError> {
    if got == want {
        Ok(())
    } else {
        Err(TestCaseError::fail(format!(
            "{}:\n  store: {got:?}\n  model: {want:?}",
            what()
        )))
    }
}

/// Random command sequences on a fresh store from `make` agree with the reference model.
pub fn commands_follow_the_model<S: Store>(make: impl Fn() -> S) {
    check(
        96,
        proptest::collection::vec(command(), 1..MAX_COMMANDS),
        |commands| run_commands(make(), &commands),
    );
}

/// Runs one command sequence against `store` and the model, comparing every answer.
fn run_commands<S: Store>(store: S, commands: &[Command]) -> Result<(), TestCaseError> {
    let mut model = Model::default();
    for (step, command) in commands.iter().enumerate() {
        let at = || format!("command {step} ({command:?})");
        match command {
            Command::Append {
                stream,
                expected,
                events,
                catalog,
            } => {
                let expected = model.expected(*stream, *expected);
                let payloads = model.payloads(*stream, *events);
                let catalog = catalog.as_ref().map(|facts| entry(*stream, facts));
                let want = model.append(*stream, expected, &payloads, catalog.as_ref());
                let got = block_on(store.append(Append {
                    stream: StreamId::new(STREAMS[*stream]),
                    expected,
                    events: payloads,
                    catalog,
                }));
                ensure_eq(got, want, at)?;
            }
            Command::Read {
                stream,
                from,
                backward,
                limit,
            } => {
                let direction = if *backward {
                    Direction::Backward
                } else {
                    Direction::Forward
                };
                let got = block_on(store.read(
                    &StreamId::new(STREAMS[*stream]),
                    *from,
                    direction,
                    *limit,
                ));
                ensure_eq(got, Ok(model.read(*stream, *from, *backward, *limit)), at)?;
            }
            Command::Head { stream } => {
                let got = block_on(store.head(&StreamId::new(STREAMS[*stream])));
                ensure_eq(got, Ok(model.head(*stream)), at)?;
            }
            Command::Entry { stream } => {
                let got = block_on(store.entry(Kind::Session, STREAMS[*stream]));
                ensure_eq(got, Ok(model.catalog.get(STREAMS[*stream]).cloned()), at)?;
            }
            Command::List {
                workspace,
                include_archived,
                status,
                ascending,
                after,
                limit,
                created_from,
                created_before,
            } => {
                let query = CatalogQuery {
                    created: TimeRange {
                        gte: created_from.map(second),
                        lt: created_before.map(second),
                        ..TimeRange::default()
                    },
                    include_archived: *include_archived,
                    statuses: status.iter().map(|s| STATUSES[*s].to_owned()).collect(),
                    order: if *ascending { Order::Asc } else { Order::Desc },
                    after: after.map(|c| CURSORS[c].to_owned()),
                    limit: *limit,
                    ..CatalogQuery::new(Kind::Session, WORKSPACES[*workspace])
                };
                let got = block_on(store.list(&query)).map(|page| (page.entries, page.has_more));
                ensure_eq(got, Ok(model.list(&query)), at)?;
            }
            Command::Delete { stream } => {
                let got = block_on(store.delete(Kind::Session, &StreamId::new(STREAMS[*stream])));
                model.delete(*stream);
                ensure_eq(got, Ok(()), at)?;
            }
        }
    }
    // Whatever the sequence, every stream reads back densely from 1 and the catalog agrees.
    for (index, name) in STREAMS.iter().enumerate() {
        let stream = StreamId::new(*name);
        let all = block_on(super::read_all(&store, &stream));
        ensure_eq(all, Ok(model.read(index, 1, false, usize::MAX)), || {
            format!("the whole of {name} at the end")
        })?;
        let entry = block_on(store.entry(Kind::Session, name));
        ensure_eq(entry, Ok(model.catalog.get(*name).cloned()), || {
            format!("the catalog entry of {name} at the end")
        })?;
    }
    Ok(())
}

/// Where a new subscriber starts.
#[derive(Debug, Clone, Copy)]
enum Cursor {
    /// At this fraction (0..=4 quarters) of the stream's current head.
    Quarter(u8),
    /// Where the last dropped subscriber of the stream stopped.
    Resume,
}

#[derive(Debug, Clone)]
enum Step {
    Append {
        stream: usize,
        events: u8,
    },
    Subscribe {
        slot: usize,
        stream: usize,
        cursor: Cursor,
    },
    Take {
        slot: usize,
        count: u8,
    },
    Drop {
        slot: usize,
    },
    Delete {
        stream: usize,
    },
}

const SLOTS: usize = 3;

fn step() -> impl Strategy<Value = Step> {
    let stream = 0..STREAMS.len();
    let slot = 0..SLOTS;
    let cursor = prop_oneof![(0u8..=4).prop_map(Cursor::Quarter), Just(Cursor::Resume)];
    prop_oneof![
        5 => (stream.clone(), 1u8..6).prop_map(|(stream, events)| Step::Append { stream, events }),
        3 => (slot.clone(), stream.clone(), cursor)
            .prop_map(|(slot, stream, cursor)| Step::Subscribe { slot, stream, cursor }),
        5 => (slot.clone(), 1u8..8).prop_map(|(slot, count)| Step::Take { slot, count }),
        2 => slot.prop_map(|slot| Step::Drop { slot }),
        1 => stream.prop_map(|stream| Step::Delete { stream }),
    ]
}

/// One open subscriber: what it follows and the last version it was given.
struct Follower {
    stream: usize,
    cursor: Version,
    subscription: Subscription,
}

/// The next item of `subscription`, polling until `PATIENCE` runs out (`None`: nothing came).
fn next_within(subscription: &mut Subscription) -> Option<Option<Result<Record, Error>>> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(item) = subscription.next().now_or_never() {
            return Some(item);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(1));
    }
}

/// Subscribers at random cursors, dropped and resumed at random points while appends and
/// deletes go on, each see every version after their cursor exactly once and in order.
pub fn subscriptions_resume_exactly_once<S: Store>(make: impl Fn() -> S) {
    check(
        64,
        proptest::collection::vec(step(), 1..MAX_COMMANDS),
        |steps| run_subscribers(make(), &steps),
    );
}

/// Runs one sequence of appends and subscriber steps against `store` and the model.
fn run_subscribers<S: Store>(store: S, steps: &[Step]) -> Result<(), TestCaseError> {
    let mut model = Model::default();
    let mut followers: [Option<Follower>; SLOTS] = [None, None, None];
    let mut stopped_at: BTreeMap<usize, Version> = BTreeMap::new();
    for (index, step) in steps.iter().enumerate() {
        let at = || format!("step {index} ({step:?})");
        match step {
            Step::Append { stream, events } => {
                let payloads = model.payloads(*stream, *events);
                let want = model.append(*stream, Expected::Any, &payloads, None);
                let got = block_on(store.append(Append {
                    stream: StreamId::new(STREAMS[*stream]),
                    expected: Expected::Any,
                    events: payloads,
                    catalog: None,
                }));
                ensure_eq(got, want, at)?;
            }
            Step::Subscribe {
                slot,
                stream,
                cursor,
            } => {
                let head = model.head(*stream);
                let after = match cursor {
                    Cursor::Quarter(q) => head * Version::from(*q) / 4,
                    Cursor::Resume => stopped_at.get(stream).copied().unwrap_or(0).min(head),
                };
                let subscription = store.subscribe(&StreamId::new(STREAMS[*stream]), after);
                let replaced = followers[*slot].replace(Follower {
                    stream: *stream,
                    cursor: after,
                    subscription,
                });
                if let Some(follower) = replaced {
                    stopped_at.insert(follower.stream, follower.cursor);
                }
            }
            Step::Take { slot, count } => {
                let Some(follower) = followers[*slot].as_mut() else {
                    continue;
                };
                let head = model.head(follower.stream);
                let available = head.saturating_sub(follower.cursor);
                let take = available.min(Version::from(*count));
                for _ in 0..take {
                    let want = model.read(follower.stream, follower.cursor + 1, false, 1);
                    let got = next_within(&mut follower.subscription);
                    ensure_eq(got, Some(Some(Ok(want[0].clone()))), at)?;
                    follower.cursor += 1;
                }
                if take == available {
                    // Everything was delivered: another record now would be a duplicate.
                    let extra = follower.subscription.next().now_or_never();
                    if let Some(item) = extra {
                        return Err(TestCaseError::fail(format!(
                            "{}: subscriber at its head was offered {item:?}",
                            at()
                        )));
                    }
                }
            }
            Step::Drop { slot } => {
                if let Some(follower) = followers[*slot].take() {
                    stopped_at.insert(follower.stream, follower.cursor);
                }
            }
            Step::Delete { stream } => {
                let before = model.streams.get(stream).cloned().unwrap_or_default();
                block_on(store.delete(Kind::Session, &StreamId::new(STREAMS[*stream])))
                    .map_err(|e| TestCaseError::fail(format!("{}: {e}", at())))?;
                model.delete(*stream);
                stopped_at.remove(stream);
                for slot in followers.iter_mut() {
                    if slot.as_ref().is_some_and(|f| f.stream == *stream) {
                        if let Some(follower) = slot.take() {
                            drain_deleted(follower, &before)
                                .map_err(|e| TestCaseError::fail(format!("{}: {e}", at())))?;
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

/// A subscriber of a deleted stream may still get the old records it had not seen (in order),
/// then ends with [`Error::Deleted`].
fn drain_deleted(mut follower: Follower, before: &[Bytes]) -> Result<(), TestCaseError> {
    loop {
        match next_within(&mut follower.subscription) {
            Some(Some(Ok(record))) => {
                let want = follower.cursor + 1;
                let payload = before.get(want as usize - 1);
                if record.version != want || payload != Some(&record.payload) {
                    return Err(TestCaseError::fail(format!(
                        "a subscriber of a deleted stream at {} was given {record:?}",
                        follower.cursor
                    )));
                }
                follower.cursor = want;
            }
            Some(Some(Err(Error::Deleted(_)))) => return Ok(()),
            other => {
                return Err(TestCaseError::fail(format!(
                    "a subscriber of a deleted stream ended with {other:?}, not Deleted"
                )))
            }
        }
    }
}
