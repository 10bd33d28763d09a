//! The one sink a turn writes through. Each write decides its records with
//! [`managed_agents_core::session::turn`] on the current state (with the clock read once per
//! attempt and fresh ids) and appends them with
//! [`managed_agents_core::session::log::append`] at the expected version, keeping the folded
//! session current.
//!
//! A lost race (`WrongExpectedVersion`) means a client appended meanwhile. The writer reloads;
//! if what arrived includes an interrupt an ordinary write stops ([`Halt::Interrupted`],
//! nothing is written), otherwise (queued messages, say) it decides again on the new state and
//! appends on top. Ending a turn ([`Writer::finish`]) writes whatever arrived meanwhile.

use managed_agents_core::ids::{EventId, SessionId};
use managed_agents_core::session::log::{self, Loaded};
use managed_agents_core::session::turn::{self, End, Step};
use managed_agents_core::session::{Fresh, Rejection, SessionRecord, SessionState, Status};
use managed_agents_core::storage::{self, Store};
use managed_agents_core::time::Timestamp;

/// How often one write is retried after losing races to client input.
const RETRIES: usize = 64;

/// Why a turn cannot go on writing.
#[derive(Debug)]
pub(crate) enum Halt {
    /// A `user.interrupt` arrived.
    Interrupted,
    /// The session is gone, ended, refused the records, or the store failed; nothing more can
    /// be written.
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

    /// Decides with `decide` on the current state and appends; returns how many records were
    /// written. With `stop_on_interrupt`, stops with [`Halt::Interrupted`] when an interrupt is
    /// pending.
    async fn write(
        &mut self,
        stop_on_interrupt: bool,
        mut decide: impl FnMut(
            &SessionState,
            &[SessionRecord],
            Timestamp,
            &mut Fresh,
        ) -> Result<Vec<SessionRecord>, Rejection>,
    ) -> Result<usize, Halt> {
        for _ in 0..RETRIES {
            let state = &self.loaded.state;
            if !state.exists() || state.status == Status::Terminated {
                return Err(Halt::Gone(format!("session {} ended", self.loaded.id)));
            }
            if stop_on_interrupt && state.interrupt.is_some() {
                return Err(Halt::Interrupted);
            }
            let now = Timestamp::now();
            let records = decide(state, &self.loaded.records, now, &mut Fresh(now))
                .map_err(|r| Halt::Gone(format!("session {}: {r}", self.loaded.id)))?;
            if records.is_empty() {
                return Ok(0);
            }
            let count = records.len();
            match log::append(&self.store, &self.loaded, records).await {
                Ok(committed) => {
                    self.loaded.records.extend(committed.records);
                    self.loaded.state = committed.state;
                    return Ok(count);
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

    /// Starts a turn ([`turn::start`]); returns the confirmations it consumed.
    pub(crate) async fn start(&mut self) -> Result<Vec<EventId>, Halt> {
        let mut confirmations = Vec::new();
        self.write(true, |state, log, now, ids| {
            let started = turn::start(state, log, now, ids)?;
            confirmations = started.confirmations;
            Ok(started.records)
        })
        .await?;
        Ok(confirmations)
    }

    /// Records one step ([`turn::record`]); stops when an interrupt is pending.
    pub(crate) async fn record(&mut self, step: Step) -> Result<(), Halt> {
        self.write(true, |state, _, now, ids| {
            turn::record(state, step.clone(), now, ids)
        })
        .await
        .map(drop)
    }

    /// Ends the turn ([`turn::finish`]) whatever arrived meanwhile: `steps`, an error result
    /// for every built-in call still open, pending interrupts consumed, idle.
    pub(crate) async fn finish(&mut self, steps: Vec<Step>, end: End) -> Result<(), Halt> {
        self.reload().await?;
        self.write(false, |state, _, now, ids| {
            turn::finish(state, steps.clone(), end.clone(), now, ids)
        })
        .await
        .map(drop)
    }

    /// Ends the turn with a terminal `unknown_error` carrying `message` ([`turn::fail`]).
    pub(crate) async fn fail(&mut self, message: String) -> Result<(), Halt> {
        self.reload().await?;
        self.write(false, |state, _, now, ids| {
            turn::fail(state, message.clone(), now, ids)
        })
        .await
        .map(drop)
    }

    /// Ends a turn an interrupt stopped ([`turn::interrupt`]).
    pub(crate) async fn interrupted(&mut self, open_span: Option<EventId>) -> Result<(), Halt> {
        self.reload().await?;
        self.write(false, |state, _, now, ids| {
            turn::interrupt(state, open_span.clone(), now, ids)
        })
        .await
        .map(drop)
    }

    /// Settles a session no turn runs for ([`turn::recover`]); whether anything was written.
    pub(crate) async fn recover(&mut self) -> Result<bool, Halt> {
        let written = self
            .write(false, |state, log, now, ids| {
                Ok(turn::recover(state, log, now, ids)?.unwrap_or_default())
            })
            .await?;
        Ok(written > 0)
    }
}
