//! Agent runtimes: the runner that drives sessions with unprocessed input, the engines that talk
//! to models, the tools, and the sandboxes they run in. So far: the scripted [`mock_model`]
//! server and the [`sandbox`] that tools run in.

pub mod mock_model;
pub mod sandbox;
