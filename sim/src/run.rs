//! Runs a scenario in the simulation: the deterministic backend of `tandem run`.

use tandem::execute::{execute, Outcome};
use tandem::record::Record;
use tandem::scenario::Scenario;
use tandem::trace::Digest;

use crate::cluster::{SimCluster, SimOptions};

/// A finished simulated run.
#[derive(Debug, Clone)]
pub struct SimRun {
    /// The seed it ran with.
    pub seed: u64,
    /// Pass, or the first failure.
    pub outcome: Outcome,
    /// Everything observed, with the trace.
    pub record: Record,
}

impl SimRun {
    /// The digest of the run's canonical trace.
    pub fn digest(&self) -> Digest {
        self.record.trace.digest()
    }
}

/// The simulation options a scenario asks for.
pub fn options_for(scenario: &Scenario, seed: u64) -> SimOptions {
    SimOptions {
        seeds: scenario.seeds.clone(),
        latency: (scenario.network.latency.min, scenario.network.latency.max),
        loss: scenario.network.loss,
        mutation: scenario.mutation,
        ..SimOptions::new(scenario.nodes, seed)
    }
}

/// Runs `scenario` with `seed`. A pure function of the scenario, the seed and
/// the build.
///
/// ```
/// use tandem::scenario::Scenario;
/// let scenario = Scenario::parse("nodes = 2\nduration = \"2s\"\nsettle = \"1s\"\n", "two.toml").unwrap();
/// let run = tandem_sim::run_scenario(&scenario, 1);
/// assert!(run.outcome.passed());
/// assert_eq!(run.digest(), tandem_sim::run_scenario(&scenario, 1).digest());
/// ```
pub fn run_scenario(scenario: &Scenario, seed: u64) -> SimRun {
    run_with(scenario, options_for(scenario, seed))
}

/// Runs `scenario` with explicit simulation options.
pub fn run_with(scenario: &Scenario, options: SimOptions) -> SimRun {
    let seed = options.seed;
    let mut cluster = SimCluster::new(options);
    let outcome = execute(scenario, &mut cluster);
    let record = cluster.into_record();
    SimRun { seed, outcome, record }
}
