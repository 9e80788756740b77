//! Scenarios in `cargo test`.
//!
//! ```no_run
//! #[test]
//! fn hot_reload() {
//!     tandem_sim::testing::check_file("scenarios/hot_reload.toml");
//! }
//! ```
//!
//! `TANDEM_SEED=N` overrides the scenario's seed and `TANDEM_SEEDS=K` runs K
//! consecutive seeds. A failure writes a reproducer and panics with the
//! result line and the `tandem replay` command.

use std::path::{Path, PathBuf};
use std::time::Instant;

use tandem::scenario::Scenario;

use crate::cli::FAILURES_DIR;
use crate::report::{write_reproducer, RunReport};
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

/// Runs `scenario` for the chosen seeds; panics on the first failure with
/// the replay command.
pub fn check(scenario: &Scenario) {
    scenario.validate().unwrap_or_else(|e| panic!("invalid scenario {}: {e}", scenario.name));
    for seed in seeds(scenario.seed) {
        // Wall time for the report, outside the simulation.
        let started = Instant::now();
        let run = run_scenario(scenario, seed);
        let mut report = RunReport::new(scenario, &run, started.elapsed());
        if !report.passed() {
            let dir = PathBuf::from(FAILURES_DIR);
            report.reproduce = write_reproducer(&dir, scenario, seed).ok();
            panic!("{report}");
        }
    }
}

/// Loads a scenario file and [`check`]s it.
pub fn check_file(path: impl AsRef<Path>) {
    let scenario = Scenario::from_file(path.as_ref()).unwrap_or_else(|e| panic!("{e}"));
    check(&scenario);
}
