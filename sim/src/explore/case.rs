//! One case of an exploration: a scenario drawn from the [`Space`] with an
//! RNG seeded by the exploration's seed and the case's index only, so a case
//! is the same whichever thread, shard or machine runs it. A guided case may
//! instead mutate a corpus case; the corpus comes from its shard's cases of
//! lower index (see [`guide`](super::guide)), so it is the same for every
//! thread count and machine that runs the shard.

use std::sync::Arc;
use std::time::Duration;

use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use tandem::engine::coverage::Reached;
use tandem::scenario::{Call, Scenario};
use tandem::system::System;

use super::branch::branch;
use super::guide::{Entry, Guide};
use super::mutate::{apply, draw, Mutation};
use super::rules::{self, fair};
use super::strategy::{scenario, Space};

/// How many times a guided case tries to mutate before it is drawn fresh.
const MUTATION_ATTEMPTS: usize = 8;

/// The share of a branch-guided exploration's cases (after its first
/// generation) that branch; the others are fresh.
pub const BRANCH_SHARE: f64 = 0.75;

/// How many draws a fresh case makes while the system's
/// [`fair`](tandem::Workload::fair) rule rejects them; the last one runs regardless.
pub const MAX_DRAWS: u32 = 64;

/// A generated case.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    /// Its index in the exploration, from 0.
    pub index: u64,
    /// Its scenario, named `explore-s{seed}-c{number}`, with the case's
    /// simulation seed as `seed`.
    pub scenario: Scenario,
    /// Where it comes from.
    pub origin: Origin,
    /// How many draws the system's fair rule rejected before this one.
    pub redrawn: u32,
}

/// Where a case comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A fresh swarm draw.
    Fresh,
    /// Mutations of a corpus case.
    Mutant {
        /// The index of the case it mutates.
        parent: u64,
        /// The mutations, in the order applied.
        mutations: Vec<Mutation>,
    },
    /// A branch of a corpus case (see [`branch`](super::branch)).
    Branch {
        /// The index of the case it branches from.
        parent: u64,
        /// When: it keeps the parent's steps up to this time.
        at: Duration,
    },
}

impl Case {
    /// Draws case `index` of the exploration of `system` with seed `seed`.
    /// A draw that the system's [`fair`](tandem::Workload::fair) rule rejects is drawn
    /// again from the case's next stream (up to [`MAX_DRAWS`] draws; the
    /// count is in [`Case::redrawn`]).
    ///
    /// # Panics
    ///
    /// When the drawn scenario is invalid or breaks the generic fairness
    /// rules: a generator bug.
    pub fn generate<S: System>(system: &Arc<S>, space: &Space, seed: u64, index: u64) -> Case {
        let mut redrawn = 0;
        loop {
            let stream = if redrawn == 0 { Stream::Fresh as u64 } else { Stream::Redraw as u64 + u64::from(redrawn) };
            let mut drawn = draw(&mut runner(seed, index, stream), scenario(system, space));
            drawn.name = name(seed, index);
            drawn
                .validate(&**system)
                .unwrap_or_else(|e| panic!("generated an invalid scenario: {e}\n{}", drawn.to_toml()));
            let ready = system.ready().map(|ready| Call::of(&ready));
            rules::generic(&drawn, ready.as_ref())
                .unwrap_or_else(|e| panic!("generated an unfair scenario: {e}\n{}", drawn.to_toml()));
            if redrawn + 1 == MAX_DRAWS || system.fair(&drawn).is_ok() {
                return Case { index, scenario: drawn, origin: Origin::Fresh, redrawn };
            }
            redrawn += 1;
        }
    }

    /// Draws case `index` as `guide` says: with [`Guide::Coverage`] and a
    /// non-empty `corpus` (cases of lower index), half the time a mutant of
    /// one of them (1 to 3 mutations; a parent is picked in proportion to
    /// its gain); with [`Guide::Branch`], [`BRANCH_SHARE`] of the time a
    /// branch of one of them (picked in proportion to its
    /// [energy](Entry::energy), at one of its points drawn by rarity); else the fresh case [`generate`](Case::generate)
    /// draws.
    pub fn guided<S: System>(
        system: &Arc<S>,
        space: &Space,
        seed: u64,
        index: u64,
        guide: Guide,
        corpus: &[Entry],
    ) -> Case {
        if guide == Guide::Swarm || corpus.is_empty() {
            return Case::generate(system, space, seed, index);
        }
        let mut runner = runner(seed, index, Stream::Guide as u64);
        let guided = match guide {
            Guide::Branch => draw(&mut runner, proptest::bool::weighted(BRANCH_SHARE)),
            _ => draw(&mut runner, proptest::bool::ANY),
        };
        if !guided {
            return Case::generate(system, space, seed, index);
        }
        if guide == Guide::Branch {
            return Case::branched(system, space, seed, index, corpus, &mut runner)
                .unwrap_or_else(|| Case::generate(system, space, seed, index));
        }
        for _ in 0..MUTATION_ATTEMPTS {
            let parent = &pick(corpus, |e| e.gain, &mut runner).case;
            let count = draw(&mut runner, 1..=3usize);
            let mut mutant = parent.scenario.clone();
            let mut mutations = Vec::new();
            for _ in 0..count {
                let mutation = draw(&mut runner, proptest::sample::select(&Mutation::ALL[..]));
                if apply(system, space, &mut mutant, mutation, &mut runner) {
                    mutations.push(mutation);
                }
            }
            if mutations.is_empty() || mutant.validate(&**system).is_err() || fair(&**system, &mutant).is_err() {
                continue;
            }
            let names: Vec<&str> = mutations.iter().map(|m| m.name()).collect();
            mutant.name = name(seed, index);
            mutant.description =
                format!("Generated by tandem explore: case {} with {}.", parent.number(), names.join(", "));
            return Case {
                index,
                scenario: mutant,
                origin: Origin::Mutant { parent: parent.index, mutations },
                redrawn: 0,
            };
        }
        Case::generate(system, space, seed, index)
    }

    /// A branch of a corpus entry picked by energy, at one of its branch
    /// points; `None` when no attempt gives a valid, fair scenario.
    fn branched<S: System>(
        system: &Arc<S>,
        space: &Space,
        seed: u64,
        index: u64,
        corpus: &[Entry],
        runner: &mut TestRunner,
    ) -> Option<Case> {
        for _ in 0..MUTATION_ATTEMPTS {
            let parent = pick(corpus, |e| e.energy, runner);
            let Some(point) = point(parent, runner) else { continue };
            let Some(mut scenario) = branch(system, space, &parent.case.scenario, point, runner) else { continue };
            if scenario.validate(&**system).is_err() || fair(&**system, &scenario).is_err() {
                continue;
            }
            scenario.name = name(seed, index);
            scenario.description = format!(
                "Generated by tandem explore: case {} branched at {} ms.",
                parent.case.number(),
                point.at.as_millis()
            );
            let origin = Origin::Branch { parent: parent.case.index, at: point.at };
            return Some(Case { index, scenario, origin, redrawn: 0 });
        }
        None
    }

    /// The case's number as users see it: its index plus one.
    pub fn number(&self) -> u64 {
        self.index + 1
    }

    /// The simulation seed the case runs with.
    pub fn sim_seed(&self) -> u64 {
        self.scenario.seed
    }
}

/// The name of case `index`: `explore-s{seed}-c{number}`.
fn name(seed: u64, index: u64) -> String {
    format!("explore-s{seed}-c{}", index + 1)
}

/// When a branch of `entry` starts: one of its points, drawn in proportion
/// to its weight (uniformly when none weighs anything).
fn point(entry: &Entry, runner: &mut TestRunner) -> Option<Reached> {
    let total: u64 = entry.points.iter().map(|p| p.weight).sum();
    if total == 0 {
        return entry.points.get(draw(runner, 0..entry.points.len().max(1))).map(|p| p.reached);
    }
    let mut at = draw(runner, 0..total);
    for p in &entry.points {
        if at < p.weight {
            return Some(p.reached);
        }
        at -= p.weight;
    }
    unreachable!("the draw lies within the sum of the weights")
}

/// A corpus entry drawn in proportion to `weight` (not empty; every weight
/// at least 1).
fn pick<'a>(corpus: &'a [Entry], weight: impl Fn(&Entry) -> u64, runner: &mut TestRunner) -> &'a Entry {
    let mut point = draw(runner, 0..corpus.iter().map(&weight).sum::<u64>());
    for entry in corpus {
        if point < weight(entry) {
            return entry;
        }
        point -= weight(entry);
    }
    unreachable!("the point lies within the sum of the weights")
}

/// The independent random streams of a case.
#[derive(Clone, Copy)]
enum Stream {
    /// The fresh draw.
    Fresh = 0,
    /// The guided choices: fresh or mutant, which parent, which mutations.
    Guide = 1,
    /// The first of the redraws of a fresh case its system found unfair
    /// (redraw `k` uses stream `Redraw + k`).
    Redraw = 2,
}

/// A test runner on the ChaCha RNG of `stream` of case `index`.
fn runner(seed: u64, index: u64, stream: u64) -> TestRunner {
    TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &rng_seed(seed, index, stream)),
    )
}

/// The 32-byte ChaCha seed of `stream` of case `index`.
fn rng_seed(seed: u64, index: u64, stream: u64) -> [u8; 32] {
    let mut bytes = [0u8; 32];
    for (k, chunk) in bytes.chunks_exact_mut(8).enumerate() {
        let word = stream * 4 + k as u64;
        let input = [seed.to_le_bytes(), index.to_le_bytes(), word.to_le_bytes()].concat();
        chunk.copy_from_slice(&xxhash_rust::xxh3::xxh3_64(&input).to_le_bytes());
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_case_depends_only_on_the_seed_and_its_index() {
        let (space, echo) = (Space::default(), Arc::new(crate::explore::testing::Echo));
        assert_eq!(Case::generate(&echo, &space, 1, 7), Case::generate(&echo, &space, 1, 7));
        assert_ne!(Case::generate(&echo, &space, 1, 7).scenario, Case::generate(&echo, &space, 1, 8).scenario);
        assert_ne!(Case::generate(&echo, &space, 2, 7).scenario, Case::generate(&echo, &space, 1, 7).scenario);
        assert_eq!(Case::generate(&echo, &space, 3, 0).scenario.name, "explore-s3-c1");
    }

    #[test]
    fn generated_scenarios_are_valid_fair_and_round_trip() {
        let echo = Arc::new(crate::explore::testing::Echo);
        for nodes in [1..=1, 2..=5, 6..=9] {
            let space = Space { nodes, ..Space::default() };
            for index in 0..60 {
                let s = Case::generate(&echo, &space, 5, index).scenario;
                assert_eq!(Scenario::parse(&s.to_toml(), "explore.toml", &*echo).unwrap(), s);
            }
        }
    }

    /// A corpus entry of `case` worth `gain`, with one branch point at 3 s.
    fn entry(case: Case, gain: u64) -> Entry {
        let reached = Reached { at: Duration::from_secs(3), node: Some(1) };
        let points = vec![crate::explore::guide::Point { id: 0, goal: false, reached, weight: 1 }];
        Entry { case, gain, points, tried: 0, yielded: 0, energy: gain }
    }

    #[test]
    fn branched_cases_keep_their_parents_prefix_and_are_pure() {
        let (space, echo) = (Space::default(), Arc::new(crate::explore::testing::Echo));
        let corpus: Vec<Entry> = (0..8).map(|index| entry(Case::generate(&echo, &space, 4, index), 1)).collect();
        let mut branches = 0;
        for index in 64..128 {
            let case = Case::guided(&echo, &space, 4, index, Guide::Branch, &corpus);
            assert_eq!(case, Case::guided(&echo, &space, 4, index, Guide::Branch, &corpus));
            assert_eq!(Scenario::parse(&case.scenario.to_toml(), "explore.toml", &*echo).unwrap(), case.scenario);
            if let Origin::Branch { parent, at } = case.origin {
                branches += 1;
                assert_eq!(at, Duration::from_secs(3));
                let parent = &corpus[parent as usize].case.scenario;
                let kept = |s: &Scenario| {
                    s.steps
                        .iter()
                        .take_while(|st| !matches!(st.timing, tandem::scenario::Timing::At(t) if t > at))
                        .count()
                };
                assert_eq!(case.scenario.steps[..kept(parent)], parent.steps[..kept(parent)]);
                assert_eq!(kept(&case.scenario), kept(parent));
                assert_eq!(case.scenario.seed, parent.seed, "the same simulation seed replays the prefix");
            }
        }
        assert!((36..=60).contains(&branches), "about three cases in four branch: {branches}");
    }

    #[test]
    fn guided_cases_mutate_the_corpus_purely_and_stay_valid() {
        let (space, echo) = (Space::default(), Arc::new(crate::explore::testing::Echo));
        let corpus: Vec<Entry> =
            (0..8).map(|index| entry(Case::generate(&echo, &space, 4, index), index + 1)).collect();
        let mut used = std::collections::BTreeSet::new();
        for index in 64..160 {
            let case = Case::guided(&echo, &space, 4, index, Guide::Coverage, &corpus);
            assert_eq!(case, Case::guided(&echo, &space, 4, index, Guide::Coverage, &corpus));
            assert_eq!(Scenario::parse(&case.scenario.to_toml(), "explore.toml", &*echo).unwrap(), case.scenario);
            match &case.origin {
                Origin::Fresh => assert_eq!(case, Case::generate(&echo, &space, 4, index)),
                Origin::Mutant { parent, mutations } => {
                    assert!(*parent < 8);
                    used.extend(mutations.iter().copied());
                }
                Origin::Branch { .. } => panic!("the coverage guide never branches"),
            }
            assert_eq!(
                Case::guided(&echo, &space, 4, index, Guide::Swarm, &corpus),
                Case::generate(&echo, &space, 4, index)
            );
        }
        assert_eq!(used.len(), Mutation::ALL.len(), "every mutation applies somewhere: {used:?}");
    }
}
