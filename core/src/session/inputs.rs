//! [`Inputs`]: the client events a session's runner has not consumed yet, as a persistent list.
//!
//! With the runner off, or behind a long turn, thousands of inputs can be pending. Every write
//! clones the folded state (`decide` simulates its batch on a copy) and every read of a cached
//! head clones it too, so a `Vec` of inputs made each append cost O(pending inputs): the
//! 64-session `POST /events` load decayed within seconds as the queues grew (issue 12). Here a
//! clone shares the list, an append adds one node, and "does any input start a turn" is a
//! counter: all O(1) however many are pending. Only consuming inputs walks the list, once per
//! `inputs_processed` fact, as deep as the oldest input it consumes.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use super::state::Input;
use crate::ids::EventId;

/// Pending client inputs, oldest first. Cheap to clone: clones share their nodes.
#[derive(Clone, Default)]
pub struct Inputs {
    newest: Option<Arc<Node>>,
}

struct Node {
    input: Input,
    older: Option<Arc<Node>>,
    /// Inputs in this node and every older one.
    len: usize,
    /// Of those, how many give the agent a turn's work ([`super::InputKind::starts_turn`]).
    turn_work: usize,
}

impl Inputs {
    /// How many inputs are pending.
    pub fn len(&self) -> usize {
        self.newest.as_ref().map_or(0, |node| node.len)
    }

    /// Whether none is pending.
    pub fn is_empty(&self) -> bool {
        self.newest.is_none()
    }

    /// Whether any pending input gives the agent a turn's work.
    pub fn has_turn_work(&self) -> bool {
        self.newest.as_ref().is_some_and(|node| node.turn_work > 0)
    }

    /// The pending inputs, oldest first (collects references: O(pending)).
    pub fn iter(&self) -> std::vec::IntoIter<&Input> {
        let mut all = Vec::with_capacity(self.len());
        let mut next = self.newest.as_deref();
        while let Some(node) = next {
            all.push(&node.input);
            next = node.older.as_deref();
        }
        all.reverse();
        all.into_iter()
    }

    /// Appends `input` as the newest.
    pub(crate) fn push(&mut self, input: Input) {
        let (len, turn_work) = self
            .newest
            .as_ref()
            .map_or((0, 0), |node| (node.len, node.turn_work));
        let work = usize::from(input.kind.starts_turn());
        self.newest = Some(Arc::new(Node {
            input,
            older: self.newest.take(),
            len: len + 1,
            turn_work: turn_work + work,
        }));
    }

    /// Removes the inputs with these ids (unknown ids are ignored) and returns them. Walks from
    /// the newest input down to the oldest one removed; the older rest stays shared.
    pub(crate) fn remove(&mut self, ids: &[EventId]) -> Vec<Input> {
        let removing: HashSet<&EventId> = ids.iter().collect();
        let mut wanted = removing.clone();
        // The nodes newer than (and including) the oldest removed one, newest first.
        let mut walked: Vec<&Arc<Node>> = Vec::new();
        let mut deepest = None;
        let mut next = self.newest.as_ref();
        while let Some(node) = next {
            if wanted.is_empty() {
                break;
            }
            walked.push(node);
            if wanted.remove(&node.input.id) {
                deepest = Some(walked.len());
            }
            next = node.older.as_ref();
        }
        let Some(deepest) = deepest else {
            return Vec::new();
        };
        walked.truncate(deepest);
        let mut rebuilt = Inputs {
            newest: walked.last().and_then(|node| node.older.clone()),
        };
        let mut removed = Vec::new();
        for node in walked.iter().rev() {
            if removing.contains(&node.input.id) {
                removed.push(node.input.clone());
            } else {
                rebuilt.push(node.input.clone());
            }
        }
        std::mem::swap(self, &mut rebuilt);
        removed
    }
}

impl Drop for Inputs {
    /// Unlinks nodes one by one: a long list must not drop recursively.
    fn drop(&mut self) {
        let mut next = self.newest.take();
        while let Some(node) = next {
            match Arc::try_unwrap(node) {
                Ok(mut node) => next = node.older.take(),
                // Still shared: another list drops the rest.
                Err(_) => break,
            }
        }
    }
}

impl<'a> IntoIterator for &'a Inputs {
    type Item = &'a Input;
    type IntoIter = std::vec::IntoIter<&'a Input>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl PartialEq for Inputs {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for Inputs {}

impl fmt::Debug for Inputs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::InputKind;
    use crate::time::Timestamp;

    fn input(kind: InputKind) -> Input {
        Input {
            id: EventId::generate(Timestamp::from_millis(1)),
            kind,
            queued: true,
        }
    }

    fn ids(inputs: &Inputs) -> Vec<EventId> {
        inputs.iter().map(|i| i.id.clone()).collect()
    }

    #[test]
    fn clones_share_and_diverge() {
        let mut a = Inputs::default();
        let first = input(InputKind::SystemMessage);
        a.push(first.clone());
        assert!(!a.has_turn_work(), "a system message gives no turn");
        let mut b = a.clone();
        let second = input(InputKind::Message);
        b.push(second.clone());
        assert_eq!(ids(&a), vec![first.id.clone()]);
        assert_eq!(ids(&b), vec![first.id.clone(), second.id.clone()]);
        assert!(b.has_turn_work() && !a.has_turn_work());
        assert_eq!((a.len(), b.len()), (1, 2));
    }

    #[test]
    fn remove_takes_any_inputs_and_keeps_the_order_of_the_rest() {
        let mut inputs = Inputs::default();
        let all: Vec<Input> = [
            InputKind::Message,
            InputKind::Interrupt,
            InputKind::Message,
            InputKind::SystemMessage,
            InputKind::ToolConfirmation,
        ]
        .into_iter()
        .map(input)
        .collect();
        for i in &all {
            inputs.push(i.clone());
        }
        let before = inputs.clone();
        let unknown = EventId::generate(Timestamp::from_millis(2));
        let removed = inputs.remove(&[all[2].id.clone(), all[0].id.clone(), unknown]);
        let removed: Vec<_> = removed.into_iter().map(|i| i.id).collect();
        assert_eq!(removed, vec![all[0].id.clone(), all[2].id.clone()]);
        assert_eq!(
            ids(&inputs),
            vec![all[1].id.clone(), all[3].id.clone(), all[4].id.clone()]
        );
        assert_eq!(inputs.len(), 3);
        assert!(inputs.has_turn_work(), "the confirmation is turn work");
        assert_eq!(before.len(), 5, "a clone taken before is untouched");
        inputs.remove(&[all[4].id.clone()]);
        assert!(
            !inputs.has_turn_work(),
            "an interrupt and a system message are not"
        );
        assert!(inputs.remove(&[all[4].id.clone()]).is_empty());
    }

    #[test]
    fn a_long_list_drops_without_recursion() {
        let mut inputs = Inputs::default();
        for _ in 0..200_000 {
            inputs.push(input(InputKind::Message));
        }
        let shared = inputs.clone();
        drop(inputs);
        assert_eq!(shared.len(), 200_000);
        drop(shared);
    }
}
