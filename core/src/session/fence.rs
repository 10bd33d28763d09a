//! Fencing a session's runner: of several runner processes over one store, only the one holding
//! the session's lease may write its turn records, even if another believes it still does.
//!
//! A runner leases the session (`storage::Store::lease`, name [`lease_name`]) and gets a fencing
//! token, greater than any token granted before. Its first write under that token begins with
//! [`Fact::RunnerClaimed`]; every write is an expected-version append decided on the caught-up
//! log, so a write decided before another runner's claim loses the race and is decided again,
//! and a write decided after it sees a greater token than its own and is refused
//! ([`Fence::Lost`]). A runner whose lease lapsed (paused, partitioned) therefore cannot write
//! once a successor has written anything. The child streams of a session (threads) are written
//! under the session's lease and carry the same claims.

use super::{Fact, SessionRecord, SessionState};
use crate::ids::SessionId;
use crate::time::Timestamp;

/// The lease a runner holds while it drives `session` (and its child threads).
pub fn lease_name(session: &SessionId) -> String {
    format!("runner/{session}")
}

/// What a runner holding fencing token `token` may do on a stream in `state`.
#[derive(Debug, Clone, PartialEq)]
pub enum Fence {
    /// Its claim is the latest: write.
    Held,
    /// Nobody with a token as great has claimed it: write, beginning with this claim.
    Claim(Box<SessionRecord>),
    /// A runner with a greater token claimed it since: write nothing and stop.
    Lost {
        /// The successor's token.
        by: u64,
    },
}

/// The fence of a runner `holder` with `token` on a stream whose fold is `state`.
pub fn check(state: &SessionState, holder: &str, token: u64, now: Timestamp) -> Fence {
    match state.runner_token.cmp(&token) {
        std::cmp::Ordering::Equal => Fence::Held,
        std::cmp::Ordering::Less => Fence::Claim(Box::new(
            Fact::RunnerClaimed {
                holder: holder.to_owned(),
                token,
                at: now,
            }
            .into(),
        )),
        std::cmp::Ordering::Greater => Fence::Lost {
            by: state.runner_token,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(state: &mut SessionState, holder: &str, token: u64) {
        match check(state, holder, token, Timestamp::now()) {
            Fence::Claim(record) => state.apply(&record),
            other => panic!("expected a claim, got {other:?}"),
        }
    }

    #[test]
    fn a_runner_claims_once_then_writes_until_a_greater_token_claims() {
        let now = Timestamp::now();
        let mut state = SessionState::default();
        claim(&mut state, "a", 5);
        assert_eq!(check(&state, "a", 5, now), Fence::Held);
        // A successor's token is greater: it claims, and the first runner is fenced.
        claim(&mut state, "b", 9);
        assert_eq!(check(&state, "a", 5, now), Fence::Lost { by: 9 });
        assert_eq!(check(&state, "b", 9, now), Fence::Held);
        // A later token of the first runner (it took the lease again) claims anew.
        claim(&mut state, "a", 12);
        assert_eq!(check(&state, "b", 9, now), Fence::Lost { by: 12 });
    }

    #[test]
    fn the_claim_round_trips_through_the_log_encoding() {
        let record: SessionRecord = Fact::RunnerClaimed {
            holder: "host/1/ab".into(),
            token: 7,
            at: Timestamp::now(),
        }
        .into();
        let decoded = SessionRecord::decode(&record.encode()).expect("decodes");
        let mut state = SessionState::default();
        state.apply(&decoded);
        assert_eq!(state.runner_token, 7);
    }
}
