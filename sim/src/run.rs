//! Runs a scenario in the simulation: the deterministic backend of `tandem run`.

use std::sync::Arc;

use tandem::execute::{execute, Outcome};
use tandem::history::{Digest, History};
use tandem::host::mutation_of;
use tandem::scenario::Scenario;
use tandem::system::System;

use crate::cluster::{SimCluster, SimOptions};

/// A finished simulated run.
#[derive(Debug, Clone)]
pub struct SimRun<S: System> {
    /// The seed it ran with.
    pub seed: u64,
    /// Pass, or the first failure, and the coverage reached.
    pub outcome: Outcome,
    /// Everything observed.
    pub history: History<S>,
}

impl<S: System> SimRun<S> {
    /// The digest of the run's canonical history.
    pub fn digest(&self) -> Digest {
        self.history.digest()
    }
}

/// The simulation options a scenario asks for.
pub fn options_for<S: System>(system: &S, scenario: &Scenario, seed: u64) -> SimOptions {
    SimOptions {
        seeds: scenario.seeds.clone(),
        latency: (scenario.network.latency.min, scenario.network.latency.max),
        loss: scenario.network.loss,
        mutation: mutation_of(system, scenario),
        knobs: scenario.knobs.clone(),
        ..SimOptions::new(scenario.nodes, seed)
    }
}

/// Runs `scenario` with `seed`. A pure function of the system, the scenario,
/// the seed and the build.
///
/// # Panics
///
/// When the scenario is not valid for the system (parse it with
/// [`Scenario::parse`] or check it with [`Scenario::validate`] first).
pub fn run_scenario<S: System>(system: Arc<S>, scenario: &Scenario, seed: u64) -> SimRun<S> {
    let options = options_for(&*system, scenario, seed);
    run_with(system, scenario, options)
}

/// Runs `scenario` with explicit simulation options.
pub fn run_with<S: System>(system: Arc<S>, scenario: &Scenario, options: SimOptions) -> SimRun<S> {
    let seed = options.seed;
    let mut cluster = SimCluster::new(system, options);
    let outcome = execute(scenario, &mut cluster);
    let history = cluster.into_history();
    SimRun { seed, outcome, history }
}
