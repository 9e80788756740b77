//! One case of an exploration: a scenario drawn from the [`Space`] with an
//! RNG seeded by the exploration's seed and the case's index only, so a case
//! is the same whichever thread, shard or machine runs it.

use std::sync::Arc;

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use tandem::scenario::Scenario;
use tandem::system::System;

use super::rules::fair;
use super::strategy::{scenario, Space};

/// A generated case.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    /// Its index in the exploration, from 0.
    pub index: u64,
    /// Its scenario, named `explore-s{seed}-c{number}`, with the case's
    /// simulation seed as `seed`.
    pub scenario: Scenario,
}

impl Case {
    /// Draws case `index` of the exploration of `system` with seed `seed`.
    ///
    /// # Panics
    ///
    /// When the drawn scenario is invalid or unfair: a generator bug.
    pub fn generate<S: System>(system: &Arc<S>, space: &Space, seed: u64, index: u64) -> Case {
        let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &rng_seed(seed, index));
        let mut runner = TestRunner::new_with_rng(Config::default(), rng);
        let mut drawn = scenario(system, space).new_tree(&mut runner).expect("the strategies never reject").current();
        drawn.name = format!("explore-s{seed}-c{}", index + 1);
        drawn.validate(&**system).unwrap_or_else(|e| panic!("generated an invalid scenario: {e}\n{}", drawn.to_toml()));
        fair(&**system, &drawn).unwrap_or_else(|e| panic!("generated an unfair scenario: {e}\n{}", drawn.to_toml()));
        Case { index, scenario: drawn }
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

/// The 32-byte ChaCha seed of case `index`.
fn rng_seed(seed: u64, index: u64) -> [u8; 32] {
    let mut bytes = [0u8; 32];
    for (k, chunk) in bytes.chunks_exact_mut(8).enumerate() {
        let input = [seed.to_le_bytes(), index.to_le_bytes(), (k as u64).to_le_bytes()].concat();
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
}
