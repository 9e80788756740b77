//! The simulated workloads: scenarios built in code, and the timeline of
//! network actions a tandem run carried out, which the raw-turmoil baseline
//! replays at the same simulated times.

use std::time::Duration;

use tandem::cluster::Cluster;
use tandem::scenario::{Action, Check, Condition, Scenario, Step, Timing};
use tandem::trace::TraceKind;

use crate::run::SimRun;

/// The hot-reload scenario shipped in `scenarios/`, built into the binary so
/// the benchmark runs from any directory.
pub fn hot_reload() -> Scenario {
    Scenario::parse(include_str!("../../../scenarios/hot_reload.toml"), "hot_reload.toml")
        .expect("the bundled hot_reload scenario parses")
}

/// `nodes` nodes: wait until membership converges, then every `every` from
/// `every` to `until`, the nodes `origins(round)` broadcast (32 B each), with
/// `faults` (at their times) interleaved; a 1 s settle tail.
pub fn broadcasts(
    name: &str,
    nodes: u32,
    every: Duration,
    until: Duration,
    origins: impl Fn(u32) -> Vec<u32>,
    faults: Vec<(Duration, Action)>,
) -> Scenario {
    let mut timed: Vec<(Duration, Action)> = faults;
    let rounds = (until.as_nanos() / every.as_nanos()) as u32;
    for round in 1..=rounds {
        for from in origins(round) {
            let tag = format!("r{round}n{from}");
            timed.push((every * round, Action::Broadcast { from, tag, size: tandem::scenario::DEFAULT_MESSAGE_SIZE }));
        }
    }
    // Stable: faults come before the broadcasts of the same instant.
    timed.sort_by_key(|(at, _)| *at);
    let converged = Action::Await { condition: Condition { node: None, check: Check::Converged }, timeout: Duration::from_secs(5) };
    let mut scenario = Scenario::new(name, nodes);
    scenario.steps = std::iter::once(Step { timing: Timing::Immediately, action: converged, line: 0 })
        .chain(timed.into_iter().map(|(at, action)| Step { timing: Timing::At(at), action, line: 0 }))
        .collect();
    scenario.settle = Duration::from_secs(1);
    scenario.duration = until + scenario.settle;
    scenario
}

/// Item 1b: 5 nodes, one broadcast per node every 100 ms, for 60 s (`secs`).
pub fn broadcast5(secs: u64) -> Scenario {
    broadcasts("broadcast5", 5, Duration::from_millis(100), Duration::from_secs(secs), |_| (0..5).collect(), Vec::new())
}

/// Item 1c: 16 nodes, one broadcast per node every second for `secs`
/// seconds, a half/half partition from 1/6 to 1/3 of the run, a rebind of
/// node 5 at 1/2, and a minority partition from 2/3 to 3/4.
pub fn faults16(secs: u64) -> Scenario {
    let at = |fraction: f64| Duration::from_secs_f64(secs as f64 * fraction);
    let (low, high): (Vec<u32>, Vec<u32>) = ((0..8).collect(), (8..16).collect());
    let faults = vec![
        (at(1.0 / 6.0), Action::Partition { a: low, b: high, oneway: false }),
        (at(1.0 / 3.0), Action::Heal { a: None, b: None }),
        (at(0.5), Action::Rebind { node: 5, port: None }),
        (at(2.0 / 3.0), Action::Partition { a: vec![0, 1, 2], b: (3..16).collect(), oneway: false }),
        (at(0.75), Action::Heal { a: None, b: None }),
    ];
    broadcasts("faults16", 16, Duration::from_secs(1), Duration::from_secs(secs), |_| (0..16).collect(), faults)
}

/// Item 5: a fixed simulated workload for any node count: ten broadcasts
/// per simulated second in total (origins in turn) for `secs` seconds.
pub fn fixed_load(nodes: u32, secs: u64) -> Scenario {
    broadcasts(&format!("scale{nodes}"), nodes, Duration::from_millis(100), Duration::from_secs(secs), |round| vec![round % nodes], Vec::new())
}

/// Whether the raw-turmoil baseline replays `action` (it has no crashes,
/// link settings or checks).
fn replayed(action: &Action) -> bool {
    matches!(action, Action::Broadcast { .. } | Action::Direct { .. } | Action::Partition { .. } | Action::Heal { .. } | Action::Rebind { .. })
}

/// The network actions a finished run carried out (broadcasts, directs,
/// partitions, heals, rebinds), with the simulated time each began.
pub fn carried_out(scenario: &Scenario, run: &SimRun) -> Vec<(Duration, Action)> {
    run.record
        .trace
        .events()
        .iter()
        .filter_map(|event| match &event.event {
            TraceKind::Step { index, .. } => Some((Duration::from_micros(event.t_us), scenario.steps[*index].action.clone())),
            _ => None,
        })
        .filter(|(_, action)| replayed(action))
        .collect()
}

/// The network actions of the steps with an `at` time, at that time: the
/// actions of a scenario built by [`broadcasts`] without running it.
pub fn planned(scenario: &Scenario) -> Vec<(Duration, Action)> {
    scenario
        .steps
        .iter()
        .filter_map(|step| match step.timing {
            Timing::At(at) if replayed(&step.action) => Some((at, step.action.clone())),
            _ => None,
        })
        .collect()
}

/// Carries out `actions` at their times on `cluster` and runs it until
/// `end`: the run without the scenario executor's checks, to tell their cost
/// from the simulation's.
pub fn replay(cluster: &mut impl Cluster, actions: &[(Duration, Action)], end: Duration) {
    let groups = |a: &Option<Vec<u32>>, b: &Option<Vec<u32>>| -> Option<(Vec<u32>, Vec<u32>)> { Some((a.clone()?, b.clone()?)) };
    for (at, action) in actions {
        cluster.run_until(*at, |_| false);
        match action {
            Action::Broadcast { from, tag, size } => cluster.broadcast(*from, tag, *size),
            Action::Direct { from, to, tag, size } => cluster.direct(*from, *to, tag, *size),
            Action::Partition { a, b, oneway } => cluster.partition(a, b, *oneway),
            Action::Heal { a, b } => {
                let groups = groups(a, b);
                cluster.heal(groups.as_ref().map(|(a, b)| (&a[..], &b[..])));
            }
            Action::Rebind { node, port } => cluster.rebind(*node, *port),
            _ => {}
        }
    }
    cluster.run_until(end, |_| false);
}
