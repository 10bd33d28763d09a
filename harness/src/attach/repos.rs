//! GitHub repository resources cloned into the workspace through the door. Not implemented
//! yet (issue 11, item 3).

use managed_agents_core::storage::Store;

use super::{Attached, Context};
use crate::sandbox::Sandbox;

pub(super) async fn prepare<S: Store, X: Sandbox>(
    _cx: &Context<'_, S, X>,
    _attached: &mut Attached,
) {
}
