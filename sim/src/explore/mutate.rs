//! Mutations of a corpus case: small edits of its timeline that keep most of
//! what made it reach somewhere new and try something next to it.
//!
//! Every mutation draws from the case's own RNG, so a mutant is a pure
//! function of its parent and the RNG's seed. The timed (`at`) steps are
//! edited; the ready `await` that opens a generated timeline stays first.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use proptest::sample::select;
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;
use tandem::scenario::{Action, NodeIdx, Scenario, Scope, Step, Timing};
use tandem::system::System;

use super::strategy::{episode, groups, mover, sim_seed, swarm_for, workload_operation, Space, Stage};

/// One edit of a timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mutation {
    /// Add an episode (traffic or a fault with its operations).
    Insert,
    /// Remove a step.
    Drop,
    /// Move a step (a fault's, half the time) up to 2 s earlier or later.
    Shift,
    /// Exchange the actions of two steps, keeping their times.
    Swap,
    /// Give a fault new groups (its heal or reset too).
    Regroup,
    /// Add an operation right before a fault, or while it holds.
    Near,
    /// Run the same timeline with another simulation seed.
    Reseed,
}

impl Mutation {
    /// Every mutation, in a fixed order.
    pub const ALL: [Mutation; 7] = [
        Mutation::Insert,
        Mutation::Drop,
        Mutation::Shift,
        Mutation::Swap,
        Mutation::Regroup,
        Mutation::Near,
        Mutation::Reseed,
    ];

    /// A short name, for scenario descriptions and `--json`.
    pub fn name(self) -> &'static str {
        match self {
            Mutation::Insert => "insert",
            Mutation::Drop => "drop",
            Mutation::Shift => "shift",
            Mutation::Swap => "swap",
            Mutation::Regroup => "regroup",
            Mutation::Near => "near",
            Mutation::Reseed => "reseed",
        }
    }
}

impl fmt::Display for Mutation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Draws one value of `strategy`.
pub fn draw<T: Strategy>(runner: &mut TestRunner, strategy: T) -> T::Value {
    strategy.new_tree(runner).expect("the strategies never reject").current()
}

/// Applies `mutation` to `scenario`; `false` when it does not apply (no
/// step to drop, no fault to regroup, ...).
pub fn apply<S: System>(
    system: &Arc<S>,
    space: &Space,
    scenario: &mut Scenario,
    mutation: Mutation,
    runner: &mut TestRunner,
) -> bool {
    let timed: Vec<usize> = (0..scenario.steps.len()).filter(|&i| at(&scenario.steps[i]).is_some()).collect();
    let window = space.window();
    let pick =
        |runner: &mut TestRunner, among: &[usize]| (!among.is_empty()).then(|| draw(runner, select(among.to_vec())));
    match mutation {
        Mutation::Insert => {
            let stage = stage(system, space, scenario, runner);
            let mix = draw(runner, swarm_for(&**system, space.backend));
            let drawn = draw(runner, episode(&stage, &mix));
            for (offset, action) in drawn.actions {
                add(scenario, (drawn.start + offset).min(window.end), action);
            }
        }
        Mutation::Drop => {
            let Some(i) = pick(runner, &timed) else { return false };
            scenario.steps.remove(i);
        }
        Mutation::Shift => {
            let faults: Vec<usize> = timed.iter().copied().filter(|&i| scenario.steps[i].action.is_fault()).collect();
            let among = if !faults.is_empty() && draw(runner, proptest::bool::ANY) { faults } else { timed };
            let Some(i) = pick(runner, &among) else { return false };
            let by = Duration::from_millis(draw(runner, 1..=2000u64));
            let old = at(&scenario.steps[i]).expect("a timed step");
            let new = if draw(runner, proptest::bool::ANY) { old + by } else { old.saturating_sub(by) };
            scenario.steps[i].timing = Timing::At(new.clamp(window.start, window.end));
        }
        Mutation::Swap => {
            if timed.len() < 2 {
                return false;
            }
            let (i, j) = (pick(runner, &timed).expect("steps"), pick(runner, &timed).expect("steps"));
            let action = scenario.steps[i].action.clone();
            scenario.steps[i].action = std::mem::replace(&mut scenario.steps[j].action, action);
        }
        Mutation::Regroup => {
            let grouped: Vec<usize> =
                timed.iter().copied().filter(|&i| between(&scenario.steps[i].action).is_some()).collect();
            let Some(i) = pick(runner, &grouped).filter(|_| scenario.nodes >= 2) else { return false };
            let (a, b) = between(&scenario.steps[i].action).expect("a link action between groups");
            let old = Scope::Between { a: a.to_vec(), b: b.to_vec() };
            let (a, b) = draw(runner, groups(scenario.nodes));
            let new = Scope::Between { a, b };
            for step in &mut scenario.steps {
                if let Action::Link { scope, .. } = &mut step.action {
                    if *scope == old {
                        *scope = new.clone();
                    }
                }
            }
        }
        Mutation::Near => {
            let faults: Vec<usize> = timed.iter().copied().filter(|&i| scenario.steps[i].action.is_fault()).collect();
            let Some(i) = pick(runner, &faults) else { return false };
            let fault_at = at(&scenario.steps[i]).expect("a timed step");
            let focus = scenario.steps[i].action.target();
            let op = draw(runner, workload_operation(&**system, space.workload.as_deref(), scenario.nodes, focus));
            let gap = Duration::from_millis(draw(runner, 0..=1000u64));
            let when = if draw(runner, proptest::bool::weighted(0.5)) {
                fault_at.saturating_sub(gap.min(Duration::from_millis(15)))
            } else {
                fault_at + gap
            };
            add(scenario, when.clamp(window.start, window.end), op);
        }
        Mutation::Reseed => scenario.seed = draw(runner, sim_seed()),
    }
    scenario.steps.sort_by_key(|step| at(step).unwrap_or(Duration::ZERO));
    true
}

/// The stage a timeline of `scenario` is generated against.
pub(super) fn stage<S: System>(
    system: &Arc<S>,
    space: &Space,
    scenario: &Scenario,
    runner: &mut TestRunner,
) -> Stage<S> {
    let rebinding = scenario.steps.iter().find_map(|step| match step.action {
        Action::Rebind { node, .. } => Some(node),
        _ => None,
    });
    let mover = rebinding.unwrap_or_else(|| draw(runner, mover(scenario.nodes, &scenario.seeds)));
    Stage {
        system: system.clone(),
        nodes: scenario.nodes,
        seeds: scenario.seeds.clone(),
        network: scenario.network.clone(),
        mover,
        window: space.window(),
        workload: space.workload.clone(),
    }
}

/// Adds a step doing `action` at `at`.
fn add(scenario: &mut Scenario, at: Duration, action: Action) {
    scenario.steps.push(Step::new(Timing::At(at), action));
}

/// The time of an `at` step.
fn at(step: &Step) -> Option<Duration> {
    match step.timing {
        Timing::At(at) => Some(at),
        _ => None,
    }
}

/// The groups of a link action between groups.
fn between(action: &Action) -> Option<(&[NodeIdx], &[NodeIdx])> {
    match action {
        Action::Link { scope, .. } => scope.groups(),
        _ => None,
    }
}
