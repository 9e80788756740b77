//! `tandem confirm`: the same scenario over real MsQuic and in simulation,
//! and whether they agree.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use serde::Serialize;
use tandem::execute::Outcome;
use tandem::record::Record;
use tandem::scenario::Scenario;

use crate::report::{format_wall, Verdict};

/// What one node ended with: the comparison's unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeSummary {
    /// Tags it delivered, all incarnations.
    pub delivered: BTreeSet<String>,
    /// Nodes in its final membership view.
    pub members: BTreeSet<u32>,
}

/// Per node summaries of a run.
pub fn summarize(record: &Record) -> Vec<NodeSummary> {
    record
        .nodes
        .iter()
        .map(|n| NodeSummary {
            delivered: n.deliveries.iter().map(|d| d.tag.clone()).collect(),
            members: n.view.keys().map(|id| id.0).collect(),
        })
        .collect()
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
}

/// Compares a simulated and a real run of `scenario`.
pub fn compare(scenario: &Scenario, sim: (&Outcome, &Record), real: (&Outcome, &Record), wall: Duration) -> Confirmation {
    let code = |o: &Outcome| o.failure.as_ref().map(|f| f.code);
    let (sim_nodes, real_nodes) = (summarize(sim.1), summarize(real.1));
    let difference = if code(sim.0) != code(real.0) {
        let failure = real.0.failure.as_ref().or(sim.0.failure.as_ref()).expect("one of them failed");
        Some(failure.to_string())
    } else {
        sim_nodes.iter().zip(&real_nodes).enumerate().find(|(_, (s, r))| s != r).map(|(node, (s, r))| {
            if s.delivered != r.delivered {
                format!("node {node} delivered {:?} in simulation but {:?} over MsQuic", s.delivered, r.delivered)
            } else {
                format!("node {node} ended knowing {:?} in simulation but {:?} over MsQuic", s.members, r.members)
            }
        })
    };
    let failure = real.0.failure.as_ref().or(sim.0.failure.as_ref()).map(|f| f.to_string());
    Confirmation {
        result: if difference.is_none() { "CONFIRMED" } else { "DIVERGED" },
        scenario: scenario.name.clone(),
        sim: Verdict::of(sim.0.passed()),
        real: Verdict::of(real.0.passed()),
        wall_ms: wall.as_millis() as u64,
        detail: difference.or(failure),
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
        if let Some(detail) = &self.detail {
            write!(f, " {detail}")?;
        }
        Ok(())
    }
}
