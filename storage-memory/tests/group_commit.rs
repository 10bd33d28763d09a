//! Group commit inside a session (`core::session::heads`): writers of one session queued behind
//! an append in flight share the next append, each decided in queue order on the state the
//! earlier ones leave, with dense versions, one expected version per batch, and a refusal that
//! touches only its own writer. A store whose appends wait at a gate makes the queue form
//! deterministically; nothing here depends on timing. The same store counts reads, to show a
//! write on a head the store knows is current reads nothing.

use std::sync::{Arc, Condvar, Mutex};
use std::thread;

use futures::executor::block_on;
use managed_agents_core::event::{Body, EventParams};
use managed_agents_core::ids::{EnvironmentId, EventId, SessionId, WorkspaceId};
use managed_agents_core::session::heads::Heads;
use managed_agents_core::session::log::{self, Error};
use managed_agents_core::session::{Command, Created, Rejection, SessionRecord, Status};
use managed_agents_core::storage::{
    Append, Appended, CatalogEntry, CatalogPage, CatalogQuery, Direction, Kind, Record, Store,
    StreamId, Subscription, Version,
};
use managed_agents_core::time::Timestamp;
use managed_agents_storage_memory::MemoryStore;
use serde_json::json;

/// Counts appends and holds them while closed.
#[derive(Default)]
struct Gate {
    state: Mutex<GateState>,
    changed: Condvar,
}

#[derive(Default)]
struct GateState {
    closed: bool,
    appends: usize,
    waiting: usize,
    reads: usize,
}

impl Gate {
    fn lock(&self) -> std::sync::MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set(&self, closed: bool) {
        self.lock().closed = closed;
        self.changed.notify_all();
    }

    fn pass(&self) {
        let mut state = self.lock();
        state.appends += 1;
        state.waiting += 1;
        self.changed.notify_all();
        while state.closed {
            state = self.changed.wait(state).unwrap_or_else(|p| p.into_inner());
        }
        state.waiting -= 1;
    }

    fn wait_for_waiting(&self, n: usize) {
        let mut state = self.lock();
        while state.waiting < n {
            state = self.changed.wait(state).unwrap_or_else(|p| p.into_inner());
        }
    }
}

#[derive(Clone)]
struct Gated {
    inner: MemoryStore,
    gate: Arc<Gate>,
}

impl Gated {
    /// A fresh memory store behind an open gate.
    fn new() -> Self {
        Self {
            inner: MemoryStore::new(),
            gate: Arc::new(Gate::default()),
        }
    }
}

impl Store for Gated {
    async fn append(
        &self,
        append: Append,
    ) -> Result<Appended, managed_agents_core::storage::Error> {
        self.gate.pass();
        self.inner.append(append).await
    }

    async fn read(
        &self,
        stream: &StreamId,
        from: Version,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<Record>, managed_agents_core::storage::Error> {
        self.gate.lock().reads += 1;
        self.inner.read(stream, from, direction, limit).await
    }

    fn known_head(&self, stream: &StreamId) -> Option<Version> {
        self.inner.known_head(stream)
    }

    async fn head(
        &self,
        stream: &StreamId,
    ) -> Result<Version, managed_agents_core::storage::Error> {
        self.inner.head(stream).await
    }

    fn subscribe(&self, stream: &StreamId, after: Version) -> Subscription {
        self.inner.subscribe(stream, after)
    }

    async fn entry(
        &self,
        kind: Kind,
        id: &str,
    ) -> Result<Option<CatalogEntry>, managed_agents_core::storage::Error> {
        self.inner.entry(kind, id).await
    }

    async fn list(
        &self,
        query: &CatalogQuery,
    ) -> Result<CatalogPage, managed_agents_core::storage::Error> {
        self.inner.list(query).await
    }

    async fn delete(
        &self,
        kind: Kind,
        stream: &StreamId,
    ) -> Result<(), managed_agents_core::storage::Error> {
        self.inner.delete(kind, stream).await
    }

    async fn lease(
        &self,
        name: &str,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<Option<managed_agents_core::storage::Grant>, managed_agents_core::storage::Error>
    {
        self.inner.lease(name, holder, ttl).await
    }

    async fn release(
        &self,
        name: &str,
        holder: &str,
    ) -> Result<(), managed_agents_core::storage::Error> {
        self.inner.release(name, holder).await
    }
}

fn params(value: serde_json::Value) -> EventParams {
    serde_json::from_value(value).expect("valid params")
}

fn message(text: &str) -> EventParams {
    params(json!({"type": "user.message", "content": [{"type": "text", "text": text}]}))
}

fn create<S: Store>(store: &S) -> SessionId {
    let now = Timestamp::now();
    let id = SessionId::generate(now);
    let created = Created {
        id: id.clone(),
        workspace: WorkspaceId::generate(now),
        created_at: now,
        agent: serde_json::from_value(json!({
            "type": "agent", "id": "agent_01x", "version": 1, "name": "x",
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

/// The echoed events of one write with their versions.
type Echo = Vec<(Version, EventId)>;

fn echo(
    _: &managed_agents_core::session::SessionState,
    records: &[SessionRecord],
    first: Version,
) -> Echo {
    records
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.event().map(|e| (first + i as Version, e.id.clone())))
        .collect()
}

fn text_of(record: &SessionRecord) -> Option<String> {
    match &record.event()?.body {
        Body::UserMessage(m) => {
            let content = serde_json::to_value(&m.content).ok()?;
            content[0]["text"].as_str().map(str::to_owned)
        }
        _ => None,
    }
}

#[test]
fn writers_queued_behind_an_append_share_the_next_one_in_order() {
    let store = Gated::new();
    let id = create(&store);
    let created_appends = store.gate.lock().appends;
    let heads = Heads::new(16);
    const FOLLOWERS: usize = 6;
    store.gate.set(true);
    let (leader, followers, refused, invalid) = thread::scope(|scope| {
        let (store, heads, id) = (&store, &heads, &id);
        let leader = scope.spawn(move || {
            block_on(heads.commit_with(
                store,
                id,
                |_| true,
                || Command::Send(vec![message("leader")]),
                echo,
            ))
        });
        // The leader's append waits at the gate; everyone after it queues.
        store.gate.wait_for_waiting(1);
        let followers: Vec<_> = (0..FOLLOWERS)
            .map(|i| {
                scope.spawn(move || {
                    let text = format!("follower {i}");
                    let result = block_on(heads.commit_with(
                        store,
                        id,
                        |_| true,
                        move || Command::Send(vec![message(&text)]),
                        echo,
                    ));
                    (format!("follower {i}"), result)
                })
            })
            .collect();
        let refused = scope.spawn(move || {
            block_on(heads.commit_with(
                store,
                id,
                |_| false,
                || Command::Send(vec![message("other workspace")]),
                echo,
            ))
        });
        let invalid = scope.spawn(move || {
            let unknown = EventId::generate(Timestamp::now());
            block_on(heads.commit_with(
                store,
                id,
                |_| true,
                move || {
                    Command::Send(vec![params(json!({
                        "type": "user.tool_confirmation",
                        "tool_use_id": unknown.as_str(),
                        "result": "allow",
                    }))])
                },
                echo,
            ))
        });
        while heads.queued(id) < FOLLOWERS + 2 {
            thread::yield_now();
        }
        store.gate.set(false);
        (
            leader.join().expect("leader thread"),
            followers
                .into_iter()
                .map(|h| h.join().expect("follower thread"))
                .collect::<Vec<_>>(),
            refused.join().expect("refused thread"),
            invalid.join().expect("invalid thread"),
        )
    });

    assert_eq!(
        store.gate.lock().appends - created_appends,
        2,
        "the leader's append, then one append for every queued writer"
    );
    assert!(matches!(refused, Err(Error::NotFound(_))));
    assert!(matches!(
        invalid,
        Err(Error::Rejected(Rejection::Invalid(_)))
    ));

    let loaded = block_on(log::load(&store, &id)).expect("load");
    let at = |version: Version| &loaded.records[version as usize - 1];
    // The leader's message started a turn: user.message then session.status_running.
    let leader = leader.expect("leader");
    assert_eq!(leader.len(), 2);
    assert_eq!(leader[0].0, 2);
    assert_eq!(text_of(at(2)).as_deref(), Some("leader"));
    // Each follower's echo names its own record at its own version; the versions are dense and
    // follow the leader's, and the session was already running so no second status_running.
    let mut versions = Vec::new();
    for (text, result) in followers {
        let echoed = result.expect("follower");
        assert_eq!(echoed.len(), 1, "{text}: only its message");
        let (version, event) = &echoed[0];
        assert_eq!(text_of(at(*version)).as_deref(), Some(text.as_str()));
        assert_eq!(at(*version).event().map(|e| &e.id), Some(event));
        versions.push(*version);
    }
    versions.sort_unstable();
    assert_eq!(versions, (4..4 + FOLLOWERS as Version).collect::<Vec<_>>());
    assert_eq!(loaded.version(), 3 + FOLLOWERS as Version);
    assert_eq!(loaded.state.status, Status::Running);
    assert_eq!(loaded.state.inputs.len(), 1 + FOLLOWERS);
    // Event ids follow versions (a batch's writers are decided in queue order).
    let ids: Vec<&EventId> = loaded
        .records
        .iter()
        .filter_map(|r| r.event())
        .map(|e| &e.id)
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn many_writers_of_one_session_lose_nothing_and_keep_their_own_order() {
    let store = MemoryStore::new();
    let id = create(&store);
    let heads = Heads::new(16);
    const WRITERS: usize = 16;
    const EACH: usize = 20;
    thread::scope(|scope| {
        for writer in 0..WRITERS {
            let (store, heads, id) = (&store, &heads, &id);
            scope.spawn(move || {
                let mut last = 0;
                for i in 0..EACH {
                    let text = format!("{writer}-{i}");
                    let echoed = block_on(heads.commit_with(
                        store,
                        id,
                        |_| true,
                        move || Command::Send(vec![message(&text)]),
                        echo,
                    ))
                    .expect("commit");
                    assert!(echoed[0].0 > last, "a writer's writes keep their order");
                    last = echoed[0].0;
                }
            });
        }
    });
    let loaded = block_on(log::load(&store, &id)).expect("load");
    let texts: Vec<String> = loaded.records.iter().filter_map(text_of).collect();
    assert_eq!(texts.len(), WRITERS * EACH);
    for writer in 0..WRITERS {
        let mine: Vec<&String> = texts
            .iter()
            .filter(|t| t.starts_with(&format!("{writer}-")))
            .collect();
        let expected: Vec<String> = (0..EACH).map(|i| format!("{writer}-{i}")).collect();
        assert_eq!(mine, expected.iter().collect::<Vec<_>>());
    }
    let head = block_on(heads.read(&store, &id)).expect("head");
    assert_eq!(head.version, loaded.version());
    assert_eq!(
        head.state, loaded.state,
        "the cached head equals the fold of the log"
    );
}

#[test]
fn a_write_on_a_current_head_reads_nothing_and_a_stale_head_catches_up_first() {
    let store = Gated::new();
    let id = create(&store);
    let (ours, elsewhere) = (Heads::new(16), Heads::new(16));
    let send = |heads: &Heads, text: &'static str| {
        block_on(heads.commit_with(
            &store,
            &id,
            |_| true,
            move || Command::Send(vec![message(text)]),
            echo,
        ))
        .expect("commit")
    };
    let reads = || std::mem::take(&mut store.gate.lock().reads);
    send(&ours, "first");
    assert!(reads() > 0, "a head not cached yet is loaded");
    let second = send(&ours, "second");
    assert_eq!(
        reads(),
        0,
        "the store knows the head is current: nothing to read"
    );
    // Another writer (the runner, another node's cache) appends behind our head.
    send(&elsewhere, "elsewhere");
    reads();
    let third = send(&ours, "third");
    assert!(reads() > 0, "a stale head catches up before deciding");
    assert_eq!(
        third[0].0,
        second[0].0 + 2,
        "dense versions after the other write"
    );
    let loaded = block_on(log::load(&store, &id)).expect("load");
    let texts: Vec<String> = loaded.records.iter().filter_map(text_of).collect();
    assert_eq!(texts, ["first", "second", "elsewhere", "third"]);
    let head = block_on(ours.read(&store, &id)).expect("head");
    assert_eq!(head.state, loaded.state, "the cached head equals the fold");
}
