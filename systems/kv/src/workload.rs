//! The exploration workload: proptest strategies of kv operations.
//!
//! Operations use a few keys ([`KEYS`]), so writes collide and conflict, and
//! every put writes a fresh value (`v` and 8 random hex digits, never
//! shrunk), so the harness can tell which write a read saw.
//!
//! ```
//! use proptest::strategy::{Strategy, ValueTree};
//! use proptest::test_runner::TestRunner;
//! use tandem_kv::workload::operations;
//! use tandem::Operation;
//!
//! let mut runner = TestRunner::deterministic();
//! let op = operations(3, Some(2)).new_tree(&mut runner).unwrap().current();
//! assert!(op.node() < 3);
//! ```

use proptest::prelude::*;
use proptest::strategy::BoxedStrategy;
use tandem::NodeIdx;

use crate::KvOp;

/// How many keys the workload uses: `k0`, `k1`, ...
pub const KEYS: u32 = 4;

/// A fresh value: `v` and 8 hex digits drawn at random (not shrunk: values
/// identify writes).
pub fn value() -> impl Strategy<Value = String> + Clone {
    any::<u32>().no_shrink().prop_map(|r| format!("v{r:08x}"))
}

/// One of the workload's keys.
pub fn key() -> impl Strategy<Value = String> + Clone {
    (0..KEYS).prop_map(|i| format!("k{i}"))
}

/// The node an operation runs on: any of `nodes`, or, with `focus`, that
/// node three times in four.
pub fn node(nodes: u32, focus: Option<NodeIdx>) -> BoxedStrategy<NodeIdx> {
    let any = 0..nodes.max(1);
    match focus {
        Some(focus) if focus < nodes => prop_oneof![3 => Just(focus), 1 => any].boxed(),
        _ => any.boxed(),
    }
}

/// One operation among `nodes` nodes: a put (1/2), a get (3/10) or a
/// delete (1/5), preferring `focus` when given.
pub fn operations(nodes: u32, focus: Option<NodeIdx>) -> BoxedStrategy<KvOp> {
    let put = (node(nodes, focus), key(), value()).prop_map(|(node, key, value)| KvOp::Put { node, key, value });
    let get = (node(nodes, focus), key()).prop_map(|(node, key)| KvOp::Get { node, key });
    let delete = (node(nodes, focus), key()).prop_map(|(node, key)| KvOp::Delete { node, key });
    prop_oneof![5 => put, 3 => get, 2 => delete].boxed()
}

#[cfg(test)]
mod tests {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    use tandem::Operation;

    use super::*;

    #[test]
    fn ops_are_valid_focused_and_values_unique() {
        let mut runner = TestRunner::deterministic();
        let strategy = operations(4, Some(1));
        let mut values = std::collections::BTreeSet::new();
        let (mut focused, mut kinds) = (0, [0; 3]);
        for _ in 0..1000 {
            let op = strategy.new_tree(&mut runner).unwrap().current();
            assert!(op.validate(4).is_ok() && op.node() < 4);
            focused += usize::from(op.node() == 1);
            match op {
                KvOp::Put { value, .. } => {
                    kinds[0] += 1;
                    assert!(values.insert(value), "values are unique");
                }
                KvOp::Get { .. } => kinds[1] += 1,
                KvOp::Delete { .. } => kinds[2] += 1,
            }
        }
        assert!(focused > 700, "{focused} of 1000 on the focus");
        assert!(kinds.iter().all(|&k| k > 100), "{kinds:?}");
    }
}
