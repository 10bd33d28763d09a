//! The environment's packages (`packages.{apt,cargo,gem,go,npm,pip}`) as a read-only layer
//! shared by the environment's sessions. Not implemented yet (issue 11, item 5): sessions run
//! without their environment's packages.

use managed_agents_core::storage::Store;

use super::{Attached, Context};
use crate::sandbox::Sandbox;

pub(super) async fn prepare<S: Store, X: Sandbox>(
    _cx: &Context<'_, S, X>,
    _attached: &mut Attached,
) -> Result<(), String> {
    Ok(())
}
