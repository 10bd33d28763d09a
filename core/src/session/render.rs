//! Projections of a folded session for the API: the Session object (section 6.4) and events
//! with their `processed_at` resolved.

use serde::Serialize;
use serde_json::Value;

use super::state::{Outcome, SessionState};
use crate::agent::AgentSnapshot;
use crate::event::{Budget, Event, OutcomeResult, Usage};
use crate::resource::{Resource, ResourceObject};
use crate::time::Timestamp;

#[derive(Serialize)]
struct Stats {
    active_seconds: Option<f64>,
    duration_seconds: Option<f64>,
}

#[derive(Serialize)]
struct OutcomeEvaluation<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    outcome_id: &'a str,
    description: &'a str,
    iteration: u32,
    result: OutcomeResult,
    explanation: Option<&'a str>,
    completed_at: Option<Timestamp>,
}

impl<'a> From<&'a Outcome> for OutcomeEvaluation<'a> {
    fn from(o: &'a Outcome) -> Self {
        Self {
            kind: "outcome_evaluation",
            outcome_id: o.outcome_id.as_str(),
            description: &o.description,
            iteration: o.iteration,
            result: o.result,
            explanation: o.explanation.as_deref(),
            completed_at: o.completed_at,
        }
    }
}

#[derive(Serialize)]
struct Object<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    status: &'static str,
    agent: Option<&'a AgentSnapshot>,
    environment_id: &'a str,
    title: Option<&'a str>,
    metadata: &'a std::collections::BTreeMap<String, String>,
    resources: Vec<ResourceObject>,
    vault_ids: Vec<&'a str>,
    outcome_evaluations: Vec<OutcomeEvaluation<'a>>,
    stats: Stats,
    usage: Usage,
    budget: Option<&'a Budget>,
    deployment_id: Option<&'a str>,
    created_at: Timestamp,
    updated_at: Timestamp,
    archived_at: Option<Timestamp>,
}

fn seconds(millis: i64) -> f64 {
    millis as f64 / 1000.0
}

impl SessionState {
    /// Seconds spent running up to `now` (including a run in progress).
    pub fn active_seconds(&self, now: Timestamp) -> f64 {
        let current = self
            .running_since
            .map_or(0, |since| (now.millis() - since.millis()).max(0));
        seconds(self.active_millis + current)
    }

    /// The Session object (API section 6.4) as of `now`, or `None` if the session does not
    /// exist. `now` only feeds `stats` and `usage.active_seconds`.
    pub fn render(&self, now: Timestamp) -> Option<Value> {
        let config = self.config.as_ref()?;
        let active = self.active_seconds(now);
        let end = self.terminated_at.unwrap_or(now);
        let mut usage = self.usage.clone();
        usage.active_seconds = Some(active);
        let object = Object {
            id: config.id.as_str(),
            kind: "session",
            status: self.shown_status().as_str(),
            agent: self.agent.as_deref(),
            environment_id: config.environment_id.as_str(),
            title: self.title.as_deref(),
            metadata: &self.metadata,
            resources: self.resources.iter().map(Resource::render).collect(),
            vault_ids: config.vault_ids.iter().map(|v| v.as_str()).collect(),
            outcome_evaluations: self.outcomes.iter().map(OutcomeEvaluation::from).collect(),
            stats: Stats {
                active_seconds: Some(active),
                duration_seconds: Some(seconds((end.millis() - self.created_at.millis()).max(0))),
            },
            usage,
            budget: self.budget.as_ref(),
            deployment_id: None,
            created_at: self.created_at,
            updated_at: self.updated_at,
            archived_at: self.archived_at,
        };
        serde_json::to_value(object).ok()
    }

    /// `event` as the API shows it now: a queued client event gets the `processed_at` its
    /// `inputs_processed` fact recorded, or stays `null` while still queued.
    pub fn render_event(&self, event: &Event) -> Event {
        let mut shown = event.clone();
        if shown.processed_at.is_none() {
            shown.processed_at = self.processed.get(&event.id).copied();
        }
        shown
    }
}
