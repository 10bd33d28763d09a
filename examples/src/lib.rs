//! Runnable examples live beside this crate: `cargo run -p managed-agents-examples --example embedded`.
