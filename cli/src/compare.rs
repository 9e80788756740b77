//! `tandem confirm`: the same scenario over real MsQuic and in simulation,
//! and whether they agree.

use std::fmt;
use std::time::Duration;

use serde::Serialize;
use tandem::engine::execute::Outcome;
use tandem::history::History;
use tandem::scenario::Scenario;
use tandem::system::System;

use tandem_sim::explore::robust::Robustness;
use tandem_sim::report::{format_wall, Verdict};

/// Each node's [`Oracle::Outcome`](tandem::Oracle::Outcome), by index.
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
    /// The failure, or what differed between the backends, as printed.
    pub detail: Option<String>,
    /// What differed, when the runs diverged.
    pub difference: Option<Difference>,
    /// Real runs.
    pub runs: usize,
    /// Real runs whose verdict was the simulation's (the same failing
    /// property, or both passing): the fidelity of a found failure.
    pub agreed: usize,
    /// How often the simulated verdict holds in perturbed simulated runs,
    /// when measured (see [`robust`](tandem_sim::explore::robust)).
    pub robustness: Option<Robustness>,
    /// The simulated and the real run's pictures, when asked for.
    #[serde(skip)]
    pub pictures: Vec<tandem::engine::picture::Picture>,
}

/// What differed between the simulated run and a real one, the first of
/// verdict, property and outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "what")]
pub enum Difference {
    /// One run passed and the other failed.
    Verdict {
        /// The simulated run's verdict: `PASS`, or `FAIL` and its failure.
        sim: String,
        /// The real run's.
        real: String,
    },
    /// Both failed, on different properties.
    Property {
        /// The simulated run's failure.
        sim: String,
        /// The real run's.
        real: String,
    },
    /// Both had the same verdict, but a node ended differently.
    Outcome {
        /// The first node that did.
        node: u32,
        /// Its outcome in the simulation (the system's `Outcome`, as JSON).
        sim: String,
        /// Its outcome over MsQuic.
        real: String,
    },
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Difference::Verdict { sim, real } => write!(f, "differs: verdict (sim {sim}, real {real})"),
            Difference::Property { sim, real } => write!(f, "differs: property (sim {sim}, real {real})"),
            Difference::Outcome { node, sim, real } => {
                write!(f, "differs: outcome (node {node} ended with {real} real, {sim} sim)")
            }
        }
    }
}

/// What differs between a simulated and a real run, given their outcomes
/// and each node's outcome as JSON: the verdict (one failed), else the
/// failing property, else the first node's outcome that differs.
pub fn difference(sim: &Outcome, real: &Outcome, sim_nodes: &[String], real_nodes: &[String]) -> Option<Difference> {
    let said = |o: &Outcome| match &o.failure {
        Some(failure) => format!("FAIL {failure}"),
        None => "PASS".to_string(),
    };
    match (&sim.failure, &real.failure) {
        (Some(s), Some(r)) if s.code != r.code => {
            return Some(Difference::Property { sim: s.to_string(), real: r.to_string() });
        }
        (Some(_), None) | (None, Some(_)) => return Some(Difference::Verdict { sim: said(sim), real: said(real) }),
        _ => {}
    }
    let (node, (s, r)) = sim_nodes.iter().zip(real_nodes).enumerate().find(|(_, (s, r))| s != r)?;
    Some(Difference::Outcome { node: node as u32, sim: s.clone(), real: r.clone() })
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
    let json = |history| -> Vec<String> {
        outcomes(system, history).iter().map(|o| serde_json::to_string(o).expect("outcomes serialise")).collect()
    };
    let sim_nodes = json(sim.1);
    let differences: Vec<_> = reals.iter().map(|real| difference(sim.0, real.0, &sim_nodes, &json(real.1))).collect();
    let shown = differences.iter().position(Option::is_some).unwrap_or(0);
    let real = reals.get(shown).expect("at least one real run");
    let failure = real.0.failure.as_ref().or(sim.0.failure.as_ref()).map(|f| f.to_string());
    let difference = differences[shown].clone();
    Confirmation {
        result: if difference.is_none() { "CONFIRMED" } else { "DIVERGED" },
        scenario: scenario.name.clone(),
        sim: Verdict::of(sim.0.passed()),
        real: Verdict::of(real.0.passed()),
        wall_ms: wall.as_millis() as u64,
        detail: difference.as_ref().map(ToString::to_string).or(failure),
        difference,
        runs: reals.len(),
        agreed,
        robustness: None,
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
        if let Some(robustness) = &self.robustness {
            write!(f, " robust={robustness}")?;
        }
        if let Some(detail) = &self.detail {
            write!(f, " {detail}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tandem::property::Violation;

    fn outcome(failure: Option<(&str, &str)>) -> Outcome {
        let failure = failure.map(|(code, detail)| Violation::new(code, "property", detail, Duration::ZERO));
        Outcome { failure, end: Duration::ZERO, coverage: Vec::new(), signature: Default::default() }
    }

    #[test]
    fn a_difference_names_the_verdict_the_property_or_the_outcome() {
        let nodes = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let (a, b) = (nodes(&["[1]", "[2]"]), nodes(&["[1]", "[3]"]));
        let (pass, s2, l2) = (outcome(None), outcome(Some(("S2", "twice"))), outcome(Some(("L2", "never"))));
        assert_eq!(difference(&pass, &pass, &a, &a), None);
        assert_eq!(difference(&s2, &s2, &a, &a), None);
        let verdict = difference(&pass, &l2, &a, &a).unwrap();
        assert_eq!(verdict.to_string(), "differs: verdict (sim PASS, real FAIL L2 property: never)");
        let property = difference(&s2, &l2, &a, &b).unwrap();
        assert_eq!(property.to_string(), "differs: property (sim S2 property: twice, real L2 property: never)");
        let outcome = difference(&pass, &pass, &a, &b).unwrap();
        assert_eq!(outcome, Difference::Outcome { node: 1, sim: "[2]".into(), real: "[3]".into() });
        assert_eq!(outcome.to_string(), "differs: outcome (node 1 ended with [3] real, [2] sim)");
    }
}
