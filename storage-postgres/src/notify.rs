//! Wake-ups: a `NOTIFY` for every committed append or delete, one `LISTEN` connection per store
//! that wakes the subscribers of the named stream, and local wake-ups for this process's own
//! commits.
//!
//! Notifications are sent after the commit, batched by a notifier task, not inside the append's
//! transaction: PostgreSQL serialises the commits of notifying transactions under one lock held
//! across their WAL flush, which would cost one fsync per append (measured in
//! `benches/README.md`). Should the process die between a commit and its notification, other
//! processes' subscribers find the events at their next safety poll.
//!
//! A notification carries only the stream id; it means "read the table again". The table is
//! the truth: a subscriber reads from its cursor after every wake-up, so a lost, duplicated or
//! late notification costs at most a read or a poll interval, never an event. When the
//! listening connection drops, the listener reconnects, listens again and then wakes every
//! subscriber, which covers whatever was committed while nobody listened.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use deadpool_postgres::{GenericClient, Pool};
use event_listener::Event;
use futures::StreamExt;
use managed_agents_core::storage::{Error, StreamId};
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, NoTls};

use crate::backend;

/// The notification channel of every store sharing a database.
pub(crate) const CHANNEL: &str = "managed_agents_streams";

/// How long the listener waits before reconnecting after a failure.
const RECONNECT_DELAY: Duration = Duration::from_millis(200);

/// Starts the task that sends notifications for the streams sent to the returned channel,
/// each batch of queued streams in one statement on a pooled connection. Ends when the
/// channel's senders are gone.
pub(crate) fn spawn_notifier(pool: Pool) -> mpsc::UnboundedSender<StreamId> {
    let (tx, mut rx) = mpsc::unbounded_channel::<StreamId>();
    tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            let mut streams = BTreeSet::from([first.as_str().to_owned()]);
            while let Ok(more) = rx.try_recv() {
                streams.insert(more.as_str().to_owned());
            }
            let streams: Vec<String> = streams.into_iter().collect();
            if let Err(error) = send(&pool, &streams).await {
                tracing::warn!(%error, "sending stream notifications failed; subscribers elsewhere wait for their safety poll");
            }
        }
    });
    tx
}

async fn send(pool: &Pool, streams: &[String]) -> Result<(), Error> {
    let client = pool.get().await.map_err(crate::pool_error)?;
    let statement = client
        .prepare_cached("SELECT pg_notify($1, stream) FROM unnest($2::text[]) AS batch(stream)")
        .await
        .map_err(backend)?;
    client
        .query(&statement, &[&CHANNEL, &streams])
        .await
        .map_err(backend)?;
    Ok(())
}

/// What the subscribers of one stream share: the event that wakes them, and how many times
/// this store deleted the stream while they followed it.
#[derive(Default)]
pub(crate) struct Followed {
    /// Notified on every wake-up of the stream.
    pub(crate) event: Event,
    /// Deletions of the stream by this store (a subscriber that saw a lower count when it
    /// started was open when the stream was deleted: it ends with `Deleted`).
    pub(crate) deletions: AtomicU64,
}

/// The followed streams of one store and the events their subscribers wait on.
#[derive(Default)]
pub(crate) struct Wakers {
    streams: Mutex<HashMap<StreamId, Weak<Followed>>>,
    /// The backend pid of the current listening connection (0 while disconnected).
    listener_pid: AtomicI32,
}

impl Wakers {
    fn streams(&self) -> MutexGuard<'_, HashMap<StreamId, Weak<Followed>>> {
        self.streams
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// What the subscribers of `stream` share; subscribers hold it while they follow.
    pub(crate) fn follow(&self, stream: &StreamId) -> Arc<Followed> {
        let mut streams = self.streams();
        if let Some(followed) = streams.get(stream).and_then(Weak::upgrade) {
            return followed;
        }
        streams.retain(|_, followed| followed.strong_count() > 0);
        let followed = Arc::new(Followed::default());
        streams.insert(stream.clone(), Arc::downgrade(&followed));
        followed
    }

    /// Wakes the subscribers of `stream`, if any.
    pub(crate) fn wake(&self, stream: &StreamId) {
        let followed = self.streams().get(stream).and_then(Weak::upgrade);
        if let Some(followed) = followed {
            followed.event.notify(usize::MAX);
        }
    }

    /// Counts a deletion of `stream` by this store for its current subscribers, then wakes
    /// them (they end with `Deleted`).
    pub(crate) fn deleted(&self, stream: &StreamId) {
        let followed = self.streams().get(stream).and_then(Weak::upgrade);
        if let Some(followed) = followed {
            followed.deletions.fetch_add(1, Ordering::AcqRel);
            followed.event.notify(usize::MAX);
        }
    }

    /// Wakes every subscriber (after the listener reconnected).
    fn wake_all(&self) {
        let all: Vec<_> = self.streams().values().filter_map(Weak::upgrade).collect();
        for followed in all {
            followed.event.notify(usize::MAX);
        }
    }

    /// The backend pid of the listening connection, if it is connected.
    pub(crate) fn listener_pid(&self) -> Option<i32> {
        match self.listener_pid.load(Ordering::Acquire) {
            0 => None,
            pid => Some(pid),
        }
    }
}

/// Listens on [`CHANNEL`] for as long as `wakers` has another owner, reconnecting whenever the
/// connection ends. `ready` fires once the first `LISTEN` is in place.
pub(crate) async fn listen(
    config: tokio_postgres::Config,
    wakers: Weak<Wakers>,
    ready: tokio::sync::oneshot::Sender<Result<(), Error>>,
) {
    let mut ready = Some(ready);
    loop {
        let outcome = listen_once(&config, &wakers, &mut ready).await;
        if let Some(wakers) = wakers.upgrade() {
            wakers.listener_pid.store(0, Ordering::Release);
        } else {
            return;
        }
        match outcome {
            Err(error) if ready.is_some() => {
                if let Some(ready) = ready.take() {
                    let _ = ready.send(Err(error));
                }
                return;
            }
            Err(error) => tracing::warn!(%error, "the LISTEN connection failed; reconnecting"),
            Ok(()) => tracing::warn!("the LISTEN connection closed; reconnecting"),
        }
        tokio::time::sleep(RECONNECT_DELAY).await;
    }
}

/// One listening connection, from connect to its end.
async fn listen_once(
    config: &tokio_postgres::Config,
    wakers: &Weak<Wakers>,
    ready: &mut Option<tokio::sync::oneshot::Sender<Result<(), Error>>>,
) -> Result<(), Error> {
    let (client, mut connection) = config.connect(NoTls).await.map_err(backend)?;
    let (notifications_tx, mut notifications) = futures::channel::mpsc::unbounded();
    let driver = tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(notification)) => {
                    if notifications_tx
                        .unbounded_send(notification.payload().to_owned())
                        .is_err()
                    {
                        return;
                    }
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::debug!(%error, "the LISTEN connection ended");
                    return;
                }
            }
        }
    });
    let listening = async {
        client
            .batch_execute(&format!("LISTEN {CHANNEL}"))
            .await
            .map_err(backend)?;
        let row = client
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .map_err(backend)?;
        row.try_get::<_, i32>(0).map_err(backend)
    };
    let pid = match listening.await {
        Ok(pid) => pid,
        Err(error) => {
            driver.abort();
            return Err(error);
        }
    };
    {
        let Some(wakers) = wakers.upgrade() else {
            driver.abort();
            return Ok(());
        };
        wakers.listener_pid.store(pid, Ordering::Release);
        // Whatever was committed before LISTEN took effect is only in the table: every
        // subscriber reads again.
        wakers.wake_all();
    }
    if let Some(ready) = ready.take() {
        let _ = ready.send(Ok(()));
    }
    while let Some(stream) = notifications.next().await {
        let Some(wakers) = wakers.upgrade() else {
            break;
        };
        wakers.wake(&StreamId::new(stream));
    }
    driver.abort();
    drop(client);
    Ok(())
}
