//! Streams and their events: expected-version appends in one statement, range reads, heads
//! and deletion.

use bytes::Bytes;
use deadpool_postgres::{Client, GenericClient};
use managed_agents_core::storage::{
    Append, Appended, Direction, Error, Expected, Kind, Record, StreamId, Version,
};
use tokio_postgres::error::SqlState;

use crate::{backend, catalog};

/// Appends `append` in one statement, so one round trip and one implicit transaction: a `WITH`
/// clause advances the stream's head row if it is at the expected version (the row lock
/// serialises appenders to one stream), inserts the events at the versions after it and writes
/// the catalog entry, each only for the head row it got; so a wrong expected version writes
/// nothing. (The wake-up `NOTIFY` is sent after the commit, by the caller: see
/// [`crate::notify`].)
pub(crate) async fn append(client: &Client, append: &Append) -> Result<Appended, Error> {
    let count = append.events.len() as Version;
    let mut params: Vec<catalog::Param> = vec![
        Box::new(append.stream.as_str().to_owned()),
        Box::new(to_i64(count)?),
    ];
    let advance = match append.expected {
        Expected::Any => {
            "INSERT INTO streams (stream, head) VALUES ($1, $2)
             ON CONFLICT (stream) DO UPDATE SET head = streams.head + EXCLUDED.head
             RETURNING head"
        }
        Expected::Exactly(0) => {
            "INSERT INTO streams (stream, head) VALUES ($1, $2)
             ON CONFLICT (stream) DO UPDATE SET head = streams.head + EXCLUDED.head
             WHERE streams.head = 0
             RETURNING head"
        }
        Expected::Exactly(expected) => {
            params.push(Box::new(to_i64(expected)?));
            "UPDATE streams SET head = head + $2 WHERE stream = $1 AND head = $3 RETURNING head"
        }
    };
    let mut sql = format!("WITH head AS ({advance})");
    if !append.events.is_empty() {
        let payloads: Vec<Vec<u8>> = append.events.iter().map(|event| event.to_vec()).collect();
        params.push(Box::new(payloads));
        sql += &format!(
            ", inserted AS (
                 INSERT INTO events (stream, version, payload)
                 SELECT $1, head.head - $2 + batch.ordinality, batch.payload
                 FROM head, unnest(${}::bytea[]) WITH ORDINALITY AS batch(payload, ordinality))",
            params.len()
        );
    }
    if let Some(entry) = &append.catalog {
        sql += &format!(
            ", entry AS ({})",
            catalog::upsert_from("head", params.len() + 1)
        );
        params.extend(catalog::upsert_params(entry)?);
    }
    sql += " SELECT head FROM head";
    let statement = client.prepare_cached(&sql).await.map_err(backend)?;
    let advanced = match client
        .query_opt(&statement, &catalog::borrowed(&params))
        .await
    {
        Ok(advanced) => advanced,
        Err(error) if error.code() == Some(&SqlState::UNIQUE_VIOLATION) => None,
        Err(error) => return Err(backend(error)),
    };
    let Some(row) = advanced else {
        // Nothing was written; the head that beat us is committed by now.
        let actual = head_in(client, &append.stream).await?;
        return Err(wrong_version(append, actual));
    };
    let last = to_version(row.try_get(0).map_err(backend)?)?;
    Ok(Appended {
        first: last + 1 - count,
        last,
    })
}

fn wrong_version(append: &Append, actual: Version) -> Error {
    let expected = match append.expected {
        Expected::Exactly(expected) => expected,
        Expected::Any => actual,
    };
    Error::WrongExpectedVersion {
        stream: append.stream.clone(),
        expected,
        actual,
    }
}

/// Up to `limit` records of `stream` from `from` in `direction`.
pub(crate) async fn read(
    client: &impl GenericClient,
    stream: &StreamId,
    from: Version,
    direction: Direction,
    limit: usize,
) -> Result<Vec<Record>, Error> {
    let sql = match direction {
        Direction::Forward => {
            "SELECT version, payload FROM events WHERE stream = $1 AND version >= $2
             ORDER BY version ASC LIMIT $3"
        }
        Direction::Backward => {
            "SELECT version, payload FROM events WHERE stream = $1 AND version <= $2
             ORDER BY version DESC LIMIT $3"
        }
    };
    let from = i64::try_from(from).unwrap_or(i64::MAX);
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let statement = client.prepare_cached(sql).await.map_err(backend)?;
    let rows = client
        .query(&statement, &[&stream.as_str(), &from, &limit])
        .await
        .map_err(backend)?;
    records(&rows)
}

/// The records of `(version, payload)` rows.
fn records(rows: &[tokio_postgres::Row]) -> Result<Vec<Record>, Error> {
    rows.iter()
        .map(|row| {
            let version = to_version(row.try_get(0).map_err(backend)?)?;
            let payload: Vec<u8> = row.try_get(1).map_err(backend)?;
            Ok(Record {
                version,
                payload: Bytes::from(payload),
            })
        })
        .collect()
}

/// The kept events of deleted `stream` after version `after`, oldest first (see [`delete`]).
pub(crate) async fn deleted_tail(
    client: &impl GenericClient,
    stream: &StreamId,
    after: Version,
) -> Result<Vec<Record>, Error> {
    let statement = client
        .prepare_cached(
            "SELECT version, payload FROM deleted_tails WHERE stream = $1 AND version > $2
             ORDER BY version",
        )
        .await
        .map_err(backend)?;
    let rows = client
        .query(&statement, &[&stream.as_str(), &to_i64(after)?])
        .await
        .map_err(backend)?;
    records(&rows)
}

/// The head of `stream`: `None` when it has no head row (never written, or deleted).
pub(crate) async fn head_row(
    client: &impl GenericClient,
    stream: &StreamId,
) -> Result<Option<Version>, Error> {
    let statement = client
        .prepare_cached("SELECT head FROM streams WHERE stream = $1")
        .await
        .map_err(backend)?;
    let row = client
        .query_opt(&statement, &[&stream.as_str()])
        .await
        .map_err(backend)?;
    match row {
        Some(row) => to_version(row.try_get(0).map_err(backend)?).map(Some),
        None => Ok(None),
    }
}

async fn head_in(client: &impl GenericClient, stream: &StreamId) -> Result<Version, Error> {
    Ok(head_row(client, stream).await?.unwrap_or(0))
}

/// How many of a deleted stream's last events are kept in `deleted_tails` for subscribers in
/// other processes that had not read them yet ([`deleted_tail`]).
pub(crate) const KEPT_TAIL: i64 = 64;

/// Deletes the stream's head row, its events and its catalog entry in one transaction (its
/// subscribers, once woken, find the head row gone), keeping its last [`KEPT_TAIL`] events in
/// `deleted_tails` (replacing an earlier tail of the stream; tails older than ten minutes go).
pub(crate) async fn delete(
    client: &mut Client,
    kind: Kind,
    stream: &StreamId,
) -> Result<(), Error> {
    let transaction = client.transaction().await.map_err(backend)?;
    let stream = stream.as_str();
    let steps: [(&str, &[&(dyn tokio_postgres::types::ToSql + Sync)]); 5] = [
        (
            "DELETE FROM deleted_tails WHERE deleted_at < now() - interval '10 minutes'",
            &[],
        ),
        ("DELETE FROM deleted_tails WHERE stream = $1", &[&stream]),
        (
            "INSERT INTO deleted_tails (stream, version, payload)
             SELECT stream, version, payload FROM events WHERE stream = $1
             ORDER BY version DESC LIMIT $2",
            &[&stream, &KEPT_TAIL],
        ),
        ("DELETE FROM streams WHERE stream = $1", &[&stream]),
        ("DELETE FROM events WHERE stream = $1", &[&stream]),
    ];
    for (sql, params) in steps {
        let statement = transaction.prepare_cached(sql).await.map_err(backend)?;
        transaction
            .execute(&statement, params)
            .await
            .map_err(backend)?;
    }
    catalog::remove(&transaction, kind, stream).await?;
    transaction.commit().await.map_err(backend)
}

fn to_i64(value: u64) -> Result<i64, Error> {
    i64::try_from(value).map_err(|_| Error::Backend(format!("version {value} is out of range")))
}

fn to_version(value: i64) -> Result<Version, Error> {
    Version::try_from(value).map_err(|_| Error::Backend(format!("negative version {value}")))
}
