//! `core::session::log` over a real store: creation, fenced appends, and concurrent commits
//! that lose races and decide again without losing or duplicating anything.

use std::thread;

use futures::executor::block_on;
use managed_agents_core::event::{Body, EventParams};
use managed_agents_core::ids::{EnvironmentId, SessionId, WorkspaceId};
use managed_agents_core::session::log::{self, Error};
use managed_agents_core::session::{Command, Created, Status};
use managed_agents_core::storage::{self, CatalogQuery, Kind, Store};
use managed_agents_core::time::Timestamp;
use managed_agents_storage_memory::MemoryStore;
use serde_json::json;

fn message(text: &str) -> EventParams {
    serde_json::from_value(
        json!({"type": "user.message", "content": [{"type": "text", "text": text}]}),
    )
    .expect("valid params")
}

fn create(store: &MemoryStore, workspace: &WorkspaceId) -> SessionId {
    let now = Timestamp::now();
    let id = SessionId::generate(now);
    let created = Created {
        id: id.clone(),
        workspace: workspace.clone(),
        created_at: now,
        agent: serde_json::from_value(json!({
            "type": "agent", "id": "agent_01x", "version": 3, "name": "x",
            "model": {"id": "claude-sonnet-4-5", "speed": "standard", "effort": {"type": "high"}, "inference_geo": null},
        }))
        .expect("snapshot"),
        environment_id: EnvironmentId::generate(now),
        title: None,
        metadata: Default::default(),
        resources: Vec::new(),
        vault_ids: Vec::new(),
        budget: None,
    };
    let command = Command::Create {
        created: Box::new(created),
        initial_events: Vec::new(),
    };
    block_on(log::create(store, &id, command, now)).expect("create");
    id
}

#[test]
fn create_writes_the_catalog_entry_and_load_folds() {
    let store = MemoryStore::new();
    let workspace = WorkspaceId::generate(Timestamp::now());
    let id = create(&store, &workspace);
    let loaded = block_on(log::load(&store, &id)).expect("load");
    assert_eq!(loaded.state.status, Status::Idle);
    let entry = block_on(store.entry(Kind::Session, id.as_str()))
        .expect("entry")
        .expect("present");
    assert_eq!(entry.workspace, workspace.as_str());
    assert_eq!(entry.agent, Some(("agent_01x".to_owned(), 3)));
    assert_eq!(entry.status.as_deref(), Some("idle"));

    let missing = SessionId::generate(Timestamp::now());
    assert!(matches!(
        block_on(log::load(&store, &missing)),
        Err(Error::NotFound(_))
    ));
}

#[test]
fn a_stale_append_is_fenced_off() {
    let store = MemoryStore::new();
    let id = create(&store, &WorkspaceId::generate(Timestamp::now()));
    let stale = block_on(log::load(&store, &id)).expect("load");
    block_on(log::commit(
        &store,
        &id,
        |_| true,
        || Command::Send(vec![message("first")]),
    ))
    .expect("send");
    let lost = block_on(log::append(&store, &stale, Vec::new()));
    assert!(matches!(
        lost,
        Err(Error::Store(storage::Error::WrongExpectedVersion { .. }))
    ));
    let running = CatalogQuery {
        statuses: vec!["running".into()],
        ..CatalogQuery::new(
            Kind::Session,
            stale
                .state
                .config
                .as_ref()
                .expect("created")
                .workspace
                .as_str(),
        )
    };
    assert_eq!(
        block_on(store.list(&running)).expect("list").entries.len(),
        1,
        "the catalog follows the fold"
    );
}

#[test]
fn concurrent_commits_retry_and_keep_every_message_once() {
    let store = MemoryStore::new();
    let id = create(&store, &WorkspaceId::generate(Timestamp::now()));
    thread::scope(|scope| {
        for writer in 0..8 {
            let store = store.clone();
            let id = id.clone();
            scope.spawn(move || {
                for i in 0..5 {
                    let text = format!("{writer}-{i}");
                    // A commit that lost every one of its races (eight writers on two cores
                    // can starve one) wrote nothing and says so: its writer sends it again.
                    loop {
                        let committed = block_on(log::commit(
                            &store,
                            &id,
                            |_| true,
                            || Command::Send(vec![message(&text)]),
                        ));
                        match committed {
                            Ok(_) => break,
                            Err(Error::Store(storage::Error::WrongExpectedVersion { .. })) => {
                                continue
                            }
                            Err(other) => panic!("commit: {other:?}"),
                        }
                    }
                }
            });
        }
    });
    let loaded = block_on(log::load(&store, &id)).expect("load");
    let mut texts: Vec<String> = loaded
        .records
        .iter()
        .filter_map(|r| r.event())
        .filter_map(|e| match &e.body {
            Body::UserMessage(m) => serde_json::to_value(&m.content).ok(),
            _ => None,
        })
        .map(|v| v[0]["text"].as_str().unwrap_or_default().to_owned())
        .collect();
    texts.sort();
    let mut expected: Vec<String> = (0..8)
        .flat_map(|w| (0..5).map(move |i| format!("{w}-{i}")))
        .collect();
    expected.sort();
    assert_eq!(texts, expected);
    assert_eq!(loaded.state.status, Status::Running);
}

#[test]
fn commit_refuses_a_session_the_caller_may_not_see() {
    let store = MemoryStore::new();
    let id = create(&store, &WorkspaceId::generate(Timestamp::now()));
    let refused = block_on(log::commit(
        &store,
        &id,
        |_| false,
        || Command::Send(vec![message("x")]),
    ));
    assert!(matches!(refused, Err(Error::NotFound(_))));
    let loaded = block_on(log::load(&store, &id)).expect("load");
    assert_eq!(loaded.state.status, Status::Idle, "nothing was written");
}

#[test]
fn heads_queue_writers_and_catch_up_with_other_writers() {
    use managed_agents_core::session::heads::Heads;
    let store = MemoryStore::new();
    let id = create(&store, &WorkspaceId::generate(Timestamp::now()));
    let heads = Heads::new(4);
    thread::scope(|scope| {
        for writer in 0..16 {
            let (store, id, heads) = (store.clone(), id.clone(), &heads);
            scope.spawn(move || {
                for i in 0..5 {
                    let text = format!("{writer}-{i}");
                    block_on(heads.commit(
                        &store,
                        &id,
                        |_| true,
                        move || Command::Send(vec![message(&text)]),
                    ))
                    .expect("commit through heads");
                }
            });
        }
    });
    // A writer that does not share the cache (as the harness does) appends behind its back.
    block_on(log::commit(
        &store,
        &id,
        |_| true,
        || Command::Send(vec![message("outside")]),
    ))
    .expect("outside");
    let head = block_on(heads.read(&store, &id)).expect("head");
    let loaded = block_on(log::load(&store, &id)).expect("load");
    assert_eq!(
        head.version,
        loaded.version(),
        "the head caught up with the log"
    );
    assert_eq!(head.state.inputs.len(), loaded.state.inputs.len());
    assert_eq!(loaded.state.inputs.len(), 16 * 5 + 1);
    // Writes through the cache after the outside append are fenced correctly too.
    block_on(heads.commit(
        &store,
        &id,
        |_| true,
        || Command::Send(vec![message("last")]),
    ))
    .expect("commit");
    assert_eq!(
        block_on(log::load(&store, &id))
            .expect("load")
            .state
            .inputs
            .len(),
        16 * 5 + 2
    );

    heads.forget(&id);
    block_on(store.delete(
        Kind::Session,
        &managed_agents_core::storage::StreamId::from(&id),
    ))
    .expect("delete");
    assert!(matches!(
        block_on(heads.read(&store, &id)),
        Err(Error::NotFound(_))
    ));
}

#[test]
fn the_catalog_entry_follows_the_state_when_appends_skip_an_unchanged_entry() {
    use managed_agents_core::session::heads::Heads;
    let store = MemoryStore::new();
    let id = create(&store, &WorkspaceId::generate(Timestamp::now()));
    let heads = Heads::new(4);
    let entry = |store: &MemoryStore| {
        block_on(store.entry(Kind::Session, id.as_str()))
            .expect("entry")
            .expect("present")
    };
    let state = |store: &MemoryStore| {
        block_on(log::load(store, &id))
            .expect("load")
            .state
            .catalog_entry()
            .expect("entry of the state")
    };
    // The first message makes the session running: the entry changes and is filed.
    let send = |text: &'static str| {
        block_on(heads.commit(
            &store,
            &id,
            |_| true,
            move || Command::Send(vec![message(text)]),
        ))
        .expect("send")
    };
    send("one");
    assert_eq!(entry(&store).status.as_deref(), Some("running"));
    assert_eq!(entry(&store), state(&store));
    // A second one changes nothing the catalog shows: the entry is still the state's.
    send("two");
    assert_eq!(entry(&store), state(&store));
    assert_eq!(
        block_on(log::load(&store, &id))
            .expect("load")
            .state
            .inputs
            .len(),
        2
    );
}
