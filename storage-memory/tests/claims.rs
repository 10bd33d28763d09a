//! `core::claim` over a real store: environment names held by claims, the lease that covers a
//! create or rename in flight, and the fence that makes a stale owner's late write fail.

use futures::executor::block_on;
use managed_agents_core::claim::{self, LEASE_MS};
use managed_agents_core::environment::{self, Environment, EnvironmentUpdateParams};
use managed_agents_core::ids::{EnvironmentId, WorkspaceId};
use managed_agents_core::storage::{self, Store, StreamId};
use managed_agents_core::stream::{self, Head};
use managed_agents_core::time::Timestamp;
use managed_agents_storage_memory::MemoryStore;
use serde_json::json;

const T0: i64 = 1_775_536_063_000;

fn at(offset_ms: i64) -> Timestamp {
    Timestamp::from_millis(T0 + offset_ms)
}

fn workspace() -> WorkspaceId {
    WorkspaceId::parse("wrkspc_01claims").expect("id")
}

fn env_id(short: &str) -> EnvironmentId {
    EnvironmentId::parse(&format!("env_01{short}")).expect("id")
}

/// Creates environment `id` named `name` (the stream must be new).
fn create(store: &MemoryStore, id: &EnvironmentId, name: &str) -> Result<(), storage::Error> {
    let params = serde_json::from_value(json!({ "name": name })).expect("params");
    let records = environment::create(params, id.clone(), workspace(), at(0)).expect("valid");
    block_on(stream::create::<_, Option<Environment>>(
        store,
        &StreamId::from(id),
        records,
    ))
    .map(|_| ())
}

fn claim(store: &MemoryStore, name: &str, owner: &EnvironmentId, now: i64) -> Result<(), String> {
    block_on(environment::claim_name(
        store,
        &workspace(),
        name,
        owner,
        at(now),
    ))
    .map_err(|e| match e {
        claim::Error::Taken(by) => format!("taken by {by}"),
        other => panic!("claim failed: {other}"),
    })
}

/// Renames `id` to `name` without any claim (a writer that died before releasing).
fn rename_raw(store: &MemoryStore, id: &EnvironmentId, name: &str) -> u64 {
    let params: EnvironmentUpdateParams =
        serde_json::from_value(json!({ "name": name })).expect("params");
    let mut head = Head::<Option<Environment>>::default();
    block_on(stream::write(
        store,
        &StreamId::from(id),
        &mut head,
        |env| environment::update(env.as_ref().expect("exists"), params.clone(), at(1)),
    ))
    .expect("renamed");
    head.version
}

#[test]
fn a_claimed_name_is_taken_until_released() {
    let store = MemoryStore::new();
    let (a, b) = (env_id("a"), env_id("b"));
    assert_eq!(claim(&store, "prod", &a, 0), Ok(()));
    create(&store, &a, "prod").expect("created");
    assert_eq!(claim(&store, "prod", &a, 10), Ok(()), "the owner again");
    let taken = format!("taken by {a}");
    assert_eq!(claim(&store, "prod", &b, 20), Err(taken.clone()));
    assert_eq!(
        claim(&store, "prod", &b, 10 * LEASE_MS),
        Err(taken),
        "the owner carries the name: no lease ends that"
    );
    block_on(environment::release_name(
        &store,
        &workspace(),
        "prod",
        &a,
        at(30),
    ))
    .expect("released");
    assert_eq!(claim(&store, "prod", &b, 40), Ok(()));
}

#[test]
fn a_crash_between_claim_and_create_frees_the_name_after_the_lease_and_fences_the_create() {
    let store = MemoryStore::new();
    let (dead, b) = (env_id("dead"), env_id("b"));
    assert_eq!(claim(&store, "prod", &dead, 0), Ok(()));
    // `dead` never creates its environment (the process died), or has not yet.
    assert_eq!(
        claim(&store, "prod", &b, LEASE_MS - 1),
        Err(format!("taken by {dead}")),
        "within the lease the create may be in flight"
    );
    assert_eq!(claim(&store, "prod", &b, LEASE_MS), Ok(()));
    create(&store, &b, "prod").expect("created");
    // A late create by the old owner cannot land any more: its stream was fenced.
    assert!(matches!(
        create(&store, &dead, "prod"),
        Err(storage::Error::WrongExpectedVersion { .. })
    ));
}

#[test]
fn a_rename_that_died_before_releasing_frees_the_old_name_after_the_lease() {
    let store = MemoryStore::new();
    let (a, b) = (env_id("a"), env_id("b"));
    assert_eq!(claim(&store, "old", &a, 0), Ok(()));
    create(&store, &a, "old").expect("created");
    assert_eq!(claim(&store, "new", &a, 0), Ok(()));
    let version = rename_raw(&store, &a, "new");
    // The release of "old" never happened.
    assert_eq!(
        claim(&store, "old", &b, 1_000),
        Err(format!("taken by {a}"))
    );
    assert_eq!(claim(&store, "old", &b, LEASE_MS + 1_000), Ok(()));
    // Taking the stale claim over fenced `a` (one record that changes nothing).
    let head = block_on(store.head(&StreamId::from(&a))).expect("head");
    assert_eq!(head, version + 1);
    let folded: Head<Option<Environment>> =
        block_on(stream::load(&store, &StreamId::from(&a))).expect("load");
    let env = folded.state.expect("still exists");
    assert_eq!(env.settings.name, "new");
    assert_eq!(env.stream_version, head);
}

#[test]
fn a_stale_owner_write_in_flight_is_fenced() {
    let store = MemoryStore::new();
    let (a, b) = (env_id("a"), env_id("b"));
    create(&store, &a, "a-name").expect("created");
    // `a` claimed "target" for a rename, then stalled for longer than the lease.
    assert_eq!(claim(&store, "target", &a, 0), Ok(()));
    let read_by_a = block_on(store.head(&StreamId::from(&a))).expect("head");
    assert_eq!(claim(&store, "target", &b, LEASE_MS + 1), Ok(()));
    // Its rename, appended at the version it read, fails.
    let params: EnvironmentUpdateParams =
        serde_json::from_value(json!({"name": "target"})).expect("params");
    let loaded: Head<Option<Environment>> =
        block_on(stream::load(&store, &StreamId::from(&a))).expect("load");
    let records =
        environment::update(loaded.state.as_ref().expect("exists"), params, at(2)).expect("ok");
    let late = block_on(store.append(storage::Append {
        stream: StreamId::from(&a),
        expected: storage::Expected::Exactly(read_by_a),
        events: records.iter().map(environment::Record::encode).collect(),
        catalog: None,
    }));
    assert!(matches!(
        late,
        Err(storage::Error::WrongExpectedVersion { .. })
    ));
}

#[test]
fn a_retrying_writer_sees_the_fence_count_move() {
    let store = MemoryStore::new();
    let (a, b) = (env_id("a"), env_id("b"));
    create(&store, &a, "a-name").expect("created");
    let before: Head<Option<Environment>> =
        block_on(stream::load(&store, &StreamId::from(&a))).expect("load");
    let fences = before.state.as_ref().expect("exists").fences;
    assert_eq!(claim(&store, "target", &a, 0), Ok(()));
    assert_eq!(claim(&store, "target", &b, LEASE_MS + 1), Ok(()));
    // `stream::write` catches up past the fence and decides again: the check refuses.
    let params: EnvironmentUpdateParams =
        serde_json::from_value(json!({"name": "target"})).expect("params");
    let mut head = before;
    let written = block_on(stream::write(
        &store,
        &StreamId::from(&a),
        &mut head,
        |env| {
            let env = env.as_ref().expect("exists");
            if env.fences != fences {
                return Err(environment::duplicate_name("target"));
            }
            environment::update(env, params.clone(), at(2))
        },
    ));
    assert!(matches!(written, Err(stream::Error::Rejected(_))));
    assert_eq!(head.state.expect("exists").settings.name, "a-name");
}
