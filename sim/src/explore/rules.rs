//! The rules that keep generated scenarios fair: a correct node passes every
//! scenario that follows them, so every failure exploration finds is a bug.
//! The generator follows them by construction, and the shrinker keeps only
//! candidates that still follow them.
//!
//! The system's properties are the only oracle, so the rules forbid what
//! could fail on a correct node for reasons of its own (these rules are
//! generic; a system adds its own with [`Workload::fair`](tandem::Workload::fair)):
//! - `expect` steps and `[[expect]]` end checks (exact counts depend on
//!   timing), and `await` on anything but the system's ready condition;
//! - an empty `seeds` list in a cluster of several nodes (nobody could join);
//! - a membership seed that is down at the end: a restarted node knows only
//!   the seeds, so with every seed down two restarted nodes could never find
//!   each other, and L1 would fail whatever the node does;
//! - rebinds of two different nodes: if both move while they cannot reach
//!   each other (a partition, heavy loss), each knows the other only at its
//!   old address and nothing can ever tell them (one mover always can: it
//!   still knows everyone else's address and redials until it gets through);
//! - a crash, after it rebound, of the node that is the only seed: restarted,
//!   it knows no one, and the others may know only its old address;
//! - a crash aimed at a role with no restart aimed at the role after it: it
//!   may have hit a seed, which would stay down.

use tandem::scenario::{Action, Aim, Call, NodeChange, NodeIdx, Scenario};
use tandem::system::System;

/// Why `scenario` is not fair to a correct node of `system`, or `Ok` when it is.
pub fn fair<S: System>(system: &S, scenario: &Scenario) -> Result<(), String> {
    generic(scenario, system.ready().map(|ready| Call::of(&ready)).as_ref())?;
    system.fair(scenario)
}

/// The generic rules; `ready` is the one condition `await` may use.
pub(super) fn generic(scenario: &Scenario, ready: Option<&Call>) -> Result<(), String> {
    if !scenario.expects.is_empty() {
        return Err("end checks (`[[expect]]`) are not allowed; the invariants are the oracle".into());
    }
    if scenario.nodes > 1 && scenario.seeds.is_empty() {
        return Err("`seeds` is empty: no node could join".into());
    }
    let mut up = vec![true; scenario.nodes as usize];
    // Crashes aimed at each role not yet followed by a restart aimed at it.
    let mut aimed_down: std::collections::BTreeMap<&str, u32> = Default::default();
    let mut mover = None;
    let sole_seed = |node: NodeIdx| scenario.nodes > 1 && scenario.seeds.iter().all(|&s| s == node);
    for (i, step) in scenario.steps.iter().enumerate() {
        match &step.action {
            Action::Expect { .. } => return Err(format!("step[{i}]: `expect` is not allowed")),
            Action::Await { condition, .. } if Some(&condition.check) != ready => {
                return Err(format!("step[{i}]: only `await` on the system's ready condition is allowed"))
            }
            Action::Crash { node } if mover == Some(*node) && sole_seed(*node) => {
                return Err(format!("step[{i}]: node {node}, the only seed, crashes after it rebound"))
            }
            Action::Crash { node } => up[*node as usize] = false,
            Action::Restart { node } => up[*node as usize] = true,
            Action::Aimed { role, aim: Aim::Node(NodeChange::Crash) } => *aimed_down.entry(role).or_default() += 1,
            Action::Aimed { role, aim: Aim::Node(NodeChange::Restart) } => {
                let down = aimed_down.entry(role).or_default();
                *down = down.saturating_sub(1);
            }
            Action::Rebind { node, .. } => match mover {
                Some(m) if m != *node => {
                    return Err(format!("step[{i}]: node {node} rebinds, but node {m} already did"))
                }
                _ => mover = Some(*node),
            },
            _ => {}
        }
    }
    if let Some((role, _)) = aimed_down.iter().find(|(_, &down)| down > 0) {
        return Err(format!("a crash aimed at role `{role}` has no restart aimed at it after it"));
    }
    match scenario.seeds.iter().find(|&&s| !up[s as usize]) {
        Some(seed) => Err(format!("seed node {seed} is down at the end")),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tandem::scenario::{Step, Timing};

    fn step(action: Action) -> Step {
        Step::new(Timing::Immediately, action)
    }

    #[test]
    fn a_seed_must_be_up_at_the_end() {
        let mut s = Scenario::new("t", 3);
        s.steps = vec![step(Action::Crash { node: 0 }), step(Action::Crash { node: 2 })];
        assert_eq!(generic(&s, None), Err("seed node 0 is down at the end".into()));
        s.steps.push(step(Action::Restart { node: 0 }));
        assert_eq!(generic(&s, None), Ok(()));
        s.seeds.clear();
        assert!(generic(&s, None).is_err());
    }

    #[test]
    fn one_node_may_rebind_and_a_sole_seed_must_not_crash_after() {
        let mut s = Scenario::new("t", 3);
        s.steps = vec![step(Action::Rebind { node: 1, port: None }), step(Action::Rebind { node: 1, port: None })];
        assert_eq!(generic(&s, None), Ok(()));
        s.steps.push(step(Action::Rebind { node: 2, port: None }));
        assert!(generic(&s, None).is_err());
        s.steps = vec![step(Action::Rebind { node: 0, port: None }), step(Action::Crash { node: 0 })];
        assert!(generic(&s, None).is_err());
        s.seeds = vec![0, 2];
        s.steps.push(step(Action::Restart { node: 0 }));
        assert_eq!(generic(&s, None), Ok(()));
    }
}
