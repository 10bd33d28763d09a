//! Leases (`Store::lease`) in the `leases` table, by the database's clock: one statement each,
//! so concurrent claimants serialise on the row and exactly one wins a free lease. Tokens come
//! from one sequence (`lease_tokens`), so they grow across all leases.

use std::time::Duration;

use deadpool_postgres::{Client, GenericClient};
use managed_agents_core::storage::{Error, Grant};

use crate::backend;

/// Grants `name` to `holder` for `ttl` when it is free, lapsed or already `holder`'s; a new
/// holder gets the next token of the one sequence all leases share.
pub(crate) async fn acquire(
    client: &Client,
    name: &str,
    holder: &str,
    ttl: Duration,
) -> Result<Option<Grant>, Error> {
    let millis = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 1000);
    let row = client
        .query_opt(
            "INSERT INTO leases (name, holder, token, expires_at)
             VALUES ($1, $2, nextval('lease_tokens'),
                     clock_timestamp() + $3 * interval '1 millisecond')
             ON CONFLICT (name) DO UPDATE SET
                 token = CASE WHEN leases.holder = EXCLUDED.holder THEN leases.token
                              ELSE EXCLUDED.token END,
                 holder = EXCLUDED.holder,
                 expires_at = EXCLUDED.expires_at
             WHERE leases.holder = EXCLUDED.holder OR leases.expires_at <= clock_timestamp()
             RETURNING token",
            &[&name, &holder, &(millis as f64)],
        )
        .await
        .map_err(backend)?;
    match row {
        None => Ok(None),
        Some(row) => {
            let token: i64 = row.try_get(0).map_err(backend)?;
            let token = u64::try_from(token)
                .map_err(|_| Error::Backend(format!("lease {name}: negative token {token}")))?;
            Ok(Some(Grant { token }))
        }
    }
}

/// Ends `holder`'s lease on `name` (the row stays, lapsed, for its token).
pub(crate) async fn release(client: &Client, name: &str, holder: &str) -> Result<(), Error> {
    client
        .execute(
            "UPDATE leases SET expires_at = '-infinity' WHERE name = $1 AND holder = $2",
            &[&name, &holder],
        )
        .await
        .map_err(backend)?;
    Ok(())
}
