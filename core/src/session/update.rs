//! Session update (`POST /v1/sessions/{id}`): title and metadata patches, the session-local
//! agent snapshot and the budget, validated into one `session.updated` event.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::rejection::Rejection;
use super::state::{SessionState, Status};
use crate::agent::AgentSnapshot;
use crate::event::{Budget, SessionUpdated};
use crate::patch::Patch;
use crate::pricing;
use crate::validate::{self, FieldError};

/// An update body. `metadata: null` (the whole bag) changes nothing; a `null` value deletes
/// its key.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct Update {
    /// The new title; `null` clears it.
    #[serde(default)]
    pub title: Patch<String>,
    /// Keys to upsert (string) or delete (`null`).
    #[serde(default)]
    pub metadata: Patch<BTreeMap<String, Option<String>>>,
    /// The full agent snapshot after the change. The HTTP body carries only
    /// `{tools?, mcp_servers?}`; the caller merges it into the current snapshot (agent module)
    /// and puts the result here. Requires an idle session.
    #[serde(skip)]
    pub agent: Option<Box<AgentSnapshot>>,
    /// The new budget; `null` removes it (one-way).
    #[serde(default)]
    pub budget: Patch<Budget>,
    /// Reserved: any value is rejected.
    #[serde(default)]
    pub vault_ids: Option<Value>,
}

/// Checks a budget's amount: a positive whole number of cents, written as digits.
pub(crate) fn check_budget(budget: &Budget) -> Result<u128, Rejection> {
    let Budget::Limit { max_list_cost } = budget;
    let digits = &max_list_cost.amount;
    let cap =
        (!digits.is_empty() && digits.len() <= 15 && digits.bytes().all(|b| b.is_ascii_digit()))
            .then(|| pricing::cap_nanos(budget))
            .flatten()
            .filter(|cap| *cap > 0);
    cap.ok_or_else(|| {
        Rejection::invalid(
            "budget.max_list_cost.amount",
            format!(
                "{digits:?} is not a budget: give a positive whole number of cents as a string \
                 of digits (\"2500\" is $25.00)"
            ),
        )
    })
}

/// Validates `update` against `state` and returns the changed fields, or `None` when nothing
/// changes. The caller has checked that the session exists and is not archived.
pub(crate) fn changes(
    state: &SessionState,
    update: Update,
) -> Result<Option<SessionUpdated>, Rejection> {
    if update.vault_ids.is_some() {
        return Err(Rejection::invalid(
            "vault_ids",
            "cannot be updated; vaults are fixed at session creation",
        ));
    }
    let mut out = SessionUpdated::default();
    match update.title {
        Patch::Absent => {}
        Patch::Null if state.title.is_some() => out.title = Some(None),
        Patch::Value(title) if state.title.as_ref() != Some(&title) => {
            out.title = Some(Some(title))
        }
        _ => {}
    }
    if let Patch::Value(patch) = &update.metadata {
        let merged = validate::patch_metadata("metadata", &state.metadata, patch, false)?;
        if merged != state.metadata {
            out.metadata = Some(Some(merged));
        }
    }
    if let Some(agent) = update.agent {
        if let Some(why) = state.turn_open() {
            return Err(Rejection::Conflict(format!(
                "agent: {why}; the agent can be updated only while it is idle"
            )));
        }
        if state.status != Status::Idle {
            return Err(Rejection::Conflict(format!(
                "agent: the session is {}; the agent can be updated only while it is idle",
                state.status
            )));
        }
        if state.agent.as_deref() != Some(&*agent) {
            let value = serde_json::to_value(&agent)
                .map_err(|e| Rejection::invalid("agent", e.to_string()))?;
            out.agent = Some(Some(value));
        }
    }
    if !update.budget.is_absent() && state.status == Status::Terminated {
        return Err(Rejection::invalid(
            "budget",
            "cannot be changed on a terminated session",
        ));
    }
    match update.budget {
        Patch::Absent => {}
        Patch::Null if state.budget.is_some() => out.budget = Some(None),
        Patch::Null => {}
        Patch::Value(budget) => {
            if state.budget.is_none() {
                return Err(FieldError::new(
                    "budget",
                    "can only be set when the session is created",
                )
                .with_code("budget_create_only")
                .into());
            }
            let cap = check_budget(&budget)?;
            if cap <= state.list_cost_nanos {
                return Err(FieldError::new(
                    "budget.max_list_cost.amount",
                    format!(
                        "must exceed the list cost already consumed ({} cents)",
                        pricing::amount(state.list_cost_nanos).amount
                    ),
                )
                .with_code("budget_not_raised")
                .into());
            }
            if state.budget.as_ref() != Some(&budget) {
                out.budget = Some(Some(budget));
            }
        }
    }
    let unchanged = out == SessionUpdated::default();
    Ok((!unchanged).then_some(out))
}
