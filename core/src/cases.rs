//! How many cases a property suite runs: one place for every crate's property tests.
//!
//! CI runs each suite's default. `PROPTEST_CASES=N` runs exactly N cases per property;
//! `MANAGED_AGENTS_LONG_TESTS=1` runs twenty times the default (the long variant).

/// The number of cases a property whose CI default is `default` runs in this environment.
pub fn property_cases(default: u32) -> u32 {
    if let Some(cases) = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|value| value.trim().parse().ok())
    {
        return cases;
    }
    let long = std::env::var("MANAGED_AGENTS_LONG_TESTS").is_ok_and(|value| value == "1");
    if long {
        default.saturating_mul(20)
    } else {
        default
    }
}
