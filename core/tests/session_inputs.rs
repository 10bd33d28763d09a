//! A session with many pending inputs (the runner off, or behind a long turn): the fold and
//! `decide` keep their answers, a turn consumes every input once with its `processed_at`, and a
//! copy of the state taken before is not affected (the inputs are a persistent list shared by
//! clones, so their number does not make an append cost more; see `session::Inputs`).

use managed_agents_core::event::EventParams;
use managed_agents_core::ids::{EnvironmentId, EventId, SessionId, WorkspaceId};
use managed_agents_core::session::{
    decide, turn, Command, Created, Fresh, InputKind, SessionRecord, SessionState, Status,
};
use managed_agents_core::time::Timestamp;
use serde_json::json;

const PENDING: usize = 5_000;

fn message(text: &str) -> EventParams {
    serde_json::from_value(
        json!({"type": "user.message", "content": [{"type": "text", "text": text}]}),
    )
    .expect("valid params")
}

fn created(now: Timestamp) -> Created {
    Created {
        id: SessionId::generate(now),
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
    }
}

/// Decides `command` on `state`, folds the records in and logs them.
fn commit(
    state: &mut SessionState,
    log: &mut Vec<SessionRecord>,
    command: Command,
    now: Timestamp,
) {
    let records = decide(state, command, now, &mut Fresh(now)).expect("accepted");
    for record in records {
        state.apply(&record);
        log.push(record);
    }
}

#[test]
fn thousands_of_pending_inputs_are_kept_in_order_and_consumed_once() {
    let now = Timestamp::from_millis(1_700_000_000_000);
    let (mut state, mut log) = (SessionState::default(), Vec::new());
    let create = Command::Create {
        created: Box::new(created(now)),
        initial_events: Vec::new(),
    };
    commit(&mut state, &mut log, create, now);
    let mut sent: Vec<EventId> = Vec::new();
    for i in 0..PENDING {
        let before = log.len();
        commit(
            &mut state,
            &mut log,
            Command::Send(vec![message(&format!("m{i}"))]),
            now,
        );
        sent.push(log[before].event().expect("echoed event").id.clone());
        // Only the first message starts the run; the others just queue.
        assert_eq!(log.len() - before, if i == 0 { 2 } else { 1 });
    }
    assert_eq!(state.status, Status::Running);
    assert_eq!(state.inputs.len(), PENDING);
    assert!(state.needs_turn());
    let pending: Vec<&EventId> = state.pending_input().iter().map(|i| &i.id).collect();
    assert_eq!(pending, sent.iter().collect::<Vec<_>>(), "oldest first");
    assert!(state
        .inputs
        .iter()
        .all(|i| i.kind == InputKind::Message && i.queued));

    let before = state.clone();
    let later = Timestamp::from_millis(now.millis() + 1_000);
    let started = turn::start(&state, &log, later, &mut Fresh(later)).expect("turn starts");
    for record in &started.records {
        state.apply(record);
    }
    assert!(state.inputs.is_empty(), "every input consumed");
    assert!(!state.needs_turn());
    assert_eq!(state.processed.len(), PENDING);
    // Processed at the turn's start, or earlier when a later event in the log is earlier (the
    // first message, followed by `session.status_running` at `now`).
    assert_eq!(state.processed.get(&sent[0]), Some(&now));
    assert!(sent[1..]
        .iter()
        .all(|id| state.processed.get(id) == Some(&later)));
    assert_eq!(
        before.inputs.len(),
        PENDING,
        "a copy taken before keeps its inputs"
    );
    assert!(before.processed.is_empty());
    // The fold of the whole log agrees with the state built step by step.
    let mut all = log.clone();
    all.extend(started.records);
    assert_eq!(managed_agents_core::session::fold(&all), state);
}
