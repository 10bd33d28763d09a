//! Benchmarks of managed-agents live in `benches/`; see `README.md` for how to run them and the
//! measured numbers. This library is empty.
