//! Catalog entries as rows of the `catalog` table, and listing queries built from a
//! [`CatalogQuery`] so that the database applies every filter, the cursor and the limit.

use deadpool_postgres::GenericClient;
use managed_agents_core::storage::{CatalogEntry, CatalogQuery, Error, Kind, Order};
use managed_agents_core::time::Timestamp;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use crate::backend;

/// The columns of an entry, in the order [`from_row`] reads them.
const COLUMNS: &str =
    "kind, id, workspace, parent, created_at, archived, name, agent_id, agent_version, status";

/// A data-modifying statement (for a `WITH` clause) that writes the entry whose values are
/// parameters `$first..$first+9` (in [`upsert_params`] order), replacing the previous entry of
/// the same kind and id, once for each row of `source`.
pub(crate) fn upsert_from(source: &str, first: usize) -> String {
    let p = |offset: usize| first + offset;
    format!(
        "INSERT INTO catalog ({COLUMNS})
         SELECT ${}::smallint, ${}::text, ${}::text, ${}::text, ${}::bigint, ${}::boolean,
                ${}::text, ${}::text, ${}::bigint, ${}::text
         FROM {source}
         ON CONFLICT (kind, id) DO UPDATE SET
             workspace = EXCLUDED.workspace, parent = EXCLUDED.parent,
             created_at = EXCLUDED.created_at, archived = EXCLUDED.archived,
             name = EXCLUDED.name, agent_id = EXCLUDED.agent_id,
             agent_version = EXCLUDED.agent_version, status = EXCLUDED.status",
        p(0),
        p(1),
        p(2),
        p(3),
        p(4),
        p(5),
        p(6),
        p(7),
        p(8),
        p(9)
    )
}

/// The parameters of [`upsert_from`] for `entry`.
pub(crate) fn upsert_params(entry: &CatalogEntry) -> Result<Vec<Param>, Error> {
    let (agent_id, agent_version) = match &entry.agent {
        Some((id, version)) => (Some(id.clone()), Some(to_i64(*version)?)),
        None => (None, None),
    };
    Ok(vec![
        Box::new(kind_code(entry.kind)),
        Box::new(entry.id.clone()),
        Box::new(entry.workspace.clone()),
        Box::new(entry.parent.clone()),
        Box::new(entry.created_at.millis()),
        Box::new(entry.archived),
        Box::new(entry.name.clone()),
        Box::new(agent_id),
        Box::new(agent_version),
        Box::new(entry.status.clone()),
    ])
}

/// An owned statement parameter.
pub(crate) type Param = Box<dyn ToSql + Sync + Send>;

/// `params` as the slice a query takes.
pub(crate) fn borrowed(params: &[Param]) -> Vec<&(dyn ToSql + Sync)> {
    params
        .iter()
        .map(|param| param.as_ref() as &(dyn ToSql + Sync))
        .collect()
}

/// The entry of `kind` with `id`, if any.
pub(crate) async fn get(
    client: &impl GenericClient,
    kind: Kind,
    id: &str,
) -> Result<Option<CatalogEntry>, Error> {
    let sql = format!("SELECT {COLUMNS} FROM catalog WHERE kind = $1 AND id = $2");
    let statement = client.prepare_cached(&sql).await.map_err(backend)?;
    let row = client
        .query_opt(&statement, &[&kind_code(kind), &id])
        .await
        .map_err(backend)?;
    row.as_ref().map(from_row).transpose()
}

/// Up to `query.limit + 1` entries matching `query` past its cursor, in its order.
pub(crate) async fn list(
    client: &impl GenericClient,
    query: &CatalogQuery,
) -> Result<Vec<CatalogEntry>, Error> {
    let mut filter = Filter::default();
    filter.push("kind = ", kind_code(query.kind));
    filter.push("workspace = ", query.workspace.clone());
    if let Some(parent) = &query.parent {
        filter.push("parent = ", parent.clone());
    }
    if !query.include_archived {
        filter.push("archived = ", false);
    }
    if let Some(agent_id) = &query.agent_id {
        filter.push("agent_id = ", agent_id.clone());
    }
    if let Some(version) = query.agent_version {
        filter.push("agent_version = ", to_i64(version)?);
    }
    if !query.statuses.is_empty() {
        filter.push_any("status", query.statuses.clone());
    }
    let created = &query.created;
    for (op, bound) in [
        ("created_at > ", created.gt),
        ("created_at >= ", created.gte),
        ("created_at < ", created.lt),
        ("created_at <= ", created.lte),
    ] {
        if let Some(bound) = bound {
            filter.push(op, bound.millis());
        }
    }
    let direction = match query.order {
        Order::Desc => "DESC",
        Order::Asc => "ASC",
    };
    if let Some(cursor) = &query.after {
        let op = match query.order {
            Order::Desc => "id < ",
            Order::Asc => "id > ",
        };
        filter.push(op, cursor.clone());
    }
    let limit = i64::try_from(query.limit.saturating_add(1)).unwrap_or(i64::MAX);
    filter.params.push(Box::new(limit));
    let sql = format!(
        "SELECT {COLUMNS} FROM catalog WHERE {} ORDER BY id {direction} LIMIT ${}",
        filter.conditions.join(" AND "),
        filter.params.len()
    );
    let rows = client
        .query(&sql, &borrowed(&filter.params))
        .await
        .map_err(backend)?;
    rows.iter().map(from_row).collect()
}

/// Deletes the entry of `kind` with `id`.
pub(crate) async fn remove(client: &impl GenericClient, kind: Kind, id: &str) -> Result<(), Error> {
    let statement = client
        .prepare_cached("DELETE FROM catalog WHERE kind = $1 AND id = $2")
        .await
        .map_err(backend)?;
    client
        .execute(&statement, &[&kind_code(kind), &id])
        .await
        .map_err(backend)?;
    Ok(())
}

/// `WHERE` conditions with numbered parameters.
#[derive(Default)]
struct Filter {
    conditions: Vec<String>,
    params: Vec<Param>,
}

impl Filter {
    /// Adds `<column op> $n` with `value` as parameter n.
    fn push(&mut self, column_op: &str, value: impl ToSql + Sync + Send + 'static) {
        self.params.push(Box::new(value));
        self.conditions
            .push(format!("{column_op}${}", self.params.len()));
    }

    /// Adds `column = ANY($n)`.
    fn push_any(&mut self, column: &str, values: Vec<String>) {
        self.params.push(Box::new(values));
        self.conditions
            .push(format!("{column} = ANY(${})", self.params.len()));
    }
}

fn kind_code(kind: Kind) -> i16 {
    i16::from(kind.code())
}

fn to_i64(value: u64) -> Result<i64, Error> {
    i64::try_from(value).map_err(|_| Error::Backend(format!("{value} does not fit in a BIGINT")))
}

fn from_row(row: &Row) -> Result<CatalogEntry, Error> {
    let code: i16 = row.try_get(0).map_err(backend)?;
    let kind = u8::try_from(code)
        .ok()
        .and_then(Kind::from_code)
        .ok_or_else(|| Error::Backend(format!("unknown catalog kind {code}")))?;
    let agent_id: Option<String> = row.try_get(7).map_err(backend)?;
    let agent_version: Option<i64> = row.try_get(8).map_err(backend)?;
    let agent = match (agent_id, agent_version) {
        (Some(id), Some(version)) => Some((
            id,
            u64::try_from(version)
                .map_err(|_| Error::Backend(format!("negative agent version {version}")))?,
        )),
        _ => None,
    };
    Ok(CatalogEntry {
        kind,
        id: row.try_get(1).map_err(backend)?,
        workspace: row.try_get(2).map_err(backend)?,
        parent: row.try_get(3).map_err(backend)?,
        created_at: Timestamp::from_millis(row.try_get(4).map_err(backend)?),
        archived: row.try_get(5).map_err(backend)?,
        name: row.try_get(6).map_err(backend)?,
        agent,
        status: row.try_get(9).map_err(backend)?,
    })
}
