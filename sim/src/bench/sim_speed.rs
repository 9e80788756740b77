//! Item 1: simulation speed, and tandem's wall time against the same
//! workload on raw turmoil at the same tick, in the same process.

use std::time::Duration;

use tandem::history::EventKind;
use tandem::scenario::Scenario;
use tandem_kv::Kv;
use tandem_pubsub::PubSub;

use super::raw_turmoil;
use super::report::{Figure, Target};
use super::workload::{self, Subject};
use super::{best_of, Options};
use tandem_sim::cluster::SimCluster;
use tandem_sim::run::{options_for, run_with};

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
    /// Observations tandem recorded (deliveries, views, stores, ...).
    pub tandem_observed: u64,
    /// Messages the raw hosts delivered.
    pub raw_delivered: u64,
}

impl Comparison {
    /// Runs `scenario` of `S` in tandem, then its network actions, at the
    /// same simulated times, on raw turmoil; each the best of `reps` runs.
    pub fn of<S: Subject>(scenario: &Scenario, reps: usize) -> Comparison {
        let options = options_for(&*S::it(), scenario, SEED);
        let (tandem_wall, run) = best_of(reps, || run_with(S::it(), scenario, options.clone()));
        let actions = workload::carried_out(scenario, &run);
        let simulated = run.outcome.end;
        let (raw_wall, raw) = best_of(reps, || raw_turmoil::run::<S>(&options, &actions, simulated));
        let replay = || workload::replay(&mut SimCluster::new(S::it(), options.clone()), &actions, simulated);
        let (cluster_wall, ()) = best_of(reps, replay);
        Comparison {
            tandem_wall,
            raw_wall,
            cluster_wall,
            simulated,
            passed: run.outcome.passed(),
            tandem_observed: run.history.events().iter().filter(|e| matches!(e.event, EventKind::Observe(_))).count() as u64,
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
            "{what}; {:.1} s simulated, {} observations by tandem{} / {} messages delivered by raw turmoil",
            self.simulated.as_secs_f64(),
            self.tandem_observed,
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

/// Measures, for the reference system (the published targets) and for kv
/// (reported): its hot-reload scenario, 5 nodes each invoking an operation
/// every 100 ms, and 16 nodes with partitions and a rebind.
pub fn measure(options: &Options) -> Vec<Figure> {
    let mut figures = measure_system::<PubSub>(options, "broadcast", true);
    figures.extend(measure_system::<Kv>(options, "put", false));
    figures
}

fn measure_system<S: Subject>(options: &Options, op: &str, targets: bool) -> Vec<Figure> {
    let secs = if options.quick { 5 } else { 60 };
    let hot = S::hot_reload();
    let cases: [(String, String, Scenario, bool); 3] = [
        ("hot_reload".into(), format!("{} (scenarios/)", hot.name), hot, false),
        ("broadcast5".into(), format!("5 nodes, one {op} per node every 100 ms"), workload::load5::<S>(secs), true),
        ("faults16".into(), format!("16 nodes, a {op} per node every second, two partitions and a rebind"), workload::faults16::<S>(secs), false),
    ];
    let mut figures = Vec::new();
    for (id, what, scenario, real_time_target) in cases {
        let id = format!("{}{id}", S::PREFIX);
        let comparison = Comparison::of::<S>(&scenario, options.reps);
        let speed = Figure::new(format!("sim.{id}.speed"), format!("{what}: simulated s per wall s"), comparison.speed(), "x real time");
        figures.push(if real_time_target && targets { speed.target(Target::value_at_least(100.0)) } else { speed });
        let wall = comparison.wall_figure(&format!("sim.{id}.wall"), &what);
        figures.push(if targets { wall.target(Target::ratio_at_most(1.25)) } else { wall });
        figures.push(comparison.cluster_figure(&format!("sim.{id}.cluster_wall")));
    }
    figures
}
