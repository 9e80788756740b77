//! Which messages a node incarnation has already delivered.

use std::collections::{BTreeMap, BTreeSet};

use super::{MessageId, NodeId};

/// Delivered message ids, compacted per origin incarnation into a watermark
/// (every seq below it was seen) plus the seen seqs above it. Sequence numbers
/// of one origin are dense, so the set above the watermark stays small.
#[derive(Debug, Default)]
pub struct SeenSet {
    origins: BTreeMap<(NodeId, u64), Seen>,
}

#[derive(Debug, Default)]
struct Seen {
    below: u64,
    above: BTreeSet<u64>,
}

impl SeenSet {
    /// Records `id`; returns whether it is new.
    pub fn insert(&mut self, id: MessageId) -> bool {
        let seen = self.origins.entry((id.origin, id.incarnation)).or_default();
        if id.seq < seen.below || !seen.above.insert(id.seq) {
            return false;
        }
        while seen.above.remove(&seen.below) {
            seen.below += 1;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_id_is_new_once_in_any_order() {
        let mut seen = SeenSet::default();
        let id = |seq| MessageId { origin: NodeId(1), incarnation: 0, seq };
        for seq in [2, 0, 1, 5] {
            assert!(seen.insert(id(seq)));
        }
        for seq in [0, 1, 2, 5] {
            assert!(!seen.insert(id(seq)));
        }
        assert!(seen.insert(id(3)));
        assert!(seen.insert(MessageId { origin: NodeId(1), incarnation: 1, seq: 0 }));
    }
}
