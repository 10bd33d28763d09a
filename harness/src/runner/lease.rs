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
//! - A runner that lost its lease without dying (paused, cut off from the store) is fenced:
//!   its writes carry its token ([`crate::writer::Leased`]) and are refused once its successor
//!   has written ([`managed_agents_core::session::fence`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

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
    _renewal: AbortOnDrop,
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
    let lost = Arc::new(AtomicBool::new(false));
    let renewal = tokio::spawn(renew(
        inner.store.clone(),
        leasing.clone(),
        name.clone(),
        id.clone(),
        grant.token,
        lost.clone(),
    ));
    Ok(Lease(Some(Held {
        name,
        _renewal: AbortOnDrop(renewal),
        lost,
    })))
}

/// Whether the rescan should leave `id` alone: this runner failed to take its lease less than
/// a third of the lease's time to live ago, so the holder was alive then and its lease cannot
/// have lapsed much since. (A notification for the session, such as a send through this node,
/// still tries at once.) Bounds the rescan's failed attempts to about three per running
/// session and lease time instead of two per second.
pub(super) fn refused_lately<S, X>(inner: &Inner<S, X>, id: &SessionId) -> bool {
    let Some(leasing) = &inner.options.leasing else {
        return false;
    };
    let mut refused = lock(&inner.refused);
    match refused.get(id) {
        Some(at) if at.elapsed() < leasing.ttl / 3 => true,
        Some(_) => {
            refused.remove(id);
            false
        }
        None => false,
    }
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
) {
    let period = leasing.ttl / 3;
    let mut current = token;
    loop {
        tokio::time::sleep(period).await;
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
    lock(&inner.leases).remove(id);
    if held.lost.load(Ordering::SeqCst) {
        return false;
    }
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
