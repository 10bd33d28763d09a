//! File resources mounted read-only in the sandbox, and `/mnt/session/outputs` collected as
//! session-scoped files after each turn. Not implemented yet (issue 11, item 4).

use managed_agents_core::storage::Store;

use super::{Attached, Context};
use crate::sandbox::Sandbox;

pub(super) async fn prepare<S: Store, X: Sandbox>(
    _cx: &Context<'_, S, X>,
    _attached: &mut Attached,
) {
}

pub(super) async fn finish<S: Store, X: Sandbox>(_cx: &Context<'_, S, X>, _attached: &Attached) {}
