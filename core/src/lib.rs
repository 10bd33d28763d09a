//! The pure domain of managed-agents.
//!
//! Everything that decides what happens to an object lives here: typed ids, the object model,
//! the session event model, the fold that turns an event log into state, `decide` that validates
//! commands against that state, and the storage trait every backend implements. This crate does
//! no IO and depends on no async runtime, storage engine or HTTP crate.

pub mod agent;
pub mod cases;
pub mod claim;
pub mod environment;
pub mod event;
pub mod file;
pub mod ids;
pub mod memory;
pub mod object;
pub mod patch;
pub mod pricing;
pub mod resource;
pub mod session;
pub mod skill;
pub mod storage;
pub mod stream;
mod tagged;
pub mod time;
pub mod validate;
pub mod vault;
pub mod work;
