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

use bytes::Bytes;
use managed_agents_core::ids::{EventId, SessionId};
use managed_agents_core::session::fence::{self, Fence};
use managed_agents_core::session::log::{self, Logged};
use managed_agents_core::session::turn::{self, End, Step};
use managed_agents_core::session::{Fresh, Rejection, SessionRecord, SessionState, Status};
use managed_agents_core::storage::{self, CatalogEntry, Store, StreamId, Version};
use managed_agents_core::stream::{self, Fold, Head};
use managed_agents_core::time::Timestamp;

use crate::conversation;

/// How many times [`log::write`] (which retries lost races itself) is called again after it
/// gave up on races: a busy session's clients may keep appending while a turn writes.
const ROUNDS: usize = 4;

/// What the writer keeps of a session: the folded state with every record, and the model
/// conversation folded from the same records. A [`Fold`], so every write (and every catch-up)
/// keeps the three in step; the runner keeps it between turns ([`crate::runner`]), and it is
/// only ever a cache of the log: a fold from nothing gives the same.
#[derive(Debug, Clone, Default)]
pub(crate) struct Transcript {
    pub(crate) logged: Logged,
    pub(crate) conversation: conversation::Builder,
}

impl Fold for Transcript {
    type Record = SessionRecord;

    fn decode(bytes: &[u8]) -> Result<SessionRecord, String> {
        <Logged as Fold>::decode(bytes)
    }

    fn encode(record: &SessionRecord) -> Bytes {
        record.encode()
    }

    fn apply(&mut self, record: &SessionRecord) {
        self.conversation.apply(record);
        self.logged.apply(record);
    }

    fn catalog_entry(&self) -> Option<CatalogEntry> {
        self.logged.catalog_entry()
    }
}

impl AsRef<SessionState> for Transcript {
    fn as_ref(&self) -> &SessionState {
        &self.logged.state
    }
}

/// Brings `head` (kept from an earlier turn, or empty) up to the log of session `id`, reading
/// only the records after it (nothing when the store knows the head is current). A stream now
/// shorter than the head (the session was deleted) is folded again from nothing, so a deleted
/// session is [`log::Error::NotFound`].
pub(crate) async fn catch_up<S: Store>(
    store: &S,
    id: &SessionId,
    mut head: Head<Transcript>,
) -> Result<Head<Transcript>, log::Error> {
    let stream = StreamId::from(id);
    if head.version > 0 {
        let current = match store.known_head(&stream) {
            Some(known) => known,
            None => store.head(&stream).await?,
        };
        if current < head.version {
            head = Head::default();
        }
    }
    stream::catch_up(store, &stream, &mut head)
        .await
        .map_err(|e| match e {
            stream::Error::Rejected(never) => match never {},
            stream::Error::Decode { message, .. } => log::Error::Decode {
                id: id.clone(),
                message,
            },
            stream::Error::Store(e) => log::Error::Store(e),
        })?;
    if !head.state.logged.state.exists() {
        return Err(log::Error::NotFound(id.clone()));
    }
    Ok(head)
}

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
    head: Head<Transcript>,
    before_end: Option<BeforeEnd>,
    /// Stage times of the turn's way to its first model response, when it was woken by
    /// [`crate::runner::Runner::notify`] (logged once by [`Writer::report`]).
    timeline: Option<Timeline>,
    /// The runner's lease on the session, when runners lease sessions.
    leased: Option<Leased>,
    /// For a child thread's writer: its session's log folded so far
    /// ([`Writer::thread_session`]).
    thread_session: Option<Head<SessionState>>,
}

/// When a turn reached each stage, in µs since the runner was notified; logged at `info` on
/// the target `managed_agents::timing` (off unless the log filter names it), which the
/// benchmarks read (`benches/src/bin/harness_load.rs`).
pub(crate) struct Timeline {
    woken: std::time::Instant,
    stages: Vec<(&'static str, u128)>,
}

impl Timeline {
    /// A timeline that starts now (the runner was notified).
    pub(crate) fn new() -> Self {
        Self {
            woken: std::time::Instant::now(),
            stages: Vec::new(),
        }
    }

    /// Records `stage` as reached now.
    pub(crate) fn mark(&mut self, stage: &'static str) {
        self.stages.push((stage, self.woken.elapsed().as_micros()));
    }
}

/// Whether stage timelines are logged at all.
pub(crate) fn timing() -> bool {
    tracing::enabled!(target: "managed_agents::timing", tracing::Level::INFO)
}

/// Work run once right before the turn's end is written (`attach`: the session's outputs
/// stored as files), so what it produces exists when a client sees the idle event.
pub(crate) type BeforeEnd =
    Box<dyn FnOnce() -> futures::future::BoxFuture<'static, ()> + Send + Sync>;

/// What stopped a write before anything was decided.
enum Stop {
    Interrupted,
    Ended,
    /// Another runner claimed the session with this greater token.
    Fenced(u64),
}

/// The lease a runner holds on a session while it drives it (and its child threads): its
/// holder and fencing token ([`managed_agents_core::session::fence`]). Every write of a
/// [`Writer`] with a lease claims the stream first or is refused once another runner has.
#[derive(Debug, Clone)]
pub(crate) struct Leased {
    pub(crate) holder: std::sync::Arc<str>,
    pub(crate) token: u64,
}

/// Decides with `decide` on `state` under `leased` (when the runner holds a lease): when another
/// runner has claimed the stream nothing is decided, `lost` gets the successor's token and no
/// record is returned; else the decided records, with this runner's claim first when it has not
/// claimed the stream yet. Without a lease, `decide` alone.
fn decide_leased<E>(
    leased: Option<&Leased>,
    state: &SessionState,
    now: Timestamp,
    lost: &mut Option<u64>,
    decide: impl FnOnce() -> Result<Vec<SessionRecord>, E>,
) -> Result<Vec<SessionRecord>, E> {
    *lost = None;
    let Some(leased) = leased else {
        return decide();
    };
    let claim = match fence::check(state, &leased.holder, leased.token, now) {
        Fence::Held => None,
        Fence::Claim(claim) => Some(*claim),
        Fence::Lost { by } => {
            *lost = Some(by);
            return Ok(Vec::new());
        }
    };
    let mut records = decide()?;
    if let (Some(claim), false) = (claim, records.is_empty()) {
        records.insert(0, claim);
    }
    Ok(records)
}

/// [`log::write`] under `leased` (when the runner holds a lease): the decided records begin
/// with the runner's claim when it has not claimed the stream yet, and nothing is written once
/// another runner has ([`Halt::Gone`]). For the runner's writes that do not go through a
/// [`Writer`] (a coordinator's deliveries to its child threads).
pub(crate) async fn write_leased<S: Store, F>(
    store: &S,
    id: &SessionId,
    head: &mut Head<F>,
    leased: Option<&Leased>,
    mut decide: impl FnMut(&F) -> Result<Vec<SessionRecord>, Rejection>,
) -> Result<stream::Written<SessionRecord>, log::Error>
where
    F: Fold<Record = SessionRecord> + Default + AsRef<SessionState>,
{
    let mut lost = None;
    let written = log::write(store, id, head, |folded| {
        decide_leased(leased, folded.as_ref(), Timestamp::now(), &mut lost, || {
            decide(folded)
        })
    })
    .await?;
    match lost {
        Some(by) => Err(log::Error::Store(storage::Error::Backend(lost_message(
            id, by,
        )))),
        None => Ok(written),
    }
}

fn lost_message(id: &SessionId, by: u64) -> String {
    format!("session {id}: its lease passed to another runner (token {by}); this runner stops")
}

impl<S: Store> Writer<S> {
    /// A writer for session `id` from `head` (caught up by [`catch_up`]).
    pub(crate) fn new(store: S, id: SessionId, head: Head<Transcript>) -> Self {
        Self {
            store,
            id,
            head,
            before_end: None,
            timeline: None,
            leased: None,
            thread_session: None,
        }
    }

    /// Writes under `leased` from now on (see [`Leased`]).
    pub(crate) fn lease(&mut self, leased: Option<Leased>) {
        self.leased = leased;
    }

    /// The lease it writes under.
    pub(crate) fn leased(&self) -> Option<&Leased> {
        self.leased.as_ref()
    }

    /// Times this turn's stages from `timeline` on ([`Writer::mark`]).
    pub(crate) fn time(&mut self, timeline: Option<Timeline>) {
        self.timeline = timeline;
    }

    /// Records `stage` as reached now, when the turn is timed.
    pub(crate) fn mark(&mut self, stage: &'static str) {
        if let Some(timeline) = &mut self.timeline {
            timeline.mark(stage);
        }
    }

    /// Marks `stage`, then logs the timeline and stops timing.
    pub(crate) fn report(&mut self, stage: &'static str) {
        self.mark(stage);
        if let Some(timeline) = self.timeline.take() {
            let stages: Vec<String> = timeline
                .stages
                .iter()
                .map(|(stage, us)| format!("{stage}={us}"))
                .collect();
            tracing::info!(target: "managed_agents::timing", session = %self.id,
                stages = %stages.join(" "), "turn");
        }
    }

    /// What the writer folded, for the next turn (empty after a failed write: the next turn
    /// folds the log again).
    pub(crate) fn into_head(self) -> Head<Transcript> {
        self.head
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
        &self.head.state.logged.state
    }

    /// Every record of the session as of the last write or catch-up.
    pub(crate) fn records(&self) -> &[SessionRecord] {
        &self.head.state.logged.records
    }

    /// The model conversation as of the last write or catch-up.
    pub(crate) fn conversation(&self) -> conversation::Conversation {
        self.head.state.conversation.conversation()
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
            let written = log::write(&self.store, &self.id, &mut self.head, |transcript| {
                stop = None;
                let logged = &transcript.logged;
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
                let mut lost = None;
                let decided = decide_leased(self.leased.as_ref(), state, now, &mut lost, || {
                    decide(state, &logged.records, now, &mut Fresh(now))
                });
                stop = lost.map(Stop::Fenced);
                decided
            })
            .await;
            return match (written, stop) {
                (Ok(_), Some(Stop::Fenced(by))) => Err(Halt::Gone(lost_message(&self.id, by))),
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

    /// For a child thread's writer: the session the thread belongs to as its log is now,
    /// caught up from where the previous call left it (a child's turn checks its session's
    /// budget before each model request, and each check after the first reads only what was
    /// appended since). `None` for a session's own writer, or when the log cannot be read.
    pub(crate) async fn thread_session(&mut self) -> Option<&SessionState> {
        let (session, _) = self.state().thread_of.clone()?;
        let head = self.thread_session.get_or_insert_with(Head::default);
        match stream::catch_up(&self.store, &StreamId::from(&session), head).await {
            Ok(()) => self.thread_session.as_ref().map(|head| &head.state),
            Err(e) => {
                tracing::warn!(session = %session, error = %e, "cannot read the thread's session");
                self.thread_session = None;
                None
            }
        }
    }

    /// Whether the session's budget is spent, as of the log now (what others appended since
    /// the last write, such as the LLM gateway's spans, included). For a child thread's
    /// writer, the budget of the session the thread belongs to ([`Writer::child_budget_spent`]).
    pub(crate) async fn budget_spent(&mut self) -> bool {
        let caught_up = self.write(false, |_, _, _, _| Ok(Vec::new())).await;
        if caught_up.is_err() {
            return false;
        }
        if self.state().is_child_thread() {
            self.child_budget_spent().await
        } else {
            self.state().budget_exhausted()
        }
    }

    /// For a child thread's writer: whether its session's budget is spent, counting what the
    /// child spent since its usage was last rolled up (core's `thread::budget_spent` on the
    /// session's log as it is now, read incrementally: [`Writer::thread_session`]). Never for
    /// a session's own writer.
    pub(crate) async fn child_budget_spent(&mut self) -> bool {
        if !self.state().is_child_thread() {
            return false;
        }
        let child = self.state().clone();
        match self.thread_session().await {
            Some(session) => managed_agents_core::session::thread::budget_spent(session, &child),
            None => false,
        }
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

    /// The outcome the agent's finished work is graded against, if any ([`turn::to_grade`]).
    pub(crate) fn grading(&self) -> Option<turn::Grading> {
        turn::to_grade(self.state(), self.records())
    }

    /// Opens an outcome evaluation ([`turn::evaluation_start`]); stops when an interrupt is
    /// pending.
    pub(crate) async fn evaluation_start(&mut self, grading: &turn::Grading) -> Result<(), Halt> {
        self.write(true, |state, _, now, ids| {
            turn::evaluation_start(state, grading, now, ids).map(|(_, records)| records)
        })
        .await
        .map(drop)
    }

    /// A heartbeat of the running evaluation ([`turn::evaluation_ongoing`]); stops when an
    /// interrupt is pending.
    pub(crate) async fn evaluation_ongoing(&mut self, grading: &turn::Grading) -> Result<(), Halt> {
        self.write(true, |state, _, now, ids| {
            turn::evaluation_ongoing(state, grading, now, ids)
        })
        .await
        .map(drop)
    }

    /// Closes the running evaluation with the grader's answer ([`turn::evaluation_end`]);
    /// whether the agent revises. Stops when an interrupt is pending.
    pub(crate) async fn evaluation_end(
        &mut self,
        grading: &turn::Grading,
        graded: turn::Graded,
    ) -> Result<turn::Next, Halt> {
        let mut next = turn::Next::Done;
        self.write(true, |state, _, now, ids| {
            let (records, decided) =
                turn::evaluation_end(state, grading, graded.clone(), now, ids)?;
            next = decided;
            Ok(records)
        })
        .await?;
        Ok(next)
    }

    /// Settles a session no turn runs for ([`turn::recover`]; `resume`: how a turn cut short
    /// goes on); whether anything was written.
    pub(crate) async fn recover(&mut self, resume: turn::Resume) -> Result<bool, Halt> {
        let written = self
            .write(false, |state, log, now, ids| {
                Ok(turn::recover(state, log, resume, now, ids)?.unwrap_or_default())
            })
            .await?;
        Ok(written > 0)
    }
}
