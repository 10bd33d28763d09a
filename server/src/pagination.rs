//! Opaque list cursors and the page envelope.
//!
//! Catalog cursors encode the listing order, the direction (forward for `next_page`, backward
//! for `prev_page` on sessions) and the boundary id. Event cursors encode the order and the
//! stream version the page continues after; the SSE `id:` of an event is exactly the ascending
//! cursor after that event, so `Last-Event-ID` and `?page=` are interchangeable. A cursor reused
//! with a different `order` is a 400.

use base64::Engine;
use managed_agents_core::storage::{CatalogEntry, CatalogQuery, Order, Store, Version};
use serde::Serialize;

use crate::error::Error;

const PREFIX: &str = "page_";

fn seal(text: &str) -> String {
    format!(
        "{PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
    )
}

fn unseal(cursor: &str) -> Option<String> {
    let body = cursor.strip_prefix(PREFIX)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(body)
        .ok()?;
    String::from_utf8(bytes).ok()
}

fn order_char(order: Order) -> char {
    match order {
        Order::Asc => 'a',
        Order::Desc => 'd',
    }
}

fn bad_cursor(cursor: &str) -> Error {
    Error::invalid(format!("page: {cursor:?} is not a valid page cursor"))
}

fn wrong_order() -> Error {
    Error::invalid("page: the cursor was created with a different order; keep `order` when paging")
}

/// `order=asc|desc`, `default` when absent.
pub fn order(query: &crate::query::Query, default: Order) -> Result<Order, Error> {
    match query.one("order")? {
        None => Ok(default),
        Some("asc") => Ok(Order::Asc),
        Some("desc") => Ok(Order::Desc),
        Some(other) => Err(Error::invalid(format!(
            "order: must be asc or desc, got {other:?}"
        ))),
    }
}

/// A position in a catalog listing.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CatalogCursor {
    order: Order,
    backward: bool,
    id: String,
}

impl CatalogCursor {
    fn encode(&self) -> String {
        let dir = if self.backward { 'b' } else { 'f' };
        seal(&format!("c{}{dir}:{}", order_char(self.order), self.id))
    }

    fn decode(cursor: &str, order: Order) -> Result<Self, Error> {
        let text = unseal(cursor).ok_or_else(|| bad_cursor(cursor))?;
        let mut chars = text.chars();
        let (Some('c'), Some(o), Some(d), Some(':')) =
            (chars.next(), chars.next(), chars.next(), chars.next())
        else {
            return Err(bad_cursor(cursor));
        };
        let parsed = match o {
            'a' => Order::Asc,
            'd' => Order::Desc,
            _ => return Err(bad_cursor(cursor)),
        };
        if parsed != order {
            return Err(wrong_order());
        }
        let backward = match d {
            'f' => false,
            'b' => true,
            _ => return Err(bad_cursor(cursor)),
        };
        Ok(Self {
            order,
            backward,
            id: chars.collect(),
        })
    }
}

/// One page of catalog entries with its neighbours' cursors.
#[derive(Debug)]
pub struct CatalogPage {
    /// The entries, in the requested order.
    pub entries: Vec<CatalogEntry>,
    /// Cursor of the following page.
    pub next: Option<String>,
    /// Cursor of the preceding page (`None` on the first page).
    pub prev: Option<String>,
}

/// Lists one page of `query` (its `order` and `limit` set) continuing from `page`.
pub async fn list_catalog<S: Store>(
    store: &S,
    mut query: CatalogQuery,
    page: Option<&str>,
) -> Result<CatalogPage, Error> {
    let order = query.order;
    let cursor = page
        .filter(|p| !p.is_empty())
        .map(|p| CatalogCursor::decode(p, order))
        .transpose()?;
    let fwd = |id: &str| {
        CatalogCursor {
            order,
            backward: false,
            id: id.to_owned(),
        }
        .encode()
    };
    let back = |id: &str| {
        CatalogCursor {
            order,
            backward: true,
            id: id.to_owned(),
        }
        .encode()
    };
    match cursor {
        Some(CatalogCursor {
            backward: true, id, ..
        }) => {
            query.order = match order {
                Order::Asc => Order::Desc,
                Order::Desc => Order::Asc,
            };
            query.after = Some(id);
            let found = store.list(&query).await?;
            let mut entries = found.entries;
            entries.reverse();
            let prev = found
                .has_more
                .then(|| entries.first().map(|e| back(&e.id)))
                .flatten();
            let next = entries.last().map(|e| fwd(&e.id));
            Ok(CatalogPage {
                entries,
                next,
                prev,
            })
        }
        forward => {
            let started = forward.is_some();
            query.after = forward.map(|c| c.id);
            let found = store.list(&query).await?;
            let next = found
                .has_more
                .then(|| found.entries.last().map(|e| fwd(&e.id)))
                .flatten();
            let prev = started
                .then(|| found.entries.first().map(|e| back(&e.id)))
                .flatten();
            Ok(CatalogPage {
                entries: found.entries,
                next,
                prev,
            })
        }
    }
}

/// The cursor that continues an event listing in `order` after stream version `version`.
pub fn event_cursor(order: Order, version: Version) -> String {
    seal(&format!("e{}:{version}", order_char(order)))
}

/// Decodes an event cursor created with `order`.
pub fn parse_event_cursor(cursor: &str, order: Order) -> Result<Version, Error> {
    let text = unseal(cursor).ok_or_else(|| bad_cursor(cursor))?;
    let rest = text.strip_prefix('e').ok_or_else(|| bad_cursor(cursor))?;
    let (o, version) = rest.split_once(':').ok_or_else(|| bad_cursor(cursor))?;
    if o != order_char(order).to_string() {
        return Err(wrong_order());
    }
    version.parse().map_err(|_| bad_cursor(cursor))
}

/// A cursor continuing a listing after `key` (listings kept in an object's fold rather than
/// the catalog, e.g. memories by path); `tag` names the listing so cursors do not cross.
pub fn key_cursor(tag: char, key: &str) -> String {
    seal(&format!("k{tag}:{key}"))
}

/// Decodes a [`key_cursor`] of listing `tag`.
pub fn parse_key_cursor(tag: char, cursor: &str) -> Result<String, Error> {
    let text = unseal(cursor).ok_or_else(|| bad_cursor(cursor))?;
    text.strip_prefix(&format!("k{tag}:"))
        .map(str::to_owned)
        .ok_or_else(|| bad_cursor(cursor))
}

/// `{data, next_page}`.
#[derive(Debug, Serialize)]
pub struct Page<T> {
    /// The items.
    pub data: Vec<T>,
    /// Cursor of the next page, `null` on the last.
    pub next_page: Option<String>,
}

/// A `{data, next_page}` page whose items are JSON already (an events list serializes each
/// event once, to measure the page by it, and writes those bytes as they are: the same body as
/// [`Page`]'s, without serializing every event a second time).
#[derive(Debug)]
pub struct RawPage {
    /// The items, each one JSON value.
    pub items: Vec<Vec<u8>>,
    /// Cursor of the next page, `null` on the last.
    pub next_page: Option<String>,
}

impl RawPage {
    /// The JSON text of the page.
    pub fn to_bytes(&self) -> Vec<u8> {
        let items: usize = self.items.iter().map(|item| item.len() + 1).sum();
        let mut body = Vec::with_capacity(items + 64);
        body.extend_from_slice(b"{\"data\":[");
        for (i, item) in self.items.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(item);
        }
        body.extend_from_slice(b"],\"next_page\":");
        // A string or null serializes infallibly.
        let next = serde_json::to_vec(&self.next_page).unwrap_or_else(|_| b"null".to_vec());
        body.extend_from_slice(&next);
        body.push(b'}');
        body
    }
}

impl axum::response::IntoResponse for RawPage {
    fn into_response(self) -> axum::response::Response {
        (
            [(
                axum::http::header::CONTENT_TYPE,
                axum::http::HeaderValue::from_static("application/json"),
            )],
            self.to_bytes(),
        )
            .into_response()
    }
}

/// `{data, next_page, prev_page}` (sessions).
#[derive(Debug, Serialize)]
pub struct BidiPage<T> {
    /// The items.
    pub data: Vec<T>,
    /// Cursor of the next page, `null` on the last.
    pub next_page: Option<String>,
    /// Cursor of the previous page, `null` on the first.
    pub prev_page: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_cursors_round_trip_and_keep_their_order() {
        let cursor = event_cursor(Order::Asc, 42);
        assert!(cursor.starts_with("page_"));
        assert_eq!(parse_event_cursor(&cursor, Order::Asc).ok(), Some(42));
        assert!(parse_event_cursor(&cursor, Order::Desc).is_err());
        assert!(parse_event_cursor("garbage", Order::Asc).is_err());
    }

    #[test]
    fn a_raw_page_is_the_page_its_items_make() {
        let items = vec![
            serde_json::json!({"id": "sevt_1", "text": "a \"quoted\" word"}),
            serde_json::json!({"id": "sevt_2", "n": [1, 2]}),
        ];
        for next_page in [None, Some(event_cursor(Order::Desc, 7))] {
            let raw = RawPage {
                items: items
                    .iter()
                    .map(|item| serde_json::to_vec(item).unwrap())
                    .collect(),
                next_page: next_page.clone(),
            };
            let page = Page {
                data: items.clone(),
                next_page,
            };
            assert_eq!(raw.to_bytes(), serde_json::to_vec(&page).unwrap());
        }
        let empty = RawPage {
            items: Vec::new(),
            next_page: None,
        };
        assert_eq!(
            empty.to_bytes(),
            br#"{"data":[],"next_page":null}"#.to_vec()
        );
    }
}
