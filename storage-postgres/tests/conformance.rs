//! The shared storage conformance suite against PostgreSQL (a fresh database per case).

mod support;

managed_agents_core::conformance_tests!(support::fresh_store());
