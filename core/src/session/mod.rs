//! The session as a fold over its log.
//!
//! A session's stream (keyed by the session id) holds [`SessionRecord`]s: public events and
//! internal facts. [`fold`] turns them into a [`SessionState`]; [`decide`] validates a
//! [`Command`] against that state and returns the records to append (or a [`Rejection`]);
//! [`SessionState::render`] and [`SessionState::render_event`] project the state for the API.
//! [`turn`] is `decide`'s counterpart for the agent side (start a turn, record its steps,
//! finish, recover).
//! Everything here is pure: time and ids are passed in.

mod decide;
pub mod fence;
pub mod fork;
pub mod heads;
pub mod idempotency;
mod ids;
mod inputs;
pub mod log;
mod record;
mod rejection;
mod render;
mod state;
pub mod thread;
pub mod turn;
mod update;

pub use decide::{decide, timeout_message, Command};
pub use ids::{Fresh, IdSource, Sequential};
pub use inputs::Inputs;
pub use record::{Created, DecodeError, Fact, SessionRecord};
pub use rejection::Rejection;
pub use state::{fold, Input, InputKind, Outcome, SessionState, Status, ToolKind, IDLE_ON_THREADS};
pub use update::Update;
