//! Several runners over one store ([`Options::leasing`]): a session task takes the session's
//! lease before it drives the session, renews it every third of its time to live while it
//! runs, and lets it go when the session has nothing left to do.
//!
//! - A session whose lease another runner holds is that runner's: the task ends at once.
//!   Input appended meanwhile is not lost: the holder either sees it before it lets go, or
//!   looks once more after letting go ([`give_up`] says so), because the append came before
//!   the failed attempt, which came before the release.
//! - A runner that died holds its leases until they lapse; the rescan of another runner
//!   ([`super::Runner::rescan_every`]) then finds the session `running`, takes the lease and
//!   settles or resumes the cut turn as a restarted runner would.
//! - A session whose agent CLI process this runner keeps waiting on a confirmation (`claude`,
//!   `codex`: the prompt lives in that process) keeps its lease while it waits ([`park`]), so
//!   the confirmation, sent through any node, is run by this runner (its rescan finds the
//!   session `running`), not answered by another runner that has no such process.
//! - A runner that lost its lease without dying (paused, cut off from the store) is fenced:
//!   its writes carry its token ([`crate::writer::Leased`]) and are refused once its successor
//!   has written ([`managed_agents_core::session::fence`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use managed_agents_core::ids::SessionId;
use managed_agents_core::session::fence;
use managed_agents_core::session::Status;
use managed_agents_core::storage::Store;

use super::{lock, AbortOnDrop, Inner};
use crate::options::Leasing;

/// The session's lease is another runner's (or cannot be had now): leave the session to it.
pub(super) struct NotTaken;

/// What a session task holds while it drives its session: nothing without leasing.
pub(super) struct Lease(Option<Held>);

struct Held {
    name: String,
    /// Renews the lease until dropped.
    renewal: AbortOnDrop,
    /// The renewal found the lease another runner's.
    lost: Arc<AtomicBool>,
}

/// Takes `id`'s lease for the task about to drive it (without leasing: nothing to take).
pub(super) async fn take<S: Store, X>(
    inner: &Inner<S, X>,
    id: &SessionId,
) -> Result<Lease, NotTaken> {
    let Some(leasing) = &inner.options.leasing else {
        return Ok(Lease(None));
    };
    if inner.stopping.load(Ordering::SeqCst) {
        return Err(NotTaken);
    }
    let name = fence::lease_name(id);
    let grant = match inner.store.lease(&name, &leasing.holder, leasing.ttl).await {
        Ok(Some(grant)) => {
            lock(&inner.refused).remove(id);
            grant
        }
        Ok(None) => {
            lock(&inner.refused).insert(id.clone(), Instant::now());
            return Err(NotTaken);
        }
        Err(e) => {
            tracing::warn!(session = %id, error = %e, "cannot take the session's lease");
            return Err(NotTaken);
        }
    };
    lock(&inner.leases).insert(id.clone(), grant.token);
    // A parked lease (see `park`) is this task's now, renewed by the task's own renewal.
    lock(&inner.parked).remove(id);
    let lost = Arc::new(AtomicBool::new(false));
    let renewal = tokio::spawn(renew(
        inner.store.clone(),
        leasing.clone(),
        name.clone(),
        id.clone(),
        grant.token,
        lost.clone(),
        inner.stopping.clone(),
    ));
    Ok(Lease(Some(Held {
        name,
        renewal: AbortOnDrop(renewal),
        lost,
    })))
}

/// The longest the rescan leaves a refused session alone: a holder that stops in order
/// releases its lease, and nothing tells the other runners, so with long leases (up to an
/// hour) a refusal must not keep them away for a third of that.
const REFUSAL_SKIP_CAP: Duration = Duration::from_secs(5);

/// Whether the rescan should leave `id` alone: this runner failed to take its lease less than
/// a third of the lease's time to live ago (at most [`REFUSAL_SKIP_CAP`]), so the holder was
/// alive then and its lease cannot have lapsed much since; a lease released by an orderly stop
/// is taken within that cap. (A notification for the session, such as a send through this
/// node, still tries at once.) Bounds the rescan's failed attempts to about one per running
/// session and cap (or third of the lease) instead of two per second.
pub(super) fn refused_lately<S, X>(inner: &Inner<S, X>, id: &SessionId) -> bool {
    let Some(leasing) = &inner.options.leasing else {
        return false;
    };
    let skip = (leasing.ttl / 3).min(REFUSAL_SKIP_CAP);
    let mut refused = lock(&inner.refused);
    match refused.get(id) {
        Some(at) if at.elapsed() < skip => true,
        Some(_) => {
            refused.remove(id);
            false
        }
        None => false,
    }
}

/// A lease kept, and renewed, while no task drives its session: the session waits on a
/// confirmation that only this runner's kept agent process can take.
pub(super) struct Parked(Held);

/// Lets go of the parked leases whose agent process is gone (the session ended, or its
/// confirmation was answered by a turn elsewhere), and ends the kept process of a session
/// whose parked lease another runner took (its confirmation will be answered there).
pub(super) async fn sweep_parked<S: Store, X>(inner: &Inner<S, X>) {
    let Some(leasing) = &inner.options.leasing else {
        return;
    };
    let done: Vec<(SessionId, Parked)> = {
        let mut parked = lock(&inner.parked);
        let ids: Vec<SessionId> = parked
            .iter()
            .filter(|(id, Parked(held))| {
                held.lost.load(Ordering::SeqCst)
                    || !(inner.claude.holds(id) || inner.codex.holds(id))
            })
            .map(|(id, _)| id.clone())
            .collect();
        ids.into_iter()
            .filter_map(|id| parked.remove(&id).map(|p| (id, p)))
            .collect()
    };
    for (id, Parked(held)) in done {
        lock(&inner.leases).remove(&id);
        if held.lost.load(Ordering::SeqCst) {
            inner.claude.discard(&id);
            inner.codex.discard(&id);
            continue;
        }
        drop(held.renewal);
        if let Err(e) = inner.store.release(&held.name, &leasing.holder).await {
            tracing::warn!(session = %id, error = %e, "cannot release the session's lease");
        }
    }
}

/// Stops taking and renewing leases and releases every lease held (see
/// [`super::Runner::release_leases`]); how many.
pub(super) async fn release_all<S: Store, X>(inner: &Inner<S, X>) -> usize {
    let Some(leasing) = &inner.options.leasing else {
        return 0;
    };
    inner.stopping.store(true, Ordering::SeqCst);
    lock(&inner.parked).clear();
    let held: Vec<SessionId> = lock(&inner.leases).keys().cloned().collect();
    let mut released = 0;
    for id in held {
        match inner
            .store
            .release(&fence::lease_name(&id), &leasing.holder)
            .await
        {
            Ok(()) => released += 1,
            Err(e) => {
                tracing::warn!(session = %id, error = %e, "cannot release the session's lease")
            }
        }
    }
    released
}

/// Forgets refusals too old to matter (sessions that stopped running are never asked about
/// again).
pub(super) fn forget_old_refusals<S, X>(inner: &Inner<S, X>) {
    if let Some(leasing) = &inner.options.leasing {
        lock(&inner.refused).retain(|_, at| at.elapsed() < leasing.ttl);
    }
}

/// Renews the lease every third of its time to live until it is found another runner's.
async fn renew<S: Store>(
    store: S,
    leasing: Leasing,
    name: String,
    id: SessionId,
    token: u64,
    lost: Arc<AtomicBool>,
    stopping: Arc<AtomicBool>,
) {
    let period = leasing.ttl / 3;
    let mut current = token;
    loop {
        tokio::time::sleep(period).await;
        if stopping.load(Ordering::SeqCst) {
            return;
        }
        match store.lease(&name, &leasing.holder, leasing.ttl).await {
            Ok(Some(grant)) if grant.token == current => {}
            Ok(Some(grant)) => {
                // It lapsed and came back to this runner: the task's writes stay under its
                // first token, so whatever another runner wrote meanwhile fences them.
                tracing::warn!(session = %id, token, again = grant.token,
                    "the session's lease lapsed and was taken again");
                current = grant.token;
            }
            Ok(None) => {
                tracing::warn!(session = %id, token,
                    "the session's lease passed to another runner; this runner's writes are refused from its first write on");
                lost.store(true, Ordering::SeqCst);
                return;
            }
            Err(e) => {
                tracing::warn!(session = %id, error = %e, "cannot renew the session's lease");
            }
        }
    }
}

/// Lets `id`'s lease go once its task has nothing left to do; whether the session needs
/// driving again (input arrived for it elsewhere while this runner held the lease).
pub(super) async fn give_up<S: Store, X>(
    inner: &Inner<S, X>,
    id: &SessionId,
    lease: Lease,
) -> bool {
    let (Some(held), Some(leasing)) = (lease.0, &inner.options.leasing) else {
        return false;
    };
    if held.lost.load(Ordering::SeqCst) {
        lock(&inner.leases).remove(id);
        return false;
    }
    if inner.claude.holds(id) || inner.codex.holds(id) {
        lock(&inner.parked).insert(id.clone(), Parked(held));
        return false;
    }
    lock(&inner.leases).remove(id);
    if let Err(e) = inner.store.release(&held.name, &leasing.holder).await {
        // It lapses by itself.
        tracing::warn!(session = %id, error = %e, "cannot release the session's lease");
        return false;
    }
    let head = inner.kept.take(id);
    match crate::writer::catch_up(&inner.store, id, head).await {
        Ok(head) => {
            let state = &head.state.logged.state;
            let again = state.archived_at.is_none()
                && (state.needs_turn()
                    || matches!(state.status, Status::Running | Status::Rescheduling));
            inner.kept.put(id, head);
            again
        }
        Err(_) => false,
    }
}
