//! Runs a scenario in the simulation: the deterministic backend of `tandem run`.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

use tandem::engine::cluster::Setup;
use tandem::engine::execute::{execute, panicked, Outcome, Run};
use tandem::history::History;
use tandem::scenario::Scenario;
use tandem::system::System;

use crate::events::EventCluster;
use crate::options::{Backend, SimOptions};
use crate::turmoil::TurmoilCluster;

/// The simulation options a scenario asks for.
pub fn options_for<S: System>(system: &S, scenario: &Scenario, seed: u64) -> SimOptions {
    SimOptions { stagger: scenario.stagger, ..SimOptions::of(Setup::of(system, scenario, seed)) }
}

/// Runs `scenario` with `seed` on the default backend ([`Backend::Events`]).
/// A pure function of the system, the scenario, the seed and the build.
///
/// # Panics
///
/// When the scenario is not valid for the system (parse it with
/// [`Scenario::parse`] or check it with [`Scenario::validate`] first).
pub fn run_scenario<S: System>(system: Arc<S>, scenario: &Scenario, seed: u64) -> Run<S> {
    Backend::default().run(system, scenario, seed)
}

impl Backend {
    /// Runs `scenario` with `seed` on this backend: [`run_scenario`] on
    /// another simulator.
    pub fn run<S: System>(self, system: Arc<S>, scenario: &Scenario, seed: u64) -> Run<S> {
        let options = SimOptions { backend: self, ..options_for(&*system, scenario, seed) };
        run_with(system, scenario, options)
    }
}

/// Runs `scenario` with explicit simulation options, on a fresh thread of
/// its own (see [`determinism`](crate::determinism)). A panic in the run
/// (a node's, turmoil's, the harness's) is the run's failure
/// ([`PANIC`](tandem::engine::execute::PANIC)), never the caller's.
pub fn run_with<S: System>(system: Arc<S>, scenario: &Scenario, options: SimOptions) -> Run<S> {
    std::thread::scope(|scope| {
        let run = std::thread::Builder::new()
            .name("tandem-sim".into())
            .stack_size(RUN_STACK)
            .spawn_scoped(scope, || run_here(system, scenario, options))
            .expect("the OS starts a thread for the run");
        run.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// The stack of a run's thread: as large as a main thread's.
const RUN_STACK: usize = 8 << 20;

/// [`run_with`] on the calling thread.
fn run_here<S: System>(system: Arc<S>, scenario: &Scenario, options: SimOptions) -> Run<S> {
    let seed = options.setup.seed;
    let run = catch_unwind(AssertUnwindSafe(|| {
        if options.backend == Backend::Turmoil {
            let mut cluster = TurmoilCluster::new(system, options);
            let outcome = execute(scenario, &mut cluster);
            return (outcome, cluster.into_history());
        }
        let mut cluster = EventCluster::new(system, options);
        let outcome = execute(scenario, &mut cluster);
        (outcome, cluster.into_history())
    }));
    match run {
        Ok((outcome, history)) => Run { seed, outcome, history },
        // Only the boot or the end of the run can get here: `execute` catches the rest.
        Err(panic) => {
            let failure = Some(panicked(&*panic, Duration::ZERO));
            let outcome = Outcome { failure, end: Duration::ZERO, coverage: Vec::new(), signature: Default::default() };
            Run { seed, outcome, history: History::new(&[], &scenario.network) }
        }
    }
}
