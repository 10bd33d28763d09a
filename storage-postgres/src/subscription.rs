//! Subscriptions: a task on the store's runtime that reads the events table from the
//! subscriber's cursor, then sleeps until a wake-up (a notification from any process, or this
//! process's own commit) or the safety poll, and reads again.
//!
//! The cursor is the version of the last record handed over, and every read starts right
//! after it, so delivery is gap-free, exactly-once and in order whatever the wake-ups do. A
//! stream whose head row the task has seen and then finds missing (or lower than it was) was
//! deleted: the subscription ends with [`Error::Deleted`]; so does one open when this store
//! deleted the stream (whether or not it had seen the stream: `Wakers::deleted`, counted
//! before the delete returns). Before it ends, it hands over the events after its cursor that
//! the delete kept (`deleted_tails`: a stream's last events, such as the `session.deleted`
//! appended just before a session's delete, which a subscriber in another process woken by
//! the append may find already gone). A cursor beyond the head just waits, as with the other
//! backends.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use managed_agents_core::storage::{Direction, Error, Record, StreamId, Version};
use tokio::sync::mpsc;

use crate::events;
use crate::notify::Wakers;

/// How many records one read fetches.
const PAGE: usize = 512;
/// How many records wait between the task and a slow consumer.
const BUFFER: usize = 1024;

/// Starts following `stream` after `after` on the current runtime; the receiver yields what
/// the task reads. The task ends when the receiver is dropped.
pub(crate) fn spawn(
    pool: Pool,
    wakers: Arc<Wakers>,
    stream: StreamId,
    after: Version,
    poll: Duration,
) -> mpsc::Receiver<Result<Record, Error>> {
    let (tx, rx) = mpsc::channel(BUFFER);
    // Taken before the subscription is handed out: a delete by this store after that ends it.
    let followed = wakers.follow(&stream);
    drop(wakers);
    let deletions = followed.deletions.load(Ordering::Acquire);
    tokio::spawn(async move {
        let mut cursor = after;
        // The highest head seen: a head row that disappears, or comes back lower, means the
        // stream was deleted after this subscription saw it.
        let mut seen: Option<Version> = None;
        loop {
            // Listen before reading, so a wake-up during the read is not lost.
            let woken = followed.event.listen();
            if followed.deletions.load(Ordering::Acquire) != deletions {
                break;
            }
            let page = match read_after(&pool, &stream, cursor).await {
                Ok(page) => page,
                Err(error) => {
                    let _ = tx.send(Err(error)).await;
                    return;
                }
            };
            if !page.is_empty() {
                for record in page {
                    cursor = record.version;
                    seen = seen.max(Some(cursor));
                    if tx.send(Ok(record)).await.is_err() {
                        return;
                    }
                }
                continue;
            }
            match head(&pool, &stream).await {
                Ok(head) if head < seen => break,
                Ok(head) => seen = seen.max(head),
                Err(error) => {
                    let _ = tx.send(Err(error)).await;
                    return;
                }
            }
            tokio::select! {
                _ = woken => {}
                _ = tokio::time::sleep(poll) => {}
                _ = tx.closed() => return,
            }
        }
        // The stream is gone: first what its delete kept that this subscriber had not read.
        let tail = match pool.get().await {
            Ok(client) => events::deleted_tail(&client, &stream, cursor).await,
            Err(error) => Err(crate::pool_error(error)),
        };
        match tail {
            Ok(tail) => {
                for record in tail {
                    if tx.send(Ok(record)).await.is_err() {
                        return;
                    }
                }
            }
            Err(error) => tracing::warn!(%stream, %error, "cannot read a deleted stream's tail"),
        }
        let _ = tx.send(Err(Error::Deleted(stream))).await;
    });
    rx
}

async fn read_after(pool: &Pool, stream: &StreamId, cursor: Version) -> Result<Vec<Record>, Error> {
    let client = pool.get().await.map_err(crate::pool_error)?;
    events::read(&client, stream, cursor + 1, Direction::Forward, PAGE).await
}

async fn head(pool: &Pool, stream: &StreamId) -> Result<Option<Version>, Error> {
    let client = pool.get().await.map_err(crate::pool_error)?;
    events::head_row(&client, stream).await
}
