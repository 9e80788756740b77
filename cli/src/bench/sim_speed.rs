//! Item 1: simulation speed on the discrete-event backend, against the
//! turmoil backend and the same workload on raw turmoil at the same tick,
//! in the same process.

use std::time::Duration;

use tandem::history::EventKind;
use tandem::scenario::Scenario;
use tandem_kv::Kv;
use tandem_pubsub::PubSub;

use super::raw_turmoil;
use super::report::{Figure, Target};
use super::workload::{self, Subject};
use super::{best_of, Options};
use tandem_sim::run::{options_for, run_with};
use tandem_sim::EventCluster;
use tandem_sim::{Backend, SimOptions};

/// The simulation seed of every benchmark run.
pub const SEED: u64 = 1;

/// One workload run by tandem on both backends and by raw turmoil.
#[derive(Debug, Clone, Copy)]
pub struct Comparison {
    /// tandem's best wall time on the discrete-event backend, seconds.
    pub tandem_wall: f64,
    /// tandem's best wall time on the turmoil backend, seconds.
    pub turmoil_wall: f64,
    /// Raw turmoil's best wall time for the same actions, seconds.
    pub raw_wall: f64,
    /// The best wall time of the same actions replayed straight onto an
    /// `EventCluster`, without the scenario executor and its per-step checks.
    pub cluster_wall: f64,
    /// Simulated time of the run.
    pub simulated: Duration,
    /// Whether tandem's runs passed their checks on both backends.
    pub passed: bool,
    /// Events in the discrete-event run's history (its cost driver).
    pub events: u64,
    /// Observations tandem recorded (deliveries, views, stores, ...).
    pub tandem_observed: u64,
    /// Messages the raw hosts delivered.
    pub raw_delivered: u64,
}

impl Comparison {
    /// Runs `scenario` of `S` in tandem on each backend, then its network
    /// actions, at the same simulated times, on raw turmoil; each the best
    /// of `reps` runs. Without `turmoil`, the turmoil backend and raw
    /// turmoil are left out (their figures are then NaN).
    pub fn of<S: Subject>(scenario: &Scenario, reps: usize, turmoil: bool) -> Comparison {
        let on = |backend| SimOptions { backend, ..options_for(&*S::it(), scenario, SEED) };
        let (tandem_wall, run) = best_of(reps, || run_with(S::it(), scenario, on(Backend::Events)));
        let actions = workload::carried_out(&run);
        let simulated = run.outcome.end;
        let (mut turmoil_wall, mut raw_wall, mut raw_delivered, mut passed) =
            (f64::NAN, f64::NAN, 0, run.outcome.passed());
        if turmoil {
            let (wall, old) = best_of(reps, || run_with(S::it(), scenario, on(Backend::Turmoil)));
            let (raw, delivered) = best_of(reps, || raw_turmoil::run::<S>(&on(Backend::Turmoil), &actions, simulated));
            (turmoil_wall, raw_wall, raw_delivered) = (wall, raw, delivered.delivered);
            passed &= old.outcome.passed();
        }
        let replay = || workload::replay(&mut EventCluster::new(S::it(), on(Backend::Events)), &actions, simulated);
        let (cluster_wall, ()) = best_of(reps, replay);
        let observed = run.history.events().iter().filter(|e| matches!(e.event, EventKind::Observe(_))).count();
        Comparison {
            tandem_wall,
            turmoil_wall,
            raw_wall,
            cluster_wall,
            simulated,
            passed,
            events: run.history.events().len() as u64,
            tandem_observed: observed as u64,
            raw_delivered,
        }
    }

    /// Simulated seconds per wall second on the discrete-event backend.
    pub fn speed(&self) -> f64 {
        self.simulated.as_secs_f64() / self.tandem_wall
    }

    /// Simulated seconds per wall second on the turmoil backend.
    pub fn turmoil_speed(&self) -> f64 {
        self.simulated.as_secs_f64() / self.turmoil_wall
    }

    /// The wall-time figure `id` of the discrete-event backend, against raw
    /// turmoil; not measured (NaN, and the description says why) when a run
    /// failed its checks, as a failing run's time is not the workload's.
    pub fn wall_figure(&self, id: &str, what: &str) -> Figure {
        if !self.passed {
            let what = format!("{what}: not measured, a run FAILED its checks");
            return Figure::new(id, what, f64::NAN, "s wall");
        }
        let what = format!(
            "{what}; {:.1} s simulated, {} events ({} observations) by tandem / {} messages delivered by raw turmoil",
            self.simulated.as_secs_f64(),
            self.events,
            self.tandem_observed,
            self.raw_delivered
        );
        Figure::new(id, what, self.tandem_wall, "s wall").against("raw turmoil", self.raw_wall)
    }

    /// The discrete-event backend's wall time against the turmoil backend's.
    pub fn backend_figure(&self, id: &str, what: &str) -> Figure {
        Figure::new(id, format!("{what}: discrete-event backend"), self.tandem_wall, "s wall")
            .against("turmoil backend", self.turmoil_wall)
    }

    /// The turmoil backend's wall time against raw turmoil (the old figure).
    pub fn turmoil_figure(&self, id: &str, what: &str) -> Figure {
        Figure::new(id, format!("{what}: turmoil backend"), self.turmoil_wall, "s wall")
            .against("raw turmoil", self.raw_wall)
    }

    /// The wall-time figure `id` of the same actions on a bare
    /// `EventCluster` (no executor, no per-step checks), against raw turmoil.
    pub fn cluster_figure(&self, id: &str) -> Figure {
        let what =
            "the same actions replayed straight onto EventCluster: no scenario executor, no per-step safety checks";
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
        (
            "faults16".into(),
            format!("16 nodes, a {op} per node every second, two partitions and a rebind"),
            workload::faults16::<S>(secs),
            false,
        ),
    ];
    let mut figures = Vec::new();
    for (id, what, scenario, real_time_target) in cases {
        let id = format!("{}{id}", S::PREFIX);
        let comparison = Comparison::of::<S>(&scenario, options.reps, true);
        let speed = Figure::new(
            format!("sim.{id}.speed"),
            format!("{what}: simulated s per wall s"),
            comparison.speed(),
            "x real time",
        );
        figures.push(if real_time_target && targets { speed.target(Target::value_at_least(1000.0)) } else { speed });
        figures.push(Figure::new(
            format!("sim.{id}.turmoil_speed"),
            format!("{what}: simulated s per wall s, turmoil backend"),
            comparison.turmoil_speed(),
            "x real time",
        ));
        let wall = comparison.wall_figure(&format!("sim.{id}.wall"), &what);
        figures.push(if targets { wall.target(Target::ratio_at_most(1.25)) } else { wall });
        figures.push(comparison.backend_figure(&format!("sim.{id}.events_vs_turmoil"), &what));
        figures.push(comparison.turmoil_figure(&format!("sim.{id}.turmoil_wall"), &what));
        figures.push(comparison.cluster_figure(&format!("sim.{id}.cluster_wall")));
    }
    figures
}
