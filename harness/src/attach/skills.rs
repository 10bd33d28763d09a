//! The agent's skills materialized read-only in the sandbox and named in the system prompt.
//! Not implemented yet (issue 11, item 2).

use managed_agents_core::storage::Store;

use super::{Attached, Context};
use crate::sandbox::Sandbox;

pub(super) async fn prepare<S: Store, X: Sandbox>(
    _cx: &Context<'_, S, X>,
    _attached: &mut Attached,
) {
}
