//! The one sink a turn writes through. Each write decides its records with
//! [`managed_agents_core::session::turn`] on the current state (the clock read once per
//! attempt, fresh ids) and appends them through
//! [`managed_agents_core::session::log::write`], the one write primitive: catch the folded
//! head up from the log, decide, append at the expected version, retry a lost race.
//!
//! A lost race means a client appended meanwhile; the head catches up and the write decides
//! again on the new state. If what arrived includes an interrupt an ordinary write stops
//! ([`Halt::Interrupted`], nothing is written); ending a turn ([`Writer::finish`] and friends)
//! writes whatever arrived meanwhile.

use managed_agents_core::ids::{EventId, SessionId};
use managed_agents_core::session::log::{self, Loaded, Logged};
use managed_agents_core::session::turn::{self, End, Step};
use managed_agents_core::session::{Fresh, Rejection, SessionRecord, SessionState, Status};
use managed_agents_core::storage::{self, Store, Version};
use managed_agents_core::stream::Head;
use managed_agents_core::time::Timestamp;

/// How many times [`log::write`] (which retries lost races itself) is called again after it
/// gave up on races: a busy session's clients may keep appending while a turn writes.
const ROUNDS: usize = 4;

/// Why a turn cannot go on writing.
#[derive(Debug)]
pub(crate) enum Halt {
    /// A `user.interrupt` arrived.
    Interrupted,
    /// The session is gone, ended, refused the records, or the store failed; nothing more can
    /// be written.
    Gone(String),
}

/// Appends a turn's records at the expected version, keeping the folded session current.
pub(crate) struct Writer<S> {
    store: S,
    id: SessionId,
    head: Head<Logged>,
    before_end: Option<BeforeEnd>,
}

/// Work run once right before the turn's end is written (`attach`: the session's outputs
/// stored as files), so what it produces exists when a client sees the idle event.
pub(crate) type BeforeEnd =
    Box<dyn FnOnce() -> futures::future::BoxFuture<'static, ()> + Send + Sync>;

/// What stopped a write before anything was decided.
enum Stop {
    Interrupted,
    Ended,
}

impl<S: Store> Writer<S> {
    pub(crate) fn new(store: S, loaded: Loaded) -> Self {
        let version = loaded.version();
        Self {
            store,
            id: loaded.id,
            head: Head {
                state: Logged {
                    state: loaded.state,
                    records: loaded.records,
                },
                version,
            },
            before_end: None,
        }
    }

    /// Runs `hook` right before the turn's end ([`Writer::finish`], [`Writer::fail`],
    /// [`Writer::interrupted`]) is written.
    pub(crate) fn before_end(&mut self, hook: BeforeEnd) {
        self.before_end = Some(hook);
    }

    async fn run_before_end(&mut self) {
        if let Some(hook) = self.before_end.take() {
            hook().await;
        }
    }

    pub(crate) fn id(&self) -> &SessionId {
        &self.id
    }

    /// The store it writes to.
    pub(crate) fn store(&self) -> &S {
        &self.store
    }

    /// The folded session as of the last write or catch-up.
    pub(crate) fn state(&self) -> &SessionState {
        &self.head.state.state
    }

    /// Every record of the session as of the last write or catch-up.
    pub(crate) fn records(&self) -> &[SessionRecord] {
        &self.head.state.records
    }

    /// The stream version [`Writer::state`] reflects.
    pub(crate) fn version(&self) -> Version {
        self.head.version
    }

    /// Decides with `decide` on the caught-up state and appends; returns how many records were
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
        for _ in 0..ROUNDS {
            let mut stop = None;
            let written = log::write(&self.store, &self.id, &mut self.head, |logged| {
                stop = None;
                let state = &logged.state;
                if state.status == Status::Terminated {
                    stop = Some(Stop::Ended);
                    return Ok(Vec::new());
                }
                if stop_on_interrupt && state.interrupt.is_some() {
                    stop = Some(Stop::Interrupted);
                    return Ok(Vec::new());
                }
                let now = Timestamp::now();
                decide(state, &logged.records, now, &mut Fresh(now))
            })
            .await;
            return match (written, stop) {
                (Ok(_), Some(Stop::Interrupted)) => Err(Halt::Interrupted),
                (Ok(_), Some(Stop::Ended)) => Err(Halt::Gone(format!("session {} ended", self.id))),
                (Ok(written), None) => Ok(written.records.len()),
                (Err(log::Error::Store(storage::Error::WrongExpectedVersion { .. })), _) => {
                    continue
                }
                (Err(e), _) => Err(Halt::Gone(e.to_string())),
            };
        }
        Err(Halt::Gone(format!(
            "session {}: lost every append race for {ROUNDS} rounds",
            self.id
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

    /// Records one step ([`turn::record`]) whatever arrived meanwhile: the LLM gateway's span
    /// ends, which count even when an interrupt is pending or the turn has ended.
    pub(crate) async fn settle(&mut self, step: Step) -> Result<(), Halt> {
        self.write(false, |state, _, now, ids| {
            turn::record(state, step.clone(), now, ids)
        })
        .await
        .map(drop)
    }

    /// Ends the turn ([`turn::finish`]) whatever arrived meanwhile: `steps`, an error result
    /// for every built-in call still open, pending interrupts consumed, idle.
    pub(crate) async fn finish(&mut self, steps: Vec<Step>, end: End) -> Result<(), Halt> {
        self.run_before_end().await;
        self.write(false, |state, _, now, ids| {
            turn::finish(state, steps.clone(), end.clone(), now, ids)
        })
        .await
        .map(drop)
    }

    /// Ends the turn with a terminal `unknown_error` carrying `message` ([`turn::fail`]).
    pub(crate) async fn fail(&mut self, message: String) -> Result<(), Halt> {
        self.run_before_end().await;
        self.write(false, |state, _, now, ids| {
            turn::fail(state, message.clone(), now, ids)
        })
        .await
        .map(drop)
    }

    /// Ends a turn an interrupt stopped ([`turn::interrupt`]).
    pub(crate) async fn interrupted(&mut self, open_span: Option<EventId>) -> Result<(), Halt> {
        self.run_before_end().await;
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
