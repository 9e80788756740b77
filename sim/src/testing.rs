//! Scenarios in `cargo test`.
//!
//! ```no_run
//! # fn demo<S: tandem::System>(my_system: S) {
//! // In a #[test] function:
//! tandem_sim::testing::check_file(my_system, "scenarios/hot_reload.toml");
//! # }
//! ```
//!
//! `TANDEM_SEED=N` overrides the scenario's seed and `TANDEM_SEEDS=K` runs K
//! consecutive seeds. A failure writes a reproducer and panics with the
//! result line and the `tandem replay` command.

use std::path::{Path, PathBuf};
use std::sync::Arc;
// Wall-clock `Instant`: the wall= figure of a result line, measured outside the simulation.
use std::time::Instant;

use tandem::scenario::Scenario;
use tandem::system::System;

use crate::report::{write_reproducer, RunReport, FAILURES_DIR};
use crate::run::run_scenario;

fn env_u64(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(value.parse().unwrap_or_else(|_| panic!("{name}={value} is not a number")))
}

/// The seeds to run: `TANDEM_SEED` (else `default`) and `TANDEM_SEEDS` more.
pub fn seeds(default: u64) -> std::ops::Range<u64> {
    let first = env_u64("TANDEM_SEED").unwrap_or(default);
    first..first + env_u64("TANDEM_SEEDS").unwrap_or(1).max(1)
}

/// Runs `scenario` of `system` for the chosen seeds; panics on the first
/// failure with the replay command.
pub fn check<S: System>(system: S, scenario: &Scenario) {
    scenario.validate(&system).unwrap_or_else(|e| panic!("invalid scenario {}: {e}", scenario.name));
    let system = Arc::new(system);
    for seed in seeds(scenario.seed) {
        // Wall time for the report, outside the simulation.
        let started = Instant::now();
        let run = run_scenario(system.clone(), scenario, seed);
        let mut report = RunReport::new(scenario, seed, &run.outcome, run.digest(), started.elapsed());
        if !report.passed() {
            let dir = PathBuf::from(FAILURES_DIR);
            report.reproduce = write_reproducer(&dir, scenario, seed).ok();
            panic!("{report}");
        }
    }
}

/// Loads a scenario file of `system` and [`check`]s it.
pub fn check_file<S: System>(system: S, path: impl AsRef<Path>) {
    let scenario = Scenario::from_file(path.as_ref(), &system).unwrap_or_else(|e| panic!("{e}"));
    check(system, &scenario);
}
