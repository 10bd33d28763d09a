//! Session budgets: the list cost folded from model requests, `model_not_budgetable` and amount
//! checks at creation, the pause (`session.usage` then `budget_reached`), what a paused session
//! accepts, and the resume when the cap is raised or removed.

mod support;

use managed_agents_core::event::{Body, StopReason};
use managed_agents_core::session::turn::{self, End};
use managed_agents_core::session::{
    decide, fold, Command, Fact, Rejection, Sequential, SessionRecord, SessionState, Status,
};
use managed_agents_core::time::Timestamp;
use serde_json::{json, Value};
use support::*;

fn now() -> Timestamp {
    Timestamp::from_millis(NOW)
}

fn budget(cents: &str) -> Value {
    json!({"type": "limit", "max_list_cost": {"amount": cents, "currency": "USD"}})
}

fn created_with(model: &str, cents: Option<&str>) -> Command {
    let mut created = config();
    created.agent.model.id = model.into();
    created.budget = cents.map(|c| serde_json::from_value(budget(c)).expect("budget"));
    Command::Create {
        created: Box::new(created),
        initial_events: Vec::new(),
    }
}

/// A session on claude-sonnet-4-5 ($3 / $15 per million tokens) with a cap of `cents`.
fn budgeted(cents: &str) -> SessionRecord {
    let mut created = config();
    created.budget = Some(serde_json::from_value(budget(cents)).expect("budget"));
    Fact::Created(Box::new(created)).into()
}

fn span_end(short: &str, input: u64, output: u64) -> SessionRecord {
    ev(
        short,
        2_000,
        json!({"type": "span.model_request_end", "model_request_start_id": "sevt_s1",
               "model_usage": {"input_tokens": input, "output_tokens": output,
                               "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                               "speed": null},
               "is_error": false}),
    )
}

fn decided(state: &SessionState, command: Command) -> Result<Vec<SessionRecord>, Rejection> {
    decide(state, command, now(), &mut Sequential::default())
}

fn after(given: &[SessionRecord], records: &[SessionRecord]) -> SessionState {
    let mut state = fold(given);
    records.iter().for_each(|r| state.apply(r));
    state
}

fn public_types(records: &[SessionRecord]) -> Vec<&'static str> {
    records
        .iter()
        .filter_map(SessionRecord::event)
        .map(|e| e.type_name())
        .collect()
}

#[test]
fn model_requests_add_their_list_cost() {
    let fresh = fold(&[budgeted("100")]);
    assert_eq!(
        fresh.usage.list_cost.as_ref().map(|c| c.amount.as_str()),
        Some("0")
    );
    // 400,000 in × $3/M = $1.20, 1,000 out × $15/M = $0.015: 121.5 cents, shown as 121.
    let spent = fold(&[budgeted("100"), running(), span_end("e1", 400_000, 1_000)]);
    assert_eq!(spent.list_cost_nanos, 1_215_000_000);
    assert_eq!(
        spent.usage.list_cost.as_ref().map(|c| c.amount.as_str()),
        Some("121")
    );
    assert!(spent.budget_exhausted());
    // Below the cap.
    let cheap = fold(&[budgeted("500"), running(), span_end("e1", 400_000, 1_000)]);
    assert!(!cheap.budget_exhausted());
    // Without a budget nothing is ever exhausted, but the cost is still known.
    let free = fold(&[created(), running(), span_end("e1", 400_000, 1_000)]);
    assert!(!free.budget_exhausted());
    assert_eq!(
        free.usage.list_cost.as_ref().map(|c| c.amount.as_str()),
        Some("121")
    );
}

#[test]
fn a_budget_needs_a_priced_model_and_whole_cents() {
    let empty = SessionState::default();
    let unpriced = decided(&empty, created_with("mock-model", Some("100"))).expect_err("unpriced");
    assert_eq!(unpriced.error_code(), Some("model_not_budgetable"));
    assert!(unpriced.to_string().contains("mock-model"), "{unpriced}");
    // Without a budget any model is fine.
    assert!(decided(&empty, created_with("mock-model", None)).is_ok());
    for bad in ["", "1.50", "-5", "0", "12abc", "1000000000000000000"] {
        let rejected =
            decided(&empty, created_with("claude-sonnet-4-6", Some(bad))).expect_err("bad amount");
        assert_eq!(rejected.status(), 400, "{bad:?}");
        assert!(
            rejected.to_string().contains("budget.max_list_cost.amount"),
            "{bad:?}: {rejected}"
        );
    }
    assert!(decided(&empty, created_with("claude-sonnet-4-6", Some("2500"))).is_ok());
}

#[test]
fn an_exhausted_budget_pauses_with_a_usage_snapshot() {
    let given = [budgeted("100"), running(), span_end("e1", 400_000, 1_000)];
    let state = fold(&given);
    let end = End {
        stop_reason: StopReason::BudgetReached,
        stop_details: None,
        why: "The tool call did not run.".into(),
    };
    let records = turn::finish(
        &state,
        Vec::new(),
        end.clone(),
        now(),
        &mut Sequential::default(),
    )
    .expect("pause");
    assert_eq!(
        public_types(&records),
        ["session.usage", "session.status_idle"]
    );
    let Some(Body::SessionUsage(usage)) = records[0].event().map(|e| &e.body) else {
        panic!("not a usage event: {:?}", records[0]);
    };
    assert_eq!(
        usage.usage.list_cost.as_ref().map(|c| c.amount.as_str()),
        Some("121")
    );
    assert!(usage.budget.is_some());
    let paused = after(&given, &records);
    assert!(paused.budget_paused());
    assert!(!paused.needs_turn());

    // A budget that is not exhausted does not pause.
    let cheap = fold(&[budgeted("500"), running(), span_end("e1", 400_000, 1_000)]);
    let refused = turn::finish(&cheap, Vec::new(), end, now(), &mut Sequential::default())
        .expect_err("not exhausted");
    assert_eq!(refused.status(), 400);
}

#[test]
fn a_raised_or_removed_cap_resumes_the_paused_turn() {
    let given = [
        budgeted("100"),
        running(),
        span_end("e1", 400_000, 1_000),
        budget_paused(),
    ];
    let paused = fold(&given);
    assert!(paused.budget_paused());

    // Not raised above what was spent.
    let low = decided(
        &paused,
        Command::Update(serde_json::from_value(json!({"budget": budget("121")})).expect("update")),
    )
    .expect_err("not raised");
    assert_eq!(low.error_code(), Some("budget_not_raised"));

    for raise in [budget("500"), Value::Null] {
        let update =
            Command::Update(serde_json::from_value(json!({"budget": raise})).expect("update"));
        let records = decided(&paused, update).expect("raise");
        assert_eq!(public_types(&records), ["session.updated"]);
        let resumable = after(&given, &records);
        assert!(!resumable.budget_paused(), "{raise}");
        assert!(resumable.needs_turn(), "{raise}");
        // The runner's turn starts without new input.
        let mut all = given.to_vec();
        all.extend(records);
        let started =
            turn::start(&resumable, &all, now(), &mut Sequential::default()).expect("resume");
        assert_eq!(public_types(&started.records), ["session.status_running"]);
        let running = after(&all, &started.records);
        assert_eq!(running.status, Status::Running);
        assert!(!running.needs_turn());
    }
}

#[test]
fn no_model_request_starts_once_the_budget_is_spent() {
    // $1.215 spent against a $1.00 cap.
    let given = [budgeted("100"), running(), span_end("e1", 400_000, 1_000)];
    let state = fold(given.iter());
    assert!(state.budget_exhausted());
    let start = turn::Step::ModelRequestStart(eid("s2"));
    let refused = turn::record(&state, start.clone(), now(), &mut Sequential::default());
    assert!(refused.is_err_and(|r| r.to_string() == turn::BUDGET_SPENT));
    // Under the cap it starts.
    let state = fold([budgeted("500"), running(), span_end("e1", 400_000, 1_000)].iter());
    assert!(turn::record(&state, start, now(), &mut Sequential::default()).is_ok());
}

#[test]
fn a_compaction_records_its_event_and_resets_the_context_size() {
    let given = vec![budgeted("500"), running(), span_end("e1", 200_000, 10)];
    let state = fold(given.iter());
    assert_eq!(state.context_tokens, 200_000);
    let step = turn::Step::Compacted {
        summary: "the story so far".into(),
        kept_parts: 0,
    };
    let records = turn::record(&state, step, now(), &mut Sequential::default()).expect("ok");
    let kinds: Vec<String> = records.iter().map(summarize_record).collect();
    assert_eq!(
        kinds,
        [
            "agent.thread_context_compacted",
            "internal.context_compacted"
        ]
    );
    assert_eq!(after(&given, &records).context_tokens, 0);
}
