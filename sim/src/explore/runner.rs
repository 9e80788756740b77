//! The case loop: runs an exploration's cases on several threads, or one
//! shard of them, with the same result as one thread running them all.
//!
//! Threads take cases in index order. A failure does not stop the others at
//! once: every case below the lowest failing index still runs, so the
//! reported failure is the lowest-index failing case whatever the thread
//! count, and the results hold exactly the cases one thread would have run.
//!
//! When coverage steers the cases ([`Guide::Coverage`]) or stops the run
//! (`until_stable`), the cases run in generations: each generation's corpus
//! and each case's novelty come from the cases of lower index, taken in
//! index order, so a shard runs the other shards' cases too (it reports
//! only its own) and every thread count and shard sees the same cases.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tandem::coverage::Signature;
use tandem::history::Digest;
use tandem::property::{Coverage, Violation};
use tandem::system::System;

use super::case::Case;
use super::guide::{Guide, Progress, GENERATION};
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
    /// How cases are drawn.
    pub guide: Guide,
    /// Stop after this many cases in a row (in index order) reached nothing new.
    pub until_stable: Option<u64>,
}

impl Plan {
    /// The indices of the cases this run takes, in order.
    pub fn indices(&self) -> Vec<u64> {
        (0..self.cases).filter(|&i| self.shard.contains(i)).collect()
    }

    /// Whether this run needs every case's coverage, its shard's or not:
    /// to steer later cases, or to know when coverage is stable.
    fn needs_all(&self) -> bool {
        self.guide == Guide::Coverage || self.until_stable.is_some()
    }

    /// The ranges of case indices run one after the other: generations when
    /// coverage steers or stops the run, else one range of every case.
    fn generations(&self) -> Vec<std::ops::Range<u64>> {
        let size = if self.needs_all() { GENERATION } else { self.cases.max(1) };
        (0..self.cases.div_ceil(size)).map(|g| g * size..((g + 1) * size).min(self.cases)).collect()
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
    /// The coverage goals and whether it reached them.
    pub coverage: Vec<Coverage>,
    /// What its history saw.
    pub signature: Signature,
    /// Whether it reached something no case of lower index reached; `None`
    /// unless the plan follows every case's coverage (so that a shard
    /// reports the same as the whole run).
    pub new: Option<bool>,
}

/// Runs one case in the simulation.
pub fn run_case<S: System>(system: Arc<S>, case: Case) -> CaseRun {
    let run = run_scenario(system, &case.scenario, case.sim_seed());
    let (coverage, signature) = (run.outcome.coverage, run.outcome.signature);
    CaseRun { digest: run.history.digest(), failure: run.outcome.failure, case, coverage, signature, new: None }
}

/// The result of an exploration.
#[derive(Debug, Clone)]
pub struct Exploration {
    /// This run's cases, in case order, up to and including the first
    /// failing case or the case where coverage became stable.
    pub runs: Vec<CaseRun>,
    /// What the cases reached: every case up to the last of `runs` when
    /// the plan steers or stops by coverage (other shards' cases included),
    /// else the cases of `runs`.
    pub progress: Progress,
}

/// Runs the plan's cases of `system`, calling `done` after each of this
/// run's cases, and returns them in case order up to and including the
/// first failing case (all of them when none fails), with their coverage.
pub fn explore<S: System>(system: &Arc<S>, plan: &Plan, done: impl Fn(&CaseRun) + Sync) -> Exploration {
    let mut progress = Progress::default();
    let mut runs: Vec<CaseRun> = Vec::new();
    'cases: for generation in plan.generations() {
        let wanted: Vec<u64> = generation.filter(|&i| plan.needs_all() || plan.shard.contains(i)).collect();
        let corpus = std::mem::take(&mut progress.corpus);
        let finished = run_all(
            &wanted,
            plan.jobs,
            |index| {
                let case = Case::guided(system, &plan.space, plan.seed, index, plan.guide, &corpus);
                let run = run_case(system.clone(), case);
                if plan.shard.contains(index) {
                    done(&run);
                }
                run
            },
            |run| plan.shard.contains(run.case.index) && run.failure.is_some(),
        );
        progress.corpus = corpus;
        let mut stop = false;
        for mut run in finished {
            let new = progress.take(&run);
            run.new = plan.needs_all().then_some(new);
            let stable = plan.until_stable.is_some_and(|n| progress.streak >= n);
            if plan.shard.contains(run.case.index) {
                stop = run.failure.is_some();
                runs.push(run);
            }
            if stop || stable {
                break 'cases;
            }
        }
    }
    progress.finish();
    Exploration { runs, progress }
}

/// Runs `run` on every index of `indices` on `jobs` threads, in index order,
/// and returns the runs in index order up to and including the lowest one
/// that `fails`. Every index below it runs, whatever the thread count.
fn run_all(
    indices: &[u64],
    jobs: usize,
    run: impl Fn(u64) -> CaseRun + Sync,
    fails: impl Fn(&CaseRun) -> bool + Sync,
) -> Vec<CaseRun> {
    let next = AtomicUsize::new(0);
    let state = Mutex::new(State::default());
    let worker = || loop {
        let position = next.fetch_add(1, Ordering::SeqCst);
        let Some(&index) = indices.get(position) else { return };
        if state.lock().expect("no worker panics").lowest_failure.is_some_and(|f| f < index) {
            return;
        }
        let finished = run(index);
        let failed = fails(&finished);
        state.lock().expect("no worker panics").add(finished, failed);
    };
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
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
    fn add(&mut self, run: CaseRun, failed: bool) {
        let index = run.case.index;
        if failed && self.lowest_failure.is_none_or(|f| index < f) {
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
        let plan = |shard| Plan {
            seed: 0,
            cases: 10,
            space: Space::default(),
            jobs: 1,
            shard,
            guide: Guide::Swarm,
            until_stable: None,
        };
        let mut all: Vec<u64> = (1..=3).flat_map(|index| plan(Shard { index, count: 3 }).indices()).collect();
        all.sort();
        assert_eq!(all, plan(Shard::ALL).indices());
    }
}
