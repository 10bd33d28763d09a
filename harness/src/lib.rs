//! Agent runtimes: the [`runner`] that drives sessions with unprocessed input, the engines that
//! talk to models ([`model`] clients and the agent loop), the [`tools`], the [`sandbox`] they run
//! in, live [`previews`], and the scripted [`mock_model`] server.

mod engine;
pub mod mock_model;
pub mod model;
pub mod options;
pub mod previews;
pub mod runner;
pub mod sandbox;
pub mod tools;
mod writer;
