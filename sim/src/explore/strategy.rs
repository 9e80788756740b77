//! Public proptest strategies for scenarios, to compose your own explorers.
//!
//! [`scenario`] is what `tandem explore` draws each case from: a node count,
//! membership seeds, link defaults, a simulation seed, the system's knob
//! values, a [`Swarm`] (which fault kinds this case uses, and how often),
//! then a [`timeline`] of episodes mixing traffic with those faults. Every scenario it draws is
//! valid ([`Scenario::validate`]) and [fair](super::rules::fair): it has no
//! expectations, only the invariants judge it, so a correct node passes it.
//!
//! The faults are generic; the operations come from the system's workload
//! ([`Workload::operations`](tandem::Workload::operations), or the one [`Space::workload`] names), and a
//! system with a final phase ([`Workload::final_operations`](tandem::Workload::final_operations)) gets it as
//! every scenario's `[[final]]` steps, drawn without randomness. The episodes are shaped to reach the places
//! where distributed protocols break: an operation right before a fault (so
//! the fault catches it, or its replication, in flight), operations while a
//! partition holds or a node is down (aimed at that node), partitions and
//! losses that outlast the 2 s idle timeout, and rebinds. A system that
//! declares it survives them is also drawn process pauses and changes of a
//! node's clocks (see [`swarm_for`]).
//!
//! ```
//! # fn demo<S: tandem::System>(system: std::sync::Arc<S>) {
//! use proptest::strategy::{Strategy, ValueTree};
//! use proptest::test_runner::TestRunner;
//! use tandem_sim::explore::strategy::{scenario, Space};
//!
//! let mut runner = TestRunner::deterministic();
//! let drawn = scenario(&system, &Space::default()).new_tree(&mut runner).unwrap().current();
//! assert!(drawn.validate(&*system).is_ok());
//! # }
//! ```

use std::collections::BTreeMap;
use std::ops::{Range, RangeInclusive};
use std::sync::Arc;
use std::time::Duration;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::strategy::{BoxedStrategy, Union};
use tandem::scenario::{
    Action, Aim, Call, ClockChange, DiskFault, LatencyRange, LinkChange, Network, NodeChange, NodeIdx, Scenario, Scope,
    Skew, DEFAULT_DURATION, DEFAULT_SETTLE,
};
use tandem::system::{Knob, SurvivedDiskFault, System, Tolerance};

use super::swarm::{FaultKind, Swarm};
use super::timeline::{lay_out, Episode};
use crate::options::Backend;

/// How far apart explored nodes first boot, by default.
pub const DEFAULT_STAGGER: Duration = Duration::from_millis(20);

/// Episodes start no earlier than this: the cluster converges first.
const EARLIEST_START: Duration = Duration::from_millis(500);

/// Actions at offsets from an episode's start.
type Actions = Vec<(Duration, Action)>;

/// The space [`scenario`] draws from.
#[derive(Debug, Clone, PartialEq)]
pub struct Space {
    /// Node counts, inclusive.
    pub nodes: RangeInclusive<u32>,
    /// Every scenario's `duration`.
    pub duration: Duration,
    /// Every scenario's `settle`; episodes happen before it.
    pub settle: Duration,
    /// How many episodes a timeline has, inclusive.
    pub episodes: RangeInclusive<usize>,
    /// The planted bug every scenario names.
    pub planted_bug: Option<String>,
    /// Every scenario's `stagger`: nodes first boot at offsets drawn from
    /// the seed within it.
    pub stagger: Duration,
    /// Every scenario's `clients`: each node's concurrent clients.
    pub clients: u32,
    /// Every scenario's `properties`: the codes of the properties that
    /// judge it (empty: all).
    pub properties: Vec<String>,
    /// The system's workload operations are drawn from (one of
    /// [`Workload::workloads`](tandem::Workload::workloads)); `None`: its default.
    pub workload: Option<String>,
    /// Whether scenarios end with the system's final phase
    /// ([`Workload::final_operations`](tandem::Workload::final_operations)) as `[[final]]` steps.
    pub finals: bool,
    /// The simulator the cases run on (it decides which faults are drawn:
    /// see [`extra_kinds`]).
    pub backend: Backend,
}

impl Default for Space {
    /// 2 to 5 nodes, 30 s runs with a 5 s settle, 1 to 12 episodes, no
    /// mutation, boots staggered over 20 ms, one client per node, the
    /// default workload, the system's final phase, the events backend.
    fn default() -> Space {
        Space {
            nodes: 2..=5,
            duration: DEFAULT_DURATION,
            settle: DEFAULT_SETTLE,
            episodes: 1..=12,
            planted_bug: None,
            stagger: DEFAULT_STAGGER,
            clients: 1,
            properties: Vec::new(),
            workload: None,
            finals: true,
            backend: Backend::Events,
        }
    }
}

impl Space {
    /// When episodes may start; their actions are capped at the end, the
    /// start of the settle tail.
    pub fn window(&self) -> Range<Duration> {
        EARLIEST_START..self.duration.saturating_sub(self.settle)
    }
}

/// What a timeline is generated against.
#[derive(Debug, Clone)]
pub struct Stage<S: System> {
    /// The system whose operations the timeline invokes.
    pub system: Arc<S>,
    /// The node count.
    pub nodes: u32,
    /// The membership seeds: crashed seeds are always restarted.
    pub seeds: Vec<NodeIdx>,
    /// The link defaults, which latency and loss episodes restore.
    pub network: Network,
    /// The one node that rebinds (see [`rules`](super::rules)); drawn by
    /// [`mover`].
    pub mover: NodeIdx,
    /// When episodes may start; actions are capped at its end. Not empty.
    pub window: Range<Duration>,
    /// The workload operations are drawn from; `None`: the system's default.
    pub workload: Option<String>,
}

fn millis(range: RangeInclusive<u64>) -> impl Strategy<Value = Duration> + Clone {
    range.prop_map(Duration::from_millis)
}

/// Node counts within `range`.
pub fn node_count(range: RangeInclusive<u32>) -> impl Strategy<Value = u32> {
    range
}

/// Simulation seeds (at most `i64::MAX`, the largest a scenario file holds).
pub fn sim_seed() -> impl Strategy<Value = u64> {
    0..=i64::MAX as u64
}

/// Membership seeds for `nodes` nodes: usually `[0]`, else a non-empty subset.
pub fn seed_nodes(nodes: u32) -> impl Strategy<Value = Vec<NodeIdx>> {
    let all: Vec<NodeIdx> = (0..nodes).collect();
    prop_oneof![
        3 => Just(vec![0]),
        1 => proptest::sample::subsequence(all, 1..=nodes as usize),
    ]
}

/// The node that rebinds in a timeline: any node but the only seed (when
/// there is one seed and another node), so that it may also crash.
pub fn mover(nodes: u32, seeds: &[NodeIdx]) -> impl Strategy<Value = NodeIdx> {
    let eligible: Vec<NodeIdx> = (0..nodes).filter(|&n| nodes < 2 || seeds.iter().any(|&s| s != n)).collect();
    proptest::sample::select(eligible)
}

/// Link defaults: latency within 1..50 ms (at most `max_latency`), and
/// usually no loss, else up to 10%.
pub fn network(max_latency: Duration) -> impl Strategy<Value = Network> {
    let latency = (1u64..=5, 0u64..=45).prop_map(move |(min, extra)| capped(min, extra, max_latency));
    let loss = prop_oneof![3 => Just(0.0), 1 => (1u32..=10).prop_map(|p| f64::from(p) / 100.0)];
    (latency, loss).prop_map(|(latency, loss)| Network { latency, loss })
}

/// Knob values, by name, of the knobs not at their default: each knob is
/// usually its default, else its minimum, its maximum or any value of its
/// range. No knobs, no randomness drawn.
pub fn knob_values(knobs: Vec<Knob>) -> BoxedStrategy<BTreeMap<String, i64>> {
    if knobs.is_empty() {
        return Just(BTreeMap::new()).boxed();
    }
    let value = |k: Knob| prop_oneof![6 => Just(k.default), 1 => Just(k.min), 1 => Just(k.max), 1 => k.min..=k.max];
    let values: Vec<_> = knobs.iter().map(|&k| value(k)).collect();
    values
        .prop_map(move |values| {
            knobs.iter().zip(values).filter(|(k, v)| *v != k.default).map(|(k, v)| (k.name.to_string(), v)).collect()
        })
        .boxed()
}

/// A swarm: traffic always, and each fault kind enabled with probability
/// 1/2, with weights 1..=8.
pub fn swarm() -> impl Strategy<Value = Swarm> {
    let weight = prop_oneof![Just(0u32), 1..=8u32];
    (1..=8u32, vec(weight, FaultKind::ALL.len())).prop_map(|(traffic, weights)| Swarm {
        traffic,
        faults: FaultKind::ALL.into_iter().zip(weights).filter(|&(_, w)| w > 0).collect(),
    })
}

/// The fault kinds beyond [`FaultKind::ALL`] a system is drawn, in the
/// order their weights are drawn: [`FaultKind::Disk`] with the storage
/// capability, [`FaultKind::Pause`] when it survives pauses,
/// [`FaultKind::Clock`] when it survives clock jumps or drift. Pauses and
/// clocks only on the events backend: the turmoil backend refuses them.
pub fn extra_kinds<S: System>(system: &S, backend: Backend) -> Vec<FaultKind> {
    let tolerance = system.tolerance();
    let units = backend == Backend::Events;
    [
        (FaultKind::Disk, system.capabilities().storage),
        (FaultKind::Pause, units && !tolerance.max_pause.is_zero()),
        (FaultKind::Clock, units && (!tolerance.max_clock_jump.is_zero() || tolerance.max_drift_percent > 0)),
    ]
    .into_iter()
    .filter_map(|(kind, drawn)| drawn.then_some(kind))
    .collect()
}

/// [`swarm`], then a weight for each of the system's [`extra_kinds`] (each
/// drawn after everything before it, so a system without them draws
/// exactly what [`swarm`] draws, and one with only the storage capability
/// what it drew before pauses and clocks were drawn).
pub fn swarm_for<S: System>(system: &S, backend: Backend) -> BoxedStrategy<Swarm> {
    let mut drawn = swarm().boxed();
    for kind in extra_kinds(system, backend) {
        drawn = (drawn, prop_oneof![Just(0u32), 1..=8u32])
            .prop_map(move |(mut swarm, weight)| {
                if weight > 0 {
                    swarm.faults.insert(kind, weight);
                }
                swarm
            })
            .boxed();
    }
    drawn
}

/// Any operation of the system among `nodes` nodes; with `focus`, one that
/// involves that node.
pub fn operation<S: System>(system: &S, nodes: u32, focus: Option<NodeIdx>) -> BoxedStrategy<Action> {
    workload_operation(system, None, nodes, focus)
}

/// [`operation`] from the system's workload `workload` (`None`: its default).
pub fn workload_operation<S: System>(
    system: &S,
    workload: Option<&str>,
    nodes: u32,
    focus: Option<NodeIdx>,
) -> BoxedStrategy<Action> {
    match workload {
        None => system.operations(nodes, focus),
        Some(name) => system.workload_operations(Some(name), nodes, focus),
    }
    .prop_map(|op| Action::Op(Call::of(&op)))
    .boxed()
}

/// The final phase of `system` among `nodes` nodes as `[[final]]` steps, one
/// per operation, each right after the one before.
pub fn final_steps<S: System>(system: &S, nodes: u32) -> Vec<tandem::scenario::Step> {
    let step =
        |op: S::Op| tandem::scenario::Step::new(tandem::scenario::Timing::Immediately, Action::Op(Call::of(&op)));
    system.final_operations(nodes).into_iter().map(step).collect()
}

/// Two disjoint, non-empty groups of nodes (`nodes` >= 2); other nodes are in neither.
pub fn groups(nodes: u32) -> BoxedStrategy<(Vec<NodeIdx>, Vec<NodeIdx>)> {
    (0..nodes, 1..nodes, vec(0..3u8, nodes as usize))
        .prop_map(move |(first, step, mut sides)| {
            sides[first as usize] = 0;
            sides[((first + step) % nodes) as usize] = 1;
            let side = |s| (0..nodes).filter(|&n| sides[n as usize] == s).collect::<Vec<_>>();
            (side(0), side(1))
        })
        .boxed()
}

/// The scope of `latency` and `loss`: every link (half the time), or between two groups.
fn scope(nodes: u32) -> BoxedStrategy<Scope> {
    let every = Just(Scope::Every);
    if nodes < 2 {
        return every.boxed();
    }
    prop_oneof![every, groups(nodes).prop_map(|(a, b)| Scope::Between { a, b })].boxed()
}

/// Half the time, an operation followed by the fault 0 to 15 ms later: the
/// fault then catches it, or what it sent, in flight.
fn lead(send: BoxedStrategy<Action>) -> impl Strategy<Value = Option<(Action, Duration)>> {
    let gap = prop_oneof![Just(Duration::ZERO), millis(1..=15)];
    proptest::option::of((send, gap))
}

/// Up to three operations during a fault, at offsets in permille of its length.
fn during(send: BoxedStrategy<Action>) -> impl Strategy<Value = Vec<(u32, Action)>> {
    vec((0..=1000u32, send), 0..=3)
}

/// The start of an episode: its lead operation, if any; returns the fault's offset.
fn begin(lead: Option<(Action, Duration)>) -> (Actions, Duration) {
    match lead {
        Some((send, gap)) => (vec![(Duration::ZERO, send)], gap),
        None => (Vec::new(), Duration::ZERO),
    }
}

/// Appends the operations made during `length` from `at`, in time order.
fn add_during(actions: &mut Actions, at: Duration, length: Duration, mut sends: Vec<(u32, Action)>) {
    sends.sort_by_key(|(permille, _)| *permille);
    let millis = |permille: u32| Duration::from_millis((length.as_millis() * u128::from(permille) / 1000) as u64);
    actions.extend(sends.into_iter().map(|(permille, send)| (at + millis(permille), send)));
}

fn traffic<S: System>(system: &S, workload: Option<String>, nodes: u32) -> BoxedStrategy<Actions> {
    vec((millis(0..=1000), workload_operation(system, workload.as_deref(), nodes, None)), 1..=3)
        .prop_map(|mut sends| {
            sends.sort_by_key(|(at, _)| *at);
            sends
        })
        .boxed()
}

fn partition<S: System>(system: &S, workload: Option<String>, nodes: u32, oneway: bool) -> BoxedStrategy<Actions> {
    let heal = prop::bool::weighted(0.8);
    let op = || workload_operation(system, workload.as_deref(), nodes, None);
    (groups(nodes), lead(op()), during(op()), millis(300..=5000), heal)
        .prop_map(move |((a, b), lead, sends, hold, heal)| {
            let (mut actions, at) = begin(lead);
            let scope = Scope::Between { a, b };
            actions.push((at, Action::Link { change: LinkChange::Partition { oneway }, scope: scope.clone() }));
            add_during(&mut actions, at, hold, sends);
            if heal {
                actions.push((at + hold, Action::Link { change: LinkChange::Heal, scope }));
            }
            actions
        })
        .boxed()
}

fn loss<S: System>(system: &S, workload: Option<String>, nodes: u32, default: f64) -> BoxedStrategy<Actions> {
    let rate = prop_oneof![5..=30u32, 50..=100u32].prop_map(|p| f64::from(p) / 100.0);
    let reset = prop::bool::weighted(0.8);
    let op = || workload_operation(system, workload.as_deref(), nodes, None);
    (rate, scope(nodes), lead(op()), during(op()), millis(300..=4000), reset)
        .prop_map(move |(rate, scope, lead, sends, hold, reset)| {
            let (mut actions, at) = begin(lead);
            actions.push((at, Action::Link { change: LinkChange::Loss(rate), scope: scope.clone() }));
            add_during(&mut actions, at, hold, sends);
            if reset {
                actions.push((at + hold, Action::Link { change: LinkChange::Loss(default), scope }));
            }
            actions
        })
        .boxed()
}

/// The latency `min..min + extra` ms, both ends capped at `max`.
fn capped(min: u64, extra: u64, max: Duration) -> LatencyRange {
    let cap = |ms: u64| Duration::from_millis(ms).min(max);
    LatencyRange { min: cap(min), max: cap(min + extra) }
}

fn latency(nodes: u32, default: LatencyRange, max_latency: Duration) -> BoxedStrategy<Actions> {
    let value = (1u64..=50, 0u64..=200).prop_map(move |(min, extra)| capped(min, extra, max_latency));
    let reset = prop::bool::weighted(0.7);
    (value, scope(nodes), millis(300..=6000), reset)
        .prop_map(move |(value, scope, hold, reset)| {
            let change = LinkChange::Latency(value);
            let mut actions = vec![(Duration::ZERO, Action::Link { change, scope: scope.clone() })];
            if reset {
                actions.push((hold, Action::Link { change: LinkChange::Latency(default), scope }));
            }
            actions
        })
        .boxed()
}

fn crash<S: System>(
    system: &Arc<S>,
    workload: Option<String>,
    nodes: u32,
    seeds: Vec<NodeIdx>,
) -> BoxedStrategy<Actions> {
    let system = system.clone();
    (0..nodes)
        .prop_flat_map(move |node| {
            let restart = if seeds.contains(&node) { Just(true).boxed() } else { prop::bool::weighted(0.8).boxed() };
            let op = || workload_operation(&*system, workload.as_deref(), nodes, Some(node));
            let sends = (lead(op()), during(op()));
            (Just(node), sends, millis(200..=6000), restart)
        })
        .prop_map(|(node, (lead, sends), down, restart)| {
            let (mut actions, at) = begin(lead);
            actions.push((at, Action::Crash { node }));
            add_during(&mut actions, at, down, sends);
            if restart {
                actions.push((at + down, Action::Restart { node }));
            }
            actions
        })
        .boxed()
}

fn rebind<S: System>(system: &S, workload: Option<String>, nodes: u32, node: NodeIdx) -> BoxedStrategy<Actions> {
    let op = || workload_operation(system, workload.as_deref(), nodes, Some(node));
    let after = vec((millis(0..=2000), op()), 0..=2);
    (lead(op()), after)
        .prop_map(move |(lead, mut after)| {
            let (mut actions, at) = begin(lead);
            actions.push((at, Action::Rebind { node, port: None }));
            after.sort_by_key(|(offset, _)| *offset);
            actions.extend(after.into_iter().map(|(offset, send)| (at + offset, send)));
            actions
        })
        .boxed()
}

/// A disk fault on one node, with operations aimed at it meanwhile, usually
/// cleared later. For a system that survives disk corruptions
/// ([`Tolerance::disk_faults`](tandem::system::Tolerance::disk_faults)),
/// three times in four a [`corruption`] it survives instead; any other draws
/// exactly what it always drew.
fn disk<S: System>(system: &Arc<S>, workload: Option<String>, nodes: u32) -> BoxedStrategy<Actions> {
    let survived: Vec<SurvivedDiskFault> =
        system.tolerance().disk_faults.iter().copied().filter(|s| s.node.is_none_or(|node| node < nodes)).collect();
    if survived.is_empty() {
        return failing_disk(system, workload, nodes);
    }
    prop_oneof![1 => failing_disk(system, workload.clone(), nodes), 3 => corruption(system, workload, nodes, survived)]
        .boxed()
}

/// A sync that fails, a full disk or a slow one, on one node, with
/// operations aimed at it meanwhile, usually cleared later.
fn failing_disk<S: System>(system: &Arc<S>, workload: Option<String>, nodes: u32) -> BoxedStrategy<Actions> {
    let system = system.clone();
    let fault =
        prop_oneof![Just(DiskFault::FailSync), Just(DiskFault::Full), millis(5..=200).prop_map(DiskFault::Slow)];
    (0..nodes, fault)
        .prop_flat_map(move |(node, fault)| {
            let op = || workload_operation(&*system, workload.as_deref(), nodes, Some(node));
            (Just((node, fault)), lead(op()), during(op()), millis(200..=5000), prop::bool::weighted(0.8))
        })
        .prop_map(|((node, fault), lead, sends, hold, clear)| {
            let (mut actions, at) = begin(lead);
            actions.push((at, Action::Disk { node, fault }));
            add_during(&mut actions, at, hold, sends);
            if clear {
                actions.push((at + hold, Action::Disk { node, fault: DiskFault::None }));
            }
            actions
        })
        .boxed()
}

/// A corruption the system survives, on a node it may hit; operations aimed
/// at that node meanwhile, then one more and, 0 to 200 ms after it, the
/// node's crash (a lying sync shows only at a crash, and a restarted node
/// reads what its disk kept), and its restart, with the fault usually
/// cleared then.
fn corruption<S: System>(
    system: &Arc<S>,
    workload: Option<String>,
    nodes: u32,
    survived: Vec<SurvivedDiskFault>,
) -> BoxedStrategy<Actions> {
    let system = system.clone();
    prop::sample::select(survived)
        .prop_flat_map(move |survived| {
            let node = survived.node.map_or_else(|| (0..nodes).boxed(), |node| Just(node).boxed());
            (Just(survived.fault), node)
        })
        .prop_flat_map(move |(fault, node)| {
            let op = || workload_operation(&*system, workload.as_deref(), nodes, Some(node));
            let crash = (op(), millis(0..=200), millis(200..=3000));
            (Just((node, fault)), during(op()), millis(200..=3000), crash, prop::bool::weighted(0.8))
        })
        .prop_map(|((node, fault), sends, hold, (last, gap, down), clear)| {
            let mut actions = vec![(Duration::ZERO, Action::Disk { node, fault })];
            add_during(&mut actions, Duration::ZERO, hold, sends);
            actions.push((hold, last));
            actions.push((hold + gap, Action::Crash { node }));
            actions.push((hold + gap + down, Action::Restart { node }));
            if clear {
                actions.push((hold + gap + down, Action::Disk { node, fault: DiskFault::None }));
            }
            actions
        })
        .boxed()
}

/// A pause of one node, 100 ms (at most `max`) to `max` long: an operation
/// aimed at it just before (half the time), and operations aimed at it or
/// at any node while it lasts.
fn pause<S: System>(system: &Arc<S>, workload: Option<String>, nodes: u32, max: Duration) -> BoxedStrategy<Actions> {
    let system = system.clone();
    let longest = max.as_millis() as u64;
    (0..nodes)
        .prop_flat_map(move |node| {
            let at_it = || workload_operation(&*system, workload.as_deref(), nodes, Some(node));
            let any = prop_oneof![at_it(), workload_operation(&*system, workload.as_deref(), nodes, None)].boxed();
            (Just(node), lead(at_it()), during(any), millis(100.min(longest)..=longest))
        })
        .prop_map(|(node, lead, sends, length)| {
            let (mut actions, at) = begin(lead);
            actions.push((at, Action::Pause { node, length }));
            add_during(&mut actions, at, length, sends);
            actions
        })
        .boxed()
}

/// A change of the clocks of some nodes (as Jepsen's clock nemesis bumps a
/// random subset), each its own: a wall-clock jump or offset either way of
/// up to `max_clock_jump`, or a drift either way of up to
/// `max_drift_percent`, as the tolerance allows; an operation aimed at the
/// first of them just before (half the time), operations aimed at it or at
/// any node while the changes hold, and usually their reset at the end (an
/// offset of zero, or no drift). Half the time the first node also loses
/// touch while its clock is off (Jepsen composes its clock nemesis with
/// partitions the same way): it is cut off from the others, or paused, for
/// the hold; a lease or a promise measured on the wrong clock is only
/// tested when its holder cannot renew it.
fn clock<S: System>(
    system: &Arc<S>,
    workload: Option<String>,
    nodes: u32,
    tolerance: &Tolerance,
) -> BoxedStrategy<Actions> {
    let mut changes: Vec<BoxedStrategy<(ClockChange, ClockChange)>> = Vec::new();
    let longest = tolerance.max_clock_jump.as_millis() as u64;
    if longest > 0 {
        let skew = (any::<bool>(), millis(1..=longest)).prop_map(|(behind, by)| Skew { behind, by });
        let reset = ClockChange::Offset(Skew::default());
        changes.push(
            (any::<bool>(), skew)
                .prop_map(move |(jump, skew)| {
                    (if jump { ClockChange::Jump(skew) } else { ClockChange::Offset(skew) }, reset)
                })
                .boxed(),
        );
    }
    let percent = tolerance.max_drift_percent.min(90);
    if percent > 0 {
        let drift = (any::<bool>(), 1..=percent).prop_map(|(slow, p)| {
            let rate = f64::from(p) / 100.0;
            (ClockChange::Drift(if slow { -rate } else { rate }), ClockChange::Drift(0.0))
        });
        changes.push(drift.boxed());
    }
    let change = Union::new(changes);
    let max_pause = tolerance.max_pause;
    let system = system.clone();
    proptest::sample::subsequence((0..nodes).collect::<Vec<_>>(), 1..=nodes as usize)
        .prop_flat_map(move |hit| {
            let first = hit[0];
            let at_it = || workload_operation(&*system, workload.as_deref(), nodes, Some(first));
            let any = prop_oneof![at_it(), workload_operation(&*system, workload.as_deref(), nodes, None)].boxed();
            let each = vec(change.clone(), hit.len()).prop_map(move |c| hit.iter().copied().zip(c).collect::<Vec<_>>());
            let cut = prop_oneof![2 => Just(None), 1 => Just(Some(Cut::Isolate)), 1 => Just(Some(Cut::Pause))];
            (each, lead(at_it()), during(any), millis(300..=6000), prop::bool::weighted(0.7), cut)
        })
        .prop_map(move |(each, lead, sends, hold, undo, cut)| {
            let (mut actions, at) = begin(lead);
            actions.extend(each.iter().map(|&(node, (change, _))| (at, Action::Clock { node, change })));
            let first = each[0].0;
            match cut {
                Some(Cut::Isolate) if nodes >= 2 => {
                    let scope = Scope::Between { a: vec![first], b: (0..nodes).filter(|&n| n != first).collect() };
                    let change = LinkChange::Partition { oneway: false };
                    actions.push((at, Action::Link { change, scope: scope.clone() }));
                    actions.push((at + hold, Action::Link { change: LinkChange::Heal, scope }));
                }
                Some(Cut::Pause) if !max_pause.is_zero() => {
                    actions.push((at, Action::Pause { node: first, length: hold.min(max_pause) }));
                }
                _ => {}
            }
            add_during(&mut actions, at, hold, sends);
            if undo {
                actions
                    .extend(each.iter().map(|&(node, (_, reset))| (at + hold, Action::Clock { node, change: reset })));
            }
            actions
        })
        .boxed()
}

/// How the first node of a clock episode loses touch while its clock is off.
#[derive(Debug, Clone, Copy)]
enum Cut {
    /// Cut off from every other node.
    Isolate,
    /// Paused (for at most the tolerated pause).
    Pause,
}

/// A fault aimed at one of `roles` (drawn), with operations on any node
/// before (half the time) and during it, then its repair: a crash then a
/// restart aimed at the role (always: the node is not known in advance), a
/// partition cutting the holder off from every other node then (usually)
/// a heal of every link, or a pause of up to `max_pause`.
fn aimed<S: System>(
    system: &S,
    workload: Option<String>,
    nodes: u32,
    roles: Vec<&'static str>,
    kind: FaultKind,
) -> BoxedStrategy<Actions> {
    let op = || workload_operation(system, workload.as_deref(), nodes, None);
    let max_pause = system.tolerance().max_pause.as_millis() as u64;
    let (hold, repair): (BoxedStrategy<Duration>, _) = match kind {
        FaultKind::Crash => (millis(200..=6000).boxed(), Just(true).boxed()),
        FaultKind::Pause => (millis(100.min(max_pause)..=max_pause).boxed(), Just(false).boxed()),
        _ => (millis(300..=5000).boxed(), prop::bool::weighted(0.8).boxed()),
    };
    (proptest::sample::select(roles), lead(op()), during(op()), hold, repair)
        .prop_map(move |(role, lead, sends, hold, repair)| {
            let role = role.to_string();
            let aim = |aim| Action::Aimed { role: role.clone(), aim };
            let (mut actions, at) = begin(lead);
            actions.push((
                at,
                aim(match kind {
                    FaultKind::Crash => Aim::Node(NodeChange::Crash),
                    FaultKind::Pause => Aim::Node(NodeChange::Pause(hold)),
                    _ => Aim::Isolate { oneway: kind == FaultKind::OneWayPartition },
                }),
            ));
            add_during(&mut actions, at, hold, sends);
            if repair {
                let undo = match kind {
                    FaultKind::Crash => aim(Aim::Node(NodeChange::Restart)),
                    _ => Action::Link { change: LinkChange::Heal, scope: Scope::Every },
                };
                actions.push((at + hold, undo));
            }
            actions
        })
        .boxed()
}

/// The actions of one fault episode, or `None` when the kind needs more
/// nodes. For a system that names roles ([`Oracle::roles`](tandem::Oracle::roles)), one crash,
/// partition or pause in four is aimed at a role instead of drawn nodes;
/// any other draws exactly what it always drew.
fn fault<S: System>(stage: &Stage<S>, kind: FaultKind) -> Option<BoxedStrategy<Actions>> {
    let drawn = drawn_fault(stage, kind)?;
    let roles = stage.system.roles();
    let aimable =
        matches!(kind, FaultKind::Crash | FaultKind::Partition | FaultKind::OneWayPartition | FaultKind::Pause);
    if roles.is_empty() || !aimable {
        return Some(drawn);
    }
    Some(prop_oneof![3 => drawn, 1 => aimed(&*stage.system, stage.workload.clone(), stage.nodes, roles, kind)].boxed())
}

/// The actions of one fault episode at drawn nodes, or `None` when the kind
/// needs more nodes.
fn drawn_fault<S: System>(stage: &Stage<S>, kind: FaultKind) -> Option<BoxedStrategy<Actions>> {
    let (system, nodes, workload) = (&stage.system, stage.nodes, stage.workload.clone());
    let two = nodes >= 2;
    Some(match kind {
        FaultKind::Partition if two => partition(&**system, workload, nodes, false),
        FaultKind::OneWayPartition if two => partition(&**system, workload, nodes, true),
        FaultKind::Partition | FaultKind::OneWayPartition => return None,
        FaultKind::Heal => {
            Just(vec![(Duration::ZERO, Action::Link { change: LinkChange::Heal, scope: Scope::Every })]).boxed()
        }
        FaultKind::Latency => latency(nodes, stage.network.latency, system.tolerance().max_latency),
        FaultKind::Loss => loss(&**system, workload, nodes, stage.network.loss),
        FaultKind::Crash => crash(system, workload, nodes, stage.seeds.clone()),
        FaultKind::Rebind if system.capabilities().rebind => rebind(&**system, workload, nodes, stage.mover),
        FaultKind::Rebind => return None,
        FaultKind::Disk => disk(system, workload, nodes),
        FaultKind::Pause => pause(system, workload, nodes, system.tolerance().max_pause),
        FaultKind::Clock => clock(system, workload, nodes, &system.tolerance()),
    })
}

/// One episode: traffic or an enabled fault, chosen by the swarm's weights,
/// starting within the stage's window.
pub fn episode<S: System>(stage: &Stage<S>, swarm: &Swarm) -> impl Strategy<Value = Episode> {
    let traffic = traffic(&*stage.system, stage.workload.clone(), stage.nodes);
    let options: Vec<(u32, BoxedStrategy<Actions>)> = std::iter::once((swarm.traffic, traffic))
        .chain(swarm.faults.iter().filter_map(|(&kind, &weight)| Some((weight, fault(stage, kind)?))))
        .collect();
    let start = millis(stage.window.start.as_millis() as u64..=stage.window.end.as_millis() as u64 - 1);
    (start, Union::new_weighted(options)).prop_map(|(start, actions)| Episode { start, actions })
}

/// A timeline of `episodes` episodes laid out by [`lay_out`]: a step that
/// awaits the system's [`ready`](tandem::Oracle::ready) condition (when it has one),
/// then `at` steps within the stage's window.
pub fn timeline<S: System>(
    stage: &Stage<S>,
    swarm: &Swarm,
    episodes: RangeInclusive<usize>,
) -> impl Strategy<Value = Vec<tandem::scenario::Step>> {
    let end = stage.window.end;
    let ready = stage.system.ready().map(|condition| Call::of(&condition));
    vec(episode(stage, swarm), episodes).prop_map(move |episodes| lay_out(&episodes, end, ready.clone()))
}

/// A whole scenario of `system` from `space`, named `explore`; its `seed` is
/// a drawn simulation seed and its description names its swarm.
///
/// # Panics
///
/// When `space` leaves no time for episodes before the settle tail.
pub fn scenario<S: System>(system: &Arc<S>, space: &Space) -> impl Strategy<Value = Scenario> {
    assert!(!space.window().is_empty(), "duration {:?} leaves no time before the settle tail", space.duration);
    let space = space.clone();
    let system = system.clone();
    let max_latency = system.tolerance().max_latency;
    (
        node_count(space.nodes.clone()),
        network(max_latency),
        swarm_for(&*system, space.backend),
        sim_seed(),
        knob_values(system.knobs()),
    )
        .prop_flat_map(|(nodes, network, swarm, seed, knobs)| {
            (Just((nodes, network, swarm, seed, knobs)), seed_nodes(nodes))
        })
        .prop_flat_map(|(drawn, seeds)| {
            let mover = mover(drawn.0, &seeds);
            (Just(drawn), Just(seeds), mover)
        })
        .prop_flat_map(move |((nodes, network, swarm, seed, knobs), seeds, mover)| {
            let stage = Stage {
                system: system.clone(),
                nodes,
                seeds: seeds.clone(),
                network: network.clone(),
                mover,
                window: space.window(),
                workload: space.workload.clone(),
            };
            let scenario = Scenario {
                description: format!("Generated by tandem explore; swarm: {swarm}."),
                seeds,
                duration: space.duration,
                settle: space.settle,
                seed,
                stagger: space.stagger,
                clients: space.clients,
                network,
                planted_bug: space.planted_bug.clone(),
                knobs,
                system: Some(system.name().to_string()),
                properties: space.properties.clone(),
                finals: if space.finals { final_steps(&*system, nodes) } else { Vec::new() },
                ..Scenario::new("explore", nodes)
            };
            (Just(scenario), timeline(&stage, &swarm, space.episodes.clone()))
        })
        .prop_map(|(scenario, steps)| Scenario { steps, ..scenario })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    #[test]
    fn knobs_are_usually_default_sometimes_extreme_and_always_in_range() {
        let knob = Knob { name: "window", description: "", default: 5, min: 1, max: 100 };
        let mut runner = TestRunner::deterministic();
        let mut draw = |knobs: Vec<Knob>| knob_values(knobs).new_tree(&mut runner).unwrap().current();
        let set: Vec<i64> = (0..450).filter_map(|_| draw(vec![knob]).get("window").copied()).collect();
        assert!((90..=200).contains(&set.len()), "about a third set: {} of 450", set.len());
        assert!(set.contains(&1) && set.contains(&100), "the extremes come up");
        assert!(set.iter().all(|v| (1..=100).contains(v) && *v != 5), "in range, never the default: {set:?}");
        assert_eq!(draw(Vec::new()), BTreeMap::new());
    }

    #[test]
    fn a_system_that_declares_no_pauses_or_clocks_draws_none_and_what_it_always_drew() {
        use crate::explore::testing::Echo;
        let echo = Arc::new(Echo);
        assert_eq!(extra_kinds(&*echo, Backend::Events), Vec::new());
        let (mut a, mut b) = (TestRunner::deterministic(), TestRunner::deterministic());
        for _ in 0..50 {
            let swarm_drawn = swarm_for(&*echo, Backend::Events).new_tree(&mut a).unwrap().current();
            assert_eq!(swarm_drawn, swarm().new_tree(&mut b).unwrap().current());
        }
        let mut runner = TestRunner::deterministic();
        for _ in 0..100 {
            let drawn = scenario(&echo, &Space::default()).new_tree(&mut runner).unwrap().current();
            let new = drawn.steps.iter().find(|s| matches!(s.action, Action::Pause { .. } | Action::Clock { .. }));
            assert_eq!(new, None, "{}", drawn.description);
            assert!(drawn.finals.is_empty(), "no final operations, no final phase");
        }
    }
}
