//! Shrinking a failing scenario to a small one that fails the same way.
//!
//! A reducer on the [`Scenario`] itself rather than proptest's value trees:
//! the timeline is laid out from episodes, and a tree over episodes would
//! neither drop single steps nor nodes. A candidate counts as still failing
//! only when it violates the same invariant (the same `code`: S1, ..., L2)
//! with the same simulation seed, and is still valid and
//! [fair]. Passes, repeated until none makes progress:
//! tighten `duration` to the timeline, drop nodes (renumbering the others;
//! early, while the scenario still has many ways to fail), drop runs of
//! steps (halves, quarters, ... single steps), simplify steps (default
//! message sizes, smaller groups, every link instead of groups), restore the
//! default network and knobs, and move the timeline to start at 1 s.

use std::sync::Arc;
use std::time::Duration;

use tandem::property::Violation;
use tandem::scenario::{Action, Call, LinkChange, Network, NodeIdx, Scenario, Scope, Timing};
use tandem::system::{Operation, System};

use super::remap::without_node;
use super::rules::fair;
use crate::run::run_scenario;

/// The default number of candidate runs a shrink may make.
pub const DEFAULT_BUDGET: usize = 1000;

/// A shrunk failure.
#[derive(Debug, Clone)]
pub struct Shrunk {
    /// The smallest failing scenario found.
    pub scenario: Scenario,
    /// Its failure: same code as the original.
    pub failure: Violation,
    /// How many candidates were run.
    pub runs: usize,
}

/// Shrinks `scenario`, which fails with `failure` when run with its own
/// `seed`, making at most `budget` candidate runs.
pub fn shrink<S: System>(system: Arc<S>, scenario: &Scenario, failure: &Violation, budget: usize) -> Shrunk {
    let mut shrinker = Shrinker {
        system,
        best: Shrunk { scenario: scenario.clone(), failure: failure.clone(), runs: 0 },
        budget,
        progress: true,
    };
    while shrinker.progress && shrinker.best.runs < budget {
        shrinker.progress = false;
        shrinker.tighten_duration();
        shrinker.drop_nodes();
        shrinker.drop_steps();
        shrinker.simplify_steps();
        shrinker.default_network();
        shrinker.default_knobs();
        shrinker.shift_earlier();
    }
    shrinker.best
}

struct Shrinker<S> {
    system: Arc<S>,
    best: Shrunk,
    budget: usize,
    progress: bool,
}

impl<S: System> Shrinker<S> {
    /// Runs `candidate`; keeps it when it fails the same way.
    fn attempt(&mut self, candidate: Scenario) -> bool {
        if self.best.runs >= self.budget
            || candidate == self.best.scenario
            || candidate.validate(&*self.system).is_err()
            || fair(&*self.system, &candidate).is_err()
        {
            return false;
        }
        self.best.runs += 1;
        match run_scenario(self.system.clone(), &candidate, candidate.seed).outcome.failure {
            Some(failure) if failure.code == self.best.failure.code => {
                self.best.scenario = candidate;
                self.best.failure = failure;
                self.progress = true;
                true
            }
            _ => false,
        }
    }

    /// Moves the timeline earlier, keeping the gaps between steps, so that
    /// its first timed step is at 1 s.
    fn shift_earlier(&mut self) {
        let s = &self.best.scenario;
        let Some(first) = s.steps.iter().find_map(|step| at(step.timing)) else { return };
        let Some(shift) = first.checked_sub(Duration::from_secs(1)).filter(|d| !d.is_zero()) else { return };
        let mut candidate = s.clone();
        for step in &mut candidate.steps {
            if let Timing::At(at) = &mut step.timing {
                *at = at.saturating_sub(shift);
            }
        }
        self.attempt(candidate);
    }

    /// A shorter run: the settle tail right after the last step's second.
    fn tighten_duration(&mut self) {
        let s = &self.best.scenario;
        let last = s.steps.iter().filter_map(|step| at(step.timing)).max().unwrap_or(Duration::ZERO);
        let duration = Duration::from_secs(last.as_secs() + 1) + s.settle;
        if duration < s.duration {
            let candidate = Scenario { duration, ..s.clone() };
            self.attempt(candidate);
        }
    }

    /// Drops runs of steps, halving their length down to single steps.
    fn drop_steps(&mut self) {
        let mut chunk = self.best.scenario.steps.len().div_ceil(2);
        while chunk >= 1 {
            let mut start = 0;
            while start < self.best.scenario.steps.len() {
                let mut candidate = self.best.scenario.clone();
                let end = (start + chunk).min(candidate.steps.len());
                candidate.steps.drain(start..end);
                if !self.attempt(candidate) {
                    start += chunk;
                }
            }
            chunk /= 2;
        }
    }

    /// Drops nodes, highest first.
    fn drop_nodes(&mut self) {
        let mut node = self.best.scenario.nodes;
        while node > 0 {
            node -= 1;
            if self.best.scenario.nodes > 1 && node < self.best.scenario.nodes {
                let candidate = without_node::<S>(&self.best.scenario, node);
                self.attempt(candidate);
            }
        }
    }

    /// Tries the default link latency, then no default loss.
    fn default_network(&mut self) {
        let default = Network::default();
        let best = &self.best.scenario;
        let latency = Network { latency: default.latency, ..best.network.clone() };
        self.attempt(Scenario { network: latency, ..best.clone() });
        let best = &self.best.scenario;
        let loss = Network { loss: default.loss, ..best.network.clone() };
        self.attempt(Scenario { network: loss, ..best.clone() });
    }

    /// Tries each knob at its default, one at a time.
    fn default_knobs(&mut self) {
        let names: Vec<String> = self.best.scenario.knobs.keys().cloned().collect();
        for name in names {
            let mut candidate = self.best.scenario.clone();
            candidate.knobs.remove(&name);
            self.attempt(candidate);
        }
    }

    /// Tries each step's simpler forms, keeping the first that still fails.
    fn simplify_steps(&mut self) {
        for i in 0..self.best.scenario.steps.len() {
            for action in simpler::<S>(&self.best.scenario.steps[i].action) {
                let mut candidate = self.best.scenario.clone();
                candidate.steps[i].action = action;
                if self.attempt(candidate) {
                    break;
                }
            }
        }
    }
}

/// The time of an `at` step.
fn at(timing: Timing) -> Option<Duration> {
    match timing {
        Timing::At(at) => Some(at),
        _ => None,
    }
}

/// Simpler forms of an action, most promising first.
fn simpler<S: System>(action: &Action) -> Vec<Action> {
    match action {
        Action::Op(call) => {
            let op: S::Op = call.typed().expect("scenarios are validated before shrinking");
            op.simpler().iter().map(|op| Action::Op(Call::of(op))).collect()
        }
        Action::Link { change, scope: Scope::Between { a, b } } => {
            let every = match change {
                LinkChange::Partition { .. } => None,
                LinkChange::Heal | LinkChange::Latency(_) | LinkChange::Loss(_) => Some(Scope::Every),
            };
            let smaller = smaller_groups(a, b).into_iter().map(|(a, b)| Scope::Between { a, b });
            every.into_iter().chain(smaller).map(|scope| Action::Link { change: *change, scope }).collect()
        }
        _ => Vec::new(),
    }
}

/// The groups with one node fewer in `a` or in `b`, each still non-empty.
fn smaller_groups(a: &[NodeIdx], b: &[NodeIdx]) -> Vec<(Vec<NodeIdx>, Vec<NodeIdx>)> {
    let without = |group: &[NodeIdx], i: usize| [&group[..i], &group[i + 1..]].concat();
    let fewer_a = (0..a.len()).filter(|_| a.len() > 1).map(|i| (without(a, i), b.to_vec()));
    let fewer_b = (0..b.len()).filter(|_| b.len() > 1).map(|i| (a.to_vec(), without(b, i)));
    fewer_a.chain(fewer_b).collect()
}
