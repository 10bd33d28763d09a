//! The gateway's records: a `span.model_request_start` when a model request goes upstream and
//! its `span.model_request_end` with the usage the response reported, decided by
//! `core::session::turn` and appended through the harness [`Writer`] (the one write path),
//! beside the engine's own writer on the same session (a lost race catches up and decides
//! again).

use managed_agents_core::event::ModelUsage;
use managed_agents_core::ids::{EventId, SessionId};
use managed_agents_core::session::turn::{self, Step};
use managed_agents_core::storage::Store;
use managed_agents_core::time::Timestamp;
use tokio::sync::Mutex;

use crate::writer::{Halt, Leased, Writer};

/// Why a model request was not let through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refused(pub(crate) String);

/// The span writer of one session; loads the session on first use.
pub(crate) struct Spans<S> {
    store: S,
    session: SessionId,
    writer: Mutex<Option<Writer<S>>>,
    /// The runner's lease on the session, which the spans are written under.
    leased: Option<Leased>,
}

impl<S: Store + Clone> Spans<S> {
    pub(crate) fn new(store: S, session: SessionId, leased: Option<Leased>) -> Self {
        Self {
            store,
            session,
            writer: Mutex::new(None),
            leased,
        }
    }

    /// Records the start of a model request; refused when the session is not in a turn or an
    /// interrupt is pending (the request is then not sent).
    pub(crate) async fn start(&self) -> Result<EventId, Refused> {
        let id = EventId::generate(Timestamp::now());
        let mut writer = self.writer().await?;
        let Some(writer) = writer.as_mut() else {
            return Err(Refused("the session cannot be loaded".into()));
        };
        // A child thread's spend counts against its session's budget, which core does not see
        // on the child's stream.
        if writer.state().is_child_thread() && writer.child_budget_spent().await {
            return Err(Refused(turn::BUDGET_SPENT.into()));
        }
        match writer.record(Step::ModelRequestStart(id.clone())).await {
            Ok(()) => Ok(id),
            Err(Halt::Interrupted) => Err(Refused(
                "the session was interrupted; no model request is made".into(),
            )),
            Err(Halt::Gone(_)) if writer.state().budget_exhausted() => {
                Err(Refused(turn::BUDGET_SPENT.into()))
            }
            Err(Halt::Gone(why)) => Err(Refused(format!(
                "the session is not running a turn, so no model request is made ({why})"
            ))),
        }
    }

    /// Records the end of span `span` (whatever arrived meanwhile, even after the turn ended);
    /// a failure is logged, the response is not affected.
    pub(crate) async fn end(&self, span: EventId, usage: ModelUsage, is_error: bool) {
        let Ok(mut writer) = self.writer().await else {
            return;
        };
        let Some(writer) = writer.as_mut() else {
            return;
        };
        let step = Step::ModelRequestEnd {
            span: span.clone(),
            usage,
            is_error,
        };
        if let Err(halt) = writer.settle(step).await {
            tracing::warn!(session = %self.session, %span, ?halt, "the gateway could not end a model request span");
        }
    }

    async fn writer(&self) -> Result<tokio::sync::MutexGuard<'_, Option<Writer<S>>>, Refused> {
        let mut guard = self.writer.lock().await;
        if guard.is_none() {
            let head = crate::writer::catch_up(&self.store, &self.session, Default::default())
                .await
                .map_err(|e| Refused(format!("the session cannot be loaded: {e}")))?;
            let mut writer = Writer::new(self.store.clone(), self.session.clone(), head);
            writer.lease(self.leased.clone());
            *guard = Some(writer);
        }
        Ok(guard)
    }
}
