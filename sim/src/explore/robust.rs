//! Robustness: how often a run's verdict holds when timing moves within what
//! the scenario allows.
//!
//! A scenario's perturbed run `i` is the same scenario run with the
//! simulation seed [`perturbed_seed`]`(seed, i)`: link latencies move within
//! their ranges, loss draws, boot stagger, torn writes and the nodes' own
//! randomness change; the timeline, the network settings and the knobs do
//! not. The robustness of a verdict is how many of `K` perturbed runs end
//! with it (the same failing property or invariant code, or a pass), printed
//! `robust 7/8`. Every perturbed run is a pure function of (seed, i), so the
//! robustness of a scenario and seed is the same number every time.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tandem::engine::host::derive_seed;
use tandem::property::Violation;
use tandem::scenario::{NodeIdx, Scenario};
use tandem::system::System;

use crate::options::Backend;

/// The default number of perturbed runs.
pub const DEFAULT_RUNS: u32 = 8;

/// The default share of perturbed runs a failure must hold in to count as
/// robust.
pub const DEFAULT_MIN: f64 = 0.5;

/// The `purpose` of [`derive_seed`] for perturbed runs, clear of the
/// backends' own purposes (0 to 8).
const PERTURBATION: u8 = 32;

/// The simulation seed of perturbed run `i` (from 0) of a scenario run with
/// `seed`: `derive_seed(seed, NodeIdx::MAX, i, 32)`.
pub fn perturbed_seed(seed: u64, i: u32) -> u64 {
    derive_seed(seed, NodeIdx::MAX, u64::from(i), PERTURBATION)
}

/// How robustness is measured, and how much is enough.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rule {
    /// Perturbed runs per measurement; 0 measures nothing.
    pub runs: u32,
    /// The share of them, 0.0 to 1.0, a failure must hold in.
    pub min: f64,
}

impl Default for Rule {
    fn default() -> Rule {
        Rule { runs: DEFAULT_RUNS, min: DEFAULT_MIN }
    }
}

impl Rule {
    /// The perturbed runs a robust verdict holds in: `min` of `runs`, rounded up.
    pub fn needed(&self) -> u32 {
        (self.min * f64::from(self.runs)).ceil() as u32
    }
}

/// A measured robustness: the verdict held in `held` of `runs` perturbed runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Robustness {
    /// The perturbed runs that ended with the verdict.
    pub held: u32,
    /// The perturbed runs made.
    pub runs: u32,
}

impl Robustness {
    /// Whether `rule` counts the verdict as robust; nothing measured counts.
    pub fn meets(&self, rule: &Rule) -> bool {
        self.runs == 0 || self.held >= rule.needed()
    }
}

impl fmt::Display for Robustness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.held, self.runs)
    }
}

/// How often `scenario`, run on `backend` with `seed`, ends with `expected`
/// (a failure's code, or `None` for a pass) in `runs` perturbed runs.
pub fn measure<S: System>(
    system: &Arc<S>,
    backend: Backend,
    scenario: &Scenario,
    seed: u64,
    expected: Option<&str>,
    runs: u32,
) -> Robustness {
    tally(seed, expected, runs, None, |seed| backend.run(system.clone(), scenario, seed).outcome.failure)
}

/// Runs `scenario` on `backend` with `seed`, then measures its verdict's
/// robustness in `runs` perturbed runs: the run's failure, if any, and the
/// robustness.
pub fn verdict_and_robustness<S: System>(
    system: &Arc<S>,
    backend: Backend,
    scenario: &Scenario,
    seed: u64,
    runs: u32,
) -> (Option<Violation>, Robustness) {
    let failure = backend.run(system.clone(), scenario, seed).outcome.failure;
    let robustness = measure(system, backend, scenario, seed, failure.as_ref().map(|f| f.code.as_str()), runs);
    (failure, robustness)
}

/// Counts the perturbed runs of `run` (a run's failure for a simulation
/// seed) that end with `expected`, out of `runs`; with `needed`, stops as
/// soon as whether that many of them do is decided.
pub(crate) fn tally(
    seed: u64,
    expected: Option<&str>,
    runs: u32,
    needed: Option<u32>,
    mut run: impl FnMut(u64) -> Option<Violation>,
) -> Robustness {
    let mut counted = Robustness { held: 0, runs: 0 };
    let undecided = |c: &Robustness| needed.is_none_or(|n| c.held < n && c.runs - c.held <= runs.saturating_sub(n));
    while counted.runs < runs && undecided(&counted) {
        let failure = run(perturbed_seed(seed, counted.runs));
        counted.runs += 1;
        counted.held += u32::from(failure.as_ref().map(|f| f.code.as_str()) == expected);
    }
    counted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failing(code: &str) -> Option<Violation> {
        Some(Violation::new(code, "test", "", std::time::Duration::ZERO))
    }

    #[test]
    fn a_tally_stops_once_the_rule_is_decided() {
        // Fails as expected on every second seed.
        let alternate = |seed: u64| if seed % 2 == 0 { failing("S2") } else { None };
        let full = tally(7, Some("S2"), 8, None, alternate);
        assert_eq!(full.runs, 8);
        assert_eq!(full, tally(7, Some("S2"), 8, None, alternate), "a pure function of the seed");
        let always = tally(7, Some("S2"), 8, Some(4), |_| failing("S2"));
        assert_eq!(always, Robustness { held: 4, runs: 4 }, "decided after 4 failures");
        let never = tally(7, Some("S2"), 8, Some(4), |_| failing("L2"));
        assert_eq!(never, Robustness { held: 0, runs: 5 }, "another code does not count; decided after 5");
        assert_eq!(tally(7, None, 8, None, |_| None), Robustness { held: 8, runs: 8 }, "a pass holds when passing");
        assert_eq!(tally(7, Some("S2"), 8, None, |_| None), Robustness { held: 0, runs: 8 }, "measured in full");
    }

    #[test]
    fn a_scenario_s_robustness_is_the_same_every_time() {
        let echo = Arc::new(crate::explore::testing::Echo);
        let space = crate::explore::strategy::Space::default();
        let scenario = crate::explore::case::Case::generate(&echo, &space, 3, 0).scenario;
        let measured = verdict_and_robustness(&echo, Backend::Events, &scenario, scenario.seed, 4);
        assert_eq!(measured, verdict_and_robustness(&echo, Backend::Events, &scenario, scenario.seed, 4));
        assert_eq!(measured, (None, Robustness { held: 4, runs: 4 }), "the echo node passes under any timing");
    }

    #[test]
    fn the_rule_rounds_up_and_nothing_measured_meets_it() {
        let rule = Rule { runs: 8, min: 0.5 };
        assert_eq!(rule.needed(), 4);
        assert_eq!(Rule { runs: 5, min: 0.5 }.needed(), 3);
        assert!(Robustness { held: 4, runs: 8 }.meets(&rule));
        assert!(!Robustness { held: 3, runs: 8 }.meets(&rule));
        assert!(Robustness { held: 0, runs: 0 }.meets(&rule));
        assert_ne!(perturbed_seed(1, 0), perturbed_seed(1, 1));
        assert_ne!(perturbed_seed(1, 0), perturbed_seed(2, 0));
    }
}
