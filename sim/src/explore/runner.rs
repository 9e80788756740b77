//! The case loop: runs an exploration's cases on several threads, or one
//! shard of them, with the same result as one thread running them all.
//!
//! Threads take cases in index order. A failure does not stop the others at
//! once: every case below the lowest failing index still runs, so the
//! reported failure is the lowest-index failing case whatever the thread
//! count, and the results hold exactly the cases one thread would have run.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tandem::history::Digest;
use tandem::property::Violation;
use tandem::system::System;

use super::case::Case;
use super::strategy::Space;
use crate::run::run_scenario;

/// One shard of an exploration: shard `index` (from 1) of `count` runs the
/// cases whose index modulo `count` is `index - 1`, so `count` shards
/// together run exactly the cases of one unsharded exploration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// Which shard, `1..=count`.
    pub index: u64,
    /// How many shards.
    pub count: u64,
}

impl Shard {
    /// The one shard of an unsharded exploration.
    pub const ALL: Shard = Shard { index: 1, count: 1 };

    /// Whether case `case` (an index from 0) belongs to this shard.
    pub fn contains(&self, case: u64) -> bool {
        case % self.count == self.index - 1
    }
}

impl FromStr for Shard {
    type Err = String;

    /// `I/N` with 1 <= I <= N.
    fn from_str(s: &str) -> Result<Shard, String> {
        let expected = || format!("invalid shard `{s}`, expected I/N with 1 <= I <= N, like 1/4");
        let (index, count) = s.split_once('/').ok_or_else(expected)?;
        let index: u64 = index.trim().parse().map_err(|_| expected())?;
        let count: u64 = count.trim().parse().map_err(|_| expected())?;
        if index == 0 || index > count {
            return Err(expected());
        }
        Ok(Shard { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// What to explore.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The exploration's seed: with the space, it determines every case.
    pub seed: u64,
    /// How many cases the whole (unsharded) exploration has.
    pub cases: u64,
    /// What the cases are drawn from.
    pub space: Space,
    /// Threads to run cases on; at least 1.
    pub jobs: usize,
    /// Which cases this run takes.
    pub shard: Shard,
}

impl Plan {
    /// The indices of the cases this run takes, in order.
    pub fn indices(&self) -> Vec<u64> {
        (0..self.cases).filter(|&i| self.shard.contains(i)).collect()
    }
}

/// A case that ran.
#[derive(Debug, Clone)]
pub struct CaseRun {
    /// The case.
    pub case: Case,
    /// The digest of its trace.
    pub digest: Digest,
    /// Its first violated invariant, if any.
    pub failure: Option<Violation>,
}

/// Runs one case in the simulation.
pub fn run_case<S: System>(system: Arc<S>, case: Case) -> CaseRun {
    let run = run_scenario(system, &case.scenario, case.sim_seed());
    CaseRun { digest: run.digest(), failure: run.outcome.failure, case }
}

/// Runs the plan's cases of `system`, calling `done` after each, and
/// returns the runs in case order up to and including the first failing
/// case (all of them when none fails).
pub fn explore<S: System>(system: &Arc<S>, plan: &Plan, done: impl Fn(&CaseRun) + Sync) -> Vec<CaseRun> {
    let indices = plan.indices();
    let next = AtomicUsize::new(0);
    let state = Mutex::new(State::default());
    let worker = || loop {
        let position = next.fetch_add(1, Ordering::SeqCst);
        let Some(&index) = indices.get(position) else { return };
        if state.lock().expect("no worker panics").lowest_failure.is_some_and(|f| f < index) {
            return;
        }
        let run = run_case(system.clone(), Case::generate(system, &plan.space, plan.seed, index));
        done(&run);
        state.lock().expect("no worker panics").add(run);
    };
    std::thread::scope(|scope| {
        for _ in 0..plan.jobs.max(1) {
            scope.spawn(worker);
        }
    });
    let state = state.into_inner().expect("no worker panics");
    let last = state.lowest_failure.unwrap_or(u64::MAX);
    state.runs.into_values().filter(|r| r.case.index <= last).collect()
}

/// What the workers share.
#[derive(Default)]
struct State {
    runs: BTreeMap<u64, CaseRun>,
    lowest_failure: Option<u64>,
}

impl State {
    fn add(&mut self, run: CaseRun) {
        let index = run.case.index;
        if run.failure.is_some() && self.lowest_failure.is_none_or(|f| index < f) {
            self.lowest_failure = Some(index);
        }
        self.runs.insert(index, run);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_parse_and_partition_the_cases() {
        assert_eq!("2/3".parse(), Ok(Shard { index: 2, count: 3 }));
        for bad in ["0/3", "4/3", "1", "a/b", "1/0", "-1/2"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
        let plan = |shard| Plan { seed: 0, cases: 10, space: Space::default(), jobs: 1, shard };
        let mut all: Vec<u64> = (1..=3).flat_map(|index| plan(Shard { index, count: 3 }).indices()).collect();
        all.sort();
        assert_eq!(all, plan(Shard::ALL).indices());
    }
}
