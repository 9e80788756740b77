//! The simulated workloads: scenarios built in code, and the timeline of
//! network actions a tandem run carried out, which the raw-turmoil baseline
//! replays at the same simulated times.

use std::sync::Arc;
use std::time::Duration;

use tandem::engine::cluster::Cluster;
use tandem::history::EventKind;
use tandem::scenario::{Action, Call, Condition, LinkChange, NodeIdx, Scenario, Scope, Step, Timing};
use tandem::system::{Operation, System};
use tandem_kv::{Kv, KvOp};
use tandem_pubsub::{Op, PubSub};

/// A bundled system as the simulation benchmarks drive it: its load, and
/// what raw turmoil sends in its place.
pub trait Subject: System {
    /// The benchmark's name of the system (`""` for the reference system,
    /// whose figures keep their historical names).
    const PREFIX: &'static str;
    /// The system.
    fn it() -> Arc<Self>;
    /// Its hot-reload scenario (a rebind under load), shipped in `scenarios/`.
    fn hot_reload() -> Scenario;
    /// The operation of load round `round` at node `from`.
    fn load(round: u32, from: NodeIdx) -> Self::Op;
    /// What raw turmoil sends for `op`: the sender, the addressee (`None`:
    /// every other node) and the bytes.
    fn traffic(op: &Self::Op) -> (NodeIdx, Option<NodeIdx>, usize);
}

impl Subject for PubSub {
    const PREFIX: &'static str = "";
    fn it() -> Arc<Self> {
        Arc::new(PubSub)
    }
    fn hot_reload() -> Scenario {
        Scenario::parse(include_str!("../../../scenarios/hot_reload.toml"), "hot_reload.toml", &PubSub)
            .expect("the bundled hot_reload scenario parses")
    }
    fn load(round: u32, from: NodeIdx) -> Op {
        Op::Broadcast { from, tag: Some(format!("r{round}n{from}")), size: None }
    }
    fn traffic(op: &Op) -> (NodeIdx, Option<NodeIdx>, usize) {
        (op.from(), op.to(), op.size())
    }
}

impl Subject for Kv {
    const PREFIX: &'static str = "kv.";
    fn it() -> Arc<Self> {
        Arc::new(Kv)
    }
    fn hot_reload() -> Scenario {
        Scenario::parse(include_str!("../../../scenarios/kv/rebind.toml"), "rebind.toml", &Kv)
            .expect("the bundled kv rebind scenario parses")
    }
    fn load(round: u32, from: NodeIdx) -> KvOp {
        KvOp::Put { node: from, key: format!("k{}", from % 4), value: format!("r{round}n{from}") }
    }
    fn traffic(op: &KvOp) -> (NodeIdx, Option<NodeIdx>, usize) {
        let size = match op {
            KvOp::Put { key, value, .. } => key.len() + value.len(),
            KvOp::Delete { key, .. } | KvOp::Get { key, .. } => key.len(),
        };
        (op.node(), None, size)
    }
}

/// `nodes` nodes: wait until the system is [ready](tandem::Oracle::ready), then every `every` from
/// `every` to `until`, the nodes `origins(round)` each invoke the load
/// operation, with `faults` (at their times) interleaved; a 1 s settle tail.
pub fn load<S: Subject>(
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
            timed.push((every * round, Action::Op(Call::of(&S::load(round, from)))));
        }
    }
    // Stable: faults come before the operations of the same instant.
    timed.sort_by_key(|(at, _)| *at);
    let ready = S::it().ready().map(|check| {
        Step::new(
            Timing::Immediately,
            Action::Await {
                condition: Condition { node: None, check: Call::of(&check) },
                timeout: Duration::from_secs(5),
            },
        )
    });
    let mut scenario = Scenario::new(name, nodes);
    scenario.system = Some(S::it().name().to_string());
    scenario.steps =
        ready.into_iter().chain(timed.into_iter().map(|(at, action)| Step::new(Timing::At(at), action))).collect();
    scenario.settle = Duration::from_secs(1);
    scenario.duration = until + scenario.settle;
    scenario
}

/// Item 1b: 5 nodes, one operation per node every 100 ms, for 60 s (`secs`).
pub fn load5<S: Subject>(secs: u64) -> Scenario {
    load::<S>("load5", 5, Duration::from_millis(100), Duration::from_secs(secs), |_| (0..5).collect(), Vec::new())
}

/// Item 1c: 16 nodes, one operation per node every second for `secs`
/// seconds, a half/half partition from 1/6 to 1/3 of the run, a rebind of
/// node 5 at 1/2, and a minority partition from 2/3 to 3/4.
pub fn faults16<S: Subject>(secs: u64) -> Scenario {
    let at = |fraction: f64| Duration::from_secs_f64(secs as f64 * fraction);
    let (low, high): (Vec<u32>, Vec<u32>) = ((0..8).collect(), (8..16).collect());
    let partition =
        |a, b| Action::Link { change: LinkChange::Partition { oneway: false }, scope: Scope::Between { a, b } };
    let heal = Action::Link { change: LinkChange::Heal, scope: Scope::Every };
    let faults = vec![
        (at(1.0 / 6.0), partition(low, high)),
        (at(1.0 / 3.0), heal.clone()),
        (at(0.5), Action::Rebind { node: 5, port: None }),
        (at(2.0 / 3.0), partition(vec![0, 1, 2], (3..16).collect())),
        (at(0.75), heal),
    ];
    load::<S>("faults16", 16, Duration::from_secs(1), Duration::from_secs(secs), |_| (0..16).collect(), faults)
}

/// Item 5: a fixed simulated workload for any node count: ten broadcasts
/// per simulated second in total (origins in turn) for `secs` seconds,
/// from the start (the reference node's membership takes longer than that
/// to converge at 64 nodes and more, on either backend, so nothing waits
/// for it: the run's cost is measured over the whole workload).
pub fn fixed_load(nodes: u32, secs: u64) -> Scenario {
    let mut scenario = load::<PubSub>(
        &format!("scale{nodes}"),
        nodes,
        Duration::from_millis(100),
        Duration::from_secs(secs),
        |round| vec![round % nodes],
        Vec::new(),
    );
    scenario.steps.retain(|step| !matches!(step.action, Action::Await { .. }));
    scenario
}

/// Whether the raw-turmoil baseline replays `action` (it has no crashes,
/// link settings or checks).
fn replayed(action: &Action) -> bool {
    matches!(
        action,
        Action::Op(_)
            | Action::Rebind { .. }
            | Action::Link { change: LinkChange::Partition { .. } | LinkChange::Heal, .. }
    )
}

/// The network actions a finished run carried out (operations, partitions,
/// heals, rebinds), with the simulated time each began.
pub fn carried_out<S: System>(run: &tandem::engine::execute::Run<S>) -> Vec<(Duration, Action)> {
    run.history
        .events()
        .iter()
        .filter_map(|event| match &event.event {
            EventKind::Step { action, .. } => Some((event.at(), action.clone())),
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
pub fn replay<S: System>(cluster: &mut impl Cluster<S>, actions: &[(Duration, Action)], end: Duration) {
    for (step, (at, action)) in actions.iter().enumerate() {
        cluster.run_until(*at, |_| false);
        match action {
            Action::Op(call) => {
                let op: S::Op = call.typed().expect("a valid operation");
                cluster.invoke(op.node(), op, step);
            }
            Action::Link { change, scope } => cluster.set_links(change, scope),
            Action::Rebind { node, port } => cluster.rebind(*node, *port),
            _ => unreachable!("only replayed actions are planned or carried out: {action:?}"),
        }
    }
    cluster.run_until(end, |_| false);
}
