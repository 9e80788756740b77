//! Removing a node from a scenario, for shrinking: the nodes above it are
//! renumbered, and every step or end check that names it goes (a group loses
//! it, and a step whose group becomes empty goes).

use tandem::scenario::{Call, NodeIdx, Scenario, Step};
use tandem::system::{Operation, System};

/// `scenario` without node `node` (< `scenario.nodes`, and not the last
/// one). When the seeds were only `node`, node 0 becomes the seed.
pub fn without_node<S: System>(scenario: &Scenario, node: NodeIdx) -> Scenario {
    assert!(node < scenario.nodes && scenario.nodes > 1, "node {node} cannot be removed");
    let map = Remap::<S>(node, std::marker::PhantomData);
    let mut seeds: Vec<NodeIdx> = scenario.seeds.iter().filter_map(|&s| map.node(s)).collect();
    if seeds.is_empty() {
        seeds.push(0);
    }
    Scenario {
        nodes: scenario.nodes - 1,
        seeds,
        steps: scenario.steps.iter().filter_map(|s| map.step(s)).collect(),
        finals: scenario.finals.iter().filter_map(|s| map.step(s)).collect(),
        expects: scenario.expects.iter().filter_map(|c| c.renumbered(|n| map.node(n))).collect(),
        ..scenario.clone()
    }
}

/// The renumbering that removes one node.
struct Remap<S>(NodeIdx, std::marker::PhantomData<S>);

impl<S: System> Remap<S> {
    fn node(&self, n: NodeIdx) -> Option<NodeIdx> {
        match n.cmp(&self.0) {
            std::cmp::Ordering::Less => Some(n),
            std::cmp::Ordering::Equal => None,
            std::cmp::Ordering::Greater => Some(n - 1),
        }
    }

    /// The operation with its nodes renumbered, or `None` when it names the removed node.
    fn op(&self, call: &Call) -> Option<Call> {
        let mut op: S::Op = call.typed().expect("scenarios are validated before shrinking");
        for n in op.nodes_mut() {
            *n = self.node(*n)?;
        }
        Some(Call::of(&op))
    }

    fn step(&self, step: &Step) -> Option<Step> {
        let action = step.action.renumbered(|n| self.node(n), |call| self.op(call))?;
        Some(Step { action, ..step.clone() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explore::testing::Echo;
    use tandem::scenario::{Action, LinkChange, Scope, Timing};

    fn partition(a: &[NodeIdx], b: &[NodeIdx], oneway: bool) -> Action {
        Action::Link {
            change: LinkChange::Partition { oneway },
            scope: Scope::Between { a: a.to_vec(), b: b.to_vec() },
        }
    }

    #[test]
    fn removing_a_node_renumbers_and_drops_what_names_it() {
        let step = |action| Step::new(Timing::Immediately, action);
        let ping = |from, to| Action::Op(Call::of(&crate::explore::testing::Ping::Ping { from, to }));
        let mut s = Scenario::new("t", 4);
        s.seeds = vec![1];
        s.steps = vec![
            step(partition(&[0, 1], &[3], false)),
            step(partition(&[1], &[2], true)),
            step(ping(3, 0)),
            step(ping(1, 0)),
            step(Action::Crash { node: 2 }),
        ];
        let t = without_node::<Echo>(&s, 1);
        assert_eq!(t.nodes, 3);
        assert_eq!(t.seeds, vec![0]);
        let actions: Vec<Action> = t.steps.into_iter().map(|s| s.action).collect();
        assert_eq!(actions, [partition(&[0], &[2], false), ping(2, 0), Action::Crash { node: 1 }]);
    }
}
