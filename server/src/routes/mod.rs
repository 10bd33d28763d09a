//! The `/v1` routes, one module per resource, plus operational endpoints.

use axum::Router;

use crate::state::AppState;

pub mod agents;
pub mod environments;
pub mod events;
pub mod files;
pub mod fork;
pub mod memory_stores;
pub mod ops;
pub mod resources;
pub mod sessions;
pub mod skills;
pub mod threads;
pub mod vaults;
pub mod work;

/// Every route under `/v1`, each written with its full path: merged, not nested, so no
/// request pays for a prefix stripped off its URI (axum's `nest` rebuilds the URI of every
/// request it routes, ~3 % of the server's CPU under `POST /events` load).
pub fn v1() -> Router<AppState> {
    Router::new()
        .merge(agents::router())
        .merge(environments::router())
        .merge(sessions::router())
        .merge(fork::router())
        .merge(events::router())
        .merge(threads::router())
        .merge(vaults::router())
        .merge(files::router())
        .merge(resources::router())
        .merge(skills::router())
        .merge(memory_stores::router())
        .merge(work::router())
}
