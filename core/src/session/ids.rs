//! Where `decide` gets fresh ids: real time-ordered ids in production, a counter in tests.

use crate::ids::{EventId, OutcomeId};
use crate::time::Timestamp;

/// A source of new ids for the events `decide` creates.
pub trait IdSource {
    /// A new event id.
    fn event(&mut self) -> EventId;
    /// A new outcome id (for `user.define_outcome`).
    fn outcome(&mut self) -> OutcomeId;
}

/// Fresh time-ordered ids created at a given time.
#[derive(Debug, Clone, Copy)]
pub struct Fresh(pub Timestamp);

impl IdSource for Fresh {
    fn event(&mut self) -> EventId {
        EventId::generate(self.0)
    }

    fn outcome(&mut self) -> OutcomeId {
        OutcomeId::generate(self.0)
    }
}

/// Deterministic ids `sevt_new1`, `sevt_new2`, … and `outc_new1`, … for tests.
#[derive(Debug, Clone, Default)]
pub struct Sequential {
    next: u64,
}

impl Sequential {
    fn bump(&mut self) -> u64 {
        self.next += 1;
        self.next
    }
}

impl IdSource for Sequential {
    fn event(&mut self) -> EventId {
        let n = self.bump();
        EventId::parse(&format!("sevt_new{n}"))
            .unwrap_or_else(|_| EventId::generate(Timestamp::from_millis(0)))
    }

    fn outcome(&mut self) -> OutcomeId {
        let n = self.bump();
        OutcomeId::parse(&format!("outc_new{n}"))
            .unwrap_or_else(|_| OutcomeId::generate(Timestamp::from_millis(0)))
    }
}
