//! Branching from interesting states (moonpool's multiverse, Antithesis):
//! a case that reached something new at time `t` is a branch point, and a
//! branch keeps its timeline up to `t` exactly and draws a new future after
//! it.
//!
//! The simulation is deterministic, so the same simulation seed and the same
//! steps up to `t` bring a branch to the same state at `t` as its parent:
//! re-running the prefix stands in for a snapshot. The future is some of the
//! parent's later steps, new episodes starting soon after `t`, and
//! operations aimed at the node that reached the new thing. A branch is an
//! ordinary scenario, so it replays alone, shrinks and confirms like any
//! case, and it is a pure function of its parent, the branch point and the
//! RNG it draws from.

use std::sync::Arc;
use std::time::Duration;

use proptest::test_runner::TestRunner;
use tandem::engine::coverage::Reached;
use tandem::scenario::{Scenario, Step, Timing};
use tandem::system::System;

use super::mutate::{draw, stage};
use super::strategy::{episode, swarm_for, workload_operation, Space};

/// How soon after the branch point the new episodes start, at most.
const NEAR: Duration = Duration::from_secs(3);

/// How soon after the branch point the aimed operations run, at most.
const AIMED: Duration = Duration::from_secs(1);

/// A branch of `parent` at `point`: its steps up to `point.at`, each later
/// step kept with probability 1/2, 1 to 3 new episodes starting within
/// `NEAR` after it, and 1 or 2 operations aimed at `point.node` within
/// `AIMED`. `None` when no time is left after the point before the settle
/// tail.
pub fn branch<S: System>(
    system: &Arc<S>,
    space: &Space,
    parent: &Scenario,
    point: Reached,
    runner: &mut TestRunner,
) -> Option<Scenario> {
    let window = space.window();
    let from = (point.at + Duration::from_millis(1)).max(window.start);
    if from >= window.end {
        return None;
    }
    let split = parent.steps.iter().position(|step| matches!(step.timing, Timing::At(at) if at > point.at));
    let (prefix, later) = parent.steps.split_at(split.unwrap_or(parent.steps.len()));
    let mut scenario = parent.clone();
    scenario.steps = prefix.to_vec();
    let mut future: Vec<Step> = later.iter().filter(|_| draw(runner, proptest::bool::ANY)).cloned().collect();
    let mut stage = stage(system, space, parent, runner);
    stage.window = from..(from + NEAR).min(window.end);
    let mix = draw(runner, swarm_for(&**system, space.backend));
    for _ in 0..draw(runner, 1..=3usize) {
        let drawn = draw(runner, episode(&stage, &mix));
        for (offset, action) in drawn.actions {
            future.push(Step::new(Timing::At((drawn.start + offset).min(window.end)), action));
        }
    }
    for _ in 0..draw(runner, 1..=2usize) {
        let op = draw(runner, workload_operation(&**system, space.workload.as_deref(), parent.nodes, point.node));
        let when = from + Duration::from_millis(draw(runner, 0..=AIMED.as_millis() as u64));
        future.push(Step::new(Timing::At(when.min(window.end)), op));
    }
    future.sort_by_key(|step| match step.timing {
        Timing::At(at) => at,
        _ => unreachable!("an explored case times every step with `at`"),
    });
    scenario.steps.extend(future);
    Some(scenario)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explore::case::Case;
    use crate::explore::testing::Echo;
    use crate::run::run_scenario;
    use tandem::history::History;

    /// The canonical events of `history` up to `at`.
    fn up_to(history: &History<Echo>, at: Duration) -> Vec<String> {
        history.events().iter().filter(|e| e.at() <= at).map(|e| e.canonical()).collect()
    }

    #[test]
    fn a_branch_replays_its_parent_up_to_the_point_and_then_differs() {
        let (space, echo) = (Space::default(), Arc::new(Echo));
        let mut runner = TestRunner::deterministic();
        let mut differed = 0;
        for index in 0..12 {
            let parent = Case::generate(&echo, &space, 9, index).scenario;
            let run = run_scenario(echo.clone(), &parent, parent.seed);
            let points: Vec<Reached> = run.outcome.signature.values().copied().collect();
            let point = points[points.len() / 2];
            let Some(branched) = branch(&echo, &space, &parent, point, &mut runner) else { continue };
            let steps_before = |s: &Scenario| {
                s.steps.iter().filter(|st| !matches!(st.timing, Timing::At(at) if at > point.at)).count()
            };
            assert_eq!(branched.steps[..steps_before(&parent)], parent.steps[..steps_before(&parent)]);
            assert_eq!(steps_before(&branched), steps_before(&parent), "new steps come after the point");
            let replay = run_scenario(echo.clone(), &branched, branched.seed);
            assert_eq!(up_to(&replay.history, point.at), up_to(&run.history, point.at), "case {index}");
            differed += usize::from(replay.digest() != run.digest());
        }
        assert!(differed >= 6, "most branches draw another future: {differed} of 12");
    }
}
