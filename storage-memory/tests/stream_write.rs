//! `core::stream::write` over a real store: writers on separate threads (like separate
//! processes sharing a store) lose append races, catch up, decide again, and every decision
//! lands exactly once with the catalog entry of the state it leads to.

use std::thread;

use futures::executor::block_on;
use managed_agents_core::agent::{self, Agent, AgentUpdateParams};
use managed_agents_core::ids::{AgentId, WorkspaceId};
use managed_agents_core::object::Error;
use managed_agents_core::storage::{Kind, Store, StreamId};
use managed_agents_core::stream::{self, Head};
use managed_agents_core::time::Timestamp;
use managed_agents_storage_memory::MemoryStore;
use serde_json::json;

fn now() -> Timestamp {
    Timestamp::from_millis(1_775_536_063_000)
}

fn new_agent(store: &MemoryStore) -> AgentId {
    let id = AgentId::parse("agent_01race").expect("id");
    let params = serde_json::from_value(json!({"name": "v1", "model": "claude-sonnet-4-6"}))
        .expect("params");
    let workspace = WorkspaceId::parse("wrkspc_01race").expect("id");
    let records = agent::create(params, id.clone(), workspace, now()).expect("valid");
    block_on(stream::create::<_, Option<Agent>>(
        store,
        &StreamId::from(&id),
        records,
    ))
    .expect("created");
    id
}

#[test]
fn racing_writers_retry_and_each_decision_lands_once() {
    let store = MemoryStore::new();
    let id = new_agent(&store);
    let writers: Vec<_> = (0..8)
        .map(|i| {
            let (store, id) = (store.clone(), id.clone());
            thread::spawn(move || {
                let params: AgentUpdateParams =
                    serde_json::from_value(json!({ "system": format!("writer {i}") }))
                        .expect("params");
                let mut head = Head::<Option<Agent>>::default();
                block_on(stream::write(
                    &store,
                    &StreamId::from(&id),
                    &mut head,
                    |agent| {
                        let agent = agent
                            .as_ref()
                            .ok_or_else(|| Error::Conflict("gone".into()))?;
                        agent::update(agent, params.clone(), now())
                    },
                ))
                .expect("written despite lost races");
                head.version
            })
        })
        .collect();
    let mut versions: Vec<u64> = writers
        .into_iter()
        .map(|w| w.join().expect("writer"))
        .collect();
    versions.sort_unstable();
    assert_eq!(versions, (2..=9).collect::<Vec<_>>());
    let head: Head<Option<Agent>> =
        block_on(stream::load(&store, &StreamId::from(&id))).expect("load");
    let agent = head.state.expect("exists");
    assert_eq!(agent.version(), 9);
    assert_eq!(agent.stream_version, 9);
    let entry = block_on(store.entry(Kind::Agent, id.as_str()))
        .expect("entry")
        .expect("catalog entry");
    assert_eq!(entry, agent.catalog_entry());
}

#[test]
fn a_refusal_or_nothing_to_write_appends_nothing() {
    let store = MemoryStore::new();
    let id = new_agent(&store);
    let stream_id = StreamId::from(&id);
    let mut head = Head::<Option<Agent>>::default();
    let written = block_on(stream::write(&store, &stream_id, &mut head, |_| {
        Ok::<_, Error>(Vec::new())
    }))
    .expect("nothing to write");
    assert!(written.records.is_empty());
    assert_eq!(written.first_version, 2);
    let refused = block_on(stream::write(&store, &stream_id, &mut head, |_| {
        Err::<Vec<agent::Record>, _>(Error::Conflict("no".into()))
    }));
    assert!(matches!(
        refused,
        Err(stream::Error::Rejected(Error::Conflict(_)))
    ));
    assert_eq!(block_on(store.head(&stream_id)).expect("head"), 1);
    assert_eq!(head.version, 1, "a refusal keeps the caught-up head");
}
