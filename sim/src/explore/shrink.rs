//! Shrinking a failing scenario to a small one that fails the same way.
//!
//! A reducer on the [`Scenario`] itself rather than proptest's value trees:
//! the timeline is laid out from episodes, and a tree over episodes would
//! neither drop single steps nor nodes. A candidate counts as still failing
//! only when it violates the same invariant (the same `code`: S1, ..., L2)
//! with the same simulation seed, is still valid and [fair], and stays
//! [robust](super::robust): it fails the same way in as many perturbed runs
//! as the rule asks (or, when the original failure is itself below the
//! rule, in as many as the original did), so shrinking never narrows a
//! failure down to a timing window a few milliseconds wide. Passes, repeated
//! until none makes progress:
//! tighten `duration` to the timeline, drop nodes (renumbering the others;
//! early, while the scenario still has many ways to fail), drop runs of
//! steps (halves, quarters, ... single steps), drop final steps, simplify steps (default
//! message sizes, smaller groups, every link instead of groups), restore the
//! default network and knobs, and move the timeline to start at 1 s.

use std::sync::Arc;
use std::time::Duration;

use tandem::property::Violation;
use tandem::scenario::{Action, Call, LinkChange, Network, NodeIdx, Scenario, Scope, Timing};
use tandem::system::{Operation, System};

use super::remap::without_node;
use super::robust::{tally, Robustness, Rule};
use super::rules::fair;
use crate::options::Backend;

/// The default number of runs a shrink may make.
pub const DEFAULT_BUDGET: usize = 1000;

/// How a shrink is bounded, and what robustness it keeps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Options {
    /// The most runs it makes (candidates and perturbed runs), give or take
    /// one robustness measurement.
    pub budget: usize,
    /// The robustness a candidate must keep; `runs: 0` keeps none.
    pub robustness: Rule,
    /// The simulator the candidates run on.
    pub backend: Backend,
}

impl Default for Options {
    fn default() -> Options {
        Options { budget: DEFAULT_BUDGET, robustness: Rule::default(), backend: Backend::Events }
    }
}

/// A shrunk failure.
#[derive(Debug, Clone)]
pub struct Shrunk {
    /// The smallest failing scenario found.
    pub scenario: Scenario,
    /// Its failure: same code as the original.
    pub failure: Violation,
    /// How many runs the shrink made: candidates, and perturbed runs that
    /// measured robustness.
    pub runs: usize,
    /// The shrunk scenario's robustness (of the rule's runs).
    pub robustness: Robustness,
    /// The original scenario's robustness: below the rule, the failure was
    /// timing-fragile as found.
    pub found: Robustness,
}

/// Shrinks `scenario`, which fails with `failure` when run with its own
/// `seed`, within `options`.
pub fn shrink<S: System>(system: Arc<S>, scenario: &Scenario, failure: &Violation, options: &Options) -> Shrunk {
    let run = |candidate: &Scenario, seed: u64| options.backend.run(system.clone(), candidate, seed).outcome.failure;
    shrink_with(&*system, scenario, failure, options, run)
}

/// [`shrink`], with `run` giving a candidate's failure for a simulation seed.
fn shrink_with<S: System>(
    system: &S,
    scenario: &Scenario,
    failure: &Violation,
    options: &Options,
    run: impl FnMut(&Scenario, u64) -> Option<Violation>,
) -> Shrunk {
    let rule = options.robustness;
    let mut shrinker = Shrinker {
        system,
        run,
        best: Shrunk {
            scenario: scenario.clone(),
            failure: failure.clone(),
            runs: 0,
            robustness: Robustness { held: 0, runs: 0 },
            found: Robustness { held: 0, runs: 0 },
        },
        budget: options.budget,
        rule,
        needed: 0,
        progress: true,
    };
    let found = shrinker.measure();
    shrinker.best.found = found;
    shrinker.needed = rule.needed().min(found.held);
    while shrinker.progress && shrinker.best.runs < options.budget {
        shrinker.progress = false;
        shrinker.tighten_duration();
        shrinker.drop_nodes();
        shrinker.drop_steps();
        shrinker.drop_finals();
        shrinker.simplify_steps();
        shrinker.default_network();
        shrinker.default_knobs();
        shrinker.shift_earlier();
    }
    shrinker.best.robustness = if shrinker.best.scenario == *scenario { found } else { shrinker.measure() };
    shrinker.best
}

struct Shrinker<'a, S, R> {
    system: &'a S,
    /// A candidate's failure for a simulation seed.
    run: R,
    best: Shrunk,
    budget: usize,
    rule: Rule,
    /// The perturbed runs a candidate must fail in, of the rule's.
    needed: u32,
    progress: bool,
}

impl<S: System, R: FnMut(&Scenario, u64) -> Option<Violation>> Shrinker<'_, S, R> {
    /// Runs `candidate`; keeps it when it fails the same way, robustly enough.
    fn attempt(&mut self, candidate: Scenario) -> bool {
        if self.best.runs >= self.budget
            || candidate == self.best.scenario
            || candidate.validate(self.system).is_err()
            || fair(self.system, &candidate).is_err()
        {
            return false;
        }
        self.best.runs += 1;
        let code = &self.best.failure.code;
        match (self.run)(&candidate, candidate.seed) {
            Some(failure) if failure.code == *code => {
                let needed = self.needed;
                if self.tally(&candidate, Some(needed)).held < needed {
                    return false;
                }
                self.best.scenario = candidate;
                self.best.failure = failure;
                self.progress = true;
                true
            }
            _ => false,
        }
    }

    /// The robustness of the best scenario's failure, in full.
    fn measure(&mut self) -> Robustness {
        let best = self.best.scenario.clone();
        self.tally(&best, None)
    }

    /// How often `scenario` fails as the best does in the rule's perturbed
    /// runs, stopping once whether `needed` do is decided; counts the runs.
    fn tally(&mut self, scenario: &Scenario, needed: Option<u32>) -> Robustness {
        let (code, run) = (self.best.failure.code.clone(), &mut self.run);
        let counted = tally(scenario.seed, Some(&code), self.rule.runs, needed, |seed| run(scenario, seed));
        self.best.runs += counted.runs as usize;
        counted
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

    /// Drops final steps, one at a time, the last first (none: no run).
    fn drop_finals(&mut self) {
        let mut i = self.best.scenario.finals.len();
        while i > 0 {
            i -= 1;
            if i < self.best.scenario.finals.len() {
                let mut candidate = self.best.scenario.clone();
                candidate.finals.remove(i);
                self.attempt(candidate);
            }
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

/// The shortest pause or clock change the shrinker still halves.
const MIN_HALVED: Duration = Duration::from_millis(2);

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
        // Half as long a pause, half as far a clock change.
        _ => action
            .node_change()
            .and_then(|(node, change)| Some(change.halved(MIN_HALVED)?.on(node)))
            .into_iter()
            .collect(),
    }
}

/// The groups with one node fewer in `a` or in `b`, each still non-empty.
fn smaller_groups(a: &[NodeIdx], b: &[NodeIdx]) -> Vec<(Vec<NodeIdx>, Vec<NodeIdx>)> {
    let without = |group: &[NodeIdx], i: usize| [&group[..i], &group[i + 1..]].concat();
    let fewer_a = (0..a.len()).filter(|_| a.len() > 1).map(|i| (without(a, i), b.to_vec()));
    let fewer_b = (0..b.len()).filter(|_| b.len() > 1).map(|i| (a.to_vec(), without(b, i)));
    fewer_a.chain(fewer_b).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explore::case::Case;
    use crate::explore::robust::perturbed_seed;
    use crate::explore::strategy::Space;
    use crate::explore::testing::Echo;

    /// A generated echo scenario with at least 6 steps.
    fn long_scenario() -> Scenario {
        let echo = Arc::new(Echo);
        (0..).map(|i| Case::generate(&echo, &Space::default(), 9, i).scenario).find(|s| s.steps.len() >= 6).unwrap()
    }

    /// A planted failure: `X` with any step under the scenario's own seed,
    /// but under a perturbed seed only with `robust_from` steps or more.
    fn planted(seed: u64, robust_from: usize) -> impl FnMut(&Scenario, u64) -> Option<Violation> {
        move |s: &Scenario, run_seed: u64| {
            let fails = !s.steps.is_empty() && (run_seed == seed || s.steps.len() >= robust_from);
            fails.then(|| Violation::new("X", "planted", "", Duration::ZERO))
        }
    }

    #[test]
    fn the_shrinker_rejects_candidates_that_fail_only_under_the_base_seed() {
        let scenario = long_scenario();
        let failure = Violation::new("X", "planted", "", Duration::ZERO);
        let run = planted(scenario.seed, 3);
        let shrunk = shrink_with(&Echo, &scenario, &failure, &Options::default(), run);
        assert_eq!(shrunk.scenario.steps.len(), 3, "fragile candidates of 1 or 2 steps are rejected");
        assert_eq!(
            (shrunk.found, shrunk.robustness),
            (Robustness { held: 8, runs: 8 }, Robustness { held: 8, runs: 8 })
        );
        let fragile = Options { robustness: Rule { runs: 0, ..Rule::default() }, ..Options::default() };
        let unchecked = shrink_with(&Echo, &scenario, &failure, &fragile, planted(scenario.seed, 3));
        assert_eq!(unchecked.scenario.steps.len(), 1, "without the rule it shrinks to the fragile step");
        assert!(unchecked.runs < shrunk.runs, "robustness costs runs: {} vs {}", unchecked.runs, shrunk.runs);
        assert_ne!(perturbed_seed(scenario.seed, 0), scenario.seed);
    }

    #[test]
    fn a_fragile_failure_is_still_shrunk_and_reported_as_fragile() {
        let scenario = long_scenario();
        let failure = Violation::new("X", "planted", "", Duration::ZERO);
        let shrunk = shrink_with(&Echo, &scenario, &failure, &Options::default(), planted(scenario.seed, usize::MAX));
        assert_eq!(shrunk.scenario.steps.len(), 1);
        assert_eq!(
            (shrunk.found, shrunk.robustness),
            (Robustness { held: 0, runs: 8 }, Robustness { held: 0, runs: 8 })
        );
        assert!(!shrunk.robustness.meets(&Rule::default()));
    }
}
