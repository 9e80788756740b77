//! The case loop: runs an exploration's cases on several threads, or one
//! shard of them, with the same result as one thread running them all.
//!
//! Threads take cases in index order. A failure does not stop the others at
//! once: every case below the lowest failing index still runs, so the
//! reported failure is the lowest-index failing case whatever the thread
//! count, and the results hold exactly the cases one thread would have run.
//!
//! A run takes only its shard's cases. When coverage steers the cases
//! ([`Guide::Coverage`], [`Guide::Branch`]) or stops the run (`until_stable`), it takes them in
//! generations of its own cases ([`Guide::generation`]): each generation's corpus
//! and each case's novelty come from the shard's own cases of lower index,
//! taken in index order. A guided shard thus guides itself: `count` shards
//! run `count` disjoint case sets, each the same for every thread count (the
//! unsharded run is the one shard `1/1`).
//!
//! A [`Plan::deadline`] only decides how many cases run: once it passes, no
//! thread takes a new case and no generation starts, so the cases run are
//! still a prefix, in index order, of the shard's cases.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
// Wall-clock `Instant`: the deadline bounds real work, outside any simulation.
use std::time::Instant;

use serde::{Deserialize, Serialize};

use tandem::engine::coverage::Signature;
use tandem::history::Digest;
use tandem::property::{Coverage, Violation};
use tandem::system::System;

use super::case::Case;
use super::guide::{Guide, Progress};
use super::strategy::Space;
use crate::options::Backend;

/// One shard of an exploration: shard `index` (from 1) of `count` runs the
/// cases whose index modulo `count` is `index - 1`. Unguided (swarm), the
/// `count` shards together run exactly the cases of one unsharded
/// exploration; guided, each shard draws its mutants from its own corpus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

    /// How many of the cases `0..cases` belong to this shard.
    pub fn cases_of(&self, cases: u64) -> u64 {
        cases.saturating_sub(self.index - 1).div_ceil(self.count)
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

/// The case count of an exploration that only its deadline, a failure or
/// stable coverage stops (`tandem explore --for D` without `--cases`).
pub const UNBOUNDED: u64 = u64::MAX;

/// What to explore.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The exploration's seed: with the space, it determines every case.
    pub seed: u64,
    /// How many cases the whole (unsharded) exploration has, or [`UNBOUNDED`]
    /// (then `deadline` must be set).
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
    /// Take no new case after this instant (`--for`): the cases run are a
    /// prefix of the plan's, and a generation cut short ends the run.
    pub deadline: Option<Instant>,
}

impl Plan {
    /// `cases` cases of `space` from `seed`: one thread, every shard, the
    /// default guide, no stop but the case count. Change the rest with
    /// struct update syntax: `Plan { jobs: 2, ..Plan::new(1, 500, space) }`.
    pub fn new(seed: u64, cases: u64, space: Space) -> Plan {
        Plan {
            seed,
            cases,
            space,
            jobs: 1,
            shard: Shard::ALL,
            guide: Guide::default(),
            until_stable: None,
            deadline: None,
        }
    }

    /// The indices of the cases this run takes, in order.
    pub fn indices(&self) -> impl Iterator<Item = u64> {
        (self.shard.index - 1..self.cases).step_by(self.shard.count as usize)
    }

    /// Whether coverage steers the cases or stops the run.
    fn steered(&self) -> bool {
        self.guide != Guide::Swarm || self.until_stable.is_some()
    }

    /// This run's cases in the batches run one after the other, those that
    /// start before the deadline: generations ([`Guide::generation`]) when
    /// coverage steers or stops the run or a deadline ends it, else one
    /// batch of every case.
    fn generations(&self) -> impl Iterator<Item = Vec<u64>> + '_ {
        let every = usize::try_from(self.shard.cases_of(self.cases)).unwrap_or(usize::MAX);
        let size =
            if self.steered() || self.deadline.is_some() { self.guide.generation() as usize } else { every.max(1) };
        let mut indices = self.indices();
        std::iter::from_fn(move || {
            let batch: Vec<u64> = indices.by_ref().take(size).collect();
            (!batch.is_empty() && !past(self.deadline)).then_some(batch)
        })
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
    /// Whether it reached something no case of its shard with a lower index
    /// reached; `None` unless coverage steers or stops the run.
    pub new: Option<bool>,
    /// When it finished, on the wall clock: the coverage growth's time.
    pub ended: Instant,
}

/// Runs one case on `backend`.
pub fn run_case<S: System>(system: Arc<S>, case: Case, backend: Backend) -> CaseRun {
    let run = backend.run(system, &case.scenario, case.sim_seed());
    let (coverage, signature) = (run.outcome.coverage, run.outcome.signature);
    let (digest, failure, ended) = (run.history.digest(), run.outcome.failure, Instant::now());
    CaseRun { digest, failure, case, coverage, signature, new: None, ended }
}

/// The result of an exploration.
#[derive(Debug, Clone)]
pub struct Exploration {
    /// This run's cases, in case order, up to and including the first
    /// failing case or the case where coverage became stable.
    pub runs: Vec<CaseRun>,
    /// What the cases of `runs` reached.
    pub progress: Progress,
}

/// Runs the plan's cases of `system`, calling `done` after each of this
/// run's cases, and returns them in case order up to and including the
/// first failing case (all of them when none fails), with their coverage.
pub fn explore<S: System>(system: &Arc<S>, plan: &Plan, done: impl Fn(&CaseRun) + Sync) -> Exploration {
    let mut progress = Progress::new(plan.guide == Guide::Branch);
    let mut runs: Vec<CaseRun> = Vec::new();
    'cases: for generation in plan.generations() {
        if progress.branching {
            progress.refresh();
        }
        let corpus = std::mem::take(&mut progress.corpus);
        let finished = run_all(&generation, plan.jobs, plan.deadline, |index| {
            let case = Case::guided(system, &plan.space, plan.seed, index, plan.guide, &corpus);
            let run = run_case(system.clone(), case, plan.space.backend);
            done(&run);
            run
        });
        progress.corpus = corpus;
        for mut run in finished {
            let new = progress.take(&run);
            run.new = plan.steered().then_some(new);
            let stop = run.failure.is_some() || plan.until_stable.is_some_and(|n| progress.streak >= n);
            runs.push(run);
            if stop {
                break 'cases;
            }
        }
    }
    progress.finish();
    Exploration { runs, progress }
}

/// Whether `deadline` has passed.
fn past(deadline: Option<Instant>) -> bool {
    deadline.is_some_and(|deadline| Instant::now() >= deadline)
}

/// Runs `run` on every index of `indices` on `jobs` threads, in index order,
/// and returns the runs in index order up to and including the lowest
/// failing one. Every index below it runs, whatever the thread count. Past
/// `deadline` no thread takes a new index: the runs are then a prefix.
fn run_all(
    indices: &[u64],
    jobs: usize,
    deadline: Option<Instant>,
    run: impl Fn(u64) -> CaseRun + Sync,
) -> Vec<CaseRun> {
    let next = AtomicUsize::new(0);
    let state = Mutex::new(State::default());
    let worker = || loop {
        // Checked before taking an index, so every index taken runs.
        if past(deadline) {
            return;
        }
        let position = next.fetch_add(1, Ordering::SeqCst);
        let Some(&index) = indices.get(position) else { return };
        if state.lock().expect("no worker panics").lowest_failure.is_some_and(|f| f < index) {
            return;
        }
        let finished = run(index);
        state.lock().expect("no worker panics").add(finished);
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
        let plan = |shard| Plan {
            seed: 0,
            cases: 10,
            space: Space::default(),
            jobs: 1,
            shard,
            guide: Guide::Swarm,
            until_stable: None,
            deadline: None,
        };
        let mut all: Vec<u64> = (1..=3).flat_map(|index| plan(Shard { index, count: 3 }).indices()).collect();
        for index in 1..=3 {
            let shard = Shard { index, count: 3 };
            assert_eq!(shard.cases_of(10), plan(shard).indices().count() as u64);
            assert_eq!(shard.cases_of(1), u64::from(index == 1));
        }
        all.sort();
        assert_eq!(all, plan(Shard::ALL).indices().collect::<Vec<_>>());
    }

    #[test]
    fn a_deadline_keeps_a_prefix_of_the_unbounded_runs_cases() {
        let echo = Arc::new(crate::explore::testing::Echo);
        let space = Space { nodes: 2..=2, duration: std::time::Duration::from_secs(7), ..Space::default() };
        let plan = |cases, guide, deadline| Plan {
            seed: 5,
            cases,
            space: space.clone(),
            jobs: 2,
            shard: Shard::ALL,
            guide,
            until_stable: None,
            deadline,
        };
        let digests = |exploration: Exploration| -> Vec<(u64, Digest)> {
            exploration.runs.iter().map(|r| (r.case.index, r.digest)).collect()
        };
        for guide in [Guide::Swarm, Guide::Coverage] {
            let started = Instant::now();
            let all = digests(explore(&echo, &plan(130, guide, None), |_| {}));
            let took = started.elapsed();
            assert_eq!(all.len(), 130, "{guide}: the plan's every case");
            let far = Some(Instant::now() + took * 100);
            assert_eq!(digests(explore(&echo, &plan(130, guide, far), |_| {})), all, "{guide}: a far deadline");
            let passed = explore(&echo, &plan(UNBOUNDED, guide, Some(Instant::now())), |_| {});
            assert!(passed.runs.is_empty() && passed.progress.cases == 0, "{guide}: a deadline passed runs nothing");
            // Half the bounded run's time: the unbounded run stops, having
            // run a prefix of the same cases.
            let halfway = Some(Instant::now() + took / 2);
            let cut = digests(explore(&echo, &plan(UNBOUNDED, guide, halfway), |_| {}));
            let common = cut.len().min(all.len());
            assert_eq!(
                cut[..common],
                all[..common],
                "{guide}: a prefix of the unbounded run's cases, digests included"
            );
        }
    }
}
