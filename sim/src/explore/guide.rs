//! What an exploration has reached so far, and how it steers the next cases.
//!
//! [`Progress`] takes the finished cases in index order: the coverage goals
//! they hit, the union of their [signatures](tandem::engine::coverage), the corpus
//! of cases that reached something new, the growth of the coverage, and how
//! many cases in a row reached nothing new. With [`Guide::Coverage`] or
//! [`Guide::Branch`] the runner works in generations of [`GENERATION`]
//! cases of one shard: generation `g` is drawn from the corpus of the
//! shard's generations before it, so every case stays a pure function of
//! the seed, the shard, its index and the shard's cases of lower index.
//!
//! For [`Guide::Branch`] a corpus entry keeps branch points: everything its
//! case reached, with when and where, each weighed by how few cases reached
//! it (FairFuzz's rare branches), and how many branches were drawn from it
//! and how many of those reached something new themselves. Before each
//! generation [`Progress::refresh`] turns those into the entry's
//! [`energy`](Entry::energy), which decides how often it is branched from.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;
// Wall-clock `Instant`: the growth curve's seconds time real work, outside any simulation.
use std::time::Instant;

use xxhash_rust::xxh3::xxh3_64;

use serde::{Deserialize, Serialize};

use tandem::engine::coverage::Reached;

use super::case::{Case, Origin};
use super::runner::CaseRun;

/// How many cases a generation of a coverage-guided exploration has.
pub const GENERATION: u64 = 64;

/// How many cases a generation of a branching exploration has: branching
/// starts after its first generation, so sooner than mutation does.
pub const BRANCH_GENERATION: u64 = 16;

/// How an exploration draws its cases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Guide {
    /// Every case fresh: an independent swarm draw.
    Swarm,
    /// Some cases fresh, the others mutations of corpus cases.
    #[default]
    Coverage,
    /// Some cases fresh, the others branches of corpus cases: the case's
    /// timeline up to the moment it reached something new, kept exactly,
    /// and a new future drawn after it (see [`branch`](super::branch)).
    Branch,
}

impl Guide {
    /// How many cases a generation has when this guide steers the cases
    /// (or `--until-stable` stops them).
    pub fn generation(self) -> u64 {
        match self {
            Guide::Branch => BRANCH_GENERATION,
            Guide::Swarm | Guide::Coverage => GENERATION,
        }
    }
}

impl FromStr for Guide {
    type Err = String;

    /// `swarm`, `coverage` or `branch`.
    fn from_str(s: &str) -> Result<Guide, String> {
        match s {
            "swarm" => Ok(Guide::Swarm),
            "coverage" => Ok(Guide::Coverage),
            "branch" => Ok(Guide::Branch),
            _ => Err(format!("invalid guide `{s}`, expected swarm, coverage or branch")),
        }
    }
}

impl fmt::Display for Guide {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Guide::Swarm => "swarm",
            Guide::Coverage => "coverage",
            Guide::Branch => "branch",
        })
    }
}

/// The coverage after some number of cases.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Growth {
    /// How many cases had run.
    pub cases: u64,
    /// How many coverage goals they had reached.
    pub goals: usize,
    /// The size of the union of their signatures.
    pub signature: usize,
    /// Wall seconds from the exploration's start until all these cases
    /// had ended (0 in results written before they were measured).
    #[serde(default)]
    pub secs: f64,
}

/// A corpus case, and how much it was the first to reach.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The case.
    pub case: Case,
    /// The signature hashes it reached first, plus [`GOAL_GAIN`] per goal.
    pub gain: u64,
    /// What it reached, with when: its branch points (only when branching).
    pub points: Vec<Point>,
    /// How many branches were drawn from it.
    pub tried: u64,
    /// How many of those reached something new.
    pub yielded: u64,
    /// How much of the budget branching from it deserves, as of the last
    /// [`Progress::refresh`]: its points' weights, times one plus twice
    /// `yielded`, over one plus `tried`. At least 1.
    pub energy: u64,
}

/// One thing a corpus case reached (a signature hash, or a coverage goal),
/// when and where: a moment to branch from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Point {
    /// The thing, as an index into [`Progress`]'s hit counts.
    pub id: u32,
    /// Whether it is a coverage goal (they weigh [`GOAL_GAIN`] times more).
    pub goal: bool,
    /// When and where the case first reached it.
    pub reached: Reached,
    /// How rare it is, as of the last [`Progress::refresh`]: [`RARITY`]
    /// over the square of the number of cases that reached it, times
    /// [`GOAL_GAIN`] for a goal (the system declared it worth reaching).
    pub weight: u64,
}

/// What reaching a coverage goal first counts for in an [`Entry`]'s gain.
pub const GOAL_GAIN: u64 = 100;

/// The weight of a [`Point`] that one case reached: a point reached by `n`
/// cases weighs `RARITY / n²`, so the rare dominate.
pub const RARITY: u64 = 4096;

/// A case that reaches something at most this many cases reached joins a
/// branching exploration's corpus even when it reached nothing new.
pub const RARE: u64 = 4;

/// What the cases so far reached, taken in index order.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    /// Every coverage goal seen, and whether some case reached it.
    pub goals: BTreeMap<String, bool>,
    /// Whether the corpus keeps branch points ([`Guide::Branch`]).
    pub branching: bool,
    /// When branching: the id of every signature hash and goal seen.
    pub ids: BTreeMap<u64, u32>,
    /// When branching: how many cases reached each id.
    pub hits: Vec<u64>,
    /// The union of the cases' signatures.
    pub signature: BTreeSet<u64>,
    /// The cases that reached something new (or, when branching, rare), in
    /// index order.
    pub corpus: Vec<Entry>,
    /// The coverage after 1, 2, 4, 8, ... cases, after every
    /// [`GENERATION`] cases, and after the last.
    pub growth: Vec<Growth>,
    /// How many cases were taken.
    pub cases: u64,
    /// How many of the latest cases in a row reached nothing new.
    pub streak: u64,
    /// When the exploration started, and when the latest of the cases
    /// taken ended: the growth's seconds lie between.
    pub clock: Clock,
}

/// When an exploration started (when its [`Progress`] was made), and when
/// the latest of the cases taken so far ended.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// When the exploration started.
    pub started: Instant,
    /// When the latest case taken ended.
    pub latest: Instant,
}

impl Default for Clock {
    fn default() -> Self {
        let now = Instant::now();
        Clock { started: now, latest: now }
    }
}

impl Progress {
    /// A fresh progress; `branching` keeps branch points in the corpus.
    pub fn new(branching: bool) -> Progress {
        Progress { branching, ..Progress::default() }
    }

    /// Takes the next case in index order; whether it reached something new
    /// (a goal no earlier case reached, or a signature hash none saw).
    pub fn take(&mut self, run: &CaseRun) -> bool {
        let mut gain = 0;
        for goal in &run.coverage {
            let hit = self.goals.entry(goal.goal.clone()).or_insert(false);
            if goal.hit && !*hit {
                gain += GOAL_GAIN;
            }
            *hit |= goal.hit;
        }
        for hash in run.signature.keys() {
            gain += u64::from(self.signature.insert(*hash));
        }
        let new = gain > 0;
        if let Origin::Branch { parent, .. } = run.case.origin {
            if let Ok(i) = self.corpus.binary_search_by_key(&parent, |e| e.case.index) {
                self.corpus[i].tried += 1;
                self.corpus[i].yielded += u64::from(new);
            }
        }
        let points = if self.branching { self.count(run) } else { Vec::new() };
        let rare = points.iter().any(|p| self.hits[p.id as usize] <= RARE);
        if new || rare {
            self.corpus.push(Entry { case: run.case.clone(), gain, points, tried: 0, yielded: 0, energy: 1 });
        }
        if new {
            self.streak = 0;
        } else {
            self.streak += 1;
        }
        self.cases += 1;
        self.clock.latest = self.clock.latest.max(run.ended);
        if self.cases.is_power_of_two() || self.cases % GENERATION == 0 {
            self.growth.push(self.now());
        }
        new
    }

    /// Counts what `run` reached (its signature hashes and goals) in the
    /// hit counts, and returns it as points.
    fn count(&mut self, run: &CaseRun) -> Vec<Point> {
        let goals = run.coverage.iter().filter_map(|goal| Some((goal_hash(&goal.goal), goal.first?, true)));
        let hashes = run.signature.iter().map(|(h, r)| (*h, *r, false));
        let reached: Vec<(u64, Reached, bool)> = hashes.chain(goals).collect();
        reached
            .into_iter()
            .map(|(hash, reached, goal)| {
                let next = self.hits.len() as u32;
                let id = *self.ids.entry(hash).or_insert(next);
                if id == next {
                    self.hits.push(0);
                }
                self.hits[id as usize] += 1;
                Point { id, goal, reached, weight: 0 }
            })
            .collect()
    }

    /// Weighs every corpus entry's points by how rare they are now, and
    /// its energy by them and by what its branches found.
    pub fn refresh(&mut self) {
        for entry in &mut self.corpus {
            let mut worth = 0;
            for point in &mut entry.points {
                let hits = self.hits[point.id as usize].max(1);
                point.weight = RARITY * if point.goal { GOAL_GAIN } else { 1 } / (hits * hits);
                worth += point.weight;
            }
            entry.energy = (worth * (1 + 2 * entry.yielded) / (1 + entry.tried)).max(1);
        }
    }

    /// Records the coverage now as the last growth point.
    pub fn finish(&mut self) {
        let now = self.now();
        if self.growth.last().map(|g| g.cases) != Some(now.cases) {
            self.growth.push(now);
        }
    }

    /// The goals no case reached.
    pub fn missed(&self) -> Vec<&str> {
        self.goals.iter().filter(|(_, hit)| !**hit).map(|(goal, _)| goal.as_str()).collect()
    }

    fn now(&self) -> Growth {
        Growth {
            cases: self.cases,
            goals: self.goals.values().filter(|hit| **hit).count(),
            signature: self.signature.len(),
            secs: (self.clock.latest - self.clock.started).as_secs_f64(),
        }
    }
}

/// The id of a coverage goal among signature hashes: xxh3 of `goal/NAME`.
fn goal_hash(goal: &str) -> u64 {
    xxh3_64([b"goal/", goal.as_bytes()].concat().as_slice())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use tandem::history::Digest;

    use super::*;
    use crate::explore::strategy::Space;
    use crate::explore::testing::Echo;

    /// Case `index`, from `origin`, that reached `hashes` at 1 s, 2 s, ...
    fn run(index: u64, hashes: &[u64], origin: Origin) -> CaseRun {
        let case = Case { origin, ..Case::generate(&Arc::new(Echo), &Space::default(), 1, index) };
        let at = |k: usize| Reached { at: Duration::from_secs(k as u64 + 1), node: Some(0) };
        let signature = hashes.iter().enumerate().map(|(k, &h)| (h, at(k))).collect();
        CaseRun {
            case,
            digest: Digest(index),
            failure: None,
            coverage: Vec::new(),
            signature,
            new: None,
            ended: Instant::now(),
        }
    }

    #[test]
    fn branching_weighs_the_rare_and_spends_on_what_yields() {
        let mut progress = Progress::new(true);
        assert!(progress.take(&run(0, &[1, 7], Origin::Fresh)));
        for index in 1..=RARE {
            assert!(!progress.take(&run(index, &[1], Origin::Fresh)));
        }
        progress.refresh();
        let first = &progress.corpus[0];
        let weights: Vec<u64> = first.points.iter().map(|p| p.weight).collect();
        assert_eq!(weights, [RARITY / 25, RARITY], "hash 1 was reached by 5 cases, hash 7 by one");
        assert_eq!(first.points[1].reached.at, Duration::from_secs(2), "a point is when the case reached it");
        assert!(progress.corpus.iter().skip(1).all(|e| e.energy < first.energy), "the rare case has the most energy");
        assert_eq!(progress.corpus.len(), RARE as usize, "reaching something 5 cases reached is not rare");

        let branch = || Origin::Branch { parent: 0, at: Duration::from_secs(2) };
        assert!(!progress.take(&run(10, &[7], branch())));
        progress.refresh();
        let worth = RARITY / 25 + RARITY / 4;
        assert_eq!(progress.corpus[0].energy, worth / 2, "a branch that found nothing new halves it");
        assert!(progress.take(&run(11, &[9], branch())));
        progress.refresh();
        assert_eq!(progress.corpus[0].energy, worth * 3 / 3, "one that did brings it back");
        assert_eq!((progress.corpus[0].tried, progress.corpus[0].yielded), (2, 1));
    }
}
