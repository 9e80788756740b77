//! `tandem confirm`: the same scenario over real MsQuic and in simulation,
//! and whether they agree.

use std::fmt;
use std::time::Duration;

use serde::Serialize;
use tandem::execute::Outcome;
use tandem::history::History;
use tandem::scenario::Scenario;
use tandem::system::System;

use tandem_sim::report::{format_wall, Verdict};

/// Each node's [`System::Outcome`], by index.
pub fn outcomes<S: System>(system: &S, history: &History<S>) -> Vec<S::Outcome> {
    (0..history.nodes().len() as u32).map(|node| system.outcome(history, node)).collect()
}

/// The verdict of `tandem confirm` for one scenario.
#[derive(Debug, Clone, Serialize)]
pub struct Confirmation {
    /// `CONFIRMED` or `DIVERGED`.
    pub result: &'static str,
    /// The scenario's name.
    pub scenario: String,
    /// The simulated run's verdict.
    pub sim: Verdict,
    /// The real run's verdict.
    pub real: Verdict,
    /// Wall-clock milliseconds for both runs.
    pub wall_ms: u64,
    /// The failure, or the first difference between the backends.
    pub detail: Option<String>,
    /// Real runs.
    pub runs: usize,
    /// Real runs whose verdict was the simulation's (the same failing
    /// property, or both passing): the fidelity of a found failure.
    pub agreed: usize,
    /// The simulated and the real run's pictures, when asked for.
    #[serde(skip)]
    pub pictures: Vec<tandem::picture::Picture>,
}

/// Compares a simulated run of `scenario` with one or more real runs: the
/// same verdict (the same failing property), and every node with the same
/// outcome. The verdict is the first real run's, or the first that
/// diverges; `agreed` counts the real runs with the simulation's verdict.
///
/// # Panics
///
/// When `reals` is empty.
pub fn compare<S: System>(
    system: &S,
    scenario: &Scenario,
    sim: (&Outcome, &History<S>),
    reals: &[(&Outcome, &History<S>)],
    wall: Duration,
) -> Confirmation {
    let code = |o: &Outcome| o.failure.as_ref().map(|f| f.code.clone());
    let agreed = reals.iter().filter(|real| code(real.0) == code(sim.0)).count();
    let sim_nodes = outcomes(system, sim.1);
    let json = |o: &S::Outcome| serde_json::to_string(o).expect("outcomes serialise");
    let difference = |real: &(&Outcome, &History<S>)| {
        if code(sim.0) != code(real.0) {
            let failure = real.0.failure.as_ref().or(sim.0.failure.as_ref()).expect("one of them failed");
            return Some(failure.to_string());
        }
        sim_nodes.iter().zip(&outcomes(system, real.1)).enumerate().find(|(_, (s, r))| s != r).map(|(node, (s, r))| {
            format!("node {node} ended with {} in simulation but {} over MsQuic", json(s), json(r))
        })
    };
    let differences: Vec<_> = reals.iter().map(difference).collect();
    let shown = differences.iter().position(Option::is_some).unwrap_or(0);
    let real = reals.get(shown).expect("at least one real run");
    let failure = real.0.failure.as_ref().or(sim.0.failure.as_ref()).map(|f| f.to_string());
    Confirmation {
        result: if differences[shown].is_none() { "CONFIRMED" } else { "DIVERGED" },
        scenario: scenario.name.clone(),
        sim: Verdict::of(sim.0.passed()),
        real: Verdict::of(real.0.passed()),
        wall_ms: wall.as_millis() as u64,
        detail: differences[shown].clone().or(failure),
        runs: reals.len(),
        agreed,
        pictures: Vec::new(),
    }
}

impl Confirmation {
    /// Whether both backends agree and passed.
    pub fn passed(&self) -> bool {
        self.result == "CONFIRMED" && self.sim == Verdict::Pass && self.real == Verdict::Pass
    }
}

impl fmt::Display for Confirmation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} sim={} real={} wall={}",
            self.result,
            self.scenario,
            self.sim,
            self.real,
            format_wall(Duration::from_millis(self.wall_ms))
        )?;
        if self.runs > 1 {
            write!(f, " agreed={}/{}", self.agreed, self.runs)?;
        }
        if let Some(detail) = &self.detail {
            write!(f, " {detail}")?;
        }
        Ok(())
    }
}
