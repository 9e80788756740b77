//! [`Bundle`]: a system as the `tandem` command sees it, with its type
//! erased, so that one binary can carry several systems
//! ([`main_with`](crate::main_with)). Every `System + Clone` is one.

use std::sync::Arc;

use serde::Serialize;
use tandem::engine::execute::Outcome;
use tandem::engine::picture::Picture;
use tandem::history::Digest;
use tandem::property::Violation;
use tandem::scenario::{Scenario, Syntax};
use tandem::system::{Capabilities, Knob, PlantedBug, System, Tolerance};

use tandem_sim::explore::robust::Robustness;
use tandem_sim::explore::runner::{CaseRun, Exploration, Plan};
use tandem_sim::explore::shrink::{Options, Shrunk};
use tandem_sim::Backend;

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
    /// The timeline picture, when asked for.
    pub picture: Option<Picture>,
}

/// What a simulated run keeps besides its outcome and digest.
#[derive(Debug, Clone, Copy, Default)]
pub struct Keep {
    /// The history as JSON lines (`--trace`).
    pub trace: bool,
    /// The timeline picture (`--html`).
    pub picture: bool,
}

/// The title of a run's picture: `scenario seed=N (backend)`.
pub fn title(scenario: &Scenario, seed: u64, backend: &str) -> String {
    format!("{} seed={seed} ({backend})", scenario.name)
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
    /// The timing it tolerates (exploration's latency and settle).
    pub tolerance: Tolerance,
    /// The roles faults may aim at (`crash = { role = "NAME" }`); left out
    /// of the JSON when none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<&'static str>,
    /// The workloads `explore --workload` picks from, the default first
    /// (none: one, unnamed).
    pub workloads: Vec<&'static str>,
    /// Whether explored scenarios end with its final phase (`[[final]]`).
    pub final_phase: bool,
}

/// An exploration and its first failure, shrunk ([`Bundle::hunt`]).
#[derive(Debug)]
pub struct Hunt {
    /// The exploration.
    pub exploration: Exploration,
    /// Its first failure, shrunk, if a case failed.
    pub shrunk: Option<Shrunk>,
}

impl Hunt {
    /// The case that failed, if one did: the exploration's last.
    pub fn failing(&self) -> Option<&CaseRun> {
        self.exploration.runs.last().filter(|run| run.failure.is_some())
    }
}

/// A system the `tandem` command can run, type-erased.
pub trait Bundle: Send + Sync {
    /// Its scenario vocabulary, for the parser.
    fn syntax(&self) -> &dyn Syntax;
    /// What `tandem systems` says of it.
    fn info(&self) -> SystemInfo;
    /// Runs `scenario` on `backend` with `seed`, keeping what `keep` asks for.
    fn simulate(&self, backend: Backend, scenario: &Scenario, seed: u64, keep: Keep) -> Finished;
    /// Runs an exploration's cases (see [`runner::explore`](tandem_sim::explore::runner::explore)).
    fn explore(&self, plan: &Plan, done: &(dyn Fn(&CaseRun) + Sync)) -> Exploration;
    /// Shrinks a failing scenario within `options`.
    fn shrink(&self, scenario: &Scenario, failure: &Violation, options: &Options) -> Shrunk;
    /// Runs `scenario` on `backend` with `seed`, then `runs` perturbed
    /// runs (see [`robust`](tandem_sim::explore::robust)): the run's
    /// failure, if any, and how many perturbed runs ended the same way.
    fn robustness(
        &self,
        backend: Backend,
        scenario: &Scenario,
        seed: u64,
        runs: u32,
    ) -> (Option<Violation>, Robustness);
    /// Explores `plan` and shrinks its first failure within `options`:
    /// what `tandem explore` and the bug benchmark run. `done` follows each
    /// case; `shrinking` is told when the failing case's shrinking begins.
    fn hunt(
        &self,
        plan: &Plan,
        done: &(dyn Fn(&CaseRun) + Sync),
        shrinking: &dyn Fn(&CaseRun),
        options: &Options,
    ) -> Hunt {
        let exploration = self.explore(plan, done);
        let shrunk = exploration.runs.last().and_then(|failing| {
            let failure = failing.failure.as_ref()?;
            shrinking(failing);
            Some(self.shrink(&failing.case.scenario, failure, options))
        });
        Hunt { exploration, shrunk }
    }

    /// Runs `scenario` over MsQuic and on `backend` with `seed`, and
    /// compares; an error when the real cluster cannot run (or this build
    /// has no MsQuic). `runs` real runs (at least one) measure how often the
    /// real stack agrees; with `picture`, the confirmation carries the
    /// simulated and the first real run's pictures.
    fn confirm(
        &self,
        backend: Backend,
        scenario: &Scenario,
        seed: u64,
        runs: usize,
        picture: bool,
    ) -> Result<crate::compare::Confirmation, String>;
}

impl<S: System> Bundle for S {
    fn syntax(&self) -> &dyn Syntax {
        self
    }

    fn info(&self) -> SystemInfo {
        let properties = self
            .properties()
            .iter()
            .map(|p| PropertyInfo { code: p.code, name: p.name, kind: p.kind_name() })
            .collect();
        SystemInfo {
            name: self.name(),
            description: self.description(),
            operations: Syntax::operations(self),
            conditions: Syntax::conditions(self),
            capabilities: self.capabilities(),
            properties,
            planted_bugs: self.planted_bugs(),
            knobs: self.knobs(),
            roles: self.roles(),
            tolerance: self.tolerance(),
            workloads: self.workloads(),
            final_phase: !self.final_operations(2).is_empty(),
        }
    }

    fn simulate(&self, backend: Backend, scenario: &Scenario, seed: u64, keep: Keep) -> Finished {
        let run = backend.run(Arc::new(self.clone()), scenario, seed);
        let trace = keep.trace.then(|| run.history.to_jsonl());
        let picture = keep
            .picture
            .then(|| Picture::of(self, scenario, &run.history, &run.outcome, title(scenario, seed, "simulated")));
        Finished { seed, digest: run.digest(), outcome: run.outcome, trace, picture }
    }

    fn explore(&self, plan: &Plan, done: &(dyn Fn(&CaseRun) + Sync)) -> Exploration {
        tandem_sim::explore::runner::explore(&Arc::new(self.clone()), plan, done)
    }

    fn shrink(&self, scenario: &Scenario, failure: &Violation, options: &Options) -> Shrunk {
        tandem_sim::explore::shrink::shrink(Arc::new(self.clone()), scenario, failure, options)
    }

    fn robustness(
        &self,
        backend: Backend,
        scenario: &Scenario,
        seed: u64,
        runs: u32,
    ) -> (Option<Violation>, Robustness) {
        tandem_sim::explore::robust::verdict_and_robustness(&Arc::new(self.clone()), backend, scenario, seed, runs)
    }

    #[cfg(feature = "msquic")]
    fn confirm(
        &self,
        backend: Backend,
        scenario: &Scenario,
        seed: u64,
        runs: usize,
        picture: bool,
    ) -> Result<crate::compare::Confirmation, String> {
        // Wall-clock `Instant`: confirm runs on the real network, outside any simulation.
        let started = std::time::Instant::now();
        let system = Arc::new(self.clone());
        let sim = backend.run(system.clone(), scenario, seed);
        let mut reals = Vec::new();
        for run in 1..=runs.max(1) {
            tandem_sim::logging::real_run_started(&format!("{}, real run {run} of {}", scenario.name, runs.max(1)));
            reals.push(tandem_msquic::run_real(system.clone(), scenario)?);
        }
        let wall = started.elapsed();
        let sim_side = (&sim.outcome, &sim.history);
        let real_sides: Vec<_> = reals.iter().map(|real| (&real.outcome, &real.history)).collect();
        let mut confirmation = crate::compare::compare(self, scenario, sim_side, &real_sides, wall);
        if picture {
            let real = &reals[0];
            confirmation.pictures = vec![
                Picture::of(self, scenario, &sim.history, &sim.outcome, title(scenario, seed, "simulated")),
                Picture::of(
                    self,
                    scenario,
                    &real.history,
                    &real.outcome,
                    format!("{} (MsQuic, loopback)", scenario.name),
                ),
            ];
        }
        Ok(confirmation)
    }

    #[cfg(not(feature = "msquic"))]
    fn confirm(
        &self,
        _: Backend,
        _: &Scenario,
        _: u64,
        _: usize,
        _: bool,
    ) -> Result<crate::compare::Confirmation, String> {
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
