//! Folded sessions kept between turns: what a session's writer folded (state, records and
//! model conversation, [`Transcript`]) is put back when its task ends and taken by its next
//! task, which then reads only the records appended since ([`crate::writer::catch_up`]), so
//! a turn in a long session does not read, decode and fold the whole log again.
//!
//! Only a cache of the log: a session not kept (never run here, evicted, or after a server
//! restart) is folded from nothing, which gives the same; a deleted session is noticed by its
//! shorter stream. Bounded by the records held: the least recently kept sessions go first, and
//! a session larger than the whole budget is not kept.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use managed_agents_core::ids::SessionId;
use managed_agents_core::stream::Head;

use crate::writer::Transcript;

/// The kept heads, least recently kept first by their tick.
#[derive(Default)]
struct Heads {
    heads: HashMap<SessionId, (u64, Head<Transcript>)>,
    tick: u64,
    records: usize,
}

/// Sessions' folded heads between turns, at most `budget` records in all.
pub(crate) struct Kept {
    heads: Mutex<Heads>,
    budget: usize,
}

fn size(head: &Head<Transcript>) -> usize {
    head.state.logged.records.len()
}

impl Kept {
    pub(crate) fn new(budget: usize) -> Self {
        Self {
            heads: Mutex::new(Heads::default()),
            budget,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Heads> {
        self.heads
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The head kept for `id` (removed from the cache: one task per session uses it), or an
    /// empty one.
    pub(crate) fn take(&self, id: &SessionId) -> Head<Transcript> {
        let mut heads = self.lock();
        match heads.heads.remove(id) {
            Some((_, head)) => {
                heads.records -= size(&head);
                head
            }
            None => Head::default(),
        }
    }

    /// Keeps `head` for `id`'s next task, evicting the least recently kept heads over budget.
    pub(crate) fn put(&self, id: &SessionId, head: Head<Transcript>) {
        let records = size(&head);
        if head.version == 0 || records > self.budget {
            return;
        }
        let mut heads = self.lock();
        heads.tick += 1;
        let tick = heads.tick;
        if let Some((_, old)) = heads.heads.insert(id.clone(), (tick, head)) {
            heads.records -= size(&old);
        }
        heads.records += records;
        while heads.records > self.budget {
            let oldest = heads
                .heads
                .iter()
                .min_by_key(|(_, (tick, _))| *tick)
                .map(|(id, _)| id.clone());
            let Some(oldest) = oldest else { break };
            if let Some((_, old)) = heads.heads.remove(&oldest) {
                heads.records -= size(&old);
            }
        }
    }

    /// Drops what is kept for `id`.
    pub(crate) fn forget(&self, id: &SessionId) {
        let mut heads = self.lock();
        if let Some((_, old)) = heads.heads.remove(id) {
            heads.records -= size(&old);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use managed_agents_core::session::SessionRecord;
    use managed_agents_core::time::Timestamp;

    fn head(records: usize) -> Head<Transcript> {
        let mut head = Head::<Transcript>::default();
        for _ in 0..records {
            let record = SessionRecord::inputs_processed(Vec::new(), Timestamp::now());
            head.state.logged.records.push(record);
        }
        head.version = records as u64;
        head
    }

    #[test]
    fn the_least_recently_kept_go_first_and_the_budget_holds() {
        let kept = Kept::new(10);
        let (a, b, c) = (
            SessionId::generate(Timestamp::now()),
            SessionId::generate(Timestamp::now()),
            SessionId::generate(Timestamp::now()),
        );
        kept.put(&a, head(4));
        kept.put(&b, head(4));
        kept.put(&c, head(4)); // 12 > 10: a goes
        assert_eq!(kept.take(&a).version, 0);
        assert_eq!(kept.take(&b).version, 4);
        assert_eq!(kept.take(&b).version, 0, "taken once");
        kept.put(&a, head(11)); // larger than the budget: not kept
        assert_eq!(kept.take(&a).version, 0);
        kept.forget(&c);
        assert_eq!(kept.take(&c).version, 0);
        assert_eq!(kept.lock().records, 0);
    }
}
