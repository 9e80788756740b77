//! Item 1: simulation speed, and tandem's wall time against the same
//! workload on raw turmoil at the same tick, in the same process.

use std::time::Duration;

use tandem::scenario::Scenario;

use super::raw_turmoil;
use super::report::{Figure, Target};
use super::workload;
use super::{best_of, Options};
use crate::cluster::SimCluster;
use crate::run::{options_for, run_with};

/// The simulation seed of every benchmark run.
pub const SEED: u64 = 1;

/// One workload run by tandem and by raw turmoil.
#[derive(Debug, Clone, Copy)]
pub struct Comparison {
    /// tandem's best wall time, seconds.
    pub tandem_wall: f64,
    /// Raw turmoil's best wall time for the same actions, seconds.
    pub raw_wall: f64,
    /// tandem's best wall time for the same actions replayed straight onto a
    /// `SimCluster`, without the scenario executor and its per-step checks.
    pub cluster_wall: f64,
    /// Simulated time of the run.
    pub simulated: Duration,
    /// Whether tandem's run passed its checks.
    pub passed: bool,
    /// Messages tandem delivered.
    pub tandem_delivered: u64,
    /// Messages the raw hosts delivered.
    pub raw_delivered: u64,
}

impl Comparison {
    /// Runs `scenario` in tandem, then its network actions, at the same
    /// simulated times, on raw turmoil; each the best of `reps` runs.
    pub fn of(scenario: &Scenario, reps: usize) -> Comparison {
        let options = options_for(scenario, SEED);
        let (tandem_wall, run) = best_of(reps, || run_with(scenario, options.clone()));
        let actions = workload::carried_out(scenario, &run);
        let simulated = run.outcome.end;
        let (raw_wall, raw) = best_of(reps, || raw_turmoil::run(&options, &actions, simulated));
        let (cluster_wall, ()) = best_of(reps, || workload::replay(&mut SimCluster::new(options.clone()), &actions, simulated));
        Comparison {
            tandem_wall,
            raw_wall,
            cluster_wall,
            simulated,
            passed: run.outcome.passed(),
            tandem_delivered: run.record.nodes.iter().map(|n| n.deliveries.len() as u64).sum(),
            raw_delivered: raw.delivered,
        }
    }

    /// Simulated seconds per wall second.
    pub fn speed(&self) -> f64 {
        self.simulated.as_secs_f64() / self.tandem_wall
    }

    /// The wall-time figure `id`, against raw turmoil.
    pub fn wall_figure(&self, id: &str, what: &str) -> Figure {
        let what = format!(
            "{what}; {:.1} s simulated, {} delivered by tandem{} / {} by raw turmoil",
            self.simulated.as_secs_f64(),
            self.tandem_delivered,
            if self.passed { "" } else { " (run FAILED its checks)" },
            self.raw_delivered
        );
        Figure::new(id, what, self.tandem_wall, "s wall").against("raw turmoil", self.raw_wall)
    }

    /// The wall-time figure `id` of the same actions on a bare `SimCluster`
    /// (no executor, no per-step checks), against raw turmoil.
    pub fn cluster_figure(&self, id: &str) -> Figure {
        let what = "the same actions replayed straight onto SimCluster: no scenario executor, no per-step safety checks";
        Figure::new(id, what, self.cluster_wall, "s wall").against("raw turmoil", self.raw_wall)
    }
}

/// Measures hot_reload, 5 nodes broadcasting every 100 ms, and 16 nodes
/// with partitions and a rebind.
pub fn measure(options: &Options) -> Vec<Figure> {
    let secs = if options.quick { 5 } else { 60 };
    let cases: [(&str, &str, Scenario, bool); 3] = [
        ("hot_reload", "scenarios/hot_reload.toml", workload::hot_reload(), false),
        ("broadcast5", "5 nodes, one broadcast per node every 100 ms", workload::broadcast5(secs), true),
        ("faults16", "16 nodes, a broadcast per node every second, two partitions and a rebind", workload::faults16(secs), false),
    ];
    let mut figures = Vec::new();
    for (id, what, scenario, real_time_target) in cases {
        let comparison = Comparison::of(&scenario, options.reps);
        let speed = Figure::new(format!("sim.{id}.speed"), format!("{what}: simulated s per wall s"), comparison.speed(), "x real time");
        figures.push(if real_time_target { speed.target(Target::value_at_least(100.0)) } else { speed });
        figures.push(comparison.wall_figure(&format!("sim.{id}.wall"), what).target(Target::ratio_at_most(1.3)));
        figures.push(comparison.cluster_figure(&format!("sim.{id}.cluster_wall")));
    }
    figures
}
