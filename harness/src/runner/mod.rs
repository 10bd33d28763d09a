//! The runner: notices sessions with unprocessed input and drives them, one turn at a time per
//! session, through their engine.
//!
//! # Discovery
//!
//! The server calls [`Runner::notify`] after every successful `POST /v1/sessions/{id}/events`
//! and after creating a session with `initial_events`. On start-up [`Runner::start`] scans the
//! catalog of every workspace for sessions that are `running` or `rescheduling` and notifies
//! them.
//!
//! # One task per session
//!
//! A notified session gets a task unless it already has one; a notification for a session
//! whose task is busy is remembered and the task looks again when its turn ends. The task
//! catches up the session's folded log (state, records and model conversation, kept between
//! turns by [`kept`], so only records appended since the last turn are read; a session not
//! kept is folded from nothing) and, while `SessionState::needs_turn` holds, runs a turn: it
//! appends what [`managed_agents_core::session::turn::start`] decides (the `inputs_processed`
//! fact consuming every pending input, and `session.status_running` if the session was idle),
//! then hands the session to the engine ([`crate::engine`]). Input sent during a turn is queued
//! by `decide` and taken by the next turn, in order. Every record is decided by
//! [`managed_agents_core::session::turn`] and appended by the harness's writer
//! (`crate::writer`) at the expected version; the runner and the engine only perform effects.
//!
//! While a turn runs, the task subscribes to the session's stream; a `user.interrupt` stops
//! the model request or the tool at once and the turn ends with `end_turn`.
//!
//! # Pending-action timeout
//!
//! With [`Options::requires_action_timeout`] set, a session task that finds its session idle
//! in `requires_action` asks core for the deadline
//! ([`managed_agents_core::session::SessionState::action_deadline`]): past it, it commits
//! [`Command::ExpireActions`] (core denies every pending call with "no response within N s",
//! as a client's deny would) and runs the turn that follows; before it, it arms one timer per
//! session that notifies the session at the deadline. A client's answer in between makes
//! the timer's wake a no-op (core decides on the state of the moment). The first
//! [`Runner::start`] also notifies every idle session once, so a session whose deadline
//! passed while the server was down is resolved at start-up, and the others get their timer.
//!
//! # Recovery (decision)
//!
//! A session found `running`/`rescheduling` whose current turn had already started (the
//! runner consumed input, or wrote agent, span, error or rescheduling events since the last
//! idle; [`managed_agents_core::session::turn::recover`] decides, matching on the event enum)
//! belonged to a process that died. A restart is a reschedule, not a failure: the runner
//! appends `session.status_rescheduled` (open model request spans ended as errors, running
//! tool calls closed with an error result saying the server restarted) and runs the turn on
//! ([`resumable`] says how). A resident engine goes on from its log: the model request that
//! was in flight is made again, and read-only calls (`read`, `glob`, `grep`) are run again. An
//! agent CLI (`claude`, `codex`) is started again on the conversation it keeps in the
//! workspace and told that its turn was cut (every call it had running is closed). A turn
//! paused on `requires_action` stays paused. A child thread's turn ran inside its
//! coordinator's delegation call, so it is settled as before: an error result for each open
//! call, a terminal `session.error` and idle `end_turn`, and the coordinator's call gets the
//! restart's error result (its model decides whether to delegate again). Input that was
//! queued but not yet consumed is processed by the resumed turn. A session that is `running`
//! but whose turn never started (the process died between the client's send and the runner)
//! simply runs.
//!
//! Failures that are not the model's (no LLM vault, an unknown or unavailable engine, a missing
//! agent runtime, an unreadable agent, a workspace that cannot be created) end the turn with a
//! terminal `session.error` (`unknown_error`) and idle `end_turn`, never a hang.

mod kept;
mod lease;
mod prepare;
pub(crate) mod setup;

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use managed_agents_core::event::{Body, Event, EventParams};
use managed_agents_core::ids::EventId;
use managed_agents_core::ids::{SessionId, ThreadId};
use managed_agents_core::session::log;
use managed_agents_core::session::turn::{self, End, Resume, Step};
use managed_agents_core::session::{Command, SessionRecord, SessionState, Status};
use managed_agents_core::storage::{self, CatalogQuery, Kind, Order, Store, StreamId};
use managed_agents_core::time::Timestamp;
use managed_agents_core::vault::SealedSecret;
use tokio::sync::watch;

pub use crate::options::{Backoff, Leasing, Options};
pub use setup::{BASE_URL_KEY, ENGINE_KEY, ROLE_KEY};

use crate::attach;
use crate::engine::{claude, codex, Turn, TurnAgent};
use crate::model::Endpoint;
use crate::previews::Previews;
use crate::sandbox::{Network, Sandbox};
use crate::writer::{write_leased, Halt, Leased, Writer};
use setup::Engine;

/// Opens sealed vault secrets, and seals new ones (the server's sealing key lives in the
/// server). Implemented for any `Fn(&SealedSecret) -> Option<String>`, which cannot seal.
pub trait SecretOpener: Send + Sync + 'static {
    /// The plaintext of `sealed`, or `None` when it cannot be opened.
    fn open(&self, sealed: &SealedSecret) -> Option<String>;

    /// `plaintext` sealed for the store: how OAuth tokens the egress proxy refreshed are put
    /// back into the vault (`door::credentials`). `None` (the default): this opener cannot
    /// seal, and `mcp_oauth` credentials are not refreshed.
    fn seal(&self, _plaintext: &str) -> Option<SealedSecret> {
        None
    }
}

impl<F> SecretOpener for F
where
    F: Fn(&SealedSecret) -> Option<String> + Send + Sync + 'static,
{
    fn open(&self, sealed: &SealedSecret) -> Option<String> {
        self(sealed)
    }
}

struct Inner<S, X> {
    store: S,
    sandbox: X,
    secrets: Arc<dyn SecretOpener>,
    options: Options,
    previews: Previews,
    http: reqwest::Client,
    /// Claude Code processes kept between turns (blocked on a permission prompt).
    claude: claude::Processes,
    /// Codex app-servers kept between turns (waiting for a tool confirmation).
    codex: codex::Servers,
    /// The `bash` tool's persistent shells, one per session.
    shells: crate::tools::Shells,
    /// Sessions with a task, and whether they were notified again while it ran.
    active: Mutex<HashMap<SessionId, Arc<AtomicBool>>>,
    /// The MCP tools each session listed (resident engines).
    mcp: crate::mcp::Cache,
    /// Sessions' folded logs between turns.
    kept: kept::Kept,
    /// The pending-action deadline each session's armed timer wakes it at.
    timers: Mutex<HashMap<SessionId, Timestamp>>,
    /// Whether [`Runner::start`] has looked for idle sessions waiting on an action.
    scanned_waiting: AtomicBool,
    /// With [`Options::leasing`]: the fencing token of each session whose lease this runner
    /// holds (see [`lease`]).
    leases: Mutex<HashMap<SessionId, u64>>,
    /// With [`Options::leasing`]: when this runner last failed to take each session's lease.
    refused: Mutex<HashMap<SessionId, std::time::Instant>>,
    /// With [`Options::leasing`]: leases kept while the session's agent process waits on a
    /// confirmation (see [`lease`]).
    parked: Mutex<HashMap<SessionId, lease::Parked>>,
    /// Shutting down: no lease is taken or renewed ([`Runner::release_leases`]).
    stopping: Arc<AtomicBool>,
    /// Halted: no session task starts ([`Runner::halt`]).
    halted: AtomicBool,
}

impl<S, X> Inner<S, X> {
    /// The lease this runner writes stream `stream` (in `state`) under: its session's.
    fn leased(&self, stream: &SessionId, state: &SessionState) -> Option<Leased> {
        let leasing = self.options.leasing.as_ref()?;
        let session = state
            .thread_of
            .as_ref()
            .map_or(stream, |(session, _)| session);
        let token = *lock(&self.leases).get(session)?;
        Some(Leased {
            holder: Arc::from(leasing.holder.as_str()),
            token,
        })
    }
}

/// The runner: a cheap-to-clone handle. Must be used inside a tokio runtime.
///
/// Embedded in a program (no HTTP; `examples/embedded_agent.rs` runs the whole thing): build
/// it over a store and a sandbox, [`start`](Runner::start) it, [`send`](Runner::send) a
/// session a message and follow its [`events`](Runner::events) until it is idle again.
///
/// ```no_run
/// # async fn demo(
/// #     store: managed_agents_storage_memory::MemoryStore,
/// #     session: managed_agents_core::ids::SessionId,
/// # ) -> Result<(), Box<dyn std::error::Error>> {
/// use futures::StreamExt;
/// use managed_agents_core::event::Body;
/// use managed_agents_core::vault::SealedSecret;
/// use managed_agents_harness::runner::{Options, Runner};
/// use managed_agents_harness::sandbox::{BubblewrapSandbox, Workspaces};
///
/// let sandbox = BubblewrapSandbox::new(Default::default())?;
/// let options = Options::new(Workspaces::new("/var/lib/managed-agents/workspaces"));
/// // How sealed vault secrets are opened (here: stored in the clear).
/// let open = |sealed: &SealedSecret| Some(sealed.0.clone());
/// let runner = Runner::new(store, sandbox, open, options);
/// runner.start().await?; // recover and resume sessions left running
///
/// let hello = serde_json::from_value(serde_json::json!(
///     {"type": "user.message", "content": [{"type": "text", "text": "Hello"}]}
/// ))?;
/// runner.send(&session, vec![hello]).await?; // validated by `decide`, then a turn runs
/// let mut events = runner.events(&session, 0);
/// while let Some(event) = events.next().await {
///     let event = event?;
///     println!("{}", event.type_name());
///     if matches!(event.body, Body::SessionStatusIdle(_)) {
///         break;
///     }
/// }
/// # Ok(()) }
/// ```
pub struct Runner<S, X> {
    inner: Arc<Inner<S, X>>,
}

impl<S, X> Clone for Runner<S, X> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl<S: Store, X: Sandbox + 'static> Runner<S, X> {
    /// A runner over `store`, running tools in `sandbox`.
    pub fn new(store: S, sandbox: X, secrets: impl SecretOpener, options: Options) -> Self {
        // The read timeout resets with every read: it bounds a stalled model stream (no header,
        // no byte) without bounding a long one that keeps sending.
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(30))
            .read_timeout(options.stream_idle_timeout)
            .build()
            .unwrap_or_default();
        let kept = kept::Kept::new(options.kept_records);
        Self {
            inner: Arc::new(Inner {
                store,
                sandbox,
                secrets: Arc::new(secrets),
                options,
                previews: Previews::default(),
                http,
                claude: claude::Processes::default(),
                codex: codex::Servers::default(),
                shells: crate::tools::Shells::default(),
                active: Mutex::new(HashMap::new()),
                mcp: crate::mcp::Cache::default(),
                kept,
                timers: Mutex::new(HashMap::new()),
                scanned_waiting: AtomicBool::new(false),
                leases: Mutex::new(HashMap::new()),
                refused: Mutex::new(HashMap::new()),
                parked: Mutex::new(HashMap::new()),
                stopping: Arc::new(AtomicBool::new(false)),
                halted: AtomicBool::new(false),
            }),
        }
    }

    /// The live previews of running turns (for SSE streams that asked for `event_deltas[]`).
    pub fn previews(&self) -> Previews {
        self.inner.previews.clone()
    }

    /// Start-up: notifies every session of every workspace that is `running` or
    /// `rescheduling` (recovering those whose turn was cut short). Returns how many. The
    /// first call with a pending-action timeout also notifies every idle session that is not
    /// archived (see the module's "Pending-action timeout").
    pub async fn start(&self) -> Result<usize, storage::Error> {
        let store = &self.inner.store;
        let waiting = self.inner.options.requires_action_timeout.is_some()
            && !self.inner.scanned_waiting.swap(true, Ordering::SeqCst);
        let mut count = 0;
        lease::forget_old_refusals(&self.inner);
        lease::sweep_parked(&self.inner).await;
        for workspace in list_all(store, CatalogQuery::new(Kind::Workspace, "")).await? {
            let mut query = CatalogQuery::new(Kind::Session, workspace.clone());
            // Sessions idle on their threads have a turn open too.
            query.statuses = vec![
                "running".into(),
                "rescheduling".into(),
                managed_agents_core::session::IDLE_ON_THREADS.into(),
            ];
            query.include_archived = true;
            let mut ids = list_all(store, query).await?;
            if waiting {
                let mut idle = CatalogQuery::new(Kind::Session, workspace);
                idle.statuses = vec!["idle".into()];
                ids.extend(list_all(store, idle).await?);
            }
            for id in ids {
                if let Ok(id) = SessionId::parse(&id) {
                    // A session another runner held a moment ago is left to it until its
                    // lease could have lapsed (a failed attempt costs the database a commit).
                    if lease::refused_lately(&self.inner, &id) {
                        continue;
                    }
                    self.notify(&id);
                    count += 1;
                }
            }
        }
        Ok(count)
    }

    /// Arms the session's pending-action timer for `deadline` (once per deadline).
    fn arm(&self, id: &SessionId, deadline: Timestamp) {
        {
            let mut timers = lock(&self.inner.timers);
            if timers.get(id) == Some(&deadline) {
                return;
            }
            timers.insert(id.clone(), deadline);
        }
        let runner = self.clone();
        let id = id.clone();
        tokio::spawn(async move {
            // One millisecond past the deadline, so the wake finds it passed.
            let wait = deadline.millis() + 1 - Timestamp::now().millis();
            tokio::time::sleep(Duration::from_millis(u64::try_from(wait).unwrap_or(0))).await;
            {
                let mut timers = lock(&runner.inner.timers);
                if timers.get(&id) == Some(&deadline) {
                    timers.remove(&id);
                }
            }
            runner.notify(&id);
        });
    }

    /// Tells the runner that `session` may have new input. Cheap; never blocks. Does nothing
    /// once the runner is halted.
    pub fn notify(&self, session: &SessionId) {
        if self.inner.halted.load(Ordering::SeqCst) {
            return;
        }
        let again = {
            let mut active = lock(&self.inner.active);
            if let Some(again) = active.get(session) {
                again.store(true, Ordering::SeqCst);
                return;
            }
            let again = Arc::new(AtomicBool::new(false));
            active.insert(session.clone(), again.clone());
            again
        };
        let runner = self.clone();
        let id = session.clone();
        let mut timeline = crate::writer::timing().then(crate::writer::Timeline::new);
        tokio::spawn(async move {
            let _held = crate::telemetry::metrics().session_held();
            let inner = &runner.inner;
            loop {
                let Ok(lease) = lease::take(inner, &id).await else {
                    lock(&inner.active).remove(&id);
                    return;
                };
                loop {
                    again.store(false, Ordering::SeqCst);
                    let run = AssertUnwindSafe(process(inner, &id, timeline.take())).catch_unwind();
                    match run.await {
                        Ok(Some(deadline)) => runner.arm(&id, deadline),
                        Ok(None) => {}
                        Err(_) => tracing::error!(session = %id, "the session task panicked"),
                    }
                    if !again.load(Ordering::SeqCst) {
                        break;
                    }
                }
                // Still registered as active, so a notification while the lease goes sets
                // `again`; input sent through another runner's node while this one held the
                // lease was left to this one (`give_up` looks once more).
                let look_again = lease::give_up(inner, &id, lease).await;
                let mut active = lock(&inner.active);
                if !look_again && !again.load(Ordering::SeqCst) {
                    active.remove(&id);
                    return;
                }
            }
        });
    }

    /// Sends client events to `session` as `POST /v1/sessions/{id}/events` does (validated by
    /// [`managed_agents_core::session::decide`], appended through
    /// [`managed_agents_core::session::log`]) and wakes the runner for it.
    pub async fn send(
        &self,
        session: &SessionId,
        events: Vec<EventParams>,
    ) -> Result<(), log::Error> {
        log::commit(
            &self.inner.store,
            session,
            |_| true,
            || Command::Send(events.clone()),
        )
        .await?;
        self.notify(session);
        Ok(())
    }

    /// The public events of `session` after stream version `after` (0: from the start): the
    /// history, then every event once it is durable, in order and each once (internal facts
    /// are skipped). Ends when the stream is deleted or the store closes. Events are as
    /// stored: a `user.message` shows the `processed_at` it was appended with (`null` while
    /// queued).
    pub fn events(
        &self,
        session: &SessionId,
        after: u64,
    ) -> futures::stream::BoxStream<'static, Result<Event, storage::Error>> {
        self.inner
            .store
            .subscribe(&StreamId::from(session), after)
            .filter_map(|record| async move {
                let record = match record {
                    Ok(record) => record,
                    Err(e) => return Some(Err(e)),
                };
                match SessionRecord::decode(&record.payload) {
                    Ok(SessionRecord::Event(event)) => Some(Ok(event)),
                    Ok(SessionRecord::Fact(_)) => None,
                    Err(e) => Some(Err(storage::Error::Backend(format!(
                        "undecodable session record at version {}: {e}",
                        record.version
                    )))),
                }
            })
            .boxed()
    }

    /// Orderly shutdown with [`Options::leasing`]: takes no lease and renews none from now on,
    /// and releases every lease this runner holds, so other runners take its sessions over at
    /// once instead of when the leases lapse (a turn still running here is fenced from the
    /// successor's first write on). Returns how many leases it released.
    pub async fn release_leases(&self) -> usize {
        lease::release_all(&self.inner).await
    }

    /// Orderly shutdown, once no request can reach the runner: no session task starts from
    /// now on, and this waits up to `patience` for the running ones to finish what they have
    /// (input queued behind a running turn included: an idle session with input waiting is
    /// found by nothing but a notification, while a turn cut mid-way is resumed by the next
    /// start). The server halts the runner before it unmounts the workspace images: a turn's
    /// last step after its idle (the workspace snapshot) mounts an image that is not mounted,
    /// so a task still running would mount again what was just unmounted, and the mount would
    /// outlive the process. Returns whether none is left (those still running when `patience`
    /// ends are dropped with the runtime, as before).
    pub async fn halt(&self, patience: Duration) -> bool {
        self.inner.halted.store(true, Ordering::SeqCst);
        let deadline = tokio::time::Instant::now() + patience;
        while self.is_busy() {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    /// Whether any session task is running (for tests and orderly shutdown).
    pub fn is_busy(&self) -> bool {
        !lock(&self.inner.active).is_empty()
    }

    /// A type-erased [`Runner::notify`], for holders that should not carry the runner's type
    /// parameters (the server's shared state).
    pub fn notifier(&self) -> Notifier {
        let runner = self.clone();
        Notifier(Arc::new(move |id: &SessionId| runner.notify(id)))
    }

    /// A safety net for missed notifications: repeats [`Runner::start`]'s scan every `period`
    /// in a background task (abort the returned handle to stop it).
    pub fn rescan_every(&self, period: Duration) -> tokio::task::JoinHandle<()> {
        let runner = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = runner.start().await {
                    tracing::warn!(error = %e, "runner rescan failed");
                }
            }
        })
    }
}

/// A cheap-to-clone, type-erased handle that wakes the runner for a session.
#[derive(Clone)]
pub struct Notifier(Arc<dyn Fn(&SessionId) + Send + Sync>);

impl Notifier {
    /// Tells the runner that `session` may have new input.
    pub fn notify(&self, session: &SessionId) {
        (self.0)(session)
    }

    /// A notifier that does nothing (a server without a runner, tests).
    pub fn none() -> Self {
        Notifier(Arc::new(|_: &SessionId| {}))
    }
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Notifier")
    }
}

async fn list_all<S: Store>(
    store: &S,
    mut query: CatalogQuery,
) -> Result<Vec<String>, storage::Error> {
    query.order = Order::Asc;
    query.limit = 200;
    let mut ids = Vec::new();
    loop {
        let page = store.list(&query).await?;
        let last = page.entries.last().map(|e| e.id.clone());
        ids.extend(page.entries.into_iter().map(|e| e.id));
        match last {
            Some(last) if page.has_more => query.after = Some(last),
            _ => return Ok(ids),
        }
    }
}

/// Drives one session until it has nothing left to do. Returns the pending-action deadline
/// to wake the session at, if it waits on one.
async fn process<S: Store, X: Sandbox>(
    inner: &Inner<S, X>,
    id: &SessionId,
    mut timeline: Option<crate::writer::Timeline>,
) -> Option<Timestamp> {
    if let Some(timeline) = &mut timeline {
        timeline.mark("task");
    }
    let mut head = inner.kept.take(id);
    loop {
        head = match crate::writer::catch_up(&inner.store, id, head).await {
            Ok(head) => head,
            Err(log::Error::NotFound(_)) => {
                inner.claude.discard(id);
                inner.codex.discard(id);
                inner.shells.discard(id);
                return None;
            }
            Err(e) => {
                tracing::warn!(session = %id, error = %e, "cannot load session");
                return None;
            }
        };
        let state = &head.state.logged.state;
        if state.archived_at.is_some() || state.status == Status::Terminated {
            // No turn will answer a prompt its kept agent process waits on.
            inner.claude.discard(id);
            inner.codex.discard(id);
            inner.shells.discard(id);
            return None;
        }
        let leased = inner.leased(id, state);
        let mut writer = Writer::new(inner.store.clone(), id.clone(), head);
        writer.lease(leased);
        writer.time(timeline.take());
        writer.mark("loaded");
        let resume = resumable(inner, writer.state()).await;
        let ended = match writer.recover(resume).await {
            Ok(true) => {
                tracing::info!(session = %id, "settled a session no turn was running for");
                // Its child threads ran inside the cut turn: settle them too.
                recover_children(inner, writer.state()).await;
                Ok(())
            }
            Ok(false) if writer.state().needs_turn() => traced_turn(inner, &mut writer).await,
            Ok(false) => match expire_actions(inner, id, writer.state()).await {
                Expiry::Expired => Ok(()),
                Expiry::Wait(deadline) => {
                    inner.kept.put(id, writer.into_head());
                    return deadline;
                }
            },
            Err(halt) => Err(halt),
        };
        if !matches!(ended, Err(Halt::Gone(_))) {
            snapshot_idle(inner, &writer).await;
        }
        head = writer.into_head();
        match ended {
            Ok(()) | Err(Halt::Interrupted) => {}
            Err(Halt::Gone(why)) => {
                tracing::warn!(session = %id, why, "the session task stopped");
                inner.kept.forget(id);
                return None;
            }
        }
    }
}

/// How a turn of `session` cut short by a restart goes on: only a session's own turn (not a
/// child thread's, which ran inside its coordinator's delegation call); on a resident engine
/// (`native`, `openai-agents`: the agent loop is ours and the conversation is the log) from
/// the log, on an agent CLI (`claude`, `codex`: its process died with the server, its
/// conversation is kept in the workspace) in the agent, told that the turn was cut.
async fn resumable<S: Store, X: Sandbox>(inner: &Inner<S, X>, session: &SessionState) -> Resume {
    if !matches!(session.status, Status::Running | Status::Rescheduling)
        || session.is_child_thread()
    {
        return Resume::No;
    }
    let Some(created) = &session.config else {
        return Resume::No;
    };
    match setup::llm(
        &inner.store,
        inner.secrets.as_ref(),
        &inner.options,
        created,
    )
    .await
    {
        Ok(Some((Engine::Native | Engine::OpenAiAgents, _))) => Resume::FromLog,
        Ok(Some((Engine::Claude | Engine::Codex, _))) => Resume::InAgent,
        _ => Resume::No,
    }
}

/// Settles the child threads of `session` left mid-turn (see `engine::delegate`: they run
/// inside their coordinator's turn, so they are recovered with it).
async fn recover_children<S: Store, X: Sandbox>(inner: &Inner<S, X>, session: &SessionState) {
    for child in &session.children {
        let id = SessionId::of_thread(&child.id);
        let head = match crate::writer::catch_up(&inner.store, &id, Default::default()).await {
            Ok(head) => head,
            Err(e) => {
                tracing::warn!(thread = %child.id, error = %e, "cannot load a child thread");
                continue;
            }
        };
        let leased = inner.leased(&id, &head.state.logged.state);
        let mut writer = Writer::new(inner.store.clone(), id.clone(), head);
        writer.lease(leased.clone());
        // A child's turn ran inside its coordinator's tool call, which the restart ended.
        if let Err(e) = writer.recover(Resume::No).await {
            tracing::warn!(thread = %child.id, ?e, "cannot settle a child thread");
        }
        // No coordinator relays the client's answers to a child that waited on them.
        let mut head = managed_agents_core::stream::Head::<SessionState>::default();
        let closed = write_leased(&inner.store, &id, &mut head, leased.as_ref(), |state| {
            let now = Timestamp::now();
            Ok(managed_agents_core::session::thread::restarted_child(
                state,
                now,
                &mut managed_agents_core::session::Fresh(now),
            ))
        })
        .await;
        if let Err(e) = closed {
            tracing::warn!(thread = %child.id, error = %e, "cannot close a child thread's calls");
        }
    }
}

impl<S: Store, X: Sandbox> crate::engine::delegate::Threads for Inner<S, X> {
    fn run<'a>(
        &'a self,
        child: &'a SessionId,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            process(self, child, None).await;
        })
    }
}

/// Snapshots the workspace of a session that is idle now, labelled with the id of its latest
/// `session.status_idle` event, so a fork at that event restores this workspace (see
/// `Workspaces::snapshot`). A failure is logged: the session goes on without that snapshot.
async fn snapshot_idle<S: Store, X: Sandbox>(inner: &Inner<S, X>, writer: &Writer<S>) {
    // A child thread works in its session's workspace, which the session's own idles
    // snapshot.
    if writer.state().status != Status::Idle || writer.state().is_child_thread() {
        return;
    }
    let id = writer.id();
    let tail = inner
        .store
        .read(
            &StreamId::from(id),
            u64::MAX,
            storage::Direction::Backward,
            16,
        )
        .await;
    let idle = tail.ok().and_then(|records| {
        records.iter().find_map(|record| {
            let record = SessionRecord::decode(&record.payload).ok()?;
            let event = record.event()?;
            (event.body.type_name() == "session.status_idle").then(|| event.id.clone())
        })
    });
    let Some(idle) = idle else {
        return;
    };
    if let Err(e) = inner
        .options
        .workspaces
        .snapshot(id.as_str(), idle.as_str())
        .await
    {
        tracing::warn!(session = %id, error = %e, "workspace snapshot not taken");
    }
}

/// What the pending-action timeout did for a session with no turn to run.
enum Expiry {
    /// Its pending calls were denied: a turn follows.
    Expired,
    /// Nothing yet: wake it at this deadline, if any.
    Wait(Option<Timestamp>),
}

/// Denies the pending calls of a session past its pending-action deadline (core decides,
/// on the session's state of the moment: a client's answer in between wins).
async fn expire_actions<S: Store, X: Sandbox>(
    inner: &Inner<S, X>,
    id: &SessionId,
    state: &SessionState,
) -> Expiry {
    let Some(timeout) = inner.options.requires_action_timeout else {
        return Expiry::Wait(None);
    };
    let Some(deadline) = state.action_deadline(timeout) else {
        return Expiry::Wait(None);
    };
    if deadline > Timestamp::now() {
        return Expiry::Wait(Some(deadline));
    }
    let committed = log::commit(
        &inner.store,
        id,
        |_| true,
        || Command::ExpireActions { timeout },
    )
    .await;
    match committed {
        Ok(committed) if !committed.records.is_empty() => {
            tracing::info!(session = %id, ?timeout, "denied the pending actions: no response in time");
            Expiry::Expired
        }
        Ok(_) => Expiry::Wait(None),
        Err(e) => {
            tracing::warn!(session = %id, error = %e, "cannot deny the pending actions");
            Expiry::Wait(None)
        }
    }
}

/// Watches the session for `user.interrupt` after `after`.
async fn watch_interrupts<S: Store>(store: S, id: SessionId, after: u64, tx: watch::Sender<bool>) {
    let mut events = store.subscribe(&StreamId::from(&id), after);
    while let Some(record) = events.next().await {
        let Ok(record) = record else { return };
        if let Ok(SessionRecord::Event(event)) = SessionRecord::decode(&record.payload) {
            if let Body::UserInterrupt(interrupt) = &event.body {
                // An interrupt of one of the session's child threads is the delegation's
                // (engine::delegate), not this turn's.
                let primary = ThreadId::primary_of(&id);
                if interrupt
                    .session_thread_id
                    .as_ref()
                    .is_some_and(|t| *t != primary)
                {
                    continue;
                }
                let _ = tx.send(true);
                return;
            }
        }
    }
}

/// Aborts the task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// [`turn`] in its span (`invoke_agent`, see [`crate::telemetry`]), counted.
async fn traced_turn<S: Store, X: Sandbox>(
    inner: &Inner<S, X>,
    writer: &mut Writer<S>,
) -> Result<(), Halt> {
    use crate::telemetry::{metrics, TurnOutcome};
    use tracing::Instrument;
    let agent = writer
        .state()
        .agent
        .as_ref()
        .map(|a| a.id.to_string())
        .unwrap_or_default();
    let span = tracing::info_span!(
        "invoke_agent",
        session.id = %writer.id(),
        agent.id = %agent,
        gen_ai.operation.name = "invoke_agent",
        gen_ai.agent.id = %agent,
        gen_ai.conversation.id = %writer.id(),
        turn.outcome = tracing::field::Empty,
    );
    let _running = metrics().turn_started();
    let started = std::time::Instant::now();
    let ended = turn(inner, writer).instrument(span.clone()).await;
    let outcome = match &ended {
        Ok(()) => TurnOutcome::Idle,
        Err(Halt::Interrupted) => TurnOutcome::Interrupted,
        Err(Halt::Gone(_)) => TurnOutcome::Halted,
    };
    span.record("turn.outcome", outcome.label());
    metrics().turn_ended(outcome, started.elapsed());
    ended
}

async fn turn<S: Store, X: Sandbox>(
    inner: &Inner<S, X>,
    writer: &mut Writer<S>,
) -> Result<(), Halt> {
    let id = writer.id().clone();
    let (tx, rx) = watch::channel(false);
    let _watcher = AbortOnDrop(tokio::spawn(watch_interrupts(
        inner.store.clone(),
        id.clone(),
        writer.version(),
        tx,
    )));

    // The turn's start is appended while the session is made ready for it (neither waits
    // for the other); a failure to get ready is recorded after the start.
    let state = writer.state().clone();
    let leased = writer.leased().cloned();
    let starting = async {
        let started = writer.start().await;
        writer.mark("started");
        started
    };
    let (started, prepared) = tokio::join!(starting, prepare::prepare(inner, &id, &state, leased));
    let confirmations = match started {
        Ok(confirmations) => confirmations,
        Err(Halt::Interrupted) => {
            return writer
                .finish(Vec::new(), End::end_turn(turn::ABANDONED))
                .await
        }
        Err(gone) => return Err(gone),
    };
    let prepared = match prepared {
        Ok(prepared) => prepared,
        Err(prepare::Unprepared::Failed(message)) => return writer.fail(message).await,
        Err(prepare::Unprepared::Gone(why)) => return Err(Halt::Gone(why)),
    };
    writer.mark("prepared");
    let attach = prepared.context(inner, &id, &state);
    let attached = &prepared.attached;
    for error in &attached.errors {
        writer.record(Step::Error(error.clone())).await?;
    }
    if let Some(hook) = attach::before_end(&attach) {
        writer.before_end(hook);
    }
    let ended = engine_turn(
        inner,
        writer,
        prepared.engine.clone(),
        prepared.endpoint.clone(),
        &prepared.agent,
        attached,
        prepared.network.clone(),
        prepared.credentials.clone(),
        rx,
        confirmations,
    )
    .await;
    attach::finish(&attach, attached).await;
    ended
}

/// What an agent CLI's turn of a coordinator needs to run its team tools through the resident
/// delegation (`engine::team_call`).
fn team_run<'a, S: Store, X: Sandbox>(
    inner: &'a Inner<S, X>,
    team: &'a crate::engine::team::Team,
    endpoint: &'a Endpoint,
    mcp: &'a mut crate::mcp::Servers<S>,
) -> crate::engine::team_call::TeamRun<'a, S> {
    crate::engine::team_call::TeamRun {
        team,
        threads: inner,
        http: &inner.http,
        options: &inner.options,
        previews: &inner.previews,
        endpoint,
        shells: &inner.shells,
        mcp,
    }
}

/// The turn in the session's engine, on the prepared workspace.
#[allow(clippy::too_many_arguments)]
async fn engine_turn<S: Store, X: Sandbox>(
    inner: &Inner<S, X>,
    writer: &mut Writer<S>,
    engine: Engine,
    endpoint: Endpoint,
    agent: &TurnAgent,
    attached: &attach::Attached,
    network: Network,
    credentials: Option<crate::door::credentials::SessionCredentials<S>>,
    rx: watch::Receiver<bool>,
    confirmations: Vec<EventId>,
) -> Result<(), Halt> {
    let id = writer.id().clone();
    let workspace = &attached.workspace;
    // The agent's MCP servers, opened by the harness itself (crate::mcp): the resident engines'
    // client, and for the agent CLIs the check that leaves failed servers out of their
    // configuration.
    let reach = crate::mcp::Reach {
        interception: inner.options.interception.clone(),
        credentials,
    };
    let opening =
        crate::mcp::Servers::open(&inner.mcp, &id, &agent.mcp_servers, &agent.tools, reach);
    let (mut mcp, errors) = match crate::engine::interruptible(&rx, opening).await {
        Ok(opened) => opened,
        Err(Halt::Interrupted) => return writer.interrupted(None).await,
        Err(gone) => return Err(gone),
    };
    for error in errors {
        writer.record(Step::Error(error)).await?;
    }
    let cli_agent = TurnAgent {
        mcp_servers: mcp.usable(),
        ..agent.clone()
    };
    let tools_on_worker = match writer.state().config.clone() {
        Some(created) => setup::self_hosted(&inner.store, &created).await,
        None => false,
    };
    if tools_on_worker && matches!(engine, Engine::Claude | Engine::Codex) {
        let message = "a self-hosted environment's tools run on its worker, which the claude \
                       and codex engines (agent CLIs running their own tools in our sandbox) \
                       cannot use: set the LLM vault's sandbox0.managed_agents.engine to native \
                       or openai-agents"
            .to_owned();
        return writer.fail(message).await;
    }
    let team = match writer.state().agent.clone() {
        Some(snapshot) => crate::engine::delegate::team(&inner.store, &snapshot).await,
        None => crate::engine::team::Team::default(),
    };
    // An agent CLI is its own MCP client; the harness's clients stay open only for the
    // resident turn a coordinator's delegations build (engine::team_call).
    let cli_mcp = |mcp| (!team.is_empty()).then_some(mcp);
    if engine == Engine::Claude {
        let mut kept = cli_mcp(mcp);
        let agent = &cli_agent;
        let program = match setup::claude_program(&inner.options) {
            Ok(program) => program,
            Err(message) => return writer.fail(message).await,
        };
        let api_key = crate::door::gateway::placeholder_key(&id);
        return claude::ClaudeTurn {
            writer,
            sandbox: &inner.sandbox,
            processes: &inner.claude,
            agent,
            program: &program,
            gateway: claude::Gateway {
                base_url: crate::door::gateway::ANTHROPIC_BASE_URL,
                api_key: &api_key,
            },
            network,
            workspace,
            server_side: crate::engine::grading::ServerSide {
                http: &inner.http,
                endpoint: &endpoint,
                blobs: inner.options.blobs.as_deref(),
            },
            interrupted: rx,
            // A coordinator's team tools run the resident delegation (engine::team_call).
            team: kept
                .as_mut()
                .map(|mcp| team_run(inner, &team, &endpoint, mcp)),
        }
        .run(confirmations)
        .await;
    }
    if engine == Engine::Codex {
        let mut kept = cli_mcp(mcp);
        let agent = &cli_agent;
        let program = match setup::codex_program(&inner.options) {
            Ok(program) => program,
            Err(message) => return writer.fail(message).await,
        };
        let launch = codex::launch(
            &program,
            crate::door::gateway::OPENAI_BASE_URL,
            &crate::door::gateway::placeholder_key(&id),
            crate::mcp::cli::codex_overrides(&agent.mcp_servers, &agent.tools),
            &codex::home(&id, writer.state().is_child_thread()),
        );
        return codex::Turn {
            writer,
            sandbox: &inner.sandbox,
            previews: &inner.previews,
            agent,
            network,
            workspace,
            launch: &launch,
            servers: &inner.codex,
            server_side: crate::engine::grading::ServerSide {
                http: &inner.http,
                endpoint: &endpoint,
                blobs: inner.options.blobs.as_deref(),
            },
            interrupted: rx,
            team: kept
                .as_mut()
                .map(|mcp| team_run(inner, &team, &endpoint, mcp)),
        }
        .run(confirmations)
        .await;
    }
    // The resident engines learn of the session's attachments (skills) from the prompt.
    let agent = &agent.with_system_paragraphs(&attached.system);
    Turn {
        writer,
        sandbox: &inner.sandbox,
        http: &inner.http,
        options: &inner.options,
        previews: &inner.previews,
        agent,
        endpoint: &endpoint,
        network,
        workspace,
        shells: &inner.shells,
        mcp: &mut mcp,
        tools_on_worker,
        interrupted: rx,
        team: &team,
        threads: Some(inner),
    }
    .run(confirmations)
    .await
}
