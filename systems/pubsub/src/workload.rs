//! The exploration workload: random sends, shaped like the old explorer's.

use proptest::prelude::*;
use proptest::strategy::BoxedStrategy;
use tandem::NodeIdx;

use crate::op::Op;

/// Payload sizes: mostly the default, else up to 64 KiB.
fn size() -> impl Strategy<Value = Option<usize>> + Clone {
    prop_oneof![
        6 => Just(None),
        3 => (0..=4096usize).prop_map(Some),
        1 => (4097..=65536usize).prop_map(Some),
    ]
}

/// Any send among `nodes` nodes: a broadcast (2/3) or a direct message
/// (1/3). Tags are left to their step default.
pub fn send(nodes: u32) -> BoxedStrategy<Op> {
    let nodes = nodes.max(1);
    let broadcast = (0..nodes, size()).prop_map(|(from, size)| Op::Broadcast { from, tag: None, size });
    if nodes < 2 {
        return broadcast.boxed();
    }
    let direct = (0..nodes, 1..nodes, size()).prop_map(move |(from, step, size)| Op::Direct {
        from,
        to: (from + step) % nodes,
        tag: None,
        size,
    });
    prop_oneof![2 => broadcast, 1 => direct].boxed()
}

/// A send that `node` should receive: a broadcast from another node or a
/// direct message to it (with one node: its own broadcast).
pub fn send_to(nodes: u32, node: NodeIdx) -> BoxedStrategy<Op> {
    if nodes < 2 {
        return send(nodes);
    }
    (1..nodes, any::<bool>(), size())
        .prop_map(move |(step, direct, size)| {
            let from = (node + step) % nodes;
            match direct {
                true => Op::Direct { from, to: node, tag: None, size },
                false => Op::Broadcast { from, tag: None, size },
            }
        })
        .boxed()
}

#[cfg(test)]
mod tests {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    use tandem::Operation;

    use super::*;

    #[test]
    fn every_drawn_send_is_valid_and_focused_sends_reach_the_node() {
        let mut runner = TestRunner::deterministic();
        for nodes in 1..=5 {
            for _ in 0..200 {
                let op = send(nodes).new_tree(&mut runner).unwrap().current();
                assert!(
                    op.validate(nodes).is_ok() && op.from() < nodes && op.to().is_none_or(|to| to < nodes),
                    "{op:?}"
                );
                let focus = nodes - 1;
                let op = send_to(nodes, focus).new_tree(&mut runner).unwrap().current();
                assert!(op.validate(nodes).is_ok(), "{op:?}");
                if nodes > 1 {
                    assert_ne!(op.from(), focus, "{op:?}");
                    assert!(op.to().is_none_or(|to| to == focus), "{op:?}");
                }
            }
        }
    }
}
