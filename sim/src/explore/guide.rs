//! What an exploration has reached so far, and how it steers the next cases.
//!
//! [`Progress`] takes the finished cases in index order: the coverage goals
//! they hit, the union of their [signatures](tandem::coverage), the corpus
//! of cases that reached something new, the growth of the coverage, and how
//! many cases in a row reached nothing new. With [`Guide::Coverage`] the
//! runner works in generations of [`GENERATION`] cases of one shard:
//! generation `g` is drawn from the corpus of the shard's generations before
//! it, so every case stays a pure function of the seed, the shard, its index
//! and the shard's cases of lower index.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;
// Wall-clock `Instant`: the growth curve's seconds time real work, outside any simulation.
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::case::Case;
use super::runner::CaseRun;

/// How many cases a generation of a guided exploration has.
pub const GENERATION: u64 = 64;

/// How an exploration draws its cases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Guide {
    /// Every case fresh: an independent swarm draw.
    Swarm,
    /// Some cases fresh, the others mutations of corpus cases.
    #[default]
    Coverage,
}

impl FromStr for Guide {
    type Err = String;

    /// `swarm` or `coverage`.
    fn from_str(s: &str) -> Result<Guide, String> {
        match s {
            "swarm" => Ok(Guide::Swarm),
            "coverage" => Ok(Guide::Coverage),
            _ => Err(format!("invalid guide `{s}`, expected swarm or coverage")),
        }
    }
}

impl fmt::Display for Guide {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Guide::Swarm => "swarm",
            Guide::Coverage => "coverage",
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
}

/// What reaching a coverage goal first counts for in an [`Entry`]'s gain.
pub const GOAL_GAIN: u64 = 100;

/// What the cases so far reached, taken in index order.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    /// Every coverage goal seen, and whether some case reached it.
    pub goals: BTreeMap<String, bool>,
    /// The union of the cases' signatures.
    pub signature: BTreeSet<u64>,
    /// The cases that reached something new, in index order.
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
        let before = self.signature.len();
        self.signature.extend(run.signature.iter().copied());
        gain += (self.signature.len() - before) as u64;
        let new = gain > 0;
        if new {
            self.corpus.push(Entry { case: run.case.clone(), gain });
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
