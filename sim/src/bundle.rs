//! [`Bundle`]: a system as the `tandem` command sees it, with its type
//! erased, so that one binary can carry several systems
//! ([`cli::main_with`](crate::cli::main_with)). Every `System + Clone` is one.

use std::sync::Arc;

use serde::Serialize;
use tandem::execute::Outcome;
use tandem::history::Digest;
use tandem::property::Violation;
use tandem::scenario::{Scenario, Syntax};
use tandem::system::{Capabilities, Knob, PlantedBug, System};

use crate::explore::runner::{CaseRun, Exploration, Plan};
use crate::explore::shrink::Shrunk;
use crate::run::run_scenario;

/// A finished simulated run, whatever its system.
#[derive(Debug, Clone)]
pub struct Finished {
    /// The seed it ran with.
    pub seed: u64,
    /// Pass or the first failure, and the coverage reached.
    pub outcome: Outcome,
    /// The digest of its history.
    pub digest: Digest,
    /// The history as JSON lines, when asked for.
    pub trace: Option<String>,
}

/// A property, as `tandem systems` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct PropertyInfo {
    /// Its code.
    pub code: &'static str,
    /// What it checks.
    pub name: &'static str,
    /// `always`, `eventually` or `sometimes`.
    pub kind: &'static str,
}

/// What `tandem systems` says of a system.
#[derive(Debug, Clone, Serialize)]
pub struct SystemInfo {
    /// Its name.
    pub name: &'static str,
    /// One line about it.
    pub description: &'static str,
    /// Its operation keys.
    pub operations: &'static [&'static str],
    /// Its condition keys.
    pub conditions: &'static [&'static str],
    /// Its optional abilities.
    pub capabilities: Capabilities,
    /// Its properties.
    pub properties: Vec<PropertyInfo>,
    /// Its planted bugs.
    pub planted_bugs: Vec<PlantedBug>,
    /// Its knobs.
    pub knobs: Vec<Knob>,
}

/// A system the `tandem` command can run, type-erased.
pub trait Bundle: Send + Sync {
    /// Its scenario vocabulary, for the parser.
    fn syntax(&self) -> &dyn Syntax;
    /// What `tandem systems` says of it.
    fn info(&self) -> SystemInfo;
    /// Runs `scenario` in the simulation with `seed`; `trace` keeps the history as JSON lines.
    fn simulate(&self, scenario: &Scenario, seed: u64, trace: bool) -> Finished;
    /// Runs an exploration's cases (see [`runner::explore`](crate::explore::runner::explore)).
    fn explore(&self, plan: &Plan, done: &(dyn Fn(&CaseRun) + Sync)) -> Exploration;
    /// Shrinks a failing scenario.
    fn shrink(&self, scenario: &Scenario, failure: &Violation, budget: usize) -> Shrunk;
    /// Runs `scenario` over MsQuic and in the simulation with `seed`, and
    /// compares; an error when the real cluster cannot run (or this build
    /// has no MsQuic).
    fn confirm(&self, scenario: &Scenario, seed: u64) -> Result<crate::confirm::Confirmation, String>;
}

impl<S: System> Bundle for S {
    fn syntax(&self) -> &dyn Syntax {
        self
    }

    fn info(&self) -> SystemInfo {
        let properties =
            self.properties().iter().map(|p| PropertyInfo { code: p.code, name: p.name, kind: p.kind_name() }).collect();
        SystemInfo {
            name: self.name(),
            description: self.description(),
            operations: Syntax::operations(self),
            conditions: Syntax::conditions(self),
            capabilities: self.capabilities(),
            properties,
            planted_bugs: self.planted_bugs(),
            knobs: self.knobs(),
        }
    }

    fn simulate(&self, scenario: &Scenario, seed: u64, trace: bool) -> Finished {
        let run = run_scenario(Arc::new(self.clone()), scenario, seed);
        let trace = trace.then(|| run.history.to_jsonl());
        Finished { seed, digest: run.digest(), outcome: run.outcome, trace }
    }

    fn explore(&self, plan: &Plan, done: &(dyn Fn(&CaseRun) + Sync)) -> Exploration {
        crate::explore::runner::explore(&Arc::new(self.clone()), plan, done)
    }

    fn shrink(&self, scenario: &Scenario, failure: &Violation, budget: usize) -> Shrunk {
        crate::explore::shrink::shrink(Arc::new(self.clone()), scenario, failure, budget)
    }

    #[cfg(feature = "msquic")]
    fn confirm(&self, scenario: &Scenario, seed: u64) -> Result<crate::confirm::Confirmation, String> {
        // Wall time: confirm runs on the real network.
        let started = std::time::Instant::now();
        let system = Arc::new(self.clone());
        let real = tandem_msquic::run_real(system.clone(), scenario)?;
        let sim = run_scenario(system, scenario, seed);
        let wall = started.elapsed();
        Ok(crate::confirm::compare(self, scenario, (&sim.outcome, &sim.history), (&real.outcome, &real.history), wall))
    }

    #[cfg(not(feature = "msquic"))]
    fn confirm(&self, _: &Scenario, _: u64) -> Result<crate::confirm::Confirmation, String> {
        Err("this tandem was built without MsQuic (feature `msquic`)".into())
    }
}

/// The system `scenario` names among `systems`, or the first.
///
/// # Panics
///
/// When `systems` is empty or the scenario names a system not among them
/// (the parser rejects those).
pub fn system_of<'a>(systems: &[&'a dyn Bundle], scenario: &Scenario) -> &'a dyn Bundle {
    match &scenario.system {
        Some(name) => *systems.iter().find(|s| s.syntax().system() == name).expect("the parser checked the system"),
        None => *systems.first().expect("at least one system"),
    }
}
