//! The one sink a turn writes through: appends records to the session at the expected version
//! with [`managed_agents_core::session::log::append`], and keeps the folded session current.
//!
//! A lost race (`WrongExpectedVersion`) means a client appended meanwhile. The writer reloads;
//! if what arrived includes an interrupt the turn must stop ([`Halt::Interrupted`], nothing is
//! written), otherwise (queued messages, say) the records are appended again on top.

use managed_agents_core::event::{Body, Event, StatusIdle, StopReason};
use managed_agents_core::ids::{EventId, SessionId};
use managed_agents_core::session::log::{self, Loaded};
use managed_agents_core::session::{InputKind, SessionRecord, Status, ToolKind};
use managed_agents_core::storage::{self, Store};
use managed_agents_core::time::Timestamp;

/// How often one append is retried after losing races to client input.
const RETRIES: usize = 64;

/// Why a turn cannot go on writing.
#[derive(Debug)]
pub(crate) enum Halt {
    /// A `user.interrupt` arrived.
    Interrupted,
    /// The session is gone, ended, or the store failed; nothing more can be written.
    Gone(String),
}

/// Appends a turn's records at the expected version.
pub(crate) struct Writer<S> {
    store: S,
    pub(crate) loaded: Loaded,
}

impl<S: Store> Writer<S> {
    pub(crate) fn new(store: S, loaded: Loaded) -> Self {
        Self { store, loaded }
    }

    pub(crate) fn id(&self) -> &SessionId {
        &self.loaded.id
    }

    pub(crate) async fn reload(&mut self) -> Result<(), Halt> {
        self.loaded = log::load(&self.store, &self.loaded.id)
            .await
            .map_err(|e| Halt::Gone(e.to_string()))?;
        Ok(())
    }

    /// Appends `records`; stops with [`Halt::Interrupted`] when an interrupt is pending.
    pub(crate) async fn emit(&mut self, records: Vec<SessionRecord>) -> Result<(), Halt> {
        self.append(records, true).await
    }

    /// Appends `records` whatever arrived meanwhile (used to end a turn).
    pub(crate) async fn emit_final(&mut self, records: Vec<SessionRecord>) -> Result<(), Halt> {
        self.append(records, false).await
    }

    async fn append(
        &mut self,
        records: Vec<SessionRecord>,
        stop_on_interrupt: bool,
    ) -> Result<(), Halt> {
        if records.is_empty() {
            return Ok(());
        }
        for _ in 0..RETRIES {
            let state = &self.loaded.state;
            if !state.exists() || state.status == Status::Terminated {
                return Err(Halt::Gone(format!("session {} ended", self.loaded.id)));
            }
            if stop_on_interrupt && state.interrupt.is_some() {
                return Err(Halt::Interrupted);
            }
            match log::append(&self.store, &self.loaded, records.clone()).await {
                Ok(committed) => {
                    self.loaded.records.extend(committed.records);
                    self.loaded.state = committed.state;
                    return Ok(());
                }
                Err(log::Error::Store(storage::Error::WrongExpectedVersion { .. })) => {
                    self.reload().await?;
                }
                Err(e) => return Err(Halt::Gone(e.to_string())),
            }
        }
        Err(Halt::Gone(format!(
            "session {}: lost {RETRIES} append races in a row",
            self.loaded.id
        )))
    }

    /// Ends the turn: closes what is open (`extra`, then an error result for every built-in
    /// tool call still without one), consumes pending interrupts, and goes idle.
    pub(crate) async fn finish(
        &mut self,
        mut extra: Vec<SessionRecord>,
        why: &str,
        stop_reason: StopReason,
        stop_details: Option<managed_agents_core::event::StopDetails>,
    ) -> Result<(), Halt> {
        self.reload().await?;
        let now = Timestamp::now();
        let closed: Vec<EventId> = extra
            .iter()
            .filter_map(|r| match r.event().map(|e| &e.body) {
                Some(Body::AgentToolResult(r)) => Some(r.tool_use_id.clone()),
                _ => None,
            })
            .collect();
        let waiting: &[EventId] = match &stop_reason {
            StopReason::RequiresAction { event_ids } => event_ids,
            _ => &[],
        };
        let state = &self.loaded.state;
        for (id, kind) in &state.open_tool_uses {
            if *kind == ToolKind::Builtin
                && !state.pending_actions.contains(id)
                && !waiting.contains(id)
                && !closed.contains(id)
            {
                extra.push(super::tool_result(id.clone(), why, true, now));
            }
        }
        let interrupts: Vec<EventId> = state
            .inputs
            .iter()
            .filter(|i| i.kind == InputKind::Interrupt)
            .map(|i| i.id.clone())
            .collect();
        if !interrupts.is_empty() {
            extra.push(SessionRecord::inputs_processed(interrupts, now));
        }
        extra.push(
            Event::new(
                EventId::generate(now),
                now,
                Body::SessionStatusIdle(StatusIdle {
                    stop_reason,
                    stop_details,
                }),
            )
            .into(),
        );
        self.emit_final(extra).await
    }
}
