//! Given-records / when-evaluation / then-records tests of the outcome loop's decisions in
//! `session::turn` (`to_grade`, `evaluation_start`/`_ongoing`/`_end`, and `interrupt` with an
//! outcome active). `expect` is `"<records> => <state> <outcome>"` or `"<status> <message>"`,
//! where `<outcome>` is `iteration/result` of the session's first outcome.

mod support;

use managed_agents_core::event::{Body, ModelUsage, OutcomeResult};
use managed_agents_core::session::turn::{self, Graded, Grading, Next, Verdict};
use managed_agents_core::session::{
    fold, IdSource, Rejection, Sequential, SessionRecord, SessionState,
};
use managed_agents_core::time::Timestamp;
use serde_json::json;
use support::*;

fn now() -> Timestamp {
    Timestamp::from_millis(NOW)
}

fn outcome_of(state: &SessionState) -> String {
    match state.outcomes.first() {
        Some(o) => {
            let result = serde_json::to_value(o.result).expect("json");
            format!("{}/{}", o.iteration, result.as_str().unwrap_or("?"))
        }
        None => "-".into(),
    }
}

fn token(record: &SessionRecord) -> String {
    match record.event().map(|e| &e.body) {
        Some(Body::SpanOutcomeEvaluationStart(s)) => format!("eval_start({})", s.iteration),
        Some(Body::SpanOutcomeEvaluationOngoing(s)) => format!("eval_ongoing({})", s.iteration),
        Some(Body::SpanOutcomeEvaluationEnd(e)) => {
            let result = serde_json::to_value(e.result).expect("json");
            format!(
                "eval_end({},{})",
                e.iteration,
                result.as_str().unwrap_or("?")
            )
        }
        _ => summarize_record(record),
    }
}

fn render(state: &SessionState, result: &Result<Vec<SessionRecord>, Rejection>) -> String {
    match result {
        Ok(records) => {
            let mut after = state.clone();
            records.iter().for_each(|r| after.apply(r));
            let tokens: Vec<_> = records.iter().map(token).collect();
            format!(
                "{} => {} {}",
                tokens.join(", "),
                summarize_state(&after),
                outcome_of(&after)
            )
        }
        Err(rejection) => format!("{} {rejection}", rejection.status()),
    }
}

fn assert_is(got: String, expect: &str) {
    assert_eq!(got, expect, "\n  got: {got}\n want: {expect}");
}

fn define(max_iterations: Option<u32>) -> SessionRecord {
    ev(
        "o1",
        500,
        json!({"type": "user.define_outcome", "outcome_id": "outc_01x", "description": "a report",
               "rubric": {"type": "text", "content": "has a summary"},
               "max_iterations": max_iterations, "processed_at": null}),
    )
}

/// A turn working on an outcome: created, defined, running, the definition consumed, the
/// agent's answer.
fn working(max_iterations: Option<u32>) -> Vec<SessionRecord> {
    vec![
        created(),
        define(max_iterations),
        running(),
        processed(&["o1"], 1_000),
        ev(
            "am1",
            1_500,
            json!({"type": "agent.message", "content": [{"type": "text", "text": "draft"}]}),
        ),
    ]
}

fn graded(verdict: Verdict) -> Graded {
    Graded {
        verdict,
        explanation: "because".into(),
        usage: ModelUsage {
            input_tokens: 7,
            output_tokens: 3,
            ..ModelUsage::default()
        },
    }
}

/// The log after `log`'s outcome is evaluated with `verdict` (start then end); the grading and
/// what follows.
fn evaluate(log: &mut Vec<SessionRecord>, verdict: Verdict) -> (Grading, Next) {
    let mut ids = Sequential::default();
    let state = fold(&*log);
    let grading = turn::to_grade(&state, log).expect("an outcome to grade");
    let (_, start) = turn::evaluation_start(&state, &grading, now(), &mut ids).expect("start");
    log.extend(start);
    let state = fold(&*log);
    let (end, next) =
        turn::evaluation_end(&state, &grading, graded(verdict), now(), &mut ids).expect("end");
    log.extend(end);
    (grading, next)
}

#[test]
fn the_outcome_to_grade_is_the_active_one_with_its_definition() {
    // Nothing defined, or defined but not yet taken up by a turn: nothing to grade.
    assert_eq!(turn::to_grade(&fold(&[created(), msg("m1")]), &[]), None);
    let queued = vec![created(), define(None)];
    assert_eq!(turn::to_grade(&fold(&queued), &queued), None);

    let log = working(None);
    let grading = turn::to_grade(&fold(&log), &log).expect("graded");
    assert_eq!(grading.outcome_id.as_str(), "outc_01x");
    assert_eq!(
        (grading.iteration, grading.max_iterations),
        (0, turn_default_max())
    );
    assert_eq!(grading.description, "a report");

    let log = working(Some(5));
    assert_eq!(
        turn::to_grade(&fold(&log), &log).map(|g| g.max_iterations),
        Some(5)
    );
}

fn turn_default_max() -> u32 {
    managed_agents_core::event::DEFAULT_MAX_ITERATIONS
}

#[test]
fn an_evaluation_starts_beats_and_ends() {
    let log = working(None);
    let state = fold(&log);
    let grading = turn::to_grade(&state, &log).expect("graded");
    let mut ids = Sequential::default();

    // No heartbeat or end without a start.
    let early = turn::evaluation_ongoing(&state, &grading, now(), &mut ids);
    assert_is(
        render(&state, &early),
        "409 no evaluation of outcome outc_01x is running",
    );

    let started = turn::evaluation_start(&state, &grading, now(), &mut ids).map(|(_, r)| r);
    assert_is(
        render(&state, &started),
        "eval_start(0) => running 0/evaluating",
    );
    let mut log = log;
    log.extend(started.expect("started"));
    let state = fold(&log);
    assert_eq!(
        state.outcomes[0]
            .evaluation_start
            .as_ref()
            .map(|e| e.as_str()),
        Some("sevt_new1")
    );
    let beat = turn::evaluation_ongoing(&state, &grading, now(), &mut ids);
    assert_is(
        render(&state, &beat),
        "eval_ongoing(0) => running 0/evaluating",
    );
    let ended = turn::evaluation_end(
        &state,
        &grading,
        graded(Verdict::Satisfied),
        now(),
        &mut ids,
    )
    .map(|(records, _)| records);
    assert_is(
        render(&state, &ended),
        "eval_end(0,satisfied) => running 0/satisfied",
    );
    // The end names its start, and the grader's usage counts in the session's.
    let end = ended.expect("ended");
    let Some(Body::SpanOutcomeEvaluationEnd(body)) = end[0].event().map(|e| &e.body) else {
        panic!("not an end")
    };
    assert_eq!(body.outcome_evaluation_start_id.as_str(), "sevt_new1");
    let mut after = state.clone();
    after.apply(&end[0]);
    assert_eq!(
        after.usage.input_tokens,
        Some(state.usage.input_tokens.unwrap_or(0) + 7)
    );
    assert!(after.outcomes[0].completed_at.is_some());
    // ...and its list cost, at the agent's model's price (the grader runs on that model).
    assert!(after.list_cost_nanos > state.list_cost_nanos);
}

#[test]
fn evaluations_are_rejected_outside_a_turn_or_when_no_outcome_is_active() {
    let mut log = working(None);
    let (grading, next) = evaluate(&mut log, Verdict::Satisfied);
    assert_eq!(next, Next::Done);
    let state = fold(&log);
    assert_eq!(turn::to_grade(&state, &log), None);
    let again =
        turn::evaluation_start(&state, &grading, now(), &mut Sequential::default()).map(|(_, r)| r);
    assert_is(
        render(&state, &again),
        "409 outcome outc_01x is not being worked on",
    );

    let mut idle_log = working(None);
    idle_log.push(idle());
    let state = fold(&idle_log);
    let grading = turn::to_grade(&state, &idle_log).expect("still active");
    let idle_start =
        turn::evaluation_start(&state, &grading, now(), &mut Sequential::default()).map(|(_, r)| r);
    assert_is(
        render(&state, &idle_start),
        "409 the session is idle, not in a turn",
    );
}

#[test]
fn the_verdict_decides_whether_the_agent_works_again() {
    // satisfied and failed end the loop.
    let mut log = working(None);
    assert_eq!(evaluate(&mut log, Verdict::Failed).1, Next::Done);
    assert_eq!(outcome_of(&fold(&log)), "0/failed");

    // needs_revision: the agent revises, the next evaluation is iteration 1.
    let mut log = working(None);
    let (_, next) = evaluate(&mut log, Verdict::NeedsRevision);
    assert_eq!(next, Next::Revise);
    let state = fold(&log);
    assert_eq!(outcome_of(&state), "0/needs_revision");
    assert_eq!(state.outcomes[0].completed_at, None);
    assert_eq!(turn::to_grade(&state, &log).map(|g| g.iteration), Some(1));
    let (_, next) = evaluate(&mut log, Verdict::Satisfied);
    assert_eq!(next, Next::Done);
    assert_eq!(outcome_of(&fold(&log)), "1/satisfied");
}

#[test]
fn a_revision_asked_by_the_last_iteration_is_max_iterations_reached() {
    let mut log = working(Some(2));
    assert_eq!(evaluate(&mut log, Verdict::NeedsRevision).1, Next::Revise);
    // The last allowed evaluation: recorded as max_iterations_reached, one final turn follows.
    assert_eq!(evaluate(&mut log, Verdict::NeedsRevision).1, Next::Revise);
    let state = fold(&log);
    assert_eq!(outcome_of(&state), "1/max_iterations_reached");
    assert_eq!(
        state.outcomes[0].result,
        OutcomeResult::MaxIterationsReached
    );
    assert!(state.outcomes[0].completed_at.is_some());
    // ...after which nothing is graded.
    assert_eq!(turn::to_grade(&state, &log), None);

    // max_iterations 1: the first evaluation is the last.
    let mut log = working(Some(1));
    evaluate(&mut log, Verdict::NeedsRevision);
    assert_eq!(outcome_of(&fold(&log)), "0/max_iterations_reached");
}

#[test]
fn an_interrupt_ends_the_active_outcome() {
    // While the grader runs: its evaluation ends interrupted.
    let mut log = working(None);
    let state = fold(&log);
    let grading = turn::to_grade(&state, &log).expect("graded");
    let (start, records) =
        turn::evaluation_start(&state, &grading, now(), &mut Sequential::default()).expect("start");
    log.extend(records);
    log.push(ev("i1", 2_500, json!({"type": "user.interrupt"})));
    let state = fold(&log);
    let mut ids = Sequential::default();
    ids.event(); // sevt_new1 is the start's id
    let records = turn::interrupt(&state, None, now(), &mut ids);
    assert_is(
        render(&state, &records),
        "eval_end(0,interrupted), internal.inputs_processed, idle(end_turn) => idle 0/interrupted",
    );
    let records = records.expect("interrupted");
    let Some(Body::SpanOutcomeEvaluationEnd(end)) = records[0].event().map(|e| &e.body) else {
        panic!("not an end")
    };
    assert_eq!(end.outcome_evaluation_start_id, start);
    assert_eq!(end.explanation, turn::OUTCOME_INTERRUPTED);

    // While the agent revises (no evaluation open): the next iteration's evaluation is
    // opened and closed at once.
    let mut log = working(None);
    evaluate(&mut log, Verdict::NeedsRevision);
    log.push(ev("i1", 2_500, json!({"type": "user.interrupt"})));
    let state = fold(&log);
    let records = turn::interrupt(&state, None, now(), &mut Sequential::default());
    assert_is(
        render(&state, &records),
        "eval_start(1), eval_end(1,interrupted), internal.inputs_processed, idle(end_turn) => idle 1/interrupted",
    );

    // No outcome active: the interrupt is as before.
    let mut log = working(None);
    evaluate(&mut log, Verdict::Satisfied);
    log.push(ev("i1", 2_500, json!({"type": "user.interrupt"})));
    let state = fold(&log);
    let records = turn::interrupt(&state, None, now(), &mut Sequential::default());
    assert_is(
        render(&state, &records),
        "internal.inputs_processed, idle(end_turn) => idle 0/satisfied",
    );
}
